//! The `init` mode: the task's first process, PID 1 of its PID namespace, which makes the task's world and then
//! `exec`s the task's command in place (so the command itself is PID 1 and its exit is the task's).
//!
//! In order: join the task's cgroup (before anything can allocate), unshare mount, UTS and IPC namespaces, make
//! every mount private (nothing done here may propagate to the host), set the hostname, build the root, mount a
//! fresh `/proc` for the new PID namespace, and `exec`. With a `rootfs`, the root is that directory bind-mounted
//! onto itself, with the spec's mounts, a generated `resolv.conf`, a minimal `/dev` when it has none, and `/proc`
//! (every one of their paths resolved inside the rootfs, symlinks included, by `in_root.rs`), then `pivot_root`ed
//! into (falling back to `chroot` where the host's root cannot be pivoted, an initramfs). Without one the task sees
//! the host's filesystem, with its own `/proc` and mounts.
//!
//! The network namespace is not made here: `init` runs in the one the supervisor spawned it into, the host's for a
//! task on the host network, or a new one the supervisor already set up (loopback, and for a bridge task `eth0` with
//! its address and default route; see `net.rs`), so nothing here needs the host's namespace.
//!
//! A failure before the `exec` is written to the task's log and ends the process with status 125; a command that
//! cannot be run ends it with 127 (not found) or 126, as a shell does.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

use rustix::fs::FileType;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use self::in_root::{Create, Root, proc_path};
use super::supervise::{SETUP_FAILED, read_task};
use super::sys;
use super::wire::TaskFile;

mod in_root;

/// The host device nodes bound into a rootfs that has no `/dev/null`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Sets the task up and execs its command; returns only on failure.
pub(crate) fn init(dir: &Path) -> ExitCode {
    let Some(task) = read_task(dir) else { return ExitCode::from(SETUP_FAILED) };
    if let Err(err) = prepare(dir, &task) {
        eprintln!("roster: setting up task {}.{}: {err}", task.job, task.task);
        return ExitCode::from(SETUP_FAILED);
    }
    let err = Command::new(&task.command).args(&task.args).env_clear().envs(&task.env).current_dir("/").exec();
    eprintln!("roster: cannot run {:?}: {err}", task.command);
    ExitCode::from(if err.kind() == io::ErrorKind::NotFound { 127 } else { 126 })
}

/// Everything before the `exec`.
fn prepare(dir: &Path, task: &TaskFile) -> io::Result<()> {
    task.cgroup.join_self().map_err(|err| context("joining the cgroup", err))?;
    sys::unshare_task_namespaces().map_err(|err| context("unsharing namespaces", err))?;
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|err| context("making mounts private", err.into()))?;
    rustix::system::sethostname(task.hostname.as_bytes()).map_err(|err| context("setting the hostname", err.into()))?;
    let resolv_conf = match &task.resolv_conf {
        Some(content) => {
            let path = dir.join("resolv.conf");
            std::fs::write(&path, content).map_err(|err| context("writing resolv.conf", err))?;
            Some(path)
        }
        None => None,
    };
    match &task.rootfs {
        Some(rootfs) => enter_rootfs(task, rootfs, resolv_conf.as_deref()),
        None => host_root(task, resolv_conf.as_deref()),
    }
}

/// Builds the task's root from `rootfs` and moves into it.
fn enter_rootfs(task: &TaskFile, rootfs: &Path, resolv_conf: Option<&Path>) -> io::Result<()> {
    // pivot_root needs the new root to be a mount point of its own.
    bind(rootfs, rootfs, false).map_err(|err| context("binding the rootfs", err))?;
    // Opened after that bind, so the mounts below land in the new root's mount. Everything inside is resolved
    // through `root` (see `in_root.rs`): the rootfs's contents are the task's, and a symlink in it must not lead
    // any of these mounts, or the directories made for them, out onto the host.
    let root = Root::open(rootfs).map_err(|err| context("opening the rootfs", err))?;
    for mount in &task.mounts {
        let source = Path::new(&mount.source);
        let create = if source.is_dir() { Create::Dir } else { Create::File };
        bind_inside(&root, source, &mount.target, create, mount.read_only)
            .map_err(|err| context(&format!("mounting {} at {}", mount.source, mount.target), err))?;
    }
    if let Some(resolv_conf) = resolv_conf
        && root.resolve(Path::new("/etc"), Create::Nothing).is_ok_and(|etc| is_dir(&etc))
    {
        bind_inside(&root, resolv_conf, "/etc/resolv.conf", Create::File, true)
            .map_err(|err| context("mounting resolv.conf", err))?;
    }
    if root.resolve(Path::new("/dev/null"), Create::Nothing).is_err() {
        minimal_dev(&root).map_err(|err| context("populating /dev", err))?;
    }
    let proc = root.resolve(Path::new("/proc"), Create::Dir).map_err(|err| context("making /proc", err))?;
    mount_proc(&proc_path(&proc))?;
    std::env::set_current_dir(rootfs)?;
    // pivot_root(".", ".") stacks the old root on the new one; detaching the top mount then leaves only the new.
    match rustix::process::pivot_root(".", ".") {
        Ok(()) => rustix::mount::unmount(".", UnmountFlags::DETACH)
            .map_err(|err| context("detaching the old root", err.into()))?,
        Err(rustix::io::Errno::INVAL) => {
            rustix::process::chroot(".").map_err(|err| context("chroot", err.into()))?;
        }
        Err(err) => return Err(context("pivot_root", err.into())),
    }
    std::env::set_current_dir("/")
}

/// Bind-mounts the host's `source` at `target` inside `root`, making the mount point as `create` says.
fn bind_inside(root: &Root, source: &Path, target: &str, create: Create, read_only: bool) -> io::Result<()> {
    let mount_point = root.resolve(Path::new(target), create)?;
    rustix::mount::mount_bind_recursive(source, proc_path(&mount_point))?;
    if read_only {
        // The fd still holds the directory under the new mount, and a remount must name the mount itself, so the
        // target is resolved again (as runc does), which now ends on the mount's root. That second lookup must
        // find what was just mounted, or the read-only flag would go to some other mount.
        let mounted = root.resolve(Path::new(target), Create::Nothing)?;
        let (expected, found) = (rustix::fs::stat(source)?, rustix::fs::fstat(&mounted)?);
        if (expected.st_dev, expected.st_ino) != (found.st_dev, found.st_ino) {
            return Err(io::Error::other("the mount point changed while it was being mounted"));
        }
        rustix::mount::mount_remount(proc_path(&mounted), MountFlags::BIND | MountFlags::RDONLY, "")?;
    }
    Ok(())
}

/// Whether `fd` holds a directory.
fn is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
}

/// Keeps the host's root, with the task's own `/proc`, mounts and `resolv.conf` (all private to it).
fn host_root(task: &TaskFile, resolv_conf: Option<&Path>) -> io::Result<()> {
    mount_proc(Path::new("/proc"))?;
    for mount in &task.mounts {
        // On the host's filesystem roster creates nothing: the target must exist.
        bind(Path::new(&mount.source), Path::new(&mount.target), mount.read_only)
            .map_err(|err| context(&format!("mounting {} at {}", mount.source, mount.target), err))?;
    }
    if let Some(resolv_conf) = resolv_conf {
        bind(resolv_conf, Path::new("/etc/resolv.conf"), true).map_err(|err| context("mounting resolv.conf", err))?;
    }
    Ok(())
}

/// A fresh procfs at `target` (which exists), showing the task's PID namespace.
fn mount_proc(target: &Path) -> io::Result<()> {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount("proc", target, "proc", flags, None).map_err(|err| context("mounting /proc", err.into()))
}

/// A tmpfs `/dev` in `root` with the usual device nodes bound from the host's, `/dev/shm`, and the `fd` links.
fn minimal_dev(root: &Root) -> io::Result<()> {
    let mount_point = root.resolve(Path::new("/dev"), Create::Dir)?;
    rustix::mount::mount("tmpfs", proc_path(&mount_point), "tmpfs", MountFlags::NOSUID, c"mode=755")?;
    // The fresh tmpfs is roster's alone, with no symlinks of the task's in it, so below it plain paths are safe;
    // they start at the tmpfs's root through its fd.
    let mounted = root.resolve(Path::new("/dev"), Create::Nothing)?;
    let dev = proc_path(&mounted);
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if host.exists() {
            let target = dev.join(name);
            OpenOptions::new().create(true).truncate(false).write(true).open(&target)?;
            bind(&host, &target, false)?;
        }
    }
    let shm = dev.join("shm");
    std::fs::create_dir(&shm)?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount("shm", &shm, "tmpfs", flags, c"mode=1777")?;
    for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")] {
        std::os::unix::fs::symlink(target, dev.join(link))?;
    }
    std::os::unix::fs::symlink("/proc/self/fd/2", dev.join("stderr"))
}

/// Bind-mounts `source` (with its submounts) at `target`, read-only if asked.
fn bind(source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
    rustix::mount::mount_bind_recursive(source, target)?;
    if read_only {
        // A bind mount takes MS_RDONLY only on a remount of itself.
        rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")?;
    }
    Ok(())
}

/// An error with what was being done.
fn context(what: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
