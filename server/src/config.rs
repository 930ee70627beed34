//! The server's configuration and the small value types of its API.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// How fresh a read must be; Consul's default, `?consistent` and `?stale` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMeta {
    /// Whether this server knows a current leader.
    pub known_leader: bool,
    /// Milliseconds since this server last heard from the leader; 0 on the leader.
    pub last_contact_ms: u64,
}
