//! Tests for `State`: what each command does to the data and to the indexes queries report, and the properties (determinism, snapshot round trip, index monotonicity) that keep replicas in step.

use proptest::prelude::*;

use super::*;
use crate::Registration;
use crate::model::Weights;
use crate::watch::WatchKey;

pub(crate) fn set(key: &str, value: &str) -> Command {
    Command::KvSet { key: key.into(), value: value.as_bytes().to_vec(), flags: 0 }
}

pub(crate) fn node(name: &str) -> Node {
    Node {
        id: format!("id-{name}"),
        node: name.into(),
        address: "10.0.0.1".into(),
        datacenter: "dc1".into(),
        ..Node::default()
    }
}

pub(crate) fn service(id: &str, name: &str, tags: &[&str]) -> Service {
    Service {
        id: id.into(),
        service: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        port: 8000,
        weights: Weights::default(),
        ..Service::default()
    }
}

pub(crate) fn check(id: &str, service_id: &str, status: CheckStatus) -> HealthCheck {
    HealthCheck {
        node: String::new(),
        check_id: id.into(),
        name: id.into(),
        status,
        notes: String::new(),
        output: String::new(),
        service_id: service_id.into(),
        service_name: String::new(),
        service_tags: Vec::new(),
        check_type: "ttl".into(),
        interval: String::new(),
        timeout: String::new(),
        definition_json: String::new(),
        create_index: 0,
        modify_index: 0,
    }
}

pub(crate) fn register(node_name: &str, svc: Option<Service>, checks: Vec<HealthCheck>) -> Command {
    Command::Register(Box::new(Registration { node: node(node_name), skip_node_update: false, service: svc, checks }))
}

/// A session on `node` named by `id`, naming `checks`, releasing its locks, with no lock-delay.
pub(crate) fn session(id: &str, node: &str, checks: &[&str]) -> crate::model::Session {
    crate::model::Session {
        id: id.into(),
        name: format!("session {id}"),
        node: node.into(),
        node_checks: checks.iter().map(|c| c.to_string()).collect(),
        ..crate::model::Session::default()
    }
}

pub(crate) fn session_create(id: &str, node: &str, checks: &[&str]) -> Command {
    Command::SessionCreate(Box::new(session(id, node, checks)))
}

/// A KV transaction operation with no value, flags, index or session.
pub(crate) fn kv_op(verb: crate::txn::KvVerb, key: &str) -> crate::txn::TxnOp {
    crate::txn::TxnOp::Kv { verb, key: key.into(), value: Vec::new(), flags: 0, index: 0, session: String::new() }
}

/// Applies commands at indexes 1, 2, ... and returns the state and each result.
pub(crate) fn run(cmds: &[Command]) -> (State, Vec<CommandResult>) {
    let mut state = State::new();
    let results = cmds.iter().enumerate().map(|(i, c)| state.apply(i as u64 + 1, c).0).collect();
    (state, results)
}

#[test]
fn set_then_get_reports_create_and_modify_index() {
    let (state, _) = run(&[set("a", "1"), set("b", "2"), set("a", "3")]);
    let (entry, index) = state.kv_get("a");
    let entry = entry.expect("a exists");
    assert_eq!((entry.value.as_slice(), entry.create_index, entry.modify_index), (b"3".as_slice(), 1, 3));
    assert_eq!(index, 3);
}

#[test]
fn missing_key_index_moves_only_when_that_key_changes() {
    let (mut state, _) = run(&[set("other", "x")]);
    assert_eq!(state.kv_get("k").1, 1, "a never-written key reports 1, not the table index");
    state.apply(2, &set("other", "y"));
    assert_eq!(state.kv_get("k").1, 1);
    state.apply(3, &set("k", "v"));
    assert_eq!(state.kv_get("k").1, 3);
    state.apply(4, &Command::KvDelete { key: "k".into() });
    assert_eq!(state.kv_get("k"), (None, 4), "the deletion is the key's last change");
}

#[test]
fn prefix_index_covers_entries_and_deletions_under_it_only() {
    let (mut state, _) = run(&[set("lb/web/1", "a"), set("lb/web/2", "b"), set("other/x", "c")]);
    assert_eq!(state.kv_list("lb/web/").1, 2);
    state.apply(4, &set("other/y", "d"));
    assert_eq!(state.kv_list("lb/web/").1, 2);
    state.apply(5, &Command::KvDelete { key: "lb/web/2".into() });
    let (entries, index) = state.kv_list("lb/web/");
    assert_eq!((entries.len(), index), (1, 5));
}

#[test]
fn cas_with_zero_creates_only_when_absent() {
    let cas = |index| Command::KvCas { key: "k".into(), value: b"v".to_vec(), flags: 0, index };
    let (state, results) = run(&[cas(0), cas(0), cas(1), cas(1)]);
    assert_eq!(
        results,
        vec![
            CommandResult::Bool(true),
            CommandResult::Bool(false),
            CommandResult::Bool(true),
            CommandResult::Bool(false)
        ]
    );
    assert_eq!(state.kv_get("k").0.map(|e| e.modify_index), Some(3));
}

#[test]
fn delete_cas_on_mismatch_leaves_key() {
    let (state, results) = run(&[
        set("k", "v"),
        Command::KvDeleteCas { key: "k".into(), index: 9 },
        Command::KvDeleteCas { key: "missing".into(), index: 9 },
    ]);
    assert_eq!(results[1..], [CommandResult::Bool(false), CommandResult::Bool(true)]);
    assert!(state.kv_get("k").0.is_some());
}

#[test]
fn delete_tree_removes_only_the_prefix() {
    let (state, _) =
        run(&[set("a/1", ""), set("a/2", ""), set("ab", ""), Command::KvDeleteTree { prefix: "a/".into() }]);
    assert_eq!(state.kv_keys("", None).0, vec!["ab".to_string()]);
}

#[test]
fn keys_with_separator_fold_at_the_first_separator_after_prefix() {
    let (state, _) = run(&[set("base/base/a", ""), set("base/base/b", ""), set("base/foo", ""), set("basement", "")]);
    assert_eq!(state.kv_keys("base/", Some("/")).0, vec!["base/base/", "base/foo"]);
    assert_eq!(state.kv_keys("base", Some("/")).0, vec!["base/", "basement"]);
    assert_eq!(state.kv_keys("base/", None).0.len(), 3);
}

#[test]
fn registration_is_visible_in_health_and_catalog() {
    let (state, results) = run(&[register(
        "n1",
        Some(service("web1", "web", &["v1"])),
        vec![check("service:web1", "web1", CheckStatus::Passing)],
    )]);
    assert_eq!(results, vec![CommandResult::Bool(true)]);
    let (entries, index) = state.service_health("web", &[], false);
    assert_eq!((entries.len(), index), (1, 1));
    assert_eq!(entries[0].checks[0].service_name, "web", "the check is tied to its service by name");
    assert_eq!(entries[0].checks[0].service_tags, vec!["v1".to_string()]);
    let (names, _) = state.service_names();
    assert_eq!(names.get("web").map(|t| t.iter().copied().collect::<Vec<_>>()), Some(vec!["v1"]));
}

#[test]
fn check_for_unknown_service_is_rejected_and_writes_nothing() {
    let (state, results) =
        run(&[register("n1", Some(service("a", "a", &[])), vec![check("c", "nope", CheckStatus::Passing)])]);
    assert_eq!(results, vec![CommandResult::Rejected("Unknown service ID 'nope' for check ID 'c'".into())]);
    assert!(state.node("n1").0.is_none(), "a rejected registration must not half-apply");
}

#[test]
fn registration_without_node_or_address_is_rejected() {
    let mut no_address = node("n1");
    no_address.address.clear();
    let (_, results) = run(&[
        Command::Register(Box::new(Registration { node: Node::default(), ..Registration::default() })),
        Command::Register(Box::new(Registration { node: no_address, ..Registration::default() })),
    ]);
    assert!(matches!(&results[0], CommandResult::Rejected(m) if m == "Must provide node"));
    assert!(matches!(&results[1], CommandResult::Rejected(m) if m.contains("address")));
}

#[test]
fn passing_filter_drops_instances_with_a_failing_node_check() {
    let (mut state, _) = run(&[
        register("n1", Some(service("web1", "web", &[])), vec![]),
        register("n2", Some(service("web2", "web", &[])), vec![]),
    ]);
    let (changes_result, changes) =
        state.apply(3, &register("n1", None, vec![check("serfHealth", "", CheckStatus::Critical)]));
    assert_eq!(changes_result, CommandResult::Bool(true));
    assert!(changes.touches(&WatchKey::Service("web".into())), "a node check changes its services' health");
    let (passing, index) = state.service_health("web", &[], true);
    assert_eq!(passing.iter().map(|e| e.node.node.as_str()).collect::<Vec<_>>(), vec!["n2"]);
    assert_eq!(index, 3);
}

#[test]
fn warning_counts_as_not_passing() {
    let (state, _) =
        run(&[register("n1", Some(service("w", "web", &[])), vec![check("c", "w", CheckStatus::Warning)])]);
    assert!(state.service_health("web", &[], true).0.is_empty());
    assert_eq!(state.service_health("web", &[], false).0[0].status(), CheckStatus::Warning);
}

#[test]
fn tag_filter_requires_every_tag_case_insensitively() {
    let (state, _) = run(&[
        register("n1", Some(service("a", "web", &["v1", "primary"])), vec![]),
        register("n1", Some(service("b", "web", &["v1"])), vec![]),
    ]);
    let ids = |tags: &[&str]| {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        state.service_instances("web", &tags).0.iter().map(|(_, s)| s.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&["v1"]), vec!["a", "b"]);
    assert_eq!(ids(&["V1", "Primary"]), vec!["a"]);
    assert!(ids(&["v2"]).is_empty());
}

#[test]
fn unchanged_reregistration_keeps_indexes_and_wakes_nobody() {
    let reg = register("n1", Some(service("web1", "web", &[])), vec![check("c", "web1", CheckStatus::Passing)]);
    let (mut state, _) = run(std::slice::from_ref(&reg));
    let (result, changes) = state.apply(2, &reg);
    assert_eq!(result, CommandResult::Bool(true));
    assert!(changes.is_empty(), "nothing changed, so no watcher may wake: {changes:?}");
    assert_eq!(state.service_health("web", &[], false).1, 1);
    assert_eq!(state.last_index(), 2);
}

#[test]
fn deregistering_a_service_removes_its_checks_and_moves_its_index() {
    let (mut state, _) = run(&[register(
        "n1",
        Some(service("web1", "web", &[])),
        vec![check("c", "web1", CheckStatus::Passing), check("serfHealth", "", CheckStatus::Passing)],
    )]);
    state.apply(2, &Command::Deregister { node: "n1".into(), service_id: Some("web1".into()), check_id: None });
    assert_eq!(state.service_health("web", &[], false), (vec![], 2));
    assert_eq!(state.node_checks("n1").0.iter().map(|c| c.check_id.as_str()).collect::<Vec<_>>(), vec!["serfHealth"]);
}

#[test]
fn deregistering_a_node_removes_everything_on_it() {
    let (mut state, _) =
        run(&[register("n1", Some(service("web1", "web", &[])), vec![check("c", "web1", CheckStatus::Passing)])]);
    let (_, changes) = state.apply(2, &Command::Deregister { node: "n1".into(), service_id: None, check_id: None });
    assert!(changes.touches(&WatchKey::Service("web".into())));
    assert!(state.nodes().0.is_empty());
    assert!(state.checks_in_state(None).0.is_empty());
    assert!(state.service_names().0.is_empty());
}

#[test]
fn renaming_a_service_instance_moves_it_between_names() {
    let (state, _) = run(&[
        register("n1", Some(service("x", "old", &[])), vec![]),
        register("n1", Some(service("x", "new", &[])), vec![]),
    ]);
    assert!(state.service_instances("old", &[]).0.is_empty());
    assert_eq!(state.service_instances("old", &[]).1, 2, "watchers of the old name see it leave");
    assert_eq!(state.service_instances("new", &[]).0.len(), 1);
}

#[test]
fn checks_in_state_filters_by_status() {
    let (state, _) = run(&[register(
        "n1",
        Some(service("w", "web", &[])),
        vec![check("a", "w", CheckStatus::Passing), check("b", "w", CheckStatus::Critical)],
    )]);
    let ids = |s| state.checks_in_state(s).0.iter().map(|c| c.check_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(Some(CheckStatus::Critical)), vec!["b"]);
    assert_eq!(ids(None), vec!["a", "b"]);
}

#[test]
fn snapshot_rejects_foreign_bytes() {
    assert!(State::decode_snapshot(b"not a snapshot").is_err());
    let mut bytes = State::new().encode_snapshot();
    bytes[7] = 99;
    assert!(State::decode_snapshot(&bytes).is_err());
}

// ---- properties ----

/// Session, lock and transaction commands over the same keys and nodes as `arb_command`'s others.
fn arb_coordination() -> impl Strategy<Value = Command> {
    use crate::model::SessionBehavior;
    use crate::txn::{KvVerb, TxnOp};
    let key = prop::sample::select(vec!["a", "a/b", "b", ""]).prop_map(String::from);
    let id = prop::sample::select(vec!["s1", "s2", "s3"]).prop_map(String::from);
    let node_name = prop::sample::select(vec!["n1", "n2"]).prop_map(String::from);
    let now = 0..40_000u64;
    let config_name = prop::sample::select(vec!["web", "db"]).prop_map(String::from);
    let verb = prop::sample::select(vec![
        KvVerb::Set,
        KvVerb::Cas,
        KvVerb::Lock,
        KvVerb::Unlock,
        KvVerb::Get,
        KvVerb::CheckIndex,
        KvVerb::CheckNotExists,
        KvVerb::Delete,
        KvVerb::DeleteTree,
        KvVerb::DeleteCas,
    ]);
    let op = (verb, key.clone(), any::<Vec<u8>>(), 0..20u64, id.clone())
        .prop_map(|(verb, key, value, index, session)| TxnOp::Kv { verb, key, value, flags: 0, index, session });
    prop_oneof![
        (id.clone(), node_name, any::<bool>(), any::<bool>()).prop_map(|(id, n, with_check, delete)| {
            let checks: &[&str] = if with_check { &["node"] } else { &[] };
            let mut s = session(&id, &n, checks);
            s.lock_delay_ns = 15_000_000_000;
            s.behavior = if delete { SessionBehavior::Delete } else { SessionBehavior::Release };
            Command::SessionCreate(Box::new(s))
        }),
        (id.clone(), now.clone()).prop_map(|(id, now_ms)| Command::SessionDestroy { id, now_ms }),
        (key.clone(), any::<Vec<u8>>(), id.clone(), now.clone())
            .prop_map(|(key, value, session, now_ms)| { Command::KvLock { key, value, flags: 0, session, now_ms } }),
        (key, id).prop_map(|(key, session)| Command::KvUnlock { key, value: Vec::new(), flags: 0, session }),
        (prop::collection::vec(op, 1..4), now).prop_map(|(ops, now_ms)| Command::Txn { ops, now_ms }),
        (config_name.clone(), prop::option::of(0..20u64)).prop_map(|(name, cas)| {
            let body = serde_json::json!({"Kind": "service-defaults", "Name": name, "Protocol": "http"});
            let entry = crate::config_entry::ConfigEntry::from_json(&body).expect("a valid entry");
            Command::ConfigEntrySet { entry: Box::new(entry), cas }
        }),
        (config_name, prop::option::of(0..20u64)).prop_map(|(name, cas)| Command::ConfigEntryDelete {
            kind: "service-defaults".into(),
            name,
            cas
        }),
        arb_job(),
    ]
}

/// Cluster-job commands over the same nodes: submits, stops, plans that may be stale, reports.
fn arb_job() -> impl Strategy<Value = Command> {
    use crate::job::{AllocStatusReport, ClientStatus, JobPlan, Placed};
    let job = prop::sample::select(vec!["web", "db"]).prop_map(String::from);
    let node_name = prop::sample::select(vec!["n1", "n2"]).prop_map(String::from);
    prop_oneof![
        (job.clone(), 1..3u32, prop::option::of(node_name.clone())).prop_map(|(name, image, on)| {
            let placement = match on {
                Some(n) => serde_json::json!({"nodes": [n]}),
                None => serde_json::json!({}),
            };
            let spec = serde_json::json!({"name": name, "placement": placement,
                "tasks": [{"name": "t", "driver": "exec", "command": format!("/bin/v{image}")}]});
            Command::JobSubmit { spec: spec.to_string(), now_ms: 7 }
        }),
        (job.clone(), any::<bool>()).prop_map(|(name, purge)| Command::JobStop { name, purge }),
        (job.clone(), 0..4u64, 0..30u64, 0..30u64, node_name.clone()).prop_map(|(name, seq, m, p, n)| {
            let add = vec![Placed { seq, version: 1, index: 0, node: n }];
            let plan = JobPlan { job: name, expect_modify_index: m, expect_plan_index: p, add, ..JobPlan::default() };
            Command::JobPlanApply { plans: vec![plan], now_ms: 9 }
        }),
        (job, 0..4u64, node_name.clone(), any::<bool>()).prop_map(|(name, seq, node, healthy)| {
            let report = AllocStatusReport {
                id: format!("{name}-{seq}"),
                status: ClientStatus::Running,
                tasks: vec![],
                healthy: Some(healthy),
                message: String::new(),
            };
            Command::AllocReport { node, reports: vec![report], now_ms: 11 }
        }),
        node_name.prop_map(|node| Command::HostReport { node, drivers: vec!["exec".into()], now_ms: 3 }),
    ]
}

pub(crate) fn arb_command() -> impl Strategy<Value = Command> {
    let key = prop::sample::select(vec!["a", "a/b", "a/c", "b", "b/a", "ab", ""]).prop_map(String::from);
    let name = prop::sample::select(vec!["web", "db", "cache"]).prop_map(String::from);
    let node_name = prop::sample::select(vec!["n1", "n2"]).prop_map(String::from);
    let status = prop::sample::select(vec![CheckStatus::Passing, CheckStatus::Warning, CheckStatus::Critical]);
    prop_oneof![
        arb_coordination(),
        (key.clone(), any::<Vec<u8>>(), any::<u64>()).prop_map(|(key, value, flags)| Command::KvSet {
            key,
            value,
            flags
        }),
        (key.clone(), any::<Vec<u8>>(), 0..20u64).prop_map(|(key, value, index)| Command::KvCas {
            key,
            value,
            flags: 0,
            index
        }),
        key.clone().prop_map(|key| Command::KvDelete { key }),
        (key.clone(), 0..20u64).prop_map(|(key, index)| Command::KvDeleteCas { key, index }),
        key.prop_map(|prefix| Command::KvDeleteTree { prefix }),
        (node_name.clone(), name.clone(), status, any::<bool>()).prop_map(|(n, s, st, with_check)| {
            let id = format!("{s}-1");
            let checks = if with_check { vec![check("c1", &id, st)] } else { vec![check("node", "", st)] };
            register(&n, Some(service(&id, &s, &["t"])), checks)
        }),
        (node_name, prop::option::of(name)).prop_map(|(node, s)| Command::Deregister {
            node,
            service_id: s.map(|s| format!("{s}-1")),
            check_id: None
        }),
        (0..40u64, 0..40u64).prop_map(|(reap_index, now_ms)| Command::TombstoneReap { reap_index, now_ms }),
    ]
}

/// The floors a query's index may rise to without a change to what it reads (see "Tombstones" and "Bounded maps"
/// in `state`): a reap or a removal elsewhere raises them, and no watcher is woken for that.
pub(crate) fn floors(state: &State) -> [u64; 3] {
    [state.kv_reaped_index, state.service_index_floor, state.node_index_floor]
}

proptest! {
    #[test]
    fn same_commands_give_identical_snapshots(cmds in prop::collection::vec(arb_command(), 0..60)) {
        let (a, ra) = run(&cmds);
        let (b, rb) = run(&cmds);
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(a.encode_snapshot(), b.encode_snapshot());
    }

    #[test]
    fn snapshot_round_trips(cmds in prop::collection::vec(arb_command(), 0..60)) {
        let (state, _) = run(&cmds);
        let decoded = State::decode_snapshot(&state.encode_snapshot()).expect("own snapshot decodes");
        prop_assert_eq!(&decoded, &state);
        // The restored state keeps applying exactly like the original.
        let (mut x, mut y) = (state, decoded);
        let next = set("a/b", "after");
        let idx = x.last_index() + 1;
        prop_assert_eq!(x.apply(idx, &next), y.apply(idx, &next));
        prop_assert_eq!(x, y);
    }

    #[test]
    fn kv_matches_a_plain_map_model(cmds in prop::collection::vec(arb_command(), 0..80)) {
        // Locks, sessions and transactions move keys in ways this model does not follow; `tests/sessions.rs` and `tests/txn.rs` check those.
        let cmds: Vec<Command> = cmds
            .into_iter()
            .filter(|c| !matches!(c, Command::SessionCreate(_) | Command::SessionDestroy { .. } | Command::KvLock { .. } | Command::KvUnlock { .. } | Command::Txn { .. }))
            .collect();
        let mut model: std::collections::BTreeMap<String, (Vec<u8>, u64)> = Default::default();
        let mut state = State::new();
        for (i, cmd) in cmds.iter().enumerate() {
            let index = i as u64 + 1;
            state.apply(index, cmd);
            match cmd {
                Command::KvSet { key, value, .. } => { model.insert(key.clone(), (value.clone(), index)); }
                Command::KvCas { key, value, index: want, .. } if model.get(key).map_or(0, |e| e.1) == *want => {
                    model.insert(key.clone(), (value.clone(), index));
                }
                Command::KvDelete { key } => { model.remove(key); }
                Command::KvDeleteCas { key, index: want } if model.get(key).is_some_and(|e| e.1 == *want) => {
                    model.remove(key);
                }
                Command::KvDeleteTree { prefix } => model.retain(|k, _| !k.starts_with(prefix.as_str())),
                _ => {}
            }
        }
        let got: Vec<(String, Vec<u8>, u64)> =
            state.kv_list("").0.into_iter().map(|e| (e.key.clone(), e.value.clone(), e.modify_index)).collect();
        let want: Vec<(String, Vec<u8>, u64)> = model.into_iter().map(|(k, (v, i))| (k, v, i)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn query_indexes_never_go_backwards_and_move_when_touched(cmds in prop::collection::vec(arb_command(), 1..60)) {
        let mut state = State::new();
        let watched = [WatchKey::Prefix("a".into()), WatchKey::Key("b".into()), WatchKey::Service("web".into())];
        let index_of = |s: &State, k: &WatchKey| match k {
            WatchKey::Prefix(p) => s.kv_list(p).1,
            WatchKey::Key(k) => s.kv_get(k).1,
            WatchKey::Service(n) => s.service_health(n, &[], false).1,
            _ => unreachable!(),
        };
        for (i, cmd) in cmds.iter().enumerate() {
            let before: Vec<u64> = watched.iter().map(|k| index_of(&state, k)).collect();
            let (_, changes) = state.apply(i as u64 + 1, cmd);
            for (k, old) in watched.iter().zip(before) {
                let new = index_of(&state, k);
                prop_assert!(new >= old);
                // A query whose index moved must have been woken, or have risen to a floor (its answer unchanged).
                if new != old && !changes.touches(k) {
                    prop_assert!(floors(&state).contains(&new), "{:?} moved without a change for {:?}", k, cmd);
                }
            }
        }
    }
}

mod acl;
mod jobs;
mod limits;
mod restore;
mod sessions;
mod tombstones;
mod txn;

#[test]
fn catalog_index_moves_with_catalog_writes_and_not_with_kv_writes() {
    let (mut state, _) = run(&[register("n1", Some(service("web1", "web", &[])), vec![])]);
    assert_eq!(state.catalog_index(), 1);
    state.apply(2, &set("config/x", "1"));
    assert_eq!((state.last_index(), state.catalog_index()), (2, 1), "a KV write leaves DNS answers standing");
    state.apply(3, &register("n1", Some(service("web1", "web", &[])), vec![check("c", "web1", CheckStatus::Critical)]));
    assert_eq!(state.catalog_index(), 3, "a check write retires them");
    let restored = State::decode_snapshot(&state.encode_snapshot()).unwrap();
    assert_eq!(restored.catalog_index(), 3, "and a snapshot keeps it");
}
