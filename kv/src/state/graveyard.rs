//! What keeps `State` bounded by what is live: the tombstone reap (`Command::TombstoneReap`) and the folding of
//! removed services' and nodes' index entries into floors (see "Tombstones" and "Bounded maps" in `state`).

use super::State;
use super::journal::Journaled;
use crate::command::CommandResult;
use crate::watch::Changes;

/// How many tombstones `State` holds and the lowest deletion index among them: what the leader's tombstone GC reads
/// to decide whether a reap would remove anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tombstones {
    /// Tombstones held.
    pub count: usize,
    /// The lowest deletion index among them; `None` when there are none.
    pub oldest_index: Option<u64>,
}

impl State {
    /// The tombstones held. Walks them once: the leader asks every few seconds at most, and a reap walks them anyway.
    pub fn tombstones(&self) -> Tombstones {
        Tombstones { count: self.kv_tombstones.len(), oldest_index: self.kv_tombstones.values().copied().min() }
    }

    /// The highest deletion index reaped so far, the floor of every key and prefix index.
    pub fn reaped_index(&self) -> u64 {
        self.kv_reaped_index
    }

    /// Removes the tombstones of deletions at or before `reap_index` (never past `index`, the reap's own entry) and
    /// the lock-delays ended by `now_ms`. Nothing a query returns changes but the index floor, so no watcher is woken:
    /// an index that moved without a change only makes a watcher's next timeout return its unchanged answer.
    pub(super) fn tombstone_reap(&mut self, index: u64, reap_index: u64, now_ms: u64) -> CommandResult {
        let reap_index = reap_index.min(index);
        let mut reaped_max = self.kv_reaped_index;
        self.kv_tombstones.retain(|_, deleted_at| {
            if *deleted_at <= reap_index {
                reaped_max = reaped_max.max(*deleted_at);
                return false;
            }
            true
        });
        self.kv_reaped_index = reaped_max;
        // A delay without a start never saw a clock (a snapshot from before delays were anchored); the reap's clock
        // starts it, so it too ends.
        self.lock_delays
            .retain(|_, delay| now_ms < delay.start_ms.get_or_insert(now_ms).saturating_add(delay.delay_ms));
        self.fold_all_removed();
        CommandResult::Bool(true)
    }

    /// Folds the index entries of the service names and nodes `changes` touched that are no longer live.
    pub(super) fn fold_removed(&mut self, changes: &Changes) {
        for name in &changes.services {
            if !self.service_names.contains_key(name)
                && let Some(index) = self.service_index.remove(name)
            {
                self.service_index_floor = self.service_index_floor.max(index);
            }
        }
        for node in &changes.nodes {
            if !self.nodes.contains_key(node)
                && let Some(index) = self.node_index.remove(node)
            {
                self.node_index_floor = self.node_index_floor.max(index);
            }
        }
    }

    /// Folds every entry of a name that is not live: the entries a state from before folding (an older snapshot)
    /// still carries. The reap does it, so every server does it at the same log index.
    fn fold_all_removed(&mut self) {
        let service_names = &self.service_names;
        fold_where(&mut self.service_index, &mut self.service_index_floor, |name| !service_names.contains_key(name));
        let nodes = &self.nodes;
        fold_where(&mut self.node_index, &mut self.node_index_floor, |node| !nodes.contains_key(node));
    }
}

/// Removes the entries of `map` whose name is `removed`, raising `floor` to the highest index removed.
fn fold_where(map: &mut Journaled<String, u64>, floor: &mut u64, removed: impl Fn(&str) -> bool) {
    map.retain(|name, index| {
        if removed(name) {
            *floor = (*floor).max(*index);
            return false;
        }
        true
    });
}
