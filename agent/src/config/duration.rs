//! Go-style durations (`"10s"`, `"1m30s"`, `"100ms"`, integer nanoseconds), shared by config and the HTTP API.
//!
//! Consul is written in Go, so every duration its clients send is either the text form of Go's
//! `time.Duration` or a bare integer count of nanoseconds.
//! Parsing follows `time.ParseDuration`, except that negative values are refused: nothing in the
//! agent has a meaningful negative duration, and `std::time::Duration` cannot hold one.

use std::time::Duration;

/// Nanoseconds per unit, longest suffix first so `ms` is tried before `m` and `s`.
const UNITS: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 0), // Go has no day unit; listed only so the error message can say so.
];

/// Parses a Go duration string such as `"10s"`, `"1m30s"`, `"1.5h"`, `"100ms"` or `"0"`.
///
/// Errors are human-readable and name the offending input, so callers can pass them on as is.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let mut rest = text.trim();
    if let Some(unsigned) = rest.strip_prefix('+') {
        rest = unsigned;
    } else if rest.starts_with('-') {
        return Err(invalid("durations cannot be negative"));
    }
    // Go accepts a bare "0" (and only zero) without a unit.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("empty"));
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let (nanos, after) = parse_component(rest).map_err(|why| invalid(&why))?;
        total_nanos = total_nanos.saturating_add(nanos);
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid("too large"))?;
    // The remainder is below 10^9, so it always fits in u32.
    let subsec = u32::try_from(total_nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

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
fn parse_component(text: &str) -> Result<(u128, &str), String> {
    let number_len = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, after_number) = text.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(format!("expected a number at {text:?}"));
    }
    let unit_len = after_number.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after_number.len());
    let (unit, rest) = after_number.split_at(unit_len);
    if unit.is_empty() {
        return Err(format!("missing unit after {number:?} (use ns, us, ms, s, m or h)"));
    }
    let scale = match UNITS.iter().find(|(name, _)| *name == unit) {
        Some((_, scale)) if *scale > 0 => *scale,
        _ => return Err(format!("unknown unit {unit:?} (use ns, us, ms, s, m or h)")),
    };
    let too_large = || "too large".to_owned();
    let whole_value: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    let mut nanos = whole_value.checked_mul(scale).ok_or_else(too_large)?;
    // Like Go, keep only as many fraction digits as can matter and truncate the rest.
    let mut fraction_scale = scale;
    for digit in fraction.bytes().take(30) {
        fraction_scale /= 10;
        nanos += u128::from(digit - b'0') * fraction_scale;
    }
    Ok((nanos, rest))
}

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
