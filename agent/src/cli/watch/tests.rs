//! Tests of the watch plan (when to fire, where to resume), paths per type and event pruning.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::agent_http::Reply;
use super::kind::{Params, Source, WatchType, event_index};
use super::plan::Plan;

/// Feeds `(index, result)` answers to a fresh ordered plan; returns which ones fired.
fn check_fires(answers: &[(u64, Value)], expect: &[bool]) {
    let mut plan = Plan::new(true);
    let fired: Vec<bool> = answers.iter().map(|(index, result)| plan.observe(*index, result)).collect();
    assert_eq!(fired, expect, "answers {answers:?}");
}

#[test]
fn first_answer_fires_and_unchanged_index_does_not() {
    check_fires(&[(5, json!(1)), (5, json!(1)), (6, json!(2))], &[true, false, true]);
}

#[test]
fn moved_index_with_equal_result_does_not_fire() {
    check_fires(&[(5, json!({"a": 1})), (9, json!({"a": 1})), (10, json!({"a": 2}))], &[true, false, true]);
}

#[test]
fn index_going_backwards_restarts_from_zero() {
    let mut plan = Plan::new(true);
    assert!(plan.observe(50, &json!(1)));
    assert!(!plan.observe(10, &json!(1)), "same result, no fire");
    assert_eq!(plan.wait_index(), 0, "blocking on 10 would park until the old height returns");
    assert!(plan.observe(11, &json!(2)));
    assert_eq!(plan.wait_index(), 11);
}

#[test]
fn hash_indexes_are_never_reset() {
    let mut plan = Plan::new(false);
    assert!(plan.observe(50, &json!([1])));
    assert!(plan.observe(10, &json!([2])));
    assert_eq!(plan.wait_index(), 10);
}

#[test]
fn errors_back_off_quadratically_and_refire_after_recovery() {
    let mut plan = Plan::new(true);
    assert!(plan.observe(7, &json!("x")));
    let waits: Vec<Duration> = (0..8).map(|_| plan.failed()).collect();
    assert_eq!(waits[..3], [Duration::from_secs(5), Duration::from_secs(20), Duration::from_secs(45)]);
    assert_eq!(waits[7], Duration::from_secs(180), "capped at three minutes");
    assert_eq!(plan.wait_index(), 0, "an error restarts from a non-blocking read");
    assert!(plan.observe(7, &json!("x")), "the first answer after an error fires, as in Consul");
    assert_eq!(plan.failed(), Duration::from_secs(5), "a success resets the backoff");
}

/// The request path `Source::new` builds for `kind` and `params`.
fn path(kind: WatchType, params: Params) -> String {
    match Source::new(kind, &params) {
        Ok(source) => source.path().to_owned(),
        Err(err) => panic!("{kind:?} {params:?}: {err:#}"),
    }
}

/// The error `Source::new` gives.
fn error(kind: WatchType, params: Params) -> String {
    match Source::new(kind, &params) {
        Ok(source) => panic!("{kind:?} {params:?} accepted as {}", source.path()),
        Err(err) => format!("{err:#}"),
    }
}

#[test]
fn paths_per_type() {
    let key = Params { key: Some("/app/a b".into()), ..Params::default() };
    assert_eq!(path(WatchType::Key, key), "/v1/kv/app/a%20b");
    let prefix = Params { prefix: Some("app/".into()), ..Params::default() };
    assert_eq!(path(WatchType::Keyprefix, prefix), "/v1/kv/app/?recurse");
    let service = Params {
        service: Some("web".into()),
        tags: vec!["v1".into(), "blue".into()],
        passing_only: true,
        ..Params::default()
    };
    assert_eq!(path(WatchType::Service, service), "/v1/health/service/web?tag=v1&tag=blue&passing");
    assert_eq!(path(WatchType::Checks, Params::default()), "/v1/health/state/any");
    let checks = Params { service: Some("web".into()), ..Params::default() };
    assert_eq!(path(WatchType::Checks, checks), "/v1/health/checks/web");
    let nodes = Params { filter: Some("Node == \"a\"".into()), ..Params::default() };
    assert_eq!(path(WatchType::Nodes, nodes), "/v1/catalog/nodes?filter=Node%20%3D%3D%20%22a%22");
    let event = Params { name: Some("deploy".into()), ..Params::default() };
    assert_eq!(path(WatchType::Event, event), "/v1/event/list?name=deploy");
}

#[test]
fn missing_and_foreign_parameters_are_refused() {
    assert_eq!(error(WatchType::Key, Params::default()), "Must specify a single key to watch");
    assert_eq!(error(WatchType::Service, Params::default()), "Must specify a single service to watch");
    let both = Params { service: Some("web".into()), state: Some("critical".into()), ..Params::default() };
    assert_eq!(error(WatchType::Checks, both), "Cannot specify service and state");
    let foreign = Params { key: Some("k".into()), tags: vec!["t".into()], ..Params::default() };
    assert_eq!(error(WatchType::Key, foreign), "Invalid parameters: [tag]");
}

/// A 200 reply with `index` and `body`.
fn reply(index: u64, body: Value) -> Reply {
    Reply { status: StatusCode::OK, index, body: body.to_string().into_bytes() }
}

#[test]
fn key_results_are_one_entry_or_null() {
    let key = Source::new(WatchType::Key, &Params { key: Some("k".into()), ..Params::default() }).expect("source");
    let (index, entry) = key.result(&reply(4, json!([{"Key": "k", "Value": null}])), 0).expect("result");
    assert_eq!((index, entry), (4, json!({"Key": "k", "Value": null})));
    let missing = Reply { status: StatusCode::NOT_FOUND, index: 9, body: Vec::new() };
    assert_eq!(key.result(&missing, 4).expect("result"), (9, Value::Null));
}

#[test]
fn events_are_pruned_to_those_after_the_last_seen() {
    let ids = ["8a5fb1f0-0e43-4c4b-9b6d-3f8c1e7c6a10", "0d3d7c6e-94f2-4a43-8d5e-2b7a4c9e1f22"];
    let events = json!([{"ID": ids[0], "Name": "deploy"}, {"ID": ids[1], "Name": "deploy"}]);
    let source = Source::new(WatchType::Event, &Params::default()).expect("source");
    let first_index = event_index(ids[0]).expect("a UUID");
    let (_, newer) = source.result(&reply(7, events.clone()), first_index).expect("result");
    assert_eq!(newer, json!([{"ID": ids[1], "Name": "deploy"}]));
    let (_, all) = source.result(&reply(7, events.clone()), 0).expect("result");
    assert_eq!(all, events, "nothing seen yet: every event is new");
}

#[test]
fn event_index_is_consuls_xor_of_the_uuid_halves() {
    assert_eq!(event_index("00000000-0000-0001-0000-000000000003"), Some(2));
    assert_eq!(event_index("not-a-uuid"), None);
}

/// The `WatchArgs` of a command line given as words.
fn watch_args(words: &[&str]) -> super::WatchArgs {
    match crate::cli::parse(words.iter().copied()) {
        Ok(crate::cli::Cli { command: crate::cli::Command::Watch(args) }) => args,
        Ok(other) => panic!("{words:?} is not a watch command: {other:?}"),
        Err(err) => panic!("{words:?} did not parse: {err}"),
    }
}

#[test]
fn consul_style_flags_parse_and_choose_the_handler() {
    let args = watch_args(&["roster", "watch", "-type=service", "-service", "web", "-tag=v1", "-passingonly"]);
    assert_eq!((args.kind, args.service.as_deref(), args.passingonly), (WatchType::Service, Some("web"), true));
    assert!(matches!(super::handler(&args), super::Handler::Print));
    let args = watch_args(&["roster", "watch", "-type", "key", "-key", "k", "-handler", "cat >> f"]);
    assert!(matches!(super::handler(&args), super::Handler::Shell(line) if line == "cat >> f"));
    let args = watch_args(&["roster", "watch", "-type", "nodes", "-shell=false", "./notify", "-v"]);
    assert!(matches!(super::handler(&args), super::Handler::Exec(argv) if argv == ["./notify", "-v"]));
    let args = watch_args(&["roster", "watch", "-type", "event", "-http-handler", "http://127.0.0.1:1/hook"]);
    assert!(matches!(super::handler(&args), super::Handler::Http(url) if url == "http://127.0.0.1:1/hook"));
}
