//! Log entries by index with the total of their encoded bytes, kept in step by every change (replay and the
//! writer both build one, and the totals are what the log's size metrics and compaction report and decide on).

use std::collections::BTreeMap;

/// What an entry's place costs in bytes.
pub(super) trait ByteLen {
    fn byte_len(&self) -> u64;
}

/// Entries by index and the sum of their `byte_len`s.
#[derive(Debug)]
pub(super) struct Indexed<T> {
    map: BTreeMap<u64, T>,
    bytes: u64,
}

impl<T> Default for Indexed<T> {
    fn default() -> Self {
        Indexed { map: BTreeMap::new(), bytes: 0 }
    }
}

impl<T: ByteLen> Indexed<T> {
    /// The entries, to read.
    pub(super) fn map(&self) -> &BTreeMap<u64, T> {
        &self.map
    }

    /// The encoded entries' bytes.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Puts `value` at `index`; an entry already there (written again after a truncation openraft did not report,
    /// or moved by a compaction) is replaced and its bytes leave the total.
    pub(super) fn insert(&mut self, index: u64, value: T) {
        self.bytes += value.byte_len();
        if let Some(old) = self.map.insert(index, value) {
            self.bytes -= old.byte_len();
        }
    }

    /// Removes every entry from `from` on.
    pub(super) fn truncate_from(&mut self, from: u64) {
        let removed = self.map.split_off(&from);
        self.bytes -= removed.values().map(ByteLen::byte_len).sum::<u64>();
    }

    /// Removes every entry up to and including `upto`.
    pub(super) fn purge_upto(&mut self, upto: u64) {
        let kept = match upto.checked_add(1) {
            Some(from) => self.map.split_off(&from),
            None => BTreeMap::new(),
        };
        let removed = std::mem::replace(&mut self.map, kept);
        self.bytes -= removed.values().map(ByteLen::byte_len).sum::<u64>();
    }

    /// The same entries with each place turned into another kind of the same length.
    pub(super) fn map_places<U: ByteLen>(self, f: impl Fn(T) -> U) -> Indexed<U> {
        let map: BTreeMap<u64, U> = self.map.into_iter().map(|(index, value)| (index, f(value))).collect();
        debug_assert_eq!(map.values().map(ByteLen::byte_len).sum::<u64>(), self.bytes);
        Indexed { map, bytes: self.bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::{ByteLen, Indexed};

    impl ByteLen for u64 {
        fn byte_len(&self) -> u64 {
            *self
        }
    }

    fn total(indexed: &Indexed<u64>) -> u64 {
        indexed.map().values().sum()
    }

    #[test]
    fn the_total_follows_inserts_replacements_truncations_and_purges() {
        let mut indexed = Indexed::default();
        for index in 1..=10 {
            indexed.insert(index, index * 10);
        }
        assert_eq!(indexed.bytes(), 550);
        indexed.insert(5, 7);
        assert_eq!((indexed.bytes(), total(&indexed)), (507, 507));
        indexed.truncate_from(9);
        assert_eq!(indexed.map().keys().copied().collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
        assert_eq!((indexed.bytes(), total(&indexed)), (317, 317));
        indexed.purge_upto(3);
        assert_eq!(indexed.map().keys().copied().collect::<Vec<_>>(), (4..=8).collect::<Vec<_>>());
        assert_eq!((indexed.bytes(), total(&indexed)), (257, 257));
        indexed.purge_upto(u64::MAX);
        assert_eq!((indexed.bytes(), indexed.map().len()), (0, 0));
        indexed.insert(1, 4);
        let converted = indexed.map_places(|len| len);
        assert_eq!((converted.bytes(), total(&converted)), (4, 4));
    }
}
