//! What the agent records through the `metrics` facade beyond its HTTP layer (`http/metrics.rs`): check status
//! changes, gossip membership and the runtime shim's tasks, under Consul's names where Consul has the metric (`consul.serf.member.*`,
//! `consul.memberlist.*`) and `roster.*` otherwise. Every name and label is a static string.

use roster_kv::CheckStatus;

use crate::gossip::{Member, MemberStatus};

/// A check's status changed (a probe's result or a TTL update), by check type and new status.
pub(crate) fn check_status_changed(check_type: &str, status: CheckStatus) {
    let kind = match check_type {
        "http" => "http",
        "tcp" => "tcp",
        "udp" => "udp",
        "grpc" => "grpc",
        "h2ping" => "h2ping",
        "script" => "script",
        "ttl" => "ttl",
        "docker" => "docker",
        "alias" => "alias",
        "serf" => "serf",
        _ => "other",
    };
    let status = match status {
        CheckStatus::Passing => "passing",
        CheckStatus::Warning => "warning",
        CheckStatus::Critical => "critical",
    };
    metrics::counter!("roster.checks.status_changes_total", "type" => kind, "status" => status).increment(1);
}

/// A member's status moved from `before` (`None`: newly learned) to `now`, as Serf counts its member events.
pub(crate) fn member_transition(before: Option<MemberStatus>, now: MemberStatus) {
    let name = match (before, now) {
        (None | Some(MemberStatus::Left), MemberStatus::Alive) => "consul.serf.member.join",
        // Serf's flap: a member seen failed comes back.
        (Some(MemberStatus::Failed), MemberStatus::Alive) => "consul.serf.member.flap",
        (Some(MemberStatus::Alive), MemberStatus::Suspect) => "consul.memberlist.msg.suspect",
        (Some(_), MemberStatus::Failed) => "consul.serf.member.failed",
        (Some(_), MemberStatus::Left) => "consul.serf.member.left",
        _ => return,
    };
    metrics::counter!(name).increment(1);
}

/// The members of the pool by status (`roster.serf.members`), this agent included.
pub(crate) fn members(view: &[Member]) {
    let mut counts = [0u32; 4];
    for member in view {
        counts[match member.status {
            MemberStatus::Alive => 0,
            MemberStatus::Suspect => 1,
            MemberStatus::Failed => 2,
            MemberStatus::Left => 3,
        }] += 1;
    }
    for (status, count) in ["alive", "suspect", "failed", "left"].into_iter().zip(counts) {
        metrics::gauge!("roster.serf.members", "status" => status).set(f64::from(count));
    }
}

/// The states a job task is counted in by [`runtime_tasks`].
pub(crate) const TASK_STATES: [&str; 4] = ["pending", "running", "restarting", "dead"];

/// The job manager's tasks by state (`roster.runtime.tasks`), every state set so one that empties reads 0.
pub(crate) fn runtime_tasks(counts: [u32; 4]) {
    for (state, count) in TASK_STATES.into_iter().zip(counts) {
        metrics::gauge!("roster.runtime.tasks", "state" => state).set(f64::from(count));
    }
}

/// A task was started again by its restart policy (`roster.runtime.task_restarts_total`), by driver.
pub(crate) fn task_restarted(driver: &'static str) {
    metrics::counter!("roster.runtime.task_restarts_total", "driver" => driver).increment(1);
}
