//! Autopilot (Consul's, after hashicorp/raft-autopilot): the leader's view of every Raft server's health, and the
//! pure decisions it takes from it: which non-voter to promote, which failed server to remove.
//!
//! The leader computes health every reconcile pass (the agent's 2 s tick, Consul's `ServerHealthInterval`) from the
//! Raft facts only it has (per-follower last acknowledgement and replicated index, from openraft's leader metrics)
//! and the gossip status the agent passes in, and keeps the result: `/v1/operator/autopilot/health` on any server
//! is forwarded to the leader and answered from it.
//!
//! A server is healthy when gossip sees it alive and, unless it is the leader, the leader heard from it within
//! `LastContactThreshold`, its newest entry is of the leader's term, and it trails the leader's log by at most
//! `MaxTrailingLogs`. `StableSince` is when its health last changed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use roster_kv::AutopilotConfig;
use serde::{Deserialize, Serialize};

use crate::config::RaftServer;

/// A server's state in gossip, as Consul's `SerfStatus` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SerfStatus {
    /// Alive (or suspected, which serf still reports as alive).
    Alive,
    /// Failed: not heard from, not left.
    Failed,
    /// Left gracefully.
    Left,
    /// Gossip does not know it.
    None,
}

impl SerfStatus {
    /// Consul's text: `alive`, `failed`, `left`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            SerfStatus::Alive => "alive",
            SerfStatus::Failed => "failed",
            SerfStatus::Left => "left",
            SerfStatus::None => "none",
        }
    }
}

/// What gossip says of one server, passed in by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipServer {
    /// Its Raft ID.
    pub id: u64,
    /// Its node name.
    pub name: String,
    /// Its gossip status.
    pub status: SerfStatus,
    /// The version it runs.
    pub version: String,
}

/// The Raft facts health is computed from, read from the leader's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RaftFacts {
    /// The leader (this server).
    pub(crate) leader: u64,
    /// The leader's term.
    pub(crate) term: u64,
    /// The leader's last log index.
    pub(crate) last_index: u64,
    /// Every server in the configuration.
    pub(crate) servers: Vec<RaftServer>,
    /// Milliseconds since each follower last acknowledged a heartbeat or replication; absent: never.
    pub(crate) contact_ms: BTreeMap<u64, u64>,
    /// The term and index of the newest entry each follower is known to hold.
    pub(crate) matched: BTreeMap<u64, (u64, u64)>,
}

/// One server's health, as `/v1/operator/autopilot/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    /// Raft ID.
    pub id: u64,
    /// Node name (empty when gossip does not know it).
    pub name: String,
    /// RPC address.
    pub address: SocketAddr,
    /// Gossip status.
    pub serf_status: SerfStatus,
    /// Version it runs.
    pub version: String,
    /// Whether it leads.
    pub leader: bool,
    /// Whether it votes.
    pub voter: bool,
    /// Milliseconds since the leader last heard from it; `None` when never.
    pub last_contact_ms: Option<u64>,
    /// Term of its newest entry.
    pub last_term: u64,
    /// Index of its newest entry.
    pub last_index: u64,
    /// Whether it is healthy.
    pub healthy: bool,
    /// When its health last changed (Unix ms).
    pub stable_since_ms: u64,
}

/// The whole cluster's health, as the leader computed it last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotHealth {
    /// Every server is healthy.
    pub healthy: bool,
    /// How many voters may fail before quorum is lost: healthy voters minus the quorum.
    pub failure_tolerance: u64,
    /// Like `failure_tolerance`, counting every voter as if healthy (raft-autopilot's optimistic tolerance).
    pub optimistic_failure_tolerance: u64,
    /// The leader's Raft ID.
    pub leader: u64,
    /// Every server in the configuration, by Raft ID.
    pub servers: Vec<ServerHealth>,
}

/// Computes every server's health. `previous` (this leader's last result) carries `StableSince` over while a
/// server's health has not changed.
pub(crate) fn compute(
    config: &AutopilotConfig,
    facts: &RaftFacts,
    gossip: &[GossipServer],
    previous: Option<&AutopilotHealth>,
    now_ms: u64,
) -> AutopilotHealth {
    let by_id: BTreeMap<u64, &GossipServer> = gossip.iter().map(|g| (g.id, g)).collect();
    let previous: BTreeMap<u64, &ServerHealth> = previous
        .filter(|p| p.leader == facts.leader)
        .map(|p| p.servers.iter().map(|s| (s.id, s)).collect())
        .unwrap_or_default();
    let servers: Vec<ServerHealth> = facts
        .servers
        .iter()
        .map(|s| {
            let g = by_id.get(&s.id);
            let serf_status = g.map_or(SerfStatus::None, |g| g.status);
            let leader = s.id == facts.leader;
            let (last_contact_ms, (last_term, last_index)) = if leader {
                (Some(0), (facts.term, facts.last_index))
            } else {
                (facts.contact_ms.get(&s.id).copied(), facts.matched.get(&s.id).copied().unwrap_or((0, 0)))
            };
            let healthy = serf_status == SerfStatus::Alive
                && (leader
                    || (last_contact_ms.is_some_and(|ms| ms <= config.last_contact_threshold_ms)
                        && last_term == facts.term
                        && facts.last_index.saturating_sub(last_index) <= config.max_trailing_logs));
            let stable_since_ms =
                previous.get(&s.id).filter(|p| p.healthy == healthy).map_or(now_ms, |p| p.stable_since_ms);
            ServerHealth {
                id: s.id,
                name: g.map(|g| g.name.clone()).unwrap_or_default(),
                address: s.addr,
                serf_status,
                version: g.map(|g| g.version.clone()).unwrap_or_default(),
                leader,
                voter: s.voter,
                last_contact_ms,
                last_term,
                last_index,
                healthy,
                stable_since_ms,
            }
        })
        .collect();
    let voters = servers.iter().filter(|s| s.voter).count() as u64;
    let healthy_voters = servers.iter().filter(|s| s.voter && s.healthy).count() as u64;
    let quorum = voters / 2 + 1;
    AutopilotHealth {
        healthy: servers.iter().all(|s| s.healthy),
        failure_tolerance: healthy_voters.saturating_sub(quorum),
        optimistic_failure_tolerance: voters.saturating_sub(quorum),
        leader: facts.leader,
        servers,
    }
}

/// Non-voters that have been healthy for `ServerStabilizationTime`: the ones to make voters.
pub(crate) fn promotions(config: &AutopilotConfig, health: &AutopilotHealth, now_ms: u64) -> Vec<u64> {
    health
        .servers
        .iter()
        .filter(|s| !s.voter && s.healthy)
        .filter(|s| now_ms.saturating_sub(s.stable_since_ms) >= config.server_stabilization_time_ms)
        .map(|s| s.id)
        .collect()
}

/// Servers to remove with `CleanupDeadServers`: failed in gossip (or gone from it) and not heard from for longer
/// than `LastContactThreshold`. Non-voters always go; a voter goes only while at least `MinQuorum` voters remain and
/// the healthy voters stay a majority of those that remain (raft-autopilot's rule), so a cleanup never costs quorum.
pub(crate) fn removals(config: &AutopilotConfig, health: &AutopilotHealth) -> Vec<u64> {
    if !config.cleanup_dead_servers {
        return Vec::new();
    }
    let dead = |s: &&ServerHealth| {
        !s.leader
            && matches!(s.serf_status, SerfStatus::Failed | SerfStatus::None)
            && s.last_contact_ms.is_none_or(|ms| ms > config.last_contact_threshold_ms)
    };
    let mut voters = health.servers.iter().filter(|s| s.voter).count() as u64;
    let healthy_voters = health.servers.iter().filter(|s| s.voter && s.healthy).count() as u64;
    let mut out = Vec::new();
    for server in health.servers.iter().filter(dead) {
        if !server.voter {
            out.push(server.id);
            continue;
        }
        let remaining = voters - 1;
        if remaining < u64::from(config.min_quorum) || healthy_voters <= remaining / 2 {
            continue;
        }
        out.push(server.id);
        voters = remaining;
    }
    out
}

#[cfg(test)]
mod tests {
    //! Health, promotion, removal and failure tolerance without a cluster.
    use super::*;

    const NOW: u64 = 1_000_000;

    fn facts(n_voters: u64, n_learners: u64) -> RaftFacts {
        let servers = (1..=n_voters + n_learners)
            .map(|id| RaftServer { id, addr: format!("127.0.0.{id}:8300").parse().unwrap(), voter: id <= n_voters })
            .collect::<Vec<_>>();
        let contact_ms = servers.iter().filter(|s| s.id != 1).map(|s| (s.id, 10)).collect();
        let matched = servers.iter().filter(|s| s.id != 1).map(|s| (s.id, (3, 100))).collect();
        RaftFacts { leader: 1, term: 3, last_index: 100, servers, contact_ms, matched }
    }

    fn gossip(facts: &RaftFacts) -> Vec<GossipServer> {
        facts
            .servers
            .iter()
            .map(|s| GossipServer {
                id: s.id,
                name: format!("s{}", s.id),
                status: SerfStatus::Alive,
                version: "1.0".into(),
            })
            .collect()
    }

    fn health_of(h: &AutopilotHealth, id: u64) -> &ServerHealth {
        h.servers.iter().find(|s| s.id == id).unwrap()
    }

    #[test]
    fn a_server_is_healthy_only_when_alive_recent_current_and_caught_up() {
        let config = AutopilotConfig::default();
        let mut f = facts(3, 0);
        let mut g = gossip(&f);
        let h = compute(&config, &f, &g, None, NOW);
        assert!(h.healthy);
        assert_eq!((h.failure_tolerance, h.optimistic_failure_tolerance), (1, 1));
        assert!(health_of(&h, 1).leader && health_of(&h, 1).last_contact_ms == Some(0));

        f.contact_ms.insert(2, 201);
        f.last_index = 351;
        f.matched.insert(2, (3, 351));
        let h = compute(&config, &f, &g, None, NOW);
        assert!(!health_of(&h, 2).healthy, "not heard from within the threshold");
        assert!(!health_of(&h, 3).healthy, "trailing by more than MaxTrailingLogs");
        assert!(!h.healthy);
        assert_eq!(h.failure_tolerance, 0);

        let mut f = facts(3, 0);
        f.matched.insert(2, (2, 100));
        g[2].status = SerfStatus::Failed;
        let h = compute(&config, &f, &g, None, NOW);
        assert!(!health_of(&h, 2).healthy, "its newest entry is of an older term");
        assert!(!health_of(&h, 3).healthy, "failed in gossip");
        assert_eq!(health_of(&h, 3).serf_status.as_str(), "failed");
        let h = compute(&config, &f, &g[..2], None, NOW);
        assert_eq!(health_of(&h, 3).serf_status, SerfStatus::None);
        assert_eq!(health_of(&h, 3).name, "");
    }

    #[test]
    fn stable_since_moves_only_when_health_changes() {
        let config = AutopilotConfig::default();
        let f = facts(3, 1);
        let g = gossip(&f);
        let first = compute(&config, &f, &g, None, NOW);
        let later = compute(&config, &f, &g, Some(&first), NOW + 5_000);
        assert_eq!(health_of(&later, 4).stable_since_ms, NOW);
        let mut sick = f.clone();
        sick.contact_ms.insert(4, 10_000);
        let changed = compute(&config, &sick, &g, Some(&later), NOW + 6_000);
        assert_eq!(health_of(&changed, 4).stable_since_ms, NOW + 6_000);
        assert_eq!(health_of(&changed, 2).stable_since_ms, NOW);
        let mut other_leader = first.clone();
        other_leader.leader = 2;
        let fresh = compute(&config, &f, &g, Some(&other_leader), NOW + 7_000);
        assert_eq!(health_of(&fresh, 2).stable_since_ms, NOW + 7_000, "a new leader starts its own clock");
    }

    #[test]
    fn a_non_voter_is_promoted_after_the_stabilization_time() {
        let config = AutopilotConfig { server_stabilization_time_ms: 3_000, ..AutopilotConfig::default() };
        let f = facts(3, 1);
        let g = gossip(&f);
        let first = compute(&config, &f, &g, None, NOW);
        assert!(promotions(&config, &first, NOW + 2_999).is_empty());
        assert_eq!(promotions(&config, &first, NOW + 3_000), vec![4]);
        let mut sick = f.clone();
        sick.contact_ms.remove(&4);
        let h = compute(&config, &sick, &g, Some(&first), NOW + 3_000);
        assert!(promotions(&config, &h, NOW + 60_000).is_empty(), "an unhealthy non-voter is never promoted");
    }

    #[test]
    fn dead_servers_are_removed_within_min_quorum_and_a_healthy_majority() {
        let config = AutopilotConfig::default();
        let mut f = facts(5, 1);
        let mut g = gossip(&f);
        for id in [4, 5, 6] {
            g[id as usize - 1].status = SerfStatus::Failed;
            f.contact_ms.insert(id, 5_000);
        }
        let h = compute(&config, &f, &g, None, NOW);
        // 5 voters, 3 healthy: removing 4 leaves 3 healthy of 4 (a majority), removing 5 as well leaves 3 of 3.
        assert_eq!(removals(&config, &h), vec![4, 5, 6]);
        let min3 = AutopilotConfig { min_quorum: 4, ..config.clone() };
        assert_eq!(removals(&min3, &h), vec![4, 6], "never fewer than MinQuorum voters");
        let off = AutopilotConfig { cleanup_dead_servers: false, ..config.clone() };
        assert!(removals(&off, &h).is_empty());

        // 3 voters, 2 dead: removing either would leave 1 healthy of 2, not a majority.
        let mut f = facts(3, 0);
        let mut g = gossip(&f);
        for id in [2, 3] {
            g[id as usize - 1].status = SerfStatus::Failed;
            f.contact_ms.insert(id, 5_000);
        }
        let h = compute(&config, &f, &g, None, NOW);
        assert!(removals(&config, &h).is_empty());
        assert_eq!(h.failure_tolerance, 0);

        // Failed in gossip but heard from within the threshold (a gossip hiccup): kept.
        let f = facts(3, 0);
        let mut g = gossip(&f);
        g[2].status = SerfStatus::Failed;
        let h = compute(&config, &f, &g, None, NOW);
        assert!(removals(&config, &h).is_empty());
    }
}
