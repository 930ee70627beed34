//! Writing the rendered file atomically and telling the load balancer to reload it.
//!
//! The file is written to a temporary sibling and renamed over the target, so nginx (which may
//! re-read it at any moment: its own reload, a worker restart) never sees half a file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// How long the reload command may run before it is killed and reported.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `text` to `path` by rename; the temporary file is in the same directory so the rename
/// stays within one file system.
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let file_name = path.file_name().context("-out names no file")?.to_string_lossy();
    let temp: PathBuf = path.with_file_name(format!(".{file_name}.tmp.{}", std::process::id()));
    std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
}

/// Runs the reload command through `/bin/sh -c` and reports how it ended.
pub async fn reload(command: &str) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the reload command {command:?}"))?;
    let status = tokio::time::timeout(RELOAD_TIMEOUT, child.wait())
        .await
        .with_context(|| format!("the reload command {command:?} ran longer than {RELOAD_TIMEOUT:?}"))??;
    anyhow::ensure!(status.success(), "the reload command {command:?} failed: {status}");
    Ok(())
}
