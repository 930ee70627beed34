//! Runs this agent's health checks: hands every runnable local check to `roster_health`, and writes each status change it reports back through `Local`, which pushes it to the catalog at once.
//!
//! The runner's scheduler owns timing; this module only reconciles the set of checks (after every registration change) and relays events.
//! A check that the runner reports critical for longer than its `DeregisterCriticalServiceAfter` gets its service deregistered, as Consul does.
//! Alias checks watch the catalog with blocking stale queries on the aliased node (through the `Backend`, so a client agent's go to a server), so they follow the target within one Raft apply.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use roster_health::{AliasSource, CheckSpec, Checks, ContainerExec, Event, Status};
use roster_kv::{Answer, CheckStatus, Query};
use roster_server::Consistency;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::local::Local;

/// How many probes may run at once (the rest wait their turn).
const MAX_CONCURRENT_PROBES: usize = 512;
/// Events the runner may queue before it waits for the agent to catch up.
const EVENT_QUEUE: usize = 1024;
/// How long an alias check parks on the catalog before asking again.
const ALIAS_WAIT: Duration = Duration::from_secs(300);

/// The agent's check runner.
pub struct Runner {
    checks: Checks,
    local: Arc<Local>,
    /// Consul's `check_update_interval`: how often an output-only change reaches the catalog.
    check_update_interval: Duration,
    /// The (type, definition) each running check was started with, so unchanged checks are not restarted.
    running: Mutex<BTreeMap<String, (String, String)>>,
}

impl Runner {
    /// Starts the runner and the task that relays its events into `local`.
    pub fn spawn(
        local: Arc<Local>,
        backend: Backend,
        enable_script_checks: bool,
        exec: Option<Arc<dyn ContainerExec>>,
        check_update_interval: Duration,
        shutdown: CancellationToken,
    ) -> Arc<Runner> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let alias = Arc::new(CatalogAlias { backend, own_node: local.node().node.clone() });
        let config = roster_health::Config { enable_script_checks, max_concurrent: MAX_CONCURRENT_PROBES };
        let checks = Checks::spawn(config, alias, exec, tx, shutdown.clone());
        let runner = Arc::new(Runner { checks, local, check_update_interval, running: Mutex::new(BTreeMap::new()) });
        tokio::spawn(relay(runner.clone(), rx, shutdown));
        runner
    }

    /// Makes the runner's set of checks match the agent's local checks.
    pub async fn sync(&self) {
        let (_, local_checks) = self.local.snapshot().await;
        let mut running = self.running.lock().await;
        let mut wanted = BTreeMap::new();
        for check in &local_checks {
            if check.check_type.is_empty() || check.check_type == "maintenance" {
                continue;
            }
            let key = (check.check_type.clone(), check.definition_json.clone());
            if running.get(&check.check_id) != Some(&key) {
                let definition: serde_json::Value = serde_json::from_str(&check.definition_json).unwrap_or_default();
                match CheckSpec::from_consul(&check.check_id, &check.check_type, &definition, to_health(check.status)) {
                    Ok(spec) => self.checks.upsert(spec),
                    Err(why) => {
                        tracing::warn!(check = %check.check_id, "cannot run check: {why}");
                        continue;
                    }
                }
            }
            wanted.insert(check.check_id.clone(), key);
        }
        for id in running.keys().filter(|id| !wanted.contains_key(*id)) {
            self.checks.remove(id);
        }
        *running = wanted;
    }

    /// Feeds a TTL update to the runner, which restarts the check's TTL clock.
    pub fn ttl_update(&self, check_id: &str, status: CheckStatus, output: &str) {
        if let Err(err) = self.checks.ttl_update(check_id, to_health(status), output.to_owned()) {
            tracing::debug!(check = %check_id, "TTL update not taken by the runner: {err}");
        }
    }
}

async fn relay(runner: Arc<Runner>, mut events: mpsc::Receiver<Event>, shutdown: CancellationToken) {
    loop {
        let event = tokio::select! {
            event = events.recv() => match event { Some(event) => event, None => return },
            () = shutdown.cancelled() => return,
        };
        match event {
            Event::Status { check_id, status, output } => {
                let interval = runner.check_update_interval;
                if let Err(err) = runner.local.set_probe_result(&check_id, to_catalog(status), output, interval).await {
                    tracing::warn!(check = %check_id, "recording check status failed: {err}");
                }
            }
            Event::CriticalTooLong { check_id } => {
                let Some(check) = runner.local.check(&check_id).await else { continue };
                if check.service_id.is_empty() {
                    continue;
                }
                tracing::info!(service = %check.service_id, check = %check_id, "deregistering a service critical for longer than DeregisterCriticalServiceAfter");
                if let Err(err) = runner.local.remove_service(&check.service_id).await {
                    tracing::warn!(service = %check.service_id, "deregistering failed: {err}");
                }
                runner.sync().await;
            }
        }
    }
}

fn to_health(status: CheckStatus) -> Status {
    match status {
        CheckStatus::Passing => Status::Passing,
        CheckStatus::Warning => Status::Warning,
        CheckStatus::Critical => Status::Critical,
    }
}

fn to_catalog(status: Status) -> CheckStatus {
    match status {
        Status::Passing => CheckStatus::Passing,
        Status::Warning => CheckStatus::Warning,
        Status::Critical => CheckStatus::Critical,
    }
}

/// Alias checks read the catalog: the worst status of the aliased node's checks, and of the aliased instance's when one is named.
struct CatalogAlias {
    backend: Backend,
    own_node: String,
}

#[async_trait::async_trait]
impl AliasSource for CatalogAlias {
    async fn wait_status(&self, node: &str, service_id: Option<&str>, after_index: u64) -> (Status, String, u64) {
        let node = if node.is_empty() { self.own_node.clone() } else { node.to_owned() };
        let query = Query::NodeStatus { node: node.clone(), service_id: service_id.map(str::to_owned) };
        // `after_index == 0` answers at once; otherwise park until the node's checks or services change.
        match self.backend.query(Consistency::Stale, after_index, ALIAS_WAIT, &query).await {
            Ok((Answer::Status(Some(worst)), index, _)) => {
                let output = match worst {
                    CheckStatus::Passing => "All checks passing.".to_owned(),
                    other => format!("Aliased checks are {}", other.as_str()),
                };
                (to_health(worst), output, index)
            }
            Ok((Answer::Status(None), index, _)) => {
                let id = service_id.unwrap_or_default();
                (Status::Critical, format!("Service {id} could not be found on node {node}"), index)
            }
            Ok(_) => unreadable("unexpected answer from the server", after_index).await,
            Err(err) => unreadable(&err.to_string(), after_index).await,
        }
    }
}

/// The status of an alias whose target cannot be read, after a pause: a caller that loops on
/// `wait_status` must not spin while the catalog is unreadable.
async fn unreadable(why: &str, after_index: u64) -> (Status, String, u64) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    (Status::Critical, format!("alias target unreadable: {why}"), after_index)
}
