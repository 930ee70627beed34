//! The records the replicated state holds: KV entries, catalog nodes, services and health checks.
//!
//! These structs are persisted (Raft log entries and snapshots are their postcard encoding), so field order matters and serde attributes that change the shape per value (`skip_serializing_if`, `flatten`, `untagged`) are not allowed here: postcard is not self-describing.
//! Values the catalog passes through without understanding them (a check's `Definition`, a service's `Proxy`) are kept as JSON text.
//! The HTTP layer owns the Consul JSON shapes; it converts from these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One KV entry, as Consul's `/v1/kv` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The full key; `/` has no special meaning to the store.
    pub key: String,
    /// The value bytes; empty when the PUT body was empty (shown as `"Value": null`).
    #[serde(with = "crate::serde_bytes")]
    pub value: Vec<u8>,
    /// Opaque client flags.
    pub flags: u64,
    /// How many times a lock on this key has been acquired.
    pub lock_index: u64,
    /// The session holding the lock, if any.
    pub session: Option<String>,
    /// The index at which the key was created.
    pub create_index: u64,
    /// The index of the last change to the key.
    pub modify_index: u64,
}

/// A catalog node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Node {
    /// The node's UUID (may be empty for nodes registered through the catalog without one).
    pub id: String,
    /// The node name, unique in the datacenter.
    pub node: String,
    /// The node's address.
    pub address: String,
    /// The datacenter the node is in.
    pub datacenter: String,
    /// Other addresses by name (`lan`, `wan`, ...).
    pub tagged_addresses: BTreeMap<String, String>,
    /// User metadata.
    pub meta: BTreeMap<String, String>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// A service's additional address (`TaggedAddresses` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceAddress {
    /// The address.
    pub address: String,
    /// The port.
    pub port: u16,
}

/// DNS SRV weights of a service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// Weight while every check passes.
    pub passing: i64,
    /// Weight while some check warns.
    pub warning: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { passing: 1, warning: 1 }
    }
}

/// A service instance on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Service {
    /// Instance ID, unique on its node.
    pub id: String,
    /// Service name.
    pub service: String,
    /// Tags, in registration order.
    pub tags: Vec<String>,
    /// Instance address; empty means the node's.
    pub address: String,
    /// Tagged addresses.
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// User metadata.
    pub meta: BTreeMap<String, String>,
    /// Port.
    pub port: u16,
    /// SRV weights.
    pub weights: Weights,
    /// Whether anti-entropy leaves catalog-side tag edits alone.
    pub enable_tag_override: bool,
    /// Service kind (`""` for a typical service).
    pub kind: String,
    /// Unix socket path, if the service listens on one.
    pub socket_path: String,
    /// The `Proxy` object as JSON text, empty when unset.
    pub proxy_json: String,
    /// The `Connect` object as JSON text, empty when unset.
    pub connect_json: String,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// A health status, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CheckStatus {
    /// Healthy.
    Passing,
    /// Degraded but serving.
    Warning,
    /// Not serving.
    Critical,
}

impl CheckStatus {
    /// The lower-case name Consul uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// Parses Consul's lower-case name.
    pub fn parse(name: &str) -> Option<CheckStatus> {
        match name {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }
}

/// A health check on a node, optionally tied to one service instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The node the check runs on.
    pub node: String,
    /// Check ID, unique on its node.
    pub check_id: String,
    /// Human name.
    pub name: String,
    /// Current status.
    pub status: CheckStatus,
    /// Free-form notes.
    pub notes: String,
    /// Output of the last run.
    pub output: String,
    /// The service instance the check belongs to; empty for a node check.
    pub service_id: String,
    /// The service name, filled in from the instance at apply time.
    pub service_name: String,
    /// The service tags, filled in from the instance at apply time.
    pub service_tags: Vec<String>,
    /// Check type: `ttl`, `http`, `tcp`, ... or empty.
    pub check_type: String,
    /// Interval as a Go duration string, empty when unset.
    pub interval: String,
    /// Timeout as a Go duration string, empty when unset.
    pub timeout: String,
    /// The `Definition` object as JSON text, empty when unset.
    pub definition_json: String,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// What happens to the locks a session holds when it is invalidated (Consul's `Behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SessionBehavior {
    /// The keys stay; their lock is released.
    #[default]
    Release,
    /// The keys are deleted.
    Delete,
}

impl SessionBehavior {
    /// The lower-case name Consul uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionBehavior::Release => "release",
            SessionBehavior::Delete => "delete",
        }
    }
}

/// A service check a session depends on (Consul's `ServiceCheck`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceCheckRef {
    /// The check ID, on the session's node.
    pub id: String,
    /// Consul Enterprise's namespace; kept and shown, never interpreted.
    pub namespace: String,
}

/// A session: a named liveness contract that KV locks hang on (Consul's `Session`).
///
/// The session lives while its node is registered and every check it names exists and is not critical (and, with a TTL, while the leader hears renewals); when any of that stops holding it is destroyed, and its locks are released or their keys deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Session {
    /// The session's UUID, chosen by whoever proposes its creation (apply must stay deterministic).
    pub id: String,
    /// Human name.
    pub name: String,
    /// The node the session is tied to.
    pub node: String,
    /// Node check IDs whose failure invalidates the session.
    pub node_checks: Vec<String>,
    /// Service checks whose failure invalidates the session.
    pub service_checks: Vec<ServiceCheckRef>,
    /// How long, in nanoseconds, the keys it held stay unlockable after it is invalidated.
    pub lock_delay_ns: u64,
    /// Release or delete held keys on invalidation.
    pub behavior: SessionBehavior,
    /// The TTL as given (a Go duration such as `30s`), empty for none.
    pub ttl: String,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}
