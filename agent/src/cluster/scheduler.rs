//! The leader's scheduling duty (issue 18): whenever jobs, allocations, hosts, nodes or checks change, and whenever a
//! time-based step falls due, run `roster_scheduler::schedule` on the state and write the difference as one
//! `Command::JobPlanApply`.
//!
//! Level-triggered like the other leader duties: a plan refused as stale (another write moved a job's indexes first)
//! or lost with a leader change is simply recomputed from the next state. How long a node's `serfHealth` has been
//! critical is the one thing the state does not hold; the leader counts it from when it first saw it critical, so a
//! new leader starts the count over, which only ever delays a move, never makes one early.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roster_kv::{
    Allocation, CheckStatus, ClientStatus, Command, CommandResult, Desired, Job, JobPlan, Placed, Query, Rollout,
    SchedulingState,
};
use roster_scheduler::{AllocView, JobView, NodeView, Reported, RolloutState, VersionView};
use roster_server::{Consistency, Server};
use tokio_util::sync::CancellationToken;

use crate::gossip::{Gossip, MemberStatus};

/// The longest the duty sleeps without a change: it also re-checks gossip liveness this often.
const RECHECK: Duration = Duration::from_secs(5);
const MIN_WAIT: Duration = Duration::from_millis(100);

/// Runs the duty in the background until `token` is cancelled.
pub(super) fn spawn(server: Server, gossip: Gossip, token: CancellationToken) {
    tokio::spawn(async move {
        let mut critical_since: BTreeMap<String, u64> = BTreeMap::new();
        let mut last_index = 0;
        let mut wait = RECHECK;
        loop {
            if !server.is_leader() {
                critical_since.clear();
                last_index = 0;
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(RECHECK) => continue,
                }
            }
            let answer = tokio::select! {
                () = token.cancelled() => return,
                answer = server.query(Consistency::Default, last_index, wait, &Query::Scheduling) => answer,
            };
            let (state, index) = match answer {
                Ok((roster_kv::Answer::Scheduling(state), index, _)) => (*state, index),
                Ok(_) => continue,
                Err(why) => {
                    tracing::debug!("scheduler: reading the state: {why}");
                    tokio::time::sleep(RECHECK).await;
                    continue;
                }
            };
            last_index = index;
            let now_ms = now_ms();
            let alive: BTreeSet<String> = gossip
                .members()
                .into_iter()
                .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
                .map(|m| m.name)
                .collect();
            let (plans, wake_at_ms) = plan(&state, &alive, &mut critical_since, now_ms);
            // At least a moment, so a step due now cannot spin the loop.
            wait = wake_at_ms
                .map_or(RECHECK, |at| Duration::from_millis(at.saturating_sub(now_ms)).clamp(MIN_WAIT, RECHECK));
            if plans.is_empty() {
                continue;
            }
            match server.write(Command::JobPlanApply { plans, now_ms }).await {
                Ok(CommandResult::Bool(_)) => {}
                Ok(CommandResult::Rejected(why)) => tracing::debug!("scheduler: plan refused, recomputing: {why}"),
                Err(why) => tracing::debug!("scheduler: writing the plan: {why}"),
            }
        }
    });
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The plans for `state` at `now_ms`, and when to look again; `critical_since` carries what the leader has seen.
fn plan(
    state: &SchedulingState,
    alive: &BTreeSet<String>,
    critical_since: &mut BTreeMap<String, u64>,
    now_ms: u64,
) -> (Vec<JobPlan>, Option<u64>) {
    let drivers: BTreeMap<&str, BTreeSet<String>> =
        state.hosts.iter().map(|h| (h.node.as_str(), h.drivers.iter().cloned().collect())).collect();
    let mut nodes = Vec::new();
    for (node, serf) in &state.nodes {
        let critical = *serf == Some(CheckStatus::Critical);
        if critical {
            critical_since.entry(node.node.clone()).or_insert(now_ms);
        } else {
            critical_since.remove(&node.node);
        }
        nodes.push(NodeView {
            name: node.node.clone(),
            meta: node.meta.clone(),
            drivers: drivers.get(node.node.as_str()).cloned().unwrap_or_default(),
            alive: *serf == Some(CheckStatus::Passing) && alive.contains(&node.node),
            critical_since_ms: critical_since.get(&node.node).copied(),
        });
    }
    critical_since.retain(|name, _| state.nodes.iter().any(|(n, _)| &n.node == name));
    let jobs: Vec<JobView> = state.jobs.iter().map(job_view).collect();
    let allocs: Vec<AllocView> = state.allocations.iter().map(alloc_view).collect();
    let decided = roster_scheduler::schedule(&jobs, &nodes, &allocs, now_ms);
    let by_name: BTreeMap<&str, &Job> = state.jobs.iter().map(|j| (j.name.as_str(), j)).collect();
    let plans = decided
        .changes
        .into_iter()
        .filter_map(|change| {
            let job = by_name.get(change.job.as_str())?;
            Some(JobPlan {
                job: change.job,
                expect_modify_index: job.modify_index,
                expect_plan_index: job.plan_index,
                add: (change.add.into_iter())
                    .map(|(seq, version, index, node)| Placed { seq, version, index, node })
                    .collect(),
                stop: change.stop,
                remove: change.remove,
                rollout: change.rollout.map(|(version, state, why)| (version, rollout(state, why))),
                revert_to: change.revert_to,
                pending: change.pending,
            })
        })
        .collect();
    (plans, decided.wake_at_ms)
}

fn job_view(job: &Job) -> JobView {
    JobView {
        name: job.name.clone(),
        version: job.version,
        stopped: job.stopped,
        versions: (job.versions.iter())
            .map(|v| VersionView {
                version: v.version,
                shape: v.shape.clone(),
                rollout: match v.rollout {
                    Rollout::InProgress => RolloutState::InProgress,
                    Rollout::Healthy => RolloutState::Healthy,
                    Rollout::Failed(_) => RolloutState::Failed,
                },
            })
            .collect(),
        next_alloc: job.next_alloc,
        pending: job.pending.clone(),
    }
}

fn alloc_view(alloc: &Allocation) -> AllocView {
    AllocView {
        id: alloc.id.clone(),
        job: alloc.job.clone(),
        version: alloc.version,
        index: alloc.index,
        node: alloc.node.clone(),
        run: alloc.desired == Desired::Run,
        reported: match alloc.status {
            ClientStatus::Pending => Reported::Pending,
            ClientStatus::Running => Reported::Running,
            ClientStatus::Complete => Reported::Ended,
            ClientStatus::Failed => Reported::Failed { since_ms: alloc.reported_ms },
        },
        healthy_since_ms: (alloc.healthy == Some(true) && alloc.healthy_since_ms > 0).then_some(alloc.healthy_since_ms),
        created_ms: alloc.created_ms,
    }
}

fn rollout(state: RolloutState, why: String) -> Rollout {
    match state {
        RolloutState::InProgress => Rollout::InProgress,
        RolloutState::Healthy => Rollout::Healthy,
        RolloutState::Failed => Rollout::Failed(why),
    }
}

#[cfg(test)]
mod tests;
