//! Consul's in-memory sink (go-metrics' `InmemSink` as Consul configures it): counters and timers are aggregated
//! per 10 s interval of the wall clock (count, sum, min, max, sum of squares, rate per second), and
//! `/v1/agent/metrics` shows the most recent finished interval, or the current one while it is the first.
//!
//! Each metric keeps its own current and previous interval under its own lock, so recording touches no shared
//! state. Gauges keep their last value and are shown in every interval once set: go-metrics shows a gauge only in
//! the intervals it was set in, which suits Consul's gauges (re-emitted every few seconds) but would hide roster's,
//! which are set when they change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key};
use serde::{Deserialize, Serialize};

/// The interval length in seconds (Consul's 10 s); rates are per second over it.
const INTERVAL_SECS: u64 = 10;

/// The current interval's number: seconds since the epoch over `INTERVAL_SECS`.
pub(crate) fn now_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / INTERVAL_SECS)
}

/// `GET /v1/agent/metrics`: go-metrics' `MetricsSummary`, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    /// The interval's start, as Go prints a UTC time (`2017-08-08 02:55:10 +0000 UTC`).
    pub timestamp: String,
    /// Each gauge's last value.
    pub gauges: Vec<GaugeValue>,
    /// go-metrics' `EmitKey` points; roster emits none.
    pub points: Vec<PointValue>,
    /// Counters: the increments seen in the interval, aggregated.
    pub counters: Vec<SampledValue>,
    /// Timers and other samples (milliseconds for timers), aggregated.
    pub samples: Vec<SampledValue>,
}

/// One gauge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GaugeValue {
    /// The metric's full name.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// One series of points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PointValue {
    /// The metric's full name.
    pub name: String,
    /// The values emitted in the interval.
    pub points: Vec<f64>,
}

/// One counter or sample, aggregated over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SampledValue {
    /// The metric's full name.
    pub name: String,
    /// How many values were recorded.
    pub count: u64,
    /// `Sum` per second of the interval.
    pub rate: f64,
    /// The values' sum.
    pub sum: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// `Sum / Count`.
    pub mean: f64,
    /// The sample standard deviation (0 for fewer than two values).
    pub stddev: f64,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// The sink: every metric it was given a handle for, to list them in a summary.
pub(crate) struct InmemSink {
    /// The interval the sink was made in: the only one there is to show until it ends.
    first_epoch: u64,
    counters: Mutex<Vec<Arc<Sampled>>>,
    samples: Mutex<Vec<Arc<Sampled>>>,
    gauges: Mutex<Vec<Arc<LastValue>>>,
}

impl Default for InmemSink {
    fn default() -> Self {
        InmemSink::starting_at(now_epoch())
    }
}

impl InmemSink {
    pub(crate) fn starting_at(first_epoch: u64) -> InmemSink {
        InmemSink { first_epoch, counters: Mutex::default(), samples: Mutex::default(), gauges: Mutex::default() }
    }

    pub(crate) fn counter(&self, key: &Key) -> Counter {
        let metric = Arc::new(Sampled::new(key));
        lock(&self.counters).push(metric.clone());
        Counter::from_arc(metric)
    }

    pub(crate) fn histogram(&self, key: &Key) -> Histogram {
        let metric = Arc::new(Sampled::new(key));
        lock(&self.samples).push(metric.clone());
        Histogram::from_arc(metric)
    }

    pub(crate) fn gauge(&self, key: &Key) -> Gauge {
        let (name, labels, _) = identity(key);
        let metric = Arc::new(LastValue { name, labels, bits: AtomicU64::new(0), set: AtomicBool::new(false) });
        lock(&self.gauges).push(metric.clone());
        Gauge::from_arc(metric)
    }

    /// The summary shown during interval `now`.
    pub(crate) fn summary(&self, now: u64) -> Summary {
        let epoch = if now <= self.first_epoch { now } else { now - 1 };
        let timestamp = chrono::DateTime::from_timestamp(i64::try_from(epoch * INTERVAL_SECS).unwrap_or(0), 0)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M:%S +0000 UTC")
            .to_string();
        let mut gauges: Vec<(String, GaugeValue)> = lock(&self.gauges)
            .iter()
            .filter(|g| g.set.load(Ordering::Relaxed))
            .map(|g| {
                let value = f64::from_bits(g.bits.load(Ordering::Relaxed));
                (sort_key(&g.name, &g.labels), GaugeValue { name: g.name.clone(), value, labels: g.labels.clone() })
            })
            .collect();
        gauges.sort_by(|a, b| a.0.cmp(&b.0));
        Summary {
            timestamp,
            gauges: gauges.into_iter().map(|(_, g)| g).collect(),
            points: Vec::new(),
            counters: sampled_at(&lock(&self.counters), epoch),
            samples: sampled_at(&lock(&self.samples), epoch),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The values of every metric in `metrics` recorded during `epoch`, in go-metrics' order (by name, then labels).
fn sampled_at(metrics: &[Arc<Sampled>], epoch: u64) -> Vec<SampledValue> {
    let mut out: Vec<(&str, SampledValue)> = metrics
        .iter()
        .filter_map(|m| {
            let agg = m.at(epoch)?;
            Some((m.sort_key.as_str(), agg.value(&m.name, &m.labels)))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

/// A key's display name and labels, and the key go-metrics sorts by (`name;label=value...`).
fn identity(key: &Key) -> (String, BTreeMap<String, String>, String) {
    let name = key.name().replace(' ', "_");
    let labels: BTreeMap<String, String> = key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
    let sort = sort_key(&name, &labels);
    (name, labels, sort)
}

fn sort_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let mut key = name.to_owned();
    for (k, v) in labels {
        key.push_str(&format!(";{k}={v}").replace(' ', "_"));
    }
    key
}

/// A gauge's last value (`f64` bits) and whether it was ever set.
struct LastValue {
    name: String,
    labels: BTreeMap<String, String>,
    bits: AtomicU64,
    set: AtomicBool,
}

impl LastValue {
    fn update(&self, f: impl Fn(f64) -> f64) {
        // `fetch_update` only fails when the closure returns `None`, which this one never does.
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some(f(f64::from_bits(bits)).to_bits()));
        self.set.store(true, Ordering::Relaxed);
    }
}

impl GaugeFn for LastValue {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

/// A counter or timer: its current and previous interval.
struct Sampled {
    name: String,
    labels: BTreeMap<String, String>,
    sort_key: String,
    windows: Mutex<[(u64, Aggregate); 2]>,
}

impl Sampled {
    fn new(key: &Key) -> Sampled {
        let (name, labels, sort_key) = identity(key);
        Sampled { name, labels, sort_key, windows: Mutex::new([(0, Aggregate::default()); 2]) }
    }

    fn ingest(&self, epoch: u64, value: f64) {
        let mut windows = lock(&self.windows);
        if windows[0].0 != epoch {
            windows[1] = windows[0];
            windows[0] = (epoch, Aggregate::default());
        }
        windows[0].1.ingest(value);
    }

    fn at(&self, epoch: u64) -> Option<Aggregate> {
        lock(&self.windows).iter().find(|(e, agg)| *e == epoch && agg.count > 0).map(|(_, agg)| *agg)
    }
}

impl CounterFn for Sampled {
    fn increment(&self, value: u64) {
        // Counts stay far below 2^53, where f64 is exact.
        #[allow(clippy::cast_precision_loss)]
        self.ingest(now_epoch(), value as f64);
    }

    fn absolute(&self, value: u64) {
        #[allow(clippy::cast_precision_loss)]
        self.ingest(now_epoch(), value as f64);
    }
}

impl HistogramFn for Sampled {
    fn record(&self, value: f64) {
        self.ingest(now_epoch(), value);
    }
}

/// go-metrics' `AggregateSample`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Aggregate {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Aggregate {
    fn ingest(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.sum_sq += value * value;
        if self.count == 1 || value < self.min {
            self.min = value;
        }
        if self.count == 1 || value > self.max {
            self.max = value;
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn value(&self, name: &str, labels: &BTreeMap<String, String>) -> SampledValue {
        let count = self.count as f64;
        let mean = if self.count == 0 { 0.0 } else { self.sum / count };
        // go-metrics' formula: sqrt((n·Σx² − (Σx)²) / (n·(n−1))).
        let div = count * (count - 1.0);
        let stddev = if div == 0.0 { 0.0 } else { ((count * self.sum_sq - self.sum * self.sum) / div).max(0.0).sqrt() };
        SampledValue {
            name: name.to_owned(),
            count: self.count,
            rate: self.sum / INTERVAL_SECS as f64,
            sum: self.sum,
            min: self.min,
            max: self.max,
            mean,
            stddev,
            labels: labels.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
