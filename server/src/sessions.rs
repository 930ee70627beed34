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
                deadlines.insert(id.clone(), now + self.grace(*ttl));
            }
        }
    }

    /// Pushes a session's deadline back to twice its TTL from `now`.
    pub(crate) fn renew(&self, now: Instant, id: &str, ttl: Duration) {
        let deadline = now + self.grace(ttl);
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
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Makes every wait `divisor` times shorter (tests of expiry, which would otherwise take at least 20 s).
    #[cfg(test)]
    pub(crate) fn set_divisor(&self, divisor: u32) {
        self.divisor.store(divisor.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    fn grace(&self, ttl: Duration) -> Duration {
        ttl * TTL_MULTIPLIER / self.divisor.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.deadlines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A session's TTL, when it has a non-zero one that parses (the HTTP layer validated it before creation).
pub(crate) fn ttl_of(session: &Session) -> Option<Duration> {
    parse_go_duration(&session.ttl).filter(|ttl| !ttl.is_zero())
}

/// Parses a Go duration such as `10s`, `1m30s`, `1.5h` or `250ms`; `None` when it is not one.
fn parse_go_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests;
