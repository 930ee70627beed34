//! One evaluation per (query, state) for blocking queries: a write that wakes ten thousand watchers of
//! the same prefix evaluates that prefix once, not ten thousand times.
//!
//! Every apply moves `State::last_index` (Raft indexes only grow, and a snapshot install sets it), so
//! an answer computed at a given `last_index` stays exact for as long as the state is at that index.
//! Watchers of one query that wake together therefore all find the answer the first of them computed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use roster_kv::{Answer, Query, State};

/// Distinct queries remembered at once. Past this, entries computed at an older state (no longer
/// useful to anyone) are dropped first, then everything; the cost of forgetting is one evaluation.
const MAX_ENTRIES: usize = 4096;

/// Answers of recent blocking-query evaluations, keyed by the query's encoding.
#[derive(Default)]
pub(crate) struct SharedEvals {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    evaluations: AtomicU64,
}

struct Entry {
    /// `State::last_index` when the answer was computed.
    at: u64,
    answer: Arc<(Answer, u64)>,
}

impl SharedEvals {
    /// The answer to `query` (whose encoding is `key`) on `state`, evaluated only if no watcher of
    /// the same query has evaluated it on this same state yet.
    ///
    /// The map's lock is held while evaluating, so watchers woken together wait for the first
    /// evaluation instead of racing to repeat it. Evaluations are in-memory reads of microseconds;
    /// plain (non-blocking) reads never come here.
    pub(crate) fn eval(&self, key: &[u8], query: &Query, state: &State) -> (Answer, u64) {
        let at = state.last_index();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get(key)
            && entry.at == at
        {
            return (entry.answer.0.clone(), entry.answer.1);
        }
        let answer = query.eval(state);
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.retain(|_, entry| entry.at == at);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key.to_vec(), Entry { at, answer: Arc::new(answer.clone()) });
        answer
    }

    /// How many times a query was actually evaluated.
    #[cfg(test)]
    pub(crate) fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
