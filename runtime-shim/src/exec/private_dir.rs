//! The exec driver's state directory as a private directory: the supervisors run as root and trust what they read
//! there (`task.json` names the command, the rootfs and the mounts), so nobody else may be able to write it, or to
//! have it created somewhere of their choosing by planting a symlink at its path beforehand.

use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// Creates `path` (its parent must exist) with mode 0700, or accepts it as it is when it exists as a directory owned
/// by this user that neither group nor others can write; then takes away group and other access.
///
/// The `mkdir` is atomic and does not follow a symlink at `path`; the existing directory is then opened with
/// `O_NOFOLLOW` and checked and changed through that handle, so a symlink swapped in between cannot redirect
/// either. An existing group- or world-writable directory is refused rather than fixed, because someone else may
/// already have put files in it; a merely readable one (a data dir's `exec` made by an older roster) is tightened.
/// Every such refusal is an [`io::ErrorKind::AlreadyExists`] error naming the path and the reason.
pub fn ensure_private_dir(path: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    // `AlreadyExists`: something is at the path and it will not do; callers tell this from "cannot create here".
    let refuse = |why: &str| io::Error::new(io::ErrorKind::AlreadyExists, format!("{}: {why}", path.display()));
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(dir) => dir,
        // ELOOP or ENOTDIR (which wins depends on the kernel's order of checks): a symlink or some other file.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
            return Err(refuse(if is_link {
                "is a symlink, not a directory"
            } else {
                "exists and is not a directory"
            }));
        }
        Err(err) => return Err(err.into()),
    };
    let stat = rustix::fs::fstat(&dir)?;
    let uid = rustix::process::geteuid().as_raw();
    if stat.st_uid != uid {
        return Err(refuse(&format!("is owned by uid {}, not by this process's uid {uid}", stat.st_uid)));
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(&format!("is writable by group or others (mode {mode:o})")));
    }
    if mode & 0o077 != 0 {
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
