//! The log's one writer thread: every change to `raft-log.redb` in the order it was asked for, with queued appends
//! merged into one durable transaction, so openraft's core hands an append over and goes on instead of waiting for
//! its fsync.
//!
//! openraft asks exactly this of `append`: return once the entries are readable, and report them through the
//! callback once they are on disk. Until their transaction commits, appended entries are readable from `pending`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

use openraft::storage::IOFlushed;
use redb::Durability;
use tokio::sync::oneshot;

use super::{Db, KEY_COMMITTED, LOGS, LogSize, META, byte_len};
use crate::raft::TypeConfig;

/// Appends merged into one transaction stop growing at this many encoded bytes (a single append may exceed it).
const MAX_MERGED_BYTES: usize = 32 << 20;

/// An encoded entry by index, tagged with the append that wrote it.
pub(super) type Pending = BTreeMap<u64, (u64, Arc<[u8]>)>;

/// What the writer and every clone of the store share.
pub(super) struct Shared {
    pub(super) db: Arc<Db>,
    /// Entries handed to the writer and not yet committed: readers look here before the database.
    pub(super) pending: Mutex<Pending>,
    /// The log's size as of the last committed write, mirrored from the database for the gauges.
    pub(super) size: Mutex<LogSize>,
    /// The file, for the error log line (`None` in memory).
    pub(super) path: Option<Arc<Path>>,
    /// Transactions committed, for tests that show appends sharing one.
    #[cfg(test)]
    pub(super) commits: std::sync::atomic::AtomicU64,
}

/// Who hears that an append is durable.
pub(super) enum Done {
    /// openraft, through the callback `append` was given.
    Flushed(IOFlushed<TypeConfig>),
    /// A caller waiting on the commit (outage recovery's entry, appended before Raft starts).
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
    /// Tags these entries in `pending`, so a commit removes only its own.
    pub(super) seq: u64,
    /// The committed pointer openraft reported before this append, encoded.
    pub(super) committed: Option<Vec<u8>>,
    /// A test's injected failure: the transaction fails as a full disk would.
    pub(super) injected: bool,
    pub(super) start: Instant,
    pub(super) done: Done,
}

/// A transaction body: changes the tables and returns the change to the byte total.
pub(super) type WriteFn = Box<dyn FnOnce(&redb::WriteTransaction) -> io::Result<i64> + Send>;

pub(super) enum Job {
    Append(Append),
    Write { durability: Durability, write: WriteFn, reply: oneshot::Sender<io::Result<()>> },
}

/// Starts the writer thread. It ends, dropping its share of the database, once every sender is gone.
pub(super) fn spawn(shared: Arc<Shared>) -> io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new().name("raft-log-writer".to_owned()).spawn(move || run(&shared, &rx))?;
    Ok(tx)
}

fn run(shared: &Shared, jobs: &mpsc::Receiver<Job>) {
    // After a failed commit every later write fails too: openraft stops this server's Raft on the first error, and
    // nothing may be acknowledged after a write that is not on disk.
    let mut failed: Option<(io::ErrorKind, String)> = None;
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(mpsc::RecvError) => return,
            },
        };
        match job {
            Job::Write { durability, write, reply } => {
                let res = match &failed {
                    Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
                    None => shared.commit(durability, write),
                };
                if let Err(e) = &res {
                    failed.get_or_insert_with(|| (e.kind(), e.to_string()));
                }
                let _ = reply.send(res);
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
                let res = match &failed {
                    Some(failure) => Err(failure.clone()),
                    None => shared.commit_appends(&batch).map_err(|e| (e.kind(), e.to_string())),
                };
                if let Err(failure) = &res {
                    failed.get_or_insert_with(|| failure.clone());
                }
                if res.is_ok() {
                    shared.forget_pending(&batch);
                }
                for append in batch {
                    append.done.complete(&res);
                }
            }
        }
    }
}

impl Shared {
    /// Writes every append of `batch` in one durable transaction: one fsync for all of them.
    fn commit_appends(&self, batch: &[Append]) -> io::Result<()> {
        let injected = batch.iter().any(|append| append.injected);
        let entries: Vec<(u64, Arc<[u8]>)> = batch.iter().flat_map(|append| append.entries.iter().cloned()).collect();
        let n_entries = entries.len();
        // The pointer only grows, so the last one reported is the one to keep.
        let committed = batch.iter().rev().find_map(|append| append.committed.clone());
        let start = batch.first().map_or_else(Instant::now, |append| append.start);
        self.commit(
            Durability::Immediate,
            Box::new(move |txn| {
                if injected {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "No space left on device (injected by a test)",
                    ));
                }
                let mut table = txn.open_table(LOGS).map_err(io::Error::other)?;
                let mut delta = 0i64;
                for (index, bytes) in &entries {
                    // An entry written again at the same index (after a truncation openraft did not report) replaces
                    // the old one, whose bytes leave the total.
                    let replaced = table.insert(*index, &**bytes).map_err(io::Error::other)?;
                    delta += byte_len(bytes) - replaced.map_or(0, |old| byte_len(old.value()));
                }
                if let Some(committed) = &committed {
                    let mut meta = txn.open_table(META).map_err(io::Error::other)?;
                    meta.insert(KEY_COMMITTED, committed.as_slice()).map_err(io::Error::other)?;
                }
                Ok(delta)
            }),
        )?;
        crate::telemetry::log_stored(start, n_entries);
        Ok(())
    }

    /// Drops the committed appends' entries from `pending`, unless a later append wrote the same index again.
    fn forget_pending(&self, batch: &[Append]) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for append in batch {
            for (index, _) in &append.entries {
                if pending.get(index).is_some_and(|(seq, _)| *seq == append.seq) {
                    pending.remove(index);
                }
            }
        }
    }

    /// Runs `write` in one write transaction and commits it, with the byte total moved by what `write` returns in the
    /// same transaction; then publishes the new size.
    pub(super) fn commit(&self, durability: Durability, write: WriteFn) -> io::Result<()> {
        let res = (|| {
            let mut txn = self.db.begin_write().map_err(io::Error::other)?;
            txn.set_durability(durability).map_err(io::Error::other)?;
            let delta = write(&txn)?;
            let size = LogSize::moved(&txn, delta)?;
            txn.commit().map_err(io::Error::other)?;
            #[cfg(test)]
            self.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(size)
        })();
        match res {
            Ok(size) => {
                *self.size.lock().unwrap_or_else(PoisonError::into_inner) = size;
                crate::telemetry::log_size(size.entries, size.bytes, size.last_index);
                Ok(())
            }
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// Logs a failed write loudly and returns the error with the file named in it.
    fn failed(&self, e: &io::Error) -> io::Error {
        // openraft stops this server's Raft on any log write error (`Fatal::StorageError`): it can no longer promise
        // that what it acknowledges is on disk. Say so loudly, with the file, since the operator must act.
        let file = self.path.as_ref().map_or_else(|| "the in-memory log".to_owned(), |p| p.display().to_string());
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
