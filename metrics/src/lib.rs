//! roster's metrics recorder: what the subsystems record through the `metrics` facade, named as Consul names it,
//! renamed, filtered and fanned out to the sinks the `telemetry` block asks for.
//!
//! # Layout
//! - `config`: `Config`, the typed `telemetry` block (prefix, hostname, filters, which sinks).
//! - `filter`: Consul's `prefix_filter` (longest matching prefix wins, then `filter_default`).
//! - `front`: the one installed `Recorder`; it renames a key once (`metrics_prefix`, the hostname in gauge names),
//!   decides the filter once, and keeps a composite handle per key, so an event costs one registry lookup.
//! - `inmem`: Consul's in-memory interval sink (10 s intervals) and the JSON summary `/v1/agent/metrics` shows.
//! - `statsd`: the statsd and dogstatsd UDP sinks (go-metrics' line formats, packets of at most 1432 bytes).
//! - `process`: the sampler of process facts (memory, threads, open files, tasks) run by `Metrics::run`.
//!
//! # Names
//! Call sites write Consul's full names with a static string (`consul.kvs.apply`), or `roster.*` for roster's own;
//! a non-default `metrics_prefix` replaces the leading `consul` when a key is first registered.
//! Timers are histograms recorded in milliseconds, as go-metrics records them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod filter;
mod front;
mod inmem;
mod process;
mod statsd;

use std::sync::Arc;
use std::time::Duration;

pub use config::{Config, ConfigError};
pub use inmem::Summary;

/// The installed recorder's read side: the Prometheus exposition and the JSON summary, and the periodic upkeep.
#[derive(Clone)]
pub struct Metrics {
    front: Arc<front::Front>,
}

impl Metrics {
    /// Builds the recorder for `config` and installs it as the process's global recorder.
    ///
    /// Fails when the statsd or dogstatsd socket cannot be opened. A second agent in one process (which only tests
    /// make) finds a recorder installed: it is told so in the log, and its handle renders what it alone records.
    pub fn install(config: &Config) -> Result<Metrics, ConfigError> {
        let front = Arc::new(front::Front::new(config)?);
        let metrics = Metrics { front: front.clone() };
        if metrics::set_global_recorder(front::Installed(front)).is_err() {
            tracing::warn!("metrics: a recorder is already installed in this process; this agent's metrics stay empty");
        }
        Ok(metrics)
    }

    /// Builds the recorder without installing it, for tests that record through `with_local_recorder`.
    pub fn local(config: &Config) -> Result<(Metrics, impl metrics::Recorder + use<>), ConfigError> {
        let front = Arc::new(front::Front::new(config)?);
        Ok((Metrics { front: front.clone() }, front::Installed(front)))
    }

    /// The Prometheus text exposition, or `None` when `prometheus_retention_time` is not positive (Consul's 415).
    pub fn prometheus(&self) -> Option<String> {
        self.front.prometheus.as_ref().map(|p| p.render())
    }

    /// Consul's JSON summary of the most recent finished 10 s interval (the current one while it is the first).
    pub fn summary(&self) -> Summary {
        self.front.inmem.summary(inmem::now_epoch())
    }

    /// Flushes the UDP sinks every 100 ms and samples the process every 10 s until `stop` is cancelled.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let mut flush = tokio::time::interval(Duration::from_millis(100));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = flush.tick() => {}
                () = stop.cancelled() => break,
            }
            self.front.flush();
            // Every 10 s, Consul's interval: the process facts and the summaries' rolling windows.
            if ticks.is_multiple_of(100) {
                process::sample();
                if let Some(prometheus) = &self.front.prometheus {
                    prometheus.run_upkeep();
                }
            }
            ticks += 1;
        }
        self.front.flush();
    }
}
