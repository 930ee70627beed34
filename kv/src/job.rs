//! Cluster jobs (issue 18): the records of the jobs table (a job's spec history), the allocations table (one running
//! copy of a job on one node, what the servers want of it and what its node reports) and the hosts table (which
//! drivers each node's agent offers), and the plan the leader's scheduler proposes.
//!
//! A job's spec is stored as the canonical JSON the agent's spec parser wrote (`JobSpec` lives in the runtime shim,
//! which this crate cannot depend on), together with its `JobShape` (placement, update policy, drivers, services),
//! which `roster-scheduler` reads out of that JSON again at apply, so the two never disagree.
//!
//! Persisted like `model`: field order is the format, nothing skipped, new fields only in a new format.

use serde::{Deserialize, Serialize};

pub use roster_scheduler::JobShape;

/// The most bytes a job spec's JSON may have.
pub const MAX_JOB_SPEC_LEN: usize = 256 * 1024;
/// How many versions a job keeps (older ones still used by an allocation are kept too).
pub const MAX_JOB_VERSIONS: usize = 10;
/// The most allocation reports one `Command::AllocReport` may carry.
pub const MAX_ALLOC_REPORTS: usize = 256;
/// The most drivers one host may report.
pub const MAX_HOST_DRIVERS: usize = 16;
/// The most tasks one allocation report may describe.
pub const MAX_REPORTED_TASKS: usize = 64;
/// The longest message an allocation report or a pending reason may carry.
pub const MAX_ALLOC_MESSAGE_LEN: usize = 1024;
/// The service meta key a node sets to the allocation's ID on every service an allocation registers: how the
/// servers find an allocation's services when they remove it.
pub const ALLOC_META: &str = "roster-alloc";

/// One cluster job: its versions and what the servers want of it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job's name (a DNS label of at most `MAX_JOB_NAME_LEN`).
    pub name: String,
    /// The version that should run (the newest, unless the job was reverted since; a revert is a new version).
    pub version: u64,
    /// Undeployed: every allocation is to stop. A new submit starts it again.
    pub stopped: bool,
    /// The kept versions, oldest first.
    pub versions: Vec<JobVersion>,
    /// Why allocations the job wants could not be placed, one line per reason (empty when everything is placed);
    /// written by the scheduler's plan.
    pub pending: Vec<String>,
    /// The sequence number the next allocation gets; allocation IDs are `<job>-<seq>`.
    pub next_alloc: u64,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last submit, stop or revert.
    pub modify_index: u64,
    /// Index of the last plan that changed this job or its allocations; a plan built on another is stale.
    pub plan_index: u64,
}

/// One version of a job's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVersion {
    /// 1 for the first submit, one more for each new spec or revert.
    pub version: u64,
    /// The spec, canonical JSON.
    pub spec: String,
    /// What the servers read from `spec`.
    pub shape: JobShape,
    /// The submitter's clock (Unix ms).
    pub submitted_ms: u64,
    /// The Raft index of the submit.
    pub submit_index: u64,
    /// For a revert: the version whose spec this copies.
    pub reverted_from: Option<u64>,
    /// How rolling this version out went.
    pub rollout: Rollout,
}

/// How a version's rollout is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rollout {
    /// Allocations of this version are being placed or are not yet healthy long enough.
    InProgress,
    /// Every wanted allocation ran this version and stayed healthy for `min_healthy_time`: a version auto-revert may
    /// go back to.
    Healthy,
    /// A new allocation did not become healthy within `healthy_deadline`; the text says which and why.
    Failed(String),
}

/// What the servers want of an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Desired {
    /// Run it.
    Run,
    /// Stop it (the job stopped, a newer version replaced it, it moved elsewhere); removed once its node reports it
    /// stopped or the node is gone.
    Stop,
}

/// What a node reports of an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientStatus {
    /// Not reported yet, or its tasks are being started.
    Pending,
    /// Its tasks run.
    Running,
    /// Its tasks were stopped (as desired) or ended normally.
    Complete,
    /// Its tasks failed for good (restart attempts used up, an image missing, ...).
    Failed,
}

/// One task of an allocation, as its node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    /// The task's name in the job spec.
    pub name: String,
    /// `pending`, `running` or `dead`.
    pub state: String,
    /// How many times the node restarted it.
    pub restarts: u64,
    /// Whether it ended in failure.
    pub failed: bool,
}

/// One copy of a job placed on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// `<job>-<seq>`: unique for the job's lifetime, and the name of the local job the node runs for it.
    pub id: String,
    /// The job.
    pub job: String,
    /// The sequence number in `id`.
    pub seq: u64,
    /// The job version it runs.
    pub version: u64,
    /// Its slot within the job, `0..count` (for a global job, the order nodes were first given one).
    pub index: u32,
    /// The node it runs on.
    pub node: String,
    /// What the servers want of it.
    pub desired: Desired,
    /// Why it is to stop (empty while it is to run).
    pub desired_reason: String,
    /// What its node last reported.
    pub status: ClientStatus,
    /// Its tasks, as last reported.
    pub tasks: Vec<TaskState>,
    /// Whether every check of its services passes; `None` until reported, or when it has no checks and no task runs.
    pub healthy: Option<bool>,
    /// The reporter's clock (Unix ms) when it was first reported healthy in its current healthy run; 0 when not.
    pub healthy_since_ms: u64,
    /// The node's last word on it (an error starting it, for example).
    pub message: String,
    /// The proposer's clock when it was placed (Unix ms).
    pub created_ms: u64,
    /// The reporter's clock at its last report (Unix ms); 0 before any.
    pub reported_ms: u64,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change, by a plan or a report.
    pub modify_index: u64,
}

/// A node able to run jobs: what its agent reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The node.
    pub node: String,
    /// The drivers its agent can use (`docker`, `exec`), sorted.
    pub drivers: Vec<String>,
    /// The reporter's clock at the last change (Unix ms).
    pub reported_ms: u64,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// One job's part of the scheduler's plan: applied whole, or the whole command is refused.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobPlan {
    /// The job.
    pub job: String,
    /// The job's `modify_index` the plan was computed from.
    pub expect_modify_index: u64,
    /// The job's `plan_index` the plan was computed from.
    pub expect_plan_index: u64,
    /// Allocations to create (desired `Run`, status `Pending`).
    pub add: Vec<Placed>,
    /// Allocations to stop, each with the reason shown to users.
    pub stop: Vec<(String, String)>,
    /// Allocations to remove (stopped ones their node reported stopped, or whose node is gone).
    pub remove: Vec<String>,
    /// A new rollout status for a version.
    pub rollout: Option<(u64, Rollout)>,
    /// Go back to this version (auto-revert): a new version with its spec, as `Command::JobRevert` makes.
    pub revert_to: Option<u64>,
    /// The new pending reasons, when they changed (`Some(vec![])` clears them).
    pub pending: Option<Vec<String>>,
}

/// A new allocation in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// Its sequence number: at least the job's `next_alloc`, distinct within the plan.
    pub seq: u64,
    /// The version it runs.
    pub version: u64,
    /// Its slot.
    pub index: u32,
    /// The node, which must be in the catalog.
    pub node: String,
}

/// A node's report on one of its allocations (`Command::AllocReport`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocStatusReport {
    /// The allocation's ID.
    pub id: String,
    /// Its status.
    pub status: ClientStatus,
    /// Its tasks (at most `MAX_REPORTED_TASKS`).
    pub tasks: Vec<TaskState>,
    /// Whether all its checks pass; `None` when unknown.
    pub healthy: Option<bool>,
    /// A message for users (at most `MAX_ALLOC_MESSAGE_LEN` bytes).
    pub message: String,
}

/// An allocation with the spec of its version: everything a node needs to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAllocation {
    /// The allocation.
    pub allocation: Allocation,
    /// Its version's spec JSON (kept while any allocation uses the version).
    pub spec: String,
}

/// A job with its allocations (`Query::Job`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    /// The job.
    pub job: Job,
    /// Its allocations, by sequence number.
    pub allocations: Vec<Allocation>,
}

/// Everything the scheduler reads, from one state (`Query::Scheduling`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SchedulingState {
    /// Every job.
    pub jobs: Vec<Job>,
    /// Every allocation, by job then sequence number.
    pub allocations: Vec<Allocation>,
    /// Every host report.
    pub hosts: Vec<Host>,
    /// Every catalog node with the status of its `serfHealth` check (`None` without one).
    pub nodes: Vec<(crate::model::Node, Option<crate::model::CheckStatus>)>,
}

impl Job {
    /// The version record `version`, if kept.
    pub fn version(&self, version: u64) -> Option<&JobVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The version that should run.
    pub fn current(&self) -> Option<&JobVersion> {
        self.version(self.version)
    }
}

impl Allocation {
    /// The ID of allocation `seq` of `job`.
    pub fn id_of(job: &str, seq: u64) -> String {
        format!("{job}-{seq}")
    }
}
