//! Transactions on `State`: every operation runs on the state itself after a savepoint, and a failure rolls the state back to it.
//!
//! The savepoint (`journal.rs`) journals the large tables and copies only the small rest, so a transaction costs what its operations touch rather than a copy of the whole state; each operation still reuses the ordinary mutation code unchanged, and a failure cannot leave anything half-applied, not even an index or a watch key (changes are reported only when every operation succeeded).
//! Like Consul, a transaction runs every operation even after one failed, so that the client learns every error at once.

use super::State;
use super::session::{LockOutcome, LockRequest, without_value};
use crate::command::Registration;
use crate::limits::{check_key, check_value};
use crate::model::{HealthCheck, KvEntry, Node, Service};
use crate::txn::{CatalogVerb, KvVerb, TxnError, TxnOp, TxnOutcome, TxnResult};
use crate::watch::Changes;

impl State {
    pub(super) fn apply_txn(&mut self, index: u64, ops: &[TxnOp], now_ms: u64, changes: &mut Changes) -> TxnOutcome {
        let savepoint = self.savepoint();
        let mut txn_changes = Changes::default();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            match self.txn_op(index, op, now_ms, &mut txn_changes) {
                Ok(mut produced) => results.append(&mut produced),
                Err(what) => errors.push(TxnError { op_index: op_index as u64, what }),
            }
        }
        if !errors.is_empty() {
            self.roll_back_to(savepoint);
            return TxnOutcome::RolledBack(errors);
        }
        self.release(savepoint);
        changes.merge(txn_changes);
        TxnOutcome::Applied(results)
    }

    /// Runs a transaction of read operations only (`TxnOp::is_write` false for each); a write operation in it fails.
    pub fn txn_read(&self, ops: &[TxnOp]) -> TxnOutcome {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            match self.txn_get(op) {
                Ok(mut produced) => results.append(&mut produced),
                Err(what) => errors.push(TxnError { op_index: op_index as u64, what }),
            }
        }
        if errors.is_empty() { TxnOutcome::Applied(results) } else { TxnOutcome::RolledBack(errors) }
    }

    fn txn_op(&mut self, index: u64, op: &TxnOp, now_ms: u64, changes: &mut Changes) -> Result<Vec<TxnResult>, String> {
        if !op.is_write() {
            return self.txn_get(op);
        }
        let produced = match op {
            TxnOp::Kv { verb, key, value, flags, index: expected, session } => {
                if key.is_empty() && *verb != KvVerb::DeleteTree {
                    return Err("Must provide key".into());
                }
                // The same limits as a lone KV command; the failed op rolls the whole transaction back.
                check_key(key)?;
                check_value(value)?;
                let write = KvWrite { key, value, flags: *flags, expected: *expected, session, now_ms };
                self.txn_kv_write(index, *verb, &write, changes)?
            }
            TxnOp::Node { verb, node } => self.txn_node(index, *verb, node, changes)?,
            TxnOp::Service { verb, node, service } => self.txn_service(index, *verb, node, service, changes)?,
            TxnOp::Check { verb, check } => self.txn_check(index, *verb, check, changes)?,
        };
        // A catalog change may have taken away what a session stood on.
        self.invalidate_sessions(index, changes);
        Ok(produced)
    }

    fn txn_kv_write(
        &mut self,
        index: u64,
        verb: KvVerb,
        w: &KvWrite<'_>,
        changes: &mut Changes,
    ) -> Result<Vec<TxnResult>, String> {
        let key = w.key;
        match verb {
            KvVerb::Set => self.kv_write(index, key, w.value, w.flags, changes),
            KvVerb::Cas => {
                if self.kv.get(key).map_or(0, |e| e.modify_index) != w.expected {
                    return Err(format!("failed to set key {key:?}, index is stale"));
                }
                self.kv_write(index, key, w.value, w.flags, changes);
            }
            KvVerb::Lock => {
                let request = LockRequest { key, value: w.value, flags: w.flags, session: w.session, now_ms: w.now_ms };
                match self.kv_lock(index, &request, changes)? {
                    LockOutcome::Acquired => {}
                    LockOutcome::Held => return Err(format!("failed to lock key {key:?}, lock is already held")),
                    LockOutcome::Delayed => return Err(format!("failed to lock key {key:?} due to lock delay")),
                }
            }
            KvVerb::Unlock => {
                if !self.kv_unlock(index, key, w.value, w.flags, w.session, changes) {
                    return Err(format!(
                        "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                    ));
                }
            }
            KvVerb::Delete => {
                self.kv_remove(index, key, changes);
                return Ok(Vec::new());
            }
            KvVerb::DeleteTree => {
                let keys: Vec<String> = self.kv_range(key).map(|e| e.key.clone()).collect();
                for key in keys {
                    self.kv_remove(index, &key, changes);
                }
                return Ok(Vec::new());
            }
            KvVerb::DeleteCas => {
                if self.kv.get(key).is_some_and(|e| e.modify_index != w.expected) {
                    return Err(format!("failed to delete key {key:?}, index is stale"));
                }
                self.kv_remove(index, key, changes);
                return Ok(Vec::new());
            }
            // Reads are answered by `txn_get`.
            KvVerb::Get
            | KvVerb::GetOrEmpty
            | KvVerb::GetTree
            | KvVerb::CheckIndex
            | KvVerb::CheckSession
            | KvVerb::CheckNotExists => return Err(format!("{verb:?} is not a write")),
        }
        Ok(self.kv.get(key).map(|e| TxnResult::Kv(without_value(e))).into_iter().collect())
    }

    fn txn_node(
        &mut self,
        index: u64,
        verb: CatalogVerb,
        node: &Node,
        changes: &mut Changes,
    ) -> Result<Vec<TxnResult>, String> {
        let name = &node.node;
        let current = self.nodes.get(name).map(|n| n.modify_index);
        match verb {
            CatalogVerb::Set | CatalogVerb::Cas => {
                if verb == CatalogVerb::Cas && current.unwrap_or(0) != node.modify_index {
                    return Err(format!("failed to set node {name:?}, index is stale"));
                }
                let reg = Registration { node: node.clone(), ..Registration::default() };
                self.validate_registration(&reg)?;
                self.register(index, &reg, changes);
                Ok(self.nodes.get(name).cloned().map(TxnResult::Node).into_iter().collect())
            }
            CatalogVerb::Delete | CatalogVerb::DeleteCas => {
                if verb == CatalogVerb::DeleteCas && current != Some(node.modify_index) {
                    return Err(format!("failed to delete node {name:?}, index is stale"));
                }
                self.deregister(index, name, None, None, changes);
                Ok(Vec::new())
            }
            CatalogVerb::Get => self.txn_get(&TxnOp::Node { verb, node: node.clone() }),
        }
    }

    fn txn_service(
        &mut self,
        index: u64,
        verb: CatalogVerb,
        node: &str,
        service: &Service,
        changes: &mut Changes,
    ) -> Result<Vec<TxnResult>, String> {
        let id = super::catalog::service_id(service);
        let current = self.service(node, &id).map(|s| s.modify_index);
        match verb {
            CatalogVerb::Set | CatalogVerb::Cas => {
                if verb == CatalogVerb::Cas && current.unwrap_or(0) != service.modify_index {
                    return Err(format!("failed to set service {id:?} on node {node:?}, index is stale"));
                }
                let reg = self.registration_on(node, Some(service.clone()), Vec::new())?;
                self.register(index, &reg, changes);
                Ok(self.service(node, &id).cloned().map(TxnResult::Service).into_iter().collect())
            }
            CatalogVerb::Delete | CatalogVerb::DeleteCas => {
                if verb == CatalogVerb::DeleteCas && current != Some(service.modify_index) {
                    return Err(format!("failed to delete service {id:?} on node {node:?}, index is stale"));
                }
                self.deregister(index, node, Some(&id), None, changes);
                Ok(Vec::new())
            }
            CatalogVerb::Get => self.txn_get(&TxnOp::Service { verb, node: node.into(), service: service.clone() }),
        }
    }

    fn txn_check(
        &mut self,
        index: u64,
        verb: CatalogVerb,
        check: &HealthCheck,
        changes: &mut Changes,
    ) -> Result<Vec<TxnResult>, String> {
        let (node, id) = (&check.node, &check.check_id);
        let current = self.check(node, id).map(|c| c.modify_index);
        match verb {
            CatalogVerb::Set | CatalogVerb::Cas => {
                if verb == CatalogVerb::Cas && current.unwrap_or(0) != check.modify_index {
                    return Err(format!("failed to set check {id:?} on node {node:?}, index is stale"));
                }
                let reg = self.registration_on(node, None, vec![check.clone()])?;
                self.register(index, &reg, changes);
                Ok(self.check(node, id).cloned().map(TxnResult::Check).into_iter().collect())
            }
            CatalogVerb::Delete | CatalogVerb::DeleteCas => {
                if verb == CatalogVerb::DeleteCas && current != Some(check.modify_index) {
                    return Err(format!("failed to delete check {id:?} on node {node:?}, index is stale"));
                }
                self.deregister(index, node, None, Some(id), changes);
                Ok(Vec::new())
            }
            CatalogVerb::Get => self.txn_get(&TxnOp::Check { verb, check: check.clone() }),
        }
    }

    /// A registration of a service or checks on an existing node, leaving the node as it is.
    fn registration_on(
        &self,
        node: &str,
        service: Option<Service>,
        checks: Vec<HealthCheck>,
    ) -> Result<Registration, String> {
        let Some(existing) = self.nodes.get(node) else { return Err("Missing node registration".into()) };
        let reg = Registration { node: existing.clone(), skip_node_update: true, service, checks };
        self.validate_registration(&reg)?;
        Ok(reg)
    }

    /// The read operations, with Consul's texts for what they did not find.
    fn txn_get(&self, op: &TxnOp) -> Result<Vec<TxnResult>, String> {
        let one = |result: TxnResult| Ok(vec![result]);
        match op {
            TxnOp::Kv { verb, key, index, session, .. } => {
                if key.is_empty() {
                    return Err("Must provide key".into());
                }
                let entry = self.kv.get(key);
                match verb {
                    KvVerb::Get => match entry {
                        Some(e) => one(TxnResult::Kv(e.clone())),
                        None => Err(format!("key {key:?} doesn't exist")),
                    },
                    KvVerb::GetOrEmpty => one(TxnResult::Kv(entry.cloned().unwrap_or_else(|| empty_entry(key)))),
                    KvVerb::GetTree => Ok(self.kv_range(key).map(|e| TxnResult::Kv(e.clone())).collect()),
                    KvVerb::CheckIndex => match entry {
                        None => Err(format!("key {key:?} does not exist")),
                        Some(e) if e.modify_index != *index => {
                            Err(format!("current modify index {} != {index}", e.modify_index))
                        }
                        Some(e) => one(TxnResult::Kv(without_value(e))),
                    },
                    KvVerb::CheckSession => match entry {
                        None => Err(format!("failed to check session, key {key:?} doesn't exist")),
                        Some(e) if e.session.as_deref().unwrap_or("") != session => Err(format!(
                            "failed session check for key {key:?}, current session {:?} != {session:?}",
                            e.session.as_deref().unwrap_or("")
                        )),
                        Some(e) => one(TxnResult::Kv(without_value(e))),
                    },
                    KvVerb::CheckNotExists => match entry {
                        Some(_) => Err(format!("key {key:?} exists")),
                        None => Ok(Vec::new()),
                    },
                    _ => Err(format!("{verb:?} is a write, not allowed in a read-only transaction")),
                }
            }
            TxnOp::Node { verb: CatalogVerb::Get, node } => match self.nodes.get(&node.node) {
                Some(n) => one(TxnResult::Node(n.clone())),
                None => Err(format!("node {:?} doesn't exist", node.node)),
            },
            TxnOp::Service { verb: CatalogVerb::Get, node, service } => {
                let id = super::catalog::service_id(service);
                match self.service(node, &id) {
                    Some(s) => one(TxnResult::Service(s.clone())),
                    None => Err(format!("service {id:?} on node {node:?} doesn't exist")),
                }
            }
            TxnOp::Check { verb: CatalogVerb::Get, check } => match self.check(&check.node, &check.check_id) {
                Some(c) => one(TxnResult::Check(c.clone())),
                None => Err(format!("check {:?} on node {:?} doesn't exist", check.check_id, check.node)),
            },
            TxnOp::Node { .. } | TxnOp::Service { .. } | TxnOp::Check { .. } => {
                Err("write operations are not allowed in a read-only transaction".into())
            }
        }
    }
}

/// The fields of a KV write operation, gathered so the helpers stay readable.
struct KvWrite<'a> {
    key: &'a str,
    value: &'a [u8],
    flags: u64,
    expected: u64,
    session: &'a str,
    now_ms: u64,
}

/// What `get-or-empty` answers for a missing key: the key and nothing else.
fn empty_entry(key: &str) -> KvEntry {
    KvEntry {
        key: key.to_owned(),
        value: Vec::new(),
        flags: 0,
        lock_index: 0,
        session: None,
        create_index: 0,
        modify_index: 0,
    }
}
