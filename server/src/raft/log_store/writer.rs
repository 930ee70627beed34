//! The log's one writer thread: every change to `raft-log.wal` in the order it was asked for, with queued appends
//! written together and synced once, so openraft's core hands an append over and goes on instead of waiting for
//! its fsync.
//!
//! openraft asks exactly this of `append`: return once the entries are readable, and report them through the
//! callback once they are on disk. Until their write is synced, appended entries are readable from `pending`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openraft::storage::IOFlushed;
use tokio::sync::oneshot;

use super::indexed::{ByteLen, Indexed};
use super::wal::{self, Batch, Loc, Tag};
use super::{ClosedSignal, LogSize, encode};
use crate::raft::{LogId, TypeConfig, Vote};

/// Appends written together stop growing at this many encoded bytes (a single append may exceed it).
const MAX_MERGED_BYTES: usize = 32 << 20;
/// One record holds at most this many bytes of entries (beyond one entry): a larger append is written as several
/// records, each synced before the next, so a torn one is always searched past at start (`wal::MAX_TAIL`).
#[cfg(not(test))]
const MAX_RECORD: usize = 64 << 20;
/// Small in tests, so appends of some size are split.
#[cfg(test)]
const MAX_RECORD: usize = 64 << 10;
/// The file is rewritten without its purged entries once it is past this size and twice what it still needs.
#[cfg(not(test))]
const COMPACT_AT: u64 = 64 << 20;
/// Small in tests, so every test that purges a log of some size compacts it too.
#[cfg(test)]
pub(super) const COMPACT_AT: u64 = 64 << 10;

/// What a compaction leaves for the writer thread to copy once the live entries are copied: while more than this has
/// been written to the old file since, the compaction's own thread copies it first.
#[cfg(not(test))]
const CATCH_UP_ON_WRITER: u64 = 4 << 20;
/// Small in tests, so a compaction's thread copies late records too.
#[cfg(test)]
const CATCH_UP_ON_WRITER: u64 = 16 << 10;
/// How often the writer looks whether a compaction's thread is done while no job comes.
const COMPACTION_POLL: Duration = Duration::from_millis(10);

/// An encoded entry by index, tagged with the append that wrote it.
pub(super) type Pending = BTreeMap<u64, (u64, Arc<[u8]>)>;

/// What the writer and every clone of the store share.
pub(super) struct Shared {
    /// Entries handed to the writer and not yet synced: readers look here before `log`.
    pub(super) pending: Mutex<Pending>,
    /// The log as it is on disk.
    pub(super) log: Mutex<Log>,
    /// The file, for the error log line (`None` in memory).
    pub(super) path: Option<Arc<Path>>,
    /// Writes synced, for tests that show appends sharing one.
    #[cfg(test)]
    pub(super) commits: std::sync::atomic::AtomicU64,
    /// A test's hold on the next compaction: its thread waits for this after copying the live entries.
    #[cfg(test)]
    pub(super) compaction_gate: Mutex<Option<mpsc::Receiver<()>>>,
    /// How many runs of late records the last installed compaction's thread copied (the writer copies one more).
    #[cfg(test)]
    pub(super) compaction_thread_runs: AtomicU64,
    /// The lock file, held while the log is open (`None` in memory).
    pub(super) _lock: Option<File>,
    /// Declared last: fields drop in order, so the file is closed before this fires.
    pub(super) _closed: ClosedSignal,
}

/// Where an entry's encoded bytes are.
#[derive(Clone)]
pub(super) enum Stored {
    File(Loc),
    /// In-memory logs (`-dev`) keep the bytes.
    Memory(Arc<[u8]>),
}

impl ByteLen for Stored {
    fn byte_len(&self) -> u64 {
        match self {
            Stored::File(loc) => u64::from(loc.len),
            Stored::Memory(bytes) => bytes.len() as u64,
        }
    }
}

/// The durable log: what replaying the file now would rebuild.
#[derive(Default)]
pub(super) struct Log {
    /// The file entries are read from (`None` in memory); replaced whole when the file is compacted.
    pub(super) file: Option<Arc<File>>,
    pub(super) entries: Indexed<Stored>,
    pub(super) vote: Option<Vote>,
    pub(super) committed: Option<LogId>,
    pub(super) purged: Option<LogId>,
}

impl Log {
    /// Each entry held in the file, with its place there.
    fn in_file(&self) -> impl Iterator<Item = (u64, Loc)> + '_ {
        self.entries.map().iter().filter_map(|(index, stored)| match stored {
            Stored::File(loc) => Some((*index, *loc)),
            Stored::Memory(_) => None,
        })
    }

    pub(super) fn size(&self) -> LogSize {
        let entries = self.entries.map();
        let last_index = entries.last_key_value().map_or(0, |(index, _)| *index);
        LogSize { entries: entries.len() as u64, bytes: self.entries.bytes(), last_index }
    }
}

/// Who hears that an append is durable.
pub(super) enum Done {
    /// openraft, through the callback `append` was given.
    Flushed(IOFlushed<TypeConfig>),
    /// A caller waiting on the write (outage recovery's entry, appended before Raft starts).
    Reply(oneshot::Sender<io::Result<()>>),
}

impl Done {
    fn complete(self, res: &Result<(), (io::ErrorKind, String)>) {
        let res = res.clone().map_err(|(kind, msg)| io::Error::new(kind, msg));
        match self {
            Done::Flushed(callback) => callback.io_completed(res),
            Done::Reply(reply) => {
                // A caller that stopped waiting needs no answer.
                let _ = reply.send(res);
            }
        }
    }
}

/// One `append`: its entries encoded, the committed pointer riding along, and who to tell.
pub(super) struct Append {
    pub(super) entries: Vec<(u64, Arc<[u8]>)>,
    /// Tags these entries in `pending`, so a sync removes only its own.
    pub(super) seq: u64,
    /// The committed pointer openraft reported before this append.
    pub(super) committed: Option<Option<LogId>>,
    /// A test's injected failure: the write fails as a full disk would.
    #[cfg(test)]
    pub(super) injected: Option<super::InjectedFailure>,
    pub(super) start: Instant,
    pub(super) done: Done,
}

/// A change other than an append.
pub(super) enum Change {
    /// Durable before it is reported: a node must not vote twice in a term.
    Vote(Vote),
    /// Every entry from this index on is removed, durably.
    TruncateFrom(u64),
    /// Every entry up to this one is removed.
    Purge(LogId),
}

pub(super) enum Job {
    Append(Append),
    Change {
        change: Change,
        reply: oneshot::Sender<io::Result<()>>,
    },
    /// Runs a test's closure on the writer thread, as a write would run: it holds the writer until it returns.
    #[cfg(test)]
    Hold {
        hold: Box<dyn FnOnce() + Send>,
        reply: oneshot::Sender<io::Result<()>>,
    },
}

/// Starts the writer thread, appending at `end` of `file` (`None` in memory). It ends, dropping its share of the
/// log, once every sender is gone.
pub(super) fn spawn(
    shared: Arc<Shared>,
    file: Option<Arc<File>>,
    end: u64,
    salt: u64,
) -> io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel();
    let writer = Writer {
        file,
        shared,
        end,
        salt,
        failed: None,
        compact_not_before: 0,
        compaction: None,
        written_to: Arc::new(AtomicU64::new(end)),
    };
    std::thread::Builder::new().name("raft-log-writer".to_owned()).spawn(move || writer.run(&rx))?;
    Ok(tx)
}

struct Writer {
    /// Declared before `shared`: fields drop in order, so this share of the file is closed before the last share of
    /// `shared` (and its closed signal) can go.
    file: Option<Arc<File>>,
    shared: Arc<Shared>,
    /// Where the next record goes.
    end: u64,
    /// The file's salt, in every record's checks.
    salt: u64,
    /// After a failed write every later write fails too: openraft stops this server's Raft on the first error, and
    /// nothing may be acknowledged after a write that is not on disk.
    failed: Option<(io::ErrorKind, String)>,
    /// A compaction that failed before its rename is tried again only once the file has grown this far.
    compact_not_before: u64,
    /// The compaction whose thread is copying the live log into a new file, if one is.
    compaction: Option<Compaction>,
    /// `end`, for a compaction's thread: every byte before it is whole records, never written again.
    written_to: Arc<AtomicU64>,
}

/// A compaction under way on its own thread.
struct Compaction {
    thread: JoinHandle<io::Result<Copied>>,
    cancel: Arc<AtomicBool>,
}

/// What a compaction's thread copied: the new file, where the entries live when it started went, and the runs of
/// records written to the old file after that it copied whole.
struct Copied {
    written: wal::Written,
    /// Old offset → new place, of the entries live when the compaction started.
    live: BTreeMap<u64, Loc>,
    /// The old file's end when the compaction started: entries before it are in `live`, records after it in `runs`.
    started_at: u64,
    runs: Vec<wal::Moved>,
    /// How far into the old file `runs` reach.
    copied_to: u64,
    started: Instant,
}

impl Writer {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        let mut next: Option<Job> = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None if self.compaction.is_some() => match jobs.recv_timeout(COMPACTION_POLL) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.finish_compaction(false);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        self.abandon_compaction();
                        return;
                    }
                },
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(mpsc::RecvError) => return,
                },
            };
            match job {
                Job::Change { change, reply } => {
                    let shrinks = !matches!(change, Change::Vote(_));
                    let res = self.guarded(|writer| writer.change(change));
                    let done = res.is_ok();
                    let _ = reply.send(res.map_err(|(kind, msg)| io::Error::new(kind, msg)));
                    // After the reply: openraft's core waits for a purge or truncation, and need not wait for this.
                    if done && shrinks {
                        self.start_compaction();
                    }
                }
                #[cfg(test)]
                Job::Hold { hold, reply } => {
                    // Tests see a compaction that was started as finished by the next job they send.
                    self.finish_compaction(true);
                    hold();
                    self.shared.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = reply.send(Ok(()));
                }
                Job::Append(first) => {
                    let mut batch = vec![first];
                    let mut bytes: usize = batch[0].entries.iter().map(|(_, b)| b.len()).sum();
                    while bytes < MAX_MERGED_BYTES {
                        match jobs.try_recv() {
                            Ok(Job::Append(append)) => {
                                bytes += append.entries.iter().map(|(_, b)| b.len()).sum::<usize>();
                                batch.push(append);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let res = self.guarded(|writer| writer.append(&batch));
                    if res.is_ok() {
                        self.forget_pending(&batch);
                    }
                    for append in batch {
                        append.done.complete(&res);
                    }
                }
            }
            self.finish_compaction(false);
        }
    }

    /// Runs `write` unless an earlier write failed, and remembers its failure, with the file named in it.
    fn guarded(&mut self, write: impl FnOnce(&mut Self) -> io::Result<()>) -> Result<(), (io::ErrorKind, String)> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        write(self).map_err(|e| {
            let e = self.report(&e);
            let failure = (e.kind(), e.to_string());
            self.failed = Some(failure.clone());
            failure
        })
    }

    /// Writes every append of `batch`, and the last committed pointer among them, with one write and one sync (one
    /// more of each per `MAX_RECORD` of entries: a torn record is searched past at start up to `wal::MAX_TAIL`).
    fn append(&mut self, batch: &[Append]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(failure) = batch.iter().find_map(|append| append.injected.as_ref()) {
            if let Some(held) = &failure.held_until {
                // Sent or dropped: either lets the failure go on.
                let _ = held.recv();
            }
            return Err(io::Error::new(io::ErrorKind::StorageFull, "No space left on device (injected by a test)"));
        }
        // The pointer only grows, so the last one reported is the one to keep.
        let committed = batch.iter().rev().find_map(|append| append.committed);
        let n_entries: usize = batch.iter().map(|append| append.entries.len()).sum();
        let start = batch.first().map_or_else(Instant::now, |append| append.start);
        let stored: Vec<(u64, Stored)> = match &self.file {
            Some(file) => {
                let mut committed = committed.map(|committed| encode(&committed)).transpose()?;
                let entries: Vec<(u64, &[u8])> =
                    batch.iter().flat_map(|append| &append.entries).map(|(index, bytes)| (*index, &**bytes)).collect();
                let mut stored = Vec::with_capacity(entries.len());
                let mut rest = &entries[..];
                while !rest.is_empty() || committed.is_some() {
                    // At least one entry per record, then as many as fit in `MAX_RECORD`.
                    let mut take = rest.len().min(1);
                    let mut bytes = rest.first().map_or(0, |(_, b)| b.len());
                    while let Some((_, next)) = rest.get(take) {
                        if bytes + next.len() > MAX_RECORD {
                            break;
                        }
                        bytes += next.len();
                        take += 1;
                    }
                    let (chunk, after) = rest.split_at(take);
                    rest = after;
                    let mut records = Batch::at(self.end, self.salt);
                    // The pointer rides on the last record of the write.
                    let pointer = if rest.is_empty() { committed.take() } else { None };
                    records.appended(pointer.as_deref(), chunk.iter().copied())?;
                    write_synced(file, &records.buf, self.end)?;
                    self.end += records.buf.len() as u64;
                    stored.extend(records.locs.into_iter().map(|(index, loc)| (index, Stored::File(loc))));
                }
                stored
            }
            None => batch
                .iter()
                .flat_map(|append| &append.entries)
                .map(|(index, bytes)| (*index, Stored::Memory(bytes.clone())))
                .collect(),
        };
        self.publish(|log| {
            for (index, stored) in stored {
                log.entries.insert(index, stored);
            }
            if let Some(committed) = committed {
                log.committed = committed;
            }
        });
        crate::telemetry::log_stored(start, n_entries);
        Ok(())
    }

    fn change(&mut self, change: Change) -> io::Result<()> {
        if let Some(file) = &self.file {
            let mut record = Batch::at(self.end, self.salt);
            match &change {
                Change::Vote(vote) => record.record(Tag::Vote, &encode(vote)?)?,
                Change::TruncateFrom(from) => record.record(Tag::TruncateFrom, &from.to_le_bytes())?,
                Change::Purge(log_id) => record.record(Tag::Purge, &encode(log_id)?)?,
            }
            // Synced even for a purge (which need not be durable): one record per write, each on disk before the
            // next, is what lets a replay tell a crash's torn last record from damage (`wal.rs`). Purges come once
            // per snapshot.
            write_synced(file, &record.buf, self.end)?;
            self.end += record.buf.len() as u64;
        }
        self.publish(|log| match change {
            Change::Vote(vote) => log.vote = Some(vote),
            Change::TruncateFrom(from) => log.entries.truncate_from(from),
            Change::Purge(log_id) => {
                log.entries.purge_upto(log_id.index());
                log.purged = Some(log_id);
            }
        });
        Ok(())
    }

    /// Applies `change` to the shared log, then reports its new size.
    fn publish(&self, change: impl FnOnce(&mut Log)) {
        let size = {
            let mut log = self.shared.log.lock().unwrap_or_else(PoisonError::into_inner);
            change(&mut log);
            log.size()
        };
        #[cfg(test)]
        self.shared.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.written_to.store(self.end, Ordering::Release);
        crate::telemetry::log_size(size.entries, size.bytes, size.last_index);
    }

    /// Starts rewriting the file without what was purged or truncated, once that is most of it. The live entries are
    /// copied into a new file beside the old one by a thread of its own, while this one goes on writing to the old
    /// file; then the thread copies what was written meanwhile, record by record, and this one copies the last few
    /// records, syncs and renames the new file over the old (`finish_compaction`). Until the rename the old file stays
    /// the log, so a failure before it costs nothing but the attempt (and a compaction starts, and goes on, only with
    /// room left for the live log); readers holding the old file
    /// finish reading it, as it stays open until they let go.
    fn start_compaction(&mut self) {
        if self.compaction.is_some() || self.failed.is_some() {
            return;
        }
        let (Some(file), Some(path)) = (self.file.clone(), self.shared.path.clone()) else { return };
        let (fresh, live, needed) = {
            let log = self.shared.log.lock().unwrap_or_else(PoisonError::into_inner);
            // Each entry's record in the new file adds its head (12 bytes), tag and index to its bytes.
            let needed = wal::HEADER_LEN + log.entries.bytes() + 21 * log.entries.map().len() as u64 + 256;
            if self.end < COMPACT_AT || self.end < needed.saturating_mul(2) || self.end < self.compact_not_before {
                return;
            }
            let fresh = (|| -> io::Result<_> {
                Ok((
                    log.vote.as_ref().map(encode).transpose()?,
                    encode(&log.committed)?,
                    log.purged.as_ref().map(encode).transpose()?,
                ))
            })();
            (fresh, log.in_file().collect::<Vec<_>>(), needed)
        };
        let (vote, committed, purged) = match fresh {
            Ok(fresh) => fresh,
            Err(e) => return self.not_now(&e),
        };
        // The log goes on growing beside the copy, and a live write that finds the disk full stops this server's
        // Raft: start only with room for the copy twice over and a compaction's size besides.
        let wanted = needed.saturating_mul(2).saturating_add(COMPACT_AT);
        match free_bytes(&path) {
            Ok(free) if free >= wanted => {}
            Ok(free) => {
                let why = format!("{free} bytes free on the log's disk, {wanted} wanted to compact beside it");
                return self.not_now(&io::Error::new(io::ErrorKind::StorageFull, why));
            }
            Err(e) => return self.not_now(&e),
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let job = CopyJob {
            old: file,
            old_salt: self.salt,
            path,
            vote,
            committed,
            purged,
            live,
            started_at: self.end,
            written_to: self.written_to.clone(),
            cancel: cancel.clone(),
            #[cfg(test)]
            gate: self.shared.compaction_gate.lock().unwrap_or_else(PoisonError::into_inner).take(),
        };
        match std::thread::Builder::new().name("raft-log-compact".to_owned()).spawn(move || job.run()) {
            Ok(thread) => self.compaction = Some(Compaction { thread, cancel }),
            Err(e) => self.not_now(&e),
        }
    }

    /// Installs the compaction's new file once its thread is done (or, with `wait`, once it is): copies the records
    /// written since the thread last looked, syncs, renames, and moves every entry's place to the new file.
    fn finish_compaction(&mut self, wait: bool) {
        let Some(compaction) = self.compaction.take_if(|c| wait || c.thread.is_finished()) else { return };
        let copied = match compaction.thread.join() {
            Ok(Ok(copied)) => copied,
            Ok(Err(e)) => return self.not_now(&e),
            Err(_) => {
                if let Some(path) = &self.shared.path {
                    let _ = std::fs::remove_file(wal::tmp_path(path));
                }
                return self.not_now(&io::Error::other("the compaction's thread panicked"));
            }
        };
        if self.failed.is_some() {
            return copied.written.discard();
        }
        let _ = self.guarded(|writer| writer.install(copied));
    }

    /// Stops a compaction under way and removes its file: the log is closing.
    fn abandon_compaction(&mut self) {
        if let Some(compaction) = self.compaction.take() {
            compaction.cancel.store(true, Ordering::Relaxed);
            if let Ok(Ok(copied)) = compaction.thread.join() {
                copied.written.discard();
            }
        }
    }

    /// The compaction's last step, on this thread: an error after the rename fails like a failed write; one before
    /// it leaves the old file the log and is only logged.
    fn install(&mut self, mut copied: Copied) -> io::Result<()> {
        let (Some(old), Some(path)) = (self.file.clone(), self.shared.path.clone()) else { return Ok(()) };
        let before = self.end;
        let on_writer = Instant::now();
        #[cfg(test)]
        self.shared.compaction_thread_runs.store(copied.runs.len() as u64, Ordering::SeqCst);
        let last = copied.written.copy_records(&old, self.salt, (copied.copied_to, self.end), None).and_then(|moved| {
            copied.runs.push(moved);
            copied.written.sync()
        });
        if let Err(e) = last {
            copied.written.discard();
            self.not_now(&e);
            return Ok(());
        }
        // Where every entry the log holds now is in the new file: nothing else writes the log, so it cannot move
        // while this runs. An entry not found there means the copy missed it, and the new file is not used.
        let relocated: Option<Vec<(u64, Loc)>> = {
            let log = self.shared.log.lock().unwrap_or_else(PoisonError::into_inner);
            log.in_file().map(|(index, old)| copied.place(old).map(|new| (index, new))).collect()
        };
        let Some(relocated) = relocated else {
            copied.written.discard();
            self.not_now(&io::Error::other("an entry of the log is not in the compacted file"));
            return Ok(());
        };
        let salt = copied.written.salt();
        let (new_file, _, end) = match copied.written.install(&path) {
            Ok(installed) => installed,
            Err(wal::InstallError::NotRenamed(e)) => {
                self.not_now(&e);
                return Ok(());
            }
            // From the rename on, the old file is no longer the log: this fails like a failed write.
            Err(wal::InstallError::Renamed(e)) => return Err(e),
        };
        self.compact_not_before = 0;
        let new_file = Arc::new(new_file);
        self.file = Some(new_file.clone());
        self.end = end;
        self.salt = salt;
        // The file and the places in it change under one lock, so no reader pairs one with the other's offsets.
        let mut replaced = None;
        self.publish(|log| {
            replaced = log.file.replace(new_file);
            for (index, loc) in relocated {
                log.entries.insert(index, Stored::File(loc));
            }
        });
        release(old, replaced);
        tracing::info!(
            file = %path.display(),
            bytes_before = before,
            bytes_after = end,
            entries = copied.live.len(),
            took_ms = copied.started.elapsed().as_millis(),
            copied_late = self.end - copied.runs.first().map_or(self.end, |run| run.at),
            copied_here = before - copied.copied_to,
            here_ms = on_writer.elapsed().as_millis(),
            "compacted the Raft log"
        );
        Ok(())
    }

    /// A compaction that failed before its rename: the old file goes on, and another is tried once it grew by
    /// `COMPACT_AT`.
    fn not_now(&mut self, e: &io::Error) {
        self.compact_not_before = self.end.saturating_add(COMPACT_AT);
        tracing::warn!(
            file = ?self.shared.path,
            error = %e,
            "could not compact the Raft log; it goes on in the file it has, and tries again once it grew by a \
             compaction's size"
        );
    }

    /// Drops the synced appends' entries from `pending`, unless a later append wrote the same index again.
    fn forget_pending(&self, batch: &[Append]) {
        let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for append in batch {
            for (index, _) in &append.entries {
                if pending.get(index).is_some_and(|(seq, _)| *seq == append.seq) {
                    pending.remove(index);
                }
            }
        }
    }

    /// Logs a failed write loudly and returns the error with the file named in it.
    fn report(&self, e: &io::Error) -> io::Error {
        // openraft stops this server's Raft on any log write error (`Fatal::StorageError`): it can no longer promise
        // that what it acknowledges is on disk. Say so loudly, with the file, since the operator must act.
        let file =
            self.shared.path.as_ref().map_or_else(|| "the in-memory log".to_owned(), |p| p.display().to_string());
        tracing::error!(
            %file,
            error = %e,
            "RAFT LOG WRITE FAILED: this server stops serving Raft and reports itself unhealthy; no write it could not \
             persist is acknowledged. Free space or fix the disk, then restart it"
        );
        // The file rides in the error too, so the failure Raft reports (`RaftStats::failure`) names it.
        io::Error::new(e.kind(), format!("{file}: {e}"))
    }
}

/// Writes `buf` at `offset` and waits until it and everything before it is on disk.
fn write_synced(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)?;
    file.sync_data()
}

/// The work of a compaction's thread.
struct CopyJob {
    old: Arc<File>,
    old_salt: u64,
    path: Arc<Path>,
    /// The vote, committed pointer and purge point when it started, encoded.
    vote: Option<Vec<u8>>,
    committed: Vec<u8>,
    purged: Option<Vec<u8>>,
    live: Vec<(u64, Loc)>,
    started_at: u64,
    written_to: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    #[cfg(test)]
    gate: Option<mpsc::Receiver<()>>,
}

impl CopyJob {
    fn run(self) -> io::Result<Copied> {
        let started = Instant::now();
        let cancelled = || io::Error::new(io::ErrorKind::Interrupted, "the log closed during a compaction");
        // A new salt, so no record of an older file in blocks the new one reuses can pass for one of its own.
        let fresh = wal::Fresh {
            salt: wal::new_salt(),
            vote: self.vote.as_deref(),
            committed: Some(&self.committed),
            purged: self.purged.as_deref(),
        };
        let entries = self.live.iter().map(|(index, loc)| {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(cancelled());
            }
            wal::read_at(&self.old, *loc).map(|bytes| (*index, bytes))
        });
        let mut written = wal::write_beside(&self.path, &fresh, entries)?;
        match self.copy_late(&mut written) {
            Ok((live, runs, copied_to)) => {
                Ok(Copied { written, live, started_at: self.started_at, runs, copied_to, started })
            }
            Err(e) => {
                written.discard();
                Err(e)
            }
        }
    }

    /// Maps the live entries' old places to new ones, then copies what the writer wrote to the old file since the
    /// compaction started, in rounds, until little enough is left for the writer to copy itself (a bounded number of
    /// rounds, in case it writes faster than this copies).
    fn copy_late(&self, written: &mut wal::Written) -> io::Result<(BTreeMap<u64, Loc>, Vec<wal::Moved>, u64)> {
        let live: BTreeMap<u64, Loc> = self
            .live
            .iter()
            .map(|(index, old)| written.loc_of(*index).map(|new| (old.offset, new)))
            .collect::<Option<_>>()
            .ok_or_else(|| io::Error::other("an entry missing from the compacted file"))?;
        #[cfg(test)]
        if let Some(gate) = &self.gate {
            // Held until the test lets go, or until the log closes (then this ends as a cancelled copy would).
            while let Err(mpsc::RecvTimeoutError::Timeout) = gate.recv_timeout(Duration::from_millis(5)) {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "the log closed during a compaction"));
                }
            }
        }
        let mut copied_to = self.started_at;
        let mut runs = Vec::new();
        for _ in 0..8 {
            let to = self.written_to.load(Ordering::Acquire);
            if to.saturating_sub(copied_to) <= CATCH_UP_ON_WRITER {
                break;
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "the log closed during a compaction"));
            }
            // Never copy into the last of the disk the live log needs.
            let free = free_bytes(&self.path)?;
            if free < (to - copied_to).saturating_add(COMPACT_AT) {
                return Err(io::Error::new(io::ErrorKind::StorageFull, format!("{free} bytes free on the log's disk")));
            }
            runs.push(written.copy_records(&self.old, self.old_salt, (copied_to, to), Some(&self.cancel))?);
            copied_to = to;
        }
        written.sync()?;
        Ok((live, runs, copied_to))
    }
}

impl Copied {
    /// Where the entry the old file holds at `old` is in the new one.
    fn place(&self, old: Loc) -> Option<Loc> {
        if old.offset < self.started_at {
            return self.live.get(&old.offset).copied().filter(|new| new.len == old.len);
        }
        let run = self.runs.iter().find(|run| run.from <= old.offset && old.offset < run.to)?;
        Some(Loc { offset: old.offset - run.from + run.at, len: old.len })
    }
}

/// Closes the file a compaction replaced, off the writer thread and off the readers' threads: the last close of an
/// unlinked file frees all of its blocks there and then, which for a log of gigabytes took the filesystem long enough
/// (hundreds of milliseconds here) to hold up every write waiting for the next sync. A reader still reading it
/// finishes first: this holds a share until every other is gone.
fn release(old: Arc<File>, replaced: Option<Arc<File>>) {
    drop(replaced);
    let closing = std::thread::Builder::new().name("raft-log-release".to_owned()).spawn(move || {
        let mut old = old;
        loop {
            match Arc::try_unwrap(old) {
                Ok(file) => return drop(file),
                Err(shared) => old = shared,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    if let Err(e) = closing {
        tracing::warn!(error = %e, "could not start a thread to close the replaced Raft log; it was closed here");
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path`.
fn free_bytes(path: &Path) -> io::Result<u64> {
    let dir = path.parent().unwrap_or(path);
    let stat = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
