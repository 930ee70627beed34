//! `?node-meta=` and the whole-catalog instance list: reads that keep only what runs on nodes carrying every asked
//! metadata pair (Consul's `SatisfiesMetaFilters`: each key present with exactly that value).

use std::collections::{BTreeMap, BTreeSet};

use super::{Answer, Query};
use crate::model::{Node, Service};
use crate::state::State;
use crate::watch::{Table, WatchKey};

/// Whether `node` carries every pair of `wanted`.
pub(crate) fn satisfies(node: &Node, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(key, value)| node.meta.get(key) == Some(value))
}

/// Every service instance with its node, by node then ID, on nodes carrying `wanted`; the index is the later of the
/// services and nodes tables.
pub(crate) fn all_instances(state: &State, wanted: &BTreeMap<String, String>) -> (Answer, u64) {
    let (instances, index) = instances(state, wanted);
    (Answer::ServiceNodes(instances), index)
}

fn instances(state: &State, wanted: &BTreeMap<String, String>) -> (Vec<(Node, Service)>, u64) {
    let instances = state
        .services
        .iter()
        .filter_map(|((node, _), service)| Some((state.nodes.get(node)?, service)))
        .filter(|(node, _)| satisfies(node, wanted))
        .map(|(node, service)| (node.clone(), Service::clone(service)))
        .collect();
    (instances, state.table(Table::Services).max(state.table(Table::Nodes)))
}

/// The watch keys of `inner` filtered by node metadata: its own, and the nodes table, where metadata changes.
pub(crate) fn watch_keys(inner: &Query) -> Vec<WatchKey> {
    let mut keys = inner.watch_keys();
    if !keys.contains(&WatchKey::Table(Table::Nodes)) {
        keys.push(WatchKey::Table(Table::Nodes));
    }
    keys
}

/// `inner`'s answer with only what runs on nodes carrying `wanted`; the index also covers the nodes table.
pub(crate) fn eval(state: &State, wanted: &BTreeMap<String, String>, inner: &Query) -> (Answer, u64) {
    let keep = |name: &str| state.nodes.get(name).is_some_and(|node| satisfies(node, wanted));
    let (answer, index) = match inner {
        // Service names and tags are folded from the instances on matching nodes (Consul's `ServicesByNodeMeta`).
        Query::Services => {
            let (instances, index) = instances(state, wanted);
            let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (_, service) in instances {
                names.entry(service.service).or_default().extend(service.tags);
            }
            let names = names.into_iter().map(|(name, tags)| (name, tags.into_iter().collect())).collect();
            (Answer::ServiceTags(names), index)
        }
        other => other.eval(state),
    };
    let answer = match answer {
        Answer::Nodes(mut nodes) => {
            nodes.retain(|node| satisfies(node, wanted));
            Answer::Nodes(nodes)
        }
        Answer::ServiceNodes(mut instances) => {
            instances.retain(|(node, _)| satisfies(node, wanted));
            Answer::ServiceNodes(instances)
        }
        Answer::Health(mut entries) => {
            entries.retain(|entry| satisfies(&entry.node, wanted));
            Answer::Health(entries)
        }
        Answer::Checks(mut checks) => {
            checks.retain(|check| keep(&check.node));
            Answer::Checks(checks)
        }
        other => other,
    };
    (answer, index.max(state.table(Table::Nodes)))
}
