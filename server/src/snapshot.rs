//! Snapshot save and restore for `/v1/snapshot`: the archive of the applied state at one index, the handles a client
//! agent reads an archive through in bounded chunks, and the chunked restore commands every caller proposes.
//!
//! # Save
//! The state is encoded under the replica's read lock together with the index and membership it was applied up to,
//! so the archive is exactly one applied index however many writes arrive meanwhile; the tar.gz is then streamed out
//! of that encoding with the lock released.
//!
//! # Client agents
//! A client's RPC frames are held to 5 MiB, so `ClientSnapshotOpen` has the server build the archive once and keep it
//! under a random handle, and `ClientSnapshotRead` returns it `READ_CHUNK` bytes at a time. The token is checked when
//! the handle is made; the handle (122 random bits) is then the capability. A handle is dropped once its last byte was
//! read, after `HANDLE_IDLE` without a read, or never made when `MAX_HANDLES` are open.
//!
//! # Restore
//! `restore_with` proposes `RestoreBegin`, the bytes in `MAX_RESTORE_CHUNK` pieces, then `RestoreCommit`
//! (`roster_kv`'s `state/restore.rs` says what apply checks), through whatever write path the caller has: the server's
//! own tokened write, or `Remote`'s. A later restore's begin replaces an unfinished one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use roster_kv::{Command, CommandResult, MAX_RESTORE_CHUNK};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::raft::archive_position;
use crate::replica::Replica;

/// The largest piece of an archive one `ClientSnapshotRead` answers: well inside a client's frame limit.
pub(crate) const READ_CHUNK: usize = 4 << 20;
/// How long an open handle lives without a read.
const HANDLE_IDLE: Duration = Duration::from_secs(60);
/// How many archives a server holds for client agents at once; each is a whole compressed state.
const MAX_HANDLES: usize = 4;

/// The archive of the applied state and the index it covers. `unix_ms` names the snapshot (Consul's ID).
pub(crate) fn save(replica: &Replica, unix_ms: u64) -> Result<(Vec<u8>, u64)> {
    let (meta, state) = replica.read_applied(|applied| {
        let (index, term, servers) = archive_position(&applied.meta);
        let meta = roster_snapshot::Meta {
            version: roster_snapshot::FORMAT_VERSION,
            id: format!("{term}-{index}-{unix_ms}"),
            index,
            term,
            servers: servers
                .into_iter()
                .map(|s| roster_snapshot::Server { id: s.id.to_string(), address: s.addr.to_string(), voter: s.voter })
                .collect(),
            state_version: roster_kv::SNAPSHOT_VERSION,
            state_size: 0,
        };
        (meta, applied.state.encode_snapshot())
    });
    let archive = roster_snapshot::write(Vec::new(), &meta, &state)?;
    Ok((archive, meta.index))
}

/// Proposes the restore of `state` (`State::encode_snapshot` bytes) as `id` through `write`.
pub(crate) async fn restore_with<F, Fut>(id: &str, state: &[u8], write: F) -> Result<()>
where
    F: Fn(Command) -> Fut,
    Fut: Future<Output = Result<CommandResult>>,
{
    let sha256: [u8; 32] = Sha256::digest(state).into();
    let begin = Command::RestoreBegin { id: id.to_owned(), len: state.len() as u64, sha256 };
    let chunks = state.chunks(MAX_RESTORE_CHUNK).enumerate().map(|(i, bytes)| Command::RestoreChunk {
        id: id.to_owned(),
        offset: (i * MAX_RESTORE_CHUNK) as u64,
        bytes: bytes.to_vec(),
    });
    let commit = Command::RestoreCommit { id: id.to_owned() };
    for cmd in std::iter::once(begin).chain(chunks).chain(std::iter::once(commit)) {
        match write(cmd).await? {
            CommandResult::Bool(true) => {}
            CommandResult::Bool(false) => return Err(Error::Rejected("restore refused".into())),
            CommandResult::Rejected(why) => return Err(Error::Rejected(why)),
        }
    }
    Ok(())
}

/// Archives held for client agents, by handle.
pub(crate) struct Handles {
    open: Mutex<HashMap<String, Open>>,
    /// The most one read answers: `READ_CHUNK`, less in tests so a small archive spans many reads.
    read_chunk: AtomicUsize,
}

impl Default for Handles {
    fn default() -> Handles {
        Handles { open: Mutex::default(), read_chunk: AtomicUsize::new(READ_CHUNK) }
    }
}

struct Open {
    archive: Arc<Vec<u8>>,
    last_read: Instant,
}

impl Handles {
    /// Keeps `archive` under a new handle, or refuses when `MAX_HANDLES` are open.
    pub(crate) fn insert(&self, archive: Vec<u8>, now: Instant) -> Result<String> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, o| now.duration_since(o.last_read) < HANDLE_IDLE);
        if open.len() >= MAX_HANDLES {
            return Err(Error::Rejected(format!(
                "too many snapshots being read from this server ({MAX_HANDLES}); try again later"
            )));
        }
        let handle = uuid::Uuid::new_v4().to_string();
        open.insert(handle.clone(), Open { archive: Arc::new(archive), last_read: now });
        Ok(handle)
    }

    /// Up to `READ_CHUNK` bytes of the archive under `handle` from `offset`; the handle goes once its end was read.
    pub(crate) fn read(&self, handle: &str, offset: u64, now: Instant) -> Result<Vec<u8>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, o| now.duration_since(o.last_read) < HANDLE_IDLE);
        let Some(entry) = open.get_mut(handle) else {
            return Err(Error::Rejected("snapshot handle unknown or expired".into()));
        };
        entry.last_read = now;
        let archive = entry.archive.clone();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(archive.len());
        let end = start.saturating_add(self.read_chunk.load(Ordering::Relaxed)).min(archive.len());
        if end == archive.len() {
            open.remove(handle);
        }
        Ok(archive[start..end].to_vec())
    }

    /// Makes reads answer at most `n` bytes.
    #[cfg(test)]
    pub(crate) fn set_read_chunk(&self, n: usize) {
        self.read_chunk.store(n, Ordering::Relaxed);
    }

    /// How many handles are open.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests;
