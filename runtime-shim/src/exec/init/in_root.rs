//! Paths inside a task's rootfs, resolved as the task will see them after the root switch: a symlink in the rootfs
//! (which the task's image controls) is followed inside the rootfs, never out of it, and `..` stops at its top.
//!
//! The boundary is the kernel's, not ours: every lookup is `openat2` with `RESOLVE_IN_ROOT` against a directory fd
//! of the rootfs, which treats that directory as `/` for the whole walk, absolute symlinks and `..` included, even
//! while something renames entries under it. `openat2` only opens, though, and a mount point may have to be made,
//! possibly behind a symlink that dangles until its target exists inside the rootfs (runc makes those, and images
//! rely on it: `/var/run -> /run`). So [`Root::resolve`] walks one component at a time: each prefix is opened in the
//! root; a symlink met as a prefix's last component is read and spliced into the rest of the path, which the kernel
//! again resolves in the root; and a missing component is made in its parent's fd with `mkdirat` or
//! `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`, neither of which follows a symlink. Refusing symlinks outright
//! (`O_NOFOLLOW` on every component) would be less code but would break such images; following them as Docker does
//! keeps the spec's meaning the same on both drivers.
//!
//! The result is an `O_PATH` fd, and the mount goes onto [`proc_path`], its `/proc/self/fd/N` link, which `mount(2)`
//! follows to exactly the file that was resolved, so no second lookup by name can be redirected in between.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What [`Root::resolve`] makes when the path's last component is missing (the directories before it are always
/// made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Nothing: a missing path is `NotFound`.
    Nothing,
    /// A directory, the mount point for a directory.
    Dir,
    /// An empty file, the mount point for a file.
    File,
}

/// A task's rootfs, the directory every path of the task is resolved in.
pub(crate) struct Root {
    /// An `O_PATH` fd of the rootfs directory: the `/` of every lookup.
    fd: OwnedFd,
}

/// How many symlinks one lookup may follow, Linux's own limit (`ELOOP` beyond).
const MAX_SYMLINKS: usize = 40;
/// How many steps one lookup may take before it gives up with `ELOOP`: a bound for a rootfs that keeps changing
/// under the walk, far above what any real path needs.
const MAX_STEPS: usize = 4096;

impl Root {
    /// Opens the rootfs at `path` (a host path the operator chose, so opened plainly).
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let root = Root { fd };
        // Fail here, once and clearly, on a kernel without openat2 rather than on the first mount.
        match root.open_in(Path::new("."), OFlags::DIRECTORY) {
            Err(Errno::NOSYS) => Err(io::Error::other(
                "this kernel has no openat2 (Linux 5.6 or later), which resolving mounts inside a rootfs needs",
            )),
            res => res.map(drop).map_err(io::Error::from),
        }?;
        Ok(root)
    }

    /// Opens `path` (a path inside the task; absolute or not, it starts at the rootfs) as an `O_PATH` fd, making
    /// the missing directories on the way and the last component as `create` says.
    pub(crate) fn resolve(&self, path: &Path, create: Create) -> io::Result<OwnedFd> {
        let mut rest = components(path);
        // The part of the path already resolved, which the kernel resolves again (in the root) on each step.
        let mut done = PathBuf::new();
        let mut n_symlinks = 0;
        for _ in 0..MAX_STEPS {
            let Some(name) = rest.pop_front() else {
                return Ok(self.open_in(&done, OFlags::empty())?);
            };
            let candidate = done.join(&name);
            match self.open_in(&candidate, OFlags::NOFOLLOW) {
                Ok(fd) if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) == FileType::Symlink => {
                    n_symlinks += 1;
                    if n_symlinks > MAX_SYMLINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let link =
                        PathBuf::from(OsString::from_vec(rustix::fs::readlinkat(&fd, "", Vec::new())?.into_bytes()));
                    // As in the kernel's walk: an absolute link starts again at the root, a relative one at the
                    // link's directory, which is `done`.
                    if link.is_absolute() {
                        done.clear();
                    }
                    for component in components(&link).into_iter().rev() {
                        rest.push_front(component);
                    }
                }
                Ok(_) => done = candidate,
                Err(Errno::NOENT) => {
                    let kind = if rest.is_empty() { create } else { Create::Dir };
                    self.make(&done, &name, kind)?;
                    // Looked up again, so that what was made (or raced in) goes through the same checks.
                    rest.push_front(name);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(Errno::LOOP.into())
    }

    /// Makes `name` in the directory `parent` (resolved in the root) as `kind`; one that already exists is fine,
    /// as the caller looks it up again.
    fn make(&self, parent: &Path, name: &OsString, kind: Create) -> io::Result<()> {
        let parent = self.open_in(parent, OFlags::DIRECTORY)?;
        let made = match kind {
            Create::Nothing => return Err(Errno::NOENT.into()),
            Create::Dir => rustix::fs::mkdirat(&parent, name.as_os_str(), Mode::from_raw_mode(0o755)),
            Create::File => {
                // O_EXCL never follows a symlink, even one that appeared since the lookup.
                let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                rustix::fs::openat(&parent, name.as_os_str(), flags, Mode::from_raw_mode(0o644)).map(drop)
            }
        };
        match made {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// `openat2` of `path` with the rootfs as `/`; magic links (`/proc/*/fd/*` of a procfs inside) are refused, as
    /// they would jump anywhere.
    fn open_in(&self, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        rustix::fs::openat2(&self.fd, path, OFlags::PATH | OFlags::CLOEXEC | flags, Mode::empty(), resolve)
    }
}

/// The `/proc/self/fd/N` link of `fd`, which `mount(2)` follows to the file `fd` holds.
pub(crate) fn proc_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The names and `..`s of `path`, in order (`/` and `.` resolve to where the walk already is).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
