//! The exec driver: tasks as plain processes in their own namespaces and cgroup, with no daemon.
//!
//! Each task has a directory `<state_dir>/<job>.<task>/` (see `wire.rs` for its files) and a supervisor process
//! (see `supervise.rs`) that the driver starts detached, so it outlives an agent restart: it creates the task's
//! cgroup (`cgroup.rs`, cgroup v1, hybrid and v2), runs the task as PID 1 of new PID, mount, UTS and IPC
//! namespaces, pivoted into its `rootfs` when it has one (`init.rs`), and records its exit in `state.json`. The
//! driver holds no state of its own: every call reads the task directories, so a new driver instance (a restarted
//! agent) sees exactly what the old one did, and `recover` is a directory scan.
//!
//! A task's `network` (`net.rs`) is the host's by default, so its ports are the host's ports and its services
//! register with the node's address. With `none` it has a network namespace of its own with only loopback; with
//! `bridge`, also an `eth0` on the node's roster bridge ([`BridgeConfig`], `roster0`, 10.89.0.0/24) at an address
//! the driver allocates, which `inspect` reports under the network name `bridge`, so services with
//! `address_mode = "container"` register it.
//!
//! The supervisor is the agent's own binary run with a hidden subcommand ([`ExecConfig::supervisor`]), a fresh
//! single-threaded process, because creating namespaces and forking are not safe in the agent's multi-threaded
//! runtime. Under systemd the agent's unit needs `KillMode=process` (as containerd's has): the supervisors stay in
//! the agent's cgroup, and the default `control-group` would kill them, and so orphan every task, on a restart.
//!
//! Stopping signals the task's main process, waits the grace, then kills every process in its cgroup. As in
//! Docker without `--init`, the main process is PID 1 of its namespace, and the kernel delivers it only signals it
//! has a handler for, so a command that installs none (`sleep`) is killed at the end of the grace.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::io::AsyncReadExt;

use crate::driver::{
    Driver, DriverEvent, DriverInfo, ExecOutput, StartOptions, TaskHandle, TaskId, TaskState, TaskStatus, spec_hash,
};
use crate::error::{Error, Result};
use crate::host_access::{HostAccess, HostPaths};
use crate::spec::{DriverKind, Resources, TaskSpec};

mod cgroup;
mod enter;
mod events;
mod init;
mod net;
mod output;
mod private_dir;
mod procfs;
mod supervise;
mod sys;
mod wire;

pub use net::BridgeConfig;
pub use private_dir::ensure_private_dir;
pub use supervise::supervise_main;

use net::NetworkFile;
use wire::{STATE_FILE, SUPERVISOR_LOG, StateFile, TASK_FILE, TaskFile};

/// The driver name in errors and specs.
const DRIVER: &str = "exec";
/// How often `stop` and `start` look at a task's state file.
const STATE_POLL: Duration = Duration::from_millis(50);
/// How long `stop` waits for a killed task to be recorded as exited.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// The `PATH` a task gets when its spec sets none (Docker's and runc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The most output `exec` returns (its tail).
const EXEC_OUTPUT_MAX: usize = 64 * 1024;

/// The exec driver's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// The node whose tasks this driver starts and recovers; part of each task's cgroup path.
    pub node: String,
    /// Where task directories live, `<data_dir>/exec`. It survives agent restarts; that is what `recover` scans.
    /// It must be private to the agent's user ([`ensure_private_dir`]): the supervisors, as root, run what its
    /// `task.json` files say.
    pub state_dir: PathBuf,
    /// Whether tasks without a `rootfs` may run, on the host's filesystem as root (default false; the agent's
    /// `exec.allow_host_rootfs`). Checked on every start, adoption included, so a job saved under an older config
    /// cannot bypass it.
    pub allow_host_rootfs: bool,
    /// The host paths tasks may bind-mount (default none; the agent's `exec.host_mounts`), into their rootfs or, for
    /// a task without one, over the host's paths. Checked on every start like `allow_host_rootfs`: a task with a
    /// rootfs that mounts `/` is as much root on the host as one without a rootfs.
    pub host_mounts: HostPaths,
    /// The supervisor command: a program and its leading arguments, to which the driver appends a mode word and a
    /// task directory. For the agent, `[<roster binary>, "__supervise"]`; tests use a small binary that calls
    /// [`supervise_main`] directly.
    pub supervisor: Vec<OsString>,
    /// The cgroup below each hierarchy's root under which tasks' groups are made, as
    /// `<prefix>/<node>/<job>.<task>` (default `roster`).
    pub cgroup_prefix: String,
    /// How often the event stream polls the task directories (default 250 ms): the delay before an exit is seen.
    pub poll_interval: Duration,
    /// How long `start` waits for the supervisor to report the task started (default 10 s).
    pub start_timeout: Duration,
    /// The bridge that tasks with `network = "bridge"` are attached to, and the subnet of their addresses (default
    /// `roster0`, 10.89.0.1/24). Drivers sharing a bridge must share a state directory, because the addresses in
    /// use are read from it.
    pub bridge: BridgeConfig,
}

/// Runs tasks as supervised processes in namespaces and cgroups, for one node.
#[derive(Debug, Clone)]
pub struct ExecDriver {
    /// The settings; shared by clones.
    config: Arc<ExecConfig>,
    /// Held while a bridge address is chosen and its `task.json` written, so two starts never pick the same one;
    /// shared by clones.
    allocation: Arc<Mutex<()>>,
}

impl ExecConfig {
    /// Settings with the defaults for everything but the node, the state directory and the supervisor command.
    pub fn new(
        node: impl Into<String>,
        state_dir: impl Into<PathBuf>,
        supervisor: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> ExecConfig {
        ExecConfig {
            node: node.into(),
            state_dir: state_dir.into(),
            allow_host_rootfs: false,
            host_mounts: HostPaths::default(),
            supervisor: supervisor.into_iter().map(Into::into).collect(),
            cgroup_prefix: "roster".to_string(),
            poll_interval: Duration::from_millis(250),
            start_timeout: Duration::from_secs(10),
            bridge: BridgeConfig::default(),
        }
    }
}

impl ExecDriver {
    /// A driver with these settings. It does no I/O until asked; [`Driver::probe`] says whether it can work here.
    pub fn new(config: ExecConfig) -> ExecDriver {
        ExecDriver { config: Arc::new(config), allocation: Arc::default() }
    }

    /// The directory of a task of this node: `<state_dir>/<job>.<task>` (both DNS labels, so the name parses
    /// back unambiguously).
    pub fn task_dir(&self, job: &str, task: &str) -> PathBuf {
        self.config.state_dir.join(format!("{job}.{task}"))
    }

    /// The handle of a task directory's task.
    fn handle(&self, file: &TaskFile) -> TaskHandle {
        TaskHandle {
            id: TaskId(format!("{}.{}", file.job, file.task)),
            name: format!("roster-{}.{}.{}", file.job, file.task, file.node),
            node: file.node.clone(),
            job: file.job.clone(),
            task: file.task.clone(),
            spec_hash: file.spec_hash.clone(),
        }
    }

    /// The task's files, or [`Error::NotFound`].
    fn load(&self, handle: &TaskHandle) -> Result<(PathBuf, TaskFile, Option<StateFile>)> {
        let dir = self.task_dir(&handle.job, &handle.task);
        let task = wire::read::<TaskFile>(&dir.join(TASK_FILE))
            .map_err(|err| runtime("read task", err))?
            .filter(|task| task.node == self.config.node)
            .ok_or_else(|| Error::NotFound { task: handle.name.clone() })?;
        let state = wire::read(&dir.join(STATE_FILE)).map_err(|err| runtime("read state", err))?;
        Ok((dir, task, state))
    }

    /// The task file for a start of `task`.
    fn task_file(&self, job: &str, task: &TaskSpec, options: &StartOptions, hash: String) -> Result<TaskFile> {
        let layout = cgroup::host_layout().map_err(|reason| Error::Unavailable { driver: DRIVER, reason })?;
        let relative =
            Path::new(&self.config.cgroup_prefix).join(&self.config.node).join(format!("{job}.{}", task.name));
        let cgroup = layout.dirs(relative);
        cgroup.limit_writes(&task.resources).map_err(Error::Unsupported)?;
        let mut env = options.env.clone();
        env.extend(task.env.iter().map(|(key, value)| (key.clone(), value.clone())));
        env.entry("PATH".to_string()).or_insert_with(|| DEFAULT_PATH.to_string());
        Ok(TaskFile {
            version: wire::VERSION,
            node: self.config.node.clone(),
            job: job.to_string(),
            task: task.name.clone(),
            spec_hash: hash,
            hostname: task.name.clone(),
            rootfs: task.rootfs.as_ref().map(PathBuf::from),
            command: task.command.clone().unwrap_or_default(),
            args: task.args.clone(),
            env,
            mounts: task.mounts.clone(),
            resources: task.resources,
            resolv_conf: resolv_conf(options),
            cgroup,
            network: NetworkFile::Host,
            logs: task.logs.unwrap_or_default(),
            supervisor_args: self
                .config
                .supervisor
                .iter()
                .skip(1)
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect(),
        })
    }

    /// Writes the task's `task.json` with its network, allocating a bridge address for a bridge task: the lowest
    /// one no other task directory holds, chosen and written under the allocation lock so two starts cannot pick
    /// the same one.
    fn save_task_file(&self, dir: &Path, mut file: TaskFile, task: &TaskSpec) -> Result<TaskFile> {
        let _allocating = self.allocation.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        file.network = match task.network.as_deref() {
            None | Some("host") => NetworkFile::Host,
            Some("none") => NetworkFile::None,
            Some("bridge") => {
                let used = net::used_addresses(&self.config.state_dir, dir).map_err(|err| runtime("start", err))?;
                let bridge = &self.config.bridge;
                let address = net::allocate(bridge, &used).ok_or_else(|| Error::Runtime {
                    driver: DRIVER,
                    op: "start",
                    message: format!(
                        "no free address left on {} ({}/{})",
                        bridge.name, bridge.address, bridge.prefix_len
                    ),
                })?;
                NetworkFile::bridge(bridge, address, &file.node, &file.job, &file.task)
            }
            Some(other) => return Err(Error::Unsupported(format!("exec network {other:?}"))),
        };
        wire::write(&dir.join(TASK_FILE), &file).map_err(|err| runtime("start", err))?;
        Ok(file)
    }

    /// Spawns the supervisor's detaching hop for the task in `dir` and reaps it.
    async fn spawn_supervisor(&self, dir: &Path, mode: &str) -> Result<()> {
        let (program, prefix) = self.supervisor()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(SUPERVISOR_LOG))
            .map_err(|err| runtime("start", err))?;
        let stderr = log.try_clone().map_err(|err| runtime("start", err))?;
        let status = tokio::process::Command::new(program)
            .args(prefix)
            .arg(mode)
            .arg(dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .status()
            .await
            .map_err(|err| runtime("start", err))?;
        if !status.success() {
            let message = format!("the supervisor failed ({status}): {}", tail_text(&dir.join(SUPERVISOR_LOG)));
            return Err(Error::Runtime { driver: DRIVER, op: "start", message });
        }
        Ok(())
    }

    /// The supervisor program and its leading arguments.
    fn supervisor(&self) -> Result<(&OsString, &[OsString])> {
        let message = "no supervisor command is configured".to_string();
        self.config.supervisor.split_first().ok_or(Error::Unavailable { driver: DRIVER, reason: message })
    }

    /// Waits until the supervisor reports the task started (or its end) in `dir`.
    async fn wait_started(&self, dir: &Path) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.config.start_timeout;
        loop {
            let state: Option<StateFile> = wire::read(&dir.join(STATE_FILE)).map_err(|err| runtime("start", err))?;
            if let Some(state) = state {
                if let Some(error) = state.error {
                    return Err(Error::Runtime { driver: DRIVER, op: "start", message: error });
                }
                if state.pid.is_some() || state.exited() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let message = format!(
                    "the supervisor did not report the task started within {:?}: {}",
                    self.config.start_timeout,
                    tail_text(&dir.join(SUPERVISOR_LOG))
                );
                return Err(Error::Runtime { driver: DRIVER, op: "start", message });
            }
            tokio::time::sleep(STATE_POLL).await;
        }
    }

    /// Waits up to `limit` for the task in `dir` to be recorded as exited (or its supervisor to vanish).
    async fn wait_exited(&self, dir: &Path, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match wire::read::<StateFile>(&dir.join(STATE_FILE)) {
                Ok(Some(state)) if !state.exited() && supervisor_alive(&state) => {}
                _ => return true,
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(STATE_POLL).await;
        }
    }

    /// Kills whatever is left of the task and removes its cgroup; for a task whose supervisor is gone, or before
    /// removing the task.
    async fn reap_cgroup(&self, task: &TaskFile) -> Result<()> {
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        loop {
            task.cgroup.kill_all();
            match task.cgroup.remove() {
                Ok(()) => {
                    task.cgroup.remove_parent_if_empty();
                    return Ok(());
                }
                Err(err) if tokio::time::Instant::now() >= deadline => return Err(runtime("remove cgroup", err)),
                Err(_) => tokio::time::sleep(STATE_POLL).await,
            }
        }
    }
}

#[async_trait]
impl Driver for ExecDriver {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn probe(&self) -> Result<DriverInfo> {
        let unavailable = |reason: String| Error::Unavailable { driver: DRIVER, reason };
        if !rustix::process::geteuid().is_root() {
            return Err(unavailable("the exec driver needs root (namespaces, mounts and cgroups)".to_string()));
        }
        let layout = cgroup::host_layout().map_err(unavailable)?;
        let relative = Path::new(&self.config.cgroup_prefix).join(format!(".probe-{}", std::process::id()));
        let group = layout.dirs(relative);
        let created = group.create(&Resources::default());
        let removed = group.remove();
        created.and(removed).map_err(|err| unavailable(format!("cgroups are not writable: {err}")))?;
        std::fs::create_dir_all(&self.config.state_dir)
            .map_err(|err| unavailable(format!("creating {}: {err}", self.config.state_dir.display())))?;
        let (program, prefix) = self.supervisor()?;
        let output = tokio::process::Command::new(program)
            .args(prefix)
            .arg("probe")
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|err| unavailable(format!("running the supervisor {program:?}: {err}")))?;
        if !output.status.success() {
            return Err(unavailable(String::from_utf8_lossy(&output.stderr).trim().to_string()));
        }
        let release = rustix::system::uname().release().to_string_lossy().into_owned();
        Ok(DriverInfo { driver: DRIVER, version: format!("linux {release}, cgroup {}", layout.kind.as_str()) })
    }

    async fn ensure_image(&self, task: &TaskSpec) -> Result<()> {
        check_exec(task)?;
        match task.rootfs.as_deref() {
            Some(rootfs) if !Path::new(rootfs).is_dir() => Err(Error::ImageMissing {
                image: rootfs.to_string(),
                hint: "the exec task's rootfs must be a directory on this host (unpack the root filesystem there)"
                    .to_string(),
            }),
            _ => Ok(()),
        }
    }

    async fn start(&self, job: &str, task: &TaskSpec, options: &StartOptions) -> Result<TaskHandle> {
        check_exec(task)?;
        let access = HostAccess {
            allow_host_rootfs: self.config.allow_host_rootfs,
            exec_mounts: self.config.host_mounts.clone(),
            docker_mounts: HostPaths::default(),
        };
        access.task_allowed(task)?;
        let dir = self.task_dir(job, &task.name);
        let hash = spec_hash(job, task, options);
        if let Some(existing) = wire::read::<TaskFile>(&dir.join(TASK_FILE)).map_err(|err| runtime("start", err))? {
            let handle = self.handle(&existing);
            if existing.node != self.config.node {
                let reason = format!("its directory belongs to node {:?}", existing.node);
                return Err(Error::Conflict { name: dir.display().to_string(), reason });
            }
            let state: Option<StateFile> = wire::read(&dir.join(STATE_FILE)).map_err(|err| runtime("start", err))?;
            let running = state.as_ref().is_some_and(|state| !state.exited() && supervisor_alive(state));
            if existing.spec_hash == hash && running {
                return Ok(handle);
            }
            if existing.spec_hash == hash {
                // Stopped (or its supervisor vanished): clear what the last run left before running it again.
                self.reap_cgroup(&existing).await?;
            } else {
                tracing::info!(task = %handle.name, "task spec changed; replacing it");
                self.destroy(&handle).await?;
            }
        }
        let file = self.task_file(job, task, options, hash)?;
        std::fs::create_dir_all(&dir).map_err(|err| runtime("start", err))?;
        match std::fs::remove_file(dir.join(STATE_FILE)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(runtime("start", err)),
        }
        let file = self.save_task_file(&dir, file, task)?;
        self.spawn_supervisor(&dir, "start").await?;
        self.wait_started(&dir).await?;
        Ok(self.handle(&file))
    }

    async fn inspect(&self, handle: &TaskHandle) -> Result<TaskState> {
        let (_, task, state) = self.load(handle)?;
        let state = state.unwrap_or_default();
        let status = match &state {
            state if state.exited() => TaskStatus::Exited { exit_code: state.exit_code.unwrap_or(-1) },
            state if !supervisor_alive(state) && state.version != 0 => TaskStatus::Dead,
            state if state.pid.is_some() => TaskStatus::Running,
            _ => TaskStatus::Created,
        };
        // Named for the spec's network, as Docker names a container's addresses, so the agent finds it by name.
        let addresses = match task.network.address() {
            Some(address) if status == TaskStatus::Running => [("bridge".to_string(), address.into())].into(),
            _ => Default::default(),
        };
        Ok(TaskState {
            status,
            started_at: state.started_at.map(wire::time_of),
            finished_at: state.exited_at.map(wire::time_of),
            addresses,
            health: None,
            oom_killed: state.oom,
        })
    }

    async fn stop(&self, handle: &TaskHandle, signal: &str, grace: Duration) -> Result<()> {
        let signal = procfs::parse_signal(signal).ok_or_else(|| Error::Unsupported(format!("signal {signal:?}")))?;
        let (dir, task, state) = self.load(handle)?;
        let Some(state) = state.filter(|state| !state.exited()) else { return Ok(()) };
        if !supervisor_alive(&state) {
            return self.reap_cgroup(&task).await;
        }
        // The main PID is signalled only while it is in the task's cgroup, so a reused PID is never hit.
        if let Some(pid) = state.pid.filter(|pid| task.cgroup.procs().contains(pid)) {
            procfs::signal(pid, signal);
            if self.wait_exited(&dir, grace).await {
                return Ok(());
            }
            tracing::info!(task = %handle.name, ?grace, "task ignored its stop signal; killing it");
        }
        task.cgroup.kill_all();
        if !self.wait_exited(&dir, KILL_WAIT).await {
            let message = format!("still running {KILL_WAIT:?} after SIGKILL");
            return Err(Error::Runtime { driver: DRIVER, op: "stop", message });
        }
        Ok(())
    }

    async fn destroy(&self, handle: &TaskHandle) -> Result<()> {
        let (dir, task, state) = match self.load(handle) {
            Ok(loaded) => loaded,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        if state.as_ref().is_some_and(|state| !state.exited() && supervisor_alive(state)) {
            task.cgroup.kill_all();
            self.wait_exited(&dir, KILL_WAIT).await;
        }
        self.reap_cgroup(&task).await?;
        // The supervisor deletes the host veth end when the task exits; this covers a supervisor that died first.
        net::remove_host_veth(&task.network).map_err(|err| runtime("remove", err))?;
        // Removing the directory frees the task's bridge address.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(runtime("remove", err)),
        }
    }

    async fn recover(&self) -> Result<Vec<TaskHandle>> {
        let entries = match std::fs::read_dir(&self.config.state_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(runtime("recover", err)),
        };
        let mut handles = Vec::new();
        for entry in entries.flatten() {
            match wire::read::<TaskFile>(&entry.path().join(TASK_FILE)) {
                Ok(Some(file)) if file.node == self.config.node => handles.push(self.handle(&file)),
                Ok(_) => {}
                Err(err) => tracing::warn!(dir = %entry.path().display(), %err, "skipping an unreadable task"),
            }
        }
        handles.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(handles)
    }

    async fn exec(&self, handle: &TaskHandle, command: &[String], timeout: Duration) -> Result<ExecOutput> {
        let (dir, _, state) = self.load(handle)?;
        if !state.is_some_and(|state| state.pid.is_some() && !state.exited() && supervisor_alive(&state)) {
            let message = format!("task {:?} is not running", handle.name);
            return Err(Error::Runtime { driver: DRIVER, op: "exec", message });
        }
        let (program, prefix) = self.supervisor()?;
        // One pipe for stdout and stderr keeps them interleaved in the order they were written.
        let (reader, writer) = io::pipe().map_err(|err| runtime("exec", err))?;
        let stderr = writer.try_clone().map_err(|err| runtime("exec", err))?;
        let mut child = {
            let mut process = tokio::process::Command::new(program);
            process.args(prefix).arg("enter").arg(&dir).args(command).env_clear().kill_on_drop(true);
            process.stdin(Stdio::null()).stdout(writer).stderr(stderr);
            // Dropping the command closes the parent's copies of the pipe's write end, so the read sees EOF.
            process.spawn().map_err(|err| runtime("exec", err))?
        };
        let mut reader =
            tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()).map_err(|err| runtime("exec", err))?;
        let run = async {
            let mut output = Vec::new();
            let read = reader.read_to_end(&mut output);
            let (read, status) = tokio::join!(read, child.wait());
            read.and(status).map(|status| (status, output))
        };
        let (status, mut output) = match tokio::time::timeout(timeout, run).await {
            Ok(done) => done.map_err(|err| runtime("exec", err))?,
            Err(_) => {
                let message = format!("timed out after {timeout:?} (the command may still run in the task)");
                return Err(Error::Runtime { driver: DRIVER, op: "exec", message });
            }
        };
        if output.len() > EXEC_OUTPUT_MAX {
            output.drain(..output.len() - EXEC_OUTPUT_MAX);
        }
        let exit_code = i64::from(status.code().unwrap_or(-1));
        Ok(ExecOutput { exit_code, output })
    }

    async fn logs(&self, handle: &TaskHandle, lines: usize) -> Result<Vec<String>> {
        let (dir, _, _) = self.load(handle)?;
        tail_output(&dir, lines).map_err(|err| runtime("logs", err))
    }

    fn events(&self) -> BoxStream<'static, DriverEvent> {
        let config = &self.config;
        events::stream(config.state_dir.clone(), config.node.clone(), config.poll_interval)
    }
}

/// Whether the supervisor recorded in `state` still runs: the same PID, start time and boot.
pub(crate) fn supervisor_alive(state: &StateFile) -> bool {
    state.version != 0 && procfs::alive(state.supervisor_pid, state.supervisor_start, &state.boot_id)
}

/// Refuses a task this driver cannot run.
fn check_exec(task: &TaskSpec) -> Result<()> {
    if task.driver != DriverKind::Exec {
        return Err(Error::Unsupported(format!("task {:?} uses the {} driver, not exec", task.name, task.driver)));
    }
    if task.command.as_deref().is_none_or(|command| command.trim().is_empty()) {
        return Err(Error::Unsupported(format!("exec task {:?} has no command", task.name)));
    }
    Ok(())
}

/// The task's `resolv.conf` when the agent set DNS options; without servers of its own it keeps the host's.
fn resolv_conf(options: &StartOptions) -> Option<String> {
    let dns = &options.dns;
    if dns.servers.is_empty() && dns.search.is_empty() && dns.ndots.is_none() {
        return None;
    }
    let mut text = String::new();
    if dns.servers.is_empty() {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        for line in host.lines().filter(|line| line.trim_start().starts_with("nameserver")) {
            text.push_str(line.trim());
            text.push('\n');
        }
    }
    for server in &dns.servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.search.is_empty() {
        text.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    if let Some(ndots) = dns.ndots {
        text.push_str(&format!("options ndots:{ndots}\n"));
    }
    Some(text)
}

/// The last `lines` lines of a file, reading backwards from its end in blocks so a large log costs little.
pub(crate) fn tail_lines(path: &Path, lines: usize) -> io::Result<Vec<String>> {
    const BLOCK: u64 = 64 * 1024;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    let mut start = len;
    let mut bytes = Vec::new();
    // Read blocks until there is one newline more than the lines wanted (the line before the first kept one).
    while start > 0 && bytes.iter().filter(|byte| **byte == b'\n').count() <= lines {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&bytes);
        bytes = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    // A first line that starts mid-file is partial; it is dropped unless it is all there is.
    let all = if start > 0 && all.len() > lines { &all[1..] } else { &all[..] };
    Ok(all[all.len().saturating_sub(lines)..].iter().map(|line| line.to_string()).collect())
}

/// The last `lines` lines of the task's output, reaching into the rotated files when the current one holds fewer.
pub(crate) fn tail_output(dir: &Path, lines: usize) -> io::Result<Vec<String>> {
    let mut kept: Vec<String> = Vec::new();
    let mut index = 0;
    while kept.len() < lines {
        let path = output::rotated_path(dir, index);
        if index > 0 && !path.exists() {
            break;
        }
        let mut older = tail_lines(&path, lines - kept.len())?;
        older.append(&mut kept);
        kept = older;
        index += 1;
    }
    Ok(kept)
}

/// The last lines of a file as one string, for error messages.
fn tail_text(path: &Path) -> String {
    tail_lines(path, 5).map(|lines| lines.join(" / ")).unwrap_or_default()
}

/// An I/O failure of an operation.
fn runtime(op: &'static str, err: io::Error) -> Error {
    Error::Runtime { driver: DRIVER, op, message: err.to_string() }
}

#[cfg(test)]
mod tests;
