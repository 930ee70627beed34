//! The job manager: runs the tasks of submitted jobs through the runtime-shim drivers and keeps their services
//! registered in the agent's local state exactly while they run.
//!
//! A started task's services are registered through the same path as `PUT /v1/agent/service/register`, each with
//! the spec's checks (critical until they pass) plus a roster-owned TTL check `<service id>:task` that the manager
//! holds passing while the task runs and turns critical the moment the driver reports its exit, so a dead task
//! leaves DNS and `?passing` at once instead of after its next probe. The restart policy then decides: the task is
//! started again after the backoff and its services re-registered under the same IDs (nothing doubles), or it
//! stays down and its services are deregistered. Stopping a job deregisters first, then stops.
//!
//! Submitted jobs are saved in `data_dir/jobs.json`; at start the manager starts every saved job again, and a
//! driver's `start` is idempotent (a running task with the same labels and spec hash is returned as it is), so a
//! restarted agent adopts its tasks instead of launching them twice. Tasks the driver reports for this node that no
//! job claims are logged and removed after [`ORPHAN_GRACE`].
//!
//! What of the host a job may reach ([`HostAccess`]: exec tasks without a rootfs, exec and Docker bind mounts) is checked at
//! submission, before the job it would replace is touched, and again by the drivers at every start. A saved job the
//! current config no longer allows is therefore refused at restore with a logged error, like any job that fails to
//! start; it stays in `jobs.json` until the next save, and the tasks it left running are reaped as orphans.

pub mod alloc;
mod order;
mod task;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use roster_runtime_shim::{
    DnsOptions, DockerDriver, Driver, DriverEvent, DriverKind, ExecConfig, ExecDriver, HostAccess, JobSpec,
    StartOptions, TaskEventKind, TaskId, TaskSpec, ensure_private_dir,
};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::checks::Runner;
use crate::local::Local;
use order::{Action, Standing};
use task::{Hold, TaskRun};

/// The root-owned parent of a `-dev` agent's exec state directory (see [`exec_state_dir`]).
const RUN_DIR: &str = "/run/roster";

/// Lines of a dead task's output kept for `job status`.
const LAST_LOG_LINES: usize = 10;

/// How long a task that no saved job claims is left alone before it is removed (an operator may be mid-change).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// What the manager needs from the agent.
pub struct JobsConfig {
    /// This node's name (labels, service IDs).
    pub node: String,
    /// The address host-mode services are registered at.
    pub advertise: IpAddr,
    /// Where `jobs.json` and the exec driver's task dirs live; `None` (`-dev`): in memory, and see [`exec_state_dir`].
    pub data_dir: Option<PathBuf>,
    /// The resolver roster-launched containers get: the agent's DNS on a container network's gateway, port 53.
    pub dns: DnsOptions,
    /// The exec driver's bridge for `network = "bridge"` tasks.
    pub exec_bridge: roster_runtime_shim::BridgeConfig,
    /// `enable_script_checks`, for the spec's checks.
    pub enable_script_checks: bool,
    /// What of the host jobs may reach (`exec.allow_host_rootfs`, `exec.host_mounts`, `docker.host_mounts`): checked when a job is
    /// submitted, and handed to the drivers, which check again at every start.
    pub host_access: HostAccess,
}

/// Errors a caller gets back, with the HTTP status Consul-style clients expect.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The spec is invalid, or names what cannot be run (400).
    #[error("{0}")]
    Invalid(String),
    /// No such job (404).
    #[error("Unknown job {0:?}")]
    NotFound(String),
    /// The runtime failed or is unreachable (500).
    #[error("{0}")]
    Runtime(String),
}

/// The agent's jobs. Cheap to clone.
#[derive(Clone)]
pub struct JobManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: JobsConfig,
    local: Arc<Local>,
    runner: Arc<Runner>,
    docker: Option<Arc<DockerDriver>>,
    /// The exec driver, or why there is none (its state directory could not be made private).
    exec: Result<Arc<ExecDriver>, String>,
    jobs: Mutex<BTreeMap<String, Job>>,
    shutdown: CancellationToken,
    /// Wakes the ordering pass ([`JobManager::advance`]) after a task's exit or a submission.
    kick: tokio::sync::Notify,
    /// Moves whenever a job or a task's run changes, for the allocation runner's reports.
    changes: tokio::sync::watch::Sender<u64>,
}

/// A submission's start: the runs it started, and those that wait for the tasks they start after.
struct Started {
    runs: Vec<TaskRun>,
    waiting: Vec<TaskRun>,
}

/// A submission's start that failed part-way: the runs it had started, the task that failed, and why.
struct StartFailure {
    started: Vec<TaskRun>,
    failed: TaskSpec,
    error: JobError,
}

/// A submitted job and the runs of its tasks.
struct Job {
    spec: JobSpec,
    tasks: BTreeMap<String, TaskRun>,
    /// The cluster allocation this job runs (its name is the allocation's ID), or `None` for a job submitted to
    /// this agent (`/v1/agent/job`).
    allocation: Option<AllocRef>,
}

/// Which allocation of which cluster job version a local job runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AllocRef {
    /// The allocation's ID, `<job>-<seq>`: the local job's name.
    pub id: String,
    /// The cluster job.
    pub job: String,
    /// The job version it runs.
    pub version: u64,
}

/// An allocation's job as `allocs.json` keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedAlloc {
    allocation: AllocRef,
    spec: Value,
}

/// How a local job stands, for an allocation report.
pub struct JobSummary {
    /// Its tasks, in the spec's order.
    pub tasks: Vec<roster_kv::TaskState>,
    /// Whether every task runs and every check of its services passes; `None` while a task waits for its turn.
    pub healthy: Option<bool>,
    /// Why a task does not run, when one does not.
    pub message: String,
}

impl JobManager {
    /// Builds the manager, starts following the drivers' events, and restarts (adopts) the saved jobs.
    pub async fn start(
        config: JobsConfig,
        local: Arc<Local>,
        runner: Arc<Runner>,
        shutdown: CancellationToken,
    ) -> JobManager {
        let docker = match DockerDriver::connect_local(config.node.clone()) {
            Ok(driver) => Some(Arc::new(driver)),
            Err(error) => {
                tracing::warn!(%error, "no Docker engine client; docker tasks will be refused");
                None
            }
        };
        let docker = docker.map(|driver| {
            Arc::new(Arc::unwrap_or_clone(driver).with_host_mounts(config.host_access.docker_mounts.clone()))
        });
        let exec = match exec_state_dir(config.data_dir.as_deref(), &config.node) {
            Ok(exec_dir) => {
                tracing::debug!(dir = %exec_dir.display(), "exec driver state directory");
                let supervisor = std::env::current_exe().map(|exe| vec![exe.into_os_string(), "__supervise".into()]);
                let exec_config = ExecConfig {
                    bridge: config.exec_bridge.clone(),
                    allow_host_rootfs: config.host_access.allow_host_rootfs,
                    host_mounts: config.host_access.exec_mounts.clone(),
                    ..ExecConfig::new(
                        config.node.clone(),
                        exec_dir,
                        supervisor.unwrap_or_else(|_| vec!["roster".into(), "__supervise".into()]),
                    )
                };
                Ok(Arc::new(ExecDriver::new(exec_config)))
            }
            Err(error) => {
                tracing::error!(%error, "no private state directory for the exec driver; exec tasks will be refused");
                Err(error.to_string())
            }
        };
        let inner = Arc::new(Inner {
            config,
            local,
            runner,
            docker,
            exec,
            jobs: Mutex::new(BTreeMap::new()),
            shutdown,
            kick: tokio::sync::Notify::new(),
            changes: tokio::sync::watch::Sender::new(0),
        });
        let manager = JobManager { inner };
        manager.follow_events();
        manager.follow_order();
        manager.follow_metrics();
        manager.restore().await;
        manager
    }

    /// Starts (or adopts) every task of `spec` and registers its services; a job of the same name is replaced.
    /// A job that reaches more of the host than the config allows is refused before anything changes, so the job
    /// it would replace keeps running.
    ///
    /// All or nothing, as far as the drivers allow: the tasks are started in order, and only once every one has
    /// started are their services registered and the previous version replaced (its tasks the new spec drops
    /// stopped, its services the new tasks no longer register removed). If a task cannot start, the submission is
    /// rolled back ([`JobManager::roll_back`]) and its error returned, and the previous version stays recorded.
    /// Because a task's runtime name is its job and task name, a task whose spec changed is replaced in place when
    /// it starts; on a rollback such tasks are started again from their previous spec, so they run again but are
    /// new processes (or containers). Tasks the new spec drops still run until the new ones have started, so a
    /// new task that needs one's host port fails; stop the job first then.
    pub async fn submit(&self, spec: JobSpec) -> Result<Value, JobError> {
        if let Some(allocation) = self.allocation_of(&spec.name).await {
            return Err(allocation_owned(&allocation));
        }
        self.submit_inner(spec, None, false).await
    }

    /// `submit` for a job of either kind: `allocation` says which cluster allocation it runs, if any; `quiet`
    /// starts its tasks without registering their services (see [`JobManager::run_allocation`]).
    async fn submit_inner(&self, spec: JobSpec, allocation: Option<AllocRef>, quiet: bool) -> Result<Value, JobError> {
        self.inner
            .config
            .host_access
            .check_job(&spec)
            .map_err(|refusals| JobError::Invalid(format!("Job not allowed by the agent's config: {refusals}")))?;
        let mut jobs = self.inner.jobs.lock().await;
        if jobs.get(&spec.name).is_some_and(|job| job.allocation.is_some() != allocation.is_some()) {
            return Err(JobError::Invalid(format!("Job {:?} exists already, of another kind", spec.name)));
        }
        let started = match self.start_tasks(&spec, allocation.is_some()).await {
            Ok(started) => started,
            Err(failure) => return Err(self.roll_back(&spec.name, failure, jobs.get_mut(&spec.name)).await),
        };
        let mut previous = jobs.remove(&spec.name).map(|job| job.tasks).unwrap_or_default();
        let mut job = Job { spec: spec.clone(), tasks: BTreeMap::new(), allocation };
        for mut run in started.runs {
            run.quiet = quiet;
            run.register(&self.inner.local, &self.inner.config).await;
            if let Some(mut replaced) = previous.remove(&run.spec.name) {
                replaced.deregister_unless_kept(&self.inner.local, &run).await;
            }
            job.tasks.insert(run.spec.name.clone(), run);
        }
        for mut run in started.waiting {
            run.quiet = quiet;
            // A task that runs unchanged keeps running while it waits (a resubmission must not restart it);
            // one whose spec changed stops now and starts from its new spec when its turn comes.
            let kept = match previous.remove(&run.spec.name) {
                Some(old) if old.spec == run.spec && old.is_up() => Some(old),
                Some(old) => {
                    self.stop_run(old).await;
                    None
                }
                None => None,
            };
            job.tasks.insert(run.spec.name.clone(), kept.unwrap_or(run));
        }
        for run in previous.into_values() {
            self.stop_run(run).await;
        }
        jobs.insert(spec.name.clone(), job);
        self.save(&jobs);
        drop(jobs);
        self.inner.runner.sync().await;
        self.inner.kick.notify_one();
        self.changed();
        self.status(&spec.name).await
    }

    /// Deregisters a job's services, then stops and removes its tasks. An allocation's job is the servers' to stop.
    pub async fn stop(&self, name: &str) -> Result<(), JobError> {
        if let Some(allocation) = self.allocation_of(name).await {
            return Err(allocation_owned(&allocation));
        }
        self.stop_inner(name).await
    }

    async fn stop_inner(&self, name: &str) -> Result<(), JobError> {
        let job = {
            let mut jobs = self.inner.jobs.lock().await;
            let job = jobs.remove(name).ok_or_else(|| JobError::NotFound(name.to_owned()))?;
            self.save(&jobs);
            job
        };
        // Dependents first, as systemd stops units in the reverse of their start order.
        let mut tasks = job.tasks;
        for idx in job.spec.start_order().into_iter().rev() {
            if let Some(run) = tasks.remove(&job.spec.tasks[idx].name) {
                self.stop_run(run).await;
            }
        }
        for run in tasks.into_values() {
            self.stop_run(run).await;
        }
        self.inner.runner.sync().await;
        self.changed();
        Ok(())
    }

    /// Runs `allocation`'s job `spec` (named after the allocation), unless that version of it runs already.
    ///
    /// The caller has just read from the servers that the allocation is this node's, so this is also where an
    /// allocation restored from disk (started quietly at [`JobManager::start`]) is confirmed and its services
    /// registered: until then they may belong to a replica that moved elsewhere while this agent was down.
    pub async fn run_allocation(&self, allocation: AllocRef, spec: JobSpec) -> Result<(), JobError> {
        {
            let mut jobs = self.inner.jobs.lock().await;
            if let Some(job) = jobs.get_mut(&allocation.id)
                && job.allocation.as_ref() == Some(&allocation)
            {
                let mut confirmed = false;
                for run in job.tasks.values_mut().filter(|run| run.quiet) {
                    run.quiet = false;
                    confirmed = true;
                    // One its policy is about to restart registers when it starts again.
                    if run.is_up() && !run.restarting() {
                        run.register(&self.inner.local, &self.inner.config).await;
                    }
                }
                drop(jobs);
                if confirmed {
                    tracing::info!(allocation = %allocation.id, "the servers confirmed a restored allocation; its services are registered");
                    self.inner.runner.sync().await;
                    self.changed();
                }
                return Ok(());
            }
        }
        self.submit_inner(spec, Some(allocation), false).await.map(|_| ())
    }

    /// Stops an allocation's job.
    pub async fn stop_allocation(&self, id: &str) -> Result<(), JobError> {
        self.stop_inner(id).await
    }

    /// The allocations this agent runs.
    pub async fn allocations(&self) -> Vec<AllocRef> {
        self.inner.jobs.lock().await.values().filter_map(|job| job.allocation.clone()).collect()
    }

    /// How a job stands: its tasks as an allocation report shows them, and its health.
    pub async fn summary(&self, name: &str) -> Option<JobSummary> {
        let passing = self.passing_services().await;
        let jobs = self.inner.jobs.lock().await;
        let job = jobs.get(name)?;
        let runs: Vec<&TaskRun> = job.spec.tasks.iter().filter_map(|task| job.tasks.get(&task.name)).collect();
        let tasks: Vec<roster_kv::TaskState> = runs.iter().map(|run| run.reported()).collect();
        let healthy = if tasks.iter().any(|task| task.state == "dead") {
            Some(false)
        } else if tasks.iter().any(|task| task.state != "running") {
            None
        } else {
            Some(runs.iter().flat_map(|run| run.registered()).all(|id| passing.get(id).copied().unwrap_or(false)))
        };
        let message = runs
            .iter()
            .filter_map(|run| {
                let status = run.status_json();
                let reason = status["Reason"].as_str()?.to_owned();
                Some(format!("{}: {reason}", run.spec.name))
            })
            .collect::<Vec<_>>()
            .join("; ");
        Some(JobSummary { tasks, healthy, message })
    }

    /// A receiver whose value moves whenever a job or one of its tasks changes.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The drivers this agent can run tasks with now: those whose probe answers.
    pub async fn drivers(&self) -> Vec<String> {
        let mut drivers = Vec::new();
        for driver in self.drivers_here() {
            match driver.probe().await {
                Ok(_) => drivers.push(driver.name().to_owned()),
                Err(error) => tracing::debug!(driver = driver.name(), %error, "driver unavailable"),
            }
        }
        drivers.sort();
        drivers
    }

    /// The drivers this agent has a client for.
    fn drivers_here(&self) -> Vec<Arc<dyn Driver>> {
        self.inner
            .docker
            .iter()
            .map(|d| d.clone() as Arc<dyn Driver>)
            .chain(self.inner.exec.clone().ok().map(|d| d as Arc<dyn Driver>))
            .collect()
    }

    /// The allocation a job of this name runs, if it is an allocation's.
    async fn allocation_of(&self, name: &str) -> Option<AllocRef> {
        self.inner.jobs.lock().await.get(name).and_then(|job| job.allocation.clone())
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|count| *count += 1);
    }

    /// Keeps the `roster.runtime.tasks` gauge equal to the tasks' states: counted again after every change the
    /// manager announces, so it never drifts from what `job status` shows.
    fn follow_metrics(&self) {
        let manager = self.clone();
        let mut changes = self.inner.changes.subscribe();
        tokio::spawn(async move {
            loop {
                let mut counts = [0u32; crate::telemetry::TASK_STATES.len()];
                for run in manager.inner.jobs.lock().await.values().flat_map(|job| job.tasks.values()) {
                    let state = run.metric_state();
                    if let Some(idx) = crate::telemetry::TASK_STATES.iter().position(|s| *s == state) {
                        counts[idx] += 1;
                    }
                }
                crate::telemetry::runtime_tasks(counts);
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = manager.inner.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Every job's status.
    pub async fn list(&self) -> Value {
        let jobs = self.inner.jobs.lock().await;
        Value::Array(jobs.values().map(|job| self.job_json(job)).collect())
    }

    /// One job's status: per task, its state, the runtime ID, addresses, restarts, last exit code and health.
    pub async fn status(&self, name: &str) -> Result<Value, JobError> {
        let jobs = self.inner.jobs.lock().await;
        let job = jobs.get(name).ok_or_else(|| JobError::NotFound(name.to_owned()))?;
        Ok(self.job_json(job))
    }

    /// The last `lines` lines a task wrote.
    pub async fn logs(&self, name: &str, task: Option<&str>, lines: usize) -> Result<Vec<String>, JobError> {
        let jobs = self.inner.jobs.lock().await;
        let job = jobs.get(name).ok_or_else(|| JobError::NotFound(name.to_owned()))?;
        let run = match task {
            Some(task) => job.tasks.get(task).ok_or_else(|| JobError::NotFound(format!("{name}/{task}")))?,
            None => job.tasks.values().next().ok_or_else(|| JobError::NotFound(name.to_owned()))?,
        };
        let handle = run.handle.clone().ok_or_else(|| JobError::Runtime("the task has not started".to_owned()))?;
        let driver = self.driver(run.spec.driver)?;
        driver.logs(&handle, lines).await.map_err(runtime_error)
    }

    /// Starts (or adopts) the tasks of `spec` in their start order, registering nothing; stops at the first that
    /// fails. A task whose `after` names a task not ready yet is left waiting: ready means started here and, when
    /// its services have checks, registered already with every check passing (an unchanged task of the running
    /// version); otherwise its checks can only pass once registered, and the ordering pass starts the rest.
    async fn start_tasks(&self, spec: &JobSpec, scoped: bool) -> Result<Started, StartFailure> {
        let mut started = Started { runs: Vec::new(), waiting: Vec::new() };
        let mut ready: Vec<&str> = Vec::new();
        let local = if spec.tasks.iter().any(|task| !task.after.is_empty()) {
            Some(self.passing_services().await)
        } else {
            None
        };
        for idx in spec.start_order() {
            let task = &spec.tasks[idx];
            if !task.after.iter().all(|name| ready.contains(&name.as_str())) {
                started.waiting.push(TaskRun::waiting(&spec.name, task.clone(), scoped));
                continue;
            }
            match self.start_task(&spec.name, task, scoped).await {
                Ok(run) => started.runs.push(run),
                Err(error) => return Err(StartFailure { started: started.runs, failed: task.clone(), error }),
            }
            let passing = |service: &roster_runtime_shim::ServiceSpec| {
                let id_task = task::id_task(&spec.name, &task.name, scoped);
                let id = roster_runtime_shim::service_id(&self.inner.config.node, &id_task, service.id_key());
                service.checks.is_empty() || local.as_ref().and_then(|local| local.get(&id)).copied().unwrap_or(false)
            };
            if task.services.iter().all(passing) {
                ready.push(&task.name);
            }
        }
        Ok(started)
    }

    async fn start_task(&self, job: &str, task: &TaskSpec, scoped: bool) -> Result<TaskRun, JobError> {
        let driver = self.driver(task.driver)?;
        driver.ensure_image(task).await.map_err(runtime_error)?;
        let mut run = TaskRun::new(job, task.clone(), scoped);
        run.start(driver.as_ref(), &self.start_options()).await.map_err(runtime_error)?;
        Ok(run)
    }

    /// Undoes a submission whose task `failure.failed` could not start, and returns the error to answer with.
    ///
    /// The tasks it started are stopped and removed, except those the previous version runs unchanged (their start
    /// adopted them), and so is whatever the failed start left behind (a created container, a task directory). The
    /// previous version's tasks that a start replaced in place (same name, another spec) are started again from
    /// their old spec; their services were never touched, so they stay registered. What cannot be restored is
    /// logged and named in the error.
    async fn roll_back(&self, job: &str, failure: StartFailure, mut previous: Option<&mut Job>) -> JobError {
        let StartFailure { started, failed, error } = failure;
        let unchanged = |task: &TaskSpec| {
            previous.as_ref().and_then(|job| job.tasks.get(&task.name)).is_some_and(|run| run.spec == *task)
        };
        // The names whose previous version a start replaced in place.
        let mut replaced: Vec<String> = Vec::new();
        if !unchanged(&failed) {
            self.remove_leftovers(job, &failed).await;
            replaced.push(failed.name.clone());
        }
        for run in started.into_iter().rev() {
            if !unchanged(&run.spec) {
                replaced.push(run.spec.name.clone());
                self.stop_run(run).await;
            }
        }
        let mut not_restored = Vec::new();
        for name in replaced {
            let Some(run) = previous.as_mut().and_then(|job| job.tasks.get_mut(&name)) else { continue };
            if let Err(why) = self.restore_run(run).await {
                tracing::error!(%job, task = %name, %why, "could not start the previous version of a task again");
                not_restored.push(format!("{name} ({why})"));
            }
        }
        if not_restored.is_empty() {
            return error;
        }
        let message =
            format!("{error}; the previous version of task(s) {} could not be started again", not_restored.join(", "));
        match error {
            JobError::Invalid(_) => JobError::Invalid(message),
            _ => JobError::Runtime(message),
        }
    }

    /// Stops and removes what a failed start of `task` left in its driver: found by the driver's own listing,
    /// because the failed start returned no handle.
    async fn remove_leftovers(&self, job: &str, task: &TaskSpec) {
        let Ok(driver) = self.driver(task.driver) else { return };
        let found = match driver.recover().await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%job, task = %task.name, %error, "cannot list what a failed start left behind");
                return;
            }
        };
        for handle in found.into_iter().filter(|handle| handle.job == job && handle.task == task.name) {
            if let Err(error) = driver.stop(&handle, &task.stop_signal, task.stop_timeout.0).await {
                tracing::debug!(task = %handle.name, %error, "stopping what a failed start left");
            }
            if let Err(error) = driver.destroy(&handle).await {
                tracing::warn!(task = %handle.name, %error, "removing what a failed start left failed");
            }
        }
    }

    /// Starts a previous version's task again from its spec after a rollback removed its replacement, and marks
    /// its services passing again (they stayed registered).
    async fn restore_run(&self, run: &mut TaskRun) -> Result<(), JobError> {
        let driver = self.driver(run.spec.driver)?;
        run.start(driver.as_ref(), &self.start_options()).await.map_err(runtime_error)?;
        run.register(&self.inner.local, &self.inner.config).await;
        Ok(())
    }

    fn job_json(&self, job: &Job) -> Value {
        json!({
            "Name": job.spec.name,
            "Tasks": job.tasks.values().map(TaskRun::status_json).collect::<Vec<_>>(),
        })
    }

    fn driver(&self, kind: DriverKind) -> Result<Arc<dyn Driver>, JobError> {
        match kind {
            DriverKind::Docker => match &self.inner.docker {
                Some(docker) => Ok(docker.clone()),
                None => Err(JobError::Runtime("the Docker engine is not reachable (no client)".to_owned())),
            },
            DriverKind::Exec => match &self.inner.exec {
                Ok(exec) => Ok(exec.clone()),
                Err(why) => Err(JobError::Runtime(format!("the exec driver is unavailable: {why}"))),
            },
        }
    }

    fn start_options(&self) -> StartOptions {
        StartOptions { dns: self.inner.config.dns.clone(), env: BTreeMap::new() }
    }

    async fn stop_run(&self, mut run: TaskRun) {
        run.deregister(&self.inner.local).await;
        let Ok(driver) = self.driver(run.spec.driver) else { return };
        if let Err(error) = run.stop(driver.as_ref()).await {
            tracing::warn!(task = %run.spec.name, %error, "stopping a task failed");
        }
    }

    /// Restarts the saved jobs; `start` adopts what still runs. Then reports and reaps tasks nobody claims.
    async fn restore(&self) {
        let Some(path) = self.jobs_file() else { return };
        let specs: Vec<JobSpec> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<Value>>(&bytes) {
                Ok(values) => values
                    .iter()
                    .filter_map(|v| match JobSpec::from_json(&v.to_string()) {
                        Ok(spec) => Some(spec),
                        // A job saved under an older, laxer build (a mount target with `..`, say) no longer
                        // validates: say so, and leave its tasks to be reaped as unclaimed.
                        Err(error) => {
                            let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
                            tracing::error!(job = %name, %error, "a saved job is no longer valid; not restarting it");
                            None
                        }
                    })
                    .collect(),
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "unreadable jobs file; starting with no jobs");
                    Vec::new()
                }
            },
            Err(_) => Vec::new(),
        };
        for spec in specs {
            let name = spec.name.clone();
            if let Err(error) = self.submit(spec).await {
                tracing::error!(job = %name, %error, "could not restart a saved job");
            }
        }
        // The allocations this node ran: started (adopted) again so they keep running while no server answers,
        // but quietly: their services are registered once the servers confirm the allocation is still this
        // node's (`run_allocation`); the allocation runner stops those the servers no longer allocate here.
        let saved: Vec<SavedAlloc> = self
            .allocs_file()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| match serde_json::from_slice(&bytes) {
                Ok(saved) => Some(saved),
                Err(error) => {
                    tracing::error!(%error, "unreadable allocations file; the servers' list will be run");
                    None
                }
            })
            .unwrap_or_default();
        for SavedAlloc { allocation, spec } in saved {
            let id = allocation.id.clone();
            let started = match JobSpec::from_json(&spec.to_string()) {
                Ok(spec) => self.submit_inner(spec, Some(allocation), true).await.map(|_| ()),
                Err(error) => Err(JobError::Invalid(error.to_string())),
            };
            if let Err(error) = started {
                tracing::error!(allocation = %id, %error, "could not restart a saved allocation");
            }
        }
        let manager = self.clone();
        tokio::spawn(async move { manager.reap_orphans().await });
    }

    async fn reap_orphans(&self) {
        let exec = self.inner.exec.clone().ok().map(|d| d as Arc<dyn Driver>);
        for driver in [self.inner.docker.clone().map(|d| d as Arc<dyn Driver>), exec] {
            let Some(driver) = driver else { continue };
            let Ok(found) = driver.recover().await else { continue };
            let orphans: Vec<_> = {
                let jobs = self.inner.jobs.lock().await;
                found
                    .into_iter()
                    .filter(|handle| !jobs.get(&handle.job).is_some_and(|job| job.tasks.contains_key(&handle.task)))
                    .collect()
            };
            if orphans.is_empty() {
                continue;
            }
            for handle in &orphans {
                tracing::warn!(task = %handle.name, "a task no job claims; removing it after the grace period");
            }
            tokio::select! {
                () = tokio::time::sleep(ORPHAN_GRACE) => {}
                () = self.inner.shutdown.cancelled() => return,
            }
            let jobs = self.inner.jobs.lock().await;
            for handle in orphans {
                if jobs.get(&handle.job).is_some_and(|job| job.tasks.contains_key(&handle.task)) {
                    continue;
                }
                let _ = driver.stop(&handle, "SIGTERM", Duration::from_secs(5)).await;
                let _ = driver.destroy(&handle).await;
            }
        }
    }

    /// Follows each driver's events: an exit turns the task's services critical at once, then the restart policy
    /// decides; a broken stream makes every task be inspected again.
    fn follow_events(&self) {
        for driver in self.drivers_here() {
            let manager = self.clone();
            tokio::spawn(async move {
                let mut events = driver.events();
                loop {
                    let event = tokio::select! {
                        event = events.next() => event,
                        () = manager.inner.shutdown.cancelled() => return,
                    };
                    match event {
                        Some(DriverEvent::Task { id, job, task, kind: TaskEventKind::Died { exit_code } }) => {
                            manager.task_died(driver.clone(), &job, &task, Some(&id), exit_code).await;
                        }
                        Some(DriverEvent::Resync { reason }) => {
                            tracing::warn!(driver = driver.name(), %reason, "driver events interrupted; re-inspecting");
                            manager.resync(driver.clone()).await;
                        }
                        Some(_) => {}
                        None => return,
                    }
                }
            });
        }
    }

    /// A task's exit, from an event (`id`: the runtime's ID of what died) or a resync (`None`: the current run).
    async fn task_died(&self, driver: Arc<dyn Driver>, job: &str, task: &str, id: Option<&TaskId>, exit_code: i64) {
        let decision = {
            let mut jobs = self.inner.jobs.lock().await;
            let Some(run) = jobs.get_mut(job).and_then(|job| job.tasks.get_mut(task)) else { return };
            // A run the ordering holds (or never started) has no process of its own: this is the exit of the one
            // it stopped.
            if run.hold.is_some() {
                return;
            }
            // The death of a container this run replaced (a spec change, a rollback) is not this run's exit. Exec
            // task IDs are `<job>.<task>` for every run, so for them this cannot tell runs apart.
            if id.is_some_and(|id| run.handle.as_ref().is_some_and(|handle| handle.id != *id)) {
                return;
            }
            let decision = run.exited(&self.inner.local, exit_code).await;
            if let Some(handle) = run.handle.clone() {
                run.last_logs = driver.logs(&handle, LAST_LOG_LINES).await.unwrap_or_default();
            }
            decision
        };
        let Some(after) = decision else {
            let mut jobs = self.inner.jobs.lock().await;
            if let Some(run) = jobs.get_mut(job).and_then(|job| job.tasks.get_mut(task)) {
                run.deregister(&self.inner.local).await;
            }
            drop(jobs);
            self.inner.runner.sync().await;
            // Down for good: the tasks that require it stop.
            self.inner.kick.notify_one();
            self.changed();
            return;
        };
        self.changed();
        let manager = self.clone();
        let (job, task) = (job.to_owned(), task.to_owned());
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(after) => {}
                () = manager.inner.shutdown.cancelled() => return,
            }
            let options = manager.start_options();
            let mut jobs = manager.inner.jobs.lock().await;
            let Some(run) = jobs.get_mut(&job).and_then(|job| job.tasks.get_mut(&task)) else { return };
            if !run.wants_restart() {
                return;
            }
            match run.start(driver.as_ref(), &options).await {
                Ok(()) => run.register(&manager.inner.local, &manager.inner.config).await,
                Err(error) => tracing::error!(%job, %task, %error, "restarting a task failed"),
            }
            drop(jobs);
            manager.inner.runner.sync().await;
            manager.changed();
        });
    }

    /// Runs the ordering pass whenever a local check or service changes (a dependency may have become ready) or
    /// the manager asks (a task went down, a job was submitted).
    fn follow_order(&self) {
        let manager = self.clone();
        let mut changes = self.inner.local.changes();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = manager.inner.kick.notified() => {}
                    () = manager.inner.shutdown.cancelled() => return,
                }
                manager.advance().await;
            }
        });
    }

    /// The ordering pass: for every job whose tasks name others in `after` or `requires`, starts the tasks whose
    /// dependencies are now ready and stops those whose required tasks are down ([`order::plan`]), and records
    /// what the others wait for. A start that fails leaves its task failed, which may stop others, so the pass
    /// runs again until nothing fails.
    async fn advance(&self) {
        loop {
            let mut jobs = self.inner.jobs.lock().await;
            let ordered = |job: &Job| job.spec.tasks.iter().any(|t| !t.after.is_empty() || !t.requires.is_empty());
            if !jobs.values().any(ordered) {
                return;
            }
            let passing = self.passing_services().await;
            let (mut changed, mut failed) = (false, false);
            for job in jobs.values_mut().filter(|job| ordered(job)) {
                let spec = job.spec.clone();
                let mut tasks: Vec<order::Task<'_>> = spec
                    .tasks
                    .iter()
                    .map(|task| order::Task {
                        name: &task.name,
                        after: &task.after,
                        requires: &task.requires,
                        standing: job.tasks.get(&task.name).map_or(Standing::Down, |run| standing(run, &passing)),
                        has_checks: task.services.iter().any(|service| !service.checks.is_empty()),
                    })
                    .collect();
                for action in order::plan(&mut tasks, &spec.start_order()) {
                    let (Action::Start(idx) | Action::Stop { task: idx, .. }) = &action;
                    let Some(run) = job.tasks.get_mut(&spec.tasks[*idx].name) else { continue };
                    changed = true;
                    match action {
                        Action::Start(_) => {
                            if let Err(error) = self.start_held(run).await {
                                tracing::error!(job = %spec.name, task = %run.spec.name, %error, "starting a task whose dependencies are ready failed");
                                run.hold = Some(Hold::Failed(format!("start failed: {error}")));
                                failed = true;
                            }
                        }
                        Action::Stop { because, .. } => {
                            tracing::info!(job = %spec.name, task = %run.spec.name, requires = %because, "stopping a task whose required task is down");
                            run.deregister(&self.inner.local).await;
                            if let Ok(driver) = self.driver(run.spec.driver)
                                && let Err(error) = run.stop(driver.as_ref()).await
                            {
                                tracing::warn!(task = %run.spec.name, %error, "stopping a task failed");
                            }
                            run.hold = Some(Hold::Stopped(because));
                        }
                    }
                }
                for (idx, task) in spec.tasks.iter().enumerate() {
                    if let Some(Hold::Waiting(on)) = job.tasks.get_mut(&task.name).and_then(|run| run.hold.as_mut()) {
                        *on = order::blockers(&tasks, idx);
                    }
                }
            }
            drop(jobs);
            if changed {
                self.inner.runner.sync().await;
                self.changed();
            }
            if !failed {
                return;
            }
        }
    }

    /// Starts a task the ordering held back and registers its services.
    async fn start_held(&self, run: &mut TaskRun) -> Result<(), JobError> {
        let driver = self.driver(run.spec.driver)?;
        driver.ensure_image(&run.spec).await.map_err(runtime_error)?;
        run.start(driver.as_ref(), &self.start_options()).await.map_err(runtime_error)?;
        run.register(&self.inner.local, &self.inner.config).await;
        Ok(())
    }

    /// Whether every check of each local service passes, by service ID.
    async fn passing_services(&self) -> BTreeMap<String, bool> {
        let (services, checks) = self.inner.local.snapshot().await;
        let mut passing: BTreeMap<String, bool> = services.into_iter().map(|service| (service.id, true)).collect();
        for check in checks {
            if let Some(all) = passing.get_mut(&check.service_id) {
                *all &= check.status == roster_kv::CheckStatus::Passing;
            }
        }
        passing
    }

    async fn resync(&self, driver: Arc<dyn Driver>) {
        let dead: Vec<(String, String, i64)> = {
            let mut jobs = self.inner.jobs.lock().await;
            let mut dead = Vec::new();
            for job in jobs.values_mut() {
                for run in job.tasks.values_mut() {
                    if run.spec.driver.as_str() != driver.name() {
                        continue;
                    }
                    if let Some(code) = run.refresh(driver.as_ref()).await {
                        dead.push((job.spec.name.clone(), run.spec.name.clone(), code));
                    }
                }
            }
            dead
        };
        for (job, task, code) in dead {
            self.task_died(driver.clone(), &job, &task, None, code).await;
        }
    }

    fn jobs_file(&self) -> Option<PathBuf> {
        self.inner.config.data_dir.as_ref().map(|dir| dir.join("jobs.json"))
    }

    fn allocs_file(&self) -> Option<PathBuf> {
        self.inner.config.data_dir.as_ref().map(|dir| dir.join("allocs.json"))
    }

    /// Saves the job specs atomically (write a temp file, fsync, rename), as `local.json` is saved: the agent's own
    /// jobs in `jobs.json`, allocations' jobs with the allocation they run in `allocs.json`.
    fn save(&self, jobs: &BTreeMap<String, Job>) {
        let specs: Vec<&JobSpec> = jobs.values().filter(|job| job.allocation.is_none()).map(|job| &job.spec).collect();
        let allocs: Vec<SavedAlloc> = jobs
            .values()
            .filter_map(|job| {
                let spec = serde_json::to_value(&job.spec).ok()?;
                Some(SavedAlloc { allocation: job.allocation.clone()?, spec })
            })
            .collect();
        if let Some(path) = self.jobs_file() {
            save_json(&path, &specs);
        }
        if let Some(path) = self.allocs_file() {
            save_json(&path, &allocs);
        }
    }
}

/// Writes `value` to `path` atomically, logging a failure.
fn save_json(path: &Path, value: &impl serde::Serialize) {
    {
        let write = || -> std::io::Result<()> {
            let tmp = path.with_extension("json.tmp");
            let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
            let file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut &file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        if let Err(error) = write() {
            tracing::error!(path = %path.display(), %error, "could not save the jobs file");
        }
    }
}

/// The refusal of a local change to a job that runs a cluster allocation.
fn allocation_owned(allocation: &AllocRef) -> JobError {
    JobError::Invalid(format!(
        "Job {:?} runs allocation {} of the cluster job {:?}; change it with roster job deploy or undeploy",
        allocation.id, allocation.id, allocation.job
    ))
}

/// Where a run stands for the ordering: `passing` says, by service ID, whether all of a service's checks pass.
fn standing(run: &TaskRun, passing: &BTreeMap<String, bool>) -> Standing {
    match &run.hold {
        Some(Hold::Waiting(_)) => Standing::Waiting,
        Some(Hold::Stopped(_)) => Standing::Held,
        Some(Hold::Failed(_)) => Standing::Down,
        None if run.restarting() => Standing::Restarting,
        None if !run.is_up() => Standing::Down,
        None if run.registered().iter().all(|id| passing.get(id).copied().unwrap_or(false)) => Standing::Ready,
        None => Standing::Running,
    }
}

fn runtime_error(error: roster_runtime_shim::Error) -> JobError {
    match error {
        roster_runtime_shim::Error::Spec(why) => JobError::Invalid(why.to_string()),
        roster_runtime_shim::Error::ImageMissing { .. }
        | roster_runtime_shim::Error::NetworkMissing { .. }
        | roster_runtime_shim::Error::NotAllowed { .. } => JobError::Invalid(error.to_string()),
        other => JobError::Runtime(other.to_string()),
    }
}

/// Where the exec driver keeps its task directories, made private to this user ([`ensure_private_dir`]: mode
/// 0700, no symlink, no one else's), because the root supervisors run what their `task.json` files say.
///
/// With a data dir: `<data_dir>/exec`, which survives restarts, so a restarted agent re-adopts its tasks.
/// Without one (`-dev`): `/run/roster/exec-<node>` when this process may create it (root; `/run` is root-owned and
/// emptied at boot), so a restarted `-dev` agent still finds, and reaps, the tasks its predecessor left; otherwise a
/// fresh `roster-exec-<random>` in the temp dir, private and unguessable, which a later agent never sees (the exec
/// driver needs root anyway). Never a predictable path in a world-writable directory: anyone could plant a symlink
/// or a directory of their own there first.
pub fn exec_state_dir(data_dir: Option<&Path>, node: &str) -> std::io::Result<PathBuf> {
    if let Some(data_dir) = data_dir {
        std::fs::create_dir_all(data_dir)?;
        let dir = data_dir.join("exec");
        ensure_private_dir(&dir)?;
        return Ok(dir);
    }
    let run = Path::new(RUN_DIR);
    let attempt = if rustix::process::geteuid().is_root() {
        ensure_private_dir(run)
    } else {
        Err(std::io::ErrorKind::PermissionDenied.into())
    };
    match attempt {
        Ok(()) => {
            let name: String =
                node.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
            let dir = run.join(format!("exec-{name}"));
            ensure_private_dir(&dir)?;
            Ok(dir)
        }
        // Not root, or no /run: a private directory no one can have guessed. Any other failure (something planted
        // at /run/roster) is refused, not worked around.
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            let dir = std::env::temp_dir().join(format!("roster-exec-{}", uuid::Uuid::new_v4().simple()));
            ensure_private_dir(&dir)?;
            Ok(dir)
        }
        Err(error) => Err(error),
    }
}

/// The resolver settings for roster-launched tasks: the first DNS listener on port 53 that is not loopback (a
/// container network's gateway), with search domains so `files` and `files.service` resolve on glibc and musl.
pub fn container_dns(dns_addrs: &[std::net::SocketAddr], domain: &str) -> DnsOptions {
    let servers: Vec<IpAddr> = dns_addrs
        .iter()
        .filter(|addr| addr.port() == 53 && !addr.ip().is_loopback())
        .map(|addr| addr.ip())
        .take(1)
        .collect();
    if servers.is_empty() {
        return DnsOptions::default();
    }
    let domain = domain.trim_matches('.');
    DnsOptions { servers, search: vec![format!("service.{domain}"), domain.to_owned()], ndots: Some(1) }
}

#[cfg(test)]
mod tests;
