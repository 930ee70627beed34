//! Consul's JSON shapes for what the API returns: KV entries, nodes, service instances (agent, catalog and health views), health checks, sessions and transaction results.
//!
//! Field casing is exact and some fields appear only when set (`Kind`, `TaggedAddresses`, `SocketPath`, `Proxy`, `Connect` on the agent view), because clients such as Nomad compare what they registered with what they read back.

use base64::Engine;
use std::collections::BTreeMap;

use roster_kv::{HealthCheck, KvEntry, Node, Service, ServiceAddress, ServiceEntry, Session, TxnError, TxnResult};
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
    to_value(NodeOut::from(n))
}

/// A rendered shape as a `Value`, for `?filter` and for bodies that nest it; the typed shape is the one definition,
/// so a filtered and an unfiltered read answer the same fields.
fn to_value(shape: impl Serialize) -> Value {
    serde_json::to_value(shape).unwrap_or(Value::Null)
}

/// A catalog node as every view shows it, serialized straight from the state's record: a hot read (a service's
/// health, three instances) builds no intermediate JSON tree.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeOut<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    tagged_addresses: &'a BTreeMap<String, String>,
    meta: &'a BTreeMap<String, String>,
    create_index: u64,
    modify_index: u64,
}

impl<'a> From<&'a Node> for NodeOut<'a> {
    fn from(n: &'a Node) -> Self {
        NodeOut {
            id: &n.id,
            node: &n.node,
            address: &n.address,
            datacenter: &n.datacenter,
            tagged_addresses: &n.tagged_addresses,
            meta: &n.meta,
            create_index: n.create_index,
            modify_index: n.modify_index,
        }
    }
}

/// `{"Passing": 1, "Warning": 1}`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WeightsOut {
    passing: i64,
    warning: i64,
}

impl From<&Service> for WeightsOut {
    fn from(s: &Service) -> Self {
        WeightsOut { passing: s.weights.passing, warning: s.weights.warning }
    }
}

/// A service's tagged addresses as `{"lan": {"Address": ..., "Port": ...}}`.
struct TaggedOut<'a>(&'a BTreeMap<String, ServiceAddress>);

impl Serialize for TaggedOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct One<'a> {
            address: &'a str,
            port: u16,
        }
        serializer.collect_map(self.0.iter().map(|(k, a)| (k, One { address: &a.address, port: a.port })))
    }
}

/// Stored pass-through JSON (`Proxy`, `Connect`, a check's `Definition`) written as it was stored, or `default`
/// when it is unset or does not parse.
struct Passthrough<'a> {
    text: &'a str,
    default: PassDefault,
}

#[derive(Clone, Copy)]
enum PassDefault {
    /// `{}`.
    Empty,
    /// Consul's zero `Proxy`: `{"Mode": "", "MeshGateway": {}, "Expose": {}}`.
    Proxy,
}

impl Serialize for Passthrough<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        if !self.text.is_empty()
            && let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(self.text)
        {
            return raw.serialize(serializer);
        }
        let empty = BTreeMap::<&str, &str>::new();
        match self.default {
            PassDefault::Empty => empty.serialize(serializer),
            PassDefault::Proxy => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("Mode", "")?;
                map.serialize_entry("MeshGateway", &empty)?;
                map.serialize_entry("Expose", &empty)?;
                map.end()
            }
        }
    }
}

fn pass(text: &str, default: PassDefault) -> Passthrough<'_> {
    Passthrough { text, default }
}

/// A service instance as the health and node-services endpoints show it (Consul's `NodeService`); `Kind`,
/// `TaggedAddresses` and `SocketPath` only when set.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeServiceOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(rename = "ID")]
    id: &'a str,
    service: &'a str,
    tags: &'a [String],
    address: &'a str,
    #[serde(skip_serializing_if = "is_empty_tagged")]
    tagged_addresses: TaggedOut<'a>,
    meta: &'a BTreeMap<String, String>,
    port: u16,
    #[serde(skip_serializing_if = "str::is_empty")]
    socket_path: &'a str,
    weights: WeightsOut,
    enable_tag_override: bool,
    proxy: Passthrough<'a>,
    connect: Passthrough<'a>,
    peer_name: &'static str,
    create_index: u64,
    modify_index: u64,
}

fn is_empty_tagged(t: &TaggedOut<'_>) -> bool {
    t.0.is_empty()
}

impl<'a> From<&'a Service> for NodeServiceOut<'a> {
    fn from(s: &'a Service) -> Self {
        NodeServiceOut {
            kind: &s.kind,
            id: &s.id,
            service: &s.service,
            tags: &s.tags,
            address: &s.address,
            tagged_addresses: TaggedOut(&s.tagged_addresses),
            meta: &s.meta,
            port: s.port,
            socket_path: &s.socket_path,
            weights: WeightsOut::from(s),
            enable_tag_override: s.enable_tag_override,
            proxy: pass(&s.proxy_json, PassDefault::Proxy),
            connect: pass(&s.connect_json, PassDefault::Empty),
            peer_name: "",
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

fn weights(s: &Service) -> Value {
    to_value(WeightsOut::from(s))
}

fn tagged_addresses(s: &Service) -> Value {
    to_value(TaggedOut(&s.tagged_addresses))
}

/// Parses stored pass-through JSON (`Proxy`, `Connect`), falling back to `default` when unset.
fn stored_json(text: &str, default: Value) -> Value {
    if text.is_empty() { default } else { serde_json::from_str(text).unwrap_or(default) }
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
    to_value(NodeServiceOut::from(s))
}

/// One row of `/v1/catalog/service/:name`: the node and the instance, flattened.
pub fn catalog_service(n: &Node, s: &Service) -> Value {
    to_value(CatalogServiceOut::new(n, s))
}

/// One row of `/v1/catalog/service/:name`, serialized straight from the state's records.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogServiceOut<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    tagged_addresses: &'a BTreeMap<String, String>,
    node_meta: &'a BTreeMap<String, String>,
    service_kind: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    service_address: &'a str,
    #[serde(skip_serializing_if = "is_empty_tagged")]
    service_tagged_addresses: TaggedOut<'a>,
    service_weights: WeightsOut,
    service_meta: &'a BTreeMap<String, String>,
    service_port: u16,
    service_socket_path: &'a str,
    service_enable_tag_override: bool,
    service_proxy: Passthrough<'a>,
    service_connect: Passthrough<'a>,
    service_locality: Option<()>,
    create_index: u64,
    modify_index: u64,
}

impl<'a> CatalogServiceOut<'a> {
    pub fn new(n: &'a Node, s: &'a Service) -> Self {
        CatalogServiceOut {
            id: &n.id,
            node: &n.node,
            address: &n.address,
            datacenter: &n.datacenter,
            tagged_addresses: &n.tagged_addresses,
            node_meta: &n.meta,
            service_kind: &s.kind,
            service_id: &s.id,
            service_name: &s.service,
            service_tags: &s.tags,
            service_address: &s.address,
            service_tagged_addresses: TaggedOut(&s.tagged_addresses),
            service_weights: WeightsOut::from(s),
            service_meta: &s.meta,
            service_port: s.port,
            service_socket_path: &s.socket_path,
            service_enable_tag_override: s.enable_tag_override,
            service_proxy: pass(&s.proxy_json, PassDefault::Proxy),
            service_connect: pass(&s.connect_json, PassDefault::Empty),
            service_locality: None,
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// A health check.
pub fn check(c: &HealthCheck) -> Value {
    to_value(CheckOut::from(c))
}

/// A health check, serialized straight from the state's record.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckOut<'a> {
    node: &'a str,
    #[serde(rename = "CheckID")]
    check_id: &'a str,
    name: &'a str,
    status: &'static str,
    notes: &'a str,
    output: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    #[serde(rename = "Type")]
    check_type: &'a str,
    interval: &'a str,
    timeout: &'a str,
    exposed_port: u16,
    definition: Passthrough<'a>,
    create_index: u64,
    modify_index: u64,
}

impl<'a> From<&'a HealthCheck> for CheckOut<'a> {
    fn from(c: &'a HealthCheck) -> Self {
        CheckOut {
            node: &c.node,
            check_id: &c.check_id,
            name: &c.name,
            status: c.status.as_str(),
            notes: &c.notes,
            output: &c.output,
            service_id: &c.service_id,
            service_name: &c.service_name,
            service_tags: &c.service_tags,
            check_type: &c.check_type,
            interval: &c.interval,
            timeout: &c.timeout,
            exposed_port: 0,
            definition: pass(&c.definition_json, PassDefault::Empty),
            create_index: c.create_index,
            modify_index: c.modify_index,
        }
    }
}

/// One row of `/v1/health/service/:name`.
pub fn health_entry(e: &ServiceEntry) -> Value {
    to_value(HealthEntryOut::from(e))
}

/// One row of `/v1/health/service/:name`, serialized straight from the state's records.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthEntryOut<'a> {
    node: NodeOut<'a>,
    service: NodeServiceOut<'a>,
    checks: Vec<CheckOut<'a>>,
}

impl<'a> From<&'a ServiceEntry> for HealthEntryOut<'a> {
    fn from(e: &'a ServiceEntry) -> Self {
        HealthEntryOut {
            node: NodeOut::from(&e.node),
            service: NodeServiceOut::from(&e.service),
            checks: e.checks.iter().map(CheckOut::from).collect(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use roster_kv::CheckStatus;

    fn records(stored: bool) -> ServiceEntry {
        let text = |t: &str| if stored { t.to_owned() } else { String::new() };
        let node = Node {
            id: "0b1e".into(),
            node: "n1".into(),
            address: "10.0.0.1".into(),
            datacenter: "dc1".into(),
            tagged_addresses: [("lan".to_owned(), "10.0.0.1".to_owned())].into(),
            meta: [("rack".to_owned(), "a".to_owned())].into(),
            create_index: 3,
            modify_index: 4,
        };
        let service = Service {
            id: "web-1".into(),
            service: "web".into(),
            tags: vec!["v1".into()],
            address: "10.0.0.9".into(),
            tagged_addresses: if stored {
                [("wan".to_owned(), ServiceAddress { address: "1.2.3.4".into(), port: 80 })].into()
            } else {
                BTreeMap::new()
            },
            port: 8080,
            kind: text("connect-proxy"),
            socket_path: text("/run/web.sock"),
            proxy_json: text(r#"{"DestinationServiceName": "web", "LocalServicePort": 8080}"#),
            connect_json: text("not json"),
            create_index: 5,
            modify_index: 6,
            ..Service::default()
        };
        let check = HealthCheck {
            node: "n1".into(),
            check_id: "web-up".into(),
            name: "up".into(),
            status: CheckStatus::Passing,
            service_id: "web-1".into(),
            service_name: "web".into(),
            service_tags: vec!["v1".into()],
            check_type: "http".into(),
            interval: "10s".into(),
            notes: String::new(),
            output: String::new(),
            timeout: String::new(),
            definition_json: text(r#"{"HTTP":"http://10.0.0.9:8080/"}"#),
            create_index: 7,
            modify_index: 8,
        };
        ServiceEntry { node, service, checks: vec![check] }
    }

    /// The shape `/v1/health/service` answered before it was written from typed records; both the direct
    /// serialization and the `Value` that `?filter` reads must still be exactly this.
    fn expected_health(stored: bool) -> Value {
        let mut service = json!({
            "ID": "web-1", "Service": "web", "Tags": ["v1"], "Address": "10.0.0.9", "Meta": {}, "Port": 8080,
            "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false,
            "Proxy": if stored { json!({"DestinationServiceName": "web", "LocalServicePort": 8080}) }
                     else { json!({"Mode": "", "MeshGateway": {}, "Expose": {}}) },
            "Connect": {}, "PeerName": "", "CreateIndex": 5, "ModifyIndex": 6,
        });
        if stored {
            let obj = service.as_object_mut().unwrap();
            obj.insert("Kind".into(), json!("connect-proxy"));
            obj.insert("TaggedAddresses".into(), json!({"wan": {"Address": "1.2.3.4", "Port": 80}}));
            obj.insert("SocketPath".into(), json!("/run/web.sock"));
        }
        json!({
            "Node": {"ID": "0b1e", "Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1",
                     "TaggedAddresses": {"lan": "10.0.0.1"}, "Meta": {"rack": "a"}, "CreateIndex": 3, "ModifyIndex": 4},
            "Service": service,
            "Checks": [{
                "Node": "n1", "CheckID": "web-up", "Name": "up", "Status": "passing", "Notes": "", "Output": "",
                "ServiceID": "web-1", "ServiceName": "web", "ServiceTags": ["v1"], "Type": "http", "Interval": "10s",
                "Timeout": "", "ExposedPort": 0,
                "Definition": if stored { json!({"HTTP": "http://10.0.0.9:8080/"}) } else { json!({}) },
                "CreateIndex": 7, "ModifyIndex": 8,
            }],
        })
    }

    #[test]
    fn a_health_row_written_directly_and_as_a_value_is_the_same_consul_shape() {
        for stored in [false, true] {
            let entry = records(stored);
            let direct: Value = serde_json::from_slice(&serde_json::to_vec(&HealthEntryOut::from(&entry)).unwrap())
                .expect("direct output is JSON");
            assert_eq!(direct, expected_health(stored), "stored={stored}");
            assert_eq!(health_entry(&entry), expected_health(stored), "stored={stored}");
        }
    }

    #[test]
    fn a_catalog_row_written_directly_and_as_a_value_is_the_same_consul_shape() {
        let entry = records(true);
        let direct: Value =
            serde_json::from_slice(&serde_json::to_vec(&CatalogServiceOut::new(&entry.node, &entry.service)).unwrap())
                .expect("direct output is JSON");
        let want = json!({
            "ID": "0b1e", "Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.0.0.1"}, "NodeMeta": {"rack": "a"}, "ServiceKind": "connect-proxy",
            "ServiceID": "web-1", "ServiceName": "web", "ServiceTags": ["v1"], "ServiceAddress": "10.0.0.9",
            "ServiceTaggedAddresses": {"wan": {"Address": "1.2.3.4", "Port": 80}},
            "ServiceWeights": {"Passing": 1, "Warning": 1}, "ServiceMeta": {}, "ServicePort": 8080,
            "ServiceSocketPath": "/run/web.sock", "ServiceEnableTagOverride": false,
            "ServiceProxy": {"DestinationServiceName": "web", "LocalServicePort": 8080}, "ServiceConnect": {},
            "ServiceLocality": null, "CreateIndex": 5, "ModifyIndex": 6,
        });
        assert_eq!(direct, want);
        assert_eq!(catalog_service(&entry.node, &entry.service), want);
    }
}
