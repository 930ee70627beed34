//! The errors `roster-server` returns, each variant naming what the caller should do next.

use std::net::SocketAddr;

/// What went wrong with a server operation.
///
/// `NoLeader` and `NotLeader` are retryable routing errors; `Storage` and `Fatal` mean this node
/// cannot continue safely; `Rejected` is a deterministic refusal that must go back to the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No leader is known right now (an election is under way or quorum is lost). Retry later.
    #[error("No cluster leader")]
    NoLeader,
    /// This node is not the leader; send the request to `leader` (its RPC address) if known.
    #[error("not the cluster leader; leader is {leader:?}")]
    NotLeader {
        /// The RPC address of the node believed to be leader.
        leader: Option<SocketAddr>,
    },
    /// The request was refused deterministically; the text is for the client.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Reading or writing the log, the snapshot files or the data directory failed.
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    /// A file in the data directory is unusable (a bad `raft/peers.json`, a data dir of an unknown or newer format);
    /// the text names the file and the problem. Nothing on disk was changed.
    #[error("{0}")]
    DataDir(String),
    /// Talking to another server failed: the outcome of a forwarded write is unknown.
    #[error("rpc to {addr}: {message}")]
    Rpc {
        /// The peer's RPC address.
        addr: SocketAddr,
        /// What failed.
        message: String,
    },
    /// A write was appended and then displaced by a leader change: it may or may not be applied.
    /// Retrying is safe only for idempotent commands.
    #[error("write outcome unknown: {0}")]
    Indeterminate(String),
    /// The operation did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A cluster-membership request was refused (bad member list, change in progress, ...).
    #[error("membership: {0}")]
    Membership(String),
    /// The Raft core stopped because of an unrecoverable error; the node must be restarted.
    #[error("raft fatal error: {0}")]
    Fatal(String),
    /// The server is shutting down.
    #[error("server is shutting down")]
    Shutdown,
    /// A client agent knows no server to send the request to (gossip has found none alive).
    /// The text is Consul's, which clients and operators recognise.
    #[error("No known Consul servers")]
    NoServers,
    /// The caller's token may not do this; the text is Consul's ("Permission denied: token with AccessorID ...").
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller's token does not exist (or has expired), in Consul's words.
    #[error("ACL not found")]
    AclNotFound,
    /// The caller sent one of the reserved names `allow`, `deny` or `manage` as a token.
    #[error("Cannot resolve root ACL")]
    AclRootDenied,
    /// An operator request (remove-peer, transfer-leader) was refused: it names no server in the Raft configuration,
    /// or would leave it without a voter. Nothing changed; the text is for the operator.
    #[error("{0}")]
    Operator(String),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
