//! Log setup: human-readable lines on stderr at the configured level, with hickory's per-query INFO lines held back.
//!
//! The level can change while the agent runs (a config reload): the filter sits behind a reload handle kept here.
//! When `RUST_LOG` is set it chose the filter at start and keeps it; a reload then says so instead of overriding it.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::reload::Handle;

use crate::config::LogLevel;

/// How the installed subscriber's filter can be replaced; `None` inside when `RUST_LOG` chose it.
struct Installed {
    handle: Option<Handle<EnvFilter, tracing_subscriber::Registry>>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// The filter directives for `level`: hickory's and openraft's chatter stays at warn.
fn directives(level: LogLevel) -> String {
    format!("{},hickory_server=warn,openraft=warn", level.as_filter())
}

/// Installs the global subscriber; `RUST_LOG` overrides the configured level when set.
pub fn init(level: LogLevel) {
    let (filter, from_env) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, true),
        Err(_) => (EnvFilter::new(directives(level)), false),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // A second init (tests that run the agent in-process) keeps the first subscriber and its handle.
    if tracing_subscriber::registry().with(filter).with(fmt).try_init().is_ok() {
        let _ = INSTALLED.set(Installed { handle: (!from_env).then_some(handle) });
    }
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

/// Makes `level` the log level from now on, unless `RUST_LOG` was set at start.
pub fn set_level(level: LogLevel) -> Result<LevelChange, String> {
    let Some(installed) = INSTALLED.get() else { return Ok(LevelChange::NotInstalled) };
    let Some(handle) = &installed.handle else { return Ok(LevelChange::KeptRustLog) };
    handle.reload(EnvFilter::new(directives(level))).map_err(|err| format!("changing the log level: {err}"))?;
    Ok(LevelChange::Applied)
}
