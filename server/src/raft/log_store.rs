//! The Raft log in an append-only file of checksummed records: entries, the vote, the committed pointer, truncations
//! and the purge point, in `raft-log.wal`.
//!
//! # Durability
//! `append` hands its entries to the log's writer thread (`writer.rs`) and returns at once; they are readable from
//! memory until they are on disk. The writer writes every append queued behind the one it is on with one `pwrite`
//! and one `fdatasync`, and only then reports each one's `IOFlushed::io_completed`: openraft counts an entry towards a
//! quorum only after that, so an acknowledged write survives a crash. That is the group commit, and openraft's core
//! is never held up by it: while one sync runs, the core goes on taking writes, applying what is committed and
//! answering clients, and its next appends queue. Every other change (vote, truncation, purge) is a record through
//! the same thread, so all of them reach the file in the order openraft asked for them.
//!
//! Every write is one record and is synced before the next begins (so a replay can tell a crash's torn last record
//! from damage, `wal.rs`; a lock file, `raft-log.lock`, keeps a second server off the log): the vote and truncations
//! before they are reported, purges too, though losing one would only make openraft purge again. The committed
//! pointer is not written on its own: `save_committed` only records it, and the next append carries it in the same
//! record as the entries (a stale pointer after a crash is safe: it is a lower bound, and openraft re-learns the rest
//! from the leader, or, alone, by committing its next entry).
//!
//! # Why a file of records, not a database
//! The log was a redb table until a profile of writes through a client agent showed the three servers' log writers
//! taking 28 % of the cluster's CPU: a redb commit cost 260-300 µs of CPU (copy-on-write pages, the freed-page tree,
//! page checksums, nine `pwrite`s), where one `pwrite` and one `fdatasync` of the same entries cost 60-90 µs on the
//! same disk. A Raft log is written at its end, truncated at its end and purged at its start, which a file of
//! records does with one write each; docs/performance.md has the measurements. A data dir that still holds
//! `raft-log.redb` has it moved into `raft-log.wal` once, at start (`legacy.rs`).
//!
//! # Reading and size
//! The entries' places in the file are kept in memory (an index of offsets, 8 bytes of key and 12 of place per
//! entry; the log holds at most `SNAPSHOT_EVERY` + 1 024 entries after a purge); reads `pread` them, one read per
//! run of adjacent entries. The file is rewritten without its dead records once it is past 64 MiB and more than
//! half dead (`writer.rs`), after the purge or truncation that made it so has been answered. The log's entry count
//! and byte size are kept as it changes, never by scanning it (`indexed.rs`), and feed the `roster.raft.log.*`
//! gauges (`crate::telemetry`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, mpsc};

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::wire::APPEND_BATCH_BYTES;
use super::{Entry, LogCommand, LogId, TypeConfig, Vote};
use indexed::ByteLen as _;
use writer::{Change, Log, Stored};

/// The log's file name in the data dir.
pub(crate) const LOG_FILE: &str = "raft-log.wal";
/// The file whose lock keeps a second server off the log (the log file itself is replaced by renames).
const LOCK_FILE: &str = "raft-log.lock";

/// The log store. Clones share the log and the writer, so a clone serves as the log reader.
#[derive(Clone)]
pub(crate) struct LogStore {
    shared: Arc<writer::Shared>,
    jobs: mpsc::Sender<writer::Job>,
    /// Numbers appends, so the writer removes from `pending` only what it synced.
    next_seq: Arc<AtomicU64>,
    /// The committed pointer openraft reported last, not yet written (it rides on the next append).
    pending_committed: Arc<std::sync::Mutex<Option<Option<LogId>>>>,
    /// Tests set this to make the next append fail as a full disk would.
    #[cfg(test)]
    pub(crate) fail_next_append: Arc<std::sync::Mutex<Option<InjectedFailure>>>,
}

/// A test's failure of the next append: it fails as a full disk would, once `held_until` (if any) is sent to or
/// dropped; until then the writer thread waits, as on a disk that hangs before it errs.
#[cfg(test)]
pub(crate) struct InjectedFailure {
    pub(crate) held_until: Option<std::sync::mpsc::Receiver<()>>,
}

/// Fires once the log's file is closed. (A file a compaction replaced, no longer at the log's path, may close a moment
/// later on a thread of its own.)
///
/// openraft drops its last log reader on a task it does not join, and the file's lock goes with the file, so "the
/// Arc is gone" does not mean "the file is unlocked". Reopening the same directory in-process (a restart) waits for
/// this signal instead.
struct ClosedSignal(Option<oneshot::Sender<()>>);

impl Drop for ClosedSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            // Nobody waiting (no graceful shutdown in progress) is fine.
            let _ = tx.send(());
        }
    }
}

/// Whether `dir` holds a Raft log (in this format or the one before it).
pub(crate) fn exists(dir: &Path) -> bool {
    dir.join(LOG_FILE).exists() || dir.join(legacy::LEGACY_LOG_FILE).exists()
}

impl LogStore {
    /// Opens (or creates) `raft-log.wal` in `dir`, or an in-memory log when `dir` is `None`.
    ///
    /// The receiver resolves once the last clone is dropped and the file is closed.
    pub(crate) fn open(dir: Option<&Path>) -> io::Result<(LogStore, oneshot::Receiver<()>)> {
        let opened = match dir {
            Some(dir) => open_file(dir).map(Some).map_err(|e| {
                // Name the file in every failure to open it (some name it already, with more context).
                let path = dir.join(LOG_FILE);
                let message = e.to_string();
                if message.contains(&*path.to_string_lossy()) {
                    e
                } else {
                    io::Error::new(e.kind(), format!("{}: {message}", path.display()))
                }
            })?,
            None => None,
        };
        let (file, end, salt, log, lock) = match opened {
            Some(Opened { file, end, salt, log, lock }) => (Some(file), end, salt, log, Some(lock)),
            None => (None, 0, 0, Log::default(), None),
        };
        let size = log.size();
        crate::telemetry::log_size(size.entries, size.bytes, size.last_index);
        let (tx, closed) = oneshot::channel();
        let shared = Arc::new(writer::Shared {
            pending: std::sync::Mutex::default(),
            log: std::sync::Mutex::new(log),
            path: dir.map(|dir| Arc::from(dir.join(LOG_FILE))),
            #[cfg(test)]
            commits: std::sync::atomic::AtomicU64::default(),
            #[cfg(test)]
            compaction_gate: std::sync::Mutex::default(),
            #[cfg(test)]
            compaction_thread_runs: std::sync::atomic::AtomicU64::default(),
            _lock: lock,
            _closed: ClosedSignal(Some(tx)),
        });
        let store = LogStore {
            jobs: writer::spawn(shared.clone(), file, end, salt)?,
            shared,
            next_seq: Arc::default(),
            pending_committed: Arc::default(),
            #[cfg(test)]
            fail_next_append: Arc::default(),
        };
        Ok((store, closed))
    }

    /// The log's entry count, encoded bytes and last index, as of the last write on disk.
    #[cfg(test)]
    pub(crate) fn size(&self) -> LogSize {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).size()
    }

    /// Writes the writer has finished.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::SeqCst)
    }

    /// Runs `hold` on the writer thread after every change asked for before it, holding the writer until it returns.
    #[cfg(test)]
    async fn hold_writer(&self, hold: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.send(writer::Job::Hold { hold: Box::new(hold), reply })?;
        done.await.map_err(|_| writer_gone())?
    }

    /// Makes `change` on the writer thread, after every change asked for before it.
    async fn change(&self, change: Change) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.send(writer::Job::Change { change, reply })?;
        done.await.map_err(|_| writer_gone())?
    }

    fn send(&self, job: writer::Job) -> io::Result<()> {
        self.jobs.send(job).map_err(|_| writer_gone())
    }

    /// Makes `entries` readable and hands them, with the pending committed pointer, to the writer; `done` hears when
    /// they are on disk.
    fn submit(&self, entries: Vec<Entry>, done: writer::Done) -> io::Result<()> {
        // A test's injected failure fails the write where a full disk would.
        #[cfg(test)]
        let injected = self.fail_next_append.lock().unwrap_or_else(PoisonError::into_inner).take();
        let start = std::time::Instant::now();
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in &entries {
            encoded.push((entry.log_id.index(), Arc::<[u8]>::from(encode_entry(entry)?)));
        }
        let committed = self.pending_committed.lock().unwrap_or_else(PoisonError::into_inner).take();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (index, bytes) in &encoded {
                pending.insert(*index, (seq, bytes.clone()));
            }
        }
        self.send(writer::Job::Append(writer::Append {
            entries: encoded,
            seq,
            committed,
            #[cfg(test)]
            injected,
            start,
            done,
        }))
    }

    /// Appends `entry` after the last one before Raft starts (outage recovery's configuration entry), durably.
    pub(crate) async fn append_before_start(&self, entry: Entry) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.submit(vec![entry], writer::Done::Reply(reply))?;
        done.await.map_err(|_| writer_gone())?
    }

    /// The entries in `bounds`; with `limit`, only the longest run from the first whose encoded bytes add up to at
    /// most `limit` (never fewer than one entry).
    fn read_entries(&self, bounds: (Bound<u64>, Bound<u64>), limit: Option<u64>) -> io::Result<Vec<Entry>> {
        // Both copied under both locks, so the read is of one moment, as openraft's contract asks: read one after
        // the other, a truncation and a newer append could land between them and the two halves disagree. The writer
        // never holds the two together, so this cannot deadlock.
        let (mut pending, (file, mut stored)) = {
            let pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let copied: Vec<(u64, Arc<[u8]>)> =
                pending.range(bounds).map(|(index, (_, bytes))| (*index, bytes.clone())).collect();
            (copied, self.stored(bounds))
        };
        if let Some(last) = limit.and_then(|limit| last_within(&pending, &stored, limit)) {
            pending.retain(|(index, _)| *index <= last);
            stored.retain(|(index, _)| *index <= last);
        }
        let mut entries = BTreeMap::new();
        read_stored(file.as_deref(), stored, &mut entries)?;
        // What is pending is newer than what the log holds at the same index.
        for (index, bytes) in pending {
            entries.insert(index, decode_entry(&bytes)?);
        }
        Ok(entries.into_values().collect())
    }

    /// The stored entries in `bounds` with the file they are read from.
    fn stored(&self, bounds: (Bound<u64>, Bound<u64>)) -> (Option<Arc<File>>, Vec<(u64, Stored)>) {
        let log = self.shared.log.lock().unwrap_or_else(PoisonError::into_inner);
        (log.file.clone(), log.entries.map().range(bounds).map(|(index, stored)| (*index, stored.clone())).collect())
    }
}

/// The log, opened and replayed: its file, where the next record goes, its salt, and the lock file held for it.
struct Opened {
    file: Arc<File>,
    end: u64,
    salt: u64,
    log: Log,
    lock: File,
}

/// Opens the log in `dir` under its lock file, making it first (or moving a redb log into it) if there is none,
/// and replays it.
fn open_file(dir: &Path) -> io::Result<Opened> {
    let path = dir.join(LOG_FILE);
    let lock = wal::create(&dir.join(LOCK_FILE))?;
    wal::lock(&lock, &path)?;
    // A new log, a move or a compaction a crash interrupted leaves its unfinished file; the log is what it would
    // have replaced (or, for a new one, nothing yet).
    match std::fs::remove_file(wal::tmp_path(&path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if !path.exists() {
        // Made whole beside where it goes and renamed into place, so the log file either is not there or has its
        // header.
        let salt = wal::new_salt();
        if dir.join(legacy::LEGACY_LOG_FILE).exists() {
            legacy::move_into(dir, &path, salt)?;
        } else {
            let fresh = wal::Fresh { salt, vote: None, committed: None, purged: None };
            wal::write_beside(&path, &fresh, std::iter::empty())?.install(&path)?;
        }
    }
    legacy::remove_moved(dir)?;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
    let replayed =
        wal::replay(&file, &path.display().to_string(), |bytes| decode::<LogId>(bytes).map(|id| id.index()))?;
    if replayed.cut > 0 {
        tracing::warn!(
            file = %path.display(),
            bytes = replayed.cut,
            "the Raft log ended in a record a crash cut short; it was never acknowledged, and is dropped"
        );
    }
    let file = Arc::new(file);
    let log = Log {
        file: Some(file.clone()),
        entries: replayed.entries.map_places(Stored::File),
        vote: replayed.vote.as_deref().map(decode).transpose()?,
        committed: replayed.committed.as_deref().map(decode::<Option<LogId>>).transpose()?.flatten(),
        purged: replayed.purged.as_deref().map(decode).transpose()?,
    };
    Ok(Opened { file, end: replayed.end, salt: replayed.salt, log, lock })
}

/// The last index of the longest run of entries, in index order from the first, whose encoded bytes add up to at
/// most `limit`, and never fewer than one entry; `None` with no entries. A pending entry stands for the stored one at
/// its index, as it does when read.
fn last_within(pending: &[(u64, Arc<[u8]>)], stored: &[(u64, Stored)], limit: u64) -> Option<u64> {
    let mut sizes: BTreeMap<u64, u64> = stored.iter().map(|(index, stored)| (*index, stored.byte_len())).collect();
    sizes.extend(pending.iter().map(|(index, bytes)| (*index, bytes.len() as u64)));
    let mut total = 0u64;
    let mut last = None;
    for (index, size) in sizes {
        total = total.saturating_add(size);
        if last.is_some() && total > limit {
            break;
        }
        last = Some(index);
    }
    last
}

/// A run of adjacent entries is read with one `pread` up to this many bytes.
const MAX_RUN: u64 = 4 << 20;

/// Reads and decodes `stored`, one `pread` per run of entries adjacent in the file.
fn read_stored(file: Option<&File>, stored: Vec<(u64, Stored)>, out: &mut BTreeMap<u64, Entry>) -> io::Result<()> {
    let mut run: Vec<(u64, wal::Loc)> = Vec::new();
    for (index, stored) in stored {
        match stored {
            Stored::Memory(bytes) => {
                out.insert(index, decode_entry(&bytes)?);
            }
            Stored::File(loc) => {
                // Entries of one record sit 12 bytes apart (index and length), and a record's head, tag, flag and
                // committed pointer put a few dozen between two records; a fresh file's entries sit 21 apart. A run
                // stops at a larger gap or once it spans `MAX_RUN`.
                let adjacent = match (run.first(), run.last()) {
                    (Some((_, first)), Some((_, last))) => {
                        let last_end = last.offset + u64::from(last.len);
                        loc.offset >= last_end
                            && loc.offset - last_end <= 64
                            && loc.offset + u64::from(loc.len) - first.offset <= MAX_RUN
                    }
                    _ => false,
                };
                if !adjacent {
                    read_run(file, &run, out)?;
                    run.clear();
                }
                run.push((index, loc));
            }
        }
    }
    read_run(file, &run, out)
}

fn read_run(file: Option<&File>, run: &[(u64, wal::Loc)], out: &mut BTreeMap<u64, Entry>) -> io::Result<()> {
    let (Some((_, first)), Some((_, last))) = (run.first(), run.last()) else { return Ok(()) };
    let file = file.ok_or_else(|| io::Error::other("an entry on disk in an in-memory Raft log"))?;
    let span = last.offset + u64::from(last.len) - first.offset;
    let span = u32::try_from(span).map_err(|_| io::Error::other("a run of Raft log entries over 4 GiB"))?;
    let bytes = wal::read_at(file, wal::Loc { offset: first.offset, len: span })?;
    for (index, loc) in run {
        let at = usize::try_from(loc.offset - first.offset).unwrap_or(usize::MAX);
        let entry = at
            .checked_add(loc.len as usize)
            .and_then(|end| bytes.get(at..end))
            .ok_or_else(|| io::Error::other("a Raft log entry past its run"))?;
        out.insert(*index, decode_entry(entry)?);
    }
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read_entries((range.start_bound().cloned(), range.end_bound().cloned()), None)
    }

    /// What replication sends a follower: the entries from `start` that one AppendEntries carries
    /// (`APPEND_BATCH_BYTES`, and at least one), read and decoded alone. openraft asks for up to `max_payload_entries`
    /// (1 024) entries at a time: with 256 KiB values that was 256 MB read, decoded and then, but for the 8 MiB the
    /// network layer sends (`split_batch`), dropped, for every request to a follower catching up.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, io::Error> {
        self.read_entries((Bound::Included(start), Bound::Excluded(end)), Some(APPEND_BATCH_BYTES as u64))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let pending_last = {
            let pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.last_key_value().map(|(_, (_, bytes))| bytes.clone())
        };
        let (file, last_stored, last_purged_log_id) = {
            let log = self.shared.log.lock().unwrap_or_else(PoisonError::into_inner);
            let last = log.entries.map().last_key_value().map(|(index, stored)| (*index, stored.clone()));
            (log.file.clone(), last, log.purged)
        };
        let last = match pending_last {
            Some(bytes) => Some(decode_entry(&bytes)?.log_id),
            None => {
                let mut last = BTreeMap::new();
                read_stored(file.as_deref(), last_stored.into_iter().collect(), &mut last)?;
                last.into_values().next_back().map(|entry| entry.log_id)
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
        self.change(Change::Vote(*vote)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        *self.pending_committed.lock().unwrap_or_else(PoisonError::into_inner) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        if let Some(pending) = *self.pending_committed.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(pending);
        }
        Ok(self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Only the writer's sync tells openraft the entries are on disk; until then it may read them, not count them.
        self.submit(entries.into_iter().collect(), writer::Done::Flushed(callback))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index() + 1);
        self.change(Change::TruncateFrom(from)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.change(Change::Purge(log_id)).await
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

fn writer_gone() -> io::Error {
    io::Error::other("the Raft log's writer thread is gone")
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(invalid_data)
}

/// A log entry's bytes, in a buffer sized first (without encoding the command twice), so a large value is not copied
/// again as the buffer grows past it.
fn encode_entry(entry: &Entry) -> io::Result<Vec<u8>> {
    let len = super::envelope::entry_len(entry).map_err(invalid_data)?;
    postcard::to_extend(entry, Vec::with_capacity(len)).map_err(invalid_data)
}

fn invalid_data(e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
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

mod indexed;
mod legacy;
#[cfg(test)]
mod tests;
mod wal;
mod writer;
