//! roster's Raft server: a replicated `roster_kv::State` on openraft, with a log file of its own, snapshot
//! files, and a small TCP RPC between servers. The only crate that names openraft.
//!
//! # Layout
//! - `server`: `Server`, the entry point: `start`, `write`, `read`, `query`, `blocking_read`, `status`, membership.
//! - `remote`: `Remote`, a client agent's connection to the servers: the same `write`, `query` and
//!   `status`, sent over the RPC with failover between servers.
//! - `access`: ACL enforcement: tokens resolved against the replicated ACL tables, commands authorized, answers filtered.
//! - `snapshot`: the archive of the applied state (`/v1/snapshot`), handles that client agents read it through, and
//!   the chunked restore commands.
//! - `login`: `Login`, an auth-method login verified, bound and minted into a token on a server.
//! - `sessions`: the leader's session TTL timers.
//! - `config`: `Config` (with `RpcTls`, `TlsConfigs`, `RpcLimits`), `Consistency`, `ReadMeta`, `ClusterStatus`, `RpcCounters`,
//!   and `raft_id`, the node ID → Raft id mapping the agent and outage recovery share.
//! - `autopilot`: server health as the leader computes it, and its promotion and dead-server-removal decisions.
//! - `operator`: `OperatorRequest` (remove-peer, transfer-leader), carried out by the leader, and its pure checks.
//! - `replica`: the applied state shared by the state machine and readers, and the watch registry
//!   that wakes blocking queries.
//! - `raft` (+ `raft/`): every openraft type: log store, state machine, snapshot files, network,
//!   RPC service, wire messages, the versioned log payload (`envelope`) and outage recovery (`recovery`). Its module
//!   docs explain the storage design.
//! - `rpc` (+ `rpc/`): the framed, multiplexed request/response transport (no openraft types), its TLS and limits.
//! - `error`: `Error`, `Result`.
//! - `fuzzing` (doc-hidden): the RPC decoders as the fuzz targets in `server/fuzz` drive them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
mod autopilot;
mod config;
mod coordinates;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod login;
mod operator;
mod raft;
mod remote;
mod replica;
mod rpc;
mod server;
mod sessions;
mod shared_eval;
mod snapshot;
mod telemetry;
#[cfg(test)]
mod test_pki;

pub use access::{Access, AclSettings, PolicyCache};
pub use autopilot::{AutopilotHealth, GossipServer, SerfStatus, ServerHealth};
pub use config::{
    ClusterStatus, Config, Consistency, RaftServer, RaftStats, RaftTiming, ReadMeta, RpcCounters, RpcLimits, RpcTls,
    TlsConfigs, raft_id,
};
pub use error::{Error, Result};
pub use login::Login;
pub use operator::{OperatorReply, OperatorRequest, PeerSelector, REMOVED_HOLD};
pub use remote::Remote;
pub use server::Server;
