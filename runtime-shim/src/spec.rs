//! The job spec: what a node runs, read from a TOML file or from JSON (the same schema and the same snake_case field
//! names in both), then validated in one pass that reports every problem with its field path.
//!
//! A job is a `name` and a list of `tasks`; the list form (`[[tasks]]` in TOML, an array in JSON) keeps the order
//! the author wrote and names every task explicitly, so a duplicate is an error rather than a silent overwrite.
//!
//! ```toml
//! name = "files"
//!
//! [[tasks]]
//! name = "httpd"
//! driver = "docker"
//! image = "roster-example/files:latest"
//! ports = [{ label = "http", container_port = 80, host_port = 8080 }]
//! resources = { memory_mb = 64, cpu = 250, pids = 64 }
//! restart = { policy = "always", delay = "1s", max_delay = "30s" }
//!
//! [[tasks.services]]
//! name = "files"
//! port = "http"
//! checks = [{ http = "http://${address}:${port}/", interval = "10s" }]
//! ```
//!
//! An exec task names a `rootfs` and a `command` instead of an `image`, and runs on the host's network unless it
//! asks for `network = "bridge"` (its own address on the node's roster bridge) or `network = "none"`.
//!
//! `logs = { max_size_kb = 10240, max_files = 3 }` bounds a task's kept output (json-file rotation): always on for
//! exec tasks (these are the defaults), and given to Docker as `max-size`/`max-file` when set on a docker task.
//!
//! `after = ["db"]` starts a task only once the task `db` of the same job runs and passes its checks;
//! `requires = ["db"]` stops it while `db` is down for good and starts it again when `db` returns (see
//! [`TaskSpec::after`], [`TaskSpec::requires`]). A cycle of `after` edges is refused.
//!
//! Every duration is a Go duration string (`"10s"`, `"1m30s"`). Unknown fields are refused everywhere except inside
//! a service's `checks`, which are Consul check definitions kept as JSON values for the agent's own parser.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::GoDuration;

mod cluster;
mod enums;
mod order;
mod validate;

pub use enums::{AddressMode, DriverKind, Protocol, RestartPolicy};
pub(crate) use validate::mount_target_problem;
pub use validate::{FieldError, SpecError};

/// One job: a named group of tasks that a node runs together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's name: a DNS label (`a-z`, `0-9`, `-`, at most 63), part of every container name and label.
    pub name: String,
    /// The tasks, each with a name unique within the job.
    pub tasks: Vec<TaskSpec>,
    /// Where a cluster job's allocations go (`roster job deploy`); see `cluster.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<roster_scheduler::Placement>,
    /// How a cluster job's new version rolls out; see `cluster.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<roster_scheduler::UpdatePolicy>,
}

/// One task: a process run by a driver, with its ports, limits, restart policy and services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The task's name: a DNS label, unique within its job.
    pub name: String,
    /// Which driver runs it: `"docker"` or `"exec"`.
    pub driver: DriverKind,
    /// The image (docker only, required there). It must already be on the host unless `pull` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The root filesystem directory (exec only); absent runs the command on the host's filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    /// The program to run. Docker: when set, the container's command is `[command, args...]` (the image's
    /// ENTRYPOINT, if any, is kept); when absent, `args` alone replaces the image's CMD. Exec: required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Arguments after `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables; sorted, so the spec hash does not depend on the order they were written in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The ports the task listens on, each with a label that services refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// Docker: the Docker network to connect the container to; it must exist, roster creates none. Absent: Docker's
    /// default bridge.
    ///
    /// Exec: `"host"` (the default: the host's network namespace, so the task binds the host's ports), `"none"` (a
    /// network namespace of its own with only `lo`) or `"bridge"` (its own namespace with `eth0` on the node's
    /// `roster0` bridge, at an address from 10.89.0.0/24 that the driver allocates, and a default route via the
    /// bridge's 10.89.0.1). A bridge task is reached at its own address, so its services use
    /// `address_mode = "container"` and its ports have no `host_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Host directories bind-mounted into the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    /// Memory, CPU and process-count limits.
    #[serde(default)]
    pub resources: Resources,
    /// How much of the task's output is kept. Exec: always applied (defaults below). Docker: when the block is
    /// present, the container gets the `json-file` log driver with these as `max-size`/`max-file`; when absent, the
    /// daemon's own log settings apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogsSpec>,
    /// What roster does when the task exits.
    #[serde(default)]
    pub restart: RestartSpec,
    /// The signal that asks the task to stop (default `SIGTERM`).
    #[serde(default = "default_stop_signal")]
    pub stop_signal: String,
    /// How long a stopping task gets after `stop_signal` before it is killed (default 10s, Docker's).
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: GoDuration,
    /// A Docker HEALTHCHECK (docker only); its status shows in `inspect` and in health events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthcheckSpec>,
    /// Whether a missing image may be pulled from a registry (default false: a missing image is an error that says
    /// how to build or load it, so no node silently depends on a registry being reachable).
    #[serde(default)]
    pub pull: bool,
    /// The Consul services this task offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// Tasks of this job that must be running, and passing every check of their services when they have checks,
    /// before this one starts (systemd's `After=`). Ordering only: this task keeps running if they stop later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Tasks of this job this one needs (systemd's `Requires=`): when one stops for good (exits and is not
    /// restarted, or is stopped) this task is stopped, and it starts again once they all run again. It does not
    /// order the start; name a task in `after` as well to start only once it runs and passes its checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

/// A port the task listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The name services use to refer to this port: a DNS label, unique within the task.
    pub label: String,
    /// The port inside the container (or the port the exec task binds), 1-65535.
    pub container_port: u32,
    /// The host port it is published on (docker), 1-65535; absent publishes nothing, so the port is reachable only
    /// at the container's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u32>,
    /// `"tcp"` (default) or `"udp"`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A bind mount of a host directory or file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// The absolute host path.
    pub source: String,
    /// The absolute path inside the task: no `..` components, and not `/` itself. On the exec driver a symlink in
    /// the rootfs on the way is followed inside the rootfs, as Docker does.
    pub target: String,
    /// Mount read-only (default false).
    #[serde(default)]
    pub read_only: bool,
}

/// Resource limits; an absent field means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// The memory limit in MiB (at least 6, Docker's minimum); the kernel OOM-kills the task beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// The CPU limit in millicores: 1000 is one whole core, 250 a quarter. It is a hard cap (CFS quota, Docker's
    /// `NanoCpus`), not a relative weight, so a task gets the same CPU on an idle host as on a busy one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    /// The most processes and threads the task may have at once (cgroup `pids.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

/// Bounds on a task's kept output, with Docker's json-file semantics: the current file grows to `max_size_kb`, then
/// becomes `output.log.1` (older ones shift up) and a new one starts; at most `max_files` files, the current one
/// included, are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSpec {
    /// The most KiB one file holds (default 10240, 10 MiB; 16 to 1048576).
    #[serde(default = "default_log_max_size_kb")]
    pub max_size_kb: u64,
    /// The most files kept, the current one included (default 3; 1 to 100).
    #[serde(default = "default_log_max_files")]
    pub max_files: u32,
}

impl Default for LogsSpec {
    fn default() -> LogsSpec {
        LogsSpec { max_size_kb: default_log_max_size_kb(), max_files: default_log_max_files() }
    }
}

fn default_log_max_size_kb() -> u64 {
    10 * 1024
}

fn default_log_max_files() -> u32 {
    3
}

/// The restart policy, with Docker's names and systemd's backoff: `delay` before the first restart, multiplied by
/// `backoff` for each consecutive one, capped at `max_delay`; a run that lasted `reset_after` starts the count over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSpec {
    /// `"no"` (default, as in Docker), `"on-failure"` (a non-zero exit) or `"always"` (any exit, but never after an
    /// explicit stop).
    #[serde(default)]
    pub policy: RestartPolicy,
    /// The most consecutive restarts before roster gives up; absent means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The wait before the first restart (default 1s; must be above zero so a crash loop cannot spin).
    #[serde(default = "default_restart_delay")]
    pub delay: GoDuration,
    /// The longest wait between restarts (default 1m).
    #[serde(default = "default_restart_max_delay")]
    pub max_delay: GoDuration,
    /// The factor the wait grows by per consecutive restart (default 2, at least 1).
    #[serde(default = "default_backoff")]
    pub backoff: f64,
    /// A run at least this long resets the attempt count and the wait (default 10s, as Docker does).
    #[serde(default = "default_reset_after")]
    pub reset_after: GoDuration,
}

/// A Docker HEALTHCHECK, with Docker's fields and defaults (Docker fills in what is absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckSpec {
    /// `["CMD", program, args...]`, `["CMD-SHELL", "a shell line"]` or `["NONE"]` (disable the image's check).
    pub test: Vec<String>,
    /// Time between checks (Docker's default 30s); at least 1ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// How long one check may run (Docker's default 30s); at least 1ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Consecutive failures before the container is unhealthy (Docker's default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// A start-up grace during which failures do not count (Docker's default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<GoDuration>,
}

/// A Consul service the task offers. Its ID is [`service_id`]`(node, task, port or name)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service name: a DNS label, since it is looked up as `<name>.service.consul`.
    pub name: String,
    /// The label of one of the task's ports; absent registers the service without a port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Consul tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Consul service metadata (at most 64 pairs, keys up to 128 characters, values up to 512).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Consul check definitions, kept as written for the agent's check-definition parser. String values may say
    /// `${address}` and `${port}`; [`ServiceSpec::render_checks`] fills them in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<serde_json::Value>,
    /// Which address and port are registered: `"host"` (default: the node's address and the port's `host_port`) or
    /// `"container"` (the container's IP and `container_port`).
    #[serde(default)]
    pub address_mode: AddressMode,
}

/// The ID of the service a task offers on a port: `<node>:<task>:<port>`, the same on every start so a restarted
/// agent re-registers rather than duplicates. `port` is the port label (the service name for a portless service).
pub fn service_id(node: &str, task: &str, port: &str) -> String {
    format!("{node}:{task}:{port}")
}

impl JobSpec {
    /// Reads and validates a job from TOML.
    pub fn from_toml(text: &str) -> Result<JobSpec, SpecError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|err| toml_error("", &err, text))?;
        let job: JobSpec = serde_path_to_error::deserialize(deserializer)
            .map_err(|err| toml_error(&path_of(&err), err.inner(), text))?;
        job.validate()?;
        Ok(job)
    }

    /// Reads and validates a job from JSON (the TOML field names, snake_case).
    pub fn from_json(text: &str) -> Result<JobSpec, SpecError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let job: JobSpec = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let inner = err.inner();
            let message = format!("{} (line {}, column {})", strip_position(inner), inner.line(), inner.column());
            SpecError::one(path_of(&err), message)
        })?;
        job.validate()?;
        Ok(job)
    }

    /// Checks everything serde cannot: names, references, ranges, per-driver fields. Reports every problem at once.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate::job(self)
    }

    /// The task of this name.
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|task| task.name == name)
    }
}

impl TaskSpec {
    /// The port of this label.
    pub fn port(&self, label: &str) -> Option<&PortSpec> {
        self.ports.iter().find(|port| port.label == label)
    }
}

impl ServiceSpec {
    /// The key that makes this service's ID unique within its task: its port label, or its name when it has none.
    pub fn id_key(&self) -> &str {
        self.port.as_deref().unwrap_or(&self.name)
    }

    /// The checks with `${address}` and `${port}` replaced in every string value, for the address and port the
    /// service is registered at.
    pub fn render_checks(&self, address: &str, port: Option<u16>) -> Vec<serde_json::Value> {
        let port = port.map(|port| port.to_string()).unwrap_or_default();
        self.checks.iter().map(|check| render(check, address, &port)).collect()
    }
}

impl Default for RestartSpec {
    fn default() -> RestartSpec {
        RestartSpec {
            policy: RestartPolicy::default(),
            attempts: None,
            delay: default_restart_delay(),
            max_delay: default_restart_max_delay(),
            backoff: default_backoff(),
            reset_after: default_reset_after(),
        }
    }
}

fn render(value: &serde_json::Value, address: &str, port: &str) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(text.replace("${address}", address).replace("${port}", port)),
        Value::Array(items) => Value::Array(items.iter().map(|item| render(item, address, port)).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(key, item)| (key.clone(), render(item, address, port))).collect())
        }
        other => other.clone(),
    }
}

fn default_stop_signal() -> String {
    "SIGTERM".to_string()
}

fn default_stop_timeout() -> GoDuration {
    GoDuration::from_secs(10)
}

fn default_restart_delay() -> GoDuration {
    GoDuration::from_secs(1)
}

fn default_restart_max_delay() -> GoDuration {
    GoDuration::from_secs(60)
}

fn default_backoff() -> f64 {
    2.0
}

fn default_reset_after() -> GoDuration {
    GoDuration::from_secs(10)
}

/// The field path of a deserialization error, `tasks[0].restart.policy`; empty at the top level.
fn path_of<E>(err: &serde_path_to_error::Error<E>) -> String {
    let path = err.path().to_string();
    if path == "." { String::new() } else { path }
}

/// A TOML error as one field error: toml's own message, plus the line it points at.
fn toml_error(path: &str, err: &toml::de::Error, text: &str) -> SpecError {
    let message = match err.span() {
        Some(span) => {
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            format!("{} (line {line})", err.message())
        }
        None => err.message().to_string(),
    };
    SpecError::one(path.to_string(), message)
}

/// serde_json's message without its " at line L column C" tail, which the caller words itself.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
