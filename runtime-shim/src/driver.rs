//! The `Driver` trait: what the agent asks of a runtime for each task (start it, watch it, stop it, find it again
//! after a restart), and the types it speaks in.
//!
//! Every task a driver starts carries four labels: `roster.node`, `roster.job`, `roster.task` and `roster.spec-hash`.
//! They are the only state: `recover` finds a node's tasks by them after an agent restart, `start` compares the spec
//! hash to tell an unchanged task (adopted, not restarted) from a changed one (replaced), and the event stream
//! filters on them. The agent keeps no runtime state of its own, so it cannot disagree with the runtime.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::spec::{RestartSpec, TaskSpec};

/// Label: the node (agent) that owns the task.
pub const LABEL_NODE: &str = "roster.node";
/// Label: the job's name.
pub const LABEL_JOB: &str = "roster.job";
/// Label: the task's name.
pub const LABEL_TASK: &str = "roster.task";
/// Label: [`spec_hash`] of what the task was started from.
pub const LABEL_SPEC_HASH: &str = "roster.spec-hash";

/// A runtime that runs tasks. Methods are idempotent where the agent may retry them after a crash: `start` adopts a
/// running task with the same spec, `destroy` of a gone task succeeds.
#[async_trait]
pub trait Driver: Send + Sync {
    /// The driver's name as job specs say it (`docker`, `exec`).
    fn name(&self) -> &'static str;

    /// Whether the driver is usable here: its version, or [`Error::Unavailable`](crate::Error) saying why not.
    async fn probe(&self) -> Result<DriverInfo>;

    /// Makes sure the task's image is on the host. Looks locally only; a missing image is an error saying how to
    /// build or load it, unless the spec sets `pull`.
    async fn ensure_image(&self, task: &TaskSpec) -> Result<()>;

    /// Starts the task, or returns the one already running with the same spec hash. A stopped task with the same
    /// hash is started again; a task with another hash is replaced.
    async fn start(&self, job: &str, task: &TaskSpec, options: &StartOptions) -> Result<TaskHandle>;

    /// The task's current state.
    async fn inspect(&self, task: &TaskHandle) -> Result<TaskState>;

    /// Sends `signal`, waits up to `grace` for the task to exit, then kills it. The task is kept (for its logs and
    /// exit code) until [`Driver::destroy`]. Stopping a task that is not running succeeds.
    async fn stop(&self, task: &TaskHandle, signal: &str, grace: Duration) -> Result<()>;

    /// Removes the task, killing it if it still runs. Destroying a task that is gone succeeds.
    async fn destroy(&self, task: &TaskHandle) -> Result<()>;

    /// Every task this node's driver owns, running or not, found by labels: what an agent restart adopts.
    async fn recover(&self) -> Result<Vec<TaskHandle>>;

    /// Runs `command` inside the running task and returns its exit code and combined output.
    async fn exec(&self, task: &TaskHandle, command: &[String], timeout: Duration) -> Result<ExecOutput>;

    /// The last `lines` lines of the task's output (stdout and stderr interleaved).
    async fn logs(&self, task: &TaskHandle, lines: usize) -> Result<Vec<String>>;

    /// Events of this node's tasks from now on. The stream never ends: when the runtime connection breaks it yields
    /// [`DriverEvent::Resync`] and reconnects with backoff; the agent then re-inspects its tasks.
    fn events(&self) -> BoxStream<'static, DriverEvent>;
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// The driver's name.
    pub driver: &'static str,
    /// The runtime's version (`20.10.24` for a Docker engine).
    pub version: String,
}

/// What the agent adds to a task's spec when it starts it. Part of the spec hash, so a change restarts the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StartOptions {
    /// The resolver the task uses: the agent's DNS, so `files.service.consul` resolves inside it.
    pub dns: DnsOptions,
    /// Variables added to the spec's `env` (the spec's own win on a clash), such as the agent's HTTP address.
    pub env: BTreeMap<String, String>,
}

/// A task's resolver settings (its `/etc/resolv.conf`). Empty fields leave the runtime's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsOptions {
    /// `nameserver` lines.
    pub servers: Vec<IpAddr>,
    /// `search` domains.
    pub search: Vec<String>,
    /// The `ndots` option: names with fewer dots are tried with the search domains first.
    pub ndots: Option<u8>,
}

/// The runtime's ID for a task (a Docker container ID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub String);

/// A task the driver runs: enough to address it and to know which spec it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskHandle {
    /// The runtime's ID.
    pub id: TaskId,
    /// The runtime's name for it (`roster-<job>.<task>.<node>` for Docker).
    pub name: String,
    /// The owning node.
    pub node: String,
    /// The job.
    pub job: String,
    /// The task.
    pub task: String,
    /// [`spec_hash`] of the spec it was started from.
    pub spec_hash: String,
}

/// A task's state as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// Running or not, and how it ended.
    pub status: TaskStatus,
    /// When it last started; `None` if never.
    pub started_at: Option<SystemTime>,
    /// When it last ended; `None` if it has not.
    pub finished_at: Option<SystemTime>,
    /// Its IP address on each network it is connected to, by network name.
    pub addresses: BTreeMap<String, IpAddr>,
    /// The HEALTHCHECK status; `None` when the task has no healthcheck.
    pub health: Option<HealthStatus>,
    /// Whether the kernel OOM-killed it (its memory limit was hit).
    pub oom_killed: bool,
}

/// Whether a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created, never started.
    Created,
    /// Running (or paused, or being restarted by the runtime).
    Running,
    /// Ended with this exit code (137 = SIGKILL, 143 = SIGTERM).
    Exited {
        /// The process's exit code, 128 + signal when a signal ended it.
        exit_code: i64,
    },
    /// Being removed, or dead and unremovable.
    Dead,
}

/// A HEALTHCHECK's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Within the start period or before the first result.
    Starting,
    /// Passing.
    Healthy,
    /// Failed `retries` times in a row.
    Unhealthy,
}

/// The result of [`Driver::exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i64,
    /// stdout and stderr interleaved (the tail, when very long).
    pub output: Vec<u8>,
}

/// Something that happened to a task, or to the event stream itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEvent {
    /// A task changed.
    Task {
        /// The runtime's ID of the task.
        id: TaskId,
        /// Its job.
        job: String,
        /// Its task name.
        task: String,
        /// What happened.
        kind: TaskEventKind,
    },
    /// The stream broke and events may have been missed; re-inspect every task. The stream carries on by itself.
    Resync {
        /// Why it broke.
        reason: String,
    },
}

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEventKind {
    /// It started.
    Started,
    /// It ended with this exit code.
    Died {
        /// The exit code.
        exit_code: i64,
    },
    /// Its HEALTHCHECK status changed.
    Health(HealthStatus),
    /// The kernel OOM-killed a process in it (a `Died` follows if that ended the task).
    Oom,
}

/// The hash of everything a task's process is started from (job name, task spec, start options): equal hashes mean
/// the running task is what the agent wants, so a restarted agent adopts it; any change replaces it.
/// The spec's `services`, `restart`, `after` and `requires` are left out: they are roster's own bookkeeping, and
/// changing a tag, a backoff or the order of starts must not restart the task. 16 bytes of SHA-256 in hex, stable as long as the spec's serialized form is.
pub fn spec_hash(job: &str, task: &TaskSpec, options: &StartOptions) -> String {
    #[derive(Serialize)]
    struct Hashed<'a> {
        job: &'a str,
        task: &'a TaskSpec,
        options: &'a StartOptions,
    }
    // Serializing a struct of structs and BTreeMaps is deterministic, so the same inputs give the same bytes.
    let process = TaskSpec {
        services: Vec::new(),
        restart: RestartSpec::default(),
        after: Vec::new(),
        requires: Vec::new(),
        ..task.clone()
    };
    let bytes = serde_json::to_vec(&Hashed { job, task: &process, options }).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest[..16].iter().map(|byte| format!("{byte:02x}")).collect()
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TaskState {
    /// Whether the task is running.
    pub fn is_running(&self) -> bool {
        self.status == TaskStatus::Running
    }

    /// How long the last run lasted (for [`RestartTracker::exited`](crate::RestartTracker::exited)); `None` while
    /// running or when the runtime did not say.
    pub fn ran_for(&self) -> Option<Duration> {
        let (started, finished) = (self.started_at?, self.finished_at?);
        Some(finished.duration_since(started).unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests;
