//! `Journaled`: an ordered map whose changes a transaction can undo, so a rolled-back `Command::Txn` needs no copy of the state.
//!
//! A transaction used to run on a clone of the whole `State`; at 100 000 instances that clone was most of the apply's
//! time and doubled the memory a loading server touched (the allocator keeps the freed copy's pages).
//! Now the large tables are `Journaled`: while a journal is open, each mutation first records the entry's previous
//! value (or its absence), and a rollback replays those records newest first, which restores every entry exactly.
//! Reads go through `Deref` to the `BTreeMap`; there is no `DerefMut`, so the compiler rejects any mutation that
//! would bypass the journal.

use std::collections::BTreeMap;
use std::ops::Deref;

use super::State;

/// A `BTreeMap` that records what each mutation replaced while a journal is open.
#[derive(Debug, Clone)]
pub(crate) struct Journaled<K, V> {
    /// The entries.
    map: BTreeMap<K, V>,
    /// While a transaction runs: each mutated key with its value before that mutation, oldest first.
    undo: Option<Vec<(K, Option<V>)>>,
}

impl<K, V> Default for Journaled<K, V> {
    fn default() -> Self {
        Journaled { map: BTreeMap::new(), undo: None }
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for Journaled<K, V> {
    /// Two tables are equal when their entries are; an open journal is bookkeeping, not state.
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Eq, V: Eq> Eq for Journaled<K, V> {}

impl<K, V> Deref for Journaled<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for Journaled<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Journaled { map: iter.into_iter().collect(), undo: None }
    }
}

impl<K: Ord + Clone, V: Clone> Journaled<K, V> {
    /// Starts recording; any earlier journal is forgotten (the caller committed or rolled it back).
    pub(crate) fn begin(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Keeps every change since `begin` and stops recording.
    pub(crate) fn commit(&mut self) {
        self.undo = None;
    }

    /// Undoes every change since `begin`, newest first, and stops recording.
    pub(crate) fn rollback(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        for (key, before) in undo.into_iter().rev() {
            match before {
                Some(value) => self.map.insert(key, value),
                None => self.map.remove(&key),
            };
        }
    }

    /// `BTreeMap::insert`, journaled.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let before = self.map.insert(key.clone(), value);
        self.record(key, || before.clone());
        before
    }

    /// `BTreeMap::remove`, journaled; a key that is not there changes nothing and records nothing.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (key, value) = self.map.remove_entry(key)?;
        if let Some(undo) = self.undo.as_mut() {
            undo.push((key, Some(value.clone())));
        }
        Some(value)
    }

    /// `BTreeMap::get_mut`, journaled: the value is recorded as it was before the caller changes it.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(undo) = self.undo.as_mut() {
            let (key, value) = self.map.get_key_value(key)?;
            undo.push((key.clone(), Some(value.clone())));
        }
        self.map.get_mut(key)
    }

    /// The value under `key`, inserting the default first when there is none (`entry(key).or_default()`), journaled.
    pub(crate) fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if let Some(undo) = self.undo.as_mut() {
            undo.push((key.clone(), self.map.get(&key).cloned()));
        }
        self.map.entry(key).or_default()
    }

    /// `BTreeMap::retain`, journaled: what it drops is recorded.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let dropped: Vec<K> =
            self.map.iter().filter(|(key, value)| !keep(key, value)).map(|(key, _)| key.clone()).collect();
        for key in dropped {
            self.remove(&key);
        }
    }

    fn record(&mut self, key: K, before: impl FnOnce() -> Option<V>) {
        if let Some(undo) = self.undo.as_mut() {
            undo.push((key, before()));
        }
    }
}

/// What a journaled table does at a transaction's boundaries, whatever its key and value types.
pub(crate) trait Undo {
    /// `Journaled::begin`.
    fn begin(&mut self);
    /// `Journaled::commit`.
    fn commit(&mut self);
    /// `Journaled::rollback`.
    fn rollback(&mut self);
}

impl<K: Ord + Clone, V: Clone> Undo for Journaled<K, V> {
    fn begin(&mut self) {
        Journaled::begin(self);
    }
    fn commit(&mut self) {
        Journaled::commit(self);
    }
    fn rollback(&mut self) {
        Journaled::rollback(self);
    }
}

/// The state as a transaction found it: the journaled tables keep their own undo records, and every other field
/// (indexes, floors, the small tables) is this copy, taken with the journaled tables moved out so they are not copied.
pub(crate) struct Savepoint {
    /// A copy of the state with empty journaled tables.
    rest: State,
}

impl State {
    /// Opens every table's journal and copies the rest of the state.
    pub(crate) fn savepoint(&mut self) -> Savepoint {
        let mut tables = State::default();
        self.swap_journaled(&mut tables);
        let rest = self.clone();
        self.swap_journaled(&mut tables);
        for table in self.journaled() {
            table.begin();
        }
        Savepoint { rest }
    }

    /// Keeps everything changed since `savepoint`.
    pub(crate) fn release(&mut self, _savepoint: Savepoint) {
        for table in self.journaled() {
            table.commit();
        }
    }

    /// Puts the state back exactly as it was at `savepoint`.
    pub(crate) fn roll_back_to(&mut self, savepoint: Savepoint) {
        for table in self.journaled() {
            table.rollback();
        }
        let mut restored = savepoint.rest;
        restored.swap_journaled(self);
        *self = restored;
    }

    /// The tables that grow with the catalog and the KV store: the ones a transaction journals instead of copying.
    fn journaled(&mut self) -> [&mut dyn Undo; 9] {
        [
            &mut self.kv,
            &mut self.kv_tombstones,
            &mut self.nodes,
            &mut self.services,
            &mut self.checks,
            &mut self.service_index,
            &mut self.node_index,
            &mut self.service_names,
            &mut self.sessions,
        ]
    }

    /// Exchanges the tables `journaled` lists (and only those) with `other`'s.
    fn swap_journaled(&mut self, other: &mut State) {
        std::mem::swap(&mut self.kv, &mut other.kv);
        std::mem::swap(&mut self.kv_tombstones, &mut other.kv_tombstones);
        std::mem::swap(&mut self.nodes, &mut other.nodes);
        std::mem::swap(&mut self.services, &mut other.services);
        std::mem::swap(&mut self.checks, &mut other.checks);
        std::mem::swap(&mut self.service_index, &mut other.service_index);
        std::mem::swap(&mut self.node_index, &mut other.node_index);
        std::mem::swap(&mut self.service_names, &mut other.service_names);
        std::mem::swap(&mut self.sessions, &mut other.sessions);
    }
}
