//! `State`: the KV store and catalog one server holds, the only code that changes them (`apply`), and the queries that read them.
//!
//! # Indexes
//! Every record carries the Raft index of its creation and last change.
//! Each query returns, with its data, the index that covers it: the highest index of any change that could alter that answer.
//! For a KV key that is the key's ModifyIndex, or the index at which it was deleted (kept as a tombstone); for a prefix, the maximum over live entries and tombstones under it; for a service name, the last change to any of its instances, their checks, or their nodes; for list queries, the table's index.
//! A query index is never 0: Consul's clients treat 0 as "no blocking", so an answer that no change ever touched reports 1.
//! Blocking queries wait until that index exceeds the client's, so an index that only moves when the answer may have changed is what lets a watcher sleep through unrelated writes.
//!
//! # Tombstones
//! Deleted keys leave a tombstone (key → deletion index) so that a blocking query on a deleted key or prefix sees its index move.
//! A tombstone is dropped when the key is written again, or reaped by `Command::TombstoneReap`, which the leader proposes once the deletion is older than the tombstone TTL (Consul's tombstone GC: 15 minutes, in 30-second steps; `agent/src/cluster/tombstone_gc.rs`).
//! Reaping must not send an index backwards, so the highest deletion index reaped is kept as `kv_reaped_index`, a floor under the index of every key and prefix that has no live entry or tombstone above it (Consul's graveyard keeps its max reaped index the same way).
//! The floor is global, not per prefix: after a reap a quiet prefix may report a newer index than its own last change, which costs a watcher one early, unchanged answer, never a missed change.
//!
//! # Bounded maps
//! Every per-name index map holds only what is live: when the last instance of a service name is gone, or a node is deregistered, its entry in `service_index` or `node_index` is folded into `service_index_floor` / `node_index_floor` (the highest index dropped) and removed.
//! A query for a name the map no longer holds reports the floor, which is at least the index the dropped entry had, so a watcher of a removed service still sees its index move past the removal and never go back.
//! Lock-delays are forgotten by the reap once they have run out at the leader's clock carried in the command.

use std::collections::{BTreeMap, BTreeSet};

use crate::acl::{AclAuthMethod, AclBindingRule, AclPolicy, AclRole, AclToken};
use crate::command::{Command, CommandResult, Outcome};
use crate::limits::{check_key, check_value};
use crate::model::{CheckStatus, HealthCheck, KvEntry, Node, Service, Session};
use crate::txn::{MAX_TXN_OPS, TxnError, TxnOutcome};
use crate::watch::{Changes, Table};
use journal::Journaled;

/// (node name, ID): how services and checks are keyed.
pub(crate) type NodeScoped = (String, String);

/// The replicated state of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub(crate) index: u64,
    pub(crate) kv: Journaled<String, KvEntry>,
    pub(crate) kv_tombstones: Journaled<String, u64>,
    pub(crate) nodes: Journaled<String, Node>,
    pub(crate) services: Journaled<NodeScoped, Box<Service>>,
    pub(crate) checks: Journaled<NodeScoped, Box<HealthCheck>>,
    /// Last change to anything a service name's health answer depends on; only for names with live instances (see "Bounded maps").
    pub(crate) service_index: Journaled<String, u64>,
    /// Last change to a node's record, services or checks; only for registered nodes (see "Bounded maps").
    pub(crate) node_index: Journaled<String, u64>,
    /// The highest deletion index of any tombstone reaped: the index floor of keys and prefixes (see "Tombstones").
    pub(crate) kv_reaped_index: u64,
    /// The highest index folded out of `service_index` when a service name lost its last instance.
    pub(crate) service_index_floor: u64,
    /// The highest index folded out of `node_index` when a node was removed.
    pub(crate) node_index_floor: u64,
    pub(crate) table_index: BTreeMap<Table, u64>,
    /// Derived: service name → instances. Rebuilt on snapshot decode.
    pub(crate) service_names: Journaled<String, BTreeSet<NodeScoped>>,
    /// Sessions by ID.
    pub(crate) sessions: Journaled<String, Session>,
    /// Keys whose lock-delay (after their holder's session was destroyed) may still be running.
    pub(crate) lock_delays: BTreeMap<String, session::LockDelay>,
    /// ACL tokens by accessor ID.
    pub(crate) acl_tokens: BTreeMap<String, AclToken>,
    /// Derived: SHA-256 of each token's secret → its accessor ID. Rebuilt on snapshot decode.
    pub(crate) acl_secrets: BTreeMap<[u8; 32], String>,
    /// ACL policies by ID.
    pub(crate) acl_policies: BTreeMap<String, AclPolicy>,
    /// ACL roles by ID.
    pub(crate) acl_roles: BTreeMap<String, AclRole>,
    /// The index at which ACLs were bootstrapped; `None` until then.
    pub(crate) acl_bootstrap_index: Option<u64>,
    /// ACL auth methods by name.
    pub(crate) acl_auth_methods: BTreeMap<String, AclAuthMethod>,
    /// ACL binding rules by ID.
    pub(crate) acl_binding_rules: BTreeMap<String, AclBindingRule>,
    /// The autopilot configuration, once seeded or set.
    pub(crate) autopilot: Option<crate::autopilot::AutopilotConfig>,
    /// A snapshot restore being staged (`Command::RestoreBegin`), until its commit or the next begin.
    pub(crate) restore: Option<std::sync::Arc<restore::Staging>>,
    /// Network coordinates by (node, segment).
    pub(crate) coordinates: BTreeMap<NodeScoped, crate::coordinate::NodeCoordinate>,
    /// Prepared queries by ID.
    pub(crate) prepared_queries: BTreeMap<String, crate::prepared_query::PreparedQuery>,
    /// Config entries by (kind, name).
    pub(crate) config_entries: BTreeMap<(String, String), crate::config_entry::ConfigEntry>,
    /// Cluster jobs by name.
    pub(crate) jobs: BTreeMap<String, crate::job::Job>,
    /// Allocations by (job, sequence number).
    pub(crate) allocations: BTreeMap<(String, u64), crate::job::Allocation>,
    /// Host driver reports by node.
    pub(crate) hosts: BTreeMap<String, crate::job::Host>,
    /// Last change to the allocations on each node; kept after they are gone so the node's watcher sees the removal.
    pub(crate) node_alloc_index: BTreeMap<String, u64>,
}

/// One service instance with its node and every check that affects it (the node's checks and its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEntry<'a> {
    /// The node the instance runs on.
    pub node: &'a Node,
    /// The instance.
    pub service: &'a Service,
    /// Node checks first, then the instance's checks, each group ordered by check ID.
    pub checks: Vec<&'a HealthCheck>,
}

impl HealthEntry<'_> {
    /// The worst status of all the entry's checks; passing when it has none.
    pub fn status(&self) -> CheckStatus {
        self.checks.iter().map(|c| c.status).max().unwrap_or(CheckStatus::Passing)
    }
}

impl State {
    /// An empty state at index 0.
    pub fn new() -> State {
        State::default()
    }

    /// The index of the last applied entry.
    pub fn last_index(&self) -> u64 {
        self.index
    }

    /// The last change to nodes, services or checks: everything a DNS answer is made of. KV and session writes
    /// leave it alone, so they do not retire cached DNS answers.
    pub fn catalog_index(&self) -> u64 {
        [Table::Nodes, Table::Services, Table::Checks]
            .iter()
            .filter_map(|table| self.table_index.get(table))
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Records that entry `index` carried no command (Raft blank and membership entries).
    pub fn apply_noop(&mut self, index: u64) {
        self.index = self.index.max(index);
    }

    /// Applies one committed command at Raft index `index`.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> (CommandResult, Changes) {
        let (outcome, changes) = self.apply_command(index, cmd);
        (outcome.into_result(), changes)
    }

    /// Applies one committed command at Raft index `index`, keeping a transaction's results.
    pub fn apply_command(&mut self, index: u64, cmd: &Command) -> (Outcome, Changes) {
        let (outcome, changes) = self.apply_unfolded(index, cmd);
        self.fold_removed(&changes);
        (outcome, changes)
    }

    /// `apply_command` before the index entries of what it removed are folded into their floors.
    fn apply_unfolded(&mut self, index: u64, cmd: &Command) -> (Outcome, Changes) {
        if let Command::Txn { ops, now_ms } = cmd {
            self.index = self.index.max(index);
            if ops.len() > MAX_TXN_OPS {
                // Refused whole, before the scratch copy is even made: the count bounds what one entry may cost to apply.
                let what = format!("Transaction contains too many operations ({} > {MAX_TXN_OPS})", ops.len());
                let error = TxnError { op_index: MAX_TXN_OPS as u64, what };
                return (Outcome::Txn(TxnOutcome::RolledBack(vec![error])), Changes::default());
            }
            let mut changes = Changes::default();
            let outcome = self.apply_txn(index, ops, *now_ms, &mut changes);
            return (Outcome::Txn(outcome), changes);
        }
        self.index = self.index.max(index);
        let mut changes = Changes::default();
        // The edge checked these limits already; a peer on the RPC port may not have, and this is where every command passes.
        if let Err(why) = check_limits(cmd) {
            return (Outcome::Result(CommandResult::Rejected(why)), changes);
        }
        let result = match cmd {
            Command::KvSet { key, value, flags } => {
                self.kv_write(index, key, value, *flags, &mut changes);
                CommandResult::Bool(true)
            }
            Command::KvCas { key, value, flags, index: expected } => {
                let current = self.kv.get(key).map_or(0, |e| e.modify_index);
                let holds = current == *expected;
                if holds {
                    self.kv_write(index, key, value, *flags, &mut changes);
                }
                CommandResult::Bool(holds)
            }
            Command::KvDelete { key } => {
                self.kv_remove(index, key, &mut changes);
                CommandResult::Bool(true)
            }
            Command::KvDeleteCas { key, index: expected } => match self.kv.get(key) {
                None => CommandResult::Bool(true),
                Some(e) if e.modify_index != *expected => CommandResult::Bool(false),
                Some(_) => {
                    self.kv_remove(index, key, &mut changes);
                    CommandResult::Bool(true)
                }
            },
            Command::KvDeleteTree { prefix } => {
                let keys: Vec<String> = self.kv_range(prefix).map(|e| e.key.clone()).collect();
                for key in keys {
                    self.kv_remove(index, &key, &mut changes);
                }
                CommandResult::Bool(true)
            }
            Command::Register(reg) => match self.validate_registration(reg) {
                Err(why) => CommandResult::Rejected(why),
                Ok(()) => {
                    self.register(index, reg, &mut changes);
                    self.invalidate_sessions(index, &mut changes);
                    CommandResult::Bool(true)
                }
            },
            Command::Deregister { node, service_id, check_id } => {
                self.deregister(index, node, service_id.as_deref(), check_id.as_deref(), &mut changes);
                self.invalidate_sessions(index, &mut changes);
                CommandResult::Bool(true)
            }
            _ => self.apply_coordination(index, cmd, &mut changes),
        };
        (Outcome::Result(result), changes)
    }

    /// Sessions, locks and transactions: the commands of `session.rs` and `txn.rs`.
    fn apply_coordination(&mut self, index: u64, cmd: &Command, changes: &mut Changes) -> CommandResult {
        match cmd {
            Command::SessionCreate(session) => match self.validate_session(session) {
                Err(why) => CommandResult::Rejected(why),
                Ok(()) => {
                    self.session_create(index, session, changes);
                    CommandResult::Bool(true)
                }
            },
            Command::SessionDestroy { id, now_ms } => {
                self.session_destroy(index, id, Some(*now_ms), changes);
                CommandResult::Bool(true)
            }
            Command::KvLock { key, value, flags, session, now_ms } => {
                let request = session::LockRequest { key, value, flags: *flags, session, now_ms: *now_ms };
                match self.kv_lock(index, &request, changes) {
                    Ok(outcome) => CommandResult::Bool(outcome == session::LockOutcome::Acquired),
                    Err(why) => CommandResult::Rejected(why),
                }
            }
            Command::KvUnlock { key, value, flags, session } => {
                CommandResult::Bool(self.kv_unlock(index, key, value, *flags, session, changes))
            }
            Command::AclInit { .. }
            | Command::AclBootstrap { .. }
            | Command::AclTokenSet(_)
            | Command::AclTokenDelete { .. }
            | Command::AclPolicySet(_)
            | Command::AclPolicyDelete { .. }
            | Command::AclRoleSet(_)
            | Command::AclRoleDelete { .. }
            | Command::AclAuthMethodSet(_)
            | Command::AclAuthMethodDelete { .. }
            | Command::AclBindingRuleSet(_)
            | Command::AclBindingRuleDelete { .. } => self.apply_acl(index, cmd, changes),
            Command::AutopilotSet { config, cas } => self.autopilot_set(index, config, *cas, changes),
            Command::RestoreBegin { id, len, sha256 } => self.restore_begin(id, *len, *sha256),
            Command::RestoreChunk { id, offset, bytes } => self.restore_chunk(id, *offset, bytes),
            Command::RestoreCommit { id } => self.restore_commit(index, id, changes),
            Command::CoordinateBatchUpdate { updates } => self.coordinate_batch_update(index, updates, changes),
            Command::PreparedQuerySet { query, create } => self.prepared_query_set(index, query, *create, changes),
            Command::PreparedQueryDelete { id } => self.prepared_query_delete(index, id, changes),
            Command::ConfigEntrySet { entry, cas } => self.config_entry_set(index, entry, *cas, changes),
            Command::ConfigEntryDelete { kind, name, cas } => {
                self.config_entry_delete(index, kind, name, *cas, changes)
            }
            Command::JobSubmit { spec, now_ms } => self.job_submit(index, spec, *now_ms, changes),
            Command::JobStop { name, purge } => self.job_stop(index, name, *purge, changes),
            Command::JobRevert { name, version, now_ms } => self.job_revert(index, name, *version, *now_ms, changes),
            Command::JobPlanApply { plans, now_ms } => self.job_plan_apply(index, plans, *now_ms, changes),
            Command::AllocReport { node, reports, now_ms } => self.alloc_report(index, node, reports, *now_ms, changes),
            Command::HostReport { node, drivers, now_ms } => self.host_report(index, node, drivers, *now_ms, changes),
            Command::TombstoneReap { reap_index, now_ms } => self.tombstone_reap(index, *reap_index, *now_ms),
            // The KV and catalog commands, and transactions, are applied by `apply_command` itself.
            Command::KvSet { .. }
            | Command::KvCas { .. }
            | Command::KvDelete { .. }
            | Command::KvDeleteCas { .. }
            | Command::KvDeleteTree { .. }
            | Command::Register(_)
            | Command::Deregister { .. }
            | Command::Txn { .. } => CommandResult::Rejected("internal: misrouted command".into()),
        }
    }
}

/// The size limits of a command other than `Txn` (whose operations `txn_op` checks one by one).
/// Service meta is checked by `validate_registration`, which transactions share.
fn check_limits(cmd: &Command) -> Result<(), String> {
    match cmd {
        Command::KvSet { key, value, .. }
        | Command::KvCas { key, value, .. }
        | Command::KvLock { key, value, .. }
        | Command::KvUnlock { key, value, .. } => {
            check_key(key)?;
            check_value(value)
        }
        Command::KvDelete { key } | Command::KvDeleteCas { key, .. } => check_key(key),
        Command::KvDeleteTree { prefix } => check_key(prefix),
        _ => Ok(()),
    }
}

pub(crate) mod acl;
mod autopilot;
mod catalog;
mod config_entry;
mod coordinate;
pub(crate) mod graveyard;
mod job;
mod journal;
mod kv;
mod prepared_query;
mod query;
pub(crate) mod restore;
pub(crate) mod session;
mod txn;

#[cfg(test)]
pub(crate) mod tests;
