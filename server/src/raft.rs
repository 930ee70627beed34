//! Everything that names openraft: the type config, the log store, the state machine, the network
//! and the RPC service, behind `RaftNode`, whose methods speak only roster's own types.
//!
//! openraft 0.10 is an alpha pinned exactly; keeping it inside this module means a version bump
//! touches only `raft.rs` and `raft/`. After a bump, run the storage suite (`raft/log_store/tests.rs`).
//!
//! # Storage design
//! The durable truth is the **log** (`raft/log_store.rs`, a file of checksummed records, one fsync per append batch) plus the
//! newest **snapshot file** (`raft/snapshot_store.rs`). The **state machine is in memory**: a
//! `roster_kv::State` in `crate::replica::Replica`, which readers share behind a lock. On restart the
//! state is decoded from the newest snapshot and openraft re-applies the log entries after it (up to
//! the persisted committed index at once, the rest as soon as a leader confirms them).
//!
//! Log entries carry a format version (`raft/envelope.rs`), and a `raft/peers.json` is applied before
//! Raft starts (`raft/recovery.rs`). A log write that fails stops this node's Raft (openraft's
//! `Fatal::StorageError`), so nothing it could not persist is ever acknowledged.
//!
//! Why not also keep the state machine in database tables on disk? Applying to memory is cheap, reads are a
//! lock away with no deserialisation, and the catalog of a Consul-sized cluster fits in memory
//! comfortably. The cost is replay time at startup, bounded by the snapshot policy
//! (`SNAPSHOT_EVERY` entries). `-dev` (no data dir) keeps the log's entries in memory and
//! the snapshot in memory, so nothing touches the disk.
//!
//! # Writes and reads
//! A write is proposed on the leader with `client_write` and answered after it is committed (fsynced
//! by a quorum) and applied. A follower forwards a client write to the leader over the RPC
//! (`wire::Request::Forward`). Reads are served from the local replica after a barrier chosen by
//! `Consistency`: a leader lease (`ReadPolicy::LeaseRead`), a quorum round (`ReadPolicy::ReadIndex`),
//! or none (stale). A follower asks the leader for the read index over the RPC and waits until its
//! own replica has applied that far, so every server can answer every read.
//!
//! # Elections
//! Pre-vote keeps a node that was partitioned from disrupting a healthy leader when it returns;
//! the leader lease (check-quorum) stops a leader that lost its quorum from accepting writes.

mod chunks;
pub(crate) mod client;
mod envelope;
mod lease;
mod log_store;
#[cfg(test)]
pub(crate) use log_store::InjectedFailure;
mod network;
mod recovery;
mod service;
mod snapshot_store;
mod state_machine;
#[cfg(test)]
mod tls_tests;
pub(crate) mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, ChangeMembers, RaftMetrics};
use roster_kv::{Command, Outcome, State};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Consistency;
use crate::config::{ClusterStatus, RaftServer, RaftStats, ReadMeta};
use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::rpc::{Peer, RpcError};
use lease::{Lease, LeaseFacts};
use log_store::LogStore;
#[cfg(test)]
pub(crate) use network::StreamStats;
use network::{Network, PeerPool, StreamCounters};
pub(crate) use service::ClientHandler;
use service::RaftService;
use snapshot_store::SnapshotStore;
use state_machine::StateMachine;
use wire::{ReadPolicy, Request, Response, WireError};

openraft::declare_raft_types!(
    /// roster's Raft type configuration: `LogCommand`s in, `Outcome`s out, nodes addressed by RPC address.
    pub(crate) TypeConfig:
        D = LogCommand,
        R = Outcome,
        NodeId = u64,
        Node = BasicNode,
);

/// The Raft handle, parameterised by our state machine (openraft 0.10's `Raft<C, SM>`).
type Raft = openraft::Raft<TypeConfig, StateMachine>;
type LeaderId = openraft::impls::leader_id_adv::LeaderId<u64, u64>;
pub(crate) type CommittedLeaderId = <LeaderId as openraft::vote::RaftLeaderId>::Committed;
pub(crate) type LogId = openraft::LogId<CommittedLeaderId>;
pub(crate) type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<CommittedLeaderId, u64, BasicNode>;
type StoredMembership = openraft::StoredMembership<CommittedLeaderId, u64, BasicNode>;
type Snapshot = openraft::Snapshot<CommittedLeaderId, u64, BasicNode, Vec<u8>>;

/// Heartbeat period at [`TUNED_MULTIPLIER`]: followers hear from the leader about ten times a second.
const HEARTBEAT_MS: u64 = 100;
/// Election timeouts at [`TUNED_MULTIPLIER`]: a lost leader is replaced within about half a second.
const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
const ELECTION_TIMEOUT_MAX_MS: u64 = 600;
/// The `raft_multiplier` the timings above are for (Consul's default); others scale them linearly.
const TUNED_MULTIPLIER: u64 = 5;
/// Build a snapshot after this many entries since the last one; bounds restart replay time.
const SNAPSHOT_EVERY: u64 = 8192;
/// How far behind the log's end a learner may be and still count as caught up (openraft's
/// `replication_lag_threshold`, and the bar a learner clears before it is made a voter).
const REPLICATION_LAG: u64 = 2 * SNAPSHOT_EVERY;
/// How long `shutdown` waits for the log database to close.
const LOG_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a forwarded request or read-index query may take before the caller gives up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A `roster_kv::Command` as a Raft log payload.
///
/// Its serde form is a versioned envelope that also reads the unversioned entries of older logs
/// (`raft/envelope.rs`). It exists because openraft wants `Display` on log payloads, which `roster_kv`
/// has no reason to provide, and so that an entry from a newer roster decodes to something this
/// server can name and refuse, rather than failing the whole message it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogCommand {
    /// A command this server can apply.
    Command(Command),
    /// An entry written by a newer roster; refused on AppendEntries and by the log store, never applied.
    Unreadable(Unreadable),
}

/// An entry of a format this server cannot read, kept as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    /// The entry's format version.
    pub(crate) version: u32,
    /// Why it cannot be read, naming both versions.
    pub(crate) why: String,
    /// The command's bytes, as the newer server encoded them.
    body: Vec<u8>,
}

impl LogCommand {
    /// Why this server cannot read `entry`, if it cannot.
    pub(crate) fn unreadable(entry: &Entry) -> Option<&Unreadable> {
        match &entry.payload {
            openraft::EntryPayload::Normal(LogCommand::Unreadable(unreadable)) => Some(unreadable),
            _ => None,
        }
    }
}

impl fmt::Display for LogCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = match self {
            LogCommand::Command(cmd) => cmd,
            LogCommand::Unreadable(entry) => return write!(f, "Unreadable(format {})", entry.version),
        };
        // Values can be large and private: name the operation and its subject only.
        match cmd {
            Command::KvSet { key, .. } => write!(f, "KvSet({key})"),
            Command::KvCas { key, index, .. } => write!(f, "KvCas({key}, {index})"),
            Command::KvDelete { key } => write!(f, "KvDelete({key})"),
            Command::KvDeleteCas { key, index } => write!(f, "KvDeleteCas({key}, {index})"),
            Command::KvDeleteTree { prefix } => write!(f, "KvDeleteTree({prefix})"),
            Command::Register(reg) => write!(f, "Register({})", reg.node.node),
            Command::Deregister { node, .. } => write!(f, "Deregister({node})"),
            Command::SessionCreate(session) => write!(f, "SessionCreate({}, {})", session.id, session.node),
            Command::SessionDestroy { id, .. } => write!(f, "SessionDestroy({id})"),
            Command::KvLock { key, session, .. } => write!(f, "KvLock({key}, {session})"),
            Command::KvUnlock { key, session, .. } => write!(f, "KvUnlock({key}, {session})"),
            Command::Txn { ops, .. } => write!(f, "Txn({} ops)", ops.len()),
            // Secrets never reach a log line: tokens are named by their accessor ID only.
            Command::AclInit { .. } => write!(f, "AclInit"),
            Command::AclBootstrap { token, .. } => write!(f, "AclBootstrap({})", token.accessor_id),
            Command::AclTokenSet(token) => write!(f, "AclTokenSet({})", token.accessor_id),
            Command::AclTokenDelete { accessor_id } => write!(f, "AclTokenDelete({accessor_id})"),
            Command::AclPolicySet(policy) => write!(f, "AclPolicySet({})", policy.id),
            Command::AclPolicyDelete { id } => write!(f, "AclPolicyDelete({id})"),
            Command::AclRoleSet(role) => write!(f, "AclRoleSet({})", role.id),
            Command::AclRoleDelete { id } => write!(f, "AclRoleDelete({id})"),
            Command::AclAuthMethodSet(method) => write!(f, "AclAuthMethodSet({})", method.name),
            Command::AclAuthMethodDelete { name } => write!(f, "AclAuthMethodDelete({name})"),
            Command::AclBindingRuleSet(rule) => write!(f, "AclBindingRuleSet({})", rule.id),
            Command::AclBindingRuleDelete { id } => write!(f, "AclBindingRuleDelete({id})"),
            Command::AutopilotSet { cas, .. } => write!(f, "AutopilotSet(cas {cas:?})"),
            // A restore's bytes are the whole state, secrets included: name the restore and sizes only.
            Command::RestoreBegin { id, len, .. } => write!(f, "RestoreBegin({id}, {len} bytes)"),
            Command::RestoreChunk { id, offset, bytes } => {
                write!(f, "RestoreChunk({id}, {offset}+{})", bytes.len())
            }
            Command::RestoreCommit { id } => write!(f, "RestoreCommit({id})"),
            Command::CoordinateBatchUpdate { updates } => write!(f, "CoordinateBatchUpdate({} nodes)", updates.len()),
            // A query may carry a token: name the query only.
            Command::PreparedQuerySet { query, create } => {
                write!(f, "PreparedQuerySet({}, create {create})", query.id)
            }
            Command::PreparedQueryDelete { id } => write!(f, "PreparedQueryDelete({id})"),
            Command::ConfigEntrySet { entry, cas } => {
                write!(f, "ConfigEntrySet({}/{}, cas {cas:?})", entry.kind, entry.name)
            }
            Command::ConfigEntryDelete { kind, name, cas } => {
                write!(f, "ConfigEntryDelete({kind}/{name}, cas {cas:?})")
            }
            // A spec's environment may hold secrets: name the job only.
            Command::JobSubmit { spec, .. } => write!(f, "JobSubmit({} bytes)", spec.len()),
            Command::JobStop { name, purge } => write!(f, "JobStop({name}, purge {purge})"),
            Command::JobRevert { name, version, .. } => write!(f, "JobRevert({name}, {version})"),
            Command::JobPlanApply { plans, .. } => write!(f, "JobPlanApply({} jobs)", plans.len()),
            Command::AllocReport { node, reports, .. } => {
                write!(f, "AllocReport({node}, {} allocations)", reports.len())
            }
            Command::HostReport { node, drivers, .. } => write!(f, "HostReport({node}, {})", drivers.join(",")),
            Command::TombstoneReap { reap_index, .. } => write!(f, "TombstoneReap({reap_index})"),
        }
    }
}

/// The Raft bookkeeping kept with the applied state, and recorded in every snapshot.
#[derive(Default)]
pub(crate) struct AppliedMeta {
    /// The last log entry applied to the state.
    last_applied: Option<LogId>,
    /// The last membership entry applied.
    last_membership: StoredMembership,
}

/// What a snapshot archive records of the Raft bookkeeping applied with a state: the last applied index, its term,
/// and the servers of the applied membership.
pub(crate) fn archive_position(meta: &AppliedMeta) -> (u64, u64, Vec<RaftServer>) {
    use openraft::vote::RaftLeaderId;
    let (index, term) = meta.last_applied.as_ref().map_or((0, 0), |id| (id.index(), id.committed_leader_id().term()));
    let membership = meta.last_membership.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let servers = membership
        .nodes()
        .filter_map(|(id, node)| {
            Some(RaftServer { id: *id, addr: node.addr.parse().ok()?, voter: voters.contains(id) })
        })
        .collect();
    (index, term, servers)
}

/// What `RaftNode::start` needs.
pub(crate) struct NodeConfig<'a> {
    /// This server's Raft id.
    pub(crate) node_id: u64,
    /// Where the log and snapshots live; `None` keeps everything in memory.
    pub(crate) data_dir: Option<&'a Path>,
    /// Where peers reach this server.
    pub(crate) rpc_advertise: SocketAddr,
    /// How this server dials the others.
    pub(crate) dialer: Arc<crate::rpc::Dialer>,
    /// Consul's `performance.raft_multiplier`, which scales the timings.
    pub(crate) raft_multiplier: u8,
}

/// This server's Raft participant, as the rest of the crate sees it.
pub(crate) struct RaftNode {
    raft: Raft,
    node_id: u64,
    rpc_advertise: SocketAddr,
    /// Connections to other servers, shared with the Raft network for forwarding.
    peers: Arc<PeerPool>,
    /// When this follower last heard from a leader (updated by the RPC service).
    last_contact: Arc<Mutex<Instant>>,
    /// Resolves when the log database is closed, which `shutdown` waits for.
    log_closed: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// The snapshot store, closed at shutdown: openraft does not wait for a snapshot build it spawned.
    snapshots: Arc<SnapshotStore>,
    /// Snapshot chunks sent and received, AppendEntries split.
    stream: Arc<StreamCounters>,
    /// The leader's lease reads decided from the metrics, without a message to openraft's core (`raft/lease.rs`).
    lease: Lease,
    /// Makes the log store's next append fail, for tests of a full disk.
    #[cfg(test)]
    pub(crate) fail_next_append: Arc<Mutex<Option<InjectedFailure>>>,
}

impl RaftNode {
    /// Opens storage, restores the newest snapshot and starts Raft.
    ///
    /// Returns the node and the replica it applies to. Peers reach it once `serve` runs.
    pub(crate) async fn start(config: NodeConfig<'_>) -> Result<(RaftNode, Arc<Replica>)> {
        // Read before anything is opened: a bad peers.json must stop the start with the data dir untouched.
        let recovery = match config.data_dir {
            Some(dir) => recovery::Recovery::read(dir, config.node_id)?,
            None => None,
        };
        if let Some(dir) = config.data_dir {
            std::fs::create_dir_all(dir)?;
        }
        let (log_store, log_closed) = LogStore::open(config.data_dir)?;
        #[cfg(test)]
        let fail_next_append = log_store.fail_next_append.clone();
        if let Some(recovery) = recovery {
            recovery.apply(&log_store).await?;
        }
        let (snapshots, restored) = SnapshotStore::open(config.data_dir)?;
        let snapshots = Arc::new(snapshots);
        let replica = Arc::new(restore_replica(restored)?);
        let state_machine = StateMachine::new(replica.clone(), snapshots.clone());
        let peers = Arc::new(PeerPool::new(config.dialer));
        let stream = Arc::new(StreamCounters::default());
        let network = Network::new(config.node_id, peers.clone(), stream.clone());
        let raft_config = raft_config(config.raft_multiplier)?;
        // openraft's `leader_lease` is the election timeout's maximum.
        let lease = Lease::new(Duration::from_millis(raft_config.election_timeout_max));
        let raft = Raft::new(config.node_id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| Error::Fatal(e.to_string()))?;

        let last_contact = Arc::new(Mutex::new(Instant::now()));
        let node = RaftNode {
            raft,
            node_id: config.node_id,
            rpc_advertise: config.rpc_advertise,
            peers,
            last_contact,
            log_closed: tokio::sync::Mutex::new(Some(log_closed)),
            snapshots,
            stream,
            lease,
            #[cfg(test)]
            fail_next_append,
        };
        Ok((node, replica))
    }

    /// Serves the RPC on `listener` until `shutdown`, as a task on `tasks`: Raft messages go to
    /// openraft, client agents' requests to `clients`.
    ///
    /// Separate from `start` because `clients` is the server, which is built around this node.
    pub(crate) fn serve<C: ClientHandler>(
        &self,
        listener: tokio::net::TcpListener,
        clients: Arc<C>,
        settings: crate::rpc::Settings,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let counters = settings.counters.clone();
        let (raft, last_contact, stream) = (self.raft.clone(), self.last_contact.clone(), self.stream.clone());
        let service = Arc::new(RaftService::new(raft, last_contact, clients, counters, stream));
        tasks.spawn(async move { crate::rpc::serve(listener, service, settings, shutdown).await });
    }

    /// Forms a new cluster from `members` (id → RPC address). A no-op if this node already has a log.
    pub(crate) async fn initialize(&self, members: &[(u64, SocketAddr)]) -> Result<()> {
        if self.raft.is_initialized().await.map_err(fatal)? {
            return Ok(());
        }
        let nodes: BTreeMap<u64, BasicNode> = members.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            // Lost a race with a concurrent initialize or an incoming leader: already initialized.
            Err(RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(Error::Membership(e.to_string())),
        }
    }

    /// Proposes `cmd` here if leader, else forwards it to the leader. Returns the result and its log index.
    pub(crate) async fn write(&self, cmd: Command) -> Result<(Outcome, u64)> {
        match self.write_local(cmd.clone()).await {
            Err(Error::NotLeader { leader: Some(addr) }) if addr != self.rpc_advertise => {
                match self.call(addr, Request::Forward(cmd)).await? {
                    Response::Forward { result, index } => Ok((Outcome::Result(result), index)),
                    Response::ForwardTxn { outcome, index } => Ok((Outcome::Txn(outcome), index)),
                    other => Err(unexpected(addr, &other)),
                }
            }
            res => res,
        }
    }

    /// Proposes `cmd` on this node; `NotLeader` if it is not the leader.
    pub(crate) async fn write_local(&self, cmd: Command) -> Result<(Outcome, u64)> {
        let start = std::time::Instant::now();
        match self.raft.client_write(LogCommand::Command(cmd)).await {
            Ok(resp) => {
                crate::telemetry::raft_applied(start);
                Ok((resp.data, resp.log_id.index()))
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(not_leader(&f)),
            // The entry was appended and then overwritten by a new leader's log: it may still
            // commit elsewhere, so the outcome is unknown and the caller must not blindly retry.
            Err(RaftError::APIError(e @ ClientWriteError::LogEntryDiscarded(_))) => {
                Err(Error::Indeterminate(e.to_string()))
            }
            Err(RaftError::APIError(e)) => Err(Error::Rejected(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }

    /// Sends a session renewal to the leader at `addr`.
    pub(crate) async fn forward_renew(&self, addr: SocketAddr, id: &str) -> Result<Option<roster_kv::Session>> {
        match self.call(addr, Request::SessionRenew(id.to_owned())).await? {
            Response::SessionRenew(session) => Ok(session),
            other => Err(unexpected(addr, &other)),
        }
    }

    /// Waits until a read of the local replica satisfies `consistency`.
    pub(crate) async fn read_barrier(&self, consistency: Consistency, replica: &Replica) -> Result<()> {
        let policy = match consistency {
            Consistency::Stale => return Ok(()),
            Consistency::Default => ReadPolicy::Lease,
            Consistency::Consistent => ReadPolicy::Quorum,
        };
        let index = match self.read_index_local(policy).await {
            Err(Error::NotLeader { leader: Some(addr) }) if addr != self.rpc_advertise => {
                match self.call(addr, Request::ReadIndex(policy)).await? {
                    Response::ReadIndex(index) => index,
                    other => return Err(unexpected(addr, &other)),
                }
            }
            res => res?,
        };
        if replica.wait_applied(index).await { Ok(()) } else { Err(Error::Shutdown) }
    }

    /// `read_barrier` when it needs no waiting: true for a stale read, and for a default read this leader decides by
    /// its lease with the state already applied that far. False means `read_barrier` must run (it may still succeed).
    pub(crate) fn read_barrier_passed(&self, consistency: Consistency, replica: &Replica) -> bool {
        match consistency {
            Consistency::Stale => true,
            Consistency::Default => {
                self.lease.read_index(&self.lease_facts()).is_some_and(|index| replica.applied_at_least(index))
            }
            Consistency::Consistent => false,
        }
    }

    /// On the leader: confirms leadership by `policy` and returns the index reads must wait for.
    /// A lease read inside a lease the metrics show is decided here (`raft/lease.rs`); anything else asks openraft.
    pub(crate) async fn read_index_local(&self, policy: ReadPolicy) -> Result<u64> {
        if matches!(policy, ReadPolicy::Lease)
            && let Some(index) = self.lease.read_index(&self.lease_facts())
        {
            return Ok(index);
        }
        let term = self.with_metrics(|metrics| metrics.current_term);
        let index = read_index(&self.raft, policy).await?;
        // One leader per term: with the term unchanged across the call, the answer came from this leadership.
        if self.with_metrics(|metrics| metrics.current_term) == term {
            self.lease.record(term, index);
        }
        Ok(index)
    }

    /// The index a lease read would wait for if this node decided it now without openraft; `None` when it would ask.
    #[cfg(test)]
    pub(crate) fn lease_index(&self) -> Option<u64> {
        self.lease.read_index(&self.lease_facts())
    }

    /// What the lease decision needs from the metrics, in one look at them.
    fn lease_facts(&self) -> LeaseFacts {
        self.with_metrics(|metrics| {
            let mut voters = metrics.membership_config.voter_ids();
            let self_quorum = voters.next() == Some(self.node_id) && voters.next().is_none();
            LeaseFacts {
                term: metrics.current_term,
                leading: known_leader(metrics) == Some(self.node_id)
                    && metrics.state == openraft::ServerState::Leader
                    && metrics.vote.is_committed(),
                self_quorum,
                quorum_ack_age: metrics.last_quorum_acked.as_ref().map(|acked| openraft::Instant::elapsed(&**acked)),
                committed: metrics.local_committed.as_ref().map_or(0, |id| id.index()),
            }
        })
    }

    /// Adds (or moves) a server as a learner, and makes it a voter once the leader has replicated to it; returns
    /// whether it is a voter now. The caller asks again later (the leader's reconcile does every tick).
    /// Promotion waits for a replicated entry because openraft counts a learner as caught up while the log is
    /// shorter than `REPLICATION_LAG` even if it was never reached, and an unreachable voter (a
    /// `-server` whose certificate the others refuse) would silently eat into the quorum's fault tolerance.
    /// Consul's autopilot likewise promotes only a non-voter that is healthy.
    pub(crate) async fn add_voter(&self, node_id: u64, addr: SocketAddr) -> Result<bool> {
        self.add_nonvoter(node_id, addr).await?;
        let node = BasicNode::new(addr);
        if !self.with_metrics(|metrics| replicated_to(metrics, node_id)) {
            return Ok(false);
        }
        let change = ChangeMembers::AddVoters(BTreeMap::from([(node_id, node)]));
        self.raft.change_membership(change, false).await.map_err(membership_error)?;
        Ok(true)
    }

    /// Removes a server, voter or learner, from the cluster (and from replication).
    pub(crate) async fn remove_voter(&self, node_id: u64) -> Result<()> {
        let is_voter = self.with_metrics(|metrics| metrics.membership_config.voter_ids().any(|id| id == node_id));
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        };
        self.raft.change_membership(change, false).await.map_err(membership_error)?;
        Ok(())
    }

    /// On the leader: what autopilot computes health from; `None` on a follower.
    pub(crate) fn autopilot_facts(&self) -> Option<crate::autopilot::RaftFacts> {
        let servers = self.status().servers;
        self.with_metrics(|metrics| {
            if metrics.current_leader != Some(self.node_id) {
                return None;
            }
            let contact_ms = metrics
                .heartbeat
                .iter()
                .flatten()
                .filter_map(|(id, at)| {
                    let at = at.as_ref()?;
                    Some((*id, u64::try_from(openraft::Instant::elapsed(&**at).as_millis()).unwrap_or(u64::MAX)))
                })
                .collect();
            let matched = metrics
                .replication
                .iter()
                .flatten()
                .filter_map(|(id, log)| {
                    let log = log.as_ref()?;
                    Some((*id, (log.committed_leader_id().term, log.index())))
                })
                .collect();
            Some(crate::autopilot::RaftFacts {
                leader: self.node_id,
                term: metrics.current_term,
                last_index: metrics.last_log_index.unwrap_or(0),
                servers,
                contact_ms,
                matched,
            })
        })
    }

    /// Adds (or moves) a server as a non-voter; a no-op when it is already a member at `addr`.
    pub(crate) async fn add_nonvoter(&self, node_id: u64, addr: SocketAddr) -> Result<()> {
        let node = BasicNode::new(addr);
        let member_at = self.with_metrics(|metrics| {
            metrics.membership_config.membership().get_node(&node_id).map(|known| known.addr == node.addr)
        });
        if member_at != Some(true) {
            self.raft.add_learner(node_id, node, false).await.map_err(membership_error)?;
        }
        Ok(())
    }

    /// On the leader: the last log index each other server is known to hold (servers never reached are left out).
    pub(crate) fn replication_matched(&self) -> BTreeMap<u64, u64> {
        self.with_metrics(|metrics| {
            metrics
                .replication
                .iter()
                .flatten()
                .filter_map(|(id, matched)| Some((*id, matched.as_ref()?.index())))
                .collect()
        })
    }

    /// On the leader: hands leadership to the voter `to` and waits up to `wait` until another server leads.
    /// openraft sends `to` a TransferLeader message carrying the leader's log position; `to` campaigns at once once
    /// its log has caught up, and this leader steps down when it sees the higher term.
    pub(crate) async fn transfer_leader(&self, to: u64, wait: Duration) -> Result<()> {
        // The followers drop their leases for `to`, so this leader's lease no longer proves anything: shut the
        // metrics path before they can, and again after in case the term moved meanwhile.
        self.lease.forbid(self.with_metrics(|metrics| metrics.current_term));
        self.raft.trigger().transfer_leader(to).await.map_err(fatal)?;
        self.lease.forbid(self.with_metrics(|metrics| metrics.current_term));
        let me = self.node_id;
        let moved = |m: &RaftMetrics<TypeConfig>| m.current_leader.is_some_and(|leader| leader != me);
        match self.raft.wait(Some(wait)).metrics(moved, "leadership moved").await {
            Ok(_) => Ok(()),
            Err(openraft::metrics::WaitError::Timeout(..)) => Err(Error::Operator(format!(
                "leadership did not move to {to} within {wait:?}; this server still leads"
            ))),
            Err(_) => Err(Error::Shutdown),
        }
    }

    /// Sends an operator request to the leader at `addr`, on behalf of the caller holding `token`.
    pub(crate) async fn forward_operator(
        &self,
        addr: SocketAddr,
        token: &str,
        request: &crate::operator::OperatorRequest,
    ) -> Result<crate::operator::OperatorReply> {
        let request = Request::ClientOperator { token: token.to_owned(), request: request.clone() };
        match self.call(addr, request).await? {
            Response::ClientOperator(reply) => Ok(reply),
            other => Err(unexpected(addr, &other)),
        }
    }

    /// The RPC address of the leader this node currently knows of.
    pub(crate) fn leader_addr(&self) -> Option<SocketAddr> {
        self.with_metrics(|metrics| node_addr(metrics, known_leader(metrics)?))
    }

    /// The RPC addresses of the voters in the current membership.
    pub(crate) fn voter_addrs(&self) -> Vec<SocketAddr> {
        self.with_metrics(|metrics| {
            metrics.membership_config.voter_ids().filter_map(|id| node_addr(metrics, id)).collect()
        })
    }

    /// This node's view of the cluster: leader, membership, log and apply progress.
    pub(crate) fn status(&self) -> ClusterStatus {
        self.with_metrics(|metrics| {
            let membership = metrics.membership_config.membership();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            let servers = membership
                .nodes()
                .filter_map(|(id, node)| {
                    let addr = node.addr.parse().ok()?;
                    Some(RaftServer { id: *id, addr, voter: voters.contains(id) })
                })
                .collect();
            ClusterStatus {
                id: self.node_id,
                addr: self.rpc_advertise,
                leader: known_leader(metrics).and_then(|id| node_addr(metrics, id)),
                servers,
                last_log_index: metrics.last_log_index.unwrap_or(0),
                applied_index: metrics.last_applied.as_ref().map_or(0, |id| id.index()),
                // openraft's own test (`Raft::is_initialized`): a log, or a vote from a term past the
                // first, which only a member of a formed cluster can have caused.
                initialized: metrics.last_log_index.is_some() || metrics.current_term != 0,
            }
        })
    }

    /// This node's Raft progress as `Stats.raft` shows it.
    pub(crate) fn stats(&self) -> RaftStats {
        let last_contact_ms = self.last_contact_ms();
        self.with_metrics(|metrics| RaftStats {
            state: format!("{:?}", metrics.state),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            commit_index: metrics.local_committed.as_ref().map_or(0, |id| id.index()),
            applied_index: metrics.last_applied.as_ref().map_or(0, |id| id.index()),
            last_snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index()),
            num_peers: metrics.membership_config.membership().voter_ids().filter(|id| *id != self.node_id).count()
                as u64,
            leader: known_leader(metrics) == Some(self.node_id),
            last_contact_ms,
            failure: metrics.running_state.as_ref().err().map(ToString::to_string),
        })
    }

    /// The timings the running Raft was configured with.
    pub(crate) fn timing(&self) -> crate::RaftTiming {
        let config = self.raft.config();
        let ms = Duration::from_millis;
        crate::RaftTiming {
            heartbeat: ms(config.heartbeat_interval),
            election_timeout: ms(config.election_timeout_min)..=ms(config.election_timeout_max),
        }
    }

    /// Whether this node is the leader right now.
    pub(crate) fn is_leader(&self) -> bool {
        self.with_metrics(|metrics| known_leader(metrics) == Some(self.node_id))
    }

    /// Milliseconds since a leader was last heard from; 0 on the leader itself.
    pub(crate) fn last_contact_ms(&self) -> u64 {
        if self.is_leader() {
            return 0;
        }
        self.contact_age_ms()
    }

    /// The leader facts every read answers with (`X-Consul-KnownLeader`, `X-Consul-LastContact`), from one look at
    /// the metrics rather than one per fact: every read asks.
    pub(crate) fn read_meta(&self) -> ReadMeta {
        let (known_leader, leading) = self.with_metrics(|metrics| {
            let leader = known_leader(metrics);
            (leader.and_then(|id| node_addr(metrics, id)).is_some(), leader == Some(self.node_id))
        });
        ReadMeta { known_leader, last_contact_ms: if leading { 0 } else { self.contact_age_ms() }, state_index: 0 }
    }

    /// Milliseconds since this node last accepted a leader's AppendEntries.
    fn contact_age_ms(&self) -> u64 {
        let last = *self.last_contact.lock().unwrap_or_else(PoisonError::into_inner);
        u64::try_from(last.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits until some leader is known, up to `timeout`.
    pub(crate) async fn wait_for_leader(&self, timeout: Duration) -> Result<()> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| known_leader(m).is_some(), "a known leader")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => Error::NoLeader,
                _ => Error::Shutdown,
            })
    }

    /// Builds a snapshot now (and lets openraft purge the log it covers); returns its last index.
    pub(crate) async fn snapshot(&self) -> Result<u64> {
        let Some(target) = self.metrics().last_applied.map(|id| id.index()) else { return Ok(0) };
        let covers_target = |m: &RaftMetrics<TypeConfig>| m.snapshot.as_ref().is_some_and(|id| id.index() >= target);
        let deadline = Instant::now() + Duration::from_secs(30);
        // openraft ignores a trigger while a build is running (one its policy started, say), and that build may end
        // short of `target`: trigger again until a snapshot covers it.
        loop {
            self.raft.trigger().snapshot().await.map_err(fatal)?;
            let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
            match self.raft.wait(Some(wait)).metrics(covers_target, "snapshot built").await {
                Ok(metrics) => return Ok(metrics.snapshot.map_or(0, |id| id.index())),
                Err(openraft::metrics::WaitError::Timeout(..)) if Instant::now() < deadline => {}
                Err(e) => return Err(Error::Fatal(e.to_string())),
            }
        }
    }

    /// Purges the log up to `upto` (it must be covered by a snapshot) and waits until it is gone.
    #[cfg(test)]
    pub(crate) async fn purge_log(&self, upto: u64) -> Result<()> {
        self.raft.trigger().purge_log(upto).await.map_err(fatal)?;
        let purged = |m: &RaftMetrics<TypeConfig>| m.purged.as_ref().is_some_and(|id| id.index() >= upto);
        self.raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(purged, "log purged")
            .await
            .map_err(|e| Error::Fatal(e.to_string()))?;
        Ok(())
    }

    /// Snapshot chunks sent and received and AppendEntries split, since start.
    #[cfg(test)]
    pub(crate) fn stream_stats(&self) -> network::StreamStats {
        self.stream.stats()
    }

    /// Waits until this node has applied the log up to `index`.
    #[cfg(test)]
    pub(crate) async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "applied")
            .await
            .map_err(|e| Error::Fatal(e.to_string()))?;
        Ok(())
    }

    /// Stops the Raft core and waits until the log file is closed, so the data dir can be reopened.
    /// The RPC service must be stopped first (it holds a Raft handle too).
    pub(crate) async fn shutdown(&self) -> Result<()> {
        // A core that already stopped on an error (a failed log write) reports that error again here; it was
        // logged and shown in the stats when it happened, and shutting down is what is asked now.
        let stopped_on_error = self.with_metrics(|metrics| metrics.running_state.is_err());
        if let Err(e) = self.raft.shutdown().await
            && !stopped_on_error
        {
            return Err(Error::Fatal(e.to_string()));
        }
        // A build openraft spawned may still be saving: wait for it and refuse any later save, so a server started
        // again on this data dir never has a file of its snapshot removed by this one.
        self.snapshots.close().await;
        let Some(closed) = self.log_closed.lock().await.take() else { return Ok(()) };
        // openraft's state-machine worker drops the last log reader shortly after the core stops.
        if tokio::time::timeout(LOG_CLOSE_TIMEOUT, closed).await.is_err() {
            tracing::warn!("raft log still open {LOG_CLOSE_TIMEOUT:?} after shutdown");
        }
        Ok(())
    }

    fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// Reads the metrics in place: every read request asks who the leader is, and cloning the whole metrics (membership maps included) for one field was a measurable share of a DNS answer.
    fn with_metrics<T>(&self, f: impl FnOnce(&RaftMetrics<TypeConfig>) -> T) -> T {
        f(&self.raft.metrics().borrow_watched())
    }

    /// Sends one request to the server at `addr` and decodes its answer.
    async fn call(&self, addr: SocketAddr, request: Request) -> Result<Response> {
        let peer = self.peers.get(addr);
        call_peer(&peer, &request, FORWARD_TIMEOUT)
            .await
            .map_err(|e| match e {
                CallError::Rpc(RpcError::Timeout { timeout, .. }) => Error::Timeout(timeout),
                // The request never left: the server we took for leader is down. That is "no leader
                // reachable" (retried while an election runs, then Consul's "No cluster leader").
                CallError::Rpc(RpcError::Unreachable { .. }) => Error::NoLeader,
                other => Error::Rpc { addr, message: other.to_string() },
            })?
            .into_result(addr)
    }
}

/// The leader this node knows of, if its Raft still runs: once the core has stopped on an error, the metrics keep
/// the last leader it saw (itself, perhaps), which nobody must be sent to or told about.
fn known_leader(metrics: &RaftMetrics<TypeConfig>) -> Option<u64> {
    metrics.running_state.as_ref().ok()?;
    metrics.current_leader
}

/// On a leader: whether `node_id` has acknowledged a replicated entry and is within `REPLICATION_LAG` of the log's end.
fn replicated_to(metrics: &RaftMetrics<TypeConfig>, node_id: u64) -> bool {
    let Some(Some(matched)) = metrics.replication.as_ref().and_then(|repl| repl.get(&node_id)) else {
        return false;
    };
    metrics.last_log_index.unwrap_or(0).saturating_sub(matched.index()) <= REPLICATION_LAG
}

impl Response {
    /// Turns a `Response::Error` into the matching `Error`.
    fn into_result(self, from: SocketAddr) -> Result<Response> {
        match self {
            Response::Error(WireError::NotLeader { leader }) => {
                // The peer we thought was leader is not: report what it knows, never loop back to it.
                match leader.and_then(|a| a.parse().ok()).filter(|a| *a != from) {
                    Some(addr) => Err(Error::NotLeader { leader: Some(addr) }),
                    None => Err(Error::NoLeader),
                }
            }
            Response::Error(WireError::Rejected(why)) => Err(Error::Rejected(why)),
            Response::Error(WireError::Indeterminate(why)) => Err(Error::Indeterminate(why)),
            Response::Error(WireError::Operator(why)) => Err(Error::Operator(why)),
            Response::Error(WireError::PermissionDenied(why)) => Err(Error::PermissionDenied(why)),
            Response::Error(WireError::AclNotFound) => Err(Error::AclNotFound),
            Response::Error(WireError::AclRootDenied) => Err(Error::AclRootDenied),
            Response::Error(
                WireError::Fatal(message) | WireError::BadRequest(message) | WireError::Unavailable(message),
            ) => Err(Error::Rpc { addr: from, message }),
            other => Ok(other),
        }
    }
}

/// Why a call to a peer failed before a response was decoded.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("bad message: {0}")]
    Codec(#[from] postcard::Error),
}

/// Encodes `request`, calls `peer`, decodes the response.
async fn call_peer(peer: &Peer, request: &Request, timeout: Duration) -> Result<Response, CallError> {
    let body = postcard::to_allocvec(request)?;
    let response = peer.call(body, timeout).await?;
    Ok(postcard::from_bytes(&response)?)
}

/// Confirms leadership by `policy` and returns the log index a linearizable read must wait for.
async fn read_index(raft: &Raft, policy: ReadPolicy) -> Result<u64> {
    let policy = match policy {
        ReadPolicy::Lease => openraft::ReadPolicy::LeaseRead,
        ReadPolicy::Quorum => openraft::ReadPolicy::ReadIndex,
    };
    match raft.get_read_linearizer(policy).await {
        Ok(linearizer) => Ok(linearizer.read_log_id().index()),
        Err(RaftError::APIError(openraft::errors::LinearizableReadError::ForwardToLeader(f))) => Err(not_leader(&f)),
        Err(RaftError::APIError(openraft::errors::LinearizableReadError::QuorumNotEnough(_))) => Err(Error::NoLeader),
        Err(RaftError::Fatal(e)) => Err(fatal(e)),
    }
}

/// A timing tuned for [`TUNED_MULTIPLIER`] at `multiplier` (clamped to Consul's 1–10).
fn scaled(tuned_ms: u64, multiplier: u8) -> u64 {
    tuned_ms * u64::from(multiplier.clamp(1, 10)) / TUNED_MULTIPLIER
}

/// The openraft configuration: timings scaled by `raft_multiplier`, batching for throughput.
fn raft_config(raft_multiplier: u8) -> Result<openraft::Config> {
    let election_timeout_max = scaled(ELECTION_TIMEOUT_MAX_MS, raft_multiplier);
    let config = openraft::Config {
        cluster_name: "roster".to_owned(),
        heartbeat_interval: scaled(HEARTBEAT_MS, raft_multiplier),
        election_timeout_min: scaled(ELECTION_TIMEOUT_MIN_MS, raft_multiplier),
        election_timeout_max,
        // Entries per AppendEntries RPC: large enough that a busy leader ships many per round trip.
        max_payload_entries: 1024,
        // Entries per log append (one fsync): openraft merges queued writes up to this many.
        max_append_entries: Some(4096),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
        // Keep some log behind a snapshot so a briefly lagging follower catches up without one.
        max_in_snapshot_log_to_keep: 1024,
        replication_lag_threshold: REPLICATION_LAG,
        install_snapshot_timeout: 30_000,
        enable_pre_vote: Some(true),
        // Check-quorum's inactivity phase: a leader without quorum goes quiet so the reachable
        // followers can elect a new one. Must be at least lease + election_timeout_max.
        quorum_loss_probe_interval: Some(3 * election_timeout_max),
        ..Default::default()
    };
    config.validate().map_err(|e| Error::Fatal(format!("raft config: {e}")))
}

/// Builds the replica from the newest snapshot, or empty.
fn restore_replica(restored: Option<snapshot_store::StoredSnapshot>) -> Result<Replica> {
    let Some((meta, data)) = restored else {
        return Ok(Replica::new(State::default(), AppliedMeta::default()));
    };
    let state = State::decode_snapshot(&data)
        .map_err(|e| Error::Storage(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    tracing::info!(last_log_id = ?meta.last_log_id, "restored state from snapshot");
    let meta = AppliedMeta { last_applied: meta.last_log_id, last_membership: meta.last_membership };
    Ok(Replica::new(state, meta))
}

/// The RPC address of `node_id` in the current membership.
fn node_addr(metrics: &RaftMetrics<TypeConfig>, node_id: u64) -> Option<SocketAddr> {
    metrics.membership_config.get_node(&node_id).and_then(|node| node.addr.parse().ok())
}

fn not_leader(f: &ForwardToLeader<TypeConfig>) -> Error {
    match f.leader_node.as_ref().and_then(|node| node.addr.parse().ok()) {
        Some(addr) => Error::NotLeader { leader: Some(addr) },
        // A leader whose lease lapsed answers with no leader: nobody can serve right now.
        None if f.leader_id.is_none() => Error::NoLeader,
        None => Error::NotLeader { leader: None },
    }
}

fn fatal(e: openraft::errors::Fatal<TypeConfig>) -> Error {
    match e {
        openraft::errors::Fatal::Stopped => Error::Shutdown,
        other => Error::Fatal(other.to_string()),
    }
}

fn membership_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(&f),
        RaftError::APIError(other) => Error::Membership(other.to_string()),
        RaftError::Fatal(f) => fatal(f),
    }
}

fn unexpected(addr: SocketAddr, response: &Response) -> Error {
    Error::Rpc { addr, message: format!("unexpected response {response:?}") }
}

#[cfg(test)]
mod timing_tests {
    use super::*;

    #[test]
    fn every_multiplier_scales_the_tuned_timings_into_a_valid_config() {
        for multiplier in 1..=10u8 {
            let config = raft_config(multiplier).unwrap_or_else(|e| panic!("multiplier {multiplier}: {e}"));
            let m = u64::from(multiplier);
            assert_eq!(config.heartbeat_interval, 20 * m, "multiplier {multiplier}");
            assert_eq!((config.election_timeout_min, config.election_timeout_max), (60 * m, 120 * m));
        }
        // Consul's default is what the unscaled constants are tuned for.
        let default = raft_config(5).unwrap();
        assert_eq!(default.heartbeat_interval, HEARTBEAT_MS);
        assert_eq!(default.election_timeout_max, ELECTION_TIMEOUT_MAX_MS);
    }
}
