//! The logging and process keys: `log_json`, `log_file`, `log_rotate_bytes`, `log_rotate_duration`,
//! `log_rotate_max_files` and `pid_file`, with their `-log-json`, `-log-file`, `-log-rotate-*` and `-pid-file` flags.
//!
//! Values mean what they mean in Consul: `log_file` ending in `/` (or naming an existing directory) writes
//! `roster.log` there, `log_rotate_duration` 0 is the 24 h default, `log_rotate_bytes` 0 rotates by time only, and
//! `log_rotate_max_files` 0 keeps every rotated file while -1 keeps none. A rotation key without `log_file` would do
//! nothing, so it is refused rather than accepted and ignored.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cli::AgentArgs;

/// Consul's default `log_rotate_duration`.
const DEFAULT_ROTATE_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The file name used when `log_file` names a directory (Consul's is `consul.log`).
pub const DEFAULT_LOG_FILE_NAME: &str = "roster.log";

/// Where the agent's log goes besides stderr, in which format, and where its pid is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggingConfig {
    /// Every log line as one JSON object with Consul's `@level`, `@message`, `@module` and `@timestamp` fields
    /// (`log_json`, `-log-json`), on stderr and in the log file alike. Off: Consul's text lines.
    pub json: bool,
    /// A log file with rotation (`log_file` and the `log_rotate_*` keys); `None` logs to stderr only.
    pub file: Option<LogFileConfig>,
    /// A file the agent writes its process ID to at start and removes at a clean shutdown (`pid_file`,
    /// `-pid-file`), for init systems and scripts that signal it.
    pub pid_file: Option<PathBuf>,
}

/// The log file and when it is rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileConfig {
    /// The directory the current file and its rotated predecessors live in.
    pub dir: PathBuf,
    /// The current file's name; rotated files are `<stem>-<unix nanos><ext>` (`.log` when the name has none).
    pub name: String,
    /// Rotate once the current file holds this many bytes (`log_rotate_bytes`); 0 rotates by time only.
    pub rotate_bytes: u64,
    /// Rotate once the current file is this old (`log_rotate_duration`, default 24 h).
    pub rotate_duration: Duration,
    /// Rotated files kept (`log_rotate_max_files`): 0 keeps all, -1 none, N the newest N.
    pub max_files: i64,
}

/// One layer's values of these keys; `None` means "not set by this layer".
#[derive(Debug, Default)]
pub(super) struct LoggingLayer {
    json: Option<bool>,
    file: Option<String>,
    rotate_bytes: Option<u64>,
    rotate_duration: Option<Duration>,
    max_files: Option<i64>,
    pid_file: Option<String>,
}

/// Whether `key` (dotted, from the top) is one of the keys [`LoggingLayer::apply`] reads.
pub(super) fn is_key(key: &str) -> bool {
    matches!(
        key,
        "log_json" | "log_file" | "log_rotate_bytes" | "log_rotate_duration" | "log_rotate_max_files" | "pid_file"
    )
}

/// The flags of these keys that were given, as config keys and JSON values, for the command-line layer.
pub(super) fn flag_values(args: &AgentArgs) -> Vec<(&'static str, Value)> {
    let text = |value: &Option<String>| value.clone().map(Value::String);
    [
        ("log_json", args.log_json.map(Value::Bool)),
        ("log_file", text(&args.log_file)),
        ("log_rotate_bytes", args.log_rotate_bytes.map(Value::from)),
        ("log_rotate_duration", text(&args.log_rotate_duration)),
        ("log_rotate_max_files", args.log_rotate_max_files.map(Value::from)),
        ("pid_file", text(&args.pid_file)),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key, value?)))
    .collect()
}

impl LoggingLayer {
    /// Reads `key` (one of [`is_key`]'s) from `value`; the error says what is wrong with the value.
    pub(super) fn apply(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "log_json" => {
                set(&mut self.json, value.as_bool().ok_or_else(|| format!("expected true or false, got {value}")))
            }
            "log_file" => set(&mut self.file, path(value)),
            "log_rotate_bytes" => set(&mut self.rotate_bytes, whole(value, 0).map(|n| n.unsigned_abs())),
            "log_rotate_duration" => set(&mut self.rotate_duration, super::duration_from_json(value)),
            "log_rotate_max_files" => set(&mut self.max_files, whole(value, -1)),
            "pid_file" => set(&mut self.pid_file, path(value)),
            _ => Err(format!("not a logging key: {key}")),
        }
    }

    /// Later layers win key by key.
    pub(super) fn merge(&mut self, later: LoggingLayer) {
        over(&mut self.json, later.json);
        over(&mut self.file, later.file);
        over(&mut self.rotate_bytes, later.rotate_bytes);
        over(&mut self.rotate_duration, later.rotate_duration);
        over(&mut self.max_files, later.max_files);
        over(&mut self.pid_file, later.pid_file);
    }

    /// The settings with Consul's defaults; a rotation key without `log_file` is an error naming it.
    pub(super) fn build(&self, errors: &mut Vec<String>) -> LoggingConfig {
        let file = match &self.file {
            Some(path) => Some(log_file(path, self)),
            None => {
                let set = [
                    ("log_rotate_bytes", self.rotate_bytes.is_some()),
                    ("log_rotate_duration", self.rotate_duration.is_some()),
                    ("log_rotate_max_files", self.max_files.is_some()),
                ];
                for (key, _) in set.iter().filter(|(_, is_set)| *is_set) {
                    errors.push(format!("{key}: rotates the log file, but no log_file is set"));
                }
                None
            }
        };
        LoggingConfig { json: self.json.unwrap_or(false), file, pid_file: self.pid_file.as_ref().map(PathBuf::from) }
    }
}

/// Splits `log_file` as Consul does: a trailing `/` (or, friendlier, an existing directory) means the default name in
/// that directory; otherwise the last component is the file name.
fn log_file(path: &str, layer: &LoggingLayer) -> LogFileConfig {
    let as_path = PathBuf::from(path);
    let (dir, name) = if path.ends_with('/') || as_path.is_dir() {
        (as_path, DEFAULT_LOG_FILE_NAME.to_owned())
    } else {
        let name = as_path.file_name().map_or_else(|| DEFAULT_LOG_FILE_NAME.to_owned(), |n| n.to_string_lossy().into());
        let dir = as_path.parent().map(PathBuf::from).filter(|d| !d.as_os_str().is_empty());
        (dir.unwrap_or_else(|| PathBuf::from(".")), name)
    };
    LogFileConfig {
        dir,
        name,
        rotate_bytes: layer.rotate_bytes.unwrap_or(0),
        rotate_duration: layer.rotate_duration.filter(|d| !d.is_zero()).unwrap_or(DEFAULT_ROTATE_DURATION),
        max_files: layer.max_files.unwrap_or(0),
    }
}

fn set<T>(slot: &mut Option<T>, value: Result<T, String>) -> Result<(), String> {
    *slot = Some(value?);
    Ok(())
}

fn over<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

fn path(value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(text) if !text.trim().is_empty() => Ok(text.to_owned()),
        Some(_) => Err("must not be empty".to_owned()),
        None => Err(format!("expected a path, got {value}")),
    }
}

/// A whole number no smaller than `min`.
fn whole(value: &Value, min: i64) -> Result<i64, String> {
    match value.as_i64() {
        Some(number) if number >= min => Ok(number),
        Some(number) => Err(format!("{number} is out of range (at least {min})")),
        None => Err(format!("expected a whole number, got {value}")),
    }
}
