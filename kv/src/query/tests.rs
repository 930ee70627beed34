//! Tests for `Query`: each reports the index and watch keys of the `State` read it stands for, answers owned data, keeps the blocking-query invariant under random commands, and round-trips through postcard (the RPC codec).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::command::Command;
use crate::model::ServiceAddress;
use crate::state::tests::{arb_command, check, kv_op, node, register, run, service, session_create, set};
use crate::txn::KvVerb;

/// A small catalog: `n1` runs `web-1` (passing) with a node check, `n2` runs `db-1` (critical) at its own address and `Cache-1`; three KV keys.
fn sample_state() -> State {
    let mut db = service("db-1", "db", &["primary"]);
    db.address = "10.0.0.9".into();
    let (state, _) = run(&[
        set("a", "1"),
        set("a/b", "2"),
        set("b", "3"),
        register(
            "n1",
            Some(service("web-1", "web", &["v1", "blue"])),
            vec![check("c1", "web-1", CheckStatus::Passing)],
        ),
        register("n1", None, vec![check("serf", "", CheckStatus::Passing)]),
        register("n2", Some(db), vec![check("c2", "db-1", CheckStatus::Critical)]),
        register("n2", Some(service("Cache-1", "Cache", &[])), vec![]),
        session_create("s1", "n1", &["serf"]),
    ]);
    state
}

/// Every variant, as the HTTP API, the alias checks and DNS send them.
fn sample_queries() -> Vec<Query> {
    vec![
        Query::KvGet { key: "a".into() },
        Query::KvGet { key: "missing".into() },
        Query::KvList { prefix: "a".into() },
        Query::KvKeys { prefix: String::new(), separator: Some("/".into()) },
        Query::Nodes,
        Query::NodeServices { name: "n1".into() },
        Query::NodeServices { name: "nope".into() },
        Query::Services,
        Query::ServiceNodes { name: "web".into(), tags: vec!["V1".into()] },
        Query::ServiceHealth { name: "db".into(), tags: vec![], passing: true },
        Query::ServiceHealth { name: "web".into(), tags: vec![], passing: false },
        Query::ServiceChecks { name: "web".into() },
        Query::NodeChecks { name: "n1".into() },
        Query::ChecksInState { state: Some(CheckStatus::Critical) },
        Query::ChecksInState { state: None },
        Query::MaxIndex,
        Query::TableIndex(Table::Services),
        Query::NodeStatus { node: "n2".into(), service_id: None },
        Query::NodeStatus { node: "n1".into(), service_id: Some("nope".into()) },
        Query::ResolveService { name: "cache".into(), tag: None },
        Query::ResolveService { name: "web".into(), tag: Some("BLUE".into()) },
        Query::ResolveNode { name: "N2".into() },
        Query::NodesWithAddress { address: "10.0.0.1".into() },
        Query::ServicesWithAddress { address: "10.0.0.9".into() },
        Query::SessionInfo { id: "s1".into() },
        Query::SessionInfo { id: "nope".into() },
        Query::SessionList,
        Query::SessionNode { node: "n2".into() },
        Query::Txn(vec![kv_op(KvVerb::Get, "a"), kv_op(KvVerb::GetTree, "a")]),
        Query::AclResolve { secret_id: "nope".into() },
        Query::AclTokens,
        Query::AclPolicies,
        Query::AclRoles,
        Query::AclAuthMethods,
        Query::AclBindingRules,
        Query::Usage,
        Query::AutopilotConfig,
        Query::Coordinates,
        Query::NodeCoordinate { node: "n1".into() },
        Query::PreparedQueryList,
        Query::PreparedQueryGet { id: "nope".into() },
        Query::PreparedQueryExplain { id_or_name: "web".into() },
        Query::PreparedQueryExecute {
            id_or_name: "web".into(),
            agent: "n1".into(),
            near: "_agent".into(),
            source_ip: String::new(),
        },
        Query::ConfigEntries { kind: "service-defaults".into() },
        Query::ConfigEntry { kind: "proxy-defaults".into(), name: "global".into() },
        Query::NodeMeta { node_meta: meta(&[("rack", "a")]), inner: Box::new(Query::Services) },
        Query::NodeMeta { node_meta: meta(&[("rack", "a")]), inner: Box::new(Query::ChecksInState { state: None }) },
        Query::AllServiceNodes { node_meta: BTreeMap::new() },
        Query::Jobs,
        Query::Job { name: "web".into() },
        Query::NodeAllocations { node: "n1".into() },
        Query::Hosts,
        Query::Allocations,
        Query::Scheduling,
    ]
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The index and watch keys each query must report: those of the `State` read (and the blocking call site) it replaced.
fn expected(state: &State, query: &Query) -> (u64, Vec<WatchKey>) {
    let tables = |ts: &[Table]| ts.iter().map(|t| WatchKey::Table(*t)).collect::<Vec<_>>();
    let resolve = [Table::Services, Table::Checks, Table::Nodes];
    let resolve_index = resolve.iter().map(|t| state.table(*t)).max().unwrap_or(1);
    match query {
        Query::KvGet { key } => (state.kv_get(key).1, vec![WatchKey::Key(key.clone())]),
        Query::KvList { prefix } => (state.kv_list(prefix).1, vec![WatchKey::Prefix(prefix.clone())]),
        Query::KvKeys { prefix, separator } => {
            (state.kv_keys(prefix, separator.as_deref()).1, vec![WatchKey::Prefix(prefix.clone())])
        }
        Query::Nodes => (state.nodes().1, tables(&[Table::Nodes])),
        Query::NodeServices { name } => (state.node(name).1, vec![WatchKey::Node(name.clone())]),
        Query::Services => (state.service_names().1, tables(&[Table::Services])),
        Query::ServiceNodes { name, tags } => {
            (state.service_instances(name, tags).1, vec![WatchKey::Service(name.clone())])
        }
        Query::ServiceHealth { name, tags, passing } => {
            (state.service_health(name, tags, *passing).1, vec![WatchKey::Service(name.clone())])
        }
        Query::ServiceChecks { name } => (state.service_checks(name).1, vec![WatchKey::Service(name.clone())]),
        Query::NodeChecks { name } => (state.node_checks(name).1, vec![WatchKey::Node(name.clone())]),
        Query::ChecksInState { state: s } => (state.checks_in_state(*s).1, tables(&[Table::Checks])),
        Query::MaxIndex | Query::Txn(_) => (
            state.max_index(),
            tables(&[
                Table::Kvs,
                Table::Nodes,
                Table::Services,
                Table::Checks,
                Table::Sessions,
                Table::AclTokens,
                Table::AclPolicies,
                Table::AclRoles,
                Table::AclAuthMethods,
                Table::AclBindingRules,
                Table::Autopilot,
                Table::Coordinates,
                Table::PreparedQueries,
                Table::ConfigEntries,
                Table::Jobs,
                Table::Allocations,
                Table::Hosts,
            ]),
        ),
        Query::Coordinates | Query::NodeCoordinate { .. } => {
            (state.table(Table::Coordinates), tables(&[Table::Coordinates]))
        }
        Query::PreparedQueryList | Query::PreparedQueryGet { .. } | Query::PreparedQueryExplain { .. } => {
            (state.table(Table::PreparedQueries), tables(&[Table::PreparedQueries]))
        }
        Query::PreparedQueryExecute { .. } => (
            state.table(Table::PreparedQueries).max(state.table(Table::Coordinates)).max(resolve_index),
            tables(&[Table::PreparedQueries, Table::Coordinates, Table::Services, Table::Checks, Table::Nodes]),
        ),
        Query::ConfigEntries { .. } | Query::ConfigEntry { .. } => {
            (state.table(Table::ConfigEntries), tables(&[Table::ConfigEntries]))
        }
        Query::AutopilotConfig => (state.table(Table::Autopilot), tables(&[Table::Autopilot])),
        Query::AclAuthMethods => (state.table(Table::AclAuthMethods), tables(&[Table::AclAuthMethods])),
        Query::AclBindingRules => (state.table(Table::AclBindingRules), tables(&[Table::AclBindingRules])),
        Query::AclResolve { .. } | Query::AclTokens => {
            (state.acl_index(), tables(&[Table::AclTokens, Table::AclPolicies, Table::AclRoles]))
        }
        Query::AclPolicies => (state.acl_policies().1, tables(&[Table::AclPolicies])),
        Query::AclRoles => {
            (state.acl_roles().1.max(state.table(Table::AclPolicies)), tables(&[Table::AclRoles, Table::AclPolicies]))
        }
        Query::SessionInfo { .. } | Query::SessionList | Query::SessionNode { .. } => {
            (state.sessions().1, tables(&[Table::Sessions]))
        }
        Query::TableIndex(t) => (state.table(*t), tables(&[*t])),
        Query::NodeStatus { node, .. } => (state.node_checks(node).1, vec![WatchKey::Node(node.clone())]),
        Query::ResolveService { .. } | Query::ServicesWithAddress { .. } => (resolve_index, tables(&resolve)),
        Query::ResolveNode { .. } | Query::NodesWithAddress { .. } => (state.nodes().1, tables(&[Table::Nodes])),
        Query::Usage => (state.nodes().1.max(state.service_names().1), tables(&[Table::Nodes, Table::Services])),
        Query::NodeMeta { inner, .. } => {
            let (index, mut keys) = expected(state, inner);
            if !keys.contains(&WatchKey::Table(Table::Nodes)) {
                keys.push(WatchKey::Table(Table::Nodes));
            }
            (index.max(state.table(Table::Nodes)), keys)
        }
        Query::AllServiceNodes { .. } => {
            (state.table(Table::Services).max(state.table(Table::Nodes)), tables(&[Table::Services, Table::Nodes]))
        }
        Query::Jobs => (state.table(Table::Jobs), tables(&[Table::Jobs])),
        Query::Job { .. } => {
            (state.table(Table::Jobs).max(state.table(Table::Allocations)), tables(&[Table::Jobs, Table::Allocations]))
        }
        Query::NodeAllocations { node } => {
            (state.node_allocations(node).1, vec![WatchKey::NodeAllocations(node.clone())])
        }
        Query::Hosts => (state.table(Table::Hosts), tables(&[Table::Hosts])),
        Query::Allocations => (state.table(Table::Allocations), tables(&[Table::Allocations])),
        Query::Scheduling => {
            let scheduling = [Table::Jobs, Table::Allocations, Table::Hosts, Table::Nodes, Table::Checks];
            (scheduling.iter().map(|t| state.table(*t)).max().unwrap_or(1), tables(&scheduling))
        }
    }
}

/// `n1` in rack a (role web), `n2` in rack b, `n3` in rack a with no role; each runs one instance with one check.
fn racked_state() -> State {
    let racked = |name: &str, pairs: &[(&str, &str)], svc: Service, check_id: &str| {
        let mut n = node(name);
        n.meta = meta(pairs);
        let checks = vec![crate::state::tests::check(check_id, &svc.id, CheckStatus::Passing)];
        Command::Register(Box::new(crate::Registration {
            node: n,
            skip_node_update: false,
            service: Some(svc),
            checks,
        }))
    };
    run(&[
        racked("n1", &[("rack", "a"), ("role", "web")], service("web-1", "web", &["v1"]), "c1"),
        racked("n2", &[("rack", "b")], service("web-2", "web", &["v2"]), "c2"),
        racked("n3", &[("rack", "a")], service("db-1", "db", &["primary"]), "c3"),
    ])
    .0
}

#[test]
fn node_meta_keeps_only_what_runs_on_nodes_with_every_pair() {
    let state = racked_state();
    let filtered = |pairs: &[(&str, &str)], inner: Query| {
        Query::NodeMeta { node_meta: meta(pairs), inner: Box::new(inner) }.eval(&state).0
    };
    let Answer::Nodes(nodes) = filtered(&[("rack", "a")], Query::Nodes) else { panic!("nodes") };
    assert_eq!(nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), ["n1", "n3"]);
    // Every pair must match: rack a and role web is n1 alone.
    let Answer::Nodes(nodes) = filtered(&[("rack", "a"), ("role", "web")], Query::Nodes) else { panic!("nodes") };
    assert_eq!(nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), ["n1"]);
    // A key asked with an empty value needs the key present with an empty value.
    assert_eq!(filtered(&[("role", "")], Query::Nodes), Answer::Nodes(vec![]));
    let want: BTreeMap<String, Vec<String>> =
        [("db".to_owned(), vec!["primary".to_owned()]), ("web".to_owned(), vec!["v1".to_owned()])].into();
    assert_eq!(filtered(&[("rack", "a")], Query::Services), Answer::ServiceTags(want));
    let Answer::ServiceNodes(web) =
        filtered(&[("rack", "b")], Query::ServiceNodes { name: "web".into(), tags: vec![] })
    else {
        panic!("instances")
    };
    assert_eq!(web.iter().map(|(_, s)| s.id.as_str()).collect::<Vec<_>>(), ["web-2"]);
    let Answer::Health(web) =
        filtered(&[("rack", "a")], Query::ServiceHealth { name: "web".into(), tags: vec![], passing: false })
    else {
        panic!("health")
    };
    assert_eq!(web.iter().map(|e| e.service.id.as_str()).collect::<Vec<_>>(), ["web-1"]);
    let Answer::Checks(checks) = filtered(&[("rack", "a")], Query::ChecksInState { state: None }) else {
        panic!("checks")
    };
    assert_eq!(checks.iter().map(|c| c.check_id.as_str()).collect::<Vec<_>>(), ["c1", "c3"]);
    let Answer::ServiceNodes(all) = Query::AllServiceNodes { node_meta: BTreeMap::new() }.eval(&state).0 else {
        panic!("all")
    };
    assert_eq!(all.len(), 3);
}

#[test]
fn every_query_reports_the_index_and_watch_keys_of_its_state_read() {
    let state = sample_state();
    for query in sample_queries() {
        let (_, index) = query.eval(&state);
        assert_eq!((index, query.watch_keys()), expected(&state, &query), "{query:?}");
    }
}

/// Evaluates `query` on the sample state.
fn answer(query: Query) -> Answer {
    query.eval(&sample_state()).0
}

#[test]
fn kv_queries_answer_owned_entries_and_folded_keys() {
    let Answer::Entry(Some(entry)) = answer(Query::KvGet { key: "a/b".into() }) else { panic!("a/b exists") };
    assert_eq!(entry.value, b"2");
    assert_eq!(answer(Query::KvGet { key: "zz".into() }), Answer::Entry(None));
    let Answer::Entries(entries) = answer(Query::KvList { prefix: "a".into() }) else { panic!("entries") };
    assert_eq!(entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["a", "a/b"]);
    let keys = answer(Query::KvKeys { prefix: String::new(), separator: Some("/".into()) });
    assert_eq!(keys, Answer::Keys(vec!["a".into(), "a/".into(), "b".into()]));
}

#[test]
fn session_queries_filter_by_id_and_node_and_read_only_txns_answer() {
    let Answer::Sessions(found) = answer(Query::SessionInfo { id: "s1".into() }) else { panic!("sessions") };
    assert_eq!(found.iter().map(|s| s.node.as_str()).collect::<Vec<_>>(), ["n1"]);
    assert_eq!(answer(Query::SessionInfo { id: "nope".into() }), Answer::Sessions(vec![]));
    assert_eq!(answer(Query::SessionNode { node: "n2".into() }), Answer::Sessions(vec![]));
    let Answer::Txn(TxnOutcome::Applied(results)) = answer(Query::Txn(vec![kv_op(KvVerb::GetTree, "a")])) else {
        panic!("txn")
    };
    assert_eq!(results.len(), 2);
    let Answer::Txn(TxnOutcome::RolledBack(errors)) = answer(Query::Txn(vec![kv_op(KvVerb::Get, "zz")])) else {
        panic!("txn")
    };
    assert_eq!(errors[0].what, "key \"zz\" doesn't exist");
}

#[test]
fn node_services_of_a_missing_node_is_empty() {
    assert_eq!(
        answer(Query::NodeServices { name: "nope".into() }),
        Answer::NodeServices { node: None, services: vec![] }
    );
    let Answer::NodeServices { node: Some(n2), services } = answer(Query::NodeServices { name: "n2".into() }) else {
        panic!("n2 exists")
    };
    assert_eq!(n2.node, "n2");
    assert_eq!(services.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["Cache-1", "db-1"]);
}

#[test]
fn services_answer_the_sorted_union_of_tags() {
    let want: BTreeMap<String, Vec<String>> = [
        ("Cache".to_owned(), vec![]),
        ("db".to_owned(), vec!["primary".to_owned()]),
        ("web".to_owned(), vec!["blue".to_owned(), "v1".to_owned()]),
    ]
    .into();
    assert_eq!(answer(Query::Services), Answer::ServiceTags(want));
}

#[test]
fn usage_counts_nodes_names_and_instances() {
    let mut proxy = service("web-1-proxy", "web-proxy", &[]);
    proxy.kind = "connect-proxy".into();
    let (state, _) = run(&[
        register("n1", Some(service("web-1", "web", &[])), vec![]),
        register("n1", Some(proxy), vec![]),
        register("n2", Some(service("web-2", "web", &[])), vec![]),
        register("n2", Some(service("consul", "consul", &[])), vec![]),
        register("n3", None, vec![]),
    ]);
    let want = Usage {
        nodes: 3,
        services: 3,
        service_instances: 4,
        billable_instances: 2,
        kind_instances: [("connect-proxy".to_owned(), 1)].into(),
    };
    assert_eq!(Query::Usage.eval(&state).0, Answer::Usage(want));
    assert_eq!(Query::Usage.eval(&State::default()).0, Answer::Usage(Usage::default()));
}

#[test]
fn health_answers_carry_node_and_service_checks() {
    let Answer::Health(entries) = answer(Query::ServiceHealth { name: "web".into(), tags: vec![], passing: true })
    else {
        panic!("health")
    };
    assert_eq!(entries.len(), 1);
    let ids: Vec<&str> = entries[0].checks.iter().map(|c| c.check_id.as_str()).collect();
    assert_eq!(ids, ["serf", "c1"], "node checks first, then the instance's");
    assert_eq!(entries[0].status(), CheckStatus::Passing);
    let passing_db = answer(Query::ServiceHealth { name: "db".into(), tags: vec![], passing: true });
    assert_eq!(passing_db, Answer::Health(vec![]));
}

#[test]
fn node_status_is_the_worst_relevant_check_or_none_for_a_missing_instance() {
    let status = |node: &str, service_id: Option<&str>| {
        answer(Query::NodeStatus { node: node.into(), service_id: service_id.map(str::to_owned) })
    };
    // Without an instance only node checks count: db-1's critical check is its own.
    assert_eq!(status("n2", None), Answer::Status(Some(CheckStatus::Passing)));
    assert_eq!(status("n2", Some("db-1")), Answer::Status(Some(CheckStatus::Critical)));
    // Cache-1 has no checks and n2 no node checks.
    assert_eq!(status("n2", Some("Cache-1")), Answer::Status(Some(CheckStatus::Passing)));
    assert_eq!(status("n1", Some("web-1")), Answer::Status(Some(CheckStatus::Passing)));
    assert_eq!(status("n1", Some("nope")), Answer::Status(None));
    assert_eq!(status("ghost", None), Answer::Status(Some(CheckStatus::Passing)));
}

#[test]
fn dns_lookups_match_names_ignoring_case_and_prefer_the_exact_spelling() {
    let Answer::Instances(found) = answer(Query::ResolveService { name: "cache".into(), tag: None }) else {
        panic!("instances")
    };
    assert_eq!(found.iter().map(|i| i.service_name.as_str()).collect::<Vec<_>>(), ["Cache"]);
    let Answer::Instances(db) = answer(Query::ResolveService { name: "DB".into(), tag: Some("PRIMARY".into()) }) else {
        panic!("instances")
    };
    assert_eq!((db[0].node.as_str(), db[0].status), ("n2", CheckStatus::Critical));

    // With both spellings registered, the exact one wins.
    let mut state = sample_state();
    state.apply(100, &register("n1", Some(service("cache-x", "cache", &[])), vec![]));
    let Answer::Instances(exact) = Query::ResolveService { name: "cache".into(), tag: None }.eval(&state).0 else {
        panic!("instances")
    };
    assert_eq!(exact.iter().map(|i| i.service_id.as_str()).collect::<Vec<_>>(), ["cache-x"]);

    let Answer::Node(Some(n2)) = answer(Query::ResolveNode { name: "N2".into() }) else { panic!("node") };
    assert_eq!(n2.node, "n2");
    let Answer::Instances(by_address) = answer(Query::ServicesWithAddress { address: "10.0.0.9".into() }) else {
        panic!("instances")
    };
    assert_eq!(by_address.iter().map(|i| i.service_id.as_str()).collect::<Vec<_>>(), ["db-1"]);
    let Answer::Nodes(nodes) = answer(Query::NodesWithAddress { address: "10.0.0.1".into() }) else { panic!("nodes") };
    assert_eq!(nodes.len(), 2, "both sample nodes share the address");
}

/// Encodes with postcard and decodes again.
fn round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let bytes = postcard::to_allocvec(value).expect("encodes");
    postcard::from_bytes(&bytes).expect("decodes")
}

#[test]
fn queries_and_answers_round_trip_through_postcard() {
    let mut state = sample_state();
    // Fill the optional and map-valued fields postcard must carry.
    let mut rich = service("rich-1", "rich", &["x"]);
    rich.tagged_addresses.insert("lan".into(), ServiceAddress { address: "10.1.1.1".into(), port: 80 });
    rich.meta.insert("k".into(), "v".into());
    rich.proxy_json = r#"{"Mode":""}"#.into();
    let mut with_meta = node("n3");
    with_meta.meta.insert("rack".into(), "r1".into());
    with_meta.tagged_addresses.insert("wan".into(), "1.2.3.4".into());
    let reg = crate::Registration { node: with_meta, skip_node_update: false, service: Some(rich), checks: vec![] };
    state.apply(200, &Command::Register(Box::new(reg)));

    let mut answers: Vec<Answer> = sample_queries().iter().map(|q| q.eval(&state).0).collect();
    answers.push(Query::ServiceNodes { name: "rich".into(), tags: vec![] }.eval(&state).0);
    answers.push(Query::ResolveNode { name: "none".into() }.eval(&state).0);
    let locked = KvEntry {
        key: "k".into(),
        value: vec![0, 1, 255],
        flags: u64::MAX,
        lock_index: 3,
        session: Some("sess".into()),
        create_index: 1,
        modify_index: 2,
    };
    answers.push(Answer::Entry(Some(locked)));
    for answer in &answers {
        assert_eq!(&round_trip(answer), answer);
    }
    for query in sample_queries() {
        assert_eq!(round_trip(&query), query);
    }
}

/// Every query but `MaxIndex` and `Txn`, whose index also moves on applies that change nothing (a failed CAS).
fn watched_queries() -> Vec<Query> {
    let mut queries: Vec<Query> =
        sample_queries().into_iter().filter(|q| *q != Query::MaxIndex && !matches!(q, Query::Txn(_))).collect();
    queries.extend([
        Query::KvKeys { prefix: "a".into(), separator: None },
        Query::NodeServices { name: "n2".into() },
        Query::ServiceChecks { name: "db".into() },
        Query::NodeStatus { node: "n1".into(), service_id: Some("web-1".into()) },
        Query::TableIndex(Table::Kvs),
    ]);
    queries
}

proptest! {
    #[test]
    fn a_query_answer_changes_only_with_its_index_and_its_index_only_with_its_watch_keys(
        cmds in prop::collection::vec(arb_command(), 1..60)
    ) {
        let queries = watched_queries();
        let mut state = State::new();
        for (i, cmd) in cmds.iter().enumerate() {
            let before: Vec<(Answer, u64)> = queries.iter().map(|q| q.eval(&state)).collect();
            // Raft's first entry is its membership, so commands start at 2: an index-1 command would be indistinguishable from the floor of 1 that untouched queries report.
            let (_, changes) = state.apply(i as u64 + 2, cmd);
            for (query, (old_answer, old_index)) in queries.iter().zip(before) {
                let (new_answer, new_index) = query.eval(&state);
                prop_assert!(new_index >= old_index, "{:?} went backwards", query);
                if new_answer != old_answer {
                    prop_assert!(new_index > old_index, "{:?} changed its answer at the same index after {:?}", query, cmd);
                }
                if new_index != old_index {
                    let woken = query.watch_keys().iter().any(|k| changes.touches(k));
                    // Rising to a floor (a reap, or a removal elsewhere folded away) wakes no one: the answer is the
                    // same, so a watcher that sleeps through it misses nothing.
                    let floored = new_answer == old_answer
                        && crate::state::tests::floors(&state).contains(&new_index);
                    prop_assert!(woken || floored, "{:?} moved without touching its watch keys after {:?}", query, cmd);
                }
            }
        }
    }
}
