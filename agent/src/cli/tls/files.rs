//! Writing certificate and key files: never over an existing file, never partly, and a key never
//! readable by anyone else, not even for a moment.
//!
//! A file is written whole to a fresh temporary name in the same directory, created exclusively
//! with its final mode (0600 for keys), synced, and then hard-linked to its real name. `link`
//! fails when the name exists, so a file that appeared since the caller looked is not replaced,
//! and the name only ever points at complete contents.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a private key file.
pub const KEY_MODE: u32 = 0o600;
/// Mode of a certificate file.
pub const CERT_MODE: u32 = 0o644;

/// The highest index `tls cert create` tries, as Consul.
const MAX_INDEX: u32 = 10_000;

/// Whether nothing (not even a dangling symlink) is at `path`.
pub fn is_free(path: &Path) -> bool {
    fs::symlink_metadata(path).is_err_and(|err| err.kind() == io::ErrorKind::NotFound)
}

/// The first `<prefix>-<i>.pem` / `<prefix>-<i>-key.pem` pair in `dir` where neither exists.
pub fn free_pair(dir: &Path, prefix: &str) -> Option<(String, String)> {
    (0..=MAX_INDEX)
        .map(|idx| (format!("{prefix}-{idx}.pem"), format!("{prefix}-{idx}-key.pem")))
        .find(|(cert, key)| is_free(&dir.join(cert)) && is_free(&dir.join(key)))
}

/// Writes `contents` to the new file `path` with `mode`; `AlreadyExists` if something is there.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temp = temp_path(path)?;
    let result = write_then_link(&temp, path, contents, mode);
    // The temporary name is only a means; it goes whether the link was made or not.
    let _ = fs::remove_file(&temp);
    result
}

fn write_then_link(temp: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(temp)?;
    // The umask may only have narrowed `mode`; set it exactly so a certificate is readable by all.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::hard_link(temp, path)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A name next to `path` that nothing else will pick: hidden, with a random suffix.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a file name", path.display())))?;
    let suffix: u64 = rand::random();
    Ok(path.with_file_name(format!(".{}.{suffix:016x}.tmp", name.to_string_lossy())))
}
