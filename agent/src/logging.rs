//! Log setup: every event goes to two independent sinks.
//!
//! - The agent's own log: stderr, and the `log_file` when one is configured (rotated by `file`), in Consul's text or
//!   JSON lines (`format`), at the configured level with hickory's and openraft's chatter held at warn. The level
//!   can change while the agent runs (a config reload): this sink's filter sits behind a reload handle kept here.
//!   When `RUST_LOG` is set it chose the filter at start and keeps it; a reload then says so instead of overriding it.
//! - The monitor fan-out (`monitor`): the clients of `/v1/agent/monitor`, each at its own level and format,
//!   independent of the agent's level, disabled for every callsite while no client is connected.

mod file;
mod format;
mod monitor;

use std::io::Write as _;
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::reload::Handle;

use crate::config::{LogLevel, LoggingConfig};
pub use monitor::{BUFFER_LINES, Monitors, Subscription};

/// How the installed subscriber's filter can be replaced; `None` inside when `RUST_LOG` chose it.
struct Installed {
    handle: Option<Handle<EnvFilter, tracing_subscriber::Registry>>,
    monitors: Monitors,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// The filter directives for `level`: hickory's and openraft's chatter stays at warn.
fn directives(level: LogLevel) -> String {
    format!("{},hickory_server=warn,openraft=warn", level.as_filter())
}

/// Installs the global subscriber: the agent's log at `level` (`RUST_LOG` overrides it when set) in the configured
/// format and file, and the monitor fan-out. Fails only when the log file cannot be opened.
pub fn init(level: LogLevel, config: &LoggingConfig) -> Result<(), String> {
    let (filter, from_env) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, true),
        Err(_) => (EnvFilter::new(directives(level)), false),
    };
    let log_file = match &config.file {
        Some(file_config) => Some(file::RotatingFile::open(file_config.clone()).map_err(|err| {
            format!("cannot open the log file {}: {err}", file_config.dir.join(&file_config.name).display())
        })?),
        None => None,
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let sink = Sink { json: config.json, file: Mutex::new(log_file.map(|file| (file, false))) }.with_filter(filter);
    let monitors = Monitors::default();
    // A second init (tests that run the agent in-process) keeps the first subscriber and its handle.
    if tracing_subscriber::registry().with(sink).with(monitors.layer()).try_init().is_ok() {
        let _ = INSTALLED.set(Installed { handle: (!from_env).then_some(handle), monitors });
    }
    Ok(())
}

/// The monitor clients' registry of the installed subscriber; a detached one (no lines ever) when none is installed.
pub fn monitors() -> Monitors {
    INSTALLED.get().map(|installed| installed.monitors.clone()).unwrap_or_default()
}

/// What [`set_level`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    /// The new level is in force.
    Applied,
    /// `RUST_LOG` chose the filter and keeps it.
    KeptRustLog,
    /// No subscriber of ours is installed (the agent runs inside a test); nothing to change.
    NotInstalled,
}

/// Makes `level` the log level from now on, unless `RUST_LOG` was set at start. Monitor clients keep theirs.
pub fn set_level(level: LogLevel) -> Result<LevelChange, String> {
    let Some(installed) = INSTALLED.get() else { return Ok(LevelChange::NotInstalled) };
    let Some(handle) = &installed.handle else { return Ok(LevelChange::KeptRustLog) };
    handle.reload(EnvFilter::new(directives(level))).map_err(|err| format!("changing the log level: {err}"))?;
    Ok(LevelChange::Applied)
}

/// Parses a monitor's `loglevel` as Consul validates it: `trace`, `debug`, `info`, `warn`, `err` or `error`, in any
/// case (Consul has no `warning`).
pub fn parse_monitor_level(text: &str) -> Option<LogLevel> {
    match text.to_ascii_uppercase().as_str() {
        "TRACE" => Some(LogLevel::Trace),
        "DEBUG" => Some(LogLevel::Debug),
        "INFO" => Some(LogLevel::Info),
        "WARN" => Some(LogLevel::Warn),
        "ERR" | "ERROR" => Some(LogLevel::Error),
        _ => None,
    }
}

/// The agent's own log: stderr and the optional log file.
struct Sink {
    json: bool,
    /// The log file, and whether a write to it has failed (said once on stderr, not per line).
    file: Mutex<Option<(file::RotatingFile, bool)>>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Sink {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
        let captured = format::Captured::of(event);
        let line = if self.json { captured.json() } else { captured.text() };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((file, failed)) = file.as_mut() {
            match file.write_line(line.as_bytes()) {
                Ok(()) => *failed = false,
                Err(err) if !*failed => {
                    *failed = true;
                    let note = format!("roster: writing the log file {}: {err}\n", file.path().display());
                    let _ = std::io::stderr().lock().write_all(note.as_bytes());
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
