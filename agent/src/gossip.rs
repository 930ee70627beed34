//! Cluster membership by SWIM gossip (the Serf/memberlist layer of Consul), built on foca 2.0.
//!
//! [`Gossip::start`] binds one port for UDP (foca's probes and piggy-backed updates) and TCP (push/pull state
//! exchange), and returns a cheap handle; [`Gossip::members`] is what the rest of the agent reads.
//!
//! # Layout
//! - `actor`: the single task that owns foca, the UDP socket and every timer; handles send it commands.
//! - `pushpull`: the TCP full-state exchange, on join and periodically (anti-entropy).
//! - `runtime`: how foca's calls reach the socket and the timers; `view`: the member list handles read.
//! - `identity`: foca's identity type; `broadcast`: metadata, leave intents and user events; `wire`: every byte format.
//! - `health`: the failure-detector tuning and the Lifeguard local-health multiplier, with the reasoning behind them.
//!   `actor/buddy`: the prober tells a suspect directly, so a live one refutes within a round trip.
//!   `actor/suspicion`: Lifeguard's dynamic suspicion timeout, shortened as other members confirm a suspicion; the
//!   member that declares a failure sends it straight to the servers.
//! - `timers`: the actor's deadline queue.
//! - `keyring`: gossip encryption (AES-GCM sealing of every datagram and frame) and the keyring file;
//!   `actor/keyops`: keyring operations fanned out to every alive member.
//! - `fuzz`: a datagram and a push/pull frame from the network through every decoder, for the fuzz targets and property tests.
//!
//! # Design
//! **Identity.** A member is `{name, gossip addr, generation}`; foca's conflict key is the name, so one node is one
//! entry whatever its address, and the generation (start time in ms, +1 per automatic rejoin) decides which life wins:
//! a restarted agent replaces its previous identity, and one declared down rejoins at once through `renew`.
//!
//! **Metadata travels beside the identity, not inside it.** Foca puts two or three identities in every packet header
//! (source, destination, probe target) and one in every piggy-backed update. With metadata up to 512 bytes inside,
//! a `PingReq` header alone could exceed the 1400-byte datagram. So metadata is a custom broadcast keyed by
//! (name, generation), carried in full by every push/pull, and a member appears in [`Gossip::members`] only once its
//! metadata is known; a live member whose metadata has not arrived within 1 s is asked for it by push/pull.
//!
//! **Left vs failed.** Foca only knows "down". A graceful [`Gossip::leave`] first spreads a leave intent
//! (name, generation) as a custom broadcast, waits a few gossip rounds, then calls foca's `leave_cluster`. Every member
//! keeps the intents it has seen, and a down member covered by one shows as [`MemberStatus::Left`]; any other down
//! member is [`MemberStatus::Failed`]. The order in which intent and "down" arrive does not matter.
//! [`Gossip::force_leave`] spreads the same intent for a failed member, bounded by the refutation counter it failed
//! at, so a member that had refuted in the meantime and dies later still shows as failed.
//!
//! **Push/pull** runs on join, once more 1–3 s after joining (when many nodes join at once, gossip alone leaves the
//! odd one unaware of a later joiner), and every 30 s (slower beyond 32 members) with a random member. Both sides
//! refuse a datacenter mismatch and a node name held by another live member at another address. What a merge teaches
//! a member is gossiped on, as memberlist does, except on a join from nothing (the cluster knows it all already).
//! Down members the receiver never knew are not imported, so reaped members do not come back.
//! Every 10 s a push/pull is also tried with one random *failed* member (Serf's reconnect): SWIM never probes a down
//! member, so after a partition heals each side would otherwise hold the other as failed for good; the exchange tells
//! each side that it was declared down, both rejoin under a new generation, and the pool is whole again.
//!
//! **Reaping.** Down members stay in the view (failed or left) until the reconnect timeout (failed, 72 h by default) or
//! the tombstone timeout (left, 24 h) passes; a pruned force-leave forgets at once. The actor reaps, not foca.
//!
//! **Timers and Lifeguard**: see `health`. Measured on loopback (`gossip-bench`): a killed member is failed at every
//! other member after 1.8–2.4 s with 5 members, 3–3.8 s with 50; steady state costs each member about 4 datagrams
//! (240 bytes) per second each way, plus a push/pull of the full state every 30–60 s.
//!
//! **User events** ([`Gossip::fire`]) are custom broadcasts too, de-duplicated by event ID (the last 4096 seen), and
//! handed once each to [`Gossip::subscribe_events`]; filtering, ordering and keeping them is the agent's `events`.
//! Gossip sends each event a bounded number of times to random members, so now and then a member gets none of them;
//! as in Serf, every push/pull also carries the newest events, so such a member gets them at its next exchange. A
//! joining node takes the events in its join's answer as already seen: it sees only events fired after it joined,
//! which is what Consul asks of Serf (it joins with `ignoreOld`).
//!
//! **Encryption.** With a keyring (Consul's `encrypt`), every datagram and push/pull frame is sealed with AES-GCM
//! under the primary key and opened with any installed key; a message that fails authentication, or a plaintext one
//! while `verify_incoming` holds, is dropped, counted in [`GossipStats`] and logged once per peer, so a host without
//! the key can neither join nor inject anything. `verify_incoming`/`verify_outgoing` off give Consul's rolling
//! enable. Key operations ([`Gossip::keyring`]) travel sealed, as direct request/response datagrams to every alive
//! member, retried until a deadline (see `actor/keyops`).
//!
//! **Network coordinates** (`actor/coords`): a coordinate ping to one random member per probe period, answered with
//! the member's coordinate; the round trip moves this node's Vivaldi coordinate, which [`Gossip::coordinate`] reads.
//!
//! Not done: Serf queries. A name conflict is refused at join time only: if two pools that each admitted a node under one
//! name merge, the two keep declaring each other down (foca renews the loser), which is logged as a warning.
//!
//! # Invariants
//! - Only the actor task touches foca; handles and push/pull tasks go through bounded command channels.
//! - Nothing read from the network can panic: every length is bounded before use, decoding errors drop the input.
//! - Every datagram fits in 1400 bytes, envelope included.

mod actor;
mod broadcast;
mod error;
pub(crate) mod fuzz;
mod health;
mod identity;
mod keyring;
mod pushpull;
mod runtime;
#[cfg(test)]
mod tests;
mod timers;
mod view;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use actor::keyops::KeyringReport;
pub use error::{GossipError, JoinFailure};
pub use keyring::{Key, KeyError, KeyOp, Keyring, keyring_path};
pub use wire::{MAX_EVENT_BYTES, UserEvent};

use actor::{Actor, Command, Parts, Settings};
use identity::NodeId;
use wire::Reply;

/// The gossip port used when a join address has none (Consul's Serf LAN port).
pub const DEFAULT_PORT: u16 = 8301;
/// The most bytes a node's encoded metadata may take (Consul's limit too), so it fits in one datagram.
pub const MAX_META_BYTES: usize = 512;
/// The longest node name, in bytes; names ride in every packet header.
pub const MAX_NAME_BYTES: usize = 128;
/// Commands queued for the actor before callers wait.
const COMMAND_QUEUE: usize = 256;
/// User events queued for a slow subscriber before it starts missing some (it is told how many).
const EVENT_QUEUE: usize = 1024;
/// Rounds of spreading the leave intent before declaring ourselves down, and the pause between them.
const LEAVE_ROUNDS: u32 = 4;
const LEAVE_ROUND_PAUSE: Duration = Duration::from_millis(150);
/// How many port numbers a gossip port of 0 tries before giving up on one free for both TCP and UDP.
const BIND_ATTEMPTS: usize = 64;

/// How to start the gossip layer.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// This node's name, unique in the cluster.
    pub node_name: String,
    /// Where to bind UDP and TCP (the same port); port 0 picks a free one.
    pub bind: SocketAddr,
    /// The IP other members reach us at; `None` uses the bind IP, which must then not be unspecified.
    pub advertise: Option<IpAddr>,
    /// What other members learn about this node.
    pub meta: MemberMeta,
    /// The failure-detector tuning.
    pub profile: Profile,
    /// How long a failed member stays listed (as failed) before it is forgotten; Consul's `reconnect_timeout`.
    /// Longer keeps a crashed node visible (and its catalog entry critical) through longer outages.
    pub reconnect_timeout: Duration,
    /// How long a member that left stays listed (as left) before it is forgotten; Consul's `tombstone_timeout`.
    pub tombstone_timeout: Duration,
    /// Gossip encryption; `None` gossips in plaintext and drops sealed messages.
    pub encryption: Option<Encryption>,
}

/// Gossip encryption settings.
#[derive(Debug)]
pub struct Encryption {
    /// The keys, primary first, and where they are persisted.
    pub keyring: Keyring,
    /// Drop plaintext messages (Consul's `encrypt_verify_incoming`); off only while enabling encryption on a
    /// running cluster.
    pub verify_incoming: bool,
    /// Seal outgoing messages (Consul's `encrypt_verify_outgoing`); off only while enabling encryption.
    pub verify_outgoing: bool,
}

impl Clone for Encryption {
    fn clone(&self) -> Self {
        Encryption {
            keyring: self.keyring.clone(),
            verify_incoming: self.verify_incoming,
            verify_outgoing: self.verify_outgoing,
        }
    }
}

impl GossipConfig {
    /// A configuration with the default profile and timeouts.
    pub fn new(node_name: impl Into<String>, bind: SocketAddr, meta: MemberMeta) -> GossipConfig {
        GossipConfig {
            node_name: node_name.into(),
            bind,
            advertise: None,
            meta,
            profile: Profile::default(),
            reconnect_timeout: Duration::from_secs(72 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            encryption: None,
        }
    }
}

/// Failure-detector tuning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// A LAN: 500 ms probes, 200 ms probe timeout, suspicion 1 s up to 10 members (see the `health` module).
    #[default]
    Lan,
}

/// What a node tells the cluster about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// The node's datacenter; members of another datacenter are refused.
    pub datacenter: String,
    /// Consul's node ID (a UUID): the catalog node's `ID` and the `id` tag of `consul members -detailed`.
    pub node_id: String,
    /// Server or client agent.
    pub role: Role,
    /// Servers: where their Raft/RPC listener is.
    pub rpc_addr: Option<SocketAddr>,
    /// Servers: their Raft node id.
    pub raft_id: Option<u64>,
    /// Servers: their `-bootstrap-expect`.
    pub bootstrap_expect: Option<u32>,
    /// The agent's version, e.g. "0.1.0".
    pub build: String,
    /// The agent's protocol version.
    pub protocol: u8,
    /// The agent's HTTP port.
    pub http_port: Option<u16>,
    /// User tags (`node_meta`). The whole encoded metadata is limited to [`MAX_META_BYTES`].
    pub tags: BTreeMap<String, String>,
}

/// What kind of agent a member runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A Raft server.
    Server,
    /// A client agent.
    #[default]
    Client,
}

/// A member's status as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Answering probes.
    Alive,
    /// Missed a probe and may be declared failed unless it refutes; Consul shows it as alive.
    Suspect,
    /// Declared down without having announced a leave.
    Failed,
    /// Left gracefully, or was force-left.
    Left,
}

impl MemberStatus {
    /// Serf's status code, as Consul's API reports it: 1 alive, 3 left, 4 failed (0 none and 2 leaving are unused).
    pub fn serf_status(self) -> u8 {
        match self {
            MemberStatus::Alive | MemberStatus::Suspect => 1,
            MemberStatus::Left => 3,
            MemberStatus::Failed => 4,
        }
    }

    /// Alive or suspect: still taking part in the cluster.
    pub fn is_active(self) -> bool {
        matches!(self, MemberStatus::Alive | MemberStatus::Suspect)
    }
}

/// Consul's words: "alive", "failed", "left" (a suspect member shows as alive).
impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberStatus::Alive | MemberStatus::Suspect => "alive",
            MemberStatus::Failed => "failed",
            MemberStatus::Left => "left",
        })
    }
}

/// One member of the cluster, this node included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node name.
    pub name: String,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// What it told the cluster about itself.
    pub meta: MemberMeta,
    /// Its status.
    pub status: MemberStatus,
    /// A version of the member that only grows: its identity generation (start time in ms, +1 per automatic rejoin)
    /// in the high bits, its refutation counter in the low 16.
    pub incarnation: u64,
}

/// Traffic counters of one gossip instance, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// UDP bytes sent, envelope included.
    pub udp_sent_bytes: u64,
    /// UDP datagrams sent.
    pub udp_sent_packets: u64,
    /// UDP datagrams that could not be sent (full socket buffer, unreachable network).
    pub udp_send_failures: u64,
    /// UDP bytes received, garbage included.
    pub udp_received_bytes: u64,
    /// UDP datagrams received.
    pub udp_received_packets: u64,
    /// TCP bytes sent in push/pull frames.
    pub tcp_sent_bytes: u64,
    /// Push/pull frames sent.
    pub tcp_sent_packets: u64,
    /// TCP bytes received in push/pull frames.
    pub tcp_received_bytes: u64,
    /// Push/pull frames received.
    pub tcp_received_packets: u64,
    /// The current local-health multiplier: 1 is healthy, up to 8 (probes and suspicion are stretched by it).
    pub local_health: u32,
    /// UDP datagrams dropped unopened: a failed authentication (wrong key, corrupted, forged), a sealed datagram
    /// without encryption, or a plaintext one while `verify_incoming` holds.
    pub udp_rejected_packets: u64,
    /// Push/pull frames refused for the same reasons (each ends its connection).
    pub tcp_rejected_frames: u64,
    /// Members the failure detector counts as active, this node included (some may not be listed by
    /// [`Gossip::members`] yet, while their metadata is on its way).
    pub active_members: u32,
}

/// A handle to a running gossip instance; clones share it, and dropping the last one stops it.
#[derive(Clone)]
pub struct Gossip {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    node_name: String,
    datacenter: String,
    tasks: TaskTracker,
    /// Cancelled when gossip stops.
    stop: CancellationToken,
    /// Stops every task when the last handle goes away.
    _stop_on_drop: DropGuard,
}

/// What the actor publishes for handles to read without a round trip.
pub(crate) struct Shared {
    members: RwLock<Arc<Vec<Member>>>,
    changes: watch::Sender<u64>,
    counters: Arc<Counters>,
    local_health: AtomicU32,
    /// The cluster size foca is tuned for: its active members plus this node.
    active_members: AtomicU32,
    /// Set once this node has left gracefully.
    left: AtomicBool,
    /// User events delivered to this node (fired here or received by gossip), each once.
    events: tokio::sync::broadcast::Sender<UserEvent>,
    /// The keyring and how strictly it is applied.
    crypto: keyring::Crypto,
    /// This node's network coordinate, as the actor last computed it.
    coordinate: RwLock<roster_kv::Coordinate>,
}

impl Shared {
    fn publish(&self, members: Vec<Member>) {
        *self.members.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(members);
        self.changes.send_modify(|version| *version += 1);
    }

    fn set_tuning(&self, active_members: u32, multiplier: u32) {
        self.active_members.store(active_members, Ordering::Relaxed);
        self.local_health.store(multiplier, Ordering::Relaxed);
    }

    fn set_left(&self) {
        self.left.store(true, Ordering::Relaxed);
    }

    fn set_coordinate(&self, coordinate: roster_kv::Coordinate) {
        *self.coordinate.write().unwrap_or_else(PoisonError::into_inner) = coordinate;
    }
}

/// Traffic counters, bumped by the actor and the push/pull tasks.
#[derive(Default)]
pub(crate) struct Counters {
    udp_sent_bytes: AtomicU64,
    udp_sent_packets: AtomicU64,
    udp_send_failures: AtomicU64,
    udp_received_bytes: AtomicU64,
    udp_received_packets: AtomicU64,
    tcp_sent_bytes: AtomicU64,
    tcp_sent_packets: AtomicU64,
    tcp_received_bytes: AtomicU64,
    tcp_received_packets: AtomicU64,
    udp_rejected: AtomicU64,
    tcp_rejected: AtomicU64,
}

impl Counters {
    fn udp_sent(&self, bytes: usize) {
        metrics::counter!("consul.memberlist.udp.sent").increment(bytes as u64);
        self.udp_sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.udp_sent_packets.fetch_add(1, Ordering::Relaxed);
    }

    fn udp_send_failed(&self) {
        self.udp_send_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn udp_received(&self, bytes: usize) {
        metrics::counter!("consul.memberlist.udp.received").increment(bytes as u64);
        self.udp_received_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.udp_received_packets.fetch_add(1, Ordering::Relaxed);
    }

    fn tcp_sent(&self, bytes: usize) {
        metrics::counter!("consul.memberlist.tcp.sent").increment(bytes as u64);
        self.tcp_sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.tcp_sent_packets.fetch_add(1, Ordering::Relaxed);
    }

    fn tcp_received(&self, bytes: usize) {
        metrics::counter!("consul.memberlist.tcp.received").increment(bytes as u64);
        self.tcp_received_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.tcp_received_packets.fetch_add(1, Ordering::Relaxed);
    }

    fn udp_rejected(&self) {
        self.udp_rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn tcp_rejected(&self) {
        self.tcp_rejected.fetch_add(1, Ordering::Relaxed);
    }
}

impl Gossip {
    /// Binds the gossip port and starts gossiping; the node is alone until [`Gossip::join`].
    ///
    /// Cancelling `shutdown` stops every task and closes the sockets without announcing a leave.
    pub async fn start(config: GossipConfig, shutdown: CancellationToken) -> Result<Gossip, GossipError> {
        let GossipConfig {
            node_name,
            bind,
            advertise,
            meta,
            profile,
            reconnect_timeout,
            tombstone_timeout,
            encryption,
        } = config;
        match profile {
            Profile::Lan => {}
        }
        validate_name(&node_name)?;
        let meta_size = postcard::to_stdvec(&meta).map_or(usize::MAX, |bytes| bytes.len());
        if meta_size > MAX_META_BYTES {
            return Err(GossipError::MetaTooLarge { size: meta_size, limit: MAX_META_BYTES });
        }
        let advertise = advertise.unwrap_or(bind.ip());
        if advertise.is_unspecified() {
            return Err(GossipError::NoAdvertiseAddr { ip: advertise });
        }
        let (udp, tcp) = bind_port(bind).await?;
        let port =
            tcp.local_addr().map_err(|error| GossipError::Bind { addr: bind, reason: error.to_string() })?.port();
        let local_addr = SocketAddr::new(advertise, port);
        let identity = NodeId { name: node_name.as_str().into(), addr: local_addr, generation: generation_now() };

        let stop = shutdown.child_token();
        let tasks = TaskTracker::new();
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            members: RwLock::new(Arc::new(Vec::new())),
            changes: watch::Sender::new(0),
            counters: counters.clone(),
            local_health: AtomicU32::new(1),
            active_members: AtomicU32::new(1),
            left: AtomicBool::new(false),
            events: tokio::sync::broadcast::Sender::new(EVENT_QUEUE),
            crypto: keyring::Crypto::new(encryption),
            coordinate: RwLock::new(roster_kv::Coordinate::new(&roster_coordinate::Config::default())),
        });
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let datacenter = meta.datacenter.clone();
        let settings =
            Arc::new(Settings { datacenter: datacenter.clone(), meta, reconnect_timeout, tombstone_timeout });
        let actor = Actor::new(Parts {
            identity,
            settings,
            shared: shared.clone(),
            socket: Arc::new(udp),
            commands: commands_tx.clone(),
            tasks: tasks.clone(),
            shutdown: stop.clone(),
        });
        let span = tracing::info_span!("gossip", node = %node_name);
        tasks.spawn(actor.run(commands_rx).instrument(span.clone()));
        tasks.spawn(
            pushpull::serve(tcp, commands_tx.clone(), shared.clone(), tasks.clone(), stop.clone()).instrument(span),
        );
        tasks.close();
        tracing::info!(node = %node_name, addr = %local_addr, "gossip: listening on {local_addr} (UDP and TCP)");

        let inner = Inner {
            shared,
            commands: commands_tx,
            local_addr,
            node_name,
            datacenter,
            tasks,
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
        };
        Ok(Gossip { inner: Arc::new(inner) })
    }

    /// Delivers `event` here and spreads it to every member by gossip.
    pub async fn fire(&self, event: UserEvent) -> Result<(), GossipError> {
        self.inner.commands.send(actor::Command::Fire { event }).await.map_err(|_| GossipError::Shutdown)
    }

    /// User events as this node receives them (its own fires included), each once.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<UserEvent> {
        self.inner.shared.events.subscribe()
    }

    /// The gossip address other members use: the advertised IP and the bound port.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.inner.node_name
    }

    /// This node's network coordinate (at the origin with the maximum error until a round trip was measured).
    pub fn coordinate(&self) -> roster_kv::Coordinate {
        self.inner.shared.coordinate.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every member, this node included, sorted by name; failed and left members stay until reaped.
    pub fn members(&self) -> Vec<Member> {
        self.inner.shared.members.read().unwrap_or_else(PoisonError::into_inner).as_ref().clone()
    }

    /// A counter bumped on every change of [`Gossip::members`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.shared.changes.subscribe()
    }

    /// Traffic counters and local health.
    pub fn stats(&self) -> GossipStats {
        let counters = &self.inner.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        GossipStats {
            udp_sent_bytes: load(&counters.udp_sent_bytes),
            udp_sent_packets: load(&counters.udp_sent_packets),
            udp_send_failures: load(&counters.udp_send_failures),
            udp_received_bytes: load(&counters.udp_received_bytes),
            udp_received_packets: load(&counters.udp_received_packets),
            tcp_sent_bytes: load(&counters.tcp_sent_bytes),
            tcp_sent_packets: load(&counters.tcp_sent_packets),
            tcp_received_bytes: load(&counters.tcp_received_bytes),
            tcp_received_packets: load(&counters.tcp_received_packets),
            udp_rejected_packets: load(&counters.udp_rejected),
            tcp_rejected_frames: load(&counters.tcp_rejected),
            local_health: self.inner.shared.local_health.load(Ordering::Relaxed),
            active_members: self.inner.shared.active_members.load(Ordering::Relaxed),
        }
    }

    /// Joins the cluster of each address ("host" or "host:port", port 8301 by default) by a push/pull with it.
    ///
    /// Returns how many addresses worked if at least one did; otherwise an error naming every address and why.
    pub async fn join(&self, addrs: &[String]) -> Result<usize, GossipError> {
        if addrs.is_empty() {
            return Err(GossipError::NoAddresses);
        }
        if self.inner.shared.left.load(Ordering::Relaxed) {
            return Err(GossipError::Left);
        }
        let attempts = futures_util::future::join_all(addrs.iter().map(|addr| self.join_one(addr))).await;
        let mut n_joined = 0;
        let mut failures = Vec::new();
        for attempt in attempts {
            match attempt {
                Ok(()) => n_joined += 1,
                Err(failure) => failures.push(failure),
            }
        }
        for failure in &failures {
            tracing::warn!(addr = %failure.addr, "gossip: failed to join {}: {}", failure.addr, failure.error);
        }
        if n_joined == 0 { Err(GossipError::JoinFailed(failures)) } else { Ok(n_joined) }
    }

    /// Leaves the cluster gracefully: others will list this node as left, not failed.
    ///
    /// Spreads a leave intent for a few gossip rounds (about 600 ms), then declares this node down. Afterwards the
    /// node answers no more probes and cannot join again; shut it down.
    pub async fn leave(&self) -> Result<(), GossipError> {
        let n_peers = self.call(|reply| Command::AnnounceLeave { reply }).await?;
        if n_peers > 0 {
            for _ in 0..LEAVE_ROUNDS {
                tokio::time::sleep(LEAVE_ROUND_PAUSE).await;
                self.call(|reply| Command::Spread { reply }).await?;
            }
        }
        self.call(|reply| Command::LeaveCluster { reply }).await
    }

    /// Turns a failed member into a left one on every member; with `prune`, forgets it at once instead of keeping
    /// it until the tombstone timeout. A live member is left alone, as in Consul (it would refute).
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<(), GossipError> {
        self.call(|reply| Command::ForceLeave { node: node.to_owned(), prune, reply }).await?
    }

    /// Runs a keyring operation on every alive member, this one included, and reports each member's answer.
    ///
    /// Fails as a whole only when this agent cannot start it (no encryption, shut down); members that refuse or do
    /// not answer within a few seconds are reported in [`KeyringReport::responses`].
    pub async fn keyring(&self, op: KeyOp) -> Result<KeyringReport, GossipError> {
        if !self.inner.shared.crypto.enabled() {
            return Err(GossipError::EncryptionDisabled);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        self.inner.commands.send(Command::KeyOp { op, reply: reply_tx }).await.map_err(|_| GossipError::Shutdown)?;
        reply_rx.await.map_err(|_| GossipError::Shutdown)
    }

    /// Probes the members at each address `hints` names at once, rather than when the failure detector's
    /// round-robin gets to them (see `actor/hint`): a server passes the addresses whose RPC connections their peer
    /// closed. Runs until gossip stops or `hints` closes; hints wait for room in the actor's queue, and those the
    /// channel dropped while they waited are skipped.
    pub fn probe_on_hints(&self, mut hints: tokio::sync::broadcast::Receiver<IpAddr>) {
        let (commands, stop) = (self.inner.commands.clone(), self.inner.stop.clone());
        self.inner.tasks.spawn(async move {
            loop {
                let hint = tokio::select! {
                    () = stop.cancelled() => break,
                    hint = hints.recv() => hint,
                };
                match hint {
                    Ok(ip) => {
                        if commands.send(Command::Hint { ip }).await.is_err() {
                            break;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    /// This agent's own keys, primary first; `None` without encryption.
    pub fn local_keys(&self) -> Option<Vec<Key>> {
        self.inner.shared.crypto.keys()
    }

    /// Waits until every task has stopped (after `shutdown` was cancelled) and the sockets are closed.
    pub async fn stopped(&self) {
        self.inner.tasks.wait().await;
    }

    async fn join_one(&self, addr: &str) -> Result<(), JoinFailure> {
        let targets = resolve(addr).await.map_err(|error| JoinFailure { addr: addr.to_owned(), error })?;
        let mut failure = None;
        for target in targets {
            match self.join_target(target).await {
                Ok(()) => {
                    tracing::info!(%target, "gossip: joined the cluster through {target}");
                    return Ok(());
                }
                Err(error) => failure = Some(JoinFailure { addr: target.to_string(), error }),
            }
        }
        Err(failure.unwrap_or_else(|| JoinFailure {
            addr: addr.to_owned(),
            error: GossipError::Resolve { addr: addr.to_owned(), reason: "no address found".to_owned() },
        }))
    }

    async fn join_target(&self, target: SocketAddr) -> Result<(), GossipError> {
        let request = self.call(|reply| Command::Snapshot { join: true, reply }).await??;
        match pushpull::exchange(target, &request, &self.inner.shared).await? {
            Reply::Refused(refusal) => Err(pushpull::refusal_error(refusal, &self.inner.datacenter, target)),
            Reply::Accepted(remote) => {
                self.call(|reply| Command::Merge { from: target, remote, reply: Some(reply) }).await?
            }
        }
    }

    /// Sends a command to the actor and waits for its answer.
    async fn call<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, GossipError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.inner.commands.send(command(reply_tx)).await.map_err(|_| GossipError::Shutdown)?;
        reply_rx.await.map_err(|_| GossipError::Shutdown)
    }
}

fn validate_name(name: &str) -> Result<(), GossipError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_BYTES {
        "it is longer than 128 bytes"
    } else if name.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(GossipError::InvalidName { name: name.to_owned(), reason })
}

/// A generation for a new life of this node: the wall clock in ms, so a restart beats the previous life.
fn generation_now() -> u64 {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis());
    u64::try_from(millis).unwrap_or(u64::MAX >> 16).max(1)
}

/// Binds the gossip port for TCP and UDP.
async fn bind_port(bind: SocketAddr) -> Result<(UdpSocket, TcpListener), GossipError> {
    bind_port_from(bind, std::iter::repeat(0)).await
}

/// Binds TCP, then UDP on the port TCP got. A fixed port either binds or fails. For port 0, each attempt binds TCP on
/// the next of `candidates` (0: the OS chooses) and UDP on the same number, and an address in use on either side
/// releases both and tries the next, up to [`BIND_ATTEMPTS`]. TCP goes first because far more TCP ports are in use
/// than UDP ones (every outgoing connection holds one), so a port free for TCP is nearly always free for UDP; the
/// other way round, five attempts once all found their UDP port's number taken for TCP under a test suite's load.
/// `candidates` is `repeat(0)` outside tests, which inject a first number they know to be taken.
async fn bind_port_from(
    bind: SocketAddr,
    candidates: impl IntoIterator<Item = u16>,
) -> Result<(UdpSocket, TcpListener), GossipError> {
    let bind_error = |error: std::io::Error| GossipError::Bind { addr: bind, reason: error.to_string() };
    if bind.port() != 0 {
        let tcp = TcpListener::bind(bind).await.map_err(bind_error)?;
        let udp = UdpSocket::bind(bind).await.map_err(bind_error)?;
        return Ok((udp, tcp));
    }
    let mut last_error = None;
    for candidate in candidates.into_iter().take(BIND_ATTEMPTS) {
        let tcp = match TcpListener::bind(SocketAddr::new(bind.ip(), candidate)).await {
            Ok(tcp) => tcp,
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                last_error = Some(error);
                continue;
            }
            Err(error) => return Err(bind_error(error)),
        };
        let port = tcp.local_addr().map_err(bind_error)?.port();
        match UdpSocket::bind(SocketAddr::new(bind.ip(), port)).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(error),
            Err(error) => return Err(bind_error(error)),
        }
    }
    Err(bind_error(last_error.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse))))
}

/// Resolves a join address: `host`, `host:port`, `ip`, `ip:port`, `[v6]` or `[v6]:port`.
async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, GossipError> {
    let resolve_error = |reason: String| GossipError::Resolve { addr: addr.to_owned(), reason };
    let (host, port) = split_host_port(addr).map_err(resolve_error)?;
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    match tokio::time::timeout(pushpull::EXCHANGE_TIMEOUT, lookup).await {
        Ok(Ok(found)) => Ok(found.collect()),
        Ok(Err(error)) => Err(resolve_error(error.to_string())),
        Err(_) => Err(resolve_error("DNS lookup timed out".to_owned())),
    }
}

/// Splits a join address into host and port, defaulting the port to [`DEFAULT_PORT`].
fn split_host_port(addr: &str) -> Result<(String, u16), String> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err("empty address".to_owned());
    }
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return Ok((socket.ip().to_string(), socket.port()));
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok((ip.to_string(), DEFAULT_PORT));
    }
    if let Some(ip) = addr.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        let ip: IpAddr = ip.parse().map_err(|_| format!("invalid IPv6 address {ip:?}"))?;
        return Ok((ip.to_string(), DEFAULT_PORT));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
            Ok((host.to_owned(), port))
        }
        None => Ok((addr.to_owned(), DEFAULT_PORT)),
    }
}
