//! Lifeguard's dynamic suspicion timeout (LHA-Suspicion) on our side of foca: the suspicions we hold a timer for, and
//! the members that independently confirmed them.
//!
//! Foca starts a `ChangeSuspectToDown` timer when our own probe of a member fails, for `suspect_to_down_after`, which
//! we set to the longest timeout (see `health`). The timer goes through our runtime, so we can hand foca the same timer
//! earlier: every member whose own probe of the suspect failed tells the others (`buddy`), and each distinct member
//! that does shortens our timeout along memberlist's curve, down to half once the expected number have. The timer
//! at the longest timeout stays queued too, so nothing here can lose one; firing it twice is harmless, since the actor
//! skips a `ChangeSuspectToDown` for a member foca already holds down.
//!
//! A confirmation counts only for the life and refutation counter it names: a higher counter (a refutation, or a new
//! suspicion after one) starts over without the old confirmations, and an older one is stale and ignored. The map
//! holds at most one entry per member foca knows and at most [`health::SUSPICION_CONFIRMATIONS`] confirmers per entry,
//! and the actor drops every entry foca no longer holds as suspect at that counter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foca::Timer;
use tokio::time::Instant;

use super::super::health;
use super::super::identity::NodeId;

/// Which suspicion a confirmation is about: the member's generation and its refutation counter when suspected.
pub(crate) type Life = (u64, u16);

/// The suspicions this member knows of, by suspect name.
#[derive(Default)]
pub(crate) struct Suspicions {
    entries: HashMap<Arc<str>, Entry>,
    /// Confirmations that bring a timeout to its minimum in the current cluster (set when the cluster size changes).
    expected: u32,
}

/// One suspicion: who confirmed it and, if our own probe failed too, our timer.
struct Entry {
    life: Life,
    /// Distinct members that told us their probe failed, in arrival order; never more than the maximum expected.
    confirmers: Vec<Arc<str>>,
    pending: Option<Pending>,
}

/// Foca's timer for a suspicion of ours and when it is due.
struct Pending {
    timer: Timer<NodeId>,
    /// When our probe's failure started the timer.
    started: Instant,
    /// The timeout foca asked for: the longest, with no confirmation.
    max: Duration,
    /// The earliest time the timer is queued for.
    deadline: Instant,
}

impl Suspicions {
    /// Sets how many confirmations a suspicion can expect (`health::expected_confirmations` of the cluster size).
    pub(crate) fn set_expected(&mut self, expected: u32) {
        self.expected = expected;
    }

    /// Foca started `timer` (a `ChangeSuspectToDown`) for `max` from `now`: returns an earlier time to hand it over as
    /// well when others confirmed the suspicion first.
    pub(crate) fn start(&mut self, timer: &Timer<NodeId>, max: Duration, now: Instant) -> Option<Instant> {
        let Timer::ChangeSuspectToDown { member_id, incarnation, .. } = timer else { return None };
        let expected = self.expected;
        let entry = self.entry(&member_id.name, (member_id.generation, *incarnation))?;
        // A second failed probe of a member already suspected at this counter leaves the first timer in charge.
        if entry.pending.is_some() {
            return None;
        }
        entry.pending = Some(Pending { timer: timer.clone(), started: now, max, deadline: now + max });
        entry.shorten(expected).map(|(deadline, _)| deadline)
    }

    /// `confirmer` told us its own probe of `name` failed at `life`: returns our timer and the earlier time to hand it
    /// over, when this confirmation moved it.
    pub(crate) fn confirm(
        &mut self,
        name: &Arc<str>,
        life: Life,
        confirmer: &Arc<str>,
    ) -> Option<(Instant, Timer<NodeId>)> {
        let expected = self.expected;
        let entry = self.entry(name, life)?;
        let cap = usize::try_from(health::SUSPICION_CONFIRMATIONS).unwrap_or(usize::MAX);
        if entry.confirmers.len() >= cap || entry.confirmers.contains(confirmer) {
            return None;
        }
        entry.confirmers.push(confirmer.clone());
        entry.shorten(expected)
    }

    /// Keeps only the suspicions `still_suspected(name, life)` says foca still holds.
    pub(crate) fn retain(&mut self, mut still_suspected: impl FnMut(&str, Life) -> bool) {
        self.entries.retain(|name, entry| still_suspected(name, entry.life));
    }

    /// How many suspicions are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry for `life` of `name`: a newer life replaces what is held, an older one gets `None`.
    fn entry(&mut self, name: &Arc<str>, life: Life) -> Option<&mut Entry> {
        let fresh = || Entry { life, confirmers: Vec::new(), pending: None };
        let entry = self.entries.entry(name.clone()).or_insert_with(fresh);
        if entry.life < life {
            *entry = fresh();
        }
        (entry.life == life).then_some(entry)
    }
}

impl Entry {
    /// Recomputes our timer's deadline from the confirmations; returns it with the timer if it moved earlier.
    fn shorten(&mut self, expected: u32) -> Option<(Instant, Timer<NodeId>)> {
        let pending = self.pending.as_mut()?;
        let confirmations = u32::try_from(self.confirmers.len()).unwrap_or(u32::MAX);
        let deadline = pending.started + health::confirmed_suspicion_timeout(pending.max, confirmations, expected);
        if deadline >= pending.deadline {
            return None;
        }
        pending.deadline = deadline;
        Some((deadline, pending.timer.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    const MAX: Duration = Duration::from_millis(2300);

    fn suspect(generation: u64) -> NodeId {
        NodeId { name: "x".into(), addr: SocketAddr::from(([127, 0, 0, 9], 8301)), generation }
    }

    fn timer(generation: u64, incarnation: u16) -> Timer<NodeId> {
        Timer::ChangeSuspectToDown { member_id: suspect(generation), incarnation, token: 0 }
    }

    fn suspicions() -> Suspicions {
        let mut suspicions = Suspicions::default();
        suspicions.set_expected(health::expected_confirmations(200));
        suspicions
    }

    fn name(name: &str) -> Arc<str> {
        name.into()
    }

    #[test]
    fn the_timer_is_handed_over_at_the_time_each_confirmation_computes() {
        let start = Instant::now();
        let mut suspicions = suspicions();
        assert_eq!(suspicions.start(&timer(1, 3), MAX, start), None, "unconfirmed: only the longest timer");
        let (first, handed) = suspicions.confirm(&name("x"), (1, 3), &name("a")).expect("one confirmation shortens");
        assert_eq!(first, start + health::confirmed_suspicion_timeout(MAX, 1, 2));
        assert!(matches!(handed, Timer::ChangeSuspectToDown { incarnation: 3, .. }));
        let (second, _) = suspicions.confirm(&name("x"), (1, 3), &name("b")).expect("two shorten further");
        assert_eq!(second, start + MAX / 2);
        assert_eq!(suspicions.confirm(&name("x"), (1, 3), &name("c")), None, "already at the minimum");
    }

    #[test]
    fn confirmations_that_arrive_before_our_own_probe_fails_count_from_its_start() {
        let start = Instant::now();
        let mut suspicions = suspicions();
        assert_eq!(suspicions.confirm(&name("x"), (1, 3), &name("a")), None, "no timer of ours yet");
        let early = suspicions.start(&timer(1, 3), MAX, start);
        assert_eq!(early, Some(start + health::confirmed_suspicion_timeout(MAX, 1, 2)));
        assert_eq!(suspicions.start(&timer(1, 3), MAX, start + MAX), None, "the first timer stays in charge");
    }

    #[test]
    fn duplicate_and_stale_confirmations_are_ignored() {
        let start = Instant::now();
        let mut suspicions = suspicions();
        suspicions.start(&timer(1, 3), MAX, start);
        assert!(suspicions.confirm(&name("x"), (1, 3), &name("a")).is_some());
        assert_eq!(suspicions.confirm(&name("x"), (1, 3), &name("a")), None, "the same confirmer counts once");
        assert_eq!(suspicions.confirm(&name("x"), (1, 2), &name("b")), None, "an older counter is stale");
        assert_eq!(suspicions.confirm(&name("x"), (0, 9), &name("b")), None, "an older life is stale");
        let (deadline, _) = suspicions.confirm(&name("x"), (1, 3), &name("b")).expect("a second confirmer counts");
        assert_eq!(deadline, start + MAX / 2);
    }

    #[test]
    fn a_refuted_suspicion_drops_its_confirmations() {
        let start = Instant::now();
        let mut suspicions = suspicions();
        suspicions.start(&timer(1, 3), MAX, start);
        suspicions.confirm(&name("x"), (1, 3), &name("a"));
        suspicions.confirm(&name("x"), (1, 3), &name("b"));
        // x refuted (counter 4) and is suspected again: the old confirmations are about a life it no longer has.
        assert_eq!(suspicions.confirm(&name("x"), (1, 4), &name("c")), None, "no timer of ours for counter 4");
        let later = start + Duration::from_secs(1);
        let early = suspicions.start(&timer(1, 4), MAX, later);
        assert_eq!(early, Some(later + health::confirmed_suspicion_timeout(MAX, 1, 2)), "only c's counts");
        // The actor drops what foca no longer holds as suspect at that counter.
        suspicions.retain(|_, life| life > (1, 4));
        assert_eq!(suspicions.len(), 0);
    }

    #[test]
    fn confirmers_are_bounded_per_suspicion() {
        let mut suspicions = suspicions();
        for confirmer in ["a", "b", "c", "d"] {
            suspicions.confirm(&name("x"), (1, 3), &name(confirmer));
        }
        let held = suspicions.entries.get("x").map(|entry| entry.confirmers.len());
        assert_eq!(held, Some(2));
    }
}
