//! `Stats` of `/v1/agent/self`, which `roster info` prints: Consul's sections, filled from roster's own state.
//!
//! Every value is a string, as in Consul. A key Consul reports but roster has nothing true to put in
//! (Serf's queue depths, Go's version, coordinate resets) is left out rather than invented.

use serde_json::{Value, json};

use super::Api;
use super::agent::{CLUSTER_SERVICE, GOSSIP_CHECK};

/// What the `consul` section reports about the leader, which `/v1/agent/self` has already asked the cluster.
pub(super) struct LeaderView {
    /// Whether this agent is the leader.
    pub is_leader: bool,
    /// The leader's RPC address, empty when unknown.
    pub leader_addr: String,
}

/// The whole `Stats` object: `agent`, `build`, `consul`, `runtime`, `serf_lan` and, on a server, `raft`.
pub(super) async fn stats(api: &Api, leader: LeaderView) -> Value {
    let info = &api.info;
    let mut stats = json!({
        "agent": agent(api).await,
        "build": { "version": env!("CARGO_PKG_VERSION"), "prerelease": "", "revision": "" },
        "consul": {
            "server": info.server.to_string(),
            "leader": leader.is_leader.to_string(),
            "leader_addr": leader.leader_addr,
            "known_datacenters": "1",
            "acl": if api.acl.enabled() { "enabled" } else { "disabled" },
        },
        "runtime": runtime(),
    });
    if let Some(serf) = serf_lan(api) {
        stats["serf_lan"] = serf;
    }
    if let Some(server) = api.backend.server() {
        stats["raft"] = raft(&server.raft_stats());
    }
    stats
}

/// This agent's own services and checks, counted from its local state as Consul's agent counts them.
async fn agent(api: &Api) -> Value {
    let (services, checks) = api.local.snapshot().await;
    let checks: Vec<_> = checks.iter().filter(|check| check.check_id != GOSSIP_CHECK).collect();
    let of_type = |kind: &str| checks.iter().filter(|check| check.check_type == kind).count().to_string();
    json!({
        "services": services.iter().filter(|service| service.id != CLUSTER_SERVICE).count().to_string(),
        "checks": checks.len().to_string(),
        // Consul calls script checks monitors.
        "check_monitors": of_type("script"),
        "check_ttls": of_type("ttl"),
    })
}

/// The process: Go's `goroutines` become the tokio runtime's live tasks and `max_procs` its worker threads.
fn runtime() -> Value {
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut runtime = json!({
        "os": std::env::consts::OS,
        "arch": go_arch(std::env::consts::ARCH),
        "cpu_count": cpu_count.to_string(),
    });
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let metrics = handle.metrics();
        runtime["tasks"] = json!(metrics.num_alive_tasks().to_string());
        runtime["max_procs"] = json!(metrics.num_workers().to_string());
    }
    runtime
}

/// Go's name for an architecture (`GOARCH`), which is what Consul prints and scripts compare against.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The LAN pool as this agent's gossip sees it; none for an agent without gossip.
fn serf_lan(api: &Api) -> Option<Value> {
    let gossip = api.gossip.as_ref()?;
    let members = gossip.members();
    let count = |status: crate::gossip::MemberStatus| members.iter().filter(|m| m.status == status).count();
    let gossip_stats = gossip.stats();
    let mut serf = json!({
        "members": members.len().to_string(),
        "failed": count(crate::gossip::MemberStatus::Failed).to_string(),
        "left": count(crate::gossip::MemberStatus::Left).to_string(),
        // memberlist's awareness score is 0 when healthy; roster's multiplier is 1 then.
        "health_score": gossip_stats.local_health.saturating_sub(1).to_string(),
        "encrypted": gossip.local_keys().is_some().to_string(),
    });
    if let Some(events) = &api.events {
        serf["event_time"] = json!(events.ltime().to_string());
    }
    Some(serf)
}

/// This server's Raft progress, with Consul's key names.
fn raft(raft: &roster_server::RaftStats) -> Value {
    let last_contact = if raft.leader {
        "0".to_owned()
    } else {
        crate::config::format_go_duration(std::time::Duration::from_millis(raft.last_contact_ms))
    };
    let mut stats = json!({
        "state": raft.state,
        "term": raft.term.to_string(),
        "last_log_index": raft.last_log_index.to_string(),
        "commit_index": raft.commit_index.to_string(),
        "applied_index": raft.applied_index.to_string(),
        "last_snapshot_index": raft.last_snapshot_index.to_string(),
        "num_peers": raft.num_peers.to_string(),
        "leader": raft.leader.to_string(),
        "last_contact": last_contact,
        "protocol_version": "3",
    });
    // Not one of Consul's keys: present only when Raft stopped on an error, so a healthy server's shape is Consul's.
    if let Some(failure) = &raft.failure {
        stats["failure"] = json!(failure);
    }
    stats
}

#[cfg(test)]
mod tests;
