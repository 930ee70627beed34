//! The scheduling function: from the jobs, the nodes, the allocations and the time, what to add, stop and remove.
//!
//! Level-triggered: it compares what is wanted with what exists and proposes only the difference, so running it
//! again on the state its plan produced proposes nothing. Time-based steps (a node's grace, `min_healthy_time`,
//! `healthy_deadline`) are decided against `now_ms`, and `Plan::wake_at_ms` says when the next one falls due.
//!
//! Rules, in order, per job:
//! - an allocation on a node that left the catalog, or whose `serfHealth` has been critical for longer than the job's
//!   grace, is removed (its node stops it when it comes back, since it is no longer allocated there);
//! - an allocation the servers want stopped is removed once its node reports it ended;
//! - an allocation its node reports failed is stopped [`FAILED_REPLACE_DELAY_MS`] after the report, so a
//!   replacement is placed; while its version's rollout is in progress, the failure also fails the version;
//! - a stopped job stops everything;
//! - a running allocation on a node that no longer satisfies the placement (constraints, drivers, listed nodes) or
//!   beyond the wanted number (extras on one node of a `distinct_hosts` job first, then the highest slots) stops;
//! - missing allocations are placed on eligible nodes (alive in gossip with `serfHealth` passing, offering every
//!   driver, satisfying every constraint), fewest allocations of this job first, then by name;
//! - allocations of an older version are replaced `max_parallel` at a time (unhealthy ones first), each step once
//!   the new ones have been
//!   healthy for `min_healthy_time`; a new one not healthy within `healthy_deadline` fails the version, and with
//!   `auto_revert` the job goes back to its last healthy version. The deadline applies only while the version's
//!   rollout is in progress: an allocation of a version that already became healthy (a replacement, or one whose
//!   check flaps) never fails it. A failed version replaces no more old allocations, but still places missing ones.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{Constraint, JobShape, Operator};

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// Its catalog metadata.
    pub meta: BTreeMap<String, String>,
    /// The drivers its agent reported (none: it runs no jobs).
    pub drivers: BTreeSet<String>,
    /// Alive in gossip and `serfHealth` passing.
    pub alive: bool,
    /// Since when (Unix ms, the leader's clock) its `serfHealth` has been critical, if it is.
    pub critical_since_ms: Option<u64>,
}

/// A version's rollout, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    /// Not finished.
    InProgress,
    /// Became healthy everywhere.
    Healthy,
    /// Failed its deadline.
    Failed,
}

/// One kept version of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionView {
    /// Its number.
    pub version: u64,
    /// What the servers read from its spec.
    pub shape: JobShape,
    /// How its rollout went.
    pub rollout: RolloutState,
}

/// A job as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// The version that should run.
    pub version: u64,
    /// Undeployed.
    pub stopped: bool,
    /// Its kept versions.
    pub versions: Vec<VersionView>,
    /// The sequence number its next allocation gets.
    pub next_alloc: u64,
    /// Its current pending reasons.
    pub pending: Vec<String>,
}

/// How long an allocation its node reports failed (a task out of restarts, a start that keeps failing) is left
/// before it is stopped and replaced: long enough for an operator to read why in `job status`, short enough that a
/// replica is not missing for long. A fixed delay, not a backoff: a version whose allocations keep failing is
/// replaced at this pace until a new version or a revert.
pub const FAILED_REPLACE_DELAY_MS: u64 = 5_000;

/// What a node reported of an allocation, reduced to what scheduling needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Not yet reported or starting.
    Pending,
    /// Running.
    Running,
    /// Ended (stopped as asked, or finished).
    Ended,
    /// Failed (a task ended in failure and stays down, or it could not start), reported at this time (Unix ms).
    Failed {
        /// When the node's report said so (the servers' clock at the report's apply).
        since_ms: u64,
    },
}

impl Reported {
    /// Whether nothing of the allocation runs any more on its node.
    fn ended(self) -> bool {
        matches!(self, Reported::Ended | Reported::Failed { .. })
    }
}

/// An allocation as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocView {
    /// Its ID.
    pub id: String,
    /// Its job.
    pub job: String,
    /// Its version.
    pub version: u64,
    /// Its slot.
    pub index: u32,
    /// Its node.
    pub node: String,
    /// Whether the servers want it running.
    pub run: bool,
    /// What its node reported.
    pub reported: Reported,
    /// Whether it is healthy, and since when (Unix ms), as reported.
    pub healthy_since_ms: Option<u64>,
    /// When it was placed (Unix ms).
    pub created_ms: u64,
}

/// What to change for one job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobChange {
    /// The job.
    pub job: String,
    /// New allocations: (sequence number, version, slot, node).
    pub add: Vec<(u64, u64, u32, String)>,
    /// Allocations to stop, with why.
    pub stop: Vec<(String, String)>,
    /// Allocations to remove.
    pub remove: Vec<String>,
    /// A version's new rollout state, and for a failure why.
    pub rollout: Option<(u64, RolloutState, String)>,
    /// Go back to this version.
    pub revert_to: Option<u64>,
    /// New pending reasons, when they differ from the job's.
    pub pending: Option<Vec<String>>,
}

impl JobChange {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.stop.is_empty()
            && self.remove.is_empty()
            && self.rollout.is_none()
            && self.revert_to.is_none()
            && self.pending.is_none()
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// One entry per job with something to change, by name.
    pub changes: Vec<JobChange>,
    /// When a time-based step next falls due (Unix ms), if any may.
    pub wake_at_ms: Option<u64>,
}

/// Computes the plan. Jobs and nodes may come in any order; the result does not depend on it.
pub fn schedule(jobs: &[JobView], nodes: &[NodeView], allocs: &[AllocView], now_ms: u64) -> Plan {
    let nodes: BTreeMap<&str, &NodeView> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut sorted: Vec<&JobView> = jobs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut plan = Plan::default();
    for job in sorted {
        let mut own: Vec<&AllocView> = allocs.iter().filter(|a| a.job == job.name).collect();
        own.sort_by(|a, b| (a.index, &a.id).cmp(&(b.index, &b.id)));
        let mut wake = None;
        let change = schedule_job(job, &nodes, &own, now_ms, &mut wake);
        plan.wake_at_ms = min_some(plan.wake_at_ms, wake);
        if !change.is_empty() {
            plan.changes.push(change);
        }
    }
    plan
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Whether `node` may run `shape`'s allocations, before liveness: listed, drivers, constraints.
fn fits(shape: &JobShape, node: &NodeView) -> bool {
    (shape.placement.nodes.is_empty() || shape.placement.nodes.contains(&node.name))
        && shape.drivers.iter().all(|d| node.drivers.contains(d))
        && shape.placement.constraints.iter().all(|c| satisfies(c, node))
}

/// Whether a node satisfies one constraint.
pub fn satisfies(constraint: &Constraint, node: &NodeView) -> bool {
    let attribute = match constraint.attribute.strip_prefix("node_meta.") {
        Some(key) => node.meta.get(key).map_or("", String::as_str),
        None => node.name.as_str(),
    };
    match constraint.operator {
        Operator::Equal => attribute == constraint.value,
        Operator::NotEqual => attribute != constraint.value,
        Operator::Regexp => regex::Regex::new(&constraint.value).is_ok_and(|re| re.is_match(attribute)),
        Operator::SetContains => {
            let have: BTreeSet<&str> = attribute.split(',').map(str::trim).collect();
            constraint.value.split(',').map(str::trim).all(|item| have.contains(item))
        }
    }
}

fn schedule_job(
    job: &JobView,
    nodes: &BTreeMap<&str, &NodeView>,
    own: &[&AllocView],
    now_ms: u64,
    wake: &mut Option<u64>,
) -> JobChange {
    let mut change = JobChange { job: job.name.clone(), ..JobChange::default() };
    let Some(current) = job.versions.iter().find(|v| v.version == job.version) else { return change };
    let shape = &current.shape;
    let grace = shape.placement.grace().ms();
    // Lost: the node left the catalog, or has been critical past the grace.
    let lost = |alloc: &AllocView, wake: &mut Option<u64>| match nodes.get(alloc.node.as_str()) {
        None => true,
        Some(node) => match node.critical_since_ms {
            Some(since) if now_ms >= since.saturating_add(grace) => true,
            Some(since) => {
                *wake = min_some(*wake, Some(since.saturating_add(grace)));
                false
            }
            None => false,
        },
    };
    let mut live: Vec<&AllocView> = Vec::new();
    for alloc in own {
        if lost(alloc, wake) {
            change.remove.push(alloc.id.clone());
        } else if !alloc.run {
            if alloc.reported.ended() {
                change.remove.push(alloc.id.clone());
            }
        } else if let Reported::Failed { since_ms } = alloc.reported
            && !job.stopped
        {
            let due = since_ms.saturating_add(FAILED_REPLACE_DELAY_MS);
            if now_ms >= due {
                change.stop.push((alloc.id.clone(), "failed; replaced".to_owned()));
            } else {
                *wake = min_some(*wake, Some(due));
                live.push(alloc);
            }
        } else {
            live.push(alloc);
        }
    }
    if job.stopped {
        change.stop.extend(live.iter().map(|a| (a.id.clone(), "job stopped".to_owned())));
        if !job.pending.is_empty() {
            change.pending = Some(Vec::new());
        }
        return change;
    }
    // Running allocations on nodes that no longer fit stop; so do duplicates and extras.
    let mut kept: Vec<&AllocView> = Vec::new();
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    let one_per_node = shape.placement.distinct_hosts || shape.placement.global || !shape.placement.nodes.is_empty();
    for alloc in live {
        let fit = nodes.get(alloc.node.as_str()).is_some_and(|n| fits(shape, n));
        if !fit {
            change.stop.push((alloc.id.clone(), format!("node {} no longer satisfies the placement", alloc.node)));
        } else if one_per_node && per_node.get(alloc.node.as_str()).is_some_and(|n| *n > 0) {
            change.stop.push((alloc.id.clone(), format!("a second allocation on node {}", alloc.node)));
        } else {
            *per_node.entry(alloc.node.as_str()).or_default() += 1;
            kept.push(alloc);
        }
    }
    let eligible: Vec<&NodeView> = nodes.values().copied().filter(|n| n.alive && fits(shape, n)).collect();
    let wanted = if shape.placement.global {
        // Every eligible node, plus nodes that still hold a kept allocation within their grace.
        let mut names: BTreeSet<&str> = eligible.iter().map(|n| n.name.as_str()).collect();
        names.extend(kept.iter().map(|a| a.node.as_str()));
        names.len()
    } else {
        shape.placement.wanted() as usize
    };
    // Extras beyond the wanted number: the highest slots go, old versions first.
    if kept.len() > wanted {
        kept.sort_by_key(|a| (a.version == job.version, std::cmp::Reverse(a.index)));
        for alloc in kept.drain(..kept.len() - wanted) {
            change.stop.push((alloc.id.clone(), "more allocations than the job wants".to_owned()));
            if let Some(n) = per_node.get_mut(alloc.node.as_str()) {
                *n -= 1;
            }
        }
        kept.sort_by_key(|a| a.index);
    }
    // The rolling update: how many old allocations may be replaced now.
    let settled = |a: &AllocView| {
        a.healthy_since_ms.is_some_and(|since| now_ms >= since.saturating_add(shape_min_healthy(shape)))
    };
    let new_allocs: Vec<&&AllocView> = kept.iter().filter(|a| a.version == job.version).collect();
    let rolling = current.rollout == RolloutState::InProgress;
    let mut unsettled = 0usize;
    // An allocation of the rolling version that failed, whether it is still kept or was just stopped above.
    let mut failed: Option<String> = own
        .iter()
        .find(|a| rolling && a.run && a.version == job.version && matches!(a.reported, Reported::Failed { .. }))
        .map(|a| format!("allocation {} failed", a.id));
    for alloc in &new_allocs {
        if settled(alloc) {
            continue;
        }
        unsettled += 1;
        match alloc.healthy_since_ms {
            Some(since) => *wake = min_some(*wake, Some(since.saturating_add(shape_min_healthy(shape)))),
            // Past its rollout, a version is not failed by an allocation's health.
            None if !rolling => {}
            None => {
                let deadline = alloc.created_ms.saturating_add(shape.update.healthy_deadline.ms());
                if now_ms >= deadline {
                    failed.get_or_insert_with(|| {
                        format!("allocation {} not healthy within {}", alloc.id, shape.update.healthy_deadline)
                    });
                } else {
                    *wake = min_some(*wake, Some(deadline));
                }
            }
        }
    }
    let mut version_failed = current.rollout == RolloutState::Failed;
    if let Some(why) = failed {
        change.rollout = Some((job.version, RolloutState::Failed, why));
        version_failed = true;
        if shape.update.auto_revert
            && let Some(good) =
                job.versions.iter().rev().find(|v| v.rollout == RolloutState::Healthy && v.version != job.version)
        {
            // The reverted version places what is missing, at the next run.
            change.revert_to = Some(good.version);
            set_pending(job, &mut change, Vec::new());
            return change;
        }
    }
    let mut old: Vec<&AllocView> = kept.iter().copied().filter(|a| a.version != job.version).collect();
    // The unhealthy first (a failed version's, say, when a revert rolls back): replacing a healthy one while an
    // unhealthy one stays would take the service below `count - max_parallel` passing instances.
    old.sort_by_key(|a| (a.healthy_since_ms.is_some(), a.index));
    // A failed version rolls no further: the old allocations that still run keep running.
    let budget = if version_failed { 0 } else { (shape.update.max_parallel as usize).saturating_sub(unsettled) };
    let replace: Vec<&AllocView> = old.iter().copied().take(budget).collect();
    let mut used_slots: BTreeSet<u32> = kept.iter().map(|a| a.index).collect();
    let mut free_slots: Vec<u32> = Vec::new();
    for alloc in &replace {
        change.stop.push((alloc.id.clone(), format!("replaced by version {}", job.version)));
        if let Some(n) = per_node.get_mut(alloc.node.as_str()) {
            *n -= 1;
        }
        used_slots.remove(&alloc.index);
        free_slots.push(alloc.index);
    }
    let staying = kept.len() - replace.len();
    // Place what is missing: replacements into their slots, then new slots.
    let missing = wanted.saturating_sub(staying);
    let mut seq = job.next_alloc;
    let mut next_slot = 0u32;
    let mut unplaced = 0usize;
    for _ in 0..missing {
        let candidate = eligible
            .iter()
            .filter(|n| !one_per_node || per_node.get(n.name.as_str()).copied().unwrap_or(0) == 0)
            .min_by_key(|n| (per_node.get(n.name.as_str()).copied().unwrap_or(0), n.name.as_str()));
        let Some(node) = candidate else {
            unplaced += 1;
            continue;
        };
        let slot = match free_slots.pop() {
            Some(slot) => slot,
            None => {
                while used_slots.contains(&next_slot) {
                    next_slot += 1;
                }
                next_slot
            }
        };
        used_slots.insert(slot);
        *per_node.entry(node.name.as_str()).or_default() += 1;
        change.add.push((seq, job.version, slot, node.name.clone()));
        seq += 1;
    }
    let reasons = if unplaced > 0 { pending_reasons(shape, nodes, unplaced, missing) } else { Vec::new() };
    set_pending(job, &mut change, reasons);
    // Healthy: nothing old left, nothing missing, every new one settled.
    if rolling
        && !version_failed
        && old.is_empty()
        && unplaced == 0
        && change.add.is_empty()
        && unsettled == 0
        && !new_allocs.is_empty()
    {
        change.rollout = Some((job.version, RolloutState::Healthy, String::new()));
    }
    change
}

fn shape_min_healthy(shape: &JobShape) -> u64 {
    shape.update.min_healthy_time.ms()
}

fn set_pending(job: &JobView, change: &mut JobChange, reasons: Vec<String>) {
    if reasons != job.pending {
        change.pending = Some(reasons);
    }
}

/// Why allocations could not be placed: how many nodes pass each filter.
fn pending_reasons(
    shape: &JobShape,
    nodes: &BTreeMap<&str, &NodeView>,
    unplaced: usize,
    missing: usize,
) -> Vec<String> {
    let total = nodes.len();
    let count = |pred: &dyn Fn(&NodeView) -> bool| nodes.values().filter(|n| pred(n)).count();
    let mut reasons = vec![format!("{unplaced} of {missing} allocations not placed")];
    if !shape.placement.nodes.is_empty() {
        let listed = count(&|n| shape.placement.nodes.contains(&n.name));
        reasons.push(format!("nodes listed: {listed} of {total} nodes"));
    }
    reasons.push(format!("alive: {} of {total} nodes", count(&|n| n.alive)));
    for driver in &shape.drivers {
        reasons.push(format!("driver {driver}: {} of {total} nodes", count(&|n| n.drivers.contains(driver))));
    }
    for c in &shape.placement.constraints {
        reasons.push(format!(
            "{} {} {}: {} of {total} nodes",
            c.attribute,
            c.operator,
            c.value,
            count(&|n| satisfies(c, n))
        ));
    }
    if shape.placement.distinct_hosts {
        let fit = count(&|n| n.alive && fits(shape, n));
        reasons.push(format!("distinct_hosts: {fit} eligible nodes for {} allocations", shape.placement.wanted()));
    }
    reasons
}

#[cfg(test)]
mod tests;
