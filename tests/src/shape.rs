//! The exact JSON shapes of compat.md ("field casing exact; field order free") and assertions on them.
//!
//! Clients such as Nomad diff what they registered against what the agent returns, and the Go
//! client decodes by field name, so a missing, extra or differently cased key is a compatibility
//! bug; the tests therefore compare whole key sets, not just the fields they happen to read.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::http::Resp;

/// A plain service in `/v1/agent/services` (no Kind, TaggedAddresses, Proxy, Connect, ...).
pub const AGENT_SERVICE_KEYS: &[&str] =
    &["ID", "Service", "Tags", "Meta", "Port", "Address", "Weights", "EnableTagOverride", "Datacenter"];

/// A HealthCheck, as in `/v1/agent/checks`, `/v1/health/*` and health service entries.
pub const HEALTH_CHECK_KEYS: &[&str] = &[
    "Node",
    "CheckID",
    "Name",
    "Status",
    "Notes",
    "Output",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "Type",
    "Interval",
    "Timeout",
    "ExposedPort",
    "Definition",
    "CreateIndex",
    "ModifyIndex",
];

/// A catalog Node (`/v1/catalog/nodes`, the `Node` of health entries and of catalog node reads).
pub const NODE_KEYS: &[&str] =
    &["ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta", "CreateIndex", "ModifyIndex"];

/// One entry of `/v1/health/service/:name`.
pub const HEALTH_ENTRY_KEYS: &[&str] = &["Node", "Service", "Checks"];

/// The `Service` of a health entry: a catalog NodeService without optional fields.
pub const NODE_SERVICE_KEYS: &[&str] = &[
    "ID",
    "Service",
    "Tags",
    "Address",
    "Meta",
    "Port",
    "Weights",
    "EnableTagOverride",
    "Proxy",
    "Connect",
    "PeerName",
    "CreateIndex",
    "ModifyIndex",
];

/// One entry of `/v1/catalog/service/:name`.
pub const CATALOG_SERVICE_KEYS: &[&str] = &[
    "ID",
    "Node",
    "Address",
    "Datacenter",
    "TaggedAddresses",
    "NodeMeta",
    "ServiceKind",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "ServiceAddress",
    "ServiceWeights",
    "ServiceMeta",
    "ServicePort",
    "ServiceSocketPath",
    "ServiceEnableTagOverride",
    "ServiceProxy",
    "ServiceConnect",
    "ServiceLocality",
    "CreateIndex",
    "ModifyIndex",
];

/// A KV entry that no session holds.
pub const KV_ENTRY_KEYS: &[&str] = &["LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"];

/// One entry of `/v1/agent/members`.
pub const MEMBER_KEYS: &[&str] = &[
    "Name",
    "Addr",
    "Port",
    "Tags",
    "Status",
    "ProtocolMin",
    "ProtocolMax",
    "ProtocolCur",
    "DelegateMin",
    "DelegateMax",
    "DelegateCur",
];

/// The top level of `/v1/agent/self`.
pub const AGENT_SELF_KEYS: &[&str] = &["Config", "DebugConfig", "Coord", "Member", "Stats", "Meta", "xDS"];

/// Asserts that `value` is an object whose keys are exactly `expected`.
#[track_caller]
pub fn assert_keys(value: &Value, expected: &[&str], what: &str) {
    let Some(object) = value.as_object() else { panic!("{what}: expected a JSON object, got {value}") };
    let actual: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing keys {missing:?}, unexpected keys {extra:?} in {value}"
    );
}

/// Asserts the three headers every read must carry: `X-Consul-Index` ≥ 1 (clients treat 0 as a
/// bug and busy-loop), `X-Consul-KnownLeader` `true`/`false`, and a numeric `X-Consul-LastContact`
/// (the Go client fails to parse a response without it).
#[track_caller]
pub fn assert_read_headers(resp: &Resp, what: &str) {
    let index = resp.index();
    assert!(index >= 1, "{what}: X-Consul-Index must be >= 1, got {index}");
    let known_leader = resp.header("X-Consul-KnownLeader");
    assert!(
        matches!(known_leader.as_deref(), Some("true" | "false")),
        "{what}: X-Consul-KnownLeader must be true or false, got {known_leader:?}"
    );
    let last_contact = resp.header("X-Consul-LastContact");
    assert!(
        last_contact.as_deref().is_some_and(|text| text.parse::<u64>().is_ok()),
        "{what}: X-Consul-LastContact must be a number of ms, got {last_contact:?}"
    );
}

/// The array elements of `value`; panics when it is not an array.
#[track_caller]
pub fn array(value: &Value) -> &Vec<Value> {
    value.as_array().unwrap_or_else(|| panic!("expected a JSON array, got {value}"))
}

/// The strings of a JSON array of strings, in order.
#[track_caller]
pub fn strings(value: &Value) -> Vec<String> {
    array(value)
        .iter()
        .map(|item| item.as_str().unwrap_or_else(|| panic!("expected a string, got {item}")).to_owned())
        .collect()
}

/// The strings of a JSON array of strings as a sorted set, for fields whose order Consul leaves open.
#[track_caller]
pub fn string_set(value: &Value) -> BTreeSet<String> {
    strings(value).into_iter().collect()
}

/// `field` of every element of an array, as strings, in order.
#[track_caller]
pub fn pluck(value: &Value, field: &str) -> Vec<String> {
    array(value)
        .iter()
        .map(|item| item[field].as_str().unwrap_or_else(|| panic!("{field} is not a string in {item}")).to_owned())
        .collect()
}
