//! The leader's lease read without a round through openraft's core: the same decision openraft's `LeaseRead` makes,
//! taken from the facts its metrics publish, so that a default-consistency read on the leader costs no message to the
//! Raft task and no wake-up of it.
//!
//! openraft answers a `LeaseRead` on the leader when (1) it still leads and is not handing leadership over, (2) it
//! alone is the quorum, or a quorum acknowledged a heartbeat sent less than the lease (the election timeout's maximum)
//! ago, since a follower votes for no one else within the lease of the last leader message it accepted, and (3) the
//! read waits for `max(noop, committed)`, the noop being the first entry of the leader's term: that covers every entry
//! an earlier leader committed.
//!
//! Here (1) and (2) are read from the metrics, which trail the core: a stale copy can only show an older
//! acknowledgement (the check then fails and the read takes openraft's path) or a leadership already lost, which the
//! lease still covers, since no other leader can be elected before it runs out. The one way around a lease is a
//! leadership transfer, which makes the followers drop theirs; `forbid` is called before one starts and keeps this
//! path shut for the rest of the term. (3) needs the noop's index, which the metrics do not carry: `record` keeps the
//! read index openraft itself answered in this term, which is at least the noop's, and a later read waits for that or
//! the committed index, whichever is higher.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the leader's metrics say at the moment of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseFacts {
    /// The term of the node's vote.
    pub(crate) term: u64,
    /// Whether this node leads with a committed vote, its Raft still running.
    pub(crate) leading: bool,
    /// Whether this node is the only voter, so its own acknowledgement is a quorum.
    pub(crate) self_quorum: bool,
    /// How long ago the newest heartbeat a quorum acknowledged was sent.
    pub(crate) quorum_ack_age: Option<Duration>,
    /// The highest index this node knows committed.
    pub(crate) committed: u64,
}

/// A read index openraft answered, with the term it was answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Floor {
    term: u64,
    index: u64,
}

/// The leader's cached lease-read decision; see the module docs.
#[derive(Debug)]
pub(crate) struct Lease {
    /// The lease openraft grants a leader (its `leader_lease`, the election timeout's maximum).
    length: Duration,
    /// The read index openraft answered last in the current term.
    floor: Mutex<Option<Floor>>,
    /// The last term in which a leadership transfer started; no lease is trusted in it.
    transfer_term: AtomicU64,
}

impl Lease {
    /// A lease of `length`, with nothing recorded yet.
    pub(crate) fn new(length: Duration) -> Lease {
        Lease { length, floor: Mutex::new(None), transfer_term: AtomicU64::new(0) }
    }

    /// The index a lease read must wait for, or `None` when openraft has to decide.
    pub(crate) fn read_index(&self, facts: &LeaseFacts) -> Option<u64> {
        if !facts.leading || facts.term <= self.transfer_term.load(Ordering::SeqCst) {
            return None;
        }
        let within = facts.self_quorum || facts.quorum_ack_age.is_some_and(|age| age < self.length);
        if !within {
            return None;
        }
        let floor = (*self.floor.lock().unwrap_or_else(PoisonError::into_inner))?;
        (floor.term == facts.term).then_some(floor.index.max(facts.committed))
    }

    /// Keeps `index`, which openraft answered for a lease read while the term stayed `term` throughout the call.
    pub(crate) fn record(&self, term: u64, index: u64) {
        if term <= self.transfer_term.load(Ordering::SeqCst) {
            return;
        }
        let mut floor = self.floor.lock().unwrap_or_else(PoisonError::into_inner);
        // A newer term replaces the floor; within one term the noop does not move, so any answer covers it.
        if floor.is_none_or(|kept| kept.term <= term) {
            *floor = Some(Floor { term, index });
        }
    }

    /// Shuts this path for `term`, before a leadership transfer in it starts.
    pub(crate) fn forbid(&self, term: u64) {
        self.transfer_term.fetch_max(term, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
