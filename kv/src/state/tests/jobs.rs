//! Tests of the cluster-job tables: submits and versions, refusals that change nothing, the scheduler's plans (stale
//! ones refused whole), agents' reports, the node-allocation watch, and the snapshot's format 10.

use serde_json::json;

use super::{node, register, run};
use crate::command::{Command, CommandResult};
use crate::job::{AllocStatusReport, ClientStatus, Desired, JobPlan, Placed, Rollout, TaskState};
use crate::query::{Answer, Query};
use crate::state::State;
use crate::watch::{Table, WatchKey};

fn spec(name: &str, image: &str, placement: serde_json::Value) -> String {
    json!({"name": name, "placement": placement,
        "tasks": [{"name": "t", "driver": "docker", "image": image, "services": [{"name": "web"}]}]})
    .to_string()
}

fn submit(spec: String) -> Command {
    Command::JobSubmit { spec, now_ms: 1_000 }
}

fn nodes() -> Vec<Command> {
    vec![register("n1", None, vec![]), register("n2", None, vec![])]
}

/// The job's current (modify, plan) indexes, for a plan built on them.
fn plan_for(state: &State, job: &str) -> JobPlan {
    let j = &state.jobs[job];
    JobPlan {
        job: job.into(),
        expect_modify_index: j.modify_index,
        expect_plan_index: j.plan_index,
        ..JobPlan::default()
    }
}

fn placed(seq: u64, node: &str) -> Placed {
    Placed { seq, version: 1, index: seq as u32, node: node.into() }
}

fn apply(state: &mut State, cmd: &Command) -> CommandResult {
    let index = state.last_index() + 1;
    state.apply(index, cmd).0
}

#[test]
fn a_submit_makes_a_version_and_the_same_spec_again_changes_nothing() {
    let (mut state, results) = run(&[nodes(), vec![submit(spec("web", "a:1", json!({"count": 2})))]].concat());
    assert_eq!(results[2], CommandResult::Bool(true));
    let job = &state.jobs["web"];
    assert_eq!((job.version, job.versions.len()), (1, 1));
    assert_eq!(job.current().unwrap().shape.placement.wanted(), 2);
    assert_eq!(job.current().unwrap().shape.services, ["web"]);

    let before = state.encode_snapshot();
    let (result, changes) = state.apply(10, &submit(spec("web", "a:1", json!({"count": 2}))));
    assert_eq!(result, CommandResult::Bool(true));
    assert!(changes.is_empty(), "an unchanged spec wakes nobody");
    let mut same = State::decode_snapshot(&before).unwrap();
    same.apply_noop(10);
    assert_eq!(state, same);

    assert_eq!(apply(&mut state, &submit(spec("web", "a:2", json!({"count": 2})))), CommandResult::Bool(true));
    assert_eq!(state.jobs["web"].version, 2);
    assert_eq!(apply(&mut state, &Command::JobStop { name: "web".into(), purge: false }), CommandResult::Bool(true));
    assert!(state.jobs["web"].stopped);
    // The same spec after a stop starts the job again, as a new version.
    assert_eq!(apply(&mut state, &submit(spec("web", "a:2", json!({"count": 2})))), CommandResult::Bool(true));
    assert_eq!((state.jobs["web"].version, state.jobs["web"].stopped), (3, false));
}

#[test]
fn refused_specs_change_nothing_and_name_the_field() {
    let (mut state, _) = run(&nodes());
    let before = state.clone();
    let cases = [
        (spec("web", "a", json!({"nodes": ["n1", "n9"]})), "placement.nodes[1]: no node named \"n9\" in the catalog"),
        (
            spec("web", "a", json!({"constraints": [{"attribute": "x", "operator": "=", "value": "1"}]})),
            "placement.constraints[0].attribute",
        ),
        (spec("Web", "a", json!({})), "name: \"Web\" contains 'W'"),
        ("[1]".to_owned(), "a job spec is a JSON object"),
        ("{".to_owned(), "job spec is not JSON"),
        ("x".repeat(crate::MAX_JOB_SPEC_LEN + 1), "job spec is too large"),
    ];
    for (spec, want) in cases {
        let (result, changes) = state.apply(5, &submit(spec));
        match result {
            CommandResult::Rejected(why) => assert!(why.contains(want), "{why:?} does not say {want:?}"),
            other => panic!("{want}: {other:?}"),
        }
        assert!(changes.is_empty());
    }
    let mut expected = before;
    expected.apply_noop(5);
    assert_eq!(state, expected);
    let (result, _) = state.apply(6, &Command::JobRevert { name: "nope".into(), version: 1, now_ms: 0 });
    assert!(matches!(result, CommandResult::Rejected(_)));
    assert_eq!(state.apply(7, &Command::JobStop { name: "nope".into(), purge: false }).0, CommandResult::Bool(false));
}

#[test]
fn a_plan_places_allocations_a_node_sees_with_their_spec_and_a_stale_plan_is_refused_whole() {
    let (mut state, _) = run(&[nodes(), vec![submit(spec("web", "a:1", json!({"count": 2})))]].concat());
    let query = Query::NodeAllocations { node: "n1".into() };
    let (_, before) = query.eval(&state);
    let plan =
        JobPlan { add: vec![placed(0, "n1"), placed(1, "n2")], pending: Some(vec![]), ..plan_for(&state, "web") };
    let index = state.last_index() + 1;
    let (result, changes) = state.apply(index, &Command::JobPlanApply { plans: vec![plan.clone()], now_ms: 5 });
    assert_eq!(result, CommandResult::Bool(true));
    assert!(changes.touches(&WatchKey::NodeAllocations("n1".into())));
    assert!(changes.touches(&WatchKey::Table(Table::Allocations)));
    let (answer, after) = query.eval(&state);
    assert!(after > before);
    let Answer::NodeAllocations(allocs) = answer else { panic!("{answer:?}") };
    assert_eq!(allocs.len(), 1);
    assert_eq!(allocs[0].allocation.id, "web-0");
    assert_eq!(allocs[0].allocation.desired, Desired::Run);
    assert!(allocs[0].spec.contains("a:1"));
    assert_eq!(state.jobs["web"].next_alloc, 2);

    // The same plan again is stale (the job's plan index moved): refused, nothing changes.
    let snapshot = state.encode_snapshot();
    let (result, changes) = state.apply(index + 1, &Command::JobPlanApply { plans: vec![plan], now_ms: 6 });
    assert!(matches!(result, CommandResult::Rejected(ref why) if why.contains("stale")), "{result:?}");
    assert!(changes.is_empty());
    let mut same = State::decode_snapshot(&snapshot).unwrap();
    same.apply_noop(index + 1);
    assert_eq!(state, same);

    // A plan with one bad part (a reused sequence) is refused with its good part.
    let bad = JobPlan { add: vec![placed(2, "n1"), placed(1, "n2")], ..plan_for(&state, "web") };
    assert!(matches!(
        apply(&mut state, &Command::JobPlanApply { plans: vec![bad], now_ms: 7 }),
        CommandResult::Rejected(_)
    ));
    assert_eq!(state.allocations.len(), 2);

    // n2 wakes only for its own allocation's stop.
    let stop = JobPlan { stop: vec![("web-1".into(), "moved".into())], ..plan_for(&state, "web") };
    let index = state.last_index() + 1;
    let (result, changes) = state.apply(index, &Command::JobPlanApply { plans: vec![stop], now_ms: 8 });
    assert_eq!(result, CommandResult::Bool(true));
    assert!(!changes.touches(&WatchKey::NodeAllocations("n1".into())));
    assert!(changes.touches(&WatchKey::NodeAllocations("n2".into())));
    let remove = JobPlan { remove: vec!["web-1".into()], ..plan_for(&state, "web") };
    assert_eq!(apply(&mut state, &Command::JobPlanApply { plans: vec![remove], now_ms: 9 }), CommandResult::Bool(true));
    assert_eq!(state.job_allocations("web").map(|a| a.id.as_str()).collect::<Vec<_>>(), ["web-0"]);
}

#[test]
fn reports_set_health_and_a_report_for_another_nodes_allocation_is_skipped() {
    let (mut state, _) = run(&[nodes(), vec![submit(spec("web", "a:1", json!({"count": 2})))]].concat());
    let plan = JobPlan { add: vec![placed(0, "n1"), placed(1, "n2")], ..plan_for(&state, "web") };
    apply(&mut state, &Command::JobPlanApply { plans: vec![plan], now_ms: 5 });
    let report = |id: &str, healthy| AllocStatusReport {
        id: id.into(),
        status: ClientStatus::Running,
        tasks: vec![TaskState { name: "t".into(), state: "running".into(), restarts: 1, failed: false }],
        healthy,
        message: String::new(),
    };
    let cmd = |reports, now_ms| Command::AllocReport { node: "n1".into(), reports, now_ms };
    assert_eq!(
        apply(&mut state, &cmd(vec![report("web-0", Some(true)), report("web-1", Some(true))], 100)),
        CommandResult::Bool(true)
    );
    let a0 = &state.allocations[&("web".to_owned(), 0)];
    assert_eq!(
        (a0.status, a0.healthy, a0.healthy_since_ms, a0.tasks[0].restarts),
        (ClientStatus::Running, Some(true), 100, 1)
    );
    assert_eq!(state.allocations[&("web".to_owned(), 1)].status, ClientStatus::Pending, "n1 cannot report n2's");
    // Still healthy later: the healthy run started at 100.
    let mut later = report("web-0", Some(true));
    later.message = "still fine".into();
    apply(&mut state, &cmd(vec![later], 200));
    assert_eq!(state.allocations[&("web".to_owned(), 0)].healthy_since_ms, 100);
    apply(&mut state, &cmd(vec![report("web-0", Some(false))], 300));
    assert_eq!(state.allocations[&("web".to_owned(), 0)].healthy_since_ms, 0);
    // An unchanged report changes nothing.
    let (_, changes) = state.apply(state.last_index() + 1, &cmd(vec![report("web-0", Some(false))], 400));
    assert!(changes.is_empty());
}

#[test]
fn hosts_revert_purge_and_snapshots() {
    let (mut state, _) = run(&[nodes(), vec![submit(spec("web", "a:1", json!({})))]].concat());
    let host = |drivers: &[&str]| Command::HostReport {
        node: "n1".into(),
        drivers: drivers.iter().map(|d| d.to_string()).collect(),
        now_ms: 1,
    };
    assert_eq!(apply(&mut state, &host(&["exec", "docker", "exec"])), CommandResult::Bool(true));
    assert_eq!(state.hosts["n1"].drivers, ["docker", "exec"]);
    let (_, changes) = state.apply(state.last_index() + 1, &host(&["docker", "exec"]));
    assert!(changes.is_empty());

    apply(&mut state, &submit(spec("web", "a:2", json!({}))));
    assert_eq!(
        apply(&mut state, &Command::JobRevert { name: "web".into(), version: 1, now_ms: 2 }),
        CommandResult::Bool(true)
    );
    let job = &state.jobs["web"];
    assert_eq!((job.version, job.current().unwrap().reverted_from), (3, Some(1)));
    assert!(job.current().unwrap().spec.contains("a:1"));
    let plan = JobPlan {
        add: vec![Placed { seq: 0, version: 3, index: 0, node: "n1".into() }],
        rollout: Some((3, Rollout::Healthy)),
        ..plan_for(&state, "web")
    };
    apply(&mut state, &Command::JobPlanApply { plans: vec![plan], now_ms: 5 });
    assert_eq!(state.jobs["web"].current().unwrap().rollout, Rollout::Healthy);

    let bytes = state.encode_snapshot();
    assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), crate::SNAPSHOT_VERSION);
    let decoded = State::decode_snapshot(&bytes).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(decoded.table(Table::Hosts), state.table(Table::Hosts));

    // A format-9 snapshot is format 10's body without the job tail: it decodes with no jobs.
    let (plain, _) = run(&nodes());
    let mut v9 = plain.encode_snapshot();
    v9[7] = 9;
    v9.truncate(v9.len() - 7);
    assert_eq!(State::decode_snapshot(&v9).unwrap(), plain);

    assert_eq!(apply(&mut state, &Command::JobStop { name: "web".into(), purge: true }), CommandResult::Bool(true));
    assert!(state.jobs.is_empty() && state.allocations.is_empty());
    let (answer, _) = Query::NodeAllocations { node: "n1".into() }.eval(&state);
    assert_eq!(answer, Answer::NodeAllocations(vec![]));
    let _ = node("unused");
}

#[test]
fn removing_an_allocation_removes_the_services_it_registered_and_nothing_else() {
    let (mut state, _) = run(&[nodes(), vec![submit(spec("web", "a:1", json!({"count": 2})))]].concat());
    let plan = JobPlan { add: vec![placed(0, "n1"), placed(1, "n2")], ..plan_for(&state, "web") };
    apply(&mut state, &Command::JobPlanApply { plans: vec![plan], now_ms: 5 });
    // Each node registered its allocation's service; n1 also has a service of its own with the same name.
    let tagged = |id: &str, alloc: &str| {
        let mut svc = super::service(id, "web", &[]);
        svc.meta.insert(crate::job::ALLOC_META.into(), alloc.into());
        svc
    };
    for cmd in [
        register(
            "n1",
            Some(tagged("n1:web-0:t:http", "web-0")),
            vec![super::check("c0", "n1:web-0:t:http", crate::CheckStatus::Passing)],
        ),
        register("n2", Some(tagged("n2:web-1:t:http", "web-1")), vec![]),
        register("n1", Some(super::service("own", "web", &[])), vec![]),
    ] {
        assert_eq!(apply(&mut state, &cmd), CommandResult::Bool(true));
    }
    let on = |state: &State, node: &str| -> Vec<String> {
        state.services.keys().filter(|(n, _)| n == node).map(|(_, id)| id.clone()).collect()
    };

    // Moved off n1 (lost): its service and check leave the catalog, and watchers of the name wake.
    let remove = JobPlan { remove: vec!["web-0".into()], ..plan_for(&state, "web") };
    let index = state.last_index() + 1;
    let (result, changes) = state.apply(index, &Command::JobPlanApply { plans: vec![remove], now_ms: 9 });
    assert_eq!(result, CommandResult::Bool(true));
    assert!(changes.touches(&WatchKey::Service("web".into())), "{changes:?}");
    assert_eq!(on(&state, "n1"), ["own"]);
    assert!(!state.checks.contains_key(&("n1".to_owned(), "c0".to_owned())));
    assert_eq!(on(&state, "n2"), ["n2:web-1:t:http"]);

    // A purge removes the rest of the job's.
    assert_eq!(apply(&mut state, &Command::JobStop { name: "web".into(), purge: true }), CommandResult::Bool(true));
    assert!(on(&state, "n2").is_empty());
    assert_eq!(on(&state, "n1"), ["own"]);
}
