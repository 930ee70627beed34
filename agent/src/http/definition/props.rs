//! Property tests of service-definition parsing: any JSON object, however wrong its fields'
//! types or values, gives a definition or a 400 message, never a panic.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::service;
use crate::http::input::Obj;

/// Field names a definition may carry, in Consul's spellings and roster's accepted variants.
const KEYS: &[&str] = &[
    "Name",
    "name",
    "ID",
    "id",
    "Tags",
    "Address",
    "Port",
    "port",
    "Meta",
    "Weights",
    "Passing",
    "Warning",
    "TaggedAddresses",
    "EnableTagOverride",
    "Kind",
    "Check",
    "Checks",
    "check",
    "TTL",
    "HTTP",
    "TCP",
    "UDP",
    "GRPC",
    "Args",
    "ScriptArgs",
    "Interval",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "Status",
    "Notes",
    "CheckID",
    "AliasService",
    "DockerContainerID",
    "H2PING",
    "Method",
    "Header",
    "Body",
    "SuccessBeforePassing",
    "FailuresBeforeCritical",
    "lan",
    "wan",
    "unknown_key",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(&["10s", "-1s", "0", "1h", "web", "127.0.0.1", "http://x", ""][..])
            .prop_map(|text| Value::String(text.to_owned())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
            )),
        ]
    })
}

fn definition() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(KEYS), value()), 0..10)
        .prop_map(|pairs| pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_definitions_never_panic(map in definition(), scripts in any::<bool>()) {
        let _ = service(Obj(&map), scripts);
    }
}
