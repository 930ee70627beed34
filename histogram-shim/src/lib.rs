//! A log-linear histogram with the API openraft's runtime statistics use (`Histogram`, `PercentileStats`,
//! `AsciiChart`), standing in for the crates.io `base2histogram` through `[patch.crates-io]`.
//!
//! Why it exists: the published crate's first histogram builds precomputed bucket tables for every one of its sixteen
//! widths, about 26 MB that every roster server then kept for its lifetime and built on start. Here a bucket index is
//! computed from the value's leading bits (four buckets per power of two, the published crate's default width:
//! a percentile is reported as the lower bound of a bucket less than a quarter of that bound wide), and a histogram allocates its 252 counters on its first sample.

#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;

/// Buckets per power of two: the two bits after a value's most significant bit pick one of four.
const SUB_BUCKETS: usize = 4;
/// Values below 4 each have a bucket of their own; each of the 62 powers of two from 4 up to 2^63 has four.
const BUCKETS: usize = SUB_BUCKETS * 63;

/// The bucket a value falls in.
fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros() as usize;
    let offset = ((value >> (msb - 2)) & 3) as usize;
    SUB_BUCKETS * (msb - 1) + offset
}

/// The smallest value in a bucket.
fn bucket_floor(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let msb = index / SUB_BUCKETS + 1;
    let offset = (index % SUB_BUCKETS) as u64;
    (4 + offset) << (msb - 2)
}

/// Counts of values by bucket. `T` is the per-period tag of the published API, unused by openraft and kept only so its
/// `Histogram::<()>` spelling resolves.
pub struct Histogram<T = ()> {
    /// Empty until the first sample, then `BUCKETS` long.
    counts: Vec<u64>,
    total: u64,
    _tag: PhantomData<fn() -> T>,
}

impl<T> Histogram<T> {
    /// An empty histogram; it allocates nothing until a value is recorded.
    pub fn new() -> Self {
        Histogram { counts: Vec::new(), total: 0, _tag: PhantomData }
    }

    /// Counts one sample of `value`.
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Counts `count` samples of `value`.
    pub fn record_n(&mut self, value: u64, count: u64) {
        if count == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        let slot = &mut self.counts[bucket_of(value)];
        *slot = slot.saturating_add(count);
        self.total = self.total.saturating_add(count);
    }

    /// How many samples were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The lower bound of the bucket holding the sample at quantile `q` (0.0..=1.0); 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // The rank of the wanted sample, 1-based: the smallest rank whose share of the total reaches q.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_floor(index);
            }
        }
        bucket_floor(BUCKETS - 1)
    }

    /// The summary openraft prints: sample count and eight percentiles.
    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }

    /// Non-empty buckets as (lower bound, count), in value order.
    fn non_empty(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| (bucket_floor(i), *c))
    }
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Histogram { counts: self.counts.clone(), total: self.total, _tag: PhantomData }
    }
}

impl<T> PartialEq for Histogram<T> {
    /// Equal when they hold the same samples, whether or not an empty one has allocated.
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total && self.non_empty().eq(other.non_empty())
    }
}

impl<T> Eq for Histogram<T> {}

impl<T> fmt::Debug for Histogram<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("buckets", &self.non_empty().collect::<Vec<_>>())
            .finish()
    }
}

/// A histogram's sample count and percentiles (each the lower bound of its bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PercentileStats {
    pub samples: u64,
    pub p0_1: u64,
    pub p1: u64,
    pub p5: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[samples: {}, P0.1: {}, P1: {}, P5: {}, P10: {}, P50: {}, P90: {}, P99: {}, P99.9: {}]",
            self.samples, self.p0_1, self.p1, self.p5, self.p10, self.p50, self.p90, self.p99, self.p99_9
        )
    }
}

/// Named histograms drawn as horizontal bars, one row per non-empty bucket.
pub struct AsciiChart<T = ()> {
    series: Vec<(String, Histogram<T>)>,
}

/// The longest bar, in characters.
const BAR_WIDTH: u64 = 40;

impl<T> AsciiChart<T> {
    pub fn new() -> Self {
        AsciiChart { series: Vec::new() }
    }

    /// Adds a named histogram to the chart.
    #[must_use]
    pub fn add(mut self, name: &str, hist: Histogram<T>) -> Self {
        self.series.push((name.to_owned(), hist));
        self
    }

    /// The chart with every bucket's count beside its bar.
    pub fn detailed(&self) -> &Self {
        self
    }
}

impl<T> Default for AsciiChart<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Display for AsciiChart<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, hist) in &self.series {
            writeln!(f, "{name} (n={}):", hist.total())?;
            let peak = hist.non_empty().map(|(_, c)| c).max().unwrap_or(0);
            for (floor, count) in hist.non_empty() {
                let len = (count * BAR_WIDTH).div_ceil(peak);
                writeln!(f, "  {floor:>12} {:<width$} {count}", "█".repeat(len as usize), width = BAR_WIDTH as usize)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        assert_eq!((bucket_of(0), bucket_of(3), bucket_of(4), bucket_of(7), bucket_of(8)), (0, 3, 4, 7, 8));
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for index in 1..BUCKETS {
            assert!(bucket_floor(index) > bucket_floor(index - 1), "bucket {index}");
            assert_eq!(bucket_of(bucket_floor(index)), index);
            assert_eq!(bucket_of(bucket_floor(index) - 1), index - 1);
        }
    }

    #[test]
    fn an_empty_histogram_allocates_nothing_and_reports_zeros() {
        let h: Histogram = Histogram::new();
        assert_eq!(h.counts.capacity(), 0);
        assert_eq!(h.percentile_stats(), PercentileStats::default());
        assert_eq!(h, Histogram::new());
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut h: Histogram = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let stats = h.percentile_stats();
        assert_eq!(stats.samples, 1000);
        // 500 and 990 fall in the buckets [448, 512) and [896, 1024).
        assert_eq!((stats.p50, stats.p99), (448, 896));
        assert!(AsciiChart::new().add("latency", h).to_string().starts_with("latency (n=1000):\n"));
    }

    proptest! {
        #[test]
        fn a_value_is_less_than_a_quarter_above_its_bucket_floor(value in 1u64..) {
            let floor = bucket_floor(bucket_of(value));
            prop_assert!(floor <= value);
            prop_assert!(value - floor < floor.div_ceil(4).max(1), "{value} in a bucket from {floor}");
        }

        #[test]
        fn percentiles_never_decrease(values in proptest::collection::vec(any::<u64>(), 1..200)) {
            let mut h: Histogram = Histogram::new();
            values.iter().for_each(|v| h.record(*v));
            let s = h.percentile_stats();
            let ordered = [s.p0_1, s.p1, s.p5, s.p10, s.p50, s.p90, s.p99, s.p99_9];
            prop_assert!(ordered.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(s.p0_1 <= *values.iter().min().unwrap());
        }
    }
}
