//! What the server records through the `metrics` facade (a no-op until the agent installs a recorder), under
//! Consul's names where Consul has the same metric. Timers are in milliseconds, as go-metrics records them.
//! Every name and label is a static string, so recording allocates nothing.

use std::time::Instant;

use roster_kv::Command;

/// Milliseconds since `start`, a timer's value.
pub(crate) fn millis(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// A write this server's leader proposed and saw applied: Consul's `consul.raft.apply` (a count of Raft
/// transactions) and `consul.raft.commitTime` (proposal to commit and apply).
pub(crate) fn raft_applied(start: Instant) {
    metrics::counter!("consul.raft.apply").increment(1);
    metrics::histogram!("consul.raft.commitTime").record(millis(start));
}

/// A batch of log entries written and fsynced: Consul's BoltDB store timers, which dashboards read as the log's
/// disk latency (roster's log is written the same way: one write and one fsync per batch).
pub(crate) fn log_stored(start: Instant, entries: usize) {
    metrics::histogram!("consul.raft.boltdb.storeLogs").record(millis(start));
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!("consul.raft.boltdb.logsPerBatch").record(entries as f64);
}

/// The endpoint timer Consul keeps for a write of this kind (`consul.kvs.apply`, `consul.catalog.register`, ...).
pub(crate) fn write_applied(cmd: &Command, start: Instant) {
    let name = match cmd {
        Command::KvSet { .. }
        | Command::KvCas { .. }
        | Command::KvDelete { .. }
        | Command::KvDeleteCas { .. }
        | Command::KvDeleteTree { .. }
        | Command::KvLock { .. }
        | Command::KvUnlock { .. } => "consul.kvs.apply",
        Command::Register(_) => "consul.catalog.register",
        Command::Deregister { .. } => "consul.catalog.deregister",
        Command::SessionCreate(_) | Command::SessionDestroy { .. } => "consul.session.apply",
        Command::Txn { .. } => "consul.txn.apply",
        Command::PreparedQuerySet { .. } | Command::PreparedQueryDelete { .. } => "consul.prepared-query.apply",
        _ => return,
    };
    metrics::histogram!(name).record(millis(start));
}

/// One RPC request served, by kind (`consul.rpc.request`), and whether it ended in an error.
pub(crate) fn rpc_served(kind: &'static str, errored: bool) {
    metrics::counter!("consul.rpc.request", "method" => kind).increment(1);
    if errored {
        metrics::counter!("consul.rpc.request_error", "method" => kind).increment(1);
    }
}

/// Holds one in a gauge of things in progress while it lives: requests in flight (`roster.rpc.in_flight`), blocking
/// queries parked (Consul's `consul.rpc.queries_blocking`).
pub(crate) struct InProgress(&'static str);

impl InProgress {
    pub(crate) fn start(gauge: &'static str) -> InProgress {
        metrics::gauge!(gauge).increment(1.0);
        InProgress(gauge)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// A parked blocking query woken by a write to what it watches.
pub(crate) fn query_woken() {
    metrics::counter!("roster.rpc.queries_woken_total").increment(1);
}

/// What the leader's timer loop sees each pass: leadership (`consul.server.isLeader`, and `consul.raft.state.leader`
/// counted on each gain, as Consul counts elections won) and the session timers armed (`consul.session_ttl.active`).
pub(crate) fn leader_pass(was_leader: bool, is_leader: bool, timers: usize) {
    if is_leader && !was_leader {
        metrics::counter!("consul.raft.state.leader").increment(1);
    }
    metrics::gauge!("consul.server.isLeader").set(if is_leader { 1.0 } else { 0.0 });
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("consul.session_ttl.active").set(timers as f64);
}

/// On the leader, once a second per follower: how long since it last acknowledged a heartbeat (Consul's
/// `consul.raft.leader.lastContact`, which hashicorp/raft samples per follower when it checks its lease).
pub(crate) fn follower_contact(ms: u64) {
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!("consul.raft.leader.lastContact").record(ms as f64);
}

/// A session destroyed because its TTL ran out (Consul times the invalidation).
pub(crate) fn session_invalidated(start: Instant) {
    metrics::histogram!("consul.session_ttl.invalidate").record(millis(start));
}

/// The Raft log's size after a write to it: `roster.raft.log.entries` and `roster.raft.log.bytes` (the encoded
/// entries held, which snapshots and purges bring down), and Consul's `consul.raft.last_index`.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn log_size(entries: u64, bytes: u64, last_index: u64) {
    metrics::gauge!("roster.raft.log.entries").set(entries as f64);
    metrics::gauge!("roster.raft.log.bytes").set(bytes as f64);
    metrics::gauge!("consul.raft.last_index").set(last_index as f64);
}

/// The state machine applied up to `index`: Consul's `consul.raft.applied_index`.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn applied_index(index: u64) {
    metrics::gauge!("consul.raft.applied_index").set(index as f64);
}

/// A snapshot built: Consul's `consul.raft.snapshot.create` (encoding the state, from `create_start` until
/// `persist_start`) and `consul.raft.snapshot.persist` (writing it durably, from `persist_start` until now).
pub(crate) fn snapshot_built(create_start: Instant, persist_start: Instant) {
    let create_ms = persist_start.saturating_duration_since(create_start).as_secs_f64() * 1000.0;
    metrics::histogram!("consul.raft.snapshot.create").record(create_ms);
    metrics::histogram!("consul.raft.snapshot.persist").record(millis(persist_start));
}

/// The current snapshot, whenever it changes (built, installed from the leader, or loaded at start): its state's
/// encoded bytes (`roster.raft.snapshot.bytes`) and the last log index it covers (`roster.raft.snapshot.index`).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn snapshot_current(bytes: usize, index: u64) {
    metrics::gauge!("roster.raft.snapshot.bytes").set(bytes as f64);
    metrics::gauge!("roster.raft.snapshot.index").set(index as f64);
}
