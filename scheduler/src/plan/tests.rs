//! Table tests of placement, rescheduling and rolling updates, and property tests of the invariants: never two
//! allocations of a `distinct_hosts` job on one node, never more than `count` wanted running, never on an ineligible
//! node, and a plan applied once leaves nothing for the next run to do.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::spec::JobShape;

fn node(name: &str, meta: &[(&str, &str)]) -> NodeView {
    NodeView {
        name: name.into(),
        meta: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        drivers: ["exec".to_string()].into(),
        alive: true,
        critical_since_ms: None,
    }
}

fn shape(placement: serde_json::Value, update: serde_json::Value) -> JobShape {
    let spec =
        json!({"name": "web", "placement": placement, "update": update, "tasks": [{"name": "t", "driver": "exec"}]});
    JobShape::from_spec(&spec).unwrap()
}

fn job(placement: serde_json::Value) -> JobView {
    JobView {
        name: "web".into(),
        version: 1,
        stopped: false,
        versions: vec![VersionView {
            version: 1,
            shape: shape(placement, json!({})),
            rollout: RolloutState::InProgress,
        }],
        next_alloc: 0,
        pending: vec![],
    }
}

/// Applies a plan the way the state does, with every new allocation reported running and healthy from `now_ms`.
fn apply(jobs: &mut [JobView], allocs: &mut Vec<AllocView>, plan: &Plan, now_ms: u64) {
    for change in &plan.changes {
        let job = jobs.iter_mut().find(|j| j.name == change.job).unwrap();
        allocs.retain(|a| !(a.job == job.name && change.remove.contains(&a.id)));
        for alloc in allocs.iter_mut().filter(|a| a.job == job.name) {
            if change.stop.iter().any(|(id, _)| *id == alloc.id) {
                alloc.run = false;
            }
        }
        for (seq, version, index, node) in &change.add {
            allocs.push(AllocView {
                id: format!("{}-{seq}", job.name),
                job: job.name.clone(),
                version: *version,
                index: *index,
                node: node.clone(),
                run: true,
                reported: Reported::Running,
                healthy_since_ms: Some(now_ms),
                created_ms: now_ms,
            });
            job.next_alloc = job.next_alloc.max(seq + 1);
        }
        if let Some((version, state, _)) = &change.rollout {
            job.versions.iter_mut().find(|v| v.version == *version).unwrap().rollout = *state;
        }
        if let Some(pending) = &change.pending {
            job.pending = pending.clone();
        }
        if let Some(version) = change.revert_to {
            let mut copy = job.versions.iter().find(|v| v.version == version).unwrap().clone();
            copy.version = job.versions.last().unwrap().version + 1;
            copy.rollout = RolloutState::InProgress;
            job.version = copy.version;
            job.versions.push(copy);
        }
    }
}

fn running<'a>(allocs: &'a [AllocView], job: &str) -> Vec<&'a AllocView> {
    allocs.iter().filter(|a| a.job == job && a.run).collect()
}

fn nodes_of(allocs: &[AllocView]) -> Vec<String> {
    let mut nodes: Vec<String> = running(allocs, "web").iter().map(|a| a.node.clone()).collect();
    nodes.sort();
    nodes
}

#[test]
fn explicit_nodes_count_spread_and_constraints() {
    let nodes = [node("a", &[("zone", "edge")]), node("b", &[("zone", "core")]), node("c", &[("zone", "core")])];
    let cases = [
        (json!({"nodes": ["b"]}), vec!["b"]),
        (json!({"count": 3, "distinct_hosts": true}), vec!["a", "b", "c"]),
        (json!({"count": 4}), vec!["a", "a", "b", "c"]),
        (
            json!({"count": 2, "constraints": [{"attribute": "node_meta.zone", "operator": "!=", "value": "edge"}]}),
            vec!["b", "c"],
        ),
        (json!({"constraints": [{"attribute": "node.name", "operator": "regexp", "value": "^c"}]}), vec!["c"]),
        (json!({"global": true}), vec!["a", "b", "c"]),
    ];
    for (placement, want) in cases {
        let mut jobs = vec![job(placement.clone())];
        let mut allocs = vec![];
        let plan = schedule(&jobs, &nodes, &allocs, 0);
        apply(&mut jobs, &mut allocs, &plan, 0);
        assert_eq!(nodes_of(&allocs), want, "{placement}");
        assert_eq!(schedule(&jobs, &nodes, &allocs, 0).changes, vec![], "{placement}: a second run changes nothing");
    }
}

#[test]
fn an_unplaceable_job_is_pending_with_a_reason_per_filter() {
    let nodes = [node("a", &[("zone", "edge")]), node("b", &[("zone", "edge")]), node("c", &[])];
    let placement = json!({"constraints": [{"attribute": "node_meta.zone", "operator": "=", "value": "core"}]});
    let jobs = vec![job(placement)];
    let plan = schedule(&jobs, &nodes, &[], 0);
    let pending = plan.changes[0].pending.clone().unwrap();
    assert_eq!(plan.changes[0].add, vec![]);
    assert_eq!(pending[0], "1 of 1 allocations not placed");
    assert!(pending.contains(&"node_meta.zone = core: 0 of 3 nodes".to_string()), "{pending:?}");
    assert!(pending.contains(&"driver exec: 3 of 3 nodes".to_string()), "{pending:?}");
    let mut docker_job = job(json!({"count": 2, "distinct_hosts": true}));
    docker_job.versions[0].shape.drivers = vec!["docker".into()];
    let mut with_docker = nodes.clone();
    with_docker[1].drivers.insert("docker".into());
    let plan = schedule(&[docker_job], &with_docker, &[], 0);
    let pending = plan.changes[0].pending.clone().unwrap();
    assert_eq!(plan.changes[0].add.len(), 1);
    assert!(pending.contains(&"driver docker: 1 of 3 nodes".to_string()), "{pending:?}");
    assert!(pending.contains(&"distinct_hosts: 1 eligible nodes for 2 allocations".to_string()), "{pending:?}");
}

#[test]
fn a_failed_node_is_replaced_after_its_grace_and_the_count_never_doubles() {
    let mut nodes = vec![node("a", &[]), node("b", &[]), node("c", &[])];
    let mut jobs = vec![job(json!({"count": 2, "distinct_hosts": true, "reschedule_grace": "10s"}))];
    let mut allocs = vec![];
    let plan = schedule(&jobs, &nodes, &allocs, 0);
    apply(&mut jobs, &mut allocs, &plan, 0);
    assert_eq!(nodes_of(&allocs), ["a", "b"]);
    let plan = schedule(&jobs, &nodes, &allocs, 20_000);
    apply(&mut jobs, &mut allocs, &plan, 20_000);
    // b fails at t=21s: nothing moves within the grace; the plan says when to look again.
    nodes[1].alive = false;
    nodes[1].critical_since_ms = Some(21_000);
    let plan = schedule(&jobs, &nodes, &allocs, 25_000);
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.wake_at_ms, Some(31_000));
    let plan = schedule(&jobs, &nodes, &allocs, 31_000);
    apply(&mut jobs, &mut allocs, &plan, 31_000);
    assert_eq!(nodes_of(&allocs), ["a", "c"]);
    assert!(allocs.iter().all(|a| a.node != "b"), "b's allocation is removed, so b stops it when it returns");
    // b comes back: still two.
    nodes[1].alive = true;
    nodes[1].critical_since_ms = None;
    assert!(schedule(&jobs, &nodes, &allocs, 32_000).changes.iter().all(|c| c.add.is_empty() && c.stop.is_empty()));
}

#[test]
fn a_global_job_reaches_a_node_that_joins_later() {
    let mut nodes = vec![node("a", &[]), node("b", &[])];
    let mut jobs = vec![job(json!({"global": true}))];
    let mut allocs = vec![];
    let plan = schedule(&jobs, &nodes, &allocs, 0);
    apply(&mut jobs, &mut allocs, &plan, 0);
    nodes.push(node("c", &[]));
    let plan = schedule(&jobs, &nodes, &allocs, 1);
    assert_eq!(plan.changes[0].add.iter().map(|a| a.3.as_str()).collect::<Vec<_>>(), ["c"]);
}

#[test]
fn a_rolling_update_replaces_max_parallel_at_a_time_after_min_healthy_time() {
    let nodes = [node("a", &[]), node("b", &[]), node("c", &[])];
    let mut jobs = vec![job(json!({"count": 3, "distinct_hosts": true}))];
    let mut allocs = vec![];
    let plan = schedule(&jobs, &nodes, &allocs, 0);
    apply(&mut jobs, &mut allocs, &plan, 0);
    let plan = schedule(&jobs, &nodes, &allocs, 20_000);
    assert_eq!(plan.changes[0].rollout, Some((1, RolloutState::Healthy, String::new())));
    apply(&mut jobs, &mut allocs, &plan, 20_000);
    // Version 2 with the default update: one at a time, each healthy for 10s first.
    let v2 = VersionView { version: 2, shape: jobs[0].versions[0].shape.clone(), rollout: RolloutState::InProgress };
    jobs[0].versions.push(v2);
    jobs[0].version = 2;
    let mut t = 30_000;
    let mut steps = 0;
    while running(&allocs, "web").iter().any(|a| a.version == 1) {
        let plan = schedule(&jobs, &nodes, &allocs, t);
        let change = plan.changes.first().cloned().unwrap_or_default();
        assert!(change.stop.len() <= 1 && change.add.len() <= 1, "{change:?}");
        apply(&mut jobs, &mut allocs, &plan, t);
        let run = running(&allocs, "web");
        assert_eq!(run.len(), 3, "never more nor fewer than count wanted");
        let healthy_new = run.iter().filter(|a| a.version == 2 && a.healthy_since_ms.is_some_and(|s| t >= s + 10_000));
        assert!(run.iter().filter(|a| a.version == 1).count() + healthy_new.count() >= 2, "at most max_parallel down");
        t += 5_000;
        steps += 1;
        assert!(steps < 20);
    }
    let plan = schedule(&jobs, &nodes, &allocs, t + 10_000);
    assert_eq!(plan.changes[0].rollout, Some((2, RolloutState::Healthy, String::new())));
}

#[test]
fn a_version_that_never_becomes_healthy_fails_and_auto_reverts() {
    let nodes = [node("a", &[]), node("b", &[])];
    let mut jobs = vec![job(json!({"count": 2}))];
    jobs[0].versions[0].rollout = RolloutState::Healthy;
    let old = |i: u32| AllocView {
        id: format!("web-{i}"),
        job: "web".into(),
        version: 1,
        index: i,
        node: ["a", "b"][i as usize].into(),
        run: true,
        reported: Reported::Running,
        healthy_since_ms: Some(0),
        created_ms: 0,
    };
    let mut allocs = vec![old(0), old(1)];
    jobs[0].next_alloc = 2;
    let update = json!({"healthy_deadline": "1m", "auto_revert": true});
    let v2 = VersionView { version: 2, shape: shape(json!({"count": 2}), update), rollout: RolloutState::InProgress };
    jobs[0].versions.push(v2);
    jobs[0].version = 2;
    let plan = schedule(&jobs, &nodes, &allocs, 1_000);
    apply(&mut jobs, &mut allocs, &plan, 1_000);
    // The new allocation never becomes healthy.
    for alloc in allocs.iter_mut().filter(|a| a.version == 2) {
        alloc.healthy_since_ms = None;
    }
    assert!(schedule(&jobs, &nodes, &allocs, 30_000).changes.is_empty(), "waits for the deadline");
    let plan = schedule(&jobs, &nodes, &allocs, 61_000);
    let change = &plan.changes[0];
    assert!(
        matches!(change.rollout, Some((2, RolloutState::Failed, ref why)) if why.contains("not healthy within 60s"))
    );
    assert_eq!(change.revert_to, Some(1));
    apply(&mut jobs, &mut allocs, &plan, 61_000);
    assert_eq!(jobs[0].version, 3);
    // Version 3 (version 1's spec) replaces the failed allocation.
    let plan = schedule(&jobs, &nodes, &allocs, 62_000);
    assert_eq!(plan.changes[0].stop.len(), 1);
    assert_eq!(plan.changes[0].add[0].1, 3);
}

/// A job placed on `nodes` at t=0.
fn placed(placement: serde_json::Value, nodes: &[NodeView]) -> (Vec<JobView>, Vec<AllocView>) {
    let mut jobs = vec![job(placement)];
    let mut allocs = vec![];
    let plan = schedule(&jobs, nodes, &allocs, 0);
    apply(&mut jobs, &mut allocs, &plan, 0);
    (jobs, allocs)
}

/// A job placed on `nodes` at t=0 whose first version became healthy at t=20s.
fn placed_and_healthy(placement: serde_json::Value, nodes: &[NodeView]) -> (Vec<JobView>, Vec<AllocView>) {
    let (mut jobs, mut allocs) = placed(placement, nodes);
    let plan = schedule(&jobs, nodes, &allocs, 20_000);
    apply(&mut jobs, &mut allocs, &plan, 20_000);
    assert_eq!(jobs[0].versions[0].rollout, RolloutState::Healthy);
    (jobs, allocs)
}

#[test]
fn a_failed_allocation_is_replaced_after_the_stated_delay() {
    let nodes = [node("a", &[]), node("b", &[])];
    let (mut jobs, mut allocs) = placed_and_healthy(json!({"count": 1}), &nodes);
    // Its task runs out of restarts at t=30s: left alone for the delay, so `job status` shows why.
    allocs[0].reported = Reported::Failed { since_ms: 30_000 };
    allocs[0].healthy_since_ms = None;
    let plan = schedule(&jobs, &nodes, &allocs, 31_000);
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.wake_at_ms, Some(30_000 + FAILED_REPLACE_DELAY_MS));
    let plan = schedule(&jobs, &nodes, &allocs, 30_000 + FAILED_REPLACE_DELAY_MS);
    let change = &plan.changes[0];
    assert_eq!(change.stop, vec![("web-0".to_string(), "failed; replaced".to_string())]);
    assert_eq!(change.add, vec![(1, 1, 0, "a".to_string())]);
    assert_eq!(change.rollout, None, "a healthy version is not failed by a later failure");
    apply(&mut jobs, &mut allocs, &plan, 35_000);
    // The failed one is removed once it has ended (its node stopped it), and nothing more is placed.
    allocs[0].reported = Reported::Ended;
    let plan = schedule(&jobs, &nodes, &allocs, 36_000);
    assert_eq!(plan.changes[0].remove, vec!["web-0".to_string()]);
    assert!(plan.changes[0].add.is_empty());
}

#[test]
fn a_failure_during_a_rollout_fails_the_version_and_is_still_replaced() {
    let nodes = [node("a", &[])];
    let (mut jobs, mut allocs) = placed(json!({}), &nodes);
    allocs[0].reported = Reported::Failed { since_ms: 1_000 };
    allocs[0].healthy_since_ms = None;
    let plan = schedule(&jobs, &nodes, &allocs, 1_000);
    assert!(
        matches!(plan.changes[0].rollout, Some((1, RolloutState::Failed, ref why)) if why.contains("web-0 failed"))
    );
    assert_eq!(plan.changes[0].revert_to, None, "no healthy version to go back to");
    apply(&mut jobs, &mut allocs, &plan, 1_000);
    let plan = schedule(&jobs, &nodes, &allocs, 1_000 + FAILED_REPLACE_DELAY_MS);
    assert_eq!(plan.changes[0].stop.len(), 1);
    assert_eq!(plan.changes[0].add.len(), 1, "a failed version still keeps its count");
}

#[test]
fn healthy_deadline_no_longer_applies_once_the_version_is_healthy() {
    let nodes = [node("a", &[]), node("b", &[])];
    let (jobs, mut allocs) = placed_and_healthy(json!({"count": 2}), &nodes);
    // An hour later one allocation's check fails (healthy no more): past its deadline, but the rollout is over.
    allocs[0].healthy_since_ms = None;
    let plan = schedule(&jobs, &nodes, &allocs, 3_600_000);
    assert!(plan.changes.is_empty(), "{plan:?}");
}

#[test]
fn a_rollout_replaces_unhealthy_old_allocations_first() {
    let nodes = [node("a", &[]), node("b", &[]), node("c", &[])];
    let (mut jobs, mut allocs) = placed_and_healthy(json!({"count": 3, "distinct_hosts": true}), &nodes);
    // Slot 2's check fails; version 2 is deployed.
    allocs.iter_mut().find(|a| a.index == 2).unwrap().healthy_since_ms = None;
    let v2 = VersionView { version: 2, shape: jobs[0].versions[0].shape.clone(), rollout: RolloutState::InProgress };
    jobs[0].versions.push(v2);
    jobs[0].version = 2;
    let plan = schedule(&jobs, &nodes, &allocs, 30_000);
    assert_eq!(plan.changes[0].stop, vec![("web-2".to_string(), "replaced by version 2".to_string())]);
}

#[test]
fn a_stopped_job_stops_everything_and_removes_what_ended() {
    let nodes = [node("a", &[])];
    let (mut jobs, mut allocs) = placed(json!({}), &nodes);
    jobs[0].stopped = true;
    let plan = schedule(&jobs, &nodes, &allocs, 1);
    assert_eq!(plan.changes[0].stop, vec![("web-0".to_string(), "job stopped".to_string())]);
    apply(&mut jobs, &mut allocs, &plan, 1);
    assert!(schedule(&jobs, &nodes, &allocs, 2).changes.is_empty(), "waits for the node to report");
    allocs[0].reported = Reported::Ended;
    assert_eq!(schedule(&jobs, &nodes, &allocs, 3).changes[0].remove, vec!["web-0".to_string()]);
}

fn arb_nodes() -> impl Strategy<Value = Vec<NodeView>> {
    prop::collection::vec((any::<bool>(), any::<bool>(), prop::option::of(0..20_000u64), any::<bool>()), 1..6).prop_map(
        |flags| {
            flags
                .into_iter()
                .enumerate()
                .map(|(i, (edge, alive, critical, exec))| {
                    let mut n = node(&format!("n{i}"), &[("zone", if edge { "edge" } else { "core" })]);
                    n.alive = alive && critical.is_none();
                    n.critical_since_ms = critical;
                    if !exec {
                        n.drivers.clear();
                    }
                    n
                })
                .collect()
        },
    )
}

fn arb_placement() -> impl Strategy<Value = serde_json::Value> {
    (0..5u32, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(count, distinct, global, constrained)| {
        let constraints = if constrained {
            json!([{"attribute": "node_meta.zone", "operator": "!=", "value": "edge"}])
        } else {
            json!([])
        };
        if global {
            json!({"global": true, "constraints": constraints})
        } else {
            json!({"count": count, "distinct_hosts": distinct, "constraints": constraints})
        }
    })
}

proptest! {
    #[test]
    fn invariants_hold_over_random_node_sets(nodes in arb_nodes(), placement in arb_placement(), steps in 1..4usize) {
        let mut jobs = vec![job(placement)];
        let mut allocs = vec![];
        for step in 0..steps {
            let now = 25_000 + step as u64 * 1_000;
            let plan = schedule(&jobs, &nodes, &allocs, now);
            // Never on an ineligible node.
            for change in &plan.changes {
                for (_, _, _, name) in &change.add {
                    let n = nodes.iter().find(|n| &n.name == name).unwrap();
                    prop_assert!(n.alive && fits(&jobs[0].versions[0].shape, n), "placed on {name}");
                }
            }
            apply(&mut jobs, &mut allocs, &plan, now);
            let shape = &jobs[0].versions[0].shape;
            let run = running(&allocs, "web");
            if !shape.placement.global {
                prop_assert!(run.len() <= shape.placement.wanted() as usize);
            }
            if shape.placement.distinct_hosts || shape.placement.global {
                let distinct: BTreeSet<&str> = run.iter().map(|a| a.node.as_str()).collect();
                prop_assert_eq!(distinct.len(), run.len());
            }
            // Level-triggered: the state the plan produced needs nothing more.
            let again = schedule(&jobs, &nodes, &allocs, now);
            prop_assert!(again.changes.iter().all(|c| c.add.is_empty() && c.stop.is_empty() && c.remove.is_empty()), "{:?}", again);
        }
    }
}
