//! Go-style durations (`"10s"`, `"1m30s"`, `"100ms"`, integer nanoseconds), shared by config and the HTTP API.
//!
//! Consul is written in Go, so every duration its clients send is either the text form of Go's
//! `time.Duration` or a bare integer count of nanoseconds.
//! Parsing is `roster_kv::parse_go_duration`: `time.ParseDuration`, except that negative values are refused (nothing
//! has a meaningful negative duration, and `std::time::Duration` cannot hold one) and surrounding whitespace is not
//! trimmed, as Go does not trim it.

use std::time::Duration;

/// Go's `time.ParseDuration` without negative values: the one parser of the replicated state, so that a duration the
/// agent accepts (a session TTL, a check interval, a config value) is one the servers read the same way.
pub use roster_kv::parse_go_duration;

/// Accepts a duration as JSON: a Go duration string, or a non-negative integer of nanoseconds.
pub fn duration_from_json(value: &serde_json::Value) -> Result<Duration, String> {
    match value {
        serde_json::Value::String(text) => parse_go_duration(text),
        serde_json::Value::Number(number) => match number.as_u64() {
            Some(nanos) => Ok(Duration::from_nanos(nanos)),
            None => Err(format!("invalid duration {number}: expected a non-negative whole number of nanoseconds")),
        },
        other => Err(format!("invalid duration {other}: expected a string like \"10s\" or integer nanoseconds")),
    }
}

/// Formats a duration the way Go's `Duration.String()` does (`"0s"`, `"1.5ms"`, `"1m30s"`, `"1h0m0s"`).
///
/// The HTTP API echoes check intervals and TTLs in this form, and clients compare them textually.
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 1_000_000));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

/// Parses one `<number><unit>` component and returns its nanoseconds and the unparsed rest.
/// Renders `nanos / unit` with the fractional part's trailing zeros removed (`1500, 1000` → `"1.5"`).
fn decimal(nanos: u128, unit: u128) -> String {
    let whole = nanos / unit;
    let fraction = nanos % unit;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}
