//! Catalog mutations of `State`: registering and deregistering nodes, service instances and checks.
//!
//! A registration is validated as a whole before anything changes, so a rejected one writes nothing.
//! A record that is re-registered unchanged keeps its ModifyIndex: agents re-sync their services periodically, and an index that moved on every sync would wake every watcher for nothing.

use super::{NodeScoped, State};
use crate::command::Registration;
use crate::model::{HealthCheck, Node, Service};
use crate::watch::{Changes, Table};

impl State {
    pub(super) fn validate_registration(&self, reg: &Registration) -> Result<(), String> {
        if reg.node.node.is_empty() {
            return Err("Must provide node".into());
        }
        let node_exists = self.nodes.contains_key(&reg.node.node);
        if reg.node.address.is_empty() && !(reg.skip_node_update && node_exists) {
            return Err("Must provide address if SkipNodeUpdate is not set".into());
        }
        if reg.service.as_ref().is_some_and(|s| s.service.is_empty()) {
            return Err("Must provide service name with ID".into());
        }
        if let Some(service) = &reg.service {
            crate::limits::check_service_meta(&service.meta)?;
        }
        let registered_id = reg.service.as_ref().map(service_id);
        for check in &reg.checks {
            if check.check_id.is_empty() {
                return Err("Missing check ID".into());
            }
            if check.service_id.is_empty() {
                continue;
            }
            let known = registered_id.as_deref() == Some(check.service_id.as_str())
                || self.services.contains_key(&(reg.node.node.clone(), check.service_id.clone()));
            if !known {
                return Err(format!("Unknown service ID '{}' for check ID '{}'", check.service_id, check.check_id));
            }
        }
        Ok(())
    }

    pub(super) fn register(&mut self, index: u64, reg: &Registration, changes: &mut Changes) {
        let name = reg.node.node.clone();
        let existing = self.nodes.get(&name);
        if !(reg.skip_node_update && existing.is_some()) && existing.is_none_or(|n| !same_node(n, &reg.node)) {
            let mut node = reg.node.clone();
            node.create_index = existing.map_or(index, |n| n.create_index);
            node.modify_index = index;
            self.nodes.insert(name.clone(), node);
            self.table_index.insert(Table::Nodes, index);
            changes.tables.insert(Table::Nodes);
            self.node_touched(index, &name, true, changes);
        }
        if let Some(service) = &reg.service {
            self.upsert_service(index, &name, service, changes);
        }
        for check in &reg.checks {
            self.upsert_check(index, &name, check, changes);
        }
    }

    fn upsert_service(&mut self, index: u64, node: &str, input: &Service, changes: &mut Changes) {
        let mut service = input.clone();
        service.id = service_id(input);
        let key = (node.to_owned(), service.id.clone());
        let existing = self.services.get(&key);
        if existing.is_some_and(|s| same_service(s, &service)) {
            return;
        }
        service.create_index = existing.map_or(index, |s| s.create_index);
        service.modify_index = index;
        if let Some(old) = existing.filter(|old| old.service != service.service) {
            let old_name = old.service.clone();
            self.unindex_service_name(&old_name, &key);
            self.service_touched(index, &old_name, changes);
        }
        self.service_names.get_or_default(service.service.clone()).insert(key.clone());
        let (name, tags) = (service.service.clone(), service.tags.clone());
        self.services.insert(key.clone(), Box::new(service));
        // Checks of this instance carry its name and tags; keep them in step.
        let stale: Vec<NodeScoped> = on_node(&self.checks, node)
            .filter(|(_, c)| c.service_id == key.1 && (c.service_name != name || c.service_tags != tags))
            .map(|(check_key, _)| check_key.clone())
            .collect();
        for check_key in stale {
            if let Some(check) = self.checks.get_mut(&check_key) {
                check.service_name = name.clone();
                check.service_tags = tags.clone();
                check.modify_index = index;
                self.table_index.insert(Table::Checks, index);
                changes.tables.insert(Table::Checks);
            }
        }
        self.table_index.insert(Table::Services, index);
        changes.tables.insert(Table::Services);
        self.service_touched(index, &name, changes);
        self.node_touched(index, node, false, changes);
    }

    fn upsert_check(&mut self, index: u64, node: &str, input: &HealthCheck, changes: &mut Changes) {
        let mut check = input.clone();
        check.node = node.to_owned();
        match self.services.get(&(node.to_owned(), check.service_id.clone())) {
            Some(service) if !check.service_id.is_empty() => {
                check.service_name = service.service.clone();
                check.service_tags = service.tags.clone();
            }
            _ => {
                check.service_name.clear();
                check.service_tags.clear();
            }
        }
        let key = (node.to_owned(), check.check_id.clone());
        let existing = self.checks.get(&key);
        if existing.is_some_and(|c| same_check(c, &check)) {
            return;
        }
        check.create_index = existing.map_or(index, |c| c.create_index);
        check.modify_index = index;
        let old_service = existing.map(|c| c.service_name.clone()).filter(|s| !s.is_empty());
        let service_name = check.service_name.clone();
        self.checks.insert(key, Box::new(check));
        self.check_touched(index, node, &service_name, changes);
        if let Some(old) = old_service.filter(|old| *old != service_name) {
            self.service_touched(index, &old, changes);
        }
    }

    pub(super) fn deregister(
        &mut self,
        index: u64,
        node: &str,
        service_id: Option<&str>,
        check_id: Option<&str>,
        changes: &mut Changes,
    ) {
        match (service_id, check_id) {
            (Some(id), _) => self.remove_service(index, node, id, changes),
            (None, Some(id)) => self.remove_check(index, node, id, changes),
            (None, None) => self.remove_node(index, node, changes),
        }
    }

    fn remove_service(&mut self, index: u64, node: &str, id: &str, changes: &mut Changes) {
        let key = (node.to_owned(), id.to_owned());
        let Some(service) = self.services.remove(&key) else {
            return;
        };
        self.unindex_service_name(&service.service, &key);
        let check_ids: Vec<NodeScoped> =
            on_node(&self.checks, node).filter(|(_, c)| c.service_id == id).map(|(k, _)| k.clone()).collect();
        for check_key in &check_ids {
            self.checks.remove(check_key);
        }
        if !check_ids.is_empty() {
            self.table_index.insert(Table::Checks, index);
            changes.tables.insert(Table::Checks);
        }
        self.table_index.insert(Table::Services, index);
        changes.tables.insert(Table::Services);
        self.service_touched(index, &service.service, changes);
        self.node_touched(index, node, false, changes);
    }

    fn remove_check(&mut self, index: u64, node: &str, id: &str, changes: &mut Changes) {
        if let Some(check) = self.checks.remove(&(node.to_owned(), id.to_owned())) {
            self.check_touched(index, node, &check.service_name, changes);
        }
    }

    fn remove_node(&mut self, index: u64, node: &str, changes: &mut Changes) {
        if !self.nodes.contains_key(node) {
            return;
        }
        // Services first: their removal records the service-name changes watchers need.
        let ids: Vec<String> = on_node(&self.services, node).map(|((_, id), _)| id.clone()).collect();
        for id in ids {
            self.remove_service(index, node, &id, changes);
        }
        let checks: Vec<NodeScoped> = on_node(&self.checks, node).map(|(k, _)| k.clone()).collect();
        for key in checks {
            self.remove_check(index, node, &key.1, changes);
        }
        self.nodes.remove(node);
        self.remove_node_coordinates(index, node, changes);
        self.table_index.insert(Table::Nodes, index);
        changes.tables.insert(Table::Nodes);
        self.node_touched(index, node, false, changes);
    }

    fn check_touched(&mut self, index: u64, node: &str, service_name: &str, changes: &mut Changes) {
        self.table_index.insert(Table::Checks, index);
        changes.tables.insert(Table::Checks);
        if service_name.is_empty() {
            // A node check changes the health of every service on the node.
            self.node_touched(index, node, true, changes);
        } else {
            self.service_touched(index, service_name, changes);
            self.node_touched(index, node, false, changes);
        }
    }

    /// Records a change to `node`; with `all_services`, also to every service name on it (their health answers embed the node and its checks).
    fn node_touched(&mut self, index: u64, node: &str, all_services: bool, changes: &mut Changes) {
        self.node_index.insert(node.to_owned(), index);
        changes.nodes.insert(node.to_owned());
        if all_services {
            let names: Vec<String> = on_node(&self.services, node).map(|(_, s)| s.service.clone()).collect();
            for name in names {
                self.service_touched(index, &name, changes);
            }
        }
    }

    fn service_touched(&mut self, index: u64, name: &str, changes: &mut Changes) {
        self.service_index.insert(name.to_owned(), index);
        changes.services.insert(name.to_owned());
    }

    fn unindex_service_name(&mut self, name: &str, key: &NodeScoped) {
        if let Some(set) = self.service_names.get_mut(name) {
            set.remove(key);
            if set.is_empty() {
                self.service_names.remove(name);
            }
        }
    }
}

/// The entries of a node-scoped table on `node`: one range of the map, since its keys sort by node first.
pub(super) fn on_node<'t, V>(
    table: &'t std::collections::BTreeMap<NodeScoped, V>,
    node: &str,
) -> impl Iterator<Item = (&'t NodeScoped, &'t V)> + use<'t, V> {
    let start = (node.to_owned(), String::new());
    let node = start.0.clone();
    table.range(start..).take_while(move |((on, _), _)| *on == node)
}

/// The instance ID, defaulting to the service name as Consul does.
pub(super) fn service_id(service: &Service) -> String {
    if service.id.is_empty() { service.service.clone() } else { service.id.clone() }
}

fn same_node(a: &Node, b: &Node) -> bool {
    a.id == b.id
        && a.address == b.address
        && a.datacenter == b.datacenter
        && a.tagged_addresses == b.tagged_addresses
        && a.meta == b.meta
}

fn same_service(a: &Service, b: &Service) -> bool {
    let strip = |s: &Service| Service { create_index: 0, modify_index: 0, ..s.clone() };
    strip(a) == strip(b)
}

fn same_check(a: &HealthCheck, b: &HealthCheck) -> bool {
    let strip = |c: &HealthCheck| HealthCheck { create_index: 0, modify_index: 0, ..c.clone() };
    strip(a) == strip(b)
}
