//! Read queries of `State`. Each returns its answer and the index that covers it (see the module essay in `state`).

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::on_node;
use super::{HealthEntry, State};
use crate::model::{CheckStatus, HealthCheck, KvEntry, Node, Service, Session};
use crate::watch::Table;

/// Query indexes are at least 1: Consul clients read 0 as "do not block".
fn at_least_one(index: u64) -> u64 {
    index.max(1)
}

impl State {
    /// One key: its entry (if live) and the index of its last write or deletion.
    pub fn kv_get(&self, key: &str) -> (Option<&KvEntry>, u64) {
        let entry = self.kv.get(key);
        // A key never written, or whose tombstone was reaped, reports the reap floor: never below what it had.
        let index = entry
            .map(|e| e.modify_index)
            .or_else(|| self.kv_tombstones.get(key).copied())
            .unwrap_or(self.kv_reaped_index);
        (entry, at_least_one(index))
    }

    /// Every live entry under `prefix`, sorted by key, and the last change under it.
    pub fn kv_list(&self, prefix: &str) -> (Vec<&KvEntry>, u64) {
        let entries: Vec<&KvEntry> = self.kv_range(prefix).collect();
        let live = entries.iter().map(|e| e.modify_index).max().unwrap_or(0);
        // The reap floor too: a reaped tombstone under the prefix may have been its newest change.
        (entries, at_least_one(live.max(self.tombstone_index(prefix)).max(self.kv_reaped_index)))
    }

    /// Keys under `prefix`; with a separator, keys are folded at the first separator after the prefix (`?keys&separator=/`).
    pub fn kv_keys(&self, prefix: &str, separator: Option<&str>) -> (Vec<String>, u64) {
        let (entries, index) = self.kv_list(prefix);
        let mut keys: Vec<String> = Vec::with_capacity(entries.len());
        for entry in entries {
            let folded = match separator.filter(|s| !s.is_empty()) {
                Some(sep) => match entry.key[prefix.len()..].find(sep) {
                    Some(pos) => &entry.key[..prefix.len() + pos + sep.len()],
                    None => entry.key.as_str(),
                },
                None => entry.key.as_str(),
            };
            // Entries come sorted, so folded duplicates are adjacent.
            if keys.last().map(String::as_str) != Some(folded) {
                keys.push(folded.to_owned());
            }
        }
        (keys, index)
    }

    /// Every node, by name.
    pub fn nodes(&self) -> (Vec<&Node>, u64) {
        (self.nodes.values().collect(), self.table(Table::Nodes))
    }

    /// One node and the last change to it, its services or its checks.
    pub fn node(&self, name: &str) -> (Option<&Node>, u64) {
        (self.nodes.get(name), self.node_change(name))
    }

    /// The service instances on a node, by ID.
    pub fn node_services(&self, name: &str) -> (Vec<&Service>, u64) {
        let services = on_node(&self.services, name).map(|(_, s)| &**s).collect();
        (services, self.node_change(name))
    }

    /// Every service name with the union of its instances' tags (sorted, deduplicated).
    pub fn service_names(&self) -> (BTreeMap<&str, BTreeSet<&str>>, u64) {
        let mut names: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for service in self.services.values() {
            names.entry(&service.service).or_default().extend(service.tags.iter().map(String::as_str));
        }
        (names, self.table(Table::Services))
    }

    /// The instances of a service that carry every tag in `tags` (case-insensitive), ordered by node then ID, each with its node.
    pub fn service_instances(&self, name: &str, tags: &[String]) -> (Vec<(&Node, &Service)>, u64) {
        let mut instances = Vec::new();
        for key in self.service_names.get(name).into_iter().flatten() {
            let (Some(service), Some(node)) = (self.services.get(key), self.nodes.get(&key.0)) else {
                continue;
            };
            if has_tags(service, tags) {
                instances.push((node, &**service));
            }
        }
        (instances, self.service_change(name))
    }

    /// The instances of a service with their health checks; with `passing_only`, instances with any non-passing check are left out.
    pub fn service_health(&self, name: &str, tags: &[String], passing_only: bool) -> (Vec<HealthEntry<'_>>, u64) {
        let (instances, index) = self.service_instances(name, tags);
        let entries = instances
            .into_iter()
            .map(|(node, service)| HealthEntry { node, service, checks: self.instance_checks(&node.node, &service.id) })
            .filter(|entry| !passing_only || entry.status() == CheckStatus::Passing)
            .collect();
        (entries, index)
    }

    /// Every check of every instance of a service.
    pub fn service_checks(&self, name: &str) -> (Vec<&HealthCheck>, u64) {
        let checks = self.checks.values().filter(|c| c.service_name == name).map(|c| &**c).collect();
        (checks, self.service_change(name))
    }

    /// Every check on a node, node and service checks alike.
    pub fn node_checks(&self, node: &str) -> (Vec<&HealthCheck>, u64) {
        let checks = on_node(&self.checks, node).map(|(_, c)| &**c).collect();
        (checks, self.node_change(node))
    }

    /// Every check in `status`, or every check when `status` is None (Consul's `any`).
    pub fn checks_in_state(&self, status: Option<CheckStatus>) -> (Vec<&HealthCheck>, u64) {
        let checks = self.checks.values().filter(|c| status.is_none_or(|s| c.status == s)).map(|c| &**c).collect();
        (checks, self.table(Table::Checks))
    }

    /// One check by node and ID.
    pub fn check(&self, node: &str, check_id: &str) -> Option<&HealthCheck> {
        self.checks.get(&(node.to_owned(), check_id.to_owned())).map(|c| &**c)
    }

    /// One service instance by node and ID.
    pub fn service(&self, node: &str, service_id: &str) -> Option<&Service> {
        self.services.get(&(node.to_owned(), service_id.to_owned())).map(|s| &**s)
    }

    /// The index of a whole table.
    pub fn table(&self, table: Table) -> u64 {
        at_least_one(self.table_index.get(&table).copied().unwrap_or(0))
    }

    /// One session by ID.
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Every session, by ID, and the sessions table's index.
    pub fn sessions(&self) -> (Vec<&Session>, u64) {
        (self.sessions.values().collect(), self.table(Table::Sessions))
    }

    /// The highest index of any change in the state.
    pub fn max_index(&self) -> u64 {
        at_least_one(self.index)
    }

    /// The catalog's spelling of a service name: `asked` itself when registered, else the first name (in order) equal to it ignoring ASCII case.
    pub(crate) fn resolve_service_name(&self, asked: &str) -> Option<&str> {
        if let Some((name, _)) = self.service_names.get_key_value(asked) {
            return Some(name);
        }
        self.service_names.keys().find(|name| name.eq_ignore_ascii_case(asked)).map(String::as_str)
    }

    /// Every registered service name, in order.
    pub(crate) fn service_name_list(&self) -> impl Iterator<Item = &str> {
        self.service_names.keys().map(String::as_str)
    }

    fn node_change(&self, node: &str) -> u64 {
        at_least_one(self.node_index.get(node).copied().unwrap_or(self.node_index_floor))
    }

    fn service_change(&self, name: &str) -> u64 {
        at_least_one(self.service_index.get(name).copied().unwrap_or(self.service_index_floor))
    }

    /// The node's own checks, then the instance's, each in check-ID order.
    fn instance_checks(&self, node: &str, service_id: &str) -> Vec<&HealthCheck> {
        let on_node = on_node(&self.checks, node).map(|(_, c)| &**c);
        let (node_checks, own): (Vec<_>, Vec<_>) = on_node
            .filter(|c| c.service_id.is_empty() || c.service_id == service_id)
            .partition(|c| c.service_id.is_empty());
        node_checks.into_iter().chain(own).collect()
    }
}

fn has_tags(service: &Service, tags: &[String]) -> bool {
    tags.iter().all(|want| service.tags.iter().any(|t| t.eq_ignore_ascii_case(want)))
}
