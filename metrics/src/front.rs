//! The one installed `Recorder`. A key is renamed (`metrics_prefix`, the hostname in gauge names), filtered and
//! registered with every sink once, when it is first recorded; the composite handle is kept in a registry, so a
//! later event costs one lookup of the static key and one update per sink, with nothing allocated.

use std::sync::Arc;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::registry::{Registry, Storage};

use crate::config::{Config, ConfigError};
use crate::filter::Filter;
use crate::inmem::InmemSink;
use crate::statsd::{Flavor, UdpSink};

/// Consul's (go-metrics') Prometheus summaries report these quantiles.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// The recorder's state: how keys are renamed and filtered, and the sinks every kept metric goes to.
pub(crate) struct Front {
    registry: Registry<Key, Sinks>,
    pub(crate) prometheus: Option<PrometheusHandle>,
    pub(crate) inmem: Arc<InmemSink>,
    udp: Vec<Arc<UdpSink>>,
}

/// What a new key is registered with; the registry's storage.
struct Sinks {
    prefix: String,
    hostname: Option<String>,
    filter: Filter,
    prometheus: Option<PrometheusRecorder>,
    inmem: Arc<InmemSink>,
    udp: Vec<Arc<UdpSink>>,
}

impl Front {
    pub(crate) fn new(config: &Config) -> Result<Front, ConfigError> {
        let prometheus = (!config.prometheus_retention.is_zero()).then(|| {
            PrometheusBuilder::new()
                .set_quantiles(&QUANTILES)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder()
        });
        let mut udp = Vec::new();
        if let Some(addr) = config.statsd {
            udp.push(Arc::new(UdpSink::new(addr, Flavor::Statsd, &[])?));
        }
        if let Some(addr) = config.dogstatsd {
            udp.push(Arc::new(UdpSink::new(addr, Flavor::DogStatsd, &config.dogstatsd_tags)?));
        }
        let inmem = Arc::new(InmemSink::default());
        let handle = prometheus.as_ref().map(PrometheusRecorder::handle);
        let sinks = Sinks {
            prefix: config.prefix.clone(),
            hostname: config.hostname.clone(),
            filter: Filter::new(&config.prefix_filter, config.filter_default),
            prometheus,
            inmem: inmem.clone(),
            udp: udp.clone(),
        };
        Ok(Front { registry: Registry::new(sinks), prometheus: handle, inmem, udp })
    }

    /// Sends what the UDP sinks have buffered.
    pub(crate) fn flush(&self) {
        for sink in &self.udp {
            sink.flush();
        }
    }
}

impl Sinks {
    /// The name a key is exported under, and whether it is kept.
    fn name(&self, name: &str, gauge: bool) -> Option<SharedString> {
        let mut parts = name.splitn(2, '.');
        let (first, rest) = (parts.next().unwrap_or(name), parts.next());
        let first = if first == "consul" { self.prefix.as_str() } else { first };
        let full = match (rest, self.hostname.as_deref().filter(|_| gauge)) {
            (Some(rest), Some(host)) => format!("{first}.{host}.{rest}"),
            (None, Some(host)) => format!("{first}.{host}"),
            (Some(rest), None) => format!("{first}.{rest}"),
            (None, None) => first.to_owned(),
        };
        self.filter.allows(&full).then(|| SharedString::from(full))
    }

    fn key(&self, key: &Key, gauge: bool) -> Option<Key> {
        let name = self.name(key.name(), gauge)?;
        Some(Key::from_parts(KeyName::from(name), key.labels().cloned().collect::<Vec<_>>()))
    }
}

/// A metric's `# HELP` line: its dotted name as recorded, which is what go-metrics' Prometheus sink says of a metric it
/// has no definition for (and `promtool check metrics` wants one).
fn help(key: &Key) -> SharedString {
    SharedString::from(key.name().to_owned())
}

/// Registration metadata for the sinks, which ignore it.
fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

/// One event's handle in every sink.
pub(crate) struct Fan<T>(Vec<T>);

impl CounterFn for Fan<Counter> {
    fn increment(&self, value: u64) {
        for handle in &self.0 {
            handle.increment(value);
        }
    }

    fn absolute(&self, value: u64) {
        for handle in &self.0 {
            handle.absolute(value);
        }
    }
}

impl GaugeFn for Fan<Gauge> {
    fn increment(&self, value: f64) {
        for handle in &self.0 {
            handle.increment(value);
        }
    }

    fn decrement(&self, value: f64) {
        for handle in &self.0 {
            handle.decrement(value);
        }
    }

    fn set(&self, value: f64) {
        for handle in &self.0 {
            handle.set(value);
        }
    }
}

impl HistogramFn for Fan<Histogram> {
    fn record(&self, value: f64) {
        for handle in &self.0 {
            handle.record(value);
        }
    }
}

impl Storage<Key> for Sinks {
    type Counter = Arc<Fan<Counter>>;
    type Gauge = Arc<Fan<Gauge>>;
    type Histogram = Arc<Fan<Histogram>>;

    fn counter(&self, original: &Key) -> Self::Counter {
        let Some(key) = self.key(original, false) else {
            return Arc::new(Fan(Vec::new()));
        };
        let mut handles = vec![self.inmem.counter(&key)];
        if let Some(prometheus) = &self.prometheus {
            prometheus.describe_counter(key.name().to_owned().into(), None, help(original));
            handles.push(prometheus.register_counter(&key, &metadata()));
        }
        handles.extend(self.udp.iter().map(|sink| sink.counter(&key)));
        Arc::new(Fan(handles))
    }

    fn gauge(&self, original: &Key) -> Self::Gauge {
        let Some(key) = self.key(original, true) else {
            return Arc::new(Fan(Vec::new()));
        };
        let mut handles = vec![self.inmem.gauge(&key)];
        if let Some(prometheus) = &self.prometheus {
            prometheus.describe_gauge(key.name().to_owned().into(), None, help(original));
            handles.push(prometheus.register_gauge(&key, &metadata()));
        }
        handles.extend(self.udp.iter().map(|sink| sink.gauge(&key)));
        Arc::new(Fan(handles))
    }

    fn histogram(&self, original: &Key) -> Self::Histogram {
        let Some(key) = self.key(original, false) else {
            return Arc::new(Fan(Vec::new()));
        };
        let mut handles = vec![self.inmem.histogram(&key)];
        if let Some(prometheus) = &self.prometheus {
            prometheus.describe_histogram(key.name().to_owned().into(), None, help(original));
            handles.push(prometheus.register_histogram(&key, &metadata()));
        }
        handles.extend(self.udp.iter().map(|sink| sink.histogram(&key)));
        Arc::new(Fan(handles))
    }
}

/// The `Recorder` the process installs: the front, shared with the `Metrics` handle that reads it.
pub(crate) struct Installed(pub(crate) Arc<Front>);

impl Recorder for Installed {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.registry.get_or_create_counter(key, Arc::clone))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.registry.get_or_create_gauge(key, Arc::clone))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.registry.get_or_create_histogram(key, Arc::clone))
    }
}
