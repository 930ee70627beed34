//! Transactions: the operations a `Command::Txn` (or a read-only `Query::Txn`) carries, and what they return.
//!
//! Consul's `/v1/txn` runs every operation against one state-store transaction and commits only if none failed.
//! `State` does the same on a scratch copy of itself (see `state/txn.rs`), so a failed transaction changes nothing and wakes nobody.
//! These types travel in the Raft log and the RPC: variants and fields are append-only.

use serde::{Deserialize, Serialize};

use crate::model::{HealthCheck, KvEntry, Node, Service};

/// The most operations one transaction may carry (Consul's `maxTxnOps` as this project's contract states it).
pub const MAX_TXN_OPS: usize = 64;

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A KV operation.
    Kv {
        /// What to do.
        verb: KvVerb,
        /// The key (the prefix for the tree verbs).
        key: String,
        /// The value for set, cas, lock and unlock.
        #[serde(with = "crate::serde_bytes")]
        value: Vec<u8>,
        /// Client flags for set, cas, lock and unlock.
        flags: u64,
        /// The expected ModifyIndex for cas, check-index and delete-cas.
        index: u64,
        /// The session for lock, unlock and check-session.
        session: String,
    },
    /// A catalog node operation; `node.modify_index` is the CAS index.
    Node {
        /// What to do.
        verb: CatalogVerb,
        /// The node (only its name matters to get and delete).
        node: Node,
    },
    /// A service instance operation; `service.modify_index` is the CAS index.
    Service {
        /// What to do.
        verb: CatalogVerb,
        /// The node the instance is on.
        node: String,
        /// The instance (only its ID matters to get and delete).
        service: Service,
    },
    /// A health check operation; `check.node` names the node and `check.modify_index` is the CAS index.
    Check {
        /// What to do.
        verb: CatalogVerb,
        /// The check.
        check: HealthCheck,
    },
}

/// Consul's KV transaction verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvVerb {
    /// `set`.
    Set,
    /// `cas`.
    Cas,
    /// `lock`.
    Lock,
    /// `unlock`.
    Unlock,
    /// `get`: fails when the key does not exist.
    Get,
    /// `get-or-empty`.
    GetOrEmpty,
    /// `get-tree`.
    GetTree,
    /// `check-index`.
    CheckIndex,
    /// `check-session`.
    CheckSession,
    /// `check-not-exists`.
    CheckNotExists,
    /// `delete`.
    Delete,
    /// `delete-tree`.
    DeleteTree,
    /// `delete-cas`.
    DeleteCas,
}

/// Consul's Node, Service and Check transaction verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogVerb {
    /// `set`.
    Set,
    /// `cas`.
    Cas,
    /// `get`.
    Get,
    /// `delete`.
    Delete,
    /// `delete-cas`.
    DeleteCas,
}

impl KvVerb {
    /// Parses Consul's verb name.
    pub fn parse(name: &str) -> Option<KvVerb> {
        Some(match name {
            "set" => KvVerb::Set,
            "cas" => KvVerb::Cas,
            "lock" => KvVerb::Lock,
            "unlock" => KvVerb::Unlock,
            "get" => KvVerb::Get,
            "get-or-empty" => KvVerb::GetOrEmpty,
            "get-tree" => KvVerb::GetTree,
            "check-index" => KvVerb::CheckIndex,
            "check-session" => KvVerb::CheckSession,
            "check-not-exists" => KvVerb::CheckNotExists,
            "delete" => KvVerb::Delete,
            "delete-tree" => KvVerb::DeleteTree,
            "delete-cas" => KvVerb::DeleteCas,
            _ => return None,
        })
    }

    /// Whether the verb can change the state (Consul's `isWrite`).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            KvVerb::Set
                | KvVerb::Cas
                | KvVerb::Lock
                | KvVerb::Unlock
                | KvVerb::Delete
                | KvVerb::DeleteTree
                | KvVerb::DeleteCas
        )
    }
}

impl CatalogVerb {
    /// Parses Consul's verb name.
    pub fn parse(name: &str) -> Option<CatalogVerb> {
        Some(match name {
            "set" => CatalogVerb::Set,
            "cas" => CatalogVerb::Cas,
            "get" => CatalogVerb::Get,
            "delete" => CatalogVerb::Delete,
            "delete-cas" => CatalogVerb::DeleteCas,
            _ => return None,
        })
    }
}

impl TxnOp {
    /// Whether the operation can change the state; a transaction of none such can be served as a read.
    pub fn is_write(&self) -> bool {
        match self {
            TxnOp::Kv { verb, .. } => verb.is_write(),
            TxnOp::Node { verb, .. } | TxnOp::Service { verb, .. } | TxnOp::Check { verb, .. } => {
                *verb != CatalogVerb::Get
            }
        }
    }
}

/// One result of a successful transaction. KV results of verbs other than get and get-tree carry no value, as Consul's do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnResult {
    /// A KV entry.
    Kv(KvEntry),
    /// A node.
    Node(Node),
    /// A service instance.
    Service(Service),
    /// A health check.
    Check(HealthCheck),
}

/// Why one operation failed, which rolled the whole transaction back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    /// The operation's position in the transaction.
    pub op_index: u64,
    /// Consul's text for the failure.
    pub what: String,
}

/// What a transaction did: results when every operation succeeded, or the errors and nothing applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// Every operation succeeded; their results in order.
    Applied(Vec<TxnResult>),
    /// At least one failed; nothing was applied.
    RolledBack(Vec<TxnError>),
}
