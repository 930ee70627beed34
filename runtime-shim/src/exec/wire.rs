//! The exec driver's persisted files, one task directory (`<state_dir>/<job>.<task>/`) each:
//!
//! - `task.json` ([`TaskFile`]), written by the driver before it spawns the supervisor: everything the supervisor
//!   needs to run the task, and what `recover` needs to name it. The supervisor never writes it.
//! - `state.json` ([`StateFile`]), written only by the supervisor: its own identity, then the task's PID and start,
//!   then its exit. The driver only reads it, so the two never race on a file.
//! - `output.log`: the task's stdout and stderr, interleaved; `supervisor.log`: the supervisor's own messages.
//!
//! Both JSON files carry a `version` and are replaced atomically (write a temporary file, fsync, rename), so a
//! reader sees the old or the new content, never a torn one, and a crash leaves the last complete state.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cgroup::CgroupDirs;
use super::net::NetworkFile;
use crate::spec::{LogsSpec, MountSpec, Resources};

/// The format version of both files; a reader refuses another.
pub(crate) const VERSION: u32 = 1;
/// The task description file.
pub(crate) const TASK_FILE: &str = "task.json";
/// The supervisor's state file.
pub(crate) const STATE_FILE: &str = "state.json";
/// The task's captured stdout and stderr.
pub(crate) const OUTPUT_LOG: &str = "output.log";
/// The supervisor's own log.
pub(crate) const SUPERVISOR_LOG: &str = "supervisor.log";

/// What to run and how: the driver's instructions to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskFile {
    /// [`VERSION`].
    pub(crate) version: u32,
    /// The owning node.
    pub(crate) node: String,
    /// The job.
    pub(crate) job: String,
    /// The task.
    pub(crate) task: String,
    /// The spec hash the task was started from.
    pub(crate) spec_hash: String,
    /// The hostname inside the task's UTS namespace.
    pub(crate) hostname: String,
    /// The root filesystem to pivot into; `None` keeps the host's (in a private mount namespace).
    pub(crate) rootfs: Option<PathBuf>,
    /// The program, looked up in the task's `PATH` inside its root.
    pub(crate) command: String,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// The task's whole environment (nothing is inherited from the agent).
    pub(crate) env: BTreeMap<String, String>,
    /// Host paths bind-mounted into the task.
    pub(crate) mounts: Vec<MountSpec>,
    /// The limits, applied by the supervisor when it creates the cgroup.
    pub(crate) resources: Resources,
    /// The `/etc/resolv.conf` to bind over the task's, when the agent set DNS options.
    pub(crate) resolv_conf: Option<String>,
    /// The task's cgroups.
    pub(crate) cgroup: CgroupDirs,
    /// The task's network, with its bridge address when it has one. Absent in files written before exec tasks had
    /// networks, which ran on the host's; the default says so.
    #[serde(default)]
    pub(crate) network: NetworkFile,
    /// How much output the supervisor keeps (`output.log` and its rotated files). Absent in older files: the
    /// defaults.
    #[serde(default)]
    pub(crate) logs: LogsSpec,
    /// The supervisor command's arguments before the mode word: how the supervisor re-runs itself (as
    /// `/proc/self/exe`, so a binary upgraded meanwhile is not mixed with the running one).
    pub(crate) supervisor_args: Vec<String>,
}

/// What the supervisor reports. Every field but the identity is filled in as the task progresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateFile {
    /// [`VERSION`].
    pub(crate) version: u32,
    /// The kernel's boot ID when the supervisor started: a PID from another boot means nothing.
    pub(crate) boot_id: String,
    /// The supervisor's PID.
    pub(crate) supervisor_pid: i32,
    /// The supervisor's start time (clock ticks after boot, `/proc/<pid>/stat` field 22): with the PID, it tells
    /// the supervisor from a later process that reused its PID.
    pub(crate) supervisor_start: u64,
    /// The task's main process (host PID); it is PID 1 in the task's namespace.
    pub(crate) pid: Option<i32>,
    /// When the task started, in milliseconds since the epoch.
    pub(crate) started_at: Option<u64>,
    /// When it ended, in milliseconds since the epoch.
    pub(crate) exited_at: Option<u64>,
    /// Its exit code, 128 + the signal when a signal ended it (as a shell reports it).
    pub(crate) exit_code: Option<i64>,
    /// The signal that ended it, if one did.
    pub(crate) signal: Option<i32>,
    /// Whether the kernel OOM-killed a process of the task.
    pub(crate) oom: bool,
    /// Why the supervisor could not run the task, when it could not.
    pub(crate) error: Option<String>,
}

impl StateFile {
    /// Whether the task has ended (or never could start).
    pub(crate) fn exited(&self) -> bool {
        self.exited_at.is_some()
    }
}

/// Reads a versioned JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read<T: DeserializeOwned + Versioned>(path: &Path) -> io::Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let value: T = serde_json::from_slice(&bytes)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {err}", path.display())))?;
    if value.version() != VERSION {
        let message = format!("{}: version {} (this roster reads {VERSION})", path.display(), value.version());
        return Err(io::Error::new(io::ErrorKind::InvalidData, message));
    }
    Ok(Some(value))
}

/// Replaces `path` atomically with `value` as JSON.
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Files that carry a format version.
pub(crate) trait Versioned {
    /// The file's version field.
    fn version(&self) -> u32;
}

impl Versioned for TaskFile {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for StateFile {
    fn version(&self) -> u32 {
        self.version
    }
}

/// Now in milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// A time in milliseconds since the epoch.
pub(crate) fn time_of(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}
