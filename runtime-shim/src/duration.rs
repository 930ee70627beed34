//! Go-style duration strings (`"10s"`, `"1m30s"`, `"250ms"`), the form Consul and its job files use for every
//! interval and timeout.
//!
//! [`GoDuration`] is what the job spec stores: it deserializes from such a string (refusing negative values, which
//! Go accepts but no field of a job can use) and serializes back to a string that parses to the same value.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written the Go way: a sequence of decimal numbers, each with an optional fraction and a
/// unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), or a bare `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// A duration of whole seconds, for defaults.
    pub const fn from_secs(secs: u64) -> GoDuration {
        GoDuration(Duration::from_secs(secs))
    }

    /// The value as a standard duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Whether the duration is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for GoDuration {
    fn from(duration: Duration) -> GoDuration {
        GoDuration(duration)
    }
}

impl FromStr for GoDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<GoDuration, String> {
        parse(text).map(|nanos| GoDuration(Duration::from_nanos(nanos))).map_err(|why| format!("{text:?}: {why}"))
    }
}

impl fmt::Display for GoDuration {
    /// Writes the shortest exact form: `1h30m`, `1m5s`, `250ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if !nanos.is_multiple_of(1_000_000_000) {
            let (value, unit) = match nanos {
                n if n.is_multiple_of(1_000_000) => (n / 1_000_000, "ms"),
                n if n.is_multiple_of(1_000) => (n / 1_000, "us"),
                n => (n, "ns"),
            };
            return write!(f, "{value}{unit}");
        }
        let secs = self.0.as_secs();
        let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if seconds > 0 {
            write!(f, "{seconds}s")?;
        }
        Ok(())
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GoDuration, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|why: String| serde::de::Error::custom(format!("invalid duration {why}")))
    }
}

/// Parses a Go duration into nanoseconds.
fn parse(text: &str) -> Result<u64, &'static str> {
    if text.starts_with('-') {
        return Err("negative durations are not allowed");
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err("empty duration");
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit (use ns, us, ms, s, m or h)"),
            _ => return Err("unknown unit (use ns, us, ms, s, m or h)"),
        };
        total += scaled(number, scale)?;
        if total > u128::from(u64::MAX) {
            return Err("too large");
        }
        rest = after;
    }
    u64::try_from(total).map_err(|_| "too large")
}

/// `number` (digits with an optional fraction) times `scale` nanoseconds, truncating below a nanosecond as Go does.
fn scaled(number: &str, scale: u128) -> Result<u128, &'static str> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err("missing number");
    }
    if fraction.contains('.') {
        return Err("malformed number");
    }
    // Digits past 30 cannot matter for anything a u64 of nanoseconds holds, and would overflow the u128.
    if whole.len() > 30 {
        return Err("too large");
    }
    let whole_value: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| "malformed number")? };
    let mut value = whole_value.checked_mul(scale).ok_or("too large")?;
    let mut place = scale;
    for digit in fraction.bytes().take(30) {
        place /= 10;
        value += u128::from(digit - b'0') * place;
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
