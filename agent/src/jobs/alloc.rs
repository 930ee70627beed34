//! The allocation runner: this node's side of cluster jobs. It tells the servers which drivers this agent can use
//! (`Command::HostReport`), watches the allocations the servers place on this node with a blocking query
//! (`Query::NodeAllocations`, the agent's own read: in process on a server, with the agent token from a client),
//! runs each one desired to run through the [`JobManager`] (the same drivers and service registration as
//! `/v1/agent/job`, so a replica's services register on the node that runs it), and stops every local allocation
//! the servers want stopped or no longer list here (removed, or moved elsewhere while this node was cut off).
//! Level-triggered: every answer is reconciled whole, whatever changed.
//!
//! Each allocation's local job is named after the allocation (`<job>-<seq>`), so two allocations of one job can run
//! on one node (a job without `distinct_hosts`, or the old and new version during a rolling update).
//!
//! What runs is reported back (`Command::AllocReport`): per allocation its status, its tasks' states and
//! restarts, whether all its services' checks pass, and why not; only a report that differs from what the servers
//! hold and from what was last sent is written, when the manager's or the local checks' state moves, not on a
//! timer. A report that could not be written is retried with a backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use roster_kv::{
    AllocStatusReport, Answer, ClientStatus, Command, CommandResult, Desired, MAX_ALLOC_MESSAGE_LEN, MAX_ALLOC_REPORTS,
    MAX_REPORTED_TASKS, NodeAllocation, Query,
};
use roster_runtime_shim::JobSpec;
use roster_server::Consistency;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{AllocRef, JobManager, JobSummary};
use crate::backend::Backend;
use crate::local::Local;

/// How long one blocking query on this node's allocations waits.
const WAIT: Duration = Duration::from_secs(300);
/// The first and the longest pause before retrying a read or a write that failed.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the drivers are probed again; a changed set is reported at once.
const HOST_PROBE: Duration = Duration::from_secs(300);
/// An unchanged host report is sent again this often, in case the servers lost it (a restored snapshot).
const HOST_RESEND: Duration = Duration::from_secs(600);

/// Runs the allocation runner until `shutdown`.
pub async fn run(manager: JobManager, backend: Backend, local: Arc<Local>, node: String, shutdown: CancellationToken) {
    let (allocations_tx, mut allocations_rx) = watch::channel(None::<Vec<NodeAllocation>>);
    tokio::spawn(watch_allocations(backend.clone(), node.clone(), allocations_tx, shutdown.clone()));
    tokio::spawn(report_host(manager.clone(), backend.clone(), node.clone(), shutdown.clone()));
    let mut manager_changes = manager.changes();
    let mut local_changes = local.changes();
    let mut runner =
        Runner { manager, backend, node, allocations: Vec::new(), failed: BTreeMap::new(), sent: BTreeMap::new() };
    let mut retry = RETRY_MIN;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let retry_sleep = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = allocations_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let Some(list) = allocations_rx.borrow_and_update().clone() else { continue };
                runner.allocations = list;
                runner.reconcile().await;
            }
            changed = manager_changes.changed() => if changed.is_err() { return },
            changed = local_changes.changed() => if changed.is_err() { return },
            () = retry_sleep => runner.reconcile().await,
            () = shutdown.cancelled() => return,
        }
        let reported = runner.report().await;
        if reported && runner.failed.is_empty() {
            retry = RETRY_MIN;
            retry_at = None;
        } else if retry_at.is_none_or(|at| at <= tokio::time::Instant::now()) {
            retry_at = Some(tokio::time::Instant::now() + retry);
            retry = (retry * 2).min(RETRY_MAX);
        }
    }
}

struct Runner {
    manager: JobManager,
    backend: Backend,
    node: String,
    /// The servers' last answer.
    allocations: Vec<NodeAllocation>,
    /// Allocations whose start failed, with why (retried with a backoff, reported failed meanwhile).
    failed: BTreeMap<String, String>,
    /// The last report written for each allocation.
    sent: BTreeMap<String, AllocStatusReport>,
}

impl Runner {
    /// Makes the local allocations exactly those the servers want run here: stops the rest first (so a port an
    /// old version holds is free), then runs each wanted one (a no-op for one that runs its version already).
    async fn reconcile(&mut self) {
        let wanted: BTreeMap<&str, &NodeAllocation> = self
            .allocations
            .iter()
            .filter(|alloc| alloc.allocation.desired == Desired::Run && alloc.allocation.node == self.node)
            .map(|alloc| (alloc.allocation.id.as_str(), alloc))
            .collect();
        for running in self.manager.allocations().await {
            if wanted.contains_key(running.id.as_str()) {
                continue;
            }
            tracing::info!(allocation = %running.id, job = %running.job, "stopping an allocation no longer wanted here");
            if let Err(error) = self.manager.stop_allocation(&running.id).await {
                tracing::warn!(allocation = %running.id, %error, "stopping an allocation failed");
            }
        }
        self.failed.retain(|id, _| wanted.contains_key(id.as_str()));
        for (id, wanted) in wanted {
            let allocation = &wanted.allocation;
            let reference = AllocRef { id: id.to_owned(), job: allocation.job.clone(), version: allocation.version };
            let started = match local_spec(id, &wanted.spec) {
                Ok(spec) => self.manager.run_allocation(reference, spec).await,
                Err(why) => Err(super::JobError::Invalid(why)),
            };
            match started {
                Ok(()) => {
                    self.failed.remove(id);
                }
                Err(error) => {
                    tracing::warn!(allocation = %id, %error, "an allocation could not start");
                    self.failed.insert(id.to_owned(), error.to_string());
                }
            }
        }
    }

    /// Writes the reports that changed; `false` when a write failed (to be retried).
    async fn report(&mut self) -> bool {
        let mut reports = Vec::new();
        for listed in self.allocations.iter().filter(|alloc| alloc.allocation.node == self.node) {
            let allocation = &listed.allocation;
            let report = match self.failed.get(&allocation.id) {
                Some(why) => AllocStatusReport {
                    id: allocation.id.clone(),
                    status: ClientStatus::Failed,
                    tasks: Vec::new(),
                    healthy: Some(false),
                    message: why.clone(),
                },
                None => to_report(&allocation.id, allocation.desired, self.manager.summary(&allocation.id).await),
            };
            let report = bounded(report);
            let held = (allocation.status, &allocation.tasks, allocation.healthy, &allocation.message);
            if held == (report.status, &report.tasks, report.healthy, &report.message)
                || self.sent.get(&report.id) == Some(&report)
            {
                continue;
            }
            reports.push(report);
        }
        for chunk in reports.chunks(MAX_ALLOC_REPORTS) {
            let cmd = Command::AllocReport {
                node: self.node.clone(),
                reports: chunk.to_vec(),
                now_ms: crate::clock::unix_ms(),
            };
            match self.backend.write(cmd).await {
                Ok(CommandResult::Rejected(why)) => tracing::warn!(%why, "allocation report refused"),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "allocation report not sent; retrying");
                    return false;
                }
            }
            for report in chunk {
                self.sent.insert(report.id.clone(), report.clone());
            }
        }
        let listed: Vec<&str> = self.allocations.iter().map(|alloc| alloc.allocation.id.as_str()).collect();
        self.sent.retain(|id, _| listed.contains(&id.as_str()));
        true
    }
}

/// The allocation's job spec as this node runs it: named after the allocation, without the servers' sections.
fn local_spec(id: &str, spec: &str) -> Result<JobSpec, String> {
    let mut spec = JobSpec::from_json(spec).map_err(|error| format!("the allocation's spec is invalid: {error}"))?;
    spec.name = id.to_owned();
    spec.placement = None;
    spec.update = None;
    Ok(spec)
}

/// An allocation's report from its local job's summary (`None`: no local job).
fn to_report(id: &str, desired: Desired, summary: Option<JobSummary>) -> AllocStatusReport {
    let Some(summary) = summary else {
        let status = if desired == Desired::Stop { ClientStatus::Complete } else { ClientStatus::Pending };
        return AllocStatusReport {
            id: id.to_owned(),
            status,
            tasks: Vec::new(),
            healthy: None,
            message: String::new(),
        };
    };
    let dead = |task: &&roster_kv::TaskState| task.state == "dead";
    let status = if summary.tasks.iter().any(|task| task.failed) {
        ClientStatus::Failed
    } else if summary.tasks.iter().all(|task| dead(&task)) {
        ClientStatus::Complete
    } else if summary.tasks.iter().all(|task| task.state == "running" || dead(&task)) {
        ClientStatus::Running
    } else {
        ClientStatus::Pending
    };
    AllocStatusReport {
        id: id.to_owned(),
        status,
        tasks: summary.tasks,
        healthy: summary.healthy,
        message: summary.message,
    }
}

/// A report within the servers' limits: at most `MAX_REPORTED_TASKS` tasks, a message cut at a character boundary.
fn bounded(mut report: AllocStatusReport) -> AllocStatusReport {
    report.tasks.truncate(MAX_REPORTED_TASKS);
    if report.message.len() > MAX_ALLOC_MESSAGE_LEN {
        let mut cut = MAX_ALLOC_MESSAGE_LEN;
        while !report.message.is_char_boundary(cut) {
            cut -= 1;
        }
        report.message.truncate(cut);
    }
    report
}

/// Follows this node's allocations with blocking queries, handing each new answer on.
async fn watch_allocations(
    backend: Backend,
    node: String,
    sender: watch::Sender<Option<Vec<NodeAllocation>>>,
    shutdown: CancellationToken,
) {
    let query = Query::NodeAllocations { node };
    let (mut index, mut retry) = (0, RETRY_MIN);
    loop {
        let answer = tokio::select! {
            answer = backend.query(Consistency::Default, index, WAIT, &query) => answer,
            () = shutdown.cancelled() => return,
        };
        match answer {
            Ok((Answer::NodeAllocations(list), at, _)) => {
                // An index that went back (a restored snapshot) starts the watch over, as Consul's clients do.
                index = if at < index { 0 } else { at };
                retry = RETRY_MIN;
                sender.send_if_modified(|held| {
                    let changed = held.as_ref() != Some(&list);
                    *held = Some(list);
                    changed
                });
                if sender.is_closed() {
                    return;
                }
                continue;
            }
            Ok((other, ..)) => tracing::error!(?other, "unexpected answer to this node's allocations"),
            Err(error) => tracing::debug!(%error, "reading this node's allocations failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = shutdown.cancelled() => return,
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Reports the drivers this agent can use: at start, whenever the set changes, and again now and then.
async fn report_host(manager: JobManager, backend: Backend, node: String, shutdown: CancellationToken) {
    let mut sent: Option<(Vec<String>, tokio::time::Instant)> = None;
    let mut retry = RETRY_MIN;
    loop {
        let drivers = manager.drivers().await;
        let due = sent.as_ref().is_none_or(|(held, at)| *held != drivers || at.elapsed() >= HOST_RESEND);
        let mut pause = HOST_PROBE;
        if due {
            let cmd =
                Command::HostReport { node: node.clone(), drivers: drivers.clone(), now_ms: crate::clock::unix_ms() };
            match backend.write(cmd).await {
                Ok(CommandResult::Rejected(why)) => tracing::warn!(%why, "host report refused"),
                Ok(_) => {
                    tracing::info!(?drivers, "reported this node's drivers to the servers");
                    sent = Some((drivers, tokio::time::Instant::now()));
                    retry = RETRY_MIN;
                }
                Err(error) => {
                    tracing::debug!(%error, "host report not sent; retrying");
                    pause = retry;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests;
