//! Tests of what the leader adds to the scheduler's input: gossip liveness, the drivers hosts reported, and since
//! when a node has been critical (kept across passes, forgotten when it passes again).

use std::collections::{BTreeMap, BTreeSet};

use roster_kv::{CheckStatus, Host, Node, SchedulingState, State};

use super::plan;

fn node(name: &str) -> Node {
    Node { node: name.into(), address: "127.0.0.1".into(), ..Node::default() }
}

/// A state holding job `web` (count 2, distinct hosts), as the HTTP edge would have submitted it.
fn with_job() -> SchedulingState {
    let mut state = State::new();
    for (index, name) in [(1, "a"), (2, "b")] {
        let reg = roster_kv::Registration { node: node(name), ..Default::default() };
        state.apply(index, &roster_kv::Command::Register(Box::new(reg)));
    }
    let spec = serde_json::json!({"name": "web", "placement": {"count": 2, "distinct_hosts": true},
        "tasks": [{"name": "t", "driver": "exec"}]});
    state.apply(3, &roster_kv::Command::JobSubmit { spec: spec.to_string(), now_ms: 1 });
    state.scheduling_state()
}

fn host(name: &str) -> Host {
    Host { node: name.into(), drivers: vec!["exec".into()], reported_ms: 0, create_index: 1, modify_index: 1 }
}

#[test]
fn only_nodes_alive_in_gossip_passing_and_offering_the_drivers_get_allocations() {
    let mut state = with_job();
    state.hosts = vec![host("a"), host("b")];
    state.nodes = state.nodes.into_iter().map(|(n, _)| (n, Some(CheckStatus::Passing))).collect();
    let alive: BTreeSet<String> = ["a".to_owned()].into();
    let (plans, _) = plan(&state, &alive, &mut BTreeMap::new(), 10);
    assert_eq!(plans.len(), 1);
    let nodes: Vec<&str> = plans[0].add.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes, ["a"], "b is not alive in gossip");
    assert_eq!((plans[0].expect_modify_index, plans[0].expect_plan_index), (3, 3));
    assert!(plans[0].pending.as_ref().is_some_and(|p| p.contains(&"alive: 1 of 2 nodes".to_owned())));
}

#[test]
fn a_critical_node_is_remembered_from_the_first_pass_that_saw_it_until_it_passes() {
    let mut state = with_job();
    state.nodes = state.nodes.into_iter().map(|(n, _)| (n, Some(CheckStatus::Critical))).collect();
    let mut since = BTreeMap::new();
    plan(&state, &BTreeSet::new(), &mut since, 100);
    plan(&state, &BTreeSet::new(), &mut since, 200);
    assert_eq!(since.get("a"), Some(&100));
    state.nodes = state.nodes.into_iter().map(|(n, _)| (n, Some(CheckStatus::Passing))).collect();
    plan(&state, &BTreeSet::new(), &mut since, 300);
    assert!(since.is_empty());
}
