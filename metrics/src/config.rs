//! `Config`: the `telemetry` block as the recorder uses it, already parsed and checked by the agent's config load.

use std::net::SocketAddr;
use std::time::Duration;

/// What the recorder does with what the subsystems record.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Replaces the leading `consul` of Consul's metric names (`metrics_prefix`; default `consul`).
    pub prefix: String,
    /// Inserted after the prefix in gauge names, as go-metrics does unless `disable_hostname` (`None` then).
    pub hostname: Option<String>,
    /// `prefix_filter`: `(prefix, allowed)` rules; the longest matching prefix decides.
    pub prefix_filter: Vec<(String, bool)>,
    /// `filter_default`: whether a metric no rule matches is kept.
    pub filter_default: bool,
    /// `prometheus_retention_time`; zero leaves the Prometheus exposition off (Consul answers 415 then).
    pub prometheus_retention: Duration,
    /// `statsd_address`: a statsd server to send every metric to over UDP.
    pub statsd: Option<SocketAddr>,
    /// `dogstatsd_addr`: a DogStatsD server, sent labels and `dogstatsd_tags` as tags.
    pub dogstatsd: Option<SocketAddr>,
    /// `dogstatsd_tags`: `key:value` tags added to every DogStatsD line.
    pub dogstatsd_tags: Vec<String>,
}

impl Default for Config {
    /// Consul's defaults: prefix `consul`, every metric kept, only the in-memory sink.
    fn default() -> Self {
        Config {
            prefix: "consul".into(),
            hostname: None,
            prefix_filter: Vec::new(),
            filter_default: true,
            prometheus_retention: Duration::ZERO,
            statsd: None,
            dogstatsd: None,
            dogstatsd_tags: Vec::new(),
        }
    }
}

/// Why the recorder could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(why: impl Into<String>) -> ConfigError {
        ConfigError(why.into())
    }
}
