//! Session TTLs: the leader's timers that destroy sessions nobody renews.
//!
//! As in Consul, renewing is not a Raft write: the leader alone keeps one deadline per TTL session in memory, a renewal (forwarded to the leader from anywhere) pushes it back, and an expiry proposes `Command::SessionDestroy`.
//! The leader waits twice the TTL, Consul's grace for clients that renew late or whose renewal took a while to arrive.
//!
//! # Leadership
//! The timers are level-triggered: every pass (`RECONCILE_EVERY`, or sooner when a deadline is due) a leader arms a timer for each TTL session in the state that has none and drops timers whose session is gone; a server that is not the leader holds none.
//! So a new leader starts every session's clock afresh at twice its TTL, which is the most a client can lose to a leader change, and a session created through any server is armed within one pass.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use roster_kv::Session;
use tokio::time::Instant;

/// How often the leader compares its timers with the sessions in the state.
pub(crate) const RECONCILE_EVERY: Duration = Duration::from_secs(1);
/// How many TTLs the leader waits before expiring a session (Consul's `SessionTTLMultiplier`).
const TTL_MULTIPLIER: u32 = 2;
/// The longest wait before an expiry: the multiplier times the longest TTL apply accepts.
/// Only a session stored before apply checked TTLs can ask for more; capping it keeps the deadline arithmetic far from overflow.
const MAX_GRACE: Duration = roster_kv::SESSION_TTL_MAX.saturating_mul(TTL_MULTIPLIER);

/// The leader's session deadlines. Pure bookkeeping over the instants it is given; the server drives it.
#[derive(Debug)]
pub(crate) struct SessionTimers {
    /// Session ID → when it expires unless renewed.
    deadlines: Mutex<HashMap<String, Instant>>,
    /// Divides every wait; 1 outside tests, where it lets a 10 s TTL expire in a fraction of a second.
    divisor: std::sync::atomic::AtomicU32,
}

impl Default for SessionTimers {
    fn default() -> Self {
        SessionTimers { deadlines: Mutex::new(HashMap::new()), divisor: std::sync::atomic::AtomicU32::new(1) }
    }
}

impl SessionTimers {
    /// Arms a timer for every TTL session in `sessions` that has none, and drops the timers of sessions no longer there.
    pub(crate) fn reconcile(&self, now: Instant, sessions: &[(String, Duration)]) {
        let mut deadlines = self.lock();
        deadlines.retain(|id, _| sessions.iter().any(|(s, _)| s == id));
        for (id, ttl) in sessions {
            if !deadlines.contains_key(id) {
                deadlines.insert(id.clone(), self.deadline(now, *ttl));
            }
        }
    }

    /// Pushes a session's deadline back to twice its TTL from `now`.
    pub(crate) fn renew(&self, now: Instant, id: &str, ttl: Duration) {
        let deadline = self.deadline(now, ttl);
        self.lock().insert(id.to_owned(), deadline);
    }

    /// Removes and returns the sessions whose deadline has passed, in ID order.
    pub(crate) fn take_expired(&self, now: Instant) -> Vec<String> {
        let mut deadlines = self.lock();
        let mut expired: Vec<String> =
            deadlines.iter().filter(|(_, at)| **at <= now).map(|(id, _)| id.clone()).collect();
        expired.sort();
        for id in &expired {
            deadlines.remove(id);
        }
        expired
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.lock().values().min().copied()
    }

    /// Drops every timer: this server stopped leading.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// How many timers are armed.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Makes every wait `divisor` times shorter (tests of expiry, which would otherwise take at least 20 s).
    #[cfg(test)]
    pub(crate) fn set_divisor(&self, divisor: u32) {
        self.divisor.store(divisor.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// When a session renewed at `now` expires: `now` plus its grace.
    /// `Instant + Duration` panics on overflow, and this runs in the leader's timer task, so the sum is checked; it cannot fail
    /// with the grace capped at two days, and if a platform's clock were that close to its end, expiring at once is the safe side.
    fn deadline(&self, now: Instant, ttl: Duration) -> Instant {
        now.checked_add(self.grace(ttl)).unwrap_or(now)
    }

    /// Twice the TTL, at most `MAX_GRACE`, divided by the test divisor. Saturating, so no TTL can make it panic.
    fn grace(&self, ttl: Duration) -> Duration {
        let divisor = self.divisor.load(std::sync::atomic::Ordering::Relaxed).max(1);
        ttl.saturating_mul(TTL_MULTIPLIER).min(MAX_GRACE) / divisor
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.deadlines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A session's TTL, when it has a non-zero one.
///
/// Parsed by `roster_kv::parse_go_duration`, the parser `State::apply` validated it with, so a TTL that apply accepted is one this reads.
/// The range is not checked again: a session stored before apply checked it still expires, its wait capped by `grace`.
pub(crate) fn ttl_of(session: &Session) -> Option<Duration> {
    roster_kv::parse_go_duration(&session.ttl).ok().filter(|ttl| !ttl.is_zero())
}

#[cfg(test)]
mod tests;
