//! Log setup: human-readable lines on stderr at the configured level, with hickory's per-query INFO lines held back.

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Installs the global subscriber; `RUST_LOG` overrides the configured level when set.
pub fn init(level: LogLevel) {
    let default = format!("{},hickory_server=warn,openraft=warn", level.as_filter());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second init (tests that run the agent in-process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
