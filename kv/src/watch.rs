//! Watch keys: what a blocking query depends on, what an apply changed, and the registry that matches the two.
//!
//! A blocking query registers one or more `WatchKey`s before it evaluates its answer; every apply reports the `Changes` it made; `Watchers::fire` hands back exactly the waiters whose keys were touched.
//! A prefix watch on `lb/web/` is woken by a change to `lb/web/1` and not by a change to `other/x`; a watch on a missing key is woken when that key is created, not by unrelated writes (Consul issue #9449 is a defect we do not copy).
//!
//! # Cost of matching prefixes
//! A changed key must wake every waiter on a prefix of it.
//! Building each of the key's prefixes and looking it up would cost O(key length²) per key (a 64 KiB key is 2 GiB of copies), inside apply.
//! Instead `Watchers` remembers the distinct lengths of the prefixes it holds, and for a changed key looks up only the key's prefixes of those lengths, as borrowed slices of the key.
//! So the cost per changed key is at most one hash of at most the key's length per distinct watched prefix length (usually a handful), and nothing is allocated for the prefixes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// A table whose whole-table index list queries use.
///
/// Part of `Query`'s wire format: variants are appended, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Table {
    /// The KV store.
    Kvs,
    /// Catalog nodes.
    Nodes,
    /// Catalog services.
    Services,
    /// Health checks.
    Checks,
    /// Sessions.
    Sessions,
    /// ACL tokens.
    AclTokens,
    /// ACL policies.
    AclPolicies,
    /// ACL roles.
    AclRoles,
    /// ACL auth methods.
    AclAuthMethods,
    /// ACL binding rules.
    AclBindingRules,
    /// The autopilot configuration.
    Autopilot,
    /// Network coordinates.
    Coordinates,
    /// Prepared queries.
    PreparedQueries,
    /// Config entries.
    ConfigEntries,
    /// Cluster jobs.
    Jobs,
    /// Allocations of cluster jobs.
    Allocations,
    /// Hosts' driver reports.
    Hosts,
}

impl Table {
    /// Every table, in declaration order.
    pub const ALL: [Table; 17] = [
        Table::Kvs,
        Table::Nodes,
        Table::Services,
        Table::Checks,
        Table::Sessions,
        Table::AclTokens,
        Table::AclPolicies,
        Table::AclRoles,
        Table::AclAuthMethods,
        Table::AclBindingRules,
        Table::Autopilot,
        Table::Coordinates,
        Table::PreparedQueries,
        Table::ConfigEntries,
        Table::Jobs,
        Table::Allocations,
        Table::Hosts,
    ];
}

/// Something a query's answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKey {
    /// One KV key, existing or not.
    Key(String),
    /// Every KV key under a prefix.
    Prefix(String),
    /// A service name: its instances, their checks, and their nodes' checks.
    Service(String),
    /// A node: its record, services and checks.
    Node(String),
    /// A whole table.
    Table(Table),
    /// The allocations placed on one node (what its agent runs).
    NodeAllocations(String),
}

/// What one apply changed. Deduplicated and ordered, so it is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// KV keys written or deleted.
    pub keys: BTreeSet<String>,
    /// Service names whose health answer may have changed.
    pub services: BTreeSet<String>,
    /// Nodes whose record, services or checks changed.
    pub nodes: BTreeSet<String>,
    /// Tables that changed.
    pub tables: BTreeSet<Table>,
    /// Nodes whose allocations changed.
    pub alloc_nodes: BTreeSet<String>,
    /// The whole state was replaced (a snapshot restore): every query's answer may have changed, and indexes may have
    /// moved backwards, so every waiter wakes.
    pub restored: bool,
}

impl Changes {
    /// True when the apply changed nothing.
    pub fn is_empty(&self) -> bool {
        !self.restored
            && self.keys.is_empty()
            && self.services.is_empty()
            && self.nodes.is_empty()
            && self.tables.is_empty()
            && self.alloc_nodes.is_empty()
    }

    /// Adds everything `other` changed.
    pub fn merge(&mut self, other: Changes) {
        self.keys.extend(other.keys);
        self.services.extend(other.services);
        self.nodes.extend(other.nodes);
        self.tables.extend(other.tables);
        self.alloc_nodes.extend(other.alloc_nodes);
        self.restored |= other.restored;
    }

    /// Whether a query depending on `key` must be re-evaluated.
    pub fn touches(&self, key: &WatchKey) -> bool {
        if self.restored {
            return true;
        }
        match key {
            WatchKey::Key(k) => self.keys.contains(k),
            WatchKey::Prefix(p) => self.keys.iter().any(|k| k.starts_with(p.as_str())),
            WatchKey::Service(s) => self.services.contains(s),
            WatchKey::Node(n) => self.nodes.contains(n),
            WatchKey::Table(t) => self.tables.contains(t),
            WatchKey::NodeAllocations(n) => self.alloc_nodes.contains(n),
        }
    }
}

/// Identifies one registered waiter, for removal when its wait times out.
pub type WaiterId = u64;

/// The registry of parked waiters, each registered under one or more watch keys.
///
/// `T` is whatever wakes the waiter (a channel sender in the server). A waiter is fired at most once: `fire` removes it from every key it was registered under.
#[derive(Debug)]
pub struct Watchers<T> {
    next_id: WaiterId,
    /// Waiters by every watch key except prefixes.
    by_key: HashMap<WatchKey, BTreeSet<WaiterId>>,
    /// Waiters by watched prefix, kept apart so a slice of a changed key can be looked up without building a `WatchKey`.
    by_prefix: HashMap<String, BTreeSet<WaiterId>>,
    /// Length in bytes → how many prefixes of `by_prefix` have it: the only prefix lengths of a changed key worth looking up.
    prefix_lens: BTreeMap<usize, usize>,
    waiters: HashMap<WaiterId, (Vec<WatchKey>, T)>,
}

impl<T> Default for Watchers<T> {
    fn default() -> Self {
        Watchers {
            next_id: 0,
            by_key: HashMap::new(),
            by_prefix: HashMap::new(),
            prefix_lens: BTreeMap::new(),
            waiters: HashMap::new(),
        }
    }
}

impl<T> Watchers<T> {
    /// Parks `waiter` on `keys`; it fires when any of them changes.
    pub fn register(&mut self, keys: Vec<WatchKey>, waiter: T) -> WaiterId {
        self.next_id += 1;
        let id = self.next_id;
        for key in &keys {
            match key {
                // Looked up before inserting: ten thousand watchers of one key would otherwise copy it each time.
                WatchKey::Prefix(prefix) => match self.by_prefix.get_mut(prefix.as_str()) {
                    Some(ids) => {
                        ids.insert(id);
                    }
                    None => {
                        *self.prefix_lens.entry(prefix.len()).or_default() += 1;
                        self.by_prefix.insert(prefix.clone(), BTreeSet::from([id]));
                    }
                },
                other => match self.by_key.get_mut(other) {
                    Some(ids) => {
                        ids.insert(id);
                    }
                    None => {
                        self.by_key.insert(other.clone(), BTreeSet::from([id]));
                    }
                },
            }
        }
        self.waiters.insert(id, (keys, waiter));
        id
    }

    /// Removes a waiter that has not fired (its wait timed out or its client went away).
    pub fn remove(&mut self, id: WaiterId) -> Option<T> {
        let (keys, waiter) = self.waiters.remove(&id)?;
        self.unlink(id, keys);
        Some(waiter)
    }

    /// Takes `id` out of the set of each of `keys` that still has one.
    fn unlink(&mut self, id: WaiterId, keys: Vec<WatchKey>) {
        for key in keys {
            match key {
                WatchKey::Prefix(prefix) => self.remove_prefix(&prefix, id),
                other => {
                    if let Some(ids) = self.by_key.get_mut(&other) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.by_key.remove(&other);
                        }
                    }
                }
            }
        }
    }

    /// How many waiters are parked.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// True when nobody is parked.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Removes and returns every waiter whose keys `changes` touched.
    pub fn fire(&mut self, changes: &Changes) -> Vec<T> {
        if self.waiters.is_empty() || changes.is_empty() {
            return Vec::new();
        }
        if changes.restored {
            let all: Vec<WaiterId> = self.waiters.keys().copied().collect();
            return all.into_iter().filter_map(|id| self.remove(id)).collect();
        }
        // Every waiter on a touched key fires, so each touched key's whole set is taken at once; a fired waiter is
        // then taken out of its other keys only. Removing ten thousand waiters of one key one by one from its set
        // held the registry's lock for milliseconds on the state machine's path.
        let mut hit = Vec::new();
        for key in &changes.keys {
            self.take(&WatchKey::Key(key.clone()), &mut hit);
            self.take_prefixes_of(key, &mut hit);
        }
        for service in &changes.services {
            self.take(&WatchKey::Service(service.clone()), &mut hit);
        }
        for node in &changes.nodes {
            self.take(&WatchKey::Node(node.clone()), &mut hit);
        }
        for table in &changes.tables {
            self.take(&WatchKey::Table(*table), &mut hit);
        }
        for node in &changes.alloc_nodes {
            self.take(&WatchKey::NodeAllocations(node.clone()), &mut hit);
        }
        hit.sort_unstable();
        hit.dedup();
        hit.into_iter()
            .filter_map(|id| {
                let (keys, waiter) = self.waiters.remove(&id)?;
                // A waiter of one key was found through it, and that key's set is gone already.
                if keys.len() > 1 {
                    self.unlink(id, keys);
                }
                Some(waiter)
            })
            .collect()
    }

    /// Takes the waiters on every watched prefix of `key` (the empty prefix and `key` itself included), with their
    /// sets. Only lengths some watched prefix has are looked up, each as a slice of `key`: see the module doc for the
    /// cost.
    fn take_prefixes_of(&mut self, key: &str, hit: &mut Vec<WaiterId>) {
        let lens: Vec<usize> = self.prefix_lens.range(..=key.len()).map(|(len, _)| *len).collect();
        for len in lens {
            // A length inside a multi-byte character cannot be a prefix of this key: prefixes are whole strings.
            let Some(prefix) = key.get(..len) else { continue };
            if let Some(ids) = self.by_prefix.remove(prefix) {
                hit.extend(ids);
                self.forget_prefix_len(len);
            }
        }
    }

    fn remove_prefix(&mut self, prefix: &str, id: WaiterId) {
        let Some(ids) = self.by_prefix.get_mut(prefix) else { return };
        ids.remove(&id);
        if !ids.is_empty() {
            return;
        }
        self.by_prefix.remove(prefix);
        self.forget_prefix_len(prefix.len());
    }

    /// One fewer watched prefix has `len` bytes.
    fn forget_prefix_len(&mut self, len: usize) {
        if let Some(count) = self.prefix_lens.get_mut(&len) {
            *count -= 1;
            if *count == 0 {
                self.prefix_lens.remove(&len);
            }
        }
    }

    /// Takes the waiters on `key`, with its set.
    fn take(&mut self, key: &WatchKey, hit: &mut Vec<WaiterId>) {
        if let Some(ids) = self.by_key.remove(key) {
            hit.extend(ids);
        }
    }
}

#[cfg(test)]
mod tests;
