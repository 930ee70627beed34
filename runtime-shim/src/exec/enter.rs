//! The `enter` mode: runs a command inside a running task, as `nsenter` would, for
//! [`Driver::exec`](crate::Driver::exec) and so for health checks.
//!
//! It joins the task's cgroup (so the command counts against the task's limits and dies with it), opens the task's
//! namespaces and root from `/proc/<pid>` while the host's `/proc` is still visible, `setns`es into IPC, UTS, network
//! (the host's, for a task on the host network), PID and mount (mount last: it changes what paths mean), `chroot`s to the task's root, and spawns the command. It
//! spawns rather than `exec`s because joining a PID namespace applies to children only. Its exit status is the
//! command's (128 + signal when a signal ended it), or 125 when it could not enter.
//!
//! This is a fresh single-threaded process, which `setns` into a mount namespace requires.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use rustix::thread::LinkNameSpaceType;

use super::supervise::{SETUP_FAILED, read_task};
use super::wire::{self, STATE_FILE, StateFile};

/// The namespaces a command joins, in the order it joins them.
const NAMESPACES: [(&str, LinkNameSpaceType); 5] = [
    ("ipc", LinkNameSpaceType::InterProcessCommunication),
    ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
    ("net", LinkNameSpaceType::Network),
    ("pid", LinkNameSpaceType::ProcessID),
    ("mnt", LinkNameSpaceType::Mount),
];

/// Runs `command` in the task of `dir`; the exit status is the command's.
pub(crate) fn enter(dir: &Path, command: Vec<OsString>) -> ExitCode {
    match run(dir, &command) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("roster: exec: {err}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

fn run(dir: &Path, command: &[OsString]) -> io::Result<u8> {
    let (program, args) = command.split_first().ok_or_else(|| io::Error::other("no command given"))?;
    let task = read_task(dir).ok_or_else(|| io::Error::other("the task is gone"))?;
    let state: Option<StateFile> = wire::read(&dir.join(STATE_FILE))?;
    let pid = state.filter(|state| !state.exited()).and_then(|state| state.pid);
    // The task's PID is trusted only while it is in the task's cgroup: once reaped, the number may be reused.
    let Some(pid) = pid.filter(|pid| task.cgroup.procs().contains(pid)) else {
        return Err(io::Error::other("the task is not running"));
    };
    task.cgroup.join_self()?;
    let namespaces = NAMESPACES
        .iter()
        .map(|(name, kind)| Ok((File::open(format!("/proc/{pid}/ns/{name}"))?, *kind)))
        .collect::<io::Result<Vec<_>>>()?;
    let root = File::open(format!("/proc/{pid}/root"))?;
    for (file, kind) in &namespaces {
        rustix::thread::move_into_link_name_space(file.as_fd(), Some(*kind))?;
    }
    rustix::process::fchdir(&root)?;
    rustix::process::chroot(".")?;
    std::env::set_current_dir("/")?;
    let status = Command::new(program).args(args).env_clear().envs(&task.env).stdin(Stdio::null()).status()?;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => i32::from(SETUP_FAILED),
    };
    Ok(u8::try_from(code & 0xff).unwrap_or(SETUP_FAILED))
}
