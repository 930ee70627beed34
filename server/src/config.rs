//! The server's configuration and the small value types of its API.
//!
//! `Consistency`, `ReadMeta` and `ClusterStatus` also travel in client RPCs (`raft::wire`), as postcard: their fields and variants are append-only.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a Raft server is started. Built by the agent from its own validated config.
#[derive(Debug)]
pub struct Config {
    /// This server's Raft id: unique in the cluster and stable across restarts (the log records it).
    pub node_id: u64,
    /// Where the Raft log (`raft-log.redb`) and snapshots (`snapshots/`) live.
    /// `None` keeps everything in memory (`-dev`): fast, and gone on exit.
    pub data_dir: Option<PathBuf>,
    /// The already-bound listener for server-to-server RPC (Raft and forwarded requests).
    pub rpc_listener: tokio::net::TcpListener,
    /// The address other servers use to reach `rpc_listener`; recorded in the cluster membership.
    pub rpc_advertise: SocketAddr,
    /// Form a single-server cluster on first start (`-dev`, `-bootstrap`). Ignored once a log exists.
    pub bootstrap: bool,
    /// How tokens are enforced; `None` when ACLs are off (every caller may do everything, as in Consul).
    pub acl: Option<crate::access::AclSettings>,
}

/// How fresh a read must be; Consul's default, `?consistent` and `?stale` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Consistency {
    /// Served after the leader confirms its lease (no network round while the lease holds).
    #[default]
    Default,
    /// Served after the leader confirms leadership with a quorum round (ReadIndex).
    Consistent,
    /// Served from this server's applied state as it is; may lag the leader.
    Stale,
}

/// Facts about a read, for Consul's `X-Consul-KnownLeader` and `X-Consul-LastContact` headers.
/// A remote read reports those of the server that answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMeta {
    /// Whether this server knows a current leader.
    pub known_leader: bool,
    /// Milliseconds since this server last heard from the leader; 0 on the leader.
    pub last_contact_ms: u64,
}

/// What a server knows about the Raft cluster, as `Server::status` and `Remote::status` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The Raft id of the server that answered.
    pub id: u64,
    /// The RPC address of the server that answered.
    pub addr: SocketAddr,
    /// The RPC address of the leader that server knows of.
    pub leader: Option<SocketAddr>,
    /// Every server in the current membership, voters and learners, by Raft id.
    pub servers: Vec<RaftServer>,
    /// The index of the last entry in that server's log (0 for an empty log).
    pub last_log_index: u64,
    /// The index of the last entry that server applied to its state.
    pub applied_index: u64,
    /// Whether that server belongs to a cluster: it has a log, or has seen a vote of one.
    /// `-bootstrap-expect` must not form a new cluster next to an initialized server.
    pub initialized: bool,
}

/// This server's own Raft progress, for `/v1/agent/self`'s `Stats.raft` (in process only; never sent to another agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStats {
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    /// The current term.
    pub term: u64,
    /// The index of the last entry in the log (0 for an empty log).
    pub last_log_index: u64,
    /// The highest index known to be committed.
    pub commit_index: u64,
    /// The highest index applied to the state.
    pub applied_index: u64,
    /// The index the newest snapshot covers (0 without one).
    pub last_snapshot_index: u64,
    /// Voters in the configuration other than this server.
    pub num_peers: u64,
    /// Whether this server leads right now.
    pub leader: bool,
    /// Milliseconds since the leader was last heard from; 0 on the leader.
    pub last_contact_ms: u64,
}

/// One member of the Raft configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftServer {
    /// Its Raft id.
    pub id: u64,
    /// Its RPC address.
    pub addr: SocketAddr,
    /// Whether it votes (a learner still catching up does not).
    pub voter: bool,
}
