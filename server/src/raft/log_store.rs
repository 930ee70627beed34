//! The Raft log on redb: entries, the vote, the committed pointer and the purge point, in `raft-log.redb`.
//!
//! # Durability
//! `append` writes every entry of the call in one write transaction committed with
//! `Durability::Immediate` (one fsync), and only then reports `IOFlushed::io_completed`: openraft
//! counts an entry towards a quorum only after that, so an acknowledged write survives a crash.
//! openraft hands `append` every entry that queued up while the previous fsync ran (up to
//! `Config::max_append_entries`), which is the group commit: under load one fsync covers many writes.
//!
//! The vote and truncation are committed durably too. The committed pointer is not written on its
//! own: `save_committed` only records it, and the next `append` writes it in the same transaction as
//! the entries. A transaction of its own cost ~0.3 ms per write (measured on an isolated PUT: 1.59 ms
//! against 1.30 ms), and a stale pointer after a crash is safe: it is a lower bound, and openraft
//! re-learns the rest from the leader (or, alone, by committing its next entry). Purges are not durable
//! either: losing one only makes openraft re-purge.
//!
//! redb calls block, so write transactions run on the blocking pool; reads are short and run inline.
//!
//! # Size
//! The log's entry count and byte size are kept as it changes, never by scanning it: the count is the table's
//! length (redb keeps it in the table's root), and the bytes are a running total in `meta`, moved in the same
//! transaction as the entries it counts (an append adds what it wrote, less any entry it replaced; a truncation or
//! purge subtracts what it removed). The totals feed the `roster.raft.log.*` gauges (`crate::telemetry`).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::{Entry, LogCommand, LogId, TypeConfig, Vote};

/// The log's file name in the data dir.
pub(crate) const LOG_FILE: &str = "raft-log.redb";

/// Log entries by index, each a postcard-encoded `Entry`.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// Small records: `vote`, `committed`, `last_purged`, each postcard-encoded.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
/// The running total of the encoded entries' bytes in `logs` (a postcard `u64`).
const KEY_LOG_BYTES: &str = "log_bytes";

/// The log store. Clones share the database, so a clone serves as the log reader.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Db>,
    /// The committed pointer openraft reported last, not yet written (it rides on the next append).
    pending_committed: Arc<std::sync::Mutex<Option<Option<LogId>>>>,
    /// The file, for the error log line (`None` in memory).
    path: Option<Arc<Path>>,
    /// The log's size as of the last committed write, mirrored from the database for the gauges.
    size: Arc<std::sync::Mutex<LogSize>>,
    /// Tests set this to make the next append fail as a full disk would.
    #[cfg(test)]
    pub(crate) fail_next_append: Arc<std::sync::atomic::AtomicBool>,
}

/// The database plus a signal sent once it is closed.
///
/// openraft drops its last log reader on a task it does not join, and closing redb writes and
/// fsyncs a header, so "the Arc is gone" does not mean "the file is unlocked". Reopening the same
/// directory in-process (a restart) waits for this signal instead.
struct Db {
    /// Declared first: fields drop in order, so the database is fully closed before `_closed` fires.
    database: Database,
    _closed: ClosedSignal,
}

struct ClosedSignal(Option<oneshot::Sender<()>>);

impl Drop for ClosedSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            // Nobody waiting (no graceful shutdown in progress) is fine.
            let _ = tx.send(());
        }
    }
}

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.database
    }
}

impl LogStore {
    /// Opens (or creates) `raft-log.redb` in `dir`, or an in-memory log when `dir` is `None`.
    ///
    /// The receiver resolves once the last clone is dropped and the database file is closed.
    pub(crate) fn open(dir: Option<&Path>) -> io::Result<(LogStore, oneshot::Receiver<()>)> {
        let db = match dir {
            Some(dir) => Database::create(dir.join(LOG_FILE)).map_err(io::Error::other)?,
            None => Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(io::Error::other)?,
        };
        // Create both tables up front so readers never see "table does not exist".
        let txn = db.begin_write().map_err(io::Error::other)?;
        txn.open_table(LOGS).map_err(io::Error::other)?;
        txn.open_table(META).map_err(io::Error::other)?;
        let size = LogSize::stored(&txn)?;
        txn.commit().map_err(io::Error::other)?;
        let (tx, closed) = oneshot::channel();
        let db = Arc::new(Db { database: db, _closed: ClosedSignal(Some(tx)) });
        crate::telemetry::log_size(size.entries, size.bytes, size.last_index);
        let store = LogStore {
            db,
            pending_committed: Arc::default(),
            path: dir.map(|dir| Arc::from(dir.join(LOG_FILE))),
            size: Arc::new(std::sync::Mutex::new(size)),
            #[cfg(test)]
            fail_next_append: Arc::default(),
        };
        Ok((store, closed))
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let txn = self.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(META).map_err(io::Error::other)?;
        match table.get(key).map_err(io::Error::other)? {
            Some(bytes) => decode(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The log's entry count, encoded bytes and last index, as of the last committed write.
    #[cfg(test)]
    pub(crate) fn size(&self) -> LogSize {
        *self.size.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `write` in one write transaction on the blocking pool and commits it.
    async fn write<F>(&self, durability: Durability, write: F) -> io::Result<()>
    where
        F: FnOnce(&redb::WriteTransaction) -> io::Result<()> + Send + 'static,
    {
        self.write_sized(durability, move |txn| write(txn).map(|()| 0)).await
    }

    /// Runs `write` in one write transaction on the blocking pool and commits it, with the byte total moved by what
    /// `write` returns (bytes added less bytes removed) in the same transaction; then publishes the new size.
    async fn write_sized<F>(&self, durability: Durability, write: F) -> io::Result<()>
    where
        F: FnOnce(&redb::WriteTransaction) -> io::Result<i64> + Send + 'static,
    {
        let db = self.db.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut txn = db.begin_write().map_err(io::Error::other)?;
            txn.set_durability(durability).map_err(io::Error::other)?;
            let delta = write(&txn)?;
            let size = LogSize::moved(&txn, delta)?;
            txn.commit().map_err(io::Error::other)?;
            Ok(size)
        });
        let res = task.await.map_err(io::Error::other).and_then(|res| res);
        let res = res.map(|size: LogSize| {
            *self.size.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = size;
            crate::telemetry::log_size(size.entries, size.bytes, size.last_index);
        });
        res.map_err(|e| {
            // openraft stops this server's Raft on any log write error (`Fatal::StorageError`): it can no longer
            // promise that what it acknowledges is on disk. Say so loudly, with the file, since the operator must act.
            let file = self.path.as_ref().map_or_else(|| "the in-memory log".to_owned(), |p| p.display().to_string());
            tracing::error!(
                %file,
                error = %e,
                "RAFT LOG WRITE FAILED: this server stops serving Raft and reports itself unhealthy; no write it could \
                 not persist is acknowledged. Free space or fix the disk, then restart it"
            );
            // The file rides in the error too, so the failure Raft reports (`RaftStats::failure`) names it.
            io::Error::new(e.kind(), format!("{file}: {e}"))
        })
    }

    /// Appends `entries` (and the pending committed pointer) in one durable transaction.
    async fn write_entries(&self, entries: Vec<Entry>) -> io::Result<()> {
        // A test's injected failure aborts the transaction where a full disk would fail its commit.
        #[cfg(test)]
        let injected = self.fail_next_append.swap(false, std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(test))]
        let injected = false;
        let start = std::time::Instant::now();
        let n_entries = entries.len();
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((entry.log_id.index(), encode(&entry)?));
        }
        let committed = self.pending_committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let committed = committed.map(|committed| encode(&committed)).transpose()?;
        let res = self
            .write_sized(Durability::Immediate, move |txn| {
                if injected {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "No space left on device (injected by a test)",
                    ));
                }
                let mut table = txn.open_table(LOGS).map_err(io::Error::other)?;
                let mut delta = 0i64;
                for (index, bytes) in &encoded {
                    // An entry written again at the same index (after a truncation openraft did not report) replaces
                    // the old one, whose bytes leave the total.
                    let replaced = table.insert(*index, bytes.as_slice()).map_err(io::Error::other)?;
                    delta += byte_len(bytes) - replaced.map_or(0, |old| byte_len(old.value()));
                }
                if let Some(committed) = &committed {
                    let mut meta = txn.open_table(META).map_err(io::Error::other)?;
                    meta.insert(KEY_COMMITTED, committed.as_slice()).map_err(io::Error::other)?;
                }
                Ok(delta)
            })
            .await;
        if res.is_ok() {
            crate::telemetry::log_stored(start, n_entries);
        }
        res
    }

    /// Appends `entry` after the last one before Raft starts (outage recovery's configuration entry), durably.
    pub(crate) async fn append_before_start(&self, entry: Entry) -> io::Result<()> {
        self.write_entries(vec![entry]).await
    }

    async fn put_meta<T: Serialize>(&self, key: &'static str, value: &T, durability: Durability) -> io::Result<()> {
        let bytes = encode(value)?;
        self.write(durability, move |txn| {
            let mut table = txn.open_table(META).map_err(io::Error::other)?;
            table.insert(key, bytes.as_slice()).map_err(io::Error::other)?;
            Ok(())
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let txn = self.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(LOGS).map_err(io::Error::other)?;
        let bounds = (copy_bound(range.start_bound()), copy_bound(range.end_bound()));
        let mut entries = Vec::new();
        for item in table.range::<u64>(bounds).map_err(io::Error::other)? {
            let (_, value) = item.map_err(io::Error::other)?;
            entries.push(decode_entry(value.value())?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let txn = self.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(LOGS).map_err(io::Error::other)?;
        let last = match table.last().map_err(io::Error::other)? {
            Some((_, value)) => Some(decode_entry(value.value())?.log_id),
            None => None,
        };
        // With every entry purged, the last log id is the purge point.
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        // A vote must survive a crash, or a node could vote twice in one term.
        self.put_meta(KEY_VOTE, vote, Durability::Immediate).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        *self.pending_committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        if let Some(pending) = *self.pending_committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Ok(pending);
        }
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let res = self.write_entries(entries.into_iter().collect()).await;
        // The commit above returned, so the entries are on disk: only now may openraft count them.
        match res {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index() + 1);
        self.write_sized(Durability::Immediate, move |txn| {
            let mut table = txn.open_table(LOGS).map_err(io::Error::other)?;
            remove_counted(&mut table, from..)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id.index();
        let marker = encode(&log_id)?;
        // The purge point and the deletion commit together, so no reader sees a gap without it.
        self.write_sized(Durability::None, move |txn| {
            let mut meta = txn.open_table(META).map_err(io::Error::other)?;
            meta.insert(KEY_LAST_PURGED, marker.as_slice()).map_err(io::Error::other)?;
            let mut logs = txn.open_table(LOGS).map_err(io::Error::other)?;
            remove_counted(&mut logs, ..=upto)
        })
        .await
    }
}

/// The log's size: what the `roster.raft.log.*` gauges and `consul.raft.last_index` report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogSize {
    /// Entries held (purged ones are gone).
    pub(crate) entries: u64,
    /// Their encoded bytes.
    pub(crate) bytes: u64,
    /// The last entry's index; 0 with no entries.
    pub(crate) last_index: u64,
}

impl LogSize {
    /// The size as `txn` sees it. A log from before the byte total was kept gets it counted once, here, and stored.
    fn stored(txn: &redb::WriteTransaction) -> io::Result<LogSize> {
        let table = txn.open_table(LOGS).map_err(io::Error::other)?;
        let mut meta = txn.open_table(META).map_err(io::Error::other)?;
        let stored: Option<u64> = match meta.get(KEY_LOG_BYTES).map_err(io::Error::other)? {
            Some(bytes) => Some(decode(bytes.value())?),
            None => None,
        };
        let bytes = match stored {
            Some(bytes) => bytes,
            None => {
                let mut bytes = 0u64;
                for item in table.iter().map_err(io::Error::other)? {
                    bytes += item.map_err(io::Error::other)?.1.value().len() as u64;
                }
                meta.insert(KEY_LOG_BYTES, encode(&bytes)?.as_slice()).map_err(io::Error::other)?;
                bytes
            }
        };
        let entries = table.len().map_err(io::Error::other)?;
        let last_index = table.last().map_err(io::Error::other)?.map_or(0, |(index, _)| index.value());
        Ok(LogSize { entries, bytes, last_index })
    }

    /// Moves the stored byte total by `delta` in `txn` and returns the size `txn` will commit.
    fn moved(txn: &redb::WriteTransaction, delta: i64) -> io::Result<LogSize> {
        let before = LogSize::stored(txn)?;
        let bytes = before.bytes.saturating_add_signed(delta);
        if delta != 0 {
            let mut meta = txn.open_table(META).map_err(io::Error::other)?;
            meta.insert(KEY_LOG_BYTES, encode(&bytes)?.as_slice()).map_err(io::Error::other)?;
        }
        Ok(LogSize { bytes, ..before })
    }
}

/// Removes the entries in `range`, returning minus their bytes (the change to the byte total).
fn remove_counted(table: &mut redb::Table<u64, &[u8]>, range: impl RangeBounds<u64>) -> io::Result<i64> {
    let mut removed = 0i64;
    table
        .retain_in(range, |_, value| {
            removed += byte_len(value);
            false
        })
        .map_err(io::Error::other)?;
    Ok(-removed)
}

/// A stored entry's length as a signed byte delta (an entry is at most a few MiB, far inside `i64`).
fn byte_len(bytes: &[u8]) -> i64 {
    i64::try_from(bytes.len()).unwrap_or(i64::MAX)
}

fn copy_bound(bound: Bound<&u64>) -> Bound<u64> {
    match bound {
        Bound::Included(x) => Bound::Included(*x),
        Bound::Excluded(x) => Bound::Excluded(*x),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Decodes a stored entry; one of a format this server cannot read is an error naming the versions (a data dir
/// from a newer roster is refused at start by its format marker, so this is a second line of defence).
fn decode_entry(bytes: &[u8]) -> io::Result<Entry> {
    let entry: Entry = decode(bytes)?;
    match LogCommand::unreadable(&entry) {
        Some(unreadable) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{LOG_FILE}: entry {}: {}", entry.log_id.index(), unreadable.why),
        )),
        None => Ok(entry),
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests;
