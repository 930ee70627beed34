//! The commands a Raft log entry carries, and what applying one returns.
//!
//! A command is validated at the edge (HTTP) before it is proposed, but `State::apply` checks again what it depends on (a check's service must exist on its node): the state at apply time is the only truth, and a stale edge check must not corrupt it.

use serde::{Deserialize, Serialize};

use crate::model::{HealthCheck, Node, Service};

/// A change to the replicated state.
///
/// This enum is persisted in the Raft log: new variants go at the end, and an existing variant's fields never change shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set a key unconditionally.
    KvSet {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Client flags.
        flags: u64,
    },
    /// Set a key only if its ModifyIndex is `index` (0: only if it does not exist).
    KvCas {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Client flags.
        flags: u64,
        /// The expected ModifyIndex.
        index: u64,
    },
    /// Delete a key if present.
    KvDelete {
        /// The key.
        key: String,
    },
    /// Delete a key only if its ModifyIndex is `index`.
    KvDeleteCas {
        /// The key.
        key: String,
        /// The expected ModifyIndex.
        index: u64,
    },
    /// Delete every key that starts with `prefix`.
    KvDeleteTree {
        /// The prefix; empty deletes everything.
        prefix: String,
    },
    /// Register (upsert) a node and optionally one service and some checks on it.
    Register(Box<Registration>),
    /// Remove a node, or one service (with its checks), or one check.
    Deregister {
        /// The node.
        node: String,
        /// If set, remove only this service instance and its checks.
        service_id: Option<String>,
        /// If set (and `service_id` is not), remove only this check.
        check_id: Option<String>,
    },
}

/// A catalog registration, as `PUT /v1/catalog/register` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Registration {
    /// The node; its indexes are ignored.
    pub node: Node,
    /// Leave an existing node's fields as they are.
    pub skip_node_update: bool,
    /// A service instance to upsert; its indexes are ignored.
    pub service: Option<Service>,
    /// Checks to upsert; their indexes, `node`, `service_name` and `service_tags` are filled at apply time.
    pub checks: Vec<HealthCheck>,
}

/// The outcome of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// The command was applied; `false` when a condition (CAS) did not hold and nothing changed.
    Bool(bool),
    /// The command cannot be applied to this state; nothing changed. The text is for the client.
    Rejected(String),
}
