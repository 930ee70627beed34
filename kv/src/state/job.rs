//! Applying the cluster-job commands (`JobSubmit`, `JobStop`, `JobRevert`, `JobPlanApply`, `AllocReport`,
//! `HostReport`) and reading the three tables. Every command is checked whole before anything changes.

use std::collections::{BTreeMap, BTreeSet};

use super::State;
use super::acl::touch;
use crate::command::CommandResult;
use crate::job::{
    ALLOC_META, AllocStatusReport, Allocation, ClientStatus, Desired, Host, Job, JobDetail, JobPlan, JobShape,
    JobVersion, MAX_ALLOC_MESSAGE_LEN, MAX_ALLOC_REPORTS, MAX_HOST_DRIVERS, MAX_JOB_SPEC_LEN, MAX_JOB_VERSIONS,
    MAX_REPORTED_TASKS, NodeAllocation, Rollout, SchedulingState,
};
use crate::watch::{Changes, Table};

/// The check whose status says whether gossip sees a node alive.
const SERF_HEALTH: &str = "serfHealth";

impl State {
    /// Every job, by name.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// One job with its allocations.
    pub fn job_detail(&self, name: &str) -> Option<JobDetail> {
        let job = self.jobs.get(name)?.clone();
        let allocations = self.job_allocations(name).cloned().collect();
        Some(JobDetail { job, allocations })
    }

    /// A job's allocations, by sequence number.
    pub fn job_allocations<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Allocation> + 'a {
        self.allocations.range((name.to_owned(), 0)..=(name.to_owned(), u64::MAX)).map(|(_, a)| a)
    }

    /// The allocations on `node` with their versions' specs, and the index of the last change to them.
    pub fn node_allocations(&self, node: &str) -> (Vec<NodeAllocation>, u64) {
        let allocations = self
            .allocations
            .values()
            .filter(|a| a.node == node)
            .filter_map(|a| {
                let spec = self.jobs.get(&a.job)?.version(a.version)?.spec.clone();
                Some(NodeAllocation { allocation: a.clone(), spec })
            })
            .collect();
        (allocations, self.node_alloc_index.get(node).copied().unwrap_or(0).max(1))
    }

    /// Every host report, by node.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// Everything the scheduler reads.
    pub fn scheduling_state(&self) -> SchedulingState {
        let nodes = self
            .nodes
            .values()
            .map(|node| {
                let serf = self.checks.get(&(node.node.clone(), SERF_HEALTH.to_owned())).map(|c| c.status);
                (node.clone(), serf)
            })
            .collect();
        SchedulingState {
            jobs: self.jobs.values().cloned().collect(),
            allocations: self.allocations.values().cloned().collect(),
            hosts: self.hosts.values().cloned().collect(),
            nodes,
        }
    }

    pub(super) fn job_submit(&mut self, index: u64, spec: &str, now_ms: u64, changes: &mut Changes) -> CommandResult {
        let shape = match self.check_spec(spec) {
            Ok(shape) => shape,
            Err(why) => return CommandResult::Rejected(why),
        };
        let name = shape.name.clone();
        let version = |number: u64| JobVersion {
            version: number,
            spec: spec.to_owned(),
            shape: shape.clone(),
            submitted_ms: now_ms,
            submit_index: index,
            reverted_from: None,
            rollout: Rollout::InProgress,
        };
        match self.jobs.get(&name) {
            Some(job) if !job.stopped && job.current().is_some_and(|v| v.spec == spec) => {
                return CommandResult::Bool(true);
            }
            Some(_) => {
                let job = self.jobs.get_mut(&name).expect("checked above");
                let number = job.versions.last().map_or(0, |v| v.version) + 1;
                job.versions.push(version(number));
                job.version = number;
                job.stopped = false;
                job.modify_index = index;
            }
            None => {
                let job = Job {
                    name: name.clone(),
                    version: 1,
                    stopped: false,
                    versions: vec![version(1)],
                    pending: Vec::new(),
                    next_alloc: 0,
                    create_index: index,
                    modify_index: index,
                    plan_index: index,
                };
                self.jobs.insert(name.clone(), job);
            }
        }
        self.prune_versions(&name);
        touch(self, index, Table::Jobs, changes);
        CommandResult::Bool(true)
    }

    /// The shape of a submitted spec, or why the state refuses it.
    fn check_spec(&self, spec: &str) -> Result<JobShape, String> {
        if spec.len() > MAX_JOB_SPEC_LEN {
            return Err(format!("job spec is too large ({} bytes, at most {MAX_JOB_SPEC_LEN})", spec.len()));
        }
        let value: serde_json::Value =
            serde_json::from_str(spec).map_err(|err| format!("job spec is not JSON: {err}"))?;
        let shape = JobShape::from_spec(&value).map_err(|problems| roster_scheduler::describe(&problems))?;
        if let Some(why) = label_problem(&shape.name) {
            return Err(format!("name: {why}"));
        }
        let unknown: Vec<String> = (shape.placement.nodes.iter().enumerate())
            .filter(|(_, node)| !self.nodes.contains_key(*node))
            .map(|(idx, node)| format!("placement.nodes[{idx}]: no node named {node:?} in the catalog"))
            .collect();
        if !unknown.is_empty() {
            return Err(unknown.join("; "));
        }
        Ok(shape)
    }

    /// Drops the oldest versions beyond `MAX_JOB_VERSIONS`, except the running one and any an allocation still uses.
    fn prune_versions(&mut self, name: &str) {
        let used: BTreeSet<u64> = self.job_allocations(name).map(|a| a.version).collect();
        let Some(job) = self.jobs.get_mut(name) else { return };
        let mut excess = job.versions.len().saturating_sub(MAX_JOB_VERSIONS);
        let current = job.version;
        job.versions.retain(|v| {
            let drop = excess > 0 && v.version != current && !used.contains(&v.version);
            if drop {
                excess -= 1;
            }
            !drop
        });
    }

    pub(super) fn job_stop(&mut self, index: u64, name: &str, purge: bool, changes: &mut Changes) -> CommandResult {
        let Some(stopped) = self.jobs.get(name).map(|job| job.stopped) else { return CommandResult::Bool(false) };
        if purge {
            self.jobs.remove(name);
            let ids: Vec<(String, u64)> = self.job_allocations(name).map(|a| (a.job.clone(), a.seq)).collect();
            for key in ids {
                self.remove_allocation(index, &key, changes);
            }
            touch(self, index, Table::Allocations, changes);
        } else if stopped {
            return CommandResult::Bool(true);
        } else if let Some(job) = self.jobs.get_mut(name) {
            job.stopped = true;
            job.modify_index = index;
        }
        touch(self, index, Table::Jobs, changes);
        CommandResult::Bool(true)
    }

    pub(super) fn job_revert(
        &mut self,
        index: u64,
        name: &str,
        version: u64,
        now_ms: u64,
        changes: &mut Changes,
    ) -> CommandResult {
        let Some(job) = self.jobs.get_mut(name) else {
            return CommandResult::Rejected(format!("no job named {name:?}"));
        };
        if let Err(why) = revert(job, index, version, now_ms) {
            return CommandResult::Rejected(why);
        }
        self.prune_versions(name);
        touch(self, index, Table::Jobs, changes);
        CommandResult::Bool(true)
    }

    pub(super) fn job_plan_apply(
        &mut self,
        index: u64,
        plans: &[JobPlan],
        now_ms: u64,
        changes: &mut Changes,
    ) -> CommandResult {
        let mut seen = BTreeSet::new();
        for plan in plans {
            if !seen.insert(plan.job.as_str()) {
                return CommandResult::Rejected(format!("plan names job {:?} twice", plan.job));
            }
            if let Err(why) = self.check_plan(plan) {
                return CommandResult::Rejected(why);
            }
        }
        for plan in plans {
            self.apply_plan(index, plan, now_ms, changes);
        }
        CommandResult::Bool(true)
    }

    /// Why `plan` does not fit the state, if it does not.
    fn check_plan(&self, plan: &JobPlan) -> Result<(), String> {
        let name = &plan.job;
        let job = self.jobs.get(name).ok_or_else(|| format!("plan for unknown job {name:?}"))?;
        if job.modify_index != plan.expect_modify_index || job.plan_index != plan.expect_plan_index {
            return Err(format!("stale plan for job {name:?}"));
        }
        let mut seqs = BTreeSet::new();
        for placed in &plan.add {
            if placed.seq < job.next_alloc || !seqs.insert(placed.seq) {
                return Err(format!("plan for {name:?} reuses allocation sequence {}", placed.seq));
            }
            if job.version(placed.version).is_none() {
                return Err(format!("plan for {name:?} places unknown version {}", placed.version));
            }
            if !self.nodes.contains_key(&placed.node) {
                return Err(format!("plan for {name:?} places on unknown node {:?}", placed.node));
            }
        }
        let alloc = |id: &str| self.job_allocations(name).find(|a| a.id == id);
        for (id, reason) in &plan.stop {
            match alloc(id) {
                Some(a) if a.desired == Desired::Run => {}
                _ => return Err(format!("plan for {name:?} stops {id:?}, which is not running-desired")),
            }
            if reason.len() > MAX_ALLOC_MESSAGE_LEN {
                return Err(format!("plan for {name:?}: stop reason too long"));
            }
        }
        for id in &plan.remove {
            if alloc(id).is_none() {
                return Err(format!("plan for {name:?} removes unknown allocation {id:?}"));
            }
        }
        let versions = plan.rollout.iter().map(|(v, _)| *v).chain(plan.revert_to);
        for version in versions {
            if job.version(version).is_none() {
                return Err(format!("plan for {name:?} names unknown version {version}"));
            }
        }
        if plan.pending.iter().flatten().any(|reason| reason.len() > MAX_ALLOC_MESSAGE_LEN) {
            return Err(format!("plan for {name:?}: pending reason too long"));
        }
        Ok(())
    }

    /// Applies a plan `check_plan` accepted.
    fn apply_plan(&mut self, index: u64, plan: &JobPlan, now_ms: u64, changes: &mut Changes) {
        let name = plan.job.clone();
        let mut allocs_changed = false;
        for placed in &plan.add {
            let alloc = Allocation {
                id: Allocation::id_of(&name, placed.seq),
                job: name.clone(),
                seq: placed.seq,
                version: placed.version,
                index: placed.index,
                node: placed.node.clone(),
                desired: Desired::Run,
                desired_reason: String::new(),
                status: ClientStatus::Pending,
                tasks: Vec::new(),
                healthy: None,
                healthy_since_ms: 0,
                message: String::new(),
                created_ms: now_ms,
                reported_ms: 0,
                create_index: index,
                modify_index: index,
            };
            self.touch_alloc_node(index, &placed.node, changes);
            self.allocations.insert((name.clone(), placed.seq), alloc);
            allocs_changed = true;
        }
        let seq_of = |state: &State, id: &str| state.job_allocations(&name).find(|a| a.id == id).map(|a| a.seq);
        for (id, reason) in &plan.stop {
            let Some(seq) = seq_of(self, id) else { continue };
            let Some(alloc) = self.allocations.get_mut(&(name.clone(), seq)) else { continue };
            alloc.desired = Desired::Stop;
            alloc.desired_reason = reason.clone();
            alloc.modify_index = index;
            let node = alloc.node.clone();
            self.touch_alloc_node(index, &node, changes);
            allocs_changed = true;
        }
        for id in &plan.remove {
            let Some(seq) = seq_of(self, id) else { continue };
            allocs_changed |= self.remove_allocation(index, &(name.clone(), seq), changes);
        }
        let Some(job) = self.jobs.get_mut(&name) else { return };
        if let Some(max) = plan.add.iter().map(|p| p.seq).max() {
            job.next_alloc = job.next_alloc.max(max + 1);
        }
        if let Some((version, rollout)) = &plan.rollout
            && let Some(record) = job.versions.iter_mut().find(|v| v.version == *version)
        {
            record.rollout = rollout.clone();
        }
        if let Some(pending) = &plan.pending {
            job.pending = pending.clone();
        }
        if let Some(version) = plan.revert_to {
            // Checked by `check_plan`: the version is kept.
            let _ = revert(job, index, version, now_ms);
        }
        job.plan_index = index;
        touch(self, index, Table::Jobs, changes);
        if allocs_changed {
            touch(self, index, Table::Allocations, changes);
        }
        if plan.revert_to.is_some() {
            self.prune_versions(&name);
        }
    }

    pub(super) fn alloc_report(
        &mut self,
        index: u64,
        node: &str,
        reports: &[AllocStatusReport],
        now_ms: u64,
        changes: &mut Changes,
    ) -> CommandResult {
        if reports.len() > MAX_ALLOC_REPORTS {
            return CommandResult::Rejected(format!(
                "too many allocation reports ({}, at most {MAX_ALLOC_REPORTS})",
                reports.len()
            ));
        }
        for report in reports {
            if report.tasks.len() > MAX_REPORTED_TASKS || report.message.len() > MAX_ALLOC_MESSAGE_LEN {
                return CommandResult::Rejected(format!("allocation report for {:?} is too large", report.id));
            }
        }
        let by_id: BTreeMap<&str, (String, u64)> =
            self.allocations.iter().filter(|(_, a)| a.node == node).map(|(k, a)| (a.id.as_str(), k.clone())).collect();
        let mut keys = Vec::new();
        for report in reports {
            if let Some(key) = by_id.get(report.id.as_str()) {
                keys.push((key.clone(), report));
            }
        }
        let mut changed = false;
        for (key, report) in keys {
            let Some(alloc) = self.allocations.get_mut(&key) else { continue };
            if alloc.status == report.status
                && alloc.tasks == report.tasks
                && alloc.healthy == report.healthy
                && alloc.message == report.message
            {
                continue;
            }
            if report.healthy != Some(true) {
                alloc.healthy_since_ms = 0;
            } else if alloc.healthy != Some(true) || alloc.healthy_since_ms == 0 {
                alloc.healthy_since_ms = now_ms.max(1);
            }
            alloc.status = report.status;
            alloc.tasks = report.tasks.clone();
            alloc.healthy = report.healthy;
            alloc.message = report.message.clone();
            alloc.reported_ms = now_ms;
            alloc.modify_index = index;
            changed = true;
        }
        if changed {
            self.touch_alloc_node(index, node, changes);
            touch(self, index, Table::Allocations, changes);
        }
        CommandResult::Bool(true)
    }

    pub(super) fn host_report(
        &mut self,
        index: u64,
        node: &str,
        drivers: &[String],
        now_ms: u64,
        changes: &mut Changes,
    ) -> CommandResult {
        if node.is_empty() || drivers.len() > MAX_HOST_DRIVERS || drivers.iter().any(|d| d.is_empty() || d.len() > 64) {
            return CommandResult::Rejected(format!(
                "host report for {node:?}: a node and at most {MAX_HOST_DRIVERS} driver names"
            ));
        }
        let drivers: Vec<String> = drivers.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        match self.hosts.get_mut(node) {
            Some(host) if host.drivers == drivers => return CommandResult::Bool(true),
            _ if drivers.is_empty() => {
                if self.hosts.remove(node).is_none() {
                    return CommandResult::Bool(true);
                }
            }
            Some(host) => {
                host.drivers = drivers;
                host.reported_ms = now_ms;
                host.modify_index = index;
            }
            None => {
                let host = Host {
                    node: node.to_owned(),
                    drivers,
                    reported_ms: now_ms,
                    create_index: index,
                    modify_index: index,
                };
                self.hosts.insert(node.to_owned(), host);
            }
        }
        touch(self, index, Table::Hosts, changes);
        CommandResult::Bool(true)
    }

    /// Removes an allocation and the catalog services it registered on its node (tagged [`ALLOC_META`]): a node
    /// that is down, or cut off, cannot deregister them itself, and once the allocation is gone nothing would.
    /// Returns whether there was such an allocation.
    fn remove_allocation(&mut self, index: u64, key: &(String, u64), changes: &mut Changes) -> bool {
        let Some(alloc) = self.allocations.remove(key) else { return false };
        let services: Vec<String> = (self.services.iter())
            .filter(|((node, _), service)| {
                *node == alloc.node && service.meta.get(ALLOC_META).is_some_and(|id| *id == alloc.id)
            })
            .map(|((_, id), _)| id.clone())
            .collect();
        for id in services {
            self.deregister(index, &alloc.node, Some(&id), None, changes);
        }
        self.touch_alloc_node(index, &alloc.node, changes);
        true
    }

    fn touch_alloc_node(&mut self, index: u64, node: &str, changes: &mut Changes) {
        self.node_alloc_index.insert(node.to_owned(), index);
        changes.alloc_nodes.insert(node.to_owned());
    }
}

/// Makes kept version `version` the job's newest (a copy, marked as reverted from it).
fn revert(job: &mut Job, index: u64, version: u64, now_ms: u64) -> Result<(), String> {
    let Some(source) = job.version(version).cloned() else {
        let kept: Vec<String> = job.versions.iter().map(|v| v.version.to_string()).collect();
        return Err(format!("job {:?} has no version {version} (kept: {})", job.name, kept.join(", ")));
    };
    let number = job.versions.last().map_or(0, |v| v.version) + 1;
    job.versions.push(JobVersion {
        version: number,
        submitted_ms: now_ms,
        submit_index: index,
        reverted_from: Some(version),
        rollout: Rollout::InProgress,
        ..source
    });
    job.version = number;
    job.stopped = false;
    job.modify_index = index;
    Ok(())
}

/// Why `name` is not a DNS label, the rule local job names keep.
fn label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("must not be empty".into())
    } else if name.starts_with('-') || name.ends_with('-') {
        Some(format!("{name:?} must not start or end with -"))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            .map(|bad| format!("{name:?} contains {bad:?} (want a DNS label: a-z, 0-9 and -)"))
    }
}
