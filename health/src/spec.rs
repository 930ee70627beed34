//! What a check is: its kind with the kind's target, its timing and its thresholds, and the parser of the Consul
//! `Definition` JSON the agent stores for a check.
//!
//! The parser follows Consul's field names and defaults (checked against the `checks` and `agent/check` API docs):
//! field names match case-insensitively and ignoring `_`, durations are Go strings or integer nanoseconds, an
//! interval below one second is raised to one second, `DeregisterCriticalServiceAfter` below one minute is raised to
//! one minute (Consul's reaper minimum), `OutputMaxSize` 0 means 4 KiB, and `H2PingUseTLS` defaults to true.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::status::{Status, Thresholds};

/// The output kept per result when the definition sets none (Consul's `DefaultBufSize`).
pub(crate) const DEFAULT_OUTPUT_MAX_SIZE: usize = 4 * 1024;
/// Consul's smallest probe interval; shorter definitions are raised to it.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Consul's smallest `DeregisterCriticalServiceAfter`.
const MIN_DEREGISTER_AFTER: Duration = Duration::from_secs(60);
/// The probe timeout of network checks when the definition sets none.
const DEFAULT_NETWORK_TIMEOUT: Duration = Duration::from_secs(10);
/// The timeout of script and docker checks when the definition sets none.
const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a check probes, with the kind's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// An HTTP(S) request: 2xx is passing, 429 warning, anything else (or no answer) critical.
    Http {
        /// The full URL to request.
        url: String,
        /// The request method (`GET` unless set).
        method: String,
        /// Extra request headers, each name with all its values, in definition order.
        headers: Vec<(String, Vec<String>)>,
        /// The request body (empty for none).
        body: String,
        /// The name to send as SNI and verify the certificate against instead of the URL's host.
        tls_server_name: Option<String>,
        /// Accept any server certificate.
        tls_skip_verify: bool,
        /// Treat a 3xx answer as the result instead of following it (Consul follows up to 10 redirects).
        disable_redirects: bool,
    },
    /// A TCP connect to `host:port`: connected is passing.
    Tcp {
        /// The `host:port` to connect to.
        addr: String,
    },
    /// A UDP datagram to `host:port`: critical only if the port answers with an ICMP unreachable.
    Udp {
        /// The `host:port` to send to.
        addr: String,
    },
    /// The standard `grpc.health.v1.Health/Check` call; `target` is `host:port` or `host:port/service`.
    Grpc {
        /// `host:port`, optionally followed by `/service` to ask about one service.
        target: String,
        /// Speak TLS (with ALPN h2) instead of cleartext HTTP/2.
        use_tls: bool,
        /// Accept any server certificate.
        tls_skip_verify: bool,
    },
    /// Runs a command on this host (only with `enable_script_checks`): exit 0 passing, 1 warning, else critical.
    Script {
        /// The command and its arguments, run without a shell.
        args: Vec<String>,
    },
    /// A time-to-live: the service reports its status itself and goes critical when it stops reporting.
    Ttl {
        /// How long a reported status stays valid.
        ttl: Duration,
    },
    /// Runs a command inside a running container through the Docker Engine API: exit codes as for scripts.
    Docker {
        /// The container to exec in.
        container_id: String,
        /// The shell for the legacy `Script` form (`/bin/sh` unless set); `args` already includes it then.
        shell: String,
        /// The command and its arguments.
        args: Vec<String>,
    },
    /// Mirrors the aggregate health of another node or service instance.
    Alias {
        /// The node whose checks count; empty means the agent's own node.
        node: String,
        /// The service instance whose checks count too, if any.
        service_id: Option<String>,
    },
    /// Opens an HTTP/2 connection and sends a PING frame: a PONG is passing.
    H2Ping {
        /// The `host:port` to connect to.
        addr: String,
        /// Speak TLS (with ALPN h2) instead of cleartext HTTP/2 (Consul's default).
        use_tls: bool,
        /// Accept any server certificate.
        tls_skip_verify: bool,
    },
}

/// Everything health needs to run one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// The check's ID, unique on this agent; events carry it.
    pub check_id: String,
    /// What to probe.
    pub kind: CheckKind,
    /// Time between the starts of two probes (unused by TTL and alias checks).
    pub interval: Duration,
    /// How long one probe may take before it counts as critical.
    pub timeout: Duration,
    /// Consecutive results needed before the status changes.
    pub thresholds: Thresholds,
    /// The status shown until the first counted result (Consul's default is critical).
    pub initial_status: Status,
    /// The most output bytes kept per result; longer output keeps its tail (scripts say so in the text).
    pub output_max_size: usize,
    /// After (re)registration, failures within this period are not counted (Docker `HEALTHCHECK --start-period`).
    pub start_period: Duration,
    /// Once the check has been critical this long without a break, an [`crate::Event::CriticalTooLong`] asks the
    /// agent to deregister its service.
    pub deregister_critical_after: Option<Duration>,
}

/// The definition's fields by normalised name: lowercase, without `_`, as compat.md asks of request parsing.
struct Fields<'a> {
    /// Normalised field name → its value.
    by_name: HashMap<String, &'a Value>,
}

impl CheckSpec {
    /// Parses the `Definition` JSON object the agent stores for a check.
    ///
    /// `check_type` is Consul's `Type` (`http`, `tcp`, `udp`, `grpc`, `script`, `ttl`, `docker`, `alias`, `h2ping`);
    /// when empty, the type is inferred from which target field is set, as Consul does at registration.
    pub fn from_consul(
        check_id: &str,
        check_type: &str,
        definition: &Value,
        initial_status: Status,
    ) -> Result<CheckSpec, String> {
        let fields = Fields::new(definition)?;
        let check_type = match check_type.to_ascii_lowercase() {
            inferred if inferred.is_empty() => fields.infer_type()?.to_string(),
            given => given,
        };
        let kind = fields.kind(&check_type)?;
        let (interval, timeout) = fields.timing(&kind)?;
        let deregister_critical_after = fields
            .duration("DeregisterCriticalServiceAfter")?
            .filter(|after| !after.is_zero())
            .map(|after| after.max(MIN_DEREGISTER_AFTER));
        let output_max_size = match fields.integer("OutputMaxSize")? {
            None | Some(0) => DEFAULT_OUTPUT_MAX_SIZE,
            Some(size) => usize::try_from(size).map_err(|_| "OutputMaxSize is too large".to_string())?,
        };
        let thresholds = Thresholds {
            success_before_passing: fields.count("SuccessBeforePassing")?,
            failures_before_warning: fields.count("FailuresBeforeWarning")?,
            failures_before_critical: fields.count("FailuresBeforeCritical")?,
        };
        Ok(CheckSpec {
            check_id: check_id.to_string(),
            kind,
            interval,
            timeout,
            thresholds,
            initial_status,
            output_max_size,
            start_period: fields.duration("StartPeriod")?.unwrap_or_default(),
            deregister_critical_after,
        })
    }
}

impl<'a> Fields<'a> {
    fn new(definition: &'a Value) -> Result<Fields<'a>, String> {
        let object = match definition {
            Value::Object(object) => object,
            Value::Null => return Ok(Fields { by_name: HashMap::new() }),
            _ => return Err("a check definition must be a JSON object".to_string()),
        };
        let by_name = object.iter().map(|(name, value)| (normalise(name), value)).collect();
        Ok(Fields { by_name })
    }

    fn infer_type(&self) -> Result<&'static str, String> {
        let candidates = [
            ("TTL", "ttl"),
            ("HTTP", "http"),
            ("TCP", "tcp"),
            ("UDP", "udp"),
            ("GRPC", "grpc"),
            ("H2PING", "h2ping"),
            ("DockerContainerID", "docker"),
            ("ScriptArgs", "script"),
            ("Args", "script"),
            ("AliasService", "alias"),
            ("AliasNode", "alias"),
        ];
        candidates
            .into_iter()
            .find(|(field, _)| self.get(field).is_some_and(|value| !value.is_null()))
            .map(|(_, check_type)| check_type)
            .ok_or_else(|| "the check definition names no check type (HTTP, TCP, TTL, ScriptArgs, ...)".to_string())
    }

    fn kind(&self, check_type: &str) -> Result<CheckKind, String> {
        let kind = match check_type {
            "http" => CheckKind::Http {
                url: self.required_string("HTTP")?,
                method: self.string("Method")?.filter(|method| !method.is_empty()).unwrap_or_else(|| "GET".into()),
                headers: self.headers()?,
                body: self.string("Body")?.unwrap_or_default(),
                tls_server_name: self.string("TLSServerName")?.filter(|name| !name.is_empty()),
                tls_skip_verify: self.boolean("TLSSkipVerify")?.unwrap_or(false),
                disable_redirects: self.boolean("DisableRedirects")?.unwrap_or(false),
            },
            "tcp" => CheckKind::Tcp { addr: self.required_string("TCP")? },
            "udp" => CheckKind::Udp { addr: self.required_string("UDP")? },
            "grpc" => CheckKind::Grpc {
                target: self.required_string("GRPC")?,
                use_tls: self.boolean("GRPCUseTLS")?.unwrap_or(false),
                tls_skip_verify: self.boolean("TLSSkipVerify")?.unwrap_or(false),
            },
            "h2ping" => CheckKind::H2Ping {
                addr: self.required_string("H2PING")?,
                use_tls: self.boolean("H2PingUseTLS")?.unwrap_or(true),
                tls_skip_verify: self.boolean("TLSSkipVerify")?.unwrap_or(false),
            },
            "script" => CheckKind::Script { args: self.script_args()? },
            "ttl" => CheckKind::Ttl {
                ttl: self.duration("TTL")?.filter(|ttl| !ttl.is_zero()).ok_or("a TTL check needs a TTL")?,
            },
            "docker" => self.docker()?,
            "alias" => CheckKind::Alias {
                node: self.string("AliasNode")?.unwrap_or_default(),
                service_id: self.string("AliasService")?.filter(|service| !service.is_empty()),
            },
            other => return Err(format!("unknown check type {other:?}")),
        };
        Ok(kind)
    }

    /// The interval and timeout of `kind`, with Consul's defaults and minimum.
    fn timing(&self, kind: &CheckKind) -> Result<(Duration, Duration), String> {
        let timeout = self.duration("Timeout")?.filter(|timeout| !timeout.is_zero());
        if matches!(kind, CheckKind::Ttl { .. } | CheckKind::Alias { .. }) {
            return Ok((Duration::ZERO, timeout.unwrap_or_default()));
        }
        let interval = self
            .duration("Interval")?
            .filter(|interval| !interval.is_zero())
            .ok_or("the check needs an Interval")?
            .max(MIN_INTERVAL);
        let default_timeout = match kind {
            CheckKind::Script { .. } | CheckKind::Docker { .. } => DEFAULT_SCRIPT_TIMEOUT,
            _ => DEFAULT_NETWORK_TIMEOUT,
        };
        Ok((interval, timeout.unwrap_or(default_timeout)))
    }

    fn docker(&self) -> Result<CheckKind, String> {
        let shell = self.string("Shell")?.filter(|shell| !shell.is_empty()).unwrap_or_else(|| "/bin/sh".into());
        // The legacy `Script` string runs through the shell; `ScriptArgs` runs as given.
        let args = match self.string("Script")?.filter(|script| !script.is_empty()) {
            Some(script) => vec![shell.clone(), "-c".to_string(), script],
            None => self.script_args()?,
        };
        Ok(CheckKind::Docker { container_id: self.required_string("DockerContainerID")?, shell, args })
    }

    fn script_args(&self) -> Result<Vec<String>, String> {
        let value = self.get("ScriptArgs").filter(|value| !value.is_null()).or_else(|| self.get("Args"));
        let args = match value {
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string).ok_or("ScriptArgs must be strings"))
                .collect::<Result<Vec<_>, _>>()?,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err("ScriptArgs must be a list of strings".to_string()),
        };
        if args.is_empty() {
            return Err("the check needs ScriptArgs".to_string());
        }
        Ok(args)
    }

    /// `Header` as `{name: [values]}`; a single string value is taken as a one-value list.
    fn headers(&self) -> Result<Vec<(String, Vec<String>)>, String> {
        let object = match self.get("Header") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(object)) => object,
            Some(_) => return Err("Header must be an object of name → list of values".to_string()),
        };
        let mut headers = Vec::with_capacity(object.len());
        for (name, values) in object {
            let values = match values {
                Value::String(value) => vec![value.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_string).ok_or(format!("Header {name:?} values must be strings"))
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(format!("Header {name:?} must be a list of strings")),
            };
            headers.push((name.clone(), values));
        }
        Ok(headers)
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.by_name.get(&normalise(name)).copied()
    }

    fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(format!("{name} must be a string")),
        }
    }

    fn required_string(&self, name: &str) -> Result<String, String> {
        self.string(name)?.filter(|text| !text.is_empty()).ok_or_else(|| format!("the check needs {name}"))
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(format!("{name} must be true or false")),
        }
    }

    fn integer(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| format!("{name} must be a non-negative integer")),
        }
    }

    fn count(&self, name: &str) -> Result<u32, String> {
        let count = self.integer(name)?.unwrap_or(0);
        u32::try_from(count).map_err(|_| format!("{name} is too large"))
    }

    fn duration(&self, name: &str) -> Result<Option<Duration>, String> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => parse_go_duration(text).map(Some).map_err(|err| format!("{name}: {err}")),
            Some(value) => value
                .as_u64()
                .map(|nanos| Some(Duration::from_nanos(nanos)))
                .ok_or_else(|| format!("{name} must be a duration like \"10s\" or integer nanoseconds")),
        }
    }
}

fn normalise(name: &str) -> String {
    name.chars().filter(|ch| *ch != '_').flat_map(char::to_lowercase).collect()
}

/// Parses a Go duration string (`"10s"`, `"1m30s"`, `"1.5h"`, `"100ms"`, `"0"`); negative durations are refused.
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}");
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(invalid());
    }
    let mut total_nanos: f64 = 0.0;
    let mut rest = rest;
    while !rest.is_empty() {
        let number_len = rest.find(|ch: char| !(ch.is_ascii_digit() || ch == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|ch: char| ch.is_ascii_digit() || ch == '.').unwrap_or(rest.len());
        let unit_nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total_nanos += number * unit_nanos;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

#[cfg(test)]
mod tests;
