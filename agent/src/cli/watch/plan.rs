//! The watch loop's bookkeeping, as Consul's `api/watch` package keeps it, free of I/O.
//!
//! Each answer of a blocking query brings an index and a result. The plan fires the handler only
//! when the index moved *and* the result differs from the last one handed out (a blocking query
//! may wake for an unrelated apply, and the first answer after an error always fires, as in
//! Consul). An index that goes backwards (a server restored from a snapshot, a new leader with a
//! shorter log) would make the next blocking query park until the old height is reached again,
//! so the plan starts over from 0 instead. The `event` view is the exception: its index is a
//! hash of the newest event's ID, not a Raft index, so it only ever compares for equality.
//! Errors back off quadratically: 5 s, 20 s, 45 s, ...
//! up to 3 minutes.

use std::time::Duration;

use serde_json::Value;

/// The first retry after an error; the n-th waits n² times this.
const RETRY_BASE: Duration = Duration::from_secs(5);
/// The longest wait between retries, so a long outage does not stall the watch for hours.
const RETRY_MAX: Duration = Duration::from_secs(180);

/// The state carried between blocking queries.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Whether indexes are Raft indexes (ordered) rather than hashes (event list).
    ordered: bool,
    /// The index to block on next; `None` before the first answer and after an error.
    last_index: Option<u64>,
    /// The result last handed to the handler, to skip wake-ups that changed nothing.
    last_result: Option<Value>,
    /// Consecutive failed queries, for the backoff.
    failures: u32,
}

impl Plan {
    /// A plan for a view whose index is ordered (`true`) or a hash (`false`).
    pub fn new(ordered: bool) -> Plan {
        Plan { ordered, ..Plan::default() }
    }

    /// The `?index=` of the next query (0: answer at once).
    pub fn wait_index(&self) -> u64 {
        self.last_index.unwrap_or(0)
    }

    /// Takes one successful answer; returns `true` when the handler should run with `result`.
    pub fn observe(&mut self, index: u64, result: &Value) -> bool {
        self.failures = 0;
        if self.last_index == Some(index) {
            return false;
        }
        let previous = self.last_index;
        self.last_index = Some(match previous {
            Some(previous) if self.ordered && previous > index => 0,
            _ => index,
        });
        if previous.is_some() && self.last_result.as_ref() == Some(result) {
            return false;
        }
        self.last_result = Some(result.clone());
        true
    }

    /// Takes one failed query; returns how long to wait before the next one.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.last_index = None;
        RETRY_BASE.saturating_mul(self.failures.saturating_mul(self.failures)).min(RETRY_MAX)
    }
}
