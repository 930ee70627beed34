//! roster's replicated state: the KV store and the service catalog that every server holds, the `Command`s that change them, the queries that read them, and the watch keys that let a blocking query wake only when its own answer changed.
//!
//! # Layout
//! - `model`: the persisted records (KV entries, nodes, services, checks, sessions); `acl`: the ACL tokens, policies and roles. Their serde form is the Raft log and snapshot schema.
//! - `autopilot`: `AutopilotConfig`, the replicated autopilot settings.
//! - `coordinate`: the network coordinates table's row, its update check, and the sort by estimated round trip (`?near`).
//! - `prepared_query`: prepared queries (`/v1/query`): the record, its checks, templates and name resolution.
//! - `config_entry`: `ConfigEntry`, Consul's `service-defaults` and `proxy-defaults` config entries, read and validated.
//! - `job`: cluster jobs, their allocations, hosts' driver reports, and the scheduler's plan.
//! - `command`: the `Command`s a Raft entry carries and their `CommandResult`.
//! - `state`: `State`, with `apply` (the only mutation) and the read queries; each query returns its data plus the index that covers it.
//! - `query`: `Query`, reads as data (what client agents send to servers), evaluated into an owned `Answer` with its index and watch keys.
//! - `watch`: `WatchKey`s, the `Changes` an apply produced, and `Watchers`, the registry that maps changes to parked waiters.
//! - `txn`: the operations of a transaction (`Command::Txn`, `Query::Txn`) and their results.
//! - `snapshot`: versioned encode/decode of a whole `State`.
//! - `duration`: the Go-duration parser and the session TTL rule that apply, the leader's timers and the edge share.
//! - `limits`: the size limits the HTTP edge and `apply` both hold every command to.
//!
//! # Invariants
//! This crate is deterministic: no I/O, no clock, no randomness, no threads.
//! Applying the same commands at the same indexes to two `State`s gives byte-identical snapshots, which is what keeps replicas from diverging.
//! `apply` never panics; a command that cannot be applied, or that exceeds a limit of `limits`, is a deterministic `CommandResult::Rejected`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod acl;
mod autopilot;
mod command;
mod config_entry;
mod coordinate;
mod duration;
mod error;
mod job;
mod limits;
mod model;
mod prepared_query;
mod query;
#[doc(hidden)]
pub mod serde_bytes;
mod snapshot;
mod state;
mod txn;
mod watch;

pub use acl::{
    ANONYMOUS_TOKEN_ACCESSOR_ID, ANONYMOUS_TOKEN_SECRET, AclAuthMethod, AclBindingRule, AclLink, AclNodeIdentity,
    AclPolicy, AclRole, AclServiceIdentity, AclTemplatedPolicy, AclToken, GLOBAL_MANAGEMENT_POLICY_ID,
    GLOBAL_MANAGEMENT_POLICY_NAME, GLOBAL_READ_ONLY_POLICY_ID, GLOBAL_READ_ONLY_POLICY_NAME, ResolvedToken,
    policy_hash, role_hash, secret_matches, token_hash,
};
pub use autopilot::AutopilotConfig;
pub use command::{Command, CommandResult, Outcome, Registration};
pub use config_entry::{
    ConfigEntry, KindError, MAX_CONFIG_ENTRY_LEN, PROXY_DEFAULTS, PROXY_DEFAULTS_NAME, SERVICE_DEFAULTS, check_kind,
    normalize_name,
};
pub use coordinate::{
    COORDINATE_DIMENSIONS, MAX_COORDINATE_BATCH, NodeCoordinate, check_update as check_coordinate_update,
    sort_by_distance,
};
pub use duration::{SESSION_TTL_MAX, SESSION_TTL_MIN, parse_go_duration, session_ttl};
pub use error::{Error, Result};
pub use job::{
    ALLOC_META, AllocStatusReport, Allocation, ClientStatus, Desired, Host, Job, JobDetail, JobPlan, JobShape,
    JobVersion, MAX_ALLOC_MESSAGE_LEN, MAX_ALLOC_REPORTS, MAX_HOST_DRIVERS, MAX_JOB_SPEC_LEN, MAX_JOB_VERSIONS,
    MAX_REPORTED_TASKS, NodeAllocation, Placed, Rollout, SchedulingState, TaskState,
};
pub use limits::{
    MAX_KEY_LEN, MAX_META_KEY_LEN, MAX_META_PAIRS, MAX_META_VALUE_LEN, MAX_VALUE_SIZE, check_key, check_service_meta,
    check_value,
};
pub use model::{
    CheckStatus, HealthCheck, KvEntry, Node, Service, ServiceAddress, ServiceCheckRef, Session, SessionBehavior,
    Weights,
};
pub use prepared_query::{
    CompiledTemplate, MAX_PREPARED_QUERY_SIZE, NEAR_AGENT, NEAR_IP, PreparedQuery, PreparedQueryAnswer, QueryDns,
    QueryFailover, QueryTemplate, REDACTED_TOKEN, RenderContext, ServiceQuery, TEMPLATE_NAME_PREFIX_MATCH,
    check_prepared_query, is_uuid,
};
pub use query::{Answer, InstanceHealth, Query, ServiceEntry, Usage};
pub use roster_coordinate::Coordinate;
pub use snapshot::{SNAPSHOT_VERSION, snapshot_version};
pub use state::acl::{MAX_ACL_DESCRIPTION_LEN, MAX_ACL_LINKS, MAX_ACL_NAME_LEN, MAX_ACL_RULES_LEN, jwt_config};
pub use state::graveyard::Tombstones;
pub use state::restore::{MAX_RESTORE_CHUNK, MAX_RESTORE_LEN};
pub use state::{HealthEntry, State};
pub use txn::{CatalogVerb, KvVerb, MAX_TXN_OPS, TxnError, TxnOp, TxnOutcome, TxnResult};
pub use watch::{Changes, Table, WatchKey, Watchers};
