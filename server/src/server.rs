//! `Server`: the crate's entry point. Starts the Raft node and answers writes, reads and blocking queries,
//! for its own agent in process and for client agents over the RPC (`raft::ClientHandler`).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use roster_kv::{
    AclToken, Answer, AutopilotConfig, Command, CommandResult, Outcome, Query, Session, State, TxnOp, TxnOutcome,
    WatchKey,
};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::access::{Access, AclSettings, Resolver, authorize_command, authorize_query, authorize_txn, filter_answer};
use crate::autopilot::{self, AutopilotHealth, GossipServer};
use crate::config::{ClusterStatus, Config, Consistency, ReadMeta};
use crate::error::{Error, Result};
use crate::login::{Login, mint};
use crate::operator::{self, OperatorReply, OperatorRequest, RecentlyRemoved};
use crate::raft::{ClientHandler, NodeConfig, RaftNode};
use crate::replica::Replica;
use crate::sessions::{RECONCILE_EVERY, SessionTimers, ttl_of};
use crate::shared_eval::SharedEvals;

/// How long a write or read waits for a leader (an election, a forward retry) before `NoLeader`.
/// Consul holds RPCs for up to 7 s; elections here take well under one.
const LEADER_HOLD: Duration = Duration::from_secs(5);
/// How long an operator's transfer-leader waits for another server to lead (an election takes well under one).
const TRANSFER_WAIT: Duration = Duration::from_secs(5);
/// How far behind the leader's log a voter may be and still be handed leadership on a graceful leave.
const LEAVE_LAG: u64 = 1024;
/// How many closed-connection hints (`Server::closed_connections`) wait for a slow receiver before the oldest go.
const CLOSED_HINTS: usize = 256;

/// A running Raft server. Clones share one node; dropping the last clone stops its RPC service.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    /// Cancels the background tasks when the last `Server` clone is dropped. Not in `Inner`: the
    /// RPC service holds an `Inner` for as long as it runs, and would otherwise keep itself running.
    _cancel_on_drop: Arc<DropGuard>,
}

/// The server's shared core: everything a request needs, shared with the RPC service that serves
/// client agents.
pub(crate) struct Inner {
    /// The Raft participant.
    node: RaftNode,
    /// The applied state readers query.
    replica: Arc<Replica>,
    /// This server's id.
    node_id: u64,
    /// Where peers reach this server's RPC.
    rpc_advertise: SocketAddr,
    /// The RPC service and other background tasks.
    tasks: TaskTracker,
    /// Cancels the background tasks; a child of the caller's shutdown token.
    cancel: CancellationToken,
    /// Set by the first `shutdown`, so later calls return at once.
    stopped: AtomicBool,
    /// Session TTL deadlines, armed only while this server leads.
    timers: SessionTimers,
    /// Answers shared by blocking queries woken by the same write.
    shared: SharedEvals,
    /// How tokens are enforced; `None` when ACLs are off.
    acl: Option<AclSettings>,
    /// Resolved tokens and parsed policies.
    resolver: Resolver,
    /// What the RPC port refused.
    rpc_counters: Arc<crate::rpc::Counters>,
    /// Servers an operator removed, which the leader's reconcile leaves out for a while.
    removed: RecentlyRemoved,
    /// The health autopilot computed on its last pass while this server led.
    health: std::sync::Mutex<Option<AutopilotHealth>>,
    /// Snapshot archives client agents are reading.
    snapshots: crate::snapshot::Handles,
    /// Coordinate updates waiting for the next batch.
    pub(crate) coordinates: crate::coordinates::CoordinateQueue,
    /// The source IPs of RPC connections their peer closed.
    closed: tokio::sync::broadcast::Sender<std::net::IpAddr>,
}

impl Server {
    /// Opens storage, starts Raft and the RPC service, and bootstraps a one-server cluster if asked.
    ///
    /// Cancelling `shutdown` stops the RPC service; call `shutdown` to also stop Raft cleanly.
    pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Server> {
        let cancel = shutdown.child_token();
        let tasks = TaskTracker::new();
        // A server always dials servers over TLS when it has TLS: they refuse Raft from anything else.
        let dialer = crate::rpc::Dialer::new(config.tls.as_ref(), |_| true)?;
        let node_config = NodeConfig {
            node_id: config.node_id,
            data_dir: config.data_dir.as_deref(),
            rpc_advertise: config.rpc_advertise,
            dialer,
            raft_multiplier: config.raft_multiplier,
        };
        let (node, replica) = RaftNode::start(node_config).await?;
        let inner = Arc::new(Inner {
            node,
            replica,
            node_id: config.node_id,
            rpc_advertise: config.rpc_advertise,
            tasks,
            cancel: cancel.clone(),
            stopped: AtomicBool::new(false),
            timers: SessionTimers::default(),
            shared: SharedEvals::default(),
            acl: config.acl,
            resolver: Resolver::default(),
            rpc_counters: Arc::default(),
            removed: RecentlyRemoved::default(),
            health: std::sync::Mutex::default(),
            snapshots: crate::snapshot::Handles::default(),
            coordinates: crate::coordinates::CoordinateQueue::default(),
            closed: tokio::sync::broadcast::channel(CLOSED_HINTS).0,
        });
        let settings = crate::rpc::Settings {
            tls: config.tls,
            limits: config.limits,
            counters: inner.rpc_counters.clone(),
            closed: inner.closed.clone(),
        };
        inner.node.serve(config.rpc_listener, inner.clone(), settings, &inner.tasks, cancel.clone());
        inner.tasks.spawn(inner.clone().run_session_timers(cancel.clone()));
        inner.tasks.spawn(inner.clone().run_coordinate_batches(cancel.clone()));
        let server = Server { inner, _cancel_on_drop: Arc::new(cancel.drop_guard()) };
        if config.bootstrap {
            server.inner.node.initialize(&[(config.node_id, config.rpc_advertise)]).await?;
        }
        tracing::info!(node_id = config.node_id, rpc = %config.rpc_advertise, "raft server started");
        Ok(server)
    }

    /// Proposes `cmd` (forwarding it to the leader if need be) and returns its result once it is
    /// durable on a quorum and applied.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult> {
        self.inner.write(cmd).await
    }

    /// Proposes a transaction (`Command::Txn`) and returns its outcome once applied: every operation's result, or every error and nothing applied.
    pub async fn txn(&self, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        self.inner.txn(ops, now_ms).await
    }

    /// Renews a session's TTL on the leader (forwarding there if need be) and returns the session, or `None` when it does not exist.
    /// Consul does not write renewals to the log: only the leader's timer moves.
    pub async fn renew_session(&self, id: &str) -> Result<Option<Session>> {
        self.inner.renew_session(id).await
    }

    /// Runs `f` on the applied state after the barrier `consistency` asks for.
    pub async fn read<T>(&self, consistency: Consistency, f: impl FnOnce(&State) -> T) -> Result<(T, ReadMeta)> {
        self.inner.read(consistency, f).await
    }

    /// Evaluates `query` after the barrier `consistency` asks for; with `min_index > 0`, blocks as
    /// `blocking_read` does on the query's watch keys until its index exceeds `min_index` or `wait` passes.
    ///
    /// This is what client agents' reads run on the server they reach, so both answer alike.
    pub async fn query(
        &self,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta)> {
        self.inner.query(consistency, min_index, wait, query).await
    }

    /// What `secret` may do, resolved against this server's applied state (an empty secret is the anonymous token).
    /// With ACLs off, everything. An unknown or expired token is `AclNotFound`.
    pub fn resolve_token(&self, secret: &str) -> Result<Access> {
        self.inner.resolve(secret)
    }

    /// `write` on behalf of the caller holding `secret`: refused with `PermissionDenied` when its token may not.
    pub async fn write_as(&self, secret: &str, cmd: Command) -> Result<CommandResult> {
        self.inner.write_as(secret, cmd).await
    }

    /// `txn` on behalf of the caller holding `secret`: operations its token may not run roll the transaction back,
    /// each named with its denial, and nothing is proposed.
    pub async fn txn_as(&self, secret: &str, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        self.inner.txn_as(secret, ops, now_ms).await
    }

    /// `query` on behalf of the caller holding `secret`: refused when it names one thing the token may not read, and
    /// otherwise filtered to what the token may read; the flag says whether anything was left out.
    /// A blocking query resolves the token again when it wakes, so a token deleted or narrowed while it waited answers
    /// by what it is now.
    pub async fn query_as(
        &self,
        secret: &str,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta, bool)> {
        self.inner.query_as(secret, consistency, min_index, wait, query).await
    }

    /// `renew_session` on behalf of the caller holding `secret`: it needs session write on the session's node.
    pub async fn renew_session_as(&self, secret: &str, id: &str) -> Result<Option<Session>> {
        self.inner.renew_session_as(secret, id).await
    }

    /// Verifies `login` against its auth method, evaluates the method's binding rules and, when any binds something, mints
    /// and stores a token (Consul's `ACL.Login`). No rule matched is `PermissionDenied("Permission denied")`; a bearer token
    /// that does not verify is `PermissionDenied` saying why.
    pub async fn login(&self, login: &Login) -> Result<AclToken> {
        self.inner.login(login.clone()).await
    }

    /// Deletes the token holding `secret` if a login created it (Consul's `ACL.Logout`): `AclNotFound` for no such token,
    /// `PermissionDenied` for a token not made by a login.
    pub async fn logout(&self, secret: &str) -> Result<()> {
        self.inner.logout(secret).await
    }

    /// The snapshot archive (`roster_snapshot`) of the applied state after the barrier `consistency` asks for, and the
    /// index it covers: one applied index, however many writes arrive meanwhile.
    pub async fn save_snapshot(&self, consistency: Consistency) -> Result<(Vec<u8>, u64)> {
        self.inner.save_snapshot(consistency).await
    }

    /// `save_snapshot` for the caller holding `secret`, which needs `acl:write` (Consul's management).
    pub async fn save_snapshot_as(&self, secret: &str, consistency: Consistency) -> Result<(Vec<u8>, u64)> {
        self.inner.require_acl_write(secret)?;
        self.inner.save_snapshot(consistency).await
    }

    /// Replaces the whole replicated state with `state` (`State::encode_snapshot` bytes, checked by the caller) on
    /// every server, through the log, for the caller holding `secret` (`acl:write`). Parked blocking queries answer
    /// at once with the restored data.
    pub async fn restore_snapshot_as(&self, secret: &str, state: &[u8]) -> Result<()> {
        self.inner.require_acl_write(secret)?;
        let id = uuid::Uuid::new_v4().to_string();
        crate::snapshot::restore_with(&id, state, |cmd| self.inner.write(cmd)).await
    }

    /// This server's view of the cluster: the leader, the Raft membership, log and apply progress,
    /// and whether it belongs to a cluster yet.
    pub async fn status(&self) -> Result<ClusterStatus> {
        self.inner.status()
    }

    /// Reads this server's applied state as it is, with no barrier and no leader information: the cheapest read, for callers such as DNS that serve stale data by design and answer many small queries.
    pub fn read_local<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        self.inner.replica.read(f)
    }

    /// A blocking query: evaluates `f` (which returns its answer and the index covering it) until
    /// that index exceeds `min_index` or `wait` passes, re-evaluating only when a write touches `keys`.
    ///
    /// `min_index == 0` never blocks. On timeout the last answer is returned with its (unchanged) index.
    pub async fn blocking_read<T>(
        &self,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        keys: Vec<WatchKey>,
        f: impl Fn(&State) -> (T, u64),
    ) -> Result<(T, u64, ReadMeta)> {
        self.inner.blocking_read(consistency, min_index, wait, keys, f).await
    }

    /// The RPC address of the current leader, if one is known.
    pub fn leader_addr(&self) -> Option<SocketAddr> {
        self.inner.node.leader_addr()
    }

    /// The RPC addresses of the voting servers.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.inner.node.voter_addrs()
    }

    /// This server's Raft id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The source IP of every RPC connection its peer closed (client agents and other servers): a hint that the
    /// agent there may have died, worth a gossip probe now rather than when the round-robin gets to it. A receiver
    /// that falls more than a few hundred behind loses the oldest.
    pub fn closed_connections(&self) -> tokio::sync::broadcast::Receiver<std::net::IpAddr> {
        self.inner.closed.subscribe()
    }

    /// What the RPC port refused since start (connections over a limit, failed handshakes, oversized frames, …).
    pub fn rpc_counters(&self) -> crate::config::RpcCounters {
        self.inner.rpc_counters.snapshot()
    }

    /// The RPC address peers use for this server (`Config::rpc_advertise`).
    pub fn rpc_addr(&self) -> SocketAddr {
        self.inner.rpc_advertise
    }

    /// This server's own Raft progress (term, log, commit and apply indexes, role).
    pub fn raft_stats(&self) -> crate::RaftStats {
        self.inner.node.stats()
    }

    /// Makes the log's next append fail as a full disk would (tests of disk errors).
    #[cfg(test)]
    pub(crate) fn fail_next_log_append(&self) {
        self.inject_log_failure(None);
    }

    /// Like `fail_next_log_append`, with the failing write held on the writer thread until `release` is sent to or
    /// dropped (a disk that hangs, then errs).
    #[cfg(test)]
    pub(crate) fn fail_next_log_append_held(&self, release: std::sync::mpsc::Receiver<()>) {
        self.inject_log_failure(Some(release));
    }

    #[cfg(test)]
    fn inject_log_failure(&self, held_until: Option<std::sync::mpsc::Receiver<()>>) {
        let failure = crate::raft::InjectedFailure { held_until };
        *self.inner.node.fail_next_append.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(failure);
    }

    /// The Raft timings this server runs with (`raft_multiplier` applied).
    pub fn raft_timing(&self) -> crate::RaftTiming {
        self.inner.node.timing()
    }

    /// Whether this server is the leader right now.
    pub fn is_leader(&self) -> bool {
        self.inner.node.is_leader()
    }

    /// Waits until a leader is known; `NoLeader` after `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<()> {
        self.inner.node.wait_for_leader(timeout).await
    }

    /// Forms a new cluster of `members` (Raft id, RPC address), as `-bootstrap-expect` does once
    /// enough servers are seen. Call it on one server; a no-op where a log already exists.
    pub async fn initialize(&self, members: &[(u64, SocketAddr)]) -> Result<()> {
        self.inner.node.initialize(members).await
    }

    /// Adds a server (leader only) as a learner, and makes it a voter once this leader has replicated to it;
    /// returns whether it is a voter now. Call it again until it is: nothing promotes a learner later by itself.
    pub async fn add_voter(&self, node_id: u64, addr: SocketAddr) -> Result<bool> {
        self.inner.node.add_voter(node_id, addr).await
    }

    /// Removes a server, voter or learner (leader only).
    pub async fn remove_voter(&self, node_id: u64) -> Result<()> {
        self.inner.node.remove_voter(node_id).await
    }

    /// Carries out an operator request for the caller holding `secret` (operator:write): on the leader, or forwarded
    /// to it. Unknown servers, removing the last voter and transfers to a non-voter are refused (`Error::Operator`)
    /// having changed nothing.
    pub async fn operator_as(&self, secret: &str, request: &OperatorRequest) -> Result<OperatorReply> {
        self.inner.operator_as(secret, request).await
    }

    /// On the leader, one autopilot pass: every server's health from the Raft metrics and `gossip` (the agent's view
    /// of the servers), kept for `/v1/operator/autopilot/health`; then dead servers removed (with
    /// `CleanupDeadServers`, never below `MinQuorum` or a healthy majority) and non-voters healthy for
    /// `ServerStabilizationTime` made voters. A no-op on a follower. Call it every reconcile pass.
    pub async fn autopilot_pass(&self, gossip: &[GossipServer]) -> Result<()> {
        self.inner.autopilot_pass(gossip).await
    }

    /// Adds a server (leader only) as a non-voter; autopilot promotes it once it is stable. A no-op for a member.
    pub async fn add_nonvoter(&self, node_id: u64, addr: SocketAddr) -> Result<()> {
        self.inner.node.add_nonvoter(node_id, addr).await
    }

    /// On the leader: stores `config` as the autopilot configuration unless one is stored already (the agent's
    /// `autopilot` block seeds it; after that, only the API changes it).
    pub async fn seed_autopilot(&self, config: AutopilotConfig) -> Result<()> {
        if self.inner.replica.read(|state| state.autopilot_config().is_some()) {
            return Ok(());
        }
        match self.inner.node.write_local(Command::AutopilotSet { config, cas: Some(0) }).await?.0.into_result() {
            CommandResult::Rejected(why) => Err(Error::Rejected(why)),
            CommandResult::Bool(_) => Ok(()),
        }
    }

    /// Whether an operator removed the server `node_id` from the Raft configuration through this server less than
    /// `REMOVED_HOLD` ago: the leader's reconcile does not add such a server back yet, even if gossip sees it alive.
    pub fn removed_by_operator(&self, node_id: u64) -> bool {
        self.inner.removed.holds(node_id, Instant::now())
    }

    /// Before a graceful leave: if this server leads, hands leadership to the most caught-up other voter and waits up
    /// to `wait` until another server leads. Returns whether leadership moved; with no caught-up voter (a one-server
    /// cluster) it returns `false` at once, and the cluster elects a leader when this one is gone.
    pub async fn transfer_leadership_for_leave(&self, wait: Duration) -> Result<bool> {
        let node = &self.inner.node;
        if !node.is_leader() {
            return Ok(false);
        }
        let status = node.status();
        let matched = node.replication_matched();
        let last = status.last_log_index;
        // Caught up: within the lag the leader accepts for a voter, so the new leader need not wait long for a log.
        let caught_up: BTreeMap<u64, u64> =
            matched.into_iter().filter(|(_, index)| last.saturating_sub(*index) <= LEAVE_LAG).collect();
        let Ok(to) = operator::transfer_target(&status.servers, self.inner.node_id, None, &caught_up) else {
            return Ok(false);
        };
        tracing::info!(to, "leaving: transferring leadership first");
        node.transfer_leader(to, wait).await?;
        Ok(true)
    }

    /// Builds a snapshot of the applied state now and returns the log index it covers.
    /// The log up to there becomes eligible for purging.
    pub async fn snapshot(&self) -> Result<u64> {
        self.inner.node.snapshot().await
    }

    /// Stops the RPC service and the Raft core. Idempotent.
    pub async fn shutdown(&self) -> Result<()> {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Stop accepting RPCs first, then stop Raft: in-flight requests fail rather than hang.
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.node.shutdown().await
    }

    /// The archives client agents are reading (tests shorten their reads).
    #[cfg(test)]
    pub(crate) fn snapshot_handles(&self) -> &crate::snapshot::Handles {
        &self.inner.snapshots
    }

    /// How many blocking-query evaluations actually ran (the rest were shared).
    #[cfg(test)]
    pub(crate) fn shared_evaluations(&self) -> u64 {
        self.inner.shared.evaluations()
    }

    /// How many blocking queries are parked on this server now (a query counts from its waiter's registration, just
    /// before it first evaluates).
    pub fn parked_queries(&self) -> usize {
        self.inner.replica.n_waiters()
    }

    /// The leader's session timers (tests shorten their waits).
    #[cfg(test)]
    pub(crate) fn session_timers(&self) -> &SessionTimers {
        &self.inner.timers
    }

    /// Snapshot chunks sent and received and AppendEntries split by this server.
    #[cfg(test)]
    pub(crate) fn stream_stats(&self) -> crate::raft::StreamStats {
        self.inner.node.stream_stats()
    }

    /// Waits until this server has applied the log up to `index`.
    #[cfg(test)]
    pub(crate) async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        self.inner.node.wait_applied(index, timeout).await
    }

    /// Purges the log up to `upto` (tests of restart from snapshot + log tail).
    #[cfg(test)]
    pub(crate) async fn purge_log(&self, upto: u64) -> Result<()> {
        self.inner.node.purge_log(upto).await
    }
}

impl Inner {
    fn resolve(&self, secret: &str) -> Result<Access> {
        let Some(settings) = &self.acl else {
            return Ok(Access::manage_all());
        };
        let now_ms = unix_ms();
        self.replica.read(|state| self.resolver.resolve(settings, state, secret, now_ms))
    }

    /// Refuses a caller whose token may not write ACLs (with ACLs on).
    fn require_acl_write(&self, secret: &str) -> Result<()> {
        if self.acl.is_none() {
            return Ok(());
        }
        let access = self.resolve(secret)?;
        access.require(access.authorizer().acl_write(), roster_acl::Resource::Acl, roster_acl::AccessLevel::Write, None)
    }

    async fn save_snapshot(&self, consistency: Consistency) -> Result<(Vec<u8>, u64)> {
        self.barrier(consistency).await?;
        // Encoding and compressing a large state takes a while: keep it off the async workers.
        let replica = self.replica.clone();
        tokio::task::spawn_blocking(move || crate::snapshot::save(&replica, unix_ms()))
            .await
            .map_err(|e| Error::Fatal(format!("building a snapshot failed: {e}")))?
    }

    async fn login(&self, login: Login) -> Result<AclToken> {
        let Some(settings) = &self.acl else {
            return Err(Error::Rejected("ACL support disabled".into()));
        };
        // The IDs are drawn here, on the server: kv stays deterministic, and a client agent never mints.
        let ids = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
        let token = self.replica.read(|state| mint(state, &settings.datacenter, &login, unix_ms(), ids))?;
        match self.write(Command::AclTokenSet(Box::new(token.clone()))).await? {
            CommandResult::Rejected(why) => Err(Error::Rejected(why)),
            CommandResult::Bool(_) => {
                Ok(self.replica.read(|state| state.acl_token(&token.accessor_id)).unwrap_or(token))
            }
        }
    }

    async fn logout(&self, secret: &str) -> Result<()> {
        if self.acl.is_none() {
            return Err(Error::Rejected("ACL support disabled".into()));
        }
        let now_ms = unix_ms();
        let token = self
            .replica
            .read(|state| state.acl_token_by_secret(secret))
            .filter(|t| !secret.is_empty() && t.expiration_time_ms.is_none_or(|at| at > now_ms))
            .ok_or(Error::AclNotFound)?;
        if token.auth_method.is_empty() {
            return Err(Error::PermissionDenied("Permission denied".into()));
        }
        match self.write(Command::AclTokenDelete { accessor_id: token.accessor_id }).await? {
            CommandResult::Rejected(why) => Err(Error::Rejected(why)),
            CommandResult::Bool(_) => Ok(()),
        }
    }

    async fn operator_as(&self, secret: &str, request: &OperatorRequest) -> Result<OperatorReply> {
        let access = self.resolve(secret)?;
        if request.writes() {
            let allowed = access.authorizer().operator_write();
            access.require(allowed, roster_acl::Resource::Operator, roster_acl::AccessLevel::Write, None)?;
        } else {
            let allowed = access.authorizer().operator_read();
            access.require(allowed, roster_acl::Resource::Operator, roster_acl::AccessLevel::Read, None)?;
        }
        self.with_leader(|| async {
            if self.node.is_leader() {
                return self.operator_here(request).await;
            }
            match self.node.leader_addr() {
                Some(addr) if addr != self.rpc_advertise => self.node.forward_operator(addr, secret, request).await,
                _ => Err(Error::NoLeader),
            }
        })
        .await
    }

    /// Carries out `request` on this server, the leader.
    async fn operator_here(&self, request: &OperatorRequest) -> Result<OperatorReply> {
        let status = self.node.status();
        match request {
            OperatorRequest::RemovePeer(selector) => {
                let target = operator::find_peer(&status.servers, selector)?;
                operator::check_removal(&status.servers, &target)?;
                // Noted first: the reconcile must not add it back between the change and the note.
                self.removed.note(target.id, Instant::now());
                self.node.remove_voter(target.id).await?;
                tracing::warn!(id = target.id, addr = %target.addr, "operator removed a Raft server");
                Ok(OperatorReply::Removed { id: target.id })
            }
            OperatorRequest::TransferLeader { id } => {
                let matched = self.node.replication_matched();
                let to = operator::transfer_target(&status.servers, self.node_id, id.as_deref(), &matched)?;
                tracing::info!(to, "operator asked to transfer leadership");
                self.node.transfer_leader(to, TRANSFER_WAIT).await?;
                Ok(OperatorReply::Transferred { to })
            }
            OperatorRequest::AutopilotHealth => {
                let health = self.health.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match health.filter(|h| h.leader == self.node_id) {
                    Some(health) => Ok(OperatorReply::Health(Box::new(health))),
                    None => Err(Error::Operator("autopilot has not computed server health yet".into())),
                }
            }
        }
    }

    /// One autopilot pass on the leader (a no-op elsewhere): compute every server's health from the Raft metrics and
    /// `gossip`, keep it, remove dead servers and promote stable non-voters as the stored configuration says.
    async fn autopilot_pass(&self, gossip: &[GossipServer]) -> Result<()> {
        let Some(facts) = self.node.autopilot_facts() else {
            *self.health.lock().unwrap_or_else(PoisonError::into_inner) = None;
            return Ok(());
        };
        let config = self.replica.read(|state| state.autopilot_config().cloned()).unwrap_or_default();
        let now_ms = unix_ms();
        let health = {
            let mut stored = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            let health = autopilot::compute(&config, &facts, gossip, stored.as_ref(), now_ms);
            *stored = Some(health.clone());
            health
        };
        for id in autopilot::removals(&config, &health) {
            tracing::warn!(id, "autopilot: removing a dead server from the Raft configuration");
            self.node.remove_voter(id).await?;
        }
        for id in autopilot::promotions(&config, &health, now_ms) {
            let Some(addr) = health.servers.iter().find(|s| s.id == id).map(|s| s.address) else { continue };
            // `add_voter` still waits until the leader has replicated to it, whatever its health says.
            if self.node.add_voter(id, addr).await? {
                tracing::info!(id, %addr, "autopilot: promoted a stable server to voter");
            }
        }
        Ok(())
    }

    async fn write_as(&self, secret: &str, cmd: Command) -> Result<CommandResult> {
        if self.acl.is_none() {
            return self.write(cmd).await;
        }
        let access = self.resolve(secret)?;
        self.replica.read(|state| authorize_command(&access, &cmd, state))?;
        self.write(cmd).await
    }

    async fn txn_as(&self, secret: &str, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        if self.acl.is_none() {
            return self.txn(ops, now_ms).await;
        }
        let access = self.resolve(secret)?;
        let denied = self.replica.read(|state| authorize_txn(&access, &ops, state));
        if !denied.is_empty() {
            return Ok(TxnOutcome::RolledBack(denied));
        }
        self.txn(ops, now_ms).await
    }

    async fn query_as(
        &self,
        secret: &str,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta, bool)> {
        // With ACLs off there is nothing to decide, and a long list is not walked for nothing.
        if self.acl.is_none() {
            let (answer, index, meta) = self.query(consistency, min_index, wait, query).await?;
            return Ok((answer, index, meta, false));
        }
        let access = self.resolve(secret)?;
        authorize_query(&access, query)?;
        let (mut answer, index, meta) = self.query(consistency, min_index, wait, query).await?;
        // Re-checked after the wait: the token may have been deleted or its policies narrowed meanwhile.
        let access = if min_index > 0 { self.resolve(secret)? } else { access };
        authorize_query(&access, query)?;
        crate::access::prepared_query::deny_unreadable(&access, &answer)?;
        let filtered = match crate::access::prepared_query::execution_token(&answer) {
            Some(token) => filter_answer(&self.resolve(&token)?, &mut answer),
            None => filter_answer(&access, &mut answer),
        };
        Ok((answer, index, meta, filtered))
    }

    async fn renew_session_as(&self, secret: &str, id: &str) -> Result<Option<Session>> {
        if self.acl.is_none() {
            return self.renew_session(id).await;
        }
        let access = self.resolve(secret)?;
        let node = self.replica.read(|state| state.session(id).map(|s| s.node.clone()));
        if let Some(node) = node {
            let allowed = access.authorizer().session_write(&node);
            access.require(allowed, roster_acl::Resource::Session, roster_acl::AccessLevel::Write, Some(&node))?;
        }
        self.renew_session(id).await
    }

    async fn write(&self, cmd: Command) -> Result<CommandResult> {
        // Coordinates are queued and written in batches (`coordinates.rs`), as Consul's servers do.
        if let Command::CoordinateBatchUpdate { updates } = &cmd {
            return Ok(self.coordinates.push(updates));
        }
        self.write_now(cmd).await
    }

    /// Proposes `cmd` now, through the leader.
    pub(crate) async fn write_now(&self, cmd: Command) -> Result<CommandResult> {
        let start = std::time::Instant::now();
        let (outcome, _index) = self.with_leader(|| self.node.write(cmd.clone())).await?;
        crate::telemetry::write_applied(&cmd, start);
        Ok(outcome.into_result())
    }

    async fn txn(&self, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        let start = std::time::Instant::now();
        let cmd = Command::Txn { ops, now_ms };
        let written = self.with_leader(|| self.node.write(cmd.clone())).await?;
        crate::telemetry::write_applied(&cmd, start);
        match written {
            (Outcome::Txn(outcome), _index) => Ok(outcome),
            (Outcome::Result(other), _index) => Err(Error::Fatal(format!("a transaction applied as {other:?}"))),
        }
    }

    async fn read<T>(&self, consistency: Consistency, f: impl FnOnce(&State) -> T) -> Result<(T, ReadMeta)> {
        self.barrier(consistency).await?;
        let (value, state_index) = self.replica.read(|state| (f(state), state.last_index()));
        Ok((value, ReadMeta { state_index, ..self.read_meta() }))
    }

    async fn query(
        &self,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta)> {
        if min_index == 0 {
            // Nothing to wait for: skip registering a waiter.
            let ((answer, index), meta) = self.read(consistency, |state| query.eval(state)).await?;
            return Ok((answer, index, meta));
        }
        // Watchers of one query woken by one write share its evaluation; the encoding is the key.
        let Ok(key) = postcard::to_allocvec(query) else {
            return self
                .blocking_read(consistency, min_index, wait, query.watch_keys(), |state| query.eval(state))
                .await;
        };
        let shared = &self.shared;
        self.blocking_read(consistency, min_index, wait, query.watch_keys(), |state| shared.eval(&key, query, state))
            .await
    }

    fn status(&self) -> Result<ClusterStatus> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        Ok(self.node.status())
    }

    async fn blocking_read<T>(
        &self,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        keys: Vec<WatchKey>,
        f: impl Fn(&State) -> (T, u64),
    ) -> Result<(T, u64, ReadMeta)> {
        self.barrier(consistency).await?;
        let replica = &self.replica;
        let deadline = Instant::now() + wait;
        let mut resets = replica.subscribe_resets();
        let generation = *resets.borrow_and_update();
        let mut timed_out = min_index == 0;
        // Registered before evaluating: a write landing in between still fires this waiter.
        let mut waiter = Some(replica.register(keys.clone()));
        loop {
            // The state was replaced since this query came (a restore, or a snapshot installed from the leader): its
            // indexes may have gone backwards, so the caller gets the new answer now rather than waiting for an index
            // past one that no longer means anything (Consul's watchers reset when the index goes back).
            let replaced = *resets.borrow() != generation;
            let ((value, index), state_index) = replica.read(|state| (f(state), state.last_index()));
            // An index below the caller's went backwards, which only a restore does to an answer the caller already
            // saw: answer now too, whether the restore came before this query or while it waited.
            if index != min_index || timed_out || replaced {
                return Ok((value, index, ReadMeta { state_index, ..self.read_meta() }));
            }
            // Not kept while parked: a service's instances with their nodes and checks are kilobytes per watcher,
            // and the answer given after the wait is evaluated again anyway.
            drop(value);
            // Woken, and the answer did not move after all: park again, registering before the evaluation that
            // decides. A woken query whose answer moved (nearly every one) returns above without registering, which
            // spares the registry's lock twice per wake-up with thousands of watchers waking at once.
            let Some(parked) = waiter.as_mut() else {
                waiter = Some(replica.register(keys.clone()));
                continue;
            };
            let _parked = crate::telemetry::InProgress::start("consul.rpc.queries_blocking");
            tokio::select! {
                _ = &mut parked.fired => crate::telemetry::query_woken(),
                _ = resets.changed() => {}
                _ = tokio::time::sleep_until(deadline) => timed_out = true,
            }
            // Unregisters the waiter if it did not fire.
            waiter = None;
        }
    }

    async fn barrier(&self, consistency: Consistency) -> Result<()> {
        if !self.stopped.load(Ordering::SeqCst) && self.node.read_barrier_passed(consistency, &self.replica) {
            return Ok(());
        }
        // Boxed: the full barrier (openraft's read index, a call to the leader, retries while there is none) is
        // kilobytes of future, and inline it would sit in every read's future, each parked watcher's among them,
        // though a leader's lease reads (above) never run it.
        Box::pin(self.with_leader(|| self.node.read_barrier(consistency, &self.replica))).await
    }

    /// Runs `op`, retrying while there is no leader (or the one we knew moved) for up to `LEADER_HOLD`.
    ///
    /// Retrying is safe: those errors mean the request was refused before anything was appended.
    async fn with_leader<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + LEADER_HOLD;
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return Err(Error::Shutdown);
            }
            match op().await {
                Err(Error::NoLeader | Error::NotLeader { .. }) if Instant::now() < deadline => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    // Wait for an election to finish, and pace retries while a leader settles in.
                    let _ = self.node.wait_for_leader(remaining).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                res => return res,
            }
        }
    }

    async fn renew_session(&self, id: &str) -> Result<Option<Session>> {
        self.with_leader(|| async {
            if self.node.is_leader() {
                return Ok(self.renew_here(id));
            }
            match self.node.leader_addr() {
                Some(addr) if addr != self.rpc_advertise => self.node.forward_renew(addr, id).await,
                _ => Err(Error::NoLeader),
            }
        })
        .await
    }

    /// Renews on this server, which must be the leader: the session as it is, with its timer reset.
    fn renew_here(&self, id: &str) -> Option<Session> {
        let session = self.replica.read(|state| state.sessions().0.into_iter().find(|s| s.id == id).cloned())?;
        if let Some(ttl) = ttl_of(&session) {
            self.timers.renew(Instant::now(), id, ttl);
        }
        Some(session)
    }

    /// The leader's session-expiry loop (see `sessions`): reconcile the timers with the state, destroy what expired, sleep until the next deadline or pass.
    async fn run_session_timers(self: Arc<Self>, cancel: CancellationToken) {
        let mut resets = self.replica.subscribe_resets();
        let mut was_leader = false;
        loop {
            let now = Instant::now();
            if resets.has_changed().unwrap_or(false) {
                // A restore replaced every session: each is armed afresh at twice its TTL, as a new leader arms them.
                resets.borrow_and_update();
                self.timers.clear();
            }
            if self.node.is_leader() {
                let sessions = self.replica.read(|state| {
                    state.sessions().0.into_iter().filter_map(|s| Some((s.id.clone(), ttl_of(s)?))).collect::<Vec<_>>()
                });
                self.timers.reconcile(now, &sessions);
                for id in self.timers.take_expired(now) {
                    tracing::info!(session = %id, "session TTL expired");
                    let cmd = Command::SessionDestroy { id, now_ms: unix_ms() };
                    let start = std::time::Instant::now();
                    // A failure (leadership lost midway) is repaired by the next leader, which re-arms every TTL session.
                    match self.node.write_local(cmd).await {
                        Ok(_) => crate::telemetry::session_invalidated(start),
                        Err(err) => tracing::warn!("destroying an expired session failed: {err}"),
                    }
                }
            } else {
                self.timers.clear();
            }
            let is_leader = self.node.is_leader();
            crate::telemetry::leader_pass(was_leader, is_leader, self.timers.len());
            if let Some(facts) = self.node.autopilot_facts() {
                facts
                    .contact_ms
                    .iter()
                    .filter(|(id, _)| **id != facts.leader)
                    .for_each(|(_, ms)| crate::telemetry::follower_contact(*ms));
            }
            was_leader = is_leader;
            let wake = self.timers.next_deadline().map_or(now + RECONCILE_EVERY, |at| at.min(now + RECONCILE_EVERY));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
                _ = resets.changed() => {}
            }
        }
    }

    fn read_meta(&self) -> ReadMeta {
        self.node.read_meta()
    }
}

impl ClientHandler for Inner {
    async fn query(
        &self,
        token: &str,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta, bool)> {
        Inner::query_as(self, token, consistency, min_index, wait, query).await
    }

    async fn write(&self, token: &str, cmd: Command) -> Result<CommandResult> {
        Inner::write_as(self, token, cmd).await
    }

    async fn status(&self) -> Result<ClusterStatus> {
        Inner::status(self)
    }

    async fn renew_session(&self, token: &str, id: &str) -> Result<Option<Session>> {
        Inner::renew_session_as(self, token, id).await
    }

    async fn txn(&self, token: &str, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        Inner::txn_as(self, token, ops, now_ms).await
    }

    async fn login(&self, login: Login) -> Result<AclToken> {
        Inner::login(self, login).await
    }

    async fn logout(&self, token: &str) -> Result<()> {
        Inner::logout(self, token).await
    }

    async fn operator(&self, token: &str, request: OperatorRequest) -> Result<OperatorReply> {
        Inner::operator_as(self, token, &request).await
    }

    async fn snapshot_open(&self, token: &str, consistency: Consistency) -> Result<(String, u64, u64)> {
        self.require_acl_write(token)?;
        let (archive, index) = self.save_snapshot(consistency).await?;
        let len = archive.len() as u64;
        let handle = self.snapshots.insert(archive, Instant::now())?;
        Ok((handle, len, index))
    }

    fn snapshot_read(&self, handle: &str, offset: u64) -> Result<Vec<u8>> {
        self.snapshots.read(handle, offset, Instant::now())
    }

    fn renew_session_as_leader(&self, id: &str) -> Result<Option<Session>> {
        if self.node.is_leader() {
            Ok(self.renew_here(id))
        } else {
            Err(Error::NotLeader { leader: self.node.leader_addr() })
        }
    }
}

/// The wall clock in Unix milliseconds, which lock-delays are measured against.
fn unix_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod disk_error_tests;
#[cfg(test)]
pub(crate) mod tests;
