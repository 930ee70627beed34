//! One task of a job as the manager runs it: its handle, restart state, and the services it registers.

use std::net::IpAddr;
use std::time::Duration;

use roster_kv::CheckStatus;
use roster_runtime_shim::{
    AddressMode, Decision, Driver, RestartTracker, ServiceSpec, StartOptions, TaskHandle, TaskSpec, TaskState,
    TaskStatus, service_id,
};
use serde_json::{Map, Value, json};

use super::JobsConfig;
use crate::http::input::Obj;
use crate::local::Local;

/// A roster-owned TTL check never expires by itself: the manager sets it on every start and exit.
const TASK_CHECK_TTL: &str = "87600h";

/// A task's run: what the driver started, and what the restart policy has seen.
pub(super) struct TaskRun {
    pub(super) job: String,
    pub(super) spec: TaskSpec,
    /// The middle of its service IDs (`<node>:<this>:<port>`): the task's name, or `<job>:<task>` for an
    /// allocation's task, since two allocations of one cluster job may run on one node.
    id_task: String,
    /// An allocation's task: its services carry the allocation's ID in `roster_kv::ALLOC_META`.
    scoped: bool,
    /// Registers nothing while set: an allocation restored from disk runs (adopted) before the servers have said
    /// it is still this node's, and its services must not come back before they do.
    pub(super) quiet: bool,
    pub(super) handle: Option<TaskHandle>,
    state: Option<TaskState>,
    tracker: RestartTracker,
    restarts: u32,
    last_exit: Option<i64>,
    /// Service IDs registered for this run, with their task check IDs.
    registered: Vec<String>,
    /// Set while a restart is scheduled; cleared by an explicit stop.
    restart_pending: bool,
    /// The last lines the task wrote before its last exit, for `job status`.
    pub(super) last_logs: Vec<String>,
    /// Why the manager does not run it, when that is down to the job's ordering rather than its own exit.
    pub(super) hold: Option<Hold>,
}

/// Why a task of a job with ordering does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Hold {
    /// Not started yet in this version; what it waits for.
    Waiting(Vec<String>),
    /// Stopped because this required task is down.
    Stopped(String),
    /// A start the ordering made failed.
    Failed(String),
}

impl TaskRun {
    pub(super) fn new(job: &str, spec: TaskSpec, scoped: bool) -> TaskRun {
        let tracker = RestartTracker::new(spec.restart);
        TaskRun {
            job: job.to_owned(),
            id_task: id_task(job, &spec.name, scoped),
            scoped,
            quiet: false,
            spec,
            handle: None,
            state: None,
            tracker,
            restarts: 0,
            last_exit: None,
            registered: Vec::new(),
            restart_pending: false,
            last_logs: Vec::new(),
            hold: None,
        }
    }

    /// A run that is not started until the tasks it starts after are ready.
    pub(super) fn waiting(job: &str, spec: TaskSpec, scoped: bool) -> TaskRun {
        TaskRun { hold: Some(Hold::Waiting(Vec::new())), ..TaskRun::new(job, spec, scoped) }
    }

    /// Whether the task runs (or its restart policy is about to run it again), as the manager left it.
    pub(super) fn is_up(&self) -> bool {
        self.hold.is_none()
            && self.handle.is_some()
            && (self.restart_pending || self.state.as_ref().is_some_and(|s| s.is_running()))
    }

    /// Whether its restart policy will start it again.
    pub(super) fn restarting(&self) -> bool {
        self.restart_pending
    }

    /// The task as an allocation report shows it: `pending` (waiting for its turn, or for its policy's restart),
    /// `running` or `dead`, its restarts, and whether it ended in failure.
    pub(super) fn reported(&self) -> roster_kv::TaskState {
        let state = match &self.hold {
            Some(Hold::Waiting(_)) => "pending",
            Some(Hold::Stopped(_) | Hold::Failed(_)) => "dead",
            None if self.restart_pending => "pending",
            None if self.is_up() => "running",
            None => "dead",
        };
        let failed = matches!(self.hold, Some(Hold::Failed(_)))
            || (state == "dead" && self.hold.is_none() && self.last_exit.is_some_and(|code| code != 0));
        roster_kv::TaskState {
            name: self.spec.name.clone(),
            state: state.to_owned(),
            restarts: u64::from(self.restarts),
            failed,
        }
    }

    /// Where the run stands for the `roster.runtime.tasks` gauge: `pending` (held for its turn), `running`,
    /// `restarting` (its policy will start it again) or `dead`.
    pub(super) fn metric_state(&self) -> &'static str {
        match &self.hold {
            Some(Hold::Waiting(_)) => "pending",
            Some(Hold::Stopped(_) | Hold::Failed(_)) => "dead",
            None if self.restart_pending => "restarting",
            None if self.is_up() => "running",
            None => "dead",
        }
    }

    /// The service IDs this run registered.
    pub(super) fn registered(&self) -> &[String] {
        &self.registered
    }

    /// Starts the task (or adopts it when it already runs from the same spec) and reads its state.
    pub(super) async fn start(
        &mut self,
        driver: &dyn Driver,
        options: &StartOptions,
    ) -> roster_runtime_shim::Result<()> {
        let handle = driver.start(&self.job, &self.spec, options).await?;
        // A start the ordering makes is a fresh run: the stop that held it must not keep the policy from
        // restarting it later.
        if self.hold.take().is_some() {
            self.tracker.reset();
        }
        let state = driver.inspect(&handle).await?;
        if self.restart_pending {
            self.restarts += 1;
            crate::telemetry::task_restarted(self.spec.driver.as_str());
        }
        self.restart_pending = false;
        self.handle = Some(handle);
        self.state = Some(state);
        Ok(())
    }

    /// Registers every service block of the task with its checks and the passing task check (nothing while the
    /// run is quiet).
    pub(super) async fn register(&mut self, local: &Local, config: &JobsConfig) {
        if self.quiet {
            return;
        }
        let services = self.spec.services.clone();
        for service in &services {
            let Some((address, port)) = self.address_of(service, config.advertise) else {
                tracing::error!(job = %self.job, task = %self.spec.name, service = %service.name, "no address to register the service at");
                continue;
            };
            let id = service_id(&config.node, &self.id_task, service.id_key());
            let definition = self.definition(service, &id, address, port);
            let map: Map<String, Value> = match definition {
                Value::Object(map) => map,
                _ => continue,
            };
            match crate::http::definition::service(Obj(&map), config.enable_script_checks) {
                Ok((svc, checks)) => {
                    if let Err(error) = local.add_service(svc, checks, true).await {
                        tracing::error!(%id, %error, "registering a task's service failed");
                        continue;
                    }
                    let _ = local.set_status(&task_check_id(&id), CheckStatus::Passing, self.running_output()).await;
                    if !self.registered.contains(&id) {
                        self.registered.push(id);
                    }
                }
                Err(why) => tracing::error!(%id, %why, "a task's service definition is invalid"),
            }
        }
    }

    /// Removes the services this run registered.
    pub(super) async fn deregister(&mut self, local: &Local) {
        for id in self.registered.drain(..) {
            if let Err(error) = local.remove_service(&id).await {
                tracing::debug!(%id, %error, "deregistering a task's service");
            }
        }
    }

    /// Removes the services this run registered that `replacement` (the same task of the job's next version) does
    /// not register again, so a service dropped or renamed by the new spec does not linger.
    pub(super) async fn deregister_unless_kept(&mut self, local: &Local, replacement: &TaskRun) {
        for id in self.registered.drain(..) {
            if replacement.registered.contains(&id) {
                continue;
            }
            if let Err(error) = local.remove_service(&id).await {
                tracing::debug!(%id, %error, "deregistering a replaced task's service");
            }
        }
    }

    /// Records an exit: the task checks go critical at once; returns the delay before a restart, or `None` when
    /// the task stays down.
    pub(super) async fn exited(&mut self, local: &Local, exit_code: i64) -> Option<Duration> {
        self.last_exit = Some(exit_code);
        let ran_for = self
            .state
            .as_ref()
            .and_then(|state| state.started_at)
            .and_then(|started| started.elapsed().ok())
            .unwrap_or(Duration::ZERO);
        if let Some(state) = &mut self.state {
            state.status = TaskStatus::Exited { exit_code };
        }
        let output = format!("task {}.{} exited with code {exit_code}", self.job, self.spec.name);
        for id in &self.registered {
            let _ = local.set_status(&task_check_id(id), CheckStatus::Critical, output.clone()).await;
        }
        match self.tracker.exited(exit_code, ran_for) {
            Decision::Restart { after, .. } => {
                self.restart_pending = true;
                Some(after)
            }
            Decision::Stay(reason) => {
                tracing::info!(job = %self.job, task = %self.spec.name, exit_code, ?reason, "task stays down");
                None
            }
        }
    }

    pub(super) fn wants_restart(&self) -> bool {
        self.restart_pending
    }

    /// Stops the task (signal, grace, kill) and removes it; its exit is not restarted.
    pub(super) async fn stop(&mut self, driver: &dyn Driver) -> roster_runtime_shim::Result<()> {
        self.tracker.stop_requested();
        self.restart_pending = false;
        let Some(handle) = self.handle.take() else { return Ok(()) };
        driver.stop(&handle, &self.spec.stop_signal, self.spec.stop_timeout.0).await?;
        driver.destroy(&handle).await
    }

    /// Inspects the task again; returns its exit code if it died while nobody was listening.
    pub(super) async fn refresh(&mut self, driver: &dyn Driver) -> Option<i64> {
        let handle = self.handle.clone()?;
        let state = driver.inspect(&handle).await.ok()?;
        let was_running = self.state.as_ref().is_some_and(|s| s.status == TaskStatus::Running);
        let code = match state.status {
            TaskStatus::Exited { exit_code } if was_running => Some(exit_code),
            TaskStatus::Dead if was_running => Some(-1),
            _ => None,
        };
        self.state = Some(state);
        code
    }

    pub(super) fn status_json(&self) -> Value {
        let state = self.state.as_ref();
        let status = match state.map(|s| s.status) {
            Some(TaskStatus::Running) => "running".to_owned(),
            Some(TaskStatus::Created) => "created".to_owned(),
            Some(TaskStatus::Exited { exit_code }) => format!("exited ({exit_code})"),
            Some(TaskStatus::Dead) => "dead".to_owned(),
            None => "pending".to_owned(),
        };
        let (status, reason) = match &self.hold {
            Some(Hold::Waiting(on)) => ("waiting".to_owned(), Some(format!("waiting for {}", on.join(", ")))),
            Some(Hold::Stopped(on)) => ("stopped".to_owned(), Some(format!("stopped: requires {on}, which is down"))),
            Some(Hold::Failed(why)) => ("failed".to_owned(), Some(why.clone())),
            None if self.restart_pending => ("restarting".to_owned(), None),
            None => (status, None),
        };
        json!({
            "Name": self.spec.name,
            "Driver": self.spec.driver.as_str(),
            "State": status,
            "Reason": reason,
            "ID": self.handle.as_ref().map(|h| h.id.0.clone()),
            "Addresses": state.map(|s| s.addresses.iter().map(|(net, ip)| (net.clone(), ip.to_string())).collect::<std::collections::BTreeMap<_, _>>()),
            "Health": state.and_then(|s| s.health).map(|h| format!("{h:?}").to_lowercase()),
            "OOMKilled": state.is_some_and(|s| s.oom_killed),
            "Restarts": self.restarts,
            "LastExitCode": self.last_exit,
            "LastLogs": self.last_logs,
            "Services": self.registered,
        })
    }

    fn running_output(&self) -> String {
        let id = self.handle.as_ref().map_or("", |h| h.id.0.as_str());
        format!("task {}.{} running ({})", self.job, self.spec.name, &id[..id.len().min(12)])
    }

    /// The address and port a service is registered at, per its address mode.
    fn address_of(&self, service: &ServiceSpec, advertise: IpAddr) -> Option<(IpAddr, Option<u16>)> {
        let port = service.port.as_ref().and_then(|label| self.spec.ports.iter().find(|p| &p.label == label));
        match service.address_mode {
            AddressMode::Host => {
                let host_port = port.and_then(|p| p.host_port).and_then(|p| u16::try_from(p).ok());
                Some((advertise, host_port))
            }
            AddressMode::Container => {
                let addresses = &self.state.as_ref()?.addresses;
                let ip = match &self.spec.network {
                    Some(network) => addresses.get(network).copied(),
                    None => addresses.values().next().copied(),
                }
                .or_else(|| addresses.values().next().copied())
                // An exec task on the host's network (or on none) has no address of its own; a bridge one has.
                .or(Some(advertise))?;
                let container_port = port.and_then(|p| u16::try_from(p.container_port).ok());
                Some((ip, container_port))
            }
        }
    }

    /// The Consul service definition of one service block, with the task check added.
    fn definition(&self, service: &ServiceSpec, id: &str, address: IpAddr, port: Option<u16>) -> Value {
        let mut checks = service.render_checks(&address.to_string(), port);
        checks.push(json!({
            "CheckID": task_check_id(id),
            "Name": format!("task {}.{} running", self.job, self.spec.name),
            "TTL": TASK_CHECK_TTL,
            "Status": "passing",
        }));
        let mut meta = service.meta.clone();
        meta.insert("roster-job".to_owned(), self.job.clone());
        meta.insert("roster-task".to_owned(), self.spec.name.clone());
        if self.scoped {
            meta.insert(roster_kv::ALLOC_META.to_owned(), self.job.clone());
        }
        json!({
            "ID": id,
            "Name": service.name,
            "Tags": service.tags,
            "Meta": meta,
            "Address": address.to_string(),
            "Port": port.unwrap_or(0),
            "Checks": checks,
        })
    }
}

/// The middle part of a task's service IDs: `scoped` (an allocation's job) puts the job's name before the task's.
pub(super) fn id_task(job: &str, task: &str, scoped: bool) -> String {
    if scoped { format!("{job}:{task}") } else { task.to_owned() }
}

/// The roster-owned check that says whether the task runs.
pub(super) fn task_check_id(service_id: &str) -> String {
    format!("{service_id}:task")
}
