//! Network coordinates in the replicated state (Consul's `coordinates` table): one row per node and segment,
//! written in batches by `Command::CoordinateBatchUpdate`, and the sort by estimated round trip that `?near` and
//! prepared queries' `Near` use.

use std::time::Duration;

use roster_coordinate::Coordinate;
use serde::{Deserialize, Serialize};

use crate::state::State;

/// The most updates one `CoordinateBatchUpdate` may carry (Consul's `maxBatchSize`).
pub const MAX_COORDINATE_BATCH: usize = 128;

/// The dimensions every stored coordinate has (Serf's default, which Consul never changes).
pub const COORDINATE_DIMENSIONS: usize = 8;

/// One node's coordinate in one network segment (Consul's `structs.Coordinate`).
///
/// The Raft log and snapshot schema: fields are appended, never reordered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeCoordinate {
    /// The node.
    pub node: String,
    /// The network segment; always `""` (segments are Consul Enterprise).
    pub segment: String,
    /// The coordinate.
    pub coord: Coordinate,
}

/// Bitwise equality: apply stores only finite numbers, and the state's equality must be the equality of its
/// snapshot bytes, which comparing the bits is.
impl PartialEq for NodeCoordinate {
    fn eq(&self, other: &NodeCoordinate) -> bool {
        let bits = |c: &Coordinate| {
            let mut v: Vec<u64> = c.vec.iter().map(|x| x.to_bits()).collect();
            v.extend([c.error.to_bits(), c.adjustment.to_bits(), c.height.to_bits()]);
            v
        };
        self.node == other.node && self.segment == other.segment && bits(&self.coord) == bits(&other.coord)
    }
}

impl Eq for NodeCoordinate {}

/// Why a coordinate update cannot be stored; the text is Consul's where it has one.
pub fn check_update(update: &NodeCoordinate) -> Result<(), String> {
    if !update.segment.is_empty() {
        return Err(format!("network segments are not supported (segment {:?})", update.segment));
    }
    update.coord.check(COORDINATE_DIMENSIONS).map_err(|e| format!("invalid coordinate for node {:?}: {e}", update.node))
}

impl State {
    /// The stored coordinate of `node` in the default segment.
    pub fn coordinate(&self, node: &str) -> Option<&Coordinate> {
        self.coordinates.get(&(node.to_owned(), String::new())).map(|c| &c.coord)
    }

    /// Stably sorts `items` by the estimated round trip from node `from` to each item's node (`node_of`), nearest
    /// first, items whose node has no coordinate last. When `from` has no coordinate (an unknown node, or one
    /// that has not sent one yet) nothing moves, as in Consul, which then leaves the order alone.
    pub fn sort_by_distance<T>(&self, from: &str, items: &mut [T], node_of: impl Fn(&T) -> &str) {
        sort_by_distance(from, items, node_of, |node| self.coordinate(node))
    }
}

/// `State::sort_by_distance` over any source of coordinates (a client agent sorts with the coordinates a
/// `Query::Coordinates` brought back).
pub fn sort_by_distance<'c, T>(
    from: &str,
    items: &mut [T],
    node_of: impl Fn(&T) -> &str,
    coordinate_of: impl Fn(&str) -> Option<&'c Coordinate>,
) {
    let Some(origin) = coordinate_of(from) else { return };
    // Each distance once, not once per comparison; `Duration::MAX` (no coordinate) sorts last.
    let mut keyed: Vec<(Duration, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (coordinate_of(node_of(item)).map_or(Duration::MAX, |c| origin.distance_to(c)), i))
        .collect();
    keyed.sort_by_key(|(distance, _)| *distance);
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    permute(items, &order);
}

/// Rearranges `items` so that position `k` holds what was at `order[k]`.
fn permute<T>(items: &mut [T], order: &[usize]) {
    // Follow each cycle of the permutation, swapping in place (no Clone needed).
    let mut done = vec![false; items.len()];
    for start in 0..items.len() {
        if done[start] {
            continue;
        }
        let mut k = start;
        loop {
            done[k] = true;
            let next = order[k];
            if next == start {
                break;
            }
            items.swap(k, next);
            k = next;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The sort's order rules and the permutation.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn at(x: f64) -> Coordinate {
        let mut vec = vec![0.0; COORDINATE_DIMENSIONS];
        vec[0] = x;
        Coordinate { vec, error: 0.1, adjustment: 0.0, height: 1.0e-5 }
    }

    #[test]
    fn nearest_first_nodes_without_coordinates_last_in_their_order() {
        let coords: BTreeMap<&str, Coordinate> =
            [("me", at(0.0)), ("far", at(0.3)), ("near", at(0.01)), ("mid", at(-0.1))].into();
        let mut names = vec!["nocoord1", "far", "near", "nocoord2", "mid", "me"];
        sort_by_distance("me", &mut names, |n| n, |n| coords.get(n));
        assert_eq!(names, ["me", "near", "mid", "far", "nocoord1", "nocoord2"]);

        let mut unchanged = vec!["far", "near", "me"];
        sort_by_distance("unknown", &mut unchanged, |n| n, |n| coords.get(n));
        assert_eq!(unchanged, ["far", "near", "me"], "an origin without a coordinate sorts nothing");
    }

    proptest! {
        #[test]
        fn permute_matches_indexing(order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle()) {
            let original: Vec<usize> = (100..112).collect();
            let mut items = original.clone();
            permute(&mut items, &order);
            let expected: Vec<usize> = order.iter().map(|&i| original[i]).collect();
            prop_assert_eq!(items, expected);
        }
    }
}
