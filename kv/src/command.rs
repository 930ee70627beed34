//! The commands a Raft log entry carries, and what applying one returns.
//!
//! A command is validated at the edge (HTTP) before it is proposed, but `State::apply` checks again what it depends on (a check's service must exist on its node): the state at apply time is the only truth, and a stale edge check must not corrupt it.

use serde::{Deserialize, Serialize};

use crate::acl::{AclAuthMethod, AclBindingRule, AclPolicy, AclRole, AclToken};
use crate::model::{HealthCheck, Node, Service, Session};
use crate::txn::{TxnOp, TxnOutcome};

/// A change to the replicated state.
///
/// This enum is persisted in the Raft log: new variants go at the end, and an existing variant's fields never change shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set a key unconditionally.
    KvSet {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "crate::serde_bytes")]
        value: Vec<u8>,
        /// Client flags.
        flags: u64,
    },
    /// Set a key only if its ModifyIndex is `index` (0: only if it does not exist).
    KvCas {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "crate::serde_bytes")]
        value: Vec<u8>,
        /// Client flags.
        flags: u64,
        /// The expected ModifyIndex.
        index: u64,
    },
    /// Delete a key if present.
    KvDelete {
        /// The key.
        key: String,
    },
    /// Delete a key only if its ModifyIndex is `index`.
    KvDeleteCas {
        /// The key.
        key: String,
        /// The expected ModifyIndex.
        index: u64,
    },
    /// Delete every key that starts with `prefix`.
    KvDeleteTree {
        /// The prefix; empty deletes everything.
        prefix: String,
    },
    /// Register (upsert) a node and optionally one service and some checks on it.
    Register(Box<Registration>),
    /// Remove a node, or one service (with its checks), or one check.
    Deregister {
        /// The node.
        node: String,
        /// If set, remove only this service instance and its checks.
        service_id: Option<String>,
        /// If set (and `service_id` is not), remove only this check.
        check_id: Option<String>,
    },
    /// Create a session. The proposer chose its ID (a UUID); its indexes are ignored.
    /// Rejected when the node is not registered or a check it names is missing or critical.
    SessionCreate(Box<Session>),
    /// Destroy a session, releasing (or deleting) the keys it holds. A no-op for an unknown session.
    SessionDestroy {
        /// The session ID.
        id: String,
        /// The proposer's clock (Unix milliseconds), from which the held keys' lock-delay runs.
        now_ms: u64,
    },
    /// Acquire the lock on a key for a session and set its value (`?acquire=`).
    /// `false` when another session holds it or its lock-delay has not passed; rejected for an unknown session.
    KvLock {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "crate::serde_bytes")]
        value: Vec<u8>,
        /// Client flags.
        flags: u64,
        /// The acquiring session.
        session: String,
        /// The proposer's clock (Unix milliseconds), compared with the key's lock-delay.
        now_ms: u64,
    },
    /// Release a session's lock on a key and set its value (`?release=`). `false` when that session does not hold it.
    KvUnlock {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "crate::serde_bytes")]
        value: Vec<u8>,
        /// Client flags.
        flags: u64,
        /// The releasing session.
        session: String,
    },
    /// Apply every operation or none (`PUT /v1/txn`). `State::apply_command` answers `Outcome::Txn`.
    Txn {
        /// The operations, in order.
        ops: Vec<TxnOp>,
        /// The proposer's clock (Unix milliseconds), for lock operations' lock-delay.
        now_ms: u64,
    },
    /// Create the built-in ACL policies and the anonymous token where they are missing. Idempotent; the leader proposes it while ACLs are on.
    AclInit {
        /// The proposer's clock (Unix milliseconds), the anonymous token's creation time.
        now_ms: u64,
    },
    /// Store the first management token (`/v1/acl/bootstrap`). Rejected once bootstrapped, unless `reset_index` is the index the
    /// bootstrap happened at (Consul's `acl-bootstrap-reset` file).
    AclBootstrap {
        /// The new token; it is linked to the global-management policy at apply.
        token: Box<AclToken>,
        /// 0, or the reset index an operator wrote to the reset file.
        reset_index: u64,
    },
    /// Create or update a token, keyed by its accessor ID. Its policy and role links must exist; its secret cannot change or be another token's.
    AclTokenSet(Box<AclToken>),
    /// Delete a token. Rejected for the anonymous token; a no-op for an unknown one.
    AclTokenDelete {
        /// The accessor ID.
        accessor_id: String,
    },
    /// Create or update a policy, keyed by its ID. Its name must be unique; the built-in management policy's rules cannot change.
    AclPolicySet(Box<AclPolicy>),
    /// Delete a policy. Rejected for the built-in ones; a no-op for an unknown one.
    AclPolicyDelete {
        /// The policy ID.
        id: String,
    },
    /// Create or update a role, keyed by its ID. Its name must be unique and its policy links must exist.
    AclRoleSet(Box<AclRole>),
    /// Delete a role; a no-op for an unknown one.
    AclRoleDelete {
        /// The role ID.
        id: String,
    },
    /// Create or update an auth method, keyed by its name. Its type, token locality, max token TTL and config are checked again.
    AclAuthMethodSet(Box<AclAuthMethod>),
    /// Delete an auth method with its binding rules and every token minted by logging in through it; a no-op for an unknown one.
    AclAuthMethodDelete {
        /// The method's name.
        name: String,
    },
    /// Create or update a binding rule, keyed by its ID. Its method must exist, its selector parse and its bind name render.
    AclBindingRuleSet(Box<AclBindingRule>),
    /// Delete a binding rule; a no-op for an unknown one.
    AclBindingRuleDelete {
        /// The rule ID.
        id: String,
    },
    /// Store the autopilot configuration; with `cas`, only if the stored one's `modify_index` is that (0: none is
    /// stored). Answers `Bool(false)` when the check fails.
    AutopilotSet {
        /// The configuration; its indexes are set at apply.
        config: crate::autopilot::AutopilotConfig,
        /// The expected `modify_index`.
        cas: Option<u64>,
    },
    /// Start staging a snapshot restore (`PUT /v1/snapshot`): `len` bytes of `State::encode_snapshot` output whose
    /// SHA-256 is `sha256` will follow in `RestoreChunk`s. Replaces any unfinished staging, whatever its ID.
    /// Rejected when `len` is over `MAX_RESTORE_LEN`.
    RestoreBegin {
        /// The restore's ID, drawn by the proposer.
        id: String,
        /// The snapshot's length in bytes.
        len: u64,
        /// The SHA-256 of the snapshot's bytes.
        sha256: [u8; 32],
    },
    /// Append bytes to the staged restore `id`. Rejected (nothing staged changes) when `id` is not the one staging,
    /// `offset` is not the number of bytes staged so far, the chunk is over `MAX_RESTORE_CHUNK`, or it would pass `len`.
    RestoreChunk {
        /// The restore's ID.
        id: String,
        /// Where the bytes go: the number of bytes staged so far.
        offset: u64,
        /// The bytes.
        #[serde(with = "crate::serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Replace the whole state with the staged snapshot `id`, after checking its length and SHA-256 and decoding it.
    /// Rejected, with nothing changed, for any other ID or when a check fails.
    RestoreCommit {
        /// The restore's ID.
        id: String,
    },
    /// Store a batch of network coordinates (at most `MAX_COORDINATE_BATCH`, each finite and of
    /// `COORDINATE_DIMENSIONS` dimensions, or the whole batch is refused). An update for a node that is not in the
    /// catalog is skipped: agents send coordinates asynchronously, so the node may have been deregistered since.
    CoordinateBatchUpdate {
        /// The updates, applied in order (a later one for the same node wins).
        updates: Vec<crate::coordinate::NodeCoordinate>,
    },
    /// Create (`create`: the ID must be new) or update (the ID must exist) a prepared query. Its definition, name
    /// uniqueness, template and session are checked again (`check_prepared_query`); its indexes are set at apply.
    PreparedQuerySet {
        /// The query, its ID drawn by the proposer.
        query: Box<crate::prepared_query::PreparedQuery>,
        /// Whether this creates the query.
        create: bool,
    },
    /// Delete a prepared query; rejected for an unknown ID.
    PreparedQueryDelete {
        /// The query's ID.
        id: String,
    },
    /// Store a config entry (`PUT /v1/config`), validated again from its body at apply. With `cas`, only if the stored
    /// entry's `modify_index` is that, or for 0 only if none is stored; `Bool(false)` otherwise.
    ConfigEntrySet {
        /// The entry; its indexes are set at apply.
        entry: Box<crate::config_entry::ConfigEntry>,
        /// The expected `modify_index`.
        cas: Option<u64>,
    },
    /// Delete a config entry (`DELETE /v1/config/:kind/:name`). With `cas`, only if the stored entry's `modify_index`
    /// is that (0 never deletes); `Bool(false)` otherwise. Rejected for a kind roster does not store.
    ConfigEntryDelete {
        /// The entry's kind.
        kind: String,
        /// The entry's name.
        name: String,
        /// The expected `modify_index`.
        cas: Option<u64>,
    },
    /// Submit a cluster job's spec (`PUT /v1/jobs`): canonical JSON, read again at apply (`JobShape::from_spec`), whose
    /// `placement.nodes` must be catalog nodes. A spec equal to the running version's changes nothing; any other
    /// becomes a new version, and a stopped job starts again.
    JobSubmit {
        /// The spec, canonical JSON (at most `MAX_JOB_SPEC_LEN` bytes).
        spec: String,
        /// The proposer's clock (Unix ms), the version's submit time.
        now_ms: u64,
    },
    /// Stop a job (`DELETE /v1/job/:name`): every allocation is to stop; with `purge`, the job and its allocations
    /// are removed at once. `Bool(false)` for an unknown job.
    JobStop {
        /// The job's name.
        name: String,
        /// Remove the job and its allocations instead of keeping them stopped.
        purge: bool,
    },
    /// Make a kept version's spec the job's newest version (`PUT /v1/job/:name/revert`). Rejected for an unknown job
    /// or version.
    JobRevert {
        /// The job's name.
        name: String,
        /// The version to go back to.
        version: u64,
        /// The proposer's clock (Unix ms).
        now_ms: u64,
    },
    /// The leader scheduler's plan: allocations to add, stop and remove, rollout marks and reverts, per job. Refused
    /// whole when any job's indexes moved since the plan was computed, or any part does not fit the state.
    JobPlanApply {
        /// The jobs' plans.
        plans: Vec<crate::job::JobPlan>,
        /// The leader's clock (Unix ms), new allocations' creation time.
        now_ms: u64,
    },
    /// A node's agent reports on its allocations (at most `MAX_ALLOC_REPORTS`). A report for an allocation that is
    /// gone or on another node is skipped, as the agent may report after a plan moved it.
    AllocReport {
        /// The reporting node.
        node: String,
        /// The reports.
        reports: Vec<crate::job::AllocStatusReport>,
        /// The reporter's clock (Unix ms), from which `healthy_since_ms` counts.
        now_ms: u64,
    },
    /// A node's agent reports the drivers it can use; none removes the node's host record.
    HostReport {
        /// The node.
        node: String,
        /// Its drivers (at most `MAX_HOST_DRIVERS`).
        drivers: Vec<String>,
        /// The reporter's clock (Unix ms).
        now_ms: u64,
    },
    /// The leader's tombstone GC (Consul's `TombstoneRequest` reap): forget the KV tombstones of deletions at or
    /// before `reap_index`, raising the floor that queries of reaped keys and prefixes report, so no index goes
    /// back; and forget lock-delays that have run out by `now_ms`. The leader proposes it once those deletions are
    /// older than the tombstone TTL; every server applies it the same way, since both bounds are in the entry.
    TombstoneReap {
        /// Tombstones of deletions at this index or before are removed.
        reap_index: u64,
        /// The leader's clock (Unix ms): lock-delays that ended by then are dropped.
        now_ms: u64,
    },
}

/// A catalog registration, as `PUT /v1/catalog/register` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Registration {
    /// The node; its indexes are ignored.
    pub node: Node,
    /// Leave an existing node's fields as they are.
    pub skip_node_update: bool,
    /// A service instance to upsert; its indexes are ignored.
    pub service: Option<Service>,
    /// Checks to upsert; their indexes, `node`, `service_name` and `service_tags` are filled at apply time.
    pub checks: Vec<HealthCheck>,
}

/// The outcome of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// The command was applied; `false` when a condition (CAS) did not hold and nothing changed.
    Bool(bool),
    /// The command cannot be applied to this state; nothing changed. The text is for the client.
    Rejected(String),
}

/// Everything applying a command produced: its `CommandResult`, or for a `Command::Txn` the transaction's results or errors.
///
/// Kept apart from `CommandResult` so that callers that never propose transactions match on the two plain outcomes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A command other than `Txn`.
    Result(CommandResult),
    /// A `Command::Txn`.
    Txn(TxnOutcome),
}

impl Outcome {
    /// The plain result: a transaction counts as `Bool(true)` when applied and `Bool(false)` when rolled back.
    pub fn into_result(self) -> CommandResult {
        match self {
            Outcome::Result(result) => result,
            Outcome::Txn(TxnOutcome::Applied(_)) => CommandResult::Bool(true),
            Outcome::Txn(TxnOutcome::RolledBack(_)) => CommandResult::Bool(false),
        }
    }
}
