//! Go durations (`"10s"`, `"1m30s"`, `"250ms"`): the parser every replicated duration goes through (session TTLs in
//! `roster-kv` re-export it), and `Interval`, a job spec's duration field, which reads such a string and writes it back
//! in a form that parses to the same value.
//!
//! The grammar is Go's `time.ParseDuration`, with two refusals: a negative duration (nothing here has one) and anything
//! Go would refuse, surrounding whitespace included. Arithmetic is checked: beyond Go's range is an error, never a panic.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest duration Go can represent, in nanoseconds (`math.MaxInt64`).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Nanoseconds per unit. `µs` is U+00B5 and `μs` U+03BC, both accepted by Go.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration; the error names the input and what is wrong with it.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let mut rest = text;
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
        total_nanos = total_nanos.checked_add(nanos).filter(|n| *n <= MAX_NANOS).ok_or_else(|| invalid("too large"))?;
        rest = after;
    }
    // Both fit: the total is at most i64::MAX nanoseconds.
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid("too large"))?;
    let subsec = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| invalid("too large"))?;
    Ok(Duration::new(secs, subsec))
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
    let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("unknown unit {unit:?} (use ns, us, ms, s, m or h)"));
    };
    let too_large = || "too large".to_owned();
    // Longer digit strings than u128 holds are too large anyway; `parse` reports that as an error, not a panic.
    let whole_value: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    let mut nanos = whole_value.checked_mul(scale).filter(|n| *n <= MAX_NANOS).ok_or_else(too_large)?;
    // Like Go, fraction digits below a nanosecond are dropped.
    let mut fraction_scale = scale;
    for digit in fraction.bytes() {
        fraction_scale /= 10;
        if fraction_scale == 0 {
            break;
        }
        nanos += u128::from(digit - b'0') * fraction_scale;
    }
    Ok((nanos, rest))
}

/// A job spec's duration, held in whole milliseconds (what the scheduler compares with its clock). Written back as
/// `"<n>s"` or `"<n>ms"`, which parses to the same value, so a stored spec reads back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Interval(pub u64);

impl Interval {
    /// Whole seconds.
    pub const fn secs(secs: u64) -> Interval {
        Interval(secs * 1000)
    }

    /// The value in milliseconds.
    pub const fn ms(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) { write!(f, "{}s", self.0 / 1000) } else { write!(f, "{}ms", self.0) }
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Interval, D::Error> {
        let text = String::deserialize(deserializer)?;
        let duration = parse_go_duration(&text).map_err(serde::de::Error::custom)?;
        let ms = u64::try_from(duration.as_millis()).map_err(|_| serde::de::Error::custom("duration too large"))?;
        if !duration.as_nanos().is_multiple_of(1_000_000) {
            return Err(serde::de::Error::custom(format!("{text:?} is finer than a millisecond")));
        }
        Ok(Interval(ms))
    }
}
