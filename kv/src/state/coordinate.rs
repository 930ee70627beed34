//! Applying `Command::CoordinateBatchUpdate`, and dropping a node's coordinates with the node.

use super::State;
use super::acl::touch;
use crate::command::CommandResult;
use crate::coordinate::{MAX_COORDINATE_BATCH, NodeCoordinate, check_update};
use crate::watch::{Changes, Table};

impl State {
    /// Every stored coordinate, by node then segment.
    pub fn coordinates(&self) -> impl Iterator<Item = &NodeCoordinate> {
        self.coordinates.values()
    }

    /// Stores the batch: all of it is checked first, so a bad update refuses the batch with nothing changed.
    pub(super) fn coordinate_batch_update(
        &mut self,
        index: u64,
        updates: &[NodeCoordinate],
        changes: &mut Changes,
    ) -> CommandResult {
        if updates.len() > MAX_COORDINATE_BATCH {
            return CommandResult::Rejected(format!(
                "coordinate batch of {} updates is over the limit of {MAX_COORDINATE_BATCH}",
                updates.len()
            ));
        }
        if let Some(why) = updates.iter().find_map(|u| check_update(u).err()) {
            return CommandResult::Rejected(why);
        }
        let mut stored = false;
        for update in updates {
            // Sent asynchronously, so the node may be gone by now; Consul skips such an update too.
            if !self.nodes.contains_key(&update.node) {
                continue;
            }
            self.coordinates.insert((update.node.clone(), update.segment.clone()), update.clone());
            stored = true;
        }
        if stored {
            touch(self, index, Table::Coordinates, changes);
        }
        CommandResult::Bool(true)
    }

    /// Drops every coordinate of `node` (it left the catalog).
    pub(super) fn remove_node_coordinates(&mut self, index: u64, node: &str, changes: &mut Changes) {
        let keys: Vec<_> = self.coordinates.keys().filter(|(n, _)| n == node).cloned().collect();
        if keys.is_empty() {
            return;
        }
        for key in keys {
            self.coordinates.remove(&key);
        }
        touch(self, index, Table::Coordinates, changes);
    }
}

#[cfg(test)]
mod tests {
    //! What a batch stores, refuses and skips; rows leaving with their node; the snapshot.
    use super::*;
    use crate::command::{Command, Registration};
    use crate::coordinate::COORDINATE_DIMENSIONS;
    use crate::model::Node;
    use roster_coordinate::Coordinate;

    fn update(node: &str, x: f64) -> NodeCoordinate {
        let mut vec = vec![0.0; COORDINATE_DIMENSIONS];
        vec[0] = x;
        NodeCoordinate {
            node: node.into(),
            segment: String::new(),
            coord: Coordinate { vec, error: 0.2, adjustment: 0.0, height: 1.0e-5 },
        }
    }

    fn with_nodes(names: &[&str]) -> State {
        let mut state = State::default();
        for (i, name) in names.iter().enumerate() {
            let reg = Registration {
                node: Node { node: (*name).into(), address: "10.0.0.1".into(), ..Node::default() },
                ..Registration::default()
            };
            assert_eq!(state.apply(i as u64 + 1, &Command::Register(Box::new(reg))).0, CommandResult::Bool(true));
        }
        state
    }

    fn batch(state: &mut State, index: u64, updates: Vec<NodeCoordinate>) -> (CommandResult, Changes) {
        state.apply(index, &Command::CoordinateBatchUpdate { updates })
    }

    #[test]
    fn a_batch_stores_coordinates_of_known_nodes_and_skips_unknown_ones() {
        let mut state = with_nodes(&["a", "b"]);
        let (result, changes) = batch(&mut state, 10, vec![update("a", 0.1), update("gone", 0.2), update("b", 0.3)]);
        assert_eq!(result, CommandResult::Bool(true));
        assert!(changes.tables.contains(&Table::Coordinates));
        assert_eq!(state.coordinate("a").unwrap().vec[0], 0.1);
        assert!(state.coordinate("gone").is_none());
        assert_eq!(state.table(Table::Coordinates), 10);
        // A later update for the same node in one batch wins.
        batch(&mut state, 11, vec![update("a", 0.4), update("a", 0.5)]);
        assert_eq!(state.coordinate("a").unwrap().vec[0], 0.5);
        let (_, changes) = batch(&mut state, 12, vec![update("gone", 0.1)]);
        assert!(changes.is_empty(), "nothing stored, nothing woken");
        assert_eq!(state.table(Table::Coordinates), 11);
    }

    #[test]
    fn a_bad_update_refuses_the_whole_batch() {
        let mut state = with_nodes(&["a"]);
        let mut nan = update("a", 0.0);
        nan.coord.height = f64::NAN;
        let mut short = update("a", 0.0);
        short.coord.vec.truncate(4);
        let mut segment = update("a", 0.0);
        segment.segment = "alpha".into();
        let too_many: Vec<_> = (0..=MAX_COORDINATE_BATCH).map(|_| update("a", 0.1)).collect();
        for bad in [vec![update("a", 0.1), nan], vec![short], vec![segment], too_many] {
            let (result, changes) = batch(&mut state, 20, bad);
            assert!(matches!(result, CommandResult::Rejected(_)), "{result:?}");
            assert!(changes.is_empty());
        }
        assert!(state.coordinate("a").is_none());
        assert_eq!(state.table(Table::Coordinates), 1, "never written: the table's floor");
    }

    #[test]
    fn coordinates_leave_with_their_node_and_survive_a_snapshot() {
        let mut state = with_nodes(&["a", "b"]);
        batch(&mut state, 10, vec![update("a", 0.1), update("b", 0.2)]);
        let decoded = State::decode_snapshot(&state.encode_snapshot()).unwrap();
        assert_eq!(decoded, state);
        assert_eq!(decoded.table(Table::Coordinates), 10);

        let (_, changes) = state.apply(11, &Command::Deregister { node: "a".into(), service_id: None, check_id: None });
        assert!(changes.tables.contains(&Table::Coordinates));
        assert!(state.coordinate("a").is_none());
        assert!(state.coordinate("b").is_some());
        assert_eq!(state.table(Table::Coordinates), 11);
    }
}
