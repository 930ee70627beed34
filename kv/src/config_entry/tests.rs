//! Reading, normalizing and refusing config entries, and the table's check-and-set.
use serde_json::json;

use super::*;
use crate::command::{Command, CommandResult};
use crate::query::{Answer, Query};
use crate::state::State;
use crate::watch::Table;

fn read(value: serde_json::Value) -> Result<serde_json::Value, String> {
    ConfigEntry::from_json(&value).map(|e| e.to_json())
}

#[test]
fn service_defaults_are_normalized_to_consuls_shape() {
    let entry =
        read(json!({"kind": "service-defaults", "name": "web", "protocol": "HTTP", "mesh_gateway": {"mode": "local"}}));
    assert_eq!(
        entry.unwrap(),
        json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http", "TransparentProxy": {},
               "MeshGateway": {"Mode": "local"}, "Expose": {}, "CreateIndex": 0, "ModifyIndex": 0})
    );
}

#[test]
fn proxy_defaults_are_always_named_global_and_keep_their_config_as_sent() {
    let entry = ConfigEntry::from_json(
        &json!({"Kind": "proxy-defaults", "Config": {"local_connect_timeout_ms": 1000, "Protocol": "http"}}),
    )
    .unwrap();
    assert_eq!(entry.name, "global");
    assert_eq!(entry.to_json()["Config"], json!({"local_connect_timeout_ms": 1000, "Protocol": "http"}));
    let err = read(json!({"Kind": "proxy-defaults", "Name": "other"})).unwrap_err();
    assert_eq!(err, r#"invalid name ("other"), only "global" is supported"#);
}

#[test]
fn bad_entries_are_refused_with_the_reason() {
    let cases = [
        (json!({"Name": "web"}), "Payload does not contain a kind/Kind key at the top level"),
        (json!({"Kind": 3}), "Kind value in payload is not a string"),
        (json!({"Kind": "nonsense", "Name": "x"}), "invalid config entry kind: nonsense"),
        (
            json!({"Kind": "service-router", "Name": "x"}),
            "config entry kind \"service-router\" is not supported by roster",
        ),
        (json!({"Kind": "service-defaults"}), "Name is required"),
        (json!({"Kind": "service-defaults", "Name": "*"}), "not a wildcard"),
        (
            json!({"Kind": "service-defaults", "Name": "web", "Protocol": "carrier-pigeon"}),
            "invalid value for Protocol",
        ),
        (json!({"Kind": "service-defaults", "Name": "web", "Bogus": 1}), "invalid config key \"Bogus\""),
        (json!({"Kind": "service-defaults", "Name": "web", "Namespace": "x"}), "consul enterprise feature"),
        (json!({"Kind": "service-defaults", "Name": "web", "MutualTLSMode": "loose"}), "Invalid MutualTLSMode"),
        (json!({"Kind": "service-defaults", "Name": "web", "Mode": "sideways"}), "Invalid Proxy mode"),
        (
            json!({"Kind": "service-defaults", "Name": "web", "MeshGateway": {"Mode": "far"}}),
            "Invalid Mesh Gateway Mode",
        ),
        (
            json!({"Kind": "service-defaults", "Name": "web", "Expose": {"Paths": [{"Path": "x"}]}}),
            "must begin with a '/'",
        ),
        (
            json!({"Kind": "service-defaults", "Name": "web", "EnvoyExtensions": [{"Name": "lua"}]}),
            "EnvoyExtensions is not supported",
        ),
        (
            json!({"Kind": "service-defaults", "Name": "web", "BalanceInboundConnections": "round"}),
            "balance_inbound_connections",
        ),
        (json!({"Kind": "service-defaults", "Name": "web", "Meta": {"k": 1}}), "is not a string"),
        (json!({"Kind": "service-defaults", "Name": "web", "Protocol": 7}), "'Protocol' expected type 'string'"),
        (json!({"Kind": "proxy-defaults", "Config": []}), "'Config' expected a map"),
    ];
    for (input, want) in cases {
        let err = read(input.clone()).expect_err(&input.to_string());
        assert!(err.contains(want), "{input}: {err}");
    }
}

fn set(state: &mut State, index: u64, body: serde_json::Value, cas: Option<u64>) -> CommandResult {
    let entry = ConfigEntry::from_json(&body).unwrap();
    state.apply(index, &Command::ConfigEntrySet { entry: Box::new(entry), cas }).0
}

fn delete(state: &mut State, index: u64, name: &str, cas: Option<u64>) -> CommandResult {
    let cmd = Command::ConfigEntryDelete { kind: SERVICE_DEFAULTS.into(), name: name.into(), cas };
    state.apply(index, &cmd).0
}

#[test]
fn writes_and_deletes_follow_consuls_check_and_set() {
    let mut state = State::default();
    let web = |protocol: &str| json!({"Kind": "service-defaults", "Name": "web", "Protocol": protocol});
    assert_eq!(set(&mut state, 5, web("http"), Some(3)), CommandResult::Bool(false), "no entry has index 3");
    assert_eq!(set(&mut state, 6, web("http"), Some(0)), CommandResult::Bool(true));
    assert_eq!(set(&mut state, 7, web("grpc"), Some(0)), CommandResult::Bool(false), "0 means only when absent");
    assert_eq!(set(&mut state, 8, web("grpc"), Some(6)), CommandResult::Bool(true));
    assert_eq!(set(&mut state, 9, web("tcp"), None), CommandResult::Bool(true));
    let stored = state.config_entry(SERVICE_DEFAULTS, "web").unwrap();
    assert_eq!((stored.create_index, stored.modify_index), (6, 9));
    assert_eq!(stored.to_json()["Protocol"], "tcp");
    assert_eq!(state.table(Table::ConfigEntries), 9);

    assert_eq!(delete(&mut state, 10, "web", Some(0)), CommandResult::Bool(false), "0 never deletes");
    assert_eq!(delete(&mut state, 11, "web", Some(8)), CommandResult::Bool(false));
    assert!(state.config_entry(SERVICE_DEFAULTS, "web").is_some());
    assert_eq!(delete(&mut state, 12, "web", Some(9)), CommandResult::Bool(true));
    assert!(state.config_entry(SERVICE_DEFAULTS, "web").is_none());
    assert_eq!(state.table(Table::ConfigEntries), 12);
    assert_eq!(delete(&mut state, 13, "web", None), CommandResult::Bool(true), "deleting nothing succeeds");
    assert_eq!(delete(&mut state, 14, "web", Some(9)), CommandResult::Bool(false));
    assert_eq!(state.table(Table::ConfigEntries), 12, "deleting nothing changes nothing");
}

#[test]
fn apply_validates_the_body_again_and_refuses_other_kinds() {
    let mut state = State::default();
    let forged = ConfigEntry {
        kind: SERVICE_DEFAULTS.into(),
        name: "web".into(),
        body: json!({"Kind": "service-defaults", "Name": "web", "Protocol": "carrier-pigeon"}).to_string(),
        create_index: 0,
        modify_index: 0,
    };
    let res = state.apply(3, &Command::ConfigEntrySet { entry: Box::new(forged), cas: None }).0;
    assert!(matches!(res, CommandResult::Rejected(ref why) if why.contains("Protocol")), "{res:?}");
    let renamed = ConfigEntry {
        name: "db".into(),
        ..ConfigEntry::from_json(&json!({"Kind": "service-defaults", "Name": "web"})).unwrap()
    };
    let res = state.apply(4, &Command::ConfigEntrySet { entry: Box::new(renamed), cas: None }).0;
    assert!(matches!(res, CommandResult::Rejected(_)), "{res:?}");
    let res = state.apply(5, &Command::ConfigEntryDelete { kind: "mesh".into(), name: "mesh".into(), cas: None }).0;
    assert!(matches!(res, CommandResult::Rejected(ref why) if why.contains("not supported")), "{res:?}");
    assert!(state.config_entries(SERVICE_DEFAULTS).is_empty());
    assert!(!state.table_index.contains_key(&Table::ConfigEntries), "nothing was written");
}

#[test]
fn queries_list_by_kind_and_survive_a_snapshot() {
    let mut state = State::default();
    set(&mut state, 3, json!({"Kind": "service-defaults", "Name": "web"}), None);
    set(&mut state, 4, json!({"Kind": "service-defaults", "Name": "api", "Protocol": "grpc"}), None);
    set(&mut state, 5, json!({"Kind": "proxy-defaults", "Config": {"protocol": "http"}}), None);
    let (answer, index) = Query::ConfigEntries { kind: SERVICE_DEFAULTS.into() }.eval(&state);
    let Answer::ConfigEntries(entries) = answer else { panic!("{answer:?}") };
    assert_eq!(entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["api", "web"]);
    assert_eq!(index, 5);
    let (answer, _) = Query::ConfigEntry { kind: PROXY_DEFAULTS.into(), name: "global".into() }.eval(&state);
    assert!(matches!(answer, Answer::ConfigEntries(ref e) if e.len() == 1), "{answer:?}");

    let decoded = State::decode_snapshot(&state.encode_snapshot()).unwrap();
    assert_eq!(decoded, state);
    assert!(decoded.record_counts().contains(&("Config entries", 3)), "`snapshot inspect` counts them");
    // A version-6 snapshot is version 10's body without the cluster-job tail (seven bytes when empty) and the
    // config-entry tail.
    let bytes = state.encode_snapshot();
    let tail = postcard::to_allocvec(&(state.config_entries.values().cloned().collect::<Vec<_>>(), 5u64)).unwrap();
    let mut v6 = bytes;
    v6[7] = 6;
    v6.truncate(v6.len() - 7 - tail.len());
    let old = State::decode_snapshot(&v6).unwrap();
    assert!(old.config_entries(SERVICE_DEFAULTS).is_empty());
    assert!(!old.table_index.contains_key(&Table::ConfigEntries));
}
