//! Template rendering, definition checks and resolution order, table-driven, plus a property test that a template
//! apply accepted always renders.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::command::{Command, CommandResult};
use crate::state::State;

fn template(name: &str, service: &str) -> PreparedQuery {
    PreparedQuery {
        id: uuid_of(name.len() as u64 + 1),
        name: name.into(),
        template: QueryTemplate { kind: TEMPLATE_NAME_PREFIX_MATCH.into(), ..QueryTemplate::default() },
        service: ServiceQuery { service: service.into(), ..ServiceQuery::default() },
        ..PreparedQuery::default()
    }
}

fn uuid_of(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn render(query: &PreparedQuery, name: &str) -> Result<PreparedQuery, String> {
    CompiledTemplate::compile(query)?.render(name, &RenderContext { segment: "seg-a".into() })
}

#[test]
fn template_variables_render_for_the_name_asked() {
    let mut query = template("geo-db-", "${name.prefix}|${name.suffix}|${name.full}|${agent.segment}|$${name.full}");
    query.template.regexp = "^geo-db-(.*?)-([^-]+?)$".into();
    query.service.tags = vec!["${match(1)}".into(), "${ match(2) }".into(), "${match(7)}".into(), "v1".into()];
    query.service.node_meta = BTreeMap::from([("rack".into(), "${match(2)}".into())]);
    let rendered = render(&query, "geo-db-customer-primary").unwrap();
    assert_eq!(rendered.service.service, "geo-db-|customer-primary|geo-db-customer-primary|seg-a|${name.full}");
    assert_eq!(rendered.service.tags, ["customer", "primary", "", "v1"]);
    assert_eq!(rendered.service.node_meta["rack"], "primary");

    query.template.remove_empty_tags = true;
    assert_eq!(render(&query, "geo-db-customer-primary").unwrap().service.tags, ["customer", "primary", "v1"]);
    // A name the regexp does not match renders every group empty.
    assert_eq!(render(&query, "geo-db-x").unwrap().service.tags, ["v1"]);
}

#[test]
fn bad_templates_are_refused_with_consuls_texts() {
    let check = |query: PreparedQuery, expect: &str| {
        let why = check_prepared_query(&query).unwrap_err();
        assert!(why.contains(expect), "{why:?} should contain {expect:?}");
    };
    let mut regexp = template("a", "x");
    regexp.template.regexp = "(unclosed".into();
    check(regexp, "failed compiling template: Bad Regexp:");
    let mut kind = template("a", "x");
    kind.template.kind = "regexp".into();
    check(kind, "Bad Template.Type 'regexp'");
    check(template("a", "${nope}"), "Bad format '${nope}' in Service.Service: unknown variable accessed: nope");
    check(template("a", "${name.full"), "Bad format '${name.full' in Service.Service");
    check(template("a", "${1 + 2}"), "unsupported expression");
    let mut tag = template("a", "x");
    tag.service.tags = vec!["${match(x)}".into()];
    check(tag, "in Service.Tags[0]");
}

#[test]
fn definitions_are_checked_as_consul_parses_them() {
    let named = |f: &dyn Fn(&mut PreparedQuery)| {
        let mut query = PreparedQuery {
            id: uuid_of(1),
            name: "web".into(),
            service: ServiceQuery { service: "web".into(), ..ServiceQuery::default() },
            ..PreparedQuery::default()
        };
        f(&mut query);
        check_prepared_query(&query)
    };
    assert_eq!(named(&|_| {}), Ok(()));
    type Change<'a> = &'a dyn Fn(&mut PreparedQuery);
    let cases: [(Change<'_>, &str); 7] = [
        (&|q| q.service.service.clear(), "Invalid prepared query: Must provide a Service name to query"),
        (&|q| q.name.clear(), "Invalid prepared query: Must be bound to a session"),
        (&|q| q.token = "<hidden>".into(), "Bad Token '<hidden>'"),
        (&|q| q.service.failover.nearest_n = -1, "Bad NearestN '-1', must be >= 0"),
        (
            &|q| {
                q.service.failover.nearest_n = 1;
                q.service.failover.targets = vec!["dc2".into()];
            },
            "Targets cannot be populated with NearestN or Datacenters",
        ),
        (&|q| q.dns.ttl = "10 parsecs".into(), "Bad DNS TTL '10 parsecs'"),
        (&|q| q.service.node_meta = BTreeMap::from([("bad key".into(), "v".into())]), "Key contains invalid"),
    ];
    for (change, expect) in cases {
        let why = named(change).unwrap_err();
        assert!(why.contains(expect), "{why:?} should contain {expect:?}");
    }
    assert!(named(&|q| q.service.tags = vec!["t".repeat(70_000)]).unwrap_err().contains("too large"));
}

fn set(state: &mut State, index: u64, query: &PreparedQuery, create: bool) -> CommandResult {
    state.apply(index, &Command::PreparedQuerySet { query: Box::new(query.clone()), create }).0
}

fn plain(n: u64, name: &str) -> PreparedQuery {
    PreparedQuery {
        id: uuid_of(n),
        name: name.into(),
        service: ServiceQuery { service: name.into(), ..ServiceQuery::default() },
        ..PreparedQuery::default()
    }
}

fn resolved_service(state: &State, asked: &str) -> Option<String> {
    match state.resolve_prepared_query(asked, &RenderContext::default()) {
        PreparedQueryAnswer::Explained(query) => Some(query.service.service),
        PreparedQueryAnswer::Failed(why) => Some(format!("failed: {why}")),
        _ => None,
    }
}

#[test]
fn names_resolve_by_id_then_exact_name_then_longest_template_prefix() {
    let mut state = State::new();
    assert_eq!(set(&mut state, 1, &plain(1, "web"), true), CommandResult::Bool(true));
    let catch_all = PreparedQuery { id: uuid_of(2), ..template("", "all-${name.full}") };
    assert_eq!(set(&mut state, 2, &catch_all, true), CommandResult::Bool(true));
    let short = PreparedQuery { id: uuid_of(3), ..template("we", "short-${name.suffix}") };
    assert_eq!(set(&mut state, 3, &short, true), CommandResult::Bool(true));
    let long = PreparedQuery { id: uuid_of(4), ..template("web-", "long-${name.suffix}") };
    assert_eq!(set(&mut state, 4, &long, true), CommandResult::Bool(true));

    assert_eq!(resolved_service(&state, &uuid_of(1)).as_deref(), Some("web"));
    assert_eq!(resolved_service(&state, &uuid_of(1).to_uppercase()).as_deref(), Some("web"));
    assert_eq!(resolved_service(&state, "WEB").as_deref(), Some("web"), "exact names ignore case");
    assert_eq!(resolved_service(&state, "web-db").as_deref(), Some("long-db"));
    assert_eq!(resolved_service(&state, "wex").as_deref(), Some("short-x"));
    assert_eq!(resolved_service(&state, "db").as_deref(), Some("all-db"));
    assert_eq!(
        resolved_service(&state, &uuid_of(4)).as_deref(),
        Some("failed: prepared query templates can only be resolved up by name, not by ID")
    );
    state.apply(5, &Command::PreparedQueryDelete { id: uuid_of(2) });
    assert_eq!(resolved_service(&state, "db"), None, "without the catch-all nothing matches");
    assert_eq!(state.table(crate::watch::Table::PreparedQueries), 5);
}

#[test]
fn apply_refuses_what_consuls_state_store_refuses() {
    let mut state = State::new();
    set(&mut state, 1, &plain(1, "web"), true);
    let refused = |state: &mut State, query: &PreparedQuery, create: bool, expect: &str| {
        let before = state.clone();
        match set(state, 20, query, create) {
            CommandResult::Rejected(why) => assert!(why.contains(expect), "{why:?} should contain {expect:?}"),
            other => panic!("{other:?}, expected a refusal containing {expect:?}"),
        }
        assert_eq!(*state, State { index: 20, ..before }, "a refusal changes nothing");
    };
    refused(&mut state, &plain(2, "WEB"), true, "name 'WEB' aliases an existing query name");
    refused(&mut state, &plain(2, &uuid_of(1)), true, "aliases an existing query ID");
    refused(&mut state, &plain(1, "web"), true, "already exists");
    refused(&mut state, &plain(3, "db"), false, "Cannot modify non-existent prepared query");
    let mut bad_regexp = template("t-", "x");
    bad_regexp.template.regexp = "[".into();
    refused(&mut state, &bad_regexp, true, "Bad Regexp");
    set(&mut state, 10, &PreparedQuery { id: uuid_of(5), ..template("", "a") }, true);
    refused(&mut state, &PreparedQuery { id: uuid_of(6), ..template("", "b") }, true, "empty name already exists");
    let bound = PreparedQuery { name: String::new(), session: "nope".into(), ..plain(7, "x") };
    refused(&mut state, &bound, true, "invalid session \"nope\"");
    let before = state.clone();
    let delete = Command::PreparedQueryDelete { id: uuid_of(42) };
    assert!(matches!(state.apply(22, &delete).0, CommandResult::Rejected(why) if why.contains("non-existent")));
    assert_eq!(state, State { index: 22, ..before });

    // An update keeps the create index.
    let renamed = PreparedQuery { name: "web2".into(), ..plain(1, "web") };
    assert_eq!(set(&mut state, 23, &renamed, false), CommandResult::Bool(true));
    let stored = state.prepared_queries().0.into_iter().find(|q| q.id == uuid_of(1)).unwrap().clone();
    assert_eq!((stored.name.as_str(), stored.create_index, stored.modify_index), ("web2", 1, 23));
}

#[test]
fn prepared_queries_survive_a_snapshot_and_older_formats_decode_without_them() {
    let mut state = State::new();
    set(&mut state, 1, &plain(1, "web"), true);
    set(&mut state, 2, &PreparedQuery { id: uuid_of(2), ..template("", "${name.full}") }, true);
    let bytes = state.encode_snapshot();
    let decoded = State::decode_snapshot(&bytes).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(decoded.encode_snapshot(), bytes);
    // Format 7 is format 8's body without the prepared-query tail.
    let tail =
        postcard::to_allocvec(&(state.prepared_queries().0.into_iter().cloned().collect::<Vec<_>>(), 2u64)).unwrap();
    let mut v7 = bytes;
    v7[7] = 7;
    v7.truncate(v7.len() - tail.len());
    let old = State::decode_snapshot(&v7).unwrap();
    assert!(old.prepared_queries().0.is_empty());
}

proptest! {
    /// Whatever a template's strings hold, apply either refuses it or stores one that renders for any name.
    #[test]
    fn an_accepted_template_renders_for_any_name(
        service in "[a-z${}().0-9 ]{0,24}",
        tag in "[a-z${}().0-9 ]{0,24}",
        regexp in "[a-z()*.+?\\[\\]^$]{0,8}",
        name in "[a-zA-Z0-9-]{0,16}",
        prefix in "[a-z-]{0,4}",
    ) {
        let mut query = template(&prefix, &service);
        query.service.tags = vec![tag];
        query.template.regexp = regexp;
        let mut state = State::new();
        if set(&mut state, 1, &query, true) == CommandResult::Bool(true) {
            let asked = format!("{prefix}{name}x");
            match state.resolve_prepared_query(&asked, &RenderContext::default()) {
                PreparedQueryAnswer::Explained(_) => {}
                other => prop_assert!(false, "{asked:?} gave {other:?}"),
            }
        }
    }
}

#[test]
fn execution_filters_health_tags_and_meta_as_consul_does() {
    use crate::model::CheckStatus;
    use crate::state::tests::{check, register, run, service, session_create};
    let mut web3 = service("web-3", "web", &["v2"]);
    web3.meta = BTreeMap::from([("version".into(), "2".into())]);
    let (mut state, _) = run(&[
        register("n1", Some(service("web-1", "web", &["V1"])), vec![check("c1", "web-1", CheckStatus::Passing)]),
        register(
            "n2",
            Some(service("web-2", "web", &["v1", "Canary"])),
            vec![check("c2", "web-2", CheckStatus::Passing)],
        ),
        register("n3", Some(web3), vec![check("c3", "web-3", CheckStatus::Warning)]),
        register("n4", Some(service("web-4", "web", &["v1"])), vec![check("c4", "web-4", CheckStatus::Critical)]),
        session_create("s1", "n1", &[]),
    ]);
    let ids = |service: ServiceQuery| -> Vec<String> {
        state.prepared_query_nodes(&service).into_iter().map(|e| e.service.id).collect()
    };
    let web = ServiceQuery { service: "WEB".into(), ..ServiceQuery::default() };
    assert_eq!(ids(web.clone()), ["web-1", "web-2", "web-3"], "critical is always out, names ignore case");
    assert_eq!(ids(ServiceQuery { only_passing: true, ..web.clone() }), ["web-1", "web-2"]);
    let ignoring = ServiceQuery { only_passing: true, ignore_check_ids: vec!["c3".into(), "c4".into()], ..web.clone() };
    assert_eq!(ids(ignoring), ["web-1", "web-2", "web-3", "web-4"]);
    assert_eq!(ids(ServiceQuery { tags: vec!["v1".into(), "!canary".into()], ..web.clone() }), ["web-1"]);
    let meta = BTreeMap::from([("version".into(), "2".into())]);
    assert_eq!(ids(ServiceQuery { service_meta: meta, ..web.clone() }), ["web-3"]);
    assert!(ids(ServiceQuery { node_meta: BTreeMap::from([("rack".into(), "a".into())]), ..web }).is_empty());

    // A query bound to a session goes when the session does.
    let bound = PreparedQuery { name: String::new(), session: "s1".into(), ..plain(9, "web") };
    assert_eq!(set(&mut state, 10, &bound, true), CommandResult::Bool(true));
    state.apply(11, &Command::SessionDestroy { id: "s1".into(), now_ms: 0 });
    assert!(state.prepared_queries().0.is_empty());
    assert_eq!(state.table(crate::watch::Table::PreparedQueries), 11);
}

#[test]
fn near_resolves_agent_ip_and_nodes_and_brings_their_coordinates() {
    use crate::coordinate::{COORDINATE_DIMENSIONS, NodeCoordinate};
    use crate::model::CheckStatus;
    use crate::state::tests::{check, register, run, service};
    let (mut state, _) = run(&[
        register("n1", Some(service("web-1", "web", &[])), vec![check("c1", "web-1", CheckStatus::Passing)]),
        register("n2", Some(service("web-2", "web", &[])), vec![check("c2", "web-2", CheckStatus::Passing)]),
    ]);
    let at = |node: &str, x: f64| {
        let mut vec = vec![0.0; COORDINATE_DIMENSIONS];
        vec[0] = x;
        let coord = roster_coordinate::Coordinate { vec, error: 0.2, adjustment: 0.0, height: 1.0e-5 };
        NodeCoordinate { node: node.into(), segment: String::new(), coord }
    };
    state.apply(3, &Command::CoordinateBatchUpdate { updates: vec![at("n1", 0.0), at("n2", 0.5)] });
    let query =
        PreparedQuery { service: ServiceQuery { near: "_agent".into(), ..plain(1, "web").service }, ..plain(1, "web") };
    let origin_of = |near: &str, source_ip: &str| match state
        .execute_prepared_query(query.clone(), &Source { agent: "n2", near, source_ip })
    {
        PreparedQueryAnswer::Executed { origin, coordinates, nodes, .. } => {
            assert_eq!(nodes.len(), 2);
            (origin, coordinates.into_iter().map(|c| c.node).collect::<Vec<_>>())
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(origin_of("", ""), ("n2".to_owned(), vec!["n1".to_owned(), "n2".to_owned()]), "the query's _agent");
    assert_eq!(origin_of("n1", "").0, "n1", "?near wins over the query's Near");
    // Every test node has address 10.0.0.1: `_ip` finds the first by name.
    assert_eq!(origin_of("_ip", "10.0.0.1").0, "n1");
    assert_eq!(origin_of("_ip", "192.0.2.9"), (String::new(), vec![]), "an unknown address sorts nothing");
    assert_eq!(origin_of("_ip", "").0, "");
    assert_eq!(origin_of("nope", "").1, Vec::<String>::new(), "an unknown node has no coordinate");
}
