//! The foca identity of a roster node: its name (the conflict key), its gossip address and a generation that orders its lives.
//!
//! Foca keeps one entry per [`foca::Identity::Addr`]; ours is the node name, so a node that restarts on another port,
//! or renews itself after being declared down, replaces its previous entry instead of sitting next to it.
//! Two identities with the same name are ordered by generation: the start time in milliseconds, bumped by one on every
//! automatic rejoin, so the newest life of a node always wins the conflict.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One life of one node, as foca sees it.
///
/// Kept small on purpose: every packet header carries two or three of these, so metadata travels separately
/// (see the module doc of `gossip`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct NodeId {
    /// The node name, unique in the cluster; shared because foca clones the conflict key for every comparison.
    #[serde(serialize_with = "ser_name", deserialize_with = "de_name")]
    pub(crate) name: Arc<str>,
    /// Where the node's gossip socket (UDP and TCP) is reached.
    pub(crate) addr: SocketAddr,
    /// Orders the lives of a node: its start time in ms, plus one per automatic rejoin.
    pub(crate) generation: u64,
}

impl NodeId {
    /// A version of this member that only grows: a newer generation always compares higher, whatever foca's 16-bit
    /// refutation counter says, and within one generation the counter decides.
    pub(crate) fn version(&self, incarnation: u16) -> u64 {
        (self.generation << 16) | u64::from(incarnation)
    }
}

impl foca::Identity for NodeId {
    type Addr = Arc<str>;

    /// Rejoining after being declared down needs an identity that beats the one the cluster buried.
    fn renew(&self) -> Option<Self> {
        Some(NodeId { name: self.name.clone(), addr: self.addr, generation: self.generation.saturating_add(1) })
    }

    fn addr(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The newer generation wins; the address only breaks a tie (two processes started in the same millisecond under
    /// one name), so that every member picks the same winner.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, self.addr) > (adversary.generation, adversary.addr)
    }
}

/// A compact form for logs: `name@addr#generation`.
impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.generation)
    }
}

fn ser_name<S: Serializer>(name: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(name)
}

fn de_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
    String::deserialize(deserializer).map(Arc::from)
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    fn id(name: &str, port: u16, generation: u64) -> NodeId {
        NodeId { name: name.into(), addr: SocketAddr::from(([127, 0, 0, 1], port)), generation }
    }

    #[test]
    fn newer_generation_wins_and_renew_beats_the_old_life() {
        let old = id("web1", 8301, 1_000);
        let restarted = id("web1", 9000, 2_000);
        assert!(restarted.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&restarted));
        let renewed = old.renew().expect("renewable");
        assert!(renewed.win_addr_conflict(&old));
        assert_eq!(renewed.addr(), old.addr());
    }

    #[test]
    fn same_generation_conflict_has_one_winner() {
        let a = id("web1", 8301, 1_000);
        let b = id("web1", 8302, 1_000);
        assert_ne!(a.win_addr_conflict(&b), b.win_addr_conflict(&a));
    }

    #[test]
    fn version_orders_generations_before_incarnations() {
        let old = id("web1", 8301, 1_000);
        let new = id("web1", 8301, 1_001);
        assert!(new.version(0) > old.version(u16::MAX));
        assert!(old.version(2) > old.version(1));
    }

    #[test]
    fn postcard_roundtrip() -> anyhow::Result<()> {
        let original = id("web1", 8301, 1_700_000_000_000);
        let bytes = postcard::to_stdvec(&original)?;
        assert_eq!(postcard::from_bytes::<NodeId>(&bytes)?, original);
        Ok(())
    }
}
