//! The applied replicated state shared between the Raft state machine (the only writer) and readers.
//!
//! Readers run closures under a read lock; the state machine applies batches under the write lock,
//! and after releasing it wakes exactly the blocking queries whose watch keys the batch changed.
//!
//! # No lost wakeups
//! A blocking query registers its waiter *before* it evaluates its answer, and the state machine
//! fires waiters only *after* the new state is visible. So either the waiter was registered in time
//! to be fired, or the query's evaluation already saw the change.

use std::sync::{Mutex, PoisonError, RwLock};

use roster_kv::{Changes, State, WatchKey, Watchers};
use tokio::sync::{oneshot, watch};

use crate::raft::AppliedMeta;

/// A parked blocking query's handle. Dropping it unregisters the waiter, so a query that times out
/// or whose client goes away leaves nothing behind.
pub(crate) struct Waiter<'a> {
    replica: &'a Replica,
    id: u64,
    /// Fires when a write touched one of the waiter's keys.
    pub(crate) fired: oneshot::Receiver<()>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // A waiter that fired (or whose registry is gone) is no longer registered: its sender left the registry
        // before it sent. Only one still waiting takes the registry's lock, which thousands of watchers woken by one
        // write would otherwise each take again here.
        if let Err(oneshot::error::TryRecvError::Empty) = self.fired.try_recv() {
            self.replica.watchers.lock().unwrap_or_else(PoisonError::into_inner).remove(self.id);
        }
    }
}

/// The applied state and its notification channels.
pub(crate) struct Replica {
    /// The state plus the Raft bookkeeping that must change atomically with it.
    applied: RwLock<Applied>,
    /// Blocking queries parked on watch keys.
    watchers: Mutex<Watchers<oneshot::Sender<()>>>,
    /// The log index of the last applied entry, for "wait until applied >= N".
    applied_index: watch::Sender<u64>,
    /// Bumped when a snapshot replaces the whole state, which wakes every blocking query.
    resets: watch::Sender<u64>,
}

/// What the state-machine lock protects.
pub(crate) struct Applied {
    /// The replicated state.
    pub(crate) state: State,
    /// The last applied log id and membership, which snapshots record with the state.
    pub(crate) meta: AppliedMeta,
}

impl Replica {
    /// A replica starting from `state` (empty or restored from a snapshot).
    pub(crate) fn new(state: State, meta: AppliedMeta) -> Replica {
        let index = state.last_index();
        Replica {
            applied: RwLock::new(Applied { state, meta }),
            watchers: Mutex::new(Watchers::default()),
            applied_index: watch::channel(index).0,
            resets: watch::channel(0).0,
        }
    }

    /// Runs `f` on the current state under the read lock.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.applied.read().unwrap_or_else(PoisonError::into_inner).state)
    }

    /// Runs `f` on the state and its Raft bookkeeping under the read lock (snapshot building).
    pub(crate) fn read_applied<T>(&self, f: impl FnOnce(&Applied) -> T) -> T {
        f(&self.applied.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` under the write lock. The caller then reports what changed with `publish`.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Applied) -> T) -> T {
        f(&mut self.applied.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Wakes the waiters the changes touched and advances the applied index. Call after `write`.
    pub(crate) fn publish(&self, changes: &[Changes], applied_index: u64) {
        let fired: Vec<_> = {
            let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
            changes.iter().flat_map(|c| watchers.fire(c)).collect()
        };
        for waiter in fired {
            // The receiver is gone if the query already timed out; nothing to do then.
            let _ = waiter.send(());
        }
        self.applied_index.send_replace(applied_index);
    }

    /// Reports that the whole state was replaced: every parked query re-evaluates.
    pub(crate) fn publish_reset(&self, applied_index: u64) {
        self.resets.send_modify(|generation| *generation += 1);
        self.applied_index.send_replace(applied_index);
    }

    /// Parks a waiter on `keys`. Register before evaluating the query (see the module docs).
    pub(crate) fn register(&self, keys: Vec<WatchKey>) -> Waiter<'_> {
        let (tx, fired) = oneshot::channel();
        let id = self.watchers.lock().unwrap_or_else(PoisonError::into_inner).register(keys, tx);
        Waiter { replica: self, id, fired }
    }

    /// How many blocking queries are parked.
    pub(crate) fn n_waiters(&self) -> usize {
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// A receiver that changes whenever a snapshot replaces the state.
    pub(crate) fn subscribe_resets(&self) -> watch::Receiver<u64> {
        self.resets.subscribe()
    }

    /// Whether entries up to `index` are applied already.
    pub(crate) fn applied_at_least(&self, index: u64) -> bool {
        *self.applied_index.borrow() >= index
    }

    /// Waits until entries up to `index` are applied; `false` if the state machine went away.
    pub(crate) async fn wait_applied(&self, index: u64) -> bool {
        let mut rx = self.applied_index.subscribe();
        rx.wait_for(|applied| *applied >= index).await.is_ok()
    }
}
