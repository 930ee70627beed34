//! Consul's JSON shapes for what the API returns: KV entries, nodes, service instances (agent, catalog and health views), health checks, sessions and transaction results.
//!
//! Field casing is exact and some fields appear only when set (`Kind`, `TaggedAddresses`, `SocketPath`, `Proxy`, `Connect` on the agent view), because clients such as Nomad compare what they registered with what they read back.

use base64::Engine;
use roster_kv::{HealthCheck, KvEntry, Node, Service, ServiceEntry, Session, TxnError, TxnResult};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// A KV entry (`GET /v1/kv/...`).
#[derive(Serialize)]
pub struct KvOut<'a> {
    #[serde(rename = "LockIndex")]
    lock_index: u64,
    #[serde(rename = "Key")]
    key: &'a str,
    #[serde(rename = "Flags")]
    flags: u64,
    #[serde(rename = "Value")]
    value: Option<String>,
    #[serde(rename = "Session", skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(rename = "CreateIndex")]
    create_index: u64,
    #[serde(rename = "ModifyIndex")]
    modify_index: u64,
}

impl<'a> From<&'a KvEntry> for KvOut<'a> {
    fn from(e: &'a KvEntry) -> Self {
        KvOut {
            lock_index: e.lock_index,
            key: &e.key,
            flags: e.flags,
            // An empty value is shown as null, as Consul does.
            value: (!e.value.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&e.value)),
            session: e.session.as_deref(),
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }
}

/// A catalog node.
pub fn node(n: &Node) -> Value {
    json!({
        "ID": n.id,
        "Node": n.node,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": n.tagged_addresses,
        "Meta": n.meta,
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    })
}

fn weights(s: &Service) -> Value {
    json!({"Passing": s.weights.passing, "Warning": s.weights.warning})
}

fn tagged_addresses(s: &Service) -> Value {
    let map: Map<String, Value> =
        s.tagged_addresses.iter().map(|(k, a)| (k.clone(), json!({"Address": a.address, "Port": a.port}))).collect();
    Value::Object(map)
}

/// Parses stored pass-through JSON (`Proxy`, `Connect`), falling back to `default` when unset.
fn stored_json(text: &str, default: Value) -> Value {
    if text.is_empty() { default } else { serde_json::from_str(text).unwrap_or(default) }
}

fn default_proxy() -> Value {
    json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
}

/// A service as `/v1/agent/services` shows it: exactly what was registered, optional fields only when set.
pub fn agent_service(s: &Service, datacenter: &str) -> Value {
    let out = json!({
        "ID": s.id,
        "Service": s.service,
        "Tags": s.tags,
        "Meta": s.meta,
        "Port": s.port,
        "Address": s.address,
        "Weights": weights(s),
        "EnableTagOverride": s.enable_tag_override,
        "Datacenter": datacenter,
    });
    let mut obj = object(out);
    optional_service_fields(s, &mut obj);
    if !s.proxy_json.is_empty() {
        obj.insert("Proxy".into(), stored_json(&s.proxy_json, Value::Null));
    }
    if !s.connect_json.is_empty() {
        obj.insert("Connect".into(), stored_json(&s.connect_json, Value::Null));
    }
    Value::Object(obj)
}

/// `Kind`, `TaggedAddresses` and `SocketPath` appear only when set, in every view of a service.
fn optional_service_fields(s: &Service, obj: &mut Map<String, Value>) {
    if !s.kind.is_empty() {
        obj.insert("Kind".into(), json!(s.kind));
    }
    if !s.tagged_addresses.is_empty() {
        obj.insert("TaggedAddresses".into(), tagged_addresses(s));
    }
    if !s.socket_path.is_empty() {
        obj.insert("SocketPath".into(), json!(s.socket_path));
    }
}

/// The map inside a `json!({...})` literal.
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A service instance as the health and node-services endpoints show it (Consul's `NodeService`).
pub fn node_service(s: &Service) -> Value {
    let out = json!({
        "ID": s.id,
        "Service": s.service,
        "Tags": s.tags,
        "Address": s.address,
        "Meta": s.meta,
        "Port": s.port,
        "Weights": weights(s),
        "EnableTagOverride": s.enable_tag_override,
        "Proxy": stored_json(&s.proxy_json, default_proxy()),
        "Connect": stored_json(&s.connect_json, json!({})),
        "PeerName": "",
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    });
    let mut obj = object(out);
    optional_service_fields(s, &mut obj);
    Value::Object(obj)
}

/// One row of `/v1/catalog/service/:name`: the node and the instance, flattened.
pub fn catalog_service(n: &Node, s: &Service) -> Value {
    let out = json!({
        "ID": n.id,
        "Node": n.node,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": n.tagged_addresses,
        "NodeMeta": n.meta,
        "ServiceKind": s.kind,
        "ServiceID": s.id,
        "ServiceName": s.service,
        "ServiceTags": s.tags,
        "ServiceAddress": s.address,
        "ServiceWeights": weights(s),
        "ServiceMeta": s.meta,
        "ServicePort": s.port,
        "ServiceSocketPath": s.socket_path,
        "ServiceEnableTagOverride": s.enable_tag_override,
        "ServiceProxy": stored_json(&s.proxy_json, default_proxy()),
        "ServiceConnect": stored_json(&s.connect_json, json!({})),
        "ServiceLocality": null,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    });
    let mut obj = object(out);
    if !s.tagged_addresses.is_empty() {
        obj.insert("ServiceTaggedAddresses".into(), tagged_addresses(s));
    }
    Value::Object(obj)
}

/// A health check.
pub fn check(c: &HealthCheck) -> Value {
    json!({
        "Node": c.node,
        "CheckID": c.check_id,
        "Name": c.name,
        "Status": c.status.as_str(),
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": c.service_name,
        "ServiceTags": c.service_tags,
        "Type": c.check_type,
        "Interval": c.interval,
        "Timeout": c.timeout,
        "ExposedPort": 0,
        "Definition": stored_json(&c.definition_json, json!({})),
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}

/// One row of `/v1/health/service/:name`.
pub fn health_entry(e: &ServiceEntry) -> Value {
    json!({
        "Node": node(&e.node),
        "Service": node_service(&e.service),
        "Checks": e.checks.iter().map(check).collect::<Vec<_>>(),
    })
}

/// A session (`/v1/session/info`, `list`, `node`, `renew`).
pub fn session(s: &Session) -> Value {
    let service_checks: Option<Vec<Value>> = (!s.service_checks.is_empty())
        .then(|| s.service_checks.iter().map(|c| json!({"ID": c.id, "Namespace": c.namespace})).collect());
    json!({
        "ID": s.id,
        "Name": s.name,
        "Node": s.node,
        "LockDelay": s.lock_delay_ns,
        "Behavior": s.behavior.as_str(),
        "TTL": s.ttl,
        "NodeChecks": if s.node_checks.is_empty() { Value::Null } else { json!(s.node_checks) },
        "ServiceChecks": service_checks,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

/// One entry of a transaction's `Results`: `{"KV": ...}`, `{"Node": ...}`, `{"Service": ...}` or `{"Check": ...}`.
pub fn txn_result(r: &TxnResult) -> Value {
    match r {
        TxnResult::Kv(e) => json!({ "KV": KvOut::from(e) }),
        TxnResult::Node(n) => json!({ "Node": node(n) }),
        TxnResult::Service(s) => json!({ "Service": node_service(s) }),
        TxnResult::Check(c) => json!({ "Check": check(c) }),
    }
}

/// One entry of a rolled-back transaction's `Errors`.
pub fn txn_error(e: &TxnError) -> Value {
    json!({"OpIndex": e.op_index, "What": e.what})
}
