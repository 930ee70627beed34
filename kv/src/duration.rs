//! Go durations (`"10s"`, `"1m30s"`, `"1.5h"`, `"250ms"`), parsed exactly once for the replicated state.
//!
//! A session's TTL is stored as the text its creator sent, and two parties read it: `State::apply`, which decides whether the session may exist, and the leader's timer, which decides when it expires.
//! If they parsed differently, a TTL one accepts and the other cannot read would make a session that never expires (`"15s "` once did).
//! So both call `parse_go_duration` here, and the HTTP edge calls `session_ttl` too, before proposing.
//!
//! The grammar is Go's `time.ParseDuration`, with two refusals: a negative duration (nothing here has one) and anything Go would refuse, surrounding whitespace included.
//! Arithmetic is checked: a duration beyond Go's range (about 292 years) is an error, never a panic.
//! The grammar itself lives in `roster-scheduler` (job specs' durations are read by it, and it cannot depend on this crate); this crate re-exports it so every reader of a replicated duration calls the same parser.

use std::time::Duration;

pub use roster_scheduler::parse_go_duration;

/// The shortest session TTL (Consul's `session_ttl_min` default).
pub const SESSION_TTL_MIN: Duration = Duration::from_secs(10);
/// The longest session TTL (Consul's `SessionTTLMax`, 24 h).
pub const SESSION_TTL_MAX: Duration = Duration::from_secs(86_400);

/// A session's TTL as `State::apply` accepts it: `None` for none (empty or zero), else between `SESSION_TTL_MIN` and `SESSION_TTL_MAX`.
/// The errors are Consul's texts.
pub fn session_ttl(ttl: &str) -> Result<Option<Duration>, String> {
    if ttl.is_empty() {
        return Ok(None);
    }
    let parsed = parse_go_duration(ttl).map_err(|e| format!("Session TTL '{ttl}' invalid: {e}"))?;
    if parsed.is_zero() {
        return Ok(None);
    }
    if !(SESSION_TTL_MIN..=SESSION_TTL_MAX).contains(&parsed) {
        return Err(format!("Invalid Session TTL '{}', must be between [10s=24h0m0s]", parsed.as_nanos()));
    }
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests;
