//! Snapshot persistence: the newest snapshot as one file under `data_dir/snapshots/`, or in memory.
//!
//! A file is `magic "RSNP" | version: u8 | meta length: u32 BE | meta (postcard) | State::encode_snapshot()`.
//! Meta and data share one file so that a single rename publishes both atomically.
//! Writing goes tmp file → fsync → rename → fsync directory, so after a crash the directory holds
//! either the previous snapshot or the new one, whole. Older files are deleted once the new one is durable.
//!
//! openraft builds a snapshot on a task of its own, so a build can finish while the state machine worker installs a
//! leader's snapshot or reads the current one to send to a follower. Saves are therefore serialized and never make
//! an older snapshot current (a build that finishes after a newer install is dropped, as openraft drops its meta);
//! a save removes the old file only after switching to the new one, and a reader that finds its file gone reads the
//! new current one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::SnapshotMeta;

const MAGIC: &[u8; 4] = b"RSNP";
const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = MAGIC.len() + 1 + 4;
const SUFFIX: &str = ".snap";

/// A snapshot's meta and its `State::encode_snapshot` bytes.
pub(crate) type StoredSnapshot = (SnapshotMeta, Vec<u8>);

/// Where snapshots live and which one is current.
pub(crate) struct SnapshotStore {
    /// `data_dir/snapshots`, or `None` to keep the snapshot in memory (`-dev`).
    dir: Option<PathBuf>,
    /// The current snapshot's metadata, and its bytes when kept in memory.
    current: Mutex<Option<(SnapshotMeta, Option<Vec<u8>>)>>,
    /// Held for the whole of a save, so two saves never interleave their writes, switches and removals; `true`
    /// once closed.
    saving: tokio::sync::Mutex<bool>,
}

impl SnapshotStore {
    /// Opens the store and loads the newest snapshot, if any: its meta and state bytes.
    pub(crate) fn open(data_dir: Option<&Path>) -> io::Result<(SnapshotStore, Option<StoredSnapshot>)> {
        let Some(data_dir) = data_dir else {
            return Ok((SnapshotStore { dir: None, current: Mutex::new(None), saving: Default::default() }, None));
        };
        let dir = data_dir.join("snapshots");
        fs::create_dir_all(&dir)?;
        let mut newest: Option<(u64, PathBuf)> = None;
        for item in fs::read_dir(&dir)? {
            let path = item?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if name.ends_with(".tmp") {
                // Left by a crash mid-write; never published, so never needed.
                fs::remove_file(&path)?;
                continue;
            }
            let Some(index) = name.strip_suffix(SUFFIX).and_then(|n| n.parse::<u64>().ok()) else { continue };
            if newest.as_ref().is_none_or(|(best, _)| index > *best) {
                newest = Some((index, path));
            }
        }
        let loaded = match newest {
            Some((_, path)) => Some(read_file(&path)?),
            None => None,
        };
        if let Some((meta, data)) = &loaded {
            crate::telemetry::snapshot_current(data.len(), file_index(meta));
        }
        let current = loaded.as_ref().map(|(meta, _)| (meta.clone(), None));
        Ok((SnapshotStore { dir: Some(dir), current: Mutex::new(current), saving: Default::default() }, loaded))
    }

    /// Makes `data` the current snapshot, durably when file-backed, unless the current one is newer: then `data` is
    /// dropped and the current snapshot stays.
    pub(crate) async fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let saving = self.saving.lock().await;
        if *saving {
            return Err(io::Error::other("the snapshot store is closed: the server is shutting down"));
        }
        let index = file_index(meta);
        if self.current_meta().is_some_and(|current| file_index(&current) > index) {
            tracing::info!(index, "a snapshot older than the current one is not kept");
            return Ok(());
        }
        match &self.dir {
            Some(dir) => {
                let meta_bytes = postcard::to_allocvec(meta).map_err(invalid_data)?;
                let (target, owned) = (dir.clone(), data.to_vec());
                blocking(move || write_file(&target, index, &meta_bytes, &owned)).await?;
                self.switch_to(meta, None);
                let dir = dir.clone();
                blocking(move || remove_others(&dir, index)).await?;
                crate::telemetry::snapshot_current(data.len(), index);
            }
            None => {
                self.switch_to(meta, Some(data.to_vec()));
                crate::telemetry::snapshot_current(data.len(), index);
            }
        }
        Ok(())
    }

    /// The current snapshot's meta and bytes.
    pub(crate) async fn current(&self) -> io::Result<Option<StoredSnapshot>> {
        loop {
            let current = self.current.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let (meta, dir) = match (current, &self.dir) {
                (None, _) => return Ok(None),
                (Some((meta, Some(data))), _) => return Ok(Some((meta, data))),
                (Some((meta, None)), Some(dir)) => (meta, dir),
                (Some((_, None)), None) => return Err(io::Error::other("in-memory snapshot without data")),
            };
            let path = dir.join(file_name(file_index(&meta)));
            match blocking(move || read_file(&path)).await {
                Ok((_, data)) => return Ok(Some((meta, data))),
                // A save switched to a newer snapshot and removed this one after the meta was read: a file is
                // removed only once another is current, so reading again finds that one.
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.current_meta().is_some_and(|now| now != meta) => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for a save in progress to end and refuses every later one.
    pub(crate) async fn close(&self) {
        *self.saving.lock().await = true;
    }

    fn switch_to(&self, meta: &SnapshotMeta, kept: Option<Vec<u8>>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some((meta.clone(), kept));
    }

    fn current_meta(&self) -> Option<SnapshotMeta> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|(meta, _)| meta.clone())
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(io::Error::other)?
}

/// Snapshot files are named by the index of the last entry they cover.
fn file_index(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.as_ref().map_or(0, |id| id.index())
}

fn file_name(index: u64) -> String {
    format!("{index:020}{SUFFIX}")
}

fn write_file(dir: &Path, index: u64, meta: &[u8], data: &[u8]) -> io::Result<()> {
    let name = file_name(index);
    let tmp = dir.join(format!("{name}.tmp"));
    let meta_len = u32::try_from(meta.len()).map_err(invalid_data)?;
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&[FORMAT_VERSION])?;
        file.write_all(&meta_len.to_be_bytes())?;
        file.write_all(meta)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(&name))?;
    // The rename is durable only once the directory entry is.
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes every snapshot file but the one at `index`: once that one is durable and current, the others are
/// redundant (the log after it is what openraft replays).
fn remove_others(dir: &Path, index: u64) -> io::Result<()> {
    let name = file_name(index);
    for item in fs::read_dir(dir)? {
        let path = item?.path();
        let Some(other) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if other != name && other.ends_with(SUFFIX) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> io::Result<StoredSnapshot> {
    let bytes = fs::read(path)?;
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC || bytes[MAGIC.len()] != FORMAT_VERSION {
        return Err(invalid_data(format!("{} is not a roster snapshot (version {FORMAT_VERSION})", path.display())));
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&bytes[MAGIC.len() + 1..HEADER_LEN]);
    let meta_end = HEADER_LEN + u32::from_be_bytes(len_bytes) as usize;
    let meta_bytes = bytes.get(HEADER_LEN..meta_end).ok_or_else(|| invalid_data("snapshot meta truncated"))?;
    let meta = postcard::from_bytes(meta_bytes).map_err(invalid_data)?;
    Ok((meta, bytes[meta_end..].to_vec()))
}

fn invalid_data<E: Into<Box<dyn std::error::Error + Send + Sync>>>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests;
