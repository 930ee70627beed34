//! The server's configuration and the small value types of its API.
//!
//! `Consistency`, `ReadMeta` and `ClusterStatus` also travel in client RPCs (`raft::wire`), as postcard: their fields and variants are append-only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Raft id of the server whose node ID is `node_id`: the UUID's first 64 bits, so it is stable across restarts
/// without a file of its own (an ID that is not a UUID is hashed). Zero is avoided because some tooling treats it as "none".
///
/// The agent names its own server with it, and outage recovery maps `peers.json`'s node IDs with it, so both must agree.
pub fn raft_id(node_id: &str) -> u64 {
    let id = uuid::Uuid::parse_str(node_id).map(|u| u.as_u64_pair().0).unwrap_or_else(|_| fnv1a(node_id.as_bytes()));
    id.max(1)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// How a Raft server is started. Built by the agent from its own validated config.
#[derive(Debug)]
pub struct Config {
    /// This server's Raft id: unique in the cluster and stable across restarts (the log records it).
    pub node_id: u64,
    /// Where the Raft log (`raft-log.wal`) and snapshots (`snapshots/`) live.
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
    /// TLS on the RPC port; `None` serves and dials plaintext, and trusts every peer as a server (as Consul without TLS).
    pub tls: Option<RpcTls>,
    /// Hard limits on the RPC port.
    pub limits: RpcLimits,
    /// Consul's `performance.raft_multiplier` (1–10): the heartbeat, the election timeout and the leader lease (the
    /// election timeout's maximum, in openraft) scale linearly with it, as in Consul. roster's timings are tuned for
    /// Consul's default of 5 (a 100 ms heartbeat, elections after 300–600 ms); 1 is five times as quick to replace a
    /// lost leader and five times as quick to depose a slow one, 10 twice as tolerant as the default.
    pub raft_multiplier: u8,
}

/// The Raft timings a server runs with, after `raft_multiplier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTiming {
    /// How often the leader sends heartbeats.
    pub heartbeat: std::time::Duration,
    /// A follower that hears no leader for a random time in this range starts an election; the maximum is also the
    /// leader's lease.
    pub election_timeout: std::ops::RangeInclusive<std::time::Duration>,
}

/// Supplies the current TLS configurations. Called once per new connection, so a reload affects new connections only.
///
/// The server configuration must verify client certificates against the CA when they are presented (rustls's
/// `WebPkiClientVerifier`; with `verify_incoming` off it may allow clients without one): the RPC trusts a peer's
/// certificate only as far as that verifier checked it. The client configuration carries this agent's certificate,
/// so a server dialling a server presents it, and verifies the server it dials (skipping the name check is the
/// configuration's choice; with `verify_server_hostname` the RPC checks the name itself as well).
pub trait TlsConfigs: Send + Sync + 'static {
    /// The configuration for the next accepted connection.
    fn server_config(&self) -> Arc<rustls::ServerConfig>;
    /// The configuration for the next dialled connection.
    fn client_config(&self) -> Arc<rustls::ClientConfig>;
}

/// Mutual TLS on the RPC port, as Consul's `verify_*` settings ask for it.
///
/// With TLS, a connection is classed after its handshake: a server (its certificate carries the DNS name
/// `server.<datacenter>.<domain>`, or with `verify_server_hostname` off any verified certificate, as Consul trusts it),
/// a client (a verified certificate without that name) or unauthenticated (plaintext, or no certificate).
/// Server-only requests (Raft, forwarded writes and renewals, read indexes) are answered with an error for anything
/// but a server. A server always dials other servers over TLS, presenting its certificate, since they refuse Raft otherwise.
#[derive(Clone)]
pub struct RpcTls {
    /// The rustls configurations, asked for per connection.
    pub configs: Arc<dyn TlsConfigs>,
    /// `verify_incoming`: a connection without a verified client certificate is closed (plaintext ones too).
    /// Off, plaintext is still accepted, as unauthenticated, so a cluster can move to TLS one agent at a time.
    pub verify_incoming: bool,
    /// `verify_outgoing`: `Remote` dials servers over TLS and verifies them.
    pub verify_outgoing: bool,
    /// `verify_server_hostname`: a server must carry `server.<datacenter>.<domain>`, both when dialled and when
    /// it sends server-only requests.
    pub verify_server_hostname: bool,
    /// The datacenter, for the server name.
    pub datacenter: String,
    /// The DNS domain (`consul`), for the server name; a trailing dot is ignored.
    pub domain: String,
}

impl RpcTls {
    /// `server.<datacenter>.<domain>`: the name a server's certificate carries.
    pub fn server_name(&self) -> String {
        format!("server.{}.{}", self.datacenter, self.domain.trim_end_matches('.'))
    }
}

impl std::fmt::Debug for RpcTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcTls")
            .field("verify_incoming", &self.verify_incoming)
            .field("verify_outgoing", &self.verify_outgoing)
            .field("verify_server_hostname", &self.verify_server_hostname)
            .field("server_name", &self.server_name())
            .finish_non_exhaustive()
    }
}

/// Hard limits on the RPC port: past each, the server refuses rather than queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcLimits {
    /// `limits.rpc_max_conns_per_client`: connections one source IP may hold; the next is closed at once.
    /// 0 means no limit. Consul's default, 100.
    pub max_conns_per_client: usize,
    /// Connections in all; the next is closed at once. 512.
    pub max_conns: usize,
    /// `limits.rpc_handshake_timeout`: how long a connection may take to send its first byte and finish the
    /// TLS handshake when TLS is configured. Consul's default, 5 s.
    pub handshake_timeout: Duration,
    /// How long a connection with no request in flight may send nothing before it is closed. 5 minutes: a client
    /// agent's parked blocking queries are in flight, and `Remote` drops its own idle connections after 2 minutes.
    pub idle_timeout: Duration,
    /// How long a read inside a started frame may wait for bytes before the connection is dropped. 15 s.
    pub read_timeout: Duration,
    /// Requests in flight on one connection; past it a request is answered with an error and the connection
    /// keeps serving. 16 384: a client agent multiplexes every blocking query of its HTTP clients and of its DNS
    /// cache (up to 4096 names) on one connection.
    pub max_in_flight_per_conn: usize,
}

impl Default for RpcLimits {
    fn default() -> RpcLimits {
        RpcLimits {
            max_conns_per_client: 100,
            max_conns: 512,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            read_timeout: crate::rpc::FRAME_STALL_TIMEOUT,
            max_in_flight_per_conn: 16_384,
        }
    }
}

/// What the RPC port refused, since the server started. Counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcCounters {
    /// Connections closed at once because their source IP held `max_conns_per_client`.
    pub refused_per_client: u64,
    /// Connections closed at once because `max_conns` were open.
    pub refused_over_max: u64,
    /// Connections closed during the handshake: a failed or timed-out TLS handshake, plaintext or no client
    /// certificate under `verify_incoming`.
    pub refused_handshake: u64,
    /// Connections closed for a frame over its type's size limit (or otherwise malformed), before its body was read.
    pub refused_frames: u64,
    /// Requests answered with an error because their connection had `max_in_flight_per_conn` in flight.
    pub refused_in_flight: u64,
    /// Server-only requests refused because the peer is not an authenticated server.
    pub refused_not_server: u64,
    /// Connections closed after `idle_timeout` with nothing in flight.
    pub closed_idle: u64,
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
    /// The applied state's `State::last_index` the answer was read at, on this server: two reads at one stamp read
    /// the same state. 0 when not known, as for a remote read (it is not sent: a stamp means nothing to another
    /// process).
    #[serde(skip)]
    pub state_index: u64,
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
    /// Why Raft stopped on this server (a log write or fsync failed: a full or failing disk); `None` while it runs.
    /// `state` is then `Shutdown`: the server serves no Raft and acknowledges no write until it is restarted.
    pub failure: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::raft_id;

    #[test]
    fn raft_ids_are_stable_nonzero_and_distinct() {
        let a = "0b3e4a36-8d3c-4b7e-9a59-9c1f0a6e2b11";
        let b = "7f0c2d6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
        assert_eq!(raft_id(a), raft_id(a));
        assert_ne!(raft_id(a), raft_id(b));
        assert_eq!(raft_id("00000000-0000-0000-0000-000000000000"), 1);
        assert_ne!(raft_id("not-a-uuid"), 0);
    }
}
