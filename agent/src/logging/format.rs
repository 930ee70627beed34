//! One log event as one line, in Consul's two formats: hclog's text (`<time> [LEVEL] module: message: k=v`) and its
//! JSON (`{"@level","@message","@module","@timestamp",...fields}`), so tools written for Consul's logs read roster's.
//!
//! An event is captured once ([`Captured`]) and rendered in whichever formats its readers want: the stderr/file sink
//! in the configured one, each monitor client in the one it asked for.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};

/// The parts of one event every format needs.
pub(crate) struct Captured {
    /// When the event was logged.
    pub at: SystemTime,
    /// Its level.
    pub level: tracing::Level,
    /// Where it came from: the `tracing` target, or the `log` crate's target for a `log` record.
    pub module: String,
    /// The message (the `message` field), empty when the event has none.
    pub message: String,
    /// Every other field, in the order logged.
    pub fields: Vec<(String, Value)>,
}

impl Captured {
    /// Captures `event` as logged now.
    pub fn of(event: &tracing::Event<'_>) -> Captured {
        let meta = event.metadata();
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        Captured {
            at: SystemTime::now(),
            level: *meta.level(),
            module: visitor.log_target.take().unwrap_or_else(|| meta.target().to_owned()),
            message: visitor.message,
            fields: visitor.fields,
        }
    }

    /// hclog's text line, newline-terminated: `2006-01-02T15:04:05.000Z [INFO]  module: message: key=value`.
    pub fn text(&self) -> String {
        let mut line =
            format!("{} {} {}: {}", timestamp(self.at, 3), text_level(self.level), self.module, self.message);
        if !self.fields.is_empty() {
            line.push(':');
            for (name, value) in &self.fields {
                let shown = match value {
                    Value::String(text) if text.is_empty() || text.contains(char::is_whitespace) => format!("{text:?}"),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let _ = write!(line, " {name}={shown}");
            }
        }
        line.push('\n');
        line
    }

    /// hclog's JSON line, newline-terminated: `@level`, `@message`, `@module`, `@timestamp`, then the fields.
    pub fn json(&self) -> String {
        let mut object = Map::new();
        object.insert("@level".into(), Value::from(json_level(self.level)));
        object.insert("@message".into(), Value::from(self.message.clone()));
        object.insert("@module".into(), Value::from(self.module.clone()));
        object.insert("@timestamp".into(), Value::from(timestamp(self.at, 6)));
        for (name, value) in &self.fields {
            object.entry(name.clone()).or_insert_with(|| value.clone());
        }
        let mut line = Value::Object(object).to_string();
        line.push('\n');
        line
    }
}

/// `[LEVEL]` padded to hclog's width, so messages line up.
fn text_level(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::TRACE => "[TRACE]",
        tracing::Level::DEBUG => "[DEBUG]",
        tracing::Level::INFO => "[INFO] ",
        tracing::Level::WARN => "[WARN] ",
        tracing::Level::ERROR => "[ERROR]",
    }
}

/// hclog's JSON level names.
fn json_level(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::TRACE => "trace",
        tracing::Level::DEBUG => "debug",
        tracing::Level::INFO => "info",
        tracing::Level::WARN => "warn",
        tracing::Level::ERROR => "error",
    }
}

/// UTC with `digits` of sub-second precision (hclog's text shows milliseconds, its JSON microseconds).
pub(crate) fn timestamp(at: SystemTime, digits: usize) -> String {
    let since_epoch = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let Some(time) = chrono::DateTime::from_timestamp(secs, since_epoch.subsec_nanos()) else {
        return "0001-01-01T00:00:00Z".to_owned();
    };
    let fraction = format!("{:09}", since_epoch.subsec_nanos());
    format!("{}.{}Z", time.format("%Y-%m-%dT%H:%M:%S"), &fraction[..digits.min(9)])
}

/// Collects an event's fields. A `log` crate record arrives with `log.target`, `log.module_path`, `log.file` and
/// `log.line` fields; its target becomes the module and the rest are dropped, as tracing's own formatter does.
#[derive(Default)]
struct Fields {
    message: String,
    log_target: Option<String>,
    fields: Vec<(String, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                }
            }
            "log.target" => self.log_target = value.as_str().map(str::to_owned),
            name if name.starts_with("log.") => {}
            name => self.fields.push((name.to_owned(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
}
