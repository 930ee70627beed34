//! Raft operator requests (`remove-peer`, `transfer-leader`): the values an agent sends to the leader, and the pure
//! choices the leader makes on them, checked against the Raft configuration before anything changes.
//!
//! The texts of refusals are Consul's where Consul has one (`id "x" was not found in the Raft configuration`), so an
//! operator who mistyped an ID sees the same message from either.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::RaftServer;
use crate::error::{Error, Result};

/// How long an operator-removed server that is still alive in gossip stays out of the Raft configuration before the
/// leader's reconcile may add it back (as a non-voter first). Consul's reconcile adds it back on its next pass, every
/// 60 s (`reconcile_interval`); this keeps that pace instead of re-adding it at the next 2 s tick.
pub const REMOVED_HOLD: Duration = Duration::from_secs(60);

/// Which Raft server an operator names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerSelector {
    /// By its Raft ID, as `/v1/operator/raft/configuration` shows it.
    Id(String),
    /// By its RPC address, `IP:port`.
    Address(String),
}

/// An operator request, carried out by the leader (a follower forwards it there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorRequest {
    /// Remove a server, voter or not, from the Raft configuration (operator:write).
    RemovePeer(PeerSelector),
    /// Hand leadership to the voter `id`, or to the most caught-up other voter (operator:write).
    TransferLeader {
        /// The new leader's Raft ID; `None` lets the leader choose.
        id: Option<String>,
    },
    /// The leader's latest autopilot health of every server (operator:read).
    AutopilotHealth,
}

impl OperatorRequest {
    /// Whether the request changes the cluster (operator:write) rather than reads it (operator:read).
    pub(crate) fn writes(&self) -> bool {
        !matches!(self, OperatorRequest::AutopilotHealth)
    }
}

/// What an operator request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorReply {
    /// The server was removed.
    Removed {
        /// Its Raft ID.
        id: u64,
    },
    /// Leadership moved to `to`.
    Transferred {
        /// The new leader's Raft ID.
        to: u64,
    },
    /// The leader's autopilot health.
    Health(Box<crate::autopilot::AutopilotHealth>),
}

/// The server `selector` names in `servers`, or Consul's refusal naming what was not found.
pub(crate) fn find_peer(servers: &[RaftServer], selector: &PeerSelector) -> Result<RaftServer> {
    let found = match selector {
        PeerSelector::Id(id) => servers.iter().find(|s| s.id.to_string() == *id),
        PeerSelector::Address(addr) => {
            let parsed: Option<SocketAddr> = addr.parse().ok();
            servers.iter().find(|s| Some(s.addr) == parsed)
        }
    };
    found.copied().ok_or_else(|| {
        Error::Operator(match selector {
            PeerSelector::Id(id) => format!("id {id:?} was not found in the Raft configuration"),
            PeerSelector::Address(addr) => format!("address {addr:?} was not found in the Raft configuration"),
        })
    })
}

/// Refuses a removal that would leave the configuration without a voter.
pub(crate) fn check_removal(servers: &[RaftServer], target: &RaftServer) -> Result<()> {
    let voters = servers.iter().filter(|s| s.voter).count();
    if target.voter && voters <= 1 {
        return Err(Error::Operator(format!(
            "cannot remove {} ({}): it is the last voter in the Raft configuration",
            target.id, target.addr
        )));
    }
    Ok(())
}

/// The voter leadership goes to: `wanted` when it names another voter, else the other voter whose replication is
/// furthest along (`matched`: Raft ID → last index the leader knows it holds; a voter never reached is passed over).
pub(crate) fn transfer_target(
    servers: &[RaftServer],
    me: u64,
    wanted: Option<&str>,
    matched: &BTreeMap<u64, u64>,
) -> Result<u64> {
    if let Some(id) = wanted {
        let target = find_peer(servers, &PeerSelector::Id(id.to_owned()))?;
        if target.id == me {
            return Err(Error::Operator("cannot transfer leadership to itself".into()));
        }
        if !target.voter {
            return Err(Error::Operator(format!(
                "id {id:?} is not a voter in the Raft configuration and cannot become leader"
            )));
        }
        return Ok(target.id);
    }
    servers
        .iter()
        .filter(|s| s.voter && s.id != me)
        .filter_map(|s| Some((*matched.get(&s.id)?, s.id)))
        .max()
        .map(|(_, id)| id)
        .ok_or_else(|| Error::Operator("cannot find a voter to transfer leadership to".into()))
}

/// Servers an operator removed recently, which the leader's reconcile leaves out for `REMOVED_HOLD`.
#[derive(Debug, Default)]
pub(crate) struct RecentlyRemoved {
    removed: std::sync::Mutex<BTreeMap<u64, Instant>>,
}

impl RecentlyRemoved {
    /// Notes that `id` was removed at `now`.
    pub(crate) fn note(&self, id: u64, now: Instant) {
        self.lock().insert(id, now);
    }

    /// Whether `id` was removed less than `REMOVED_HOLD` before `now`; forgets older removals.
    pub(crate) fn holds(&self, id: u64, now: Instant) -> bool {
        let mut removed = self.lock();
        removed.retain(|_, at| now.saturating_duration_since(*at) < REMOVED_HOLD);
        removed.contains_key(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Instant>> {
        self.removed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    //! The choices without a cluster: lookups, the last-voter rule, transfer targets, the hold after a removal.
    use super::*;

    fn servers() -> Vec<RaftServer> {
        vec![
            RaftServer { id: 1, addr: "127.0.0.1:8300".parse().unwrap(), voter: true },
            RaftServer { id: 2, addr: "127.0.0.2:8300".parse().unwrap(), voter: true },
            RaftServer { id: 3, addr: "127.0.0.3:8300".parse().unwrap(), voter: false },
        ]
    }

    #[test]
    fn peers_are_found_by_id_or_address_and_unknown_ones_named() {
        let s = servers();
        assert_eq!(find_peer(&s, &PeerSelector::Id("2".into())).unwrap().id, 2);
        assert_eq!(find_peer(&s, &PeerSelector::Address("127.0.0.3:8300".into())).unwrap().id, 3);
        let err = find_peer(&s, &PeerSelector::Id("9".into())).unwrap_err().to_string();
        assert_eq!(err, r#"id "9" was not found in the Raft configuration"#);
        let err = find_peer(&s, &PeerSelector::Address("10.0.0.1:8300".into())).unwrap_err().to_string();
        assert_eq!(err, r#"address "10.0.0.1:8300" was not found in the Raft configuration"#);
        let err = find_peer(&s, &PeerSelector::Address("nonsense".into())).unwrap_err().to_string();
        assert!(err.contains(r#""nonsense""#), "{err}");
    }

    #[test]
    fn the_last_voter_is_never_removed() {
        let s = servers();
        assert!(check_removal(&s, &s[0]).is_ok());
        assert!(check_removal(&s, &s[2]).is_ok(), "a non-voter always may go");
        let one = vec![s[0], s[2]];
        let err = check_removal(&one, &one[0]).unwrap_err().to_string();
        assert!(err.contains("last voter"), "{err}");
        assert!(check_removal(&one, &one[1]).is_ok());
    }

    #[test]
    fn transfer_goes_to_the_named_voter_or_the_most_caught_up_one() {
        let s = servers();
        let matched = BTreeMap::from([(2, 10), (3, 50)]);
        assert_eq!(transfer_target(&s, 1, Some("2"), &matched).unwrap(), 2);
        assert_eq!(transfer_target(&s, 1, None, &matched).unwrap(), 2, "a non-voter is never chosen");
        let err = transfer_target(&s, 1, Some("3"), &matched).unwrap_err().to_string();
        assert!(err.contains("not a voter"), "{err}");
        let err = transfer_target(&s, 1, Some("1"), &matched).unwrap_err().to_string();
        assert_eq!(err, "cannot transfer leadership to itself");
        let err = transfer_target(&s, 1, Some("x"), &matched).unwrap_err().to_string();
        assert_eq!(err, r#"id "x" was not found in the Raft configuration"#);
        // A voter the leader never reached is no candidate.
        assert!(transfer_target(&s, 1, None, &BTreeMap::new()).is_err());
        let mut four = s.clone();
        four.push(RaftServer { id: 4, addr: "127.0.0.4:8300".parse().unwrap(), voter: true });
        let matched = BTreeMap::from([(2, 10), (4, 12)]);
        assert_eq!(transfer_target(&four, 1, None, &matched).unwrap(), 4);
    }

    #[test]
    fn a_removal_holds_for_its_period_only() {
        let removed = RecentlyRemoved::default();
        let now = Instant::now();
        removed.note(7, now);
        assert!(removed.holds(7, now + Duration::from_secs(1)));
        assert!(!removed.holds(8, now));
        assert!(!removed.holds(7, now + REMOVED_HOLD));
        assert!(!removed.holds(7, now), "an expired hold is forgotten");
    }
}
