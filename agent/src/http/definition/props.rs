//! Property tests of service-definition parsing: any JSON object, however wrong its fields'
//! types or values, gives a definition or a 400 message, never a panic; and any service accepted
//! registers again unchanged from what `/v1/agent/service/:id` shows of it.

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

    /// Through the fuzz target's entry point, which asserts the round trip for every definition it accepts.
    #[test]
    fn accepted_definitions_register_again_from_what_the_api_shows(map in definition(), scripts in any::<bool>()) {
        let body = serde_json::to_vec(&map).expect("a map encodes");
        let _ = crate::http::fuzz::service_definition(&[&[u8::from(scripts)][..], &body].concat());
    }

    /// Definitions that are valid by construction, so the round trip is exercised, not just the refusals.
    #[test]
    fn valid_definitions_register_again_from_what_the_api_shows(
        name in "[a-zA-Z0-9-]{1,16}",
        tags in prop::collection::vec("\\PC{0,8}", 0..4),
        port in any::<u16>(),
        address in "\\PC{0,16}",
        meta in prop::collection::btree_map("[a-z][a-z0-9_]{0,8}", "\\PC{0,8}", 0..4),
        passing in 1i64..100,
        warning in 0i64..100,
        proxy in prop::option::of(value()),
    ) {
        let mut body = serde_json::json!({
            "Name": name, "Tags": tags, "Port": port, "Address": address, "Meta": meta,
            "Weights": {"Passing": passing, "Warning": warning},
        });
        if let (Some(proxy @ Value::Object(_)), Value::Object(map)) = (proxy, &mut body) {
            map.insert("Proxy".into(), proxy);
        }
        let body = serde_json::to_vec(&body).expect("encodes");
        prop_assert_eq!(crate::http::fuzz::service_definition(&[&[0][..], &body].concat()), "registered");
    }
}
