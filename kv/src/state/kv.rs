//! KV mutations of `State`: write, remove, and the prefix range they share with queries.

use super::State;
use crate::model::KvEntry;
use crate::watch::{Changes, Table};

impl State {
    pub(super) fn kv_write(&mut self, index: u64, key: &str, value: &[u8], flags: u64, changes: &mut Changes) {
        self.kv_tombstones.remove(key);
        match self.kv.get_mut(key) {
            Some(entry) => {
                entry.value = value.to_vec();
                entry.flags = flags;
                entry.modify_index = index;
            }
            None => {
                let entry = KvEntry {
                    key: key.to_owned(),
                    value: value.to_vec(),
                    flags,
                    lock_index: 0,
                    session: None,
                    create_index: index,
                    modify_index: index,
                };
                self.kv.insert(key.to_owned(), entry);
            }
        }
        self.kv_touched(index, key, changes);
    }

    pub(super) fn kv_remove(&mut self, index: u64, key: &str, changes: &mut Changes) {
        if self.kv.remove(key).is_some() {
            self.kv_tombstones.insert(key.to_owned(), index);
            self.kv_touched(index, key, changes);
        }
    }

    pub(super) fn kv_touched(&mut self, index: u64, key: &str, changes: &mut Changes) {
        self.table_index.insert(Table::Kvs, index);
        changes.keys.insert(key.to_owned());
        changes.tables.insert(Table::Kvs);
    }

    /// Live entries whose key starts with `prefix`, in key order.
    pub(super) fn kv_range<'a, 'p>(&'a self, prefix: &'p str) -> impl Iterator<Item = &'a KvEntry> + use<'a, 'p> {
        self.kv
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
    }

    /// The highest deletion index under `prefix`, 0 when nothing there was deleted.
    pub(super) fn tombstone_index(&self, prefix: &str) -> u64 {
        self.kv_tombstones
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, idx)| *idx)
            .max()
            .unwrap_or(0)
    }
}
