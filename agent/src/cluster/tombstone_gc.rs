//! The leader's tombstone GC (Consul's `TombstoneGC` and `reapTombstones`): once the deletions that left KV
//! tombstones are older than the tombstone TTL, propose one `Command::TombstoneReap` that every server applies.
//!
//! Consul keeps tombstones for `tombstone_ttl` (15 minutes) so that a blocking query on a deleted key or prefix sees
//! its index move before the tombstone goes, and batches expiries at a 30 s granularity so a burst of deletes costs
//! one reap. roster does the same without hints from the state machine: every `granularity` the leader notes the last
//! applied index with the time it saw it; a note older than the TTL says every deletion at or before its index is
//! at least that old, so that index is the one to reap up to. The proposal is made only when a tombstone that old
//! exists, so an idle or delete-free cluster writes nothing.
//!
//! Level-triggered like the other leader duties: the notes live only on the leader, so a new leader starts over and
//! reaps one TTL after it took over, which only ever keeps a tombstone longer, never removes one early. The time is
//! the leader's; what it decided travels in the command (`reap_index`, and its clock for lock-delays), so the apply
//! stays deterministic.
//!
//! Test knob: `ROSTER_TEST_TOMBSTONE_TTL` (a Go duration, e.g. `2s`) replaces the TTL; the granularity becomes a
//! quarter of it, at most 30 s. It is roster's own, for tests and benchmarks; Consul has no such setting.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roster_kv::{Command, CommandResult};
use roster_server::Server;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Consul's `tombstone_ttl`.
const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// Consul's `tombstone_ttl_granularity`, and the most any TTL's granularity may be.
const MAX_GRANULARITY: Duration = Duration::from_secs(30);
/// The environment variable that replaces the TTL (see the module doc).
const TTL_ENV: &str = "ROSTER_TEST_TOMBSTONE_TTL";

/// Runs the duty in the background until `token` is cancelled.
pub(crate) fn spawn(server: Server, token: CancellationToken) {
    let ttl = ttl_from_env();
    let granularity = (ttl / 4).clamp(Duration::from_millis(10), MAX_GRANULARITY);
    tokio::spawn(async move {
        let mut notes = Notes::default();
        let mut tick = tokio::time::interval(granularity);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !server.is_leader() {
                notes = Notes::default();
                continue;
            }
            let (last_index, tombstones) = server.read_local(|state| (state.last_index(), state.tombstones()));
            let Some(reap_index) = notes.expired(Instant::now(), ttl, last_index) else { continue };
            if tombstones.oldest_index.is_none_or(|oldest| oldest > reap_index) {
                continue;
            }
            let start = Instant::now();
            match server.write(Command::TombstoneReap { reap_index, now_ms: now_ms() }).await {
                Ok(CommandResult::Bool(_)) => {
                    tracing::debug!(reap_index, held = tombstones.count, took = ?start.elapsed(), "tombstones reaped");
                }
                Ok(CommandResult::Rejected(why)) => tracing::warn!("tombstone reap refused: {why}"),
                // Lost leadership or a write timed out: the next tick on the (new) leader tries again.
                Err(why) => tracing::debug!("tombstone reap: {why}"),
            }
        }
    });
}

/// The leader's notes of (when, last applied index), oldest first.
#[derive(Debug, Default)]
struct Notes {
    seen: VecDeque<(Instant, u64)>,
}

impl Notes {
    /// Notes `last_index` at `now`, and returns the highest noted index older than `ttl`, if any: every deletion at
    /// or before it happened at least `ttl` ago. The notes it returns are dropped (a later one supersedes them).
    fn expired(&mut self, now: Instant, ttl: Duration, last_index: u64) -> Option<u64> {
        if self.seen.back().is_none_or(|(_, index)| *index != last_index) {
            self.seen.push_back((now, last_index));
        }
        let mut expired = None;
        while let Some((at, index)) = self.seen.front().copied() {
            if now.duration_since(at) < ttl {
                break;
            }
            expired = Some(index);
            self.seen.pop_front();
        }
        expired
    }
}

/// The TTL: `ROSTER_TEST_TOMBSTONE_TTL` when set (a bad value is refused loudly and the default kept), else Consul's.
fn ttl_from_env() -> Duration {
    let Ok(value) = std::env::var(TTL_ENV) else { return DEFAULT_TTL };
    match roster_kv::parse_go_duration(&value) {
        Ok(ttl) if !ttl.is_zero() => {
            tracing::warn!(?ttl, "{TTL_ENV} is set: KV tombstones are reaped after {ttl:?}, not Consul's 15m");
            ttl
        }
        _ => {
            tracing::error!("{TTL_ENV}={value:?} is not a positive Go duration; keeping the default 15m");
            DEFAULT_TTL
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_reaped_only_once_its_note_is_older_than_the_ttl() {
        let ttl = Duration::from_secs(60);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut notes = Notes::default();
        assert_eq!(notes.expired(at(0), ttl, 10), None);
        assert_eq!(notes.expired(at(30), ttl, 20), None);
        // The same index again is not a new note: nothing happened in between.
        assert_eq!(notes.expired(at(45), ttl, 20), None);
        assert_eq!(notes.expired(at(60), ttl, 25), Some(10), "index 10 was last seen 60 s ago");
        assert_eq!(notes.expired(at(89), ttl, 25), None, "index 20 was first seen 59 s ago");
        assert_eq!(notes.expired(at(200), ttl, 30), Some(25), "the newest expired note wins");
        assert_eq!(notes.seen.len(), 1);
    }
}
