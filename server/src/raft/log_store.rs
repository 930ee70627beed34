//! The Raft log on redb: entries, the vote, the committed pointer and the purge point, in `raft-log.redb`.
//!
//! # Durability
//! `append` hands its entries to the log's writer thread (`writer.rs`) and returns at once; they are readable from
//! memory until their transaction commits. The writer commits every append queued behind the one it is on in one
//! write transaction with `Durability::Immediate` (one fsync), and only then reports each one's
//! `IOFlushed::io_completed`: openraft counts an entry towards a quorum only after that, so an acknowledged write
//! survives a crash. That is the group commit, and openraft's core is never held up by it: while one fsync runs,
//! the core goes on taking writes, applying what is committed and answering clients, and its next appends queue.
//! Every other change (vote, truncation, purge) goes through the same thread, so all of them reach the file in the
//! order openraft asked for them.
//!
//! The vote and truncation are committed durably too. The committed pointer is not written on its
//! own: `save_committed` only records it, and the next `append` writes it in the same transaction as
//! the entries. A transaction of its own cost ~0.3 ms per write (measured on an isolated PUT: 1.59 ms
//! against 1.30 ms), and a stale pointer after a crash is safe: it is a lower bound, and openraft
//! re-learns the rest from the leader (or, alone, by committing its next entry). Purges are not durable
//! either: losing one only makes openraft re-purge.
//!
//! redb calls block, so write transactions run on the writer thread; reads are short and run inline.
//!
//! # Size
//! The log's entry count and byte size are kept as it changes, never by scanning it: the count is the table's
//! length (redb keeps it in the table's root), and the bytes are a running total in `meta`, moved in the same
//! transaction as the entries it counts (an append adds what it wrote, less any entry it replaced; a truncation or
//! purge subtracts what it removed). The totals feed the `roster.raft.log.*` gauges (`crate::telemetry`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, mpsc};

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

/// The log store. Clones share the database and the writer, so a clone serves as the log reader.
#[derive(Clone)]
pub(crate) struct LogStore {
    shared: Arc<writer::Shared>,
    jobs: mpsc::Sender<writer::Job>,
    /// Numbers appends, so the writer removes from `pending` only what it committed.
    next_seq: Arc<AtomicU64>,
    /// The committed pointer openraft reported last, not yet written (it rides on the next append).
    pending_committed: Arc<std::sync::Mutex<Option<Option<LogId>>>>,
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
        let shared = Arc::new(writer::Shared {
            db,
            pending: std::sync::Mutex::default(),
            size: std::sync::Mutex::new(size),
            path: dir.map(|dir| Arc::from(dir.join(LOG_FILE))),
            #[cfg(test)]
            commits: std::sync::atomic::AtomicU64::default(),
        });
        let store = LogStore {
            jobs: writer::spawn(shared.clone())?,
            shared,
            next_seq: Arc::default(),
            pending_committed: Arc::default(),
            #[cfg(test)]
            fail_next_append: Arc::default(),
        };
        Ok((store, closed))
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let txn = self.shared.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(META).map_err(io::Error::other)?;
        match table.get(key).map_err(io::Error::other)? {
            Some(bytes) => decode(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The log's entry count, encoded bytes and last index, as of the last committed write.
    #[cfg(test)]
    pub(crate) fn size(&self) -> LogSize {
        *self.shared.size.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Transactions the writer has committed.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::SeqCst)
    }

    /// Runs `write` in one write transaction on the writer thread, after every change asked for before it.
    async fn write<F>(&self, durability: Durability, write: F) -> io::Result<()>
    where
        F: FnOnce(&redb::WriteTransaction) -> io::Result<()> + Send + 'static,
    {
        self.write_sized(durability, move |txn| write(txn).map(|()| 0)).await
    }

    /// `write`, with the byte total moved by what `write` returns (bytes added less bytes removed) in the same
    /// transaction.
    async fn write_sized<F>(&self, durability: Durability, write: F) -> io::Result<()>
    where
        F: FnOnce(&redb::WriteTransaction) -> io::Result<i64> + Send + 'static,
    {
        let (reply, done) = oneshot::channel();
        self.send(writer::Job::Write { durability, write: Box::new(write), reply })?;
        done.await.map_err(|_| writer_gone())?
    }

    fn send(&self, job: writer::Job) -> io::Result<()> {
        self.jobs.send(job).map_err(|_| writer_gone())
    }

    /// Makes `entries` readable and hands them, with the pending committed pointer, to the writer; `done` hears when
    /// they are on disk.
    fn submit(&self, entries: Vec<Entry>, done: writer::Done) -> io::Result<()> {
        // A test's injected failure aborts the transaction where a full disk would fail its commit.
        #[cfg(test)]
        let injected = self.fail_next_append.swap(false, Ordering::SeqCst);
        #[cfg(not(test))]
        let injected = false;
        let start = std::time::Instant::now();
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in &entries {
            encoded.push((entry.log_id.index(), Arc::<[u8]>::from(encode(entry)?)));
        }
        let committed = self.pending_committed.lock().unwrap_or_else(PoisonError::into_inner).take();
        let committed = committed.map(|committed| encode(&committed)).transpose()?;
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (index, bytes) in &encoded {
                pending.insert(*index, (seq, bytes.clone()));
            }
        }
        self.send(writer::Job::Append(writer::Append { entries: encoded, seq, committed, injected, start, done }))
    }

    /// Appends `entry` after the last one before Raft starts (outage recovery's configuration entry), durably.
    pub(crate) async fn append_before_start(&self, entry: Entry) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.submit(vec![entry], writer::Done::Reply(reply))?;
        done.await.map_err(|_| writer_gone())?
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
        let bounds = (copy_bound(range.start_bound()), copy_bound(range.end_bound()));
        // Pending entries first, then the database: an entry leaves `pending` only after its commit, so one that
        // leaves between the two reads is in the database's snapshot.
        let pending: Vec<(u64, Arc<[u8]>)> = {
            let pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.range(bounds).map(|(index, (_, bytes))| (*index, bytes.clone())).collect()
        };
        let txn = self.shared.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(LOGS).map_err(io::Error::other)?;
        let mut entries = BTreeMap::new();
        for item in table.range::<u64>(bounds).map_err(io::Error::other)? {
            let (index, value) = item.map_err(io::Error::other)?;
            entries.insert(index.value(), decode_entry(value.value())?);
        }
        // What is pending is newer than what the database holds at the same index.
        for (index, bytes) in pending {
            entries.insert(index, decode_entry(&bytes)?);
        }
        Ok(entries.into_values().collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let pending_last = {
            let pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.last_key_value().map(|(_, (_, bytes))| bytes.clone())
        };
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last = match pending_last {
            Some(bytes) => Some(decode_entry(&bytes)?.log_id),
            None => {
                let txn = self.shared.db.begin_read().map_err(io::Error::other)?;
                let table = txn.open_table(LOGS).map_err(io::Error::other)?;
                match table.last().map_err(io::Error::other)? {
                    Some((_, value)) => Some(decode_entry(value.value())?.log_id),
                    None => None,
                }
            }
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
        // Only the writer's commit tells openraft the entries are on disk; until then it may read them, not count them.
        self.submit(entries.into_iter().collect(), writer::Done::Flushed(callback))
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

fn writer_gone() -> io::Error {
    io::Error::other("the Raft log's writer thread is gone")
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
mod writer;
