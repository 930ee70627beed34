//! A min-heap of deadlines for the gossip actor: foca's timers and our own periodic work.
//!
//! Entries are ordered by (deadline, insertion sequence), so timers due at the same instant fire in the order they were
//! submitted: foca relies on that (a probe's `SendIndirectProbe` must run before the next `ProbeRandomMember`), and a
//! plain `(Instant, Timer)` heap would order ties by the timer's kind instead.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use tokio::time::Instant;

/// Events waiting for their deadline.
pub(crate) struct TimerQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    /// The sequence number the next entry gets.
    next_seq: u64,
}

struct Entry<E> {
    deadline: Instant,
    seq: u64,
    event: E,
}

impl<E> TimerQueue<E> {
    pub(crate) fn new() -> Self {
        TimerQueue { heap: BinaryHeap::new(), next_seq: 0 }
    }

    /// Schedules `event` at `deadline`.
    pub(crate) fn push(&mut self, deadline: Instant, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { deadline, seq, event }));
    }

    /// The earliest deadline, if anything is scheduled.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.deadline)
    }

    /// Takes the earliest event if it is due at `now`, with its deadline.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, E)> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| (entry.deadline, entry.event))
    }

    /// How many events are scheduled.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn earliest_first_and_ties_in_submission_order() {
        let start = Instant::now();
        let mut queue = TimerQueue::new();
        queue.push(start + Duration::from_millis(20), "late");
        queue.push(start + Duration::from_millis(10), "tie-1");
        queue.push(start + Duration::from_millis(10), "tie-2");
        queue.push(start + Duration::from_millis(10), "tie-3");
        queue.push(start, "now");
        assert_eq!(queue.next_deadline(), Some(start));

        let mut fired = Vec::new();
        while let Some((_, event)) = queue.pop_due(start + Duration::from_millis(15)) {
            fired.push(event);
        }
        assert_eq!(fired, ["now", "tie-1", "tie-2", "tie-3"]);
        assert_eq!(queue.len(), 1);
        assert!(queue.pop_due(start + Duration::from_millis(19)).is_none());
        assert_eq!(queue.pop_due(start + Duration::from_millis(20)).map(|(_, event)| event), Some("late"));
    }
}
