//! Config entries (Consul's `/v1/config`): `service-defaults` and `proxy-defaults`, read from a client's JSON, normalized
//! and validated as Consul's `ServiceConfigEntry`/`ProxyConfigEntry` `Normalize` and `Validate` do, and stored as the
//! canonical JSON text of what `GET /v1/config/:kind/:name` shows.
//!
//! The edge and `State::apply` run the same `ConfigEntry::from_json`, so no path into the log stores an entry roster
//! would not have accepted over HTTP. Every other kind Consul knows is refused by name, never stored and ignored, and
//! so is every field that only configures Consul's own service mesh data plane (Envoy extensions, rate limits,
//! upstream overrides, terminating-gateway destinations, access logs, failover): roster has no mesh to apply them to.
//! What is kept is data clients write and read back; `?merge-central-config` merges it into proxy registrations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::limits::{MAX_META_KEY_LEN, MAX_META_PAIRS, MAX_META_VALUE_LEN};

/// The `service-defaults` kind: defaults for every instance of one service.
pub const SERVICE_DEFAULTS: &str = "service-defaults";
/// The `proxy-defaults` kind: one entry, named `global`, of defaults for every proxy.
pub const PROXY_DEFAULTS: &str = "proxy-defaults";
/// The one name a `proxy-defaults` entry may have.
pub const PROXY_DEFAULTS_NAME: &str = "global";
/// The largest canonical JSON text of one entry; a `proxy-defaults` `Config` is otherwise unbounded.
pub const MAX_CONFIG_ENTRY_LEN: usize = 512 * 1024;

/// Every kind Consul 1.22 knows (`structs.AllConfigEntryKinds`); those but the two above are refused by name.
const CONSUL_KINDS: [&str; 19] = [
    SERVICE_DEFAULTS,
    PROXY_DEFAULTS,
    "service-router",
    "service-splitter",
    "service-resolver",
    "ingress-gateway",
    "terminating-gateway",
    "service-intentions",
    "mesh",
    "exported-services",
    "sameness-group",
    "api-gateway",
    "bound-api-gateway",
    "http-route",
    "tcp-route",
    "file-system-certificate",
    "inline-certificate",
    "control-plane-request-limit",
    "jwt-provider",
];

/// The protocols a `service-defaults` entry may name (Consul's documented values).
const PROTOCOLS: [&str; 4] = ["tcp", "http", "http2", "grpc"];

/// Fields that configure Consul's mesh data plane only; refused by name.
const MESH_ONLY_FIELDS: [&str; 7] = [
    "UpstreamConfig",
    "Destination",
    "RateLimits",
    "EnvoyExtensions",
    "AccessLogs",
    "FailoverPolicy",
    "PrioritizeByLocality",
];

/// One stored config entry.
///
/// The Raft log and snapshot schema: fields are appended, never reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// `service-defaults` or `proxy-defaults`.
    pub kind: String,
    /// The service's name, or `global`.
    pub name: String,
    /// The canonical JSON object of the entry, without its indexes: what `ConfigEntry::from_json` made of it.
    pub body: String,
    /// The index the entry was first written at.
    pub create_index: u64,
    /// The index of its last write; a CAS names it.
    pub modify_index: u64,
}

/// Why a kind cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindError {
    /// Consul does not know it either (Consul: "invalid config entry kind").
    Unknown(String),
    /// A kind Consul knows that roster does not implement.
    Unsupported(String),
}

impl std::fmt::Display for KindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KindError::Unknown(kind) => write!(f, "invalid config entry kind: {kind}"),
            KindError::Unsupported(kind) => write!(
                f,
                "config entry kind {kind:?} is not supported by roster (only {SERVICE_DEFAULTS} and {PROXY_DEFAULTS} are)"
            ),
        }
    }
}

/// Whether `kind` is one roster stores.
pub fn check_kind(kind: &str) -> Result<(), KindError> {
    match kind {
        SERVICE_DEFAULTS | PROXY_DEFAULTS => Ok(()),
        _ if CONSUL_KINDS.contains(&kind) => Err(KindError::Unsupported(kind.to_owned())),
        _ => Err(KindError::Unknown(kind.to_owned())),
    }
}

/// The name an entry of `kind` is stored under when a client names it `name` (Consul's `Normalize`): `proxy-defaults`
/// is always `global`, and an empty name means it.
pub fn normalize_name(kind: &str, name: &str) -> Result<String, String> {
    if kind == PROXY_DEFAULTS {
        if !name.is_empty() && name != PROXY_DEFAULTS_NAME {
            return Err(format!("invalid name ({name:?}), only {PROXY_DEFAULTS_NAME:?} is supported"));
        }
        return Ok(PROXY_DEFAULTS_NAME.to_owned());
    }
    Ok(name.to_owned())
}

impl ConfigEntry {
    /// Reads, normalizes and validates an entry as a client sent it (field names in any case, `_` ignored, as
    /// Consul's decoder matches them). Errors are Consul's texts where Consul has one; indexes are 0.
    pub fn from_json(value: &Value) -> Result<ConfigEntry, String> {
        let Value::Object(map) = value else { return Err("Request decoding failed: body is not a JSON object".into()) };
        let mut fields = Fields::new(map)?;
        let kind = match fields.take("Kind") {
            None => return Err("Payload does not contain a kind/Kind key at the top level".into()),
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => return Err("Kind value in payload is not a string".into()),
        };
        check_kind(&kind).map_err(|e| e.to_string())?;
        let mut out = Map::new();
        let name = normalize_name(&kind, &fields.string("Name")?.unwrap_or_default())?;
        out.insert("Kind".into(), Value::String(kind.clone()));
        out.insert("Name".into(), Value::String(name.clone()));
        if kind == SERVICE_DEFAULTS {
            service_defaults(&mut fields, &name, &mut out)?;
        } else {
            let config = match fields.take("Config") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Object(config)) => Value::Object(config.clone()),
                Some(_) => return Err("'Config' expected a map".into()),
            };
            out.insert("Config".into(), config);
        }
        proxy_fields(&mut fields, &mut out)?;
        if let Some(meta) = meta(&mut fields)? {
            out.insert("Meta".into(), meta);
        }
        fields.finish()?;
        let body = Value::Object(out).to_string();
        if body.len() > MAX_CONFIG_ENTRY_LEN {
            return Err(format!("config entry is too large ({} bytes, at most {MAX_CONFIG_ENTRY_LEN})", body.len()));
        }
        Ok(ConfigEntry { kind, name, body, create_index: 0, modify_index: 0 })
    }

    /// The entry as `GET /v1/config/:kind/:name` shows it: the body with `CreateIndex` and `ModifyIndex`.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::from_str::<Value>(&self.body).unwrap_or_else(|_| Value::Object(Map::new()));
        if let Value::Object(map) = &mut value {
            map.insert("CreateIndex".into(), self.create_index.into());
            map.insert("ModifyIndex".into(), self.modify_index.into());
        }
        value
    }

    /// The stored body as JSON.
    pub fn body_json(&self) -> Map<String, Value> {
        match serde_json::from_str::<Value>(&self.body) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// `service-defaults`' own fields (Consul's `ServiceConfigEntry.Validate`).
fn service_defaults(fields: &mut Fields<'_>, name: &str, out: &mut Map<String, Value>) -> Result<(), String> {
    if name.is_empty() {
        return Err("Name is required".into());
    }
    if name == "*" {
        return Err("service-defaults name must be the name of a service, and not a wildcard".into());
    }
    let protocol = fields.string("Protocol")?.unwrap_or_default().to_lowercase();
    if !protocol.is_empty() && !PROTOCOLS.contains(&protocol.as_str()) {
        return Err(format!("invalid value for Protocol: {protocol:?} (one of {})", PROTOCOLS.join(", ")));
    }
    out.insert("Protocol".into(), Value::String(protocol));
    if let Some(sni) = fields.string("ExternalSNI")?.filter(|s| !s.is_empty()) {
        out.insert("ExternalSNI".into(), Value::String(sni));
    }
    for field in ["MaxInboundConnections", "LocalConnectTimeoutMs", "LocalRequestTimeoutMs"] {
        match fields.int(field)? {
            Some(n) if n < 0 => return Err(format!("{field} cannot be negative")),
            Some(n) if n > 0 => {
                out.insert(field.into(), n.into());
            }
            _ => {}
        }
    }
    let balance = fields.string("BalanceInboundConnections")?.unwrap_or_default();
    match balance.as_str() {
        "" => {}
        "exact_balance" => {
            out.insert("BalanceInboundConnections".into(), Value::String(balance));
        }
        _ => return Err(format!("invalid value for balance_inbound_connections: {balance}")),
    }
    Ok(())
}

/// The proxy fields both kinds have: `Mode`, `TransparentProxy`, `MutualTLSMode`, `MeshGateway`, `Expose`; and the
/// refusal of the mesh-only ones.
fn proxy_fields(fields: &mut Fields<'_>, out: &mut Map<String, Value>) -> Result<(), String> {
    for field in MESH_ONLY_FIELDS {
        if fields.take(field).is_some_and(|v| !is_empty(v)) {
            return Err(format!(
                "{field} is not supported by roster: it configures Consul's service mesh proxies, which roster does not run"
            ));
        }
    }
    let mode = fields.string("Mode")?.unwrap_or_default();
    if !["", "direct", "transparent"].contains(&mode.as_str()) {
        return Err(format!("Invalid Proxy mode: {mode:?}"));
    }
    if !mode.is_empty() {
        out.insert("Mode".into(), Value::String(mode));
    }
    let tls = fields.string("MutualTLSMode")?.unwrap_or_default();
    if !["", "strict", "permissive"].contains(&tls.as_str()) {
        return Err(format!("Invalid MutualTLSMode {tls:?}. Must be one of \"\", \"strict\", or \"permissive\"."));
    }
    if !tls.is_empty() {
        out.insert("MutualTLSMode".into(), Value::String(tls));
    }
    out.insert("TransparentProxy".into(), transparent_proxy(fields.take("TransparentProxy"))?);
    out.insert("MeshGateway".into(), mesh_gateway(fields.take("MeshGateway"))?);
    out.insert("Expose".into(), expose(fields.take("Expose"))?);
    Ok(())
}

fn transparent_proxy(value: Option<&Value>) -> Result<Value, String> {
    let mut out = Map::new();
    if let Some(value) = value.filter(|v| !v.is_null()) {
        let mut fields = Fields::of(value, "TransparentProxy")?;
        match fields.int("OutboundListenerPort")? {
            Some(port) if !(0..=65535).contains(&port) => {
                return Err(format!("TransparentProxy.OutboundListenerPort {port} is not a port"));
            }
            Some(port) if port > 0 => {
                out.insert("OutboundListenerPort".into(), port.into());
            }
            _ => {}
        }
        if fields.bool("DialedDirectly")? {
            out.insert("DialedDirectly".into(), true.into());
        }
        fields.finish()?;
    }
    Ok(Value::Object(out))
}

fn mesh_gateway(value: Option<&Value>) -> Result<Value, String> {
    let mut out = Map::new();
    if let Some(value) = value.filter(|v| !v.is_null()) {
        let mut fields = Fields::of(value, "MeshGateway")?;
        let mode = fields.string("Mode")?.unwrap_or_default();
        if !["", "none", "local", "remote"].contains(&mode.as_str()) {
            return Err(format!("Invalid Mesh Gateway Mode: {mode:?}"));
        }
        if !mode.is_empty() {
            out.insert("Mode".into(), Value::String(mode));
        }
        fields.finish()?;
    }
    Ok(Value::Object(out))
}

fn expose(value: Option<&Value>) -> Result<Value, String> {
    let mut out = Map::new();
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Value::Object(out)) };
    let mut fields = Fields::of(value, "Expose")?;
    if fields.bool("Checks")? {
        out.insert("Checks".into(), true.into());
    }
    let mut paths = Vec::new();
    match fields.take("Paths") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                paths.push(expose_path(item)?);
            }
        }
        Some(_) => return Err("'Expose.Paths' expected a list".into()),
    }
    if !paths.is_empty() {
        out.insert("Paths".into(), Value::Array(paths));
    }
    fields.finish()?;
    Ok(Value::Object(out))
}

fn expose_path(value: &Value) -> Result<Value, String> {
    let mut fields = Fields::of(value, "Expose.Paths")?;
    let mut out = Map::new();
    for field in ["ListenerPort", "LocalPathPort"] {
        match fields.int(field)? {
            Some(port) if !(0..=65535).contains(&port) => {
                return Err(format!("Expose.Paths.{field} {port} is not a port"));
            }
            Some(port) if port > 0 => {
                out.insert(field.into(), port.into());
            }
            _ => {}
        }
    }
    let path = fields.string("Path")?.unwrap_or_default();
    if !path.is_empty() {
        if !path.starts_with('/') {
            return Err(format!("Expose.Paths.Path {path:?} must begin with a '/'"));
        }
        out.insert("Path".into(), Value::String(path));
    }
    let protocol = fields.string("Protocol")?.unwrap_or_default().to_lowercase();
    if !["", "http", "http2"].contains(&protocol.as_str()) {
        return Err(format!("Expose.Paths.Protocol {protocol:?} must be http or http2"));
    }
    if !protocol.is_empty() {
        out.insert("Protocol".into(), Value::String(protocol));
    }
    fields.finish()?;
    Ok(Value::Object(out))
}

/// `Meta`: string values, within the service meta limits (Consul's `validateConfigEntryMeta`).
fn meta(fields: &mut Fields<'_>) -> Result<Option<Value>, String> {
    let map = match fields.take("Meta") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => return Err("'Meta' expected a map".into()),
    };
    if map.len() > MAX_META_PAIRS {
        return Err(format!("Meta exceeds maximum element count {MAX_META_PAIRS}"));
    }
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let Value::String(text) = value else { return Err(format!("Meta value for key {key:?} is not a string")) };
        if key.len() > MAX_META_KEY_LEN {
            return Err(format!("Meta key {key:?} exceeds maximum length {MAX_META_KEY_LEN}"));
        }
        if text.len() > MAX_META_VALUE_LEN {
            return Err(format!("Meta value for key {key:?} exceeds maximum length {MAX_META_VALUE_LEN}"));
        }
        out.insert(key.clone(), Value::String(text.clone()));
    }
    Ok((!out.is_empty()).then(|| Value::Object(out.into_iter().collect())))
}

/// What a client left at its zero value counts as absent, as Go's decoder sees it.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_empty),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// The keys of one JSON object, matched as Consul's decoder matches them (any case, `_` ignored); what no field
/// takes is refused by `finish`.
struct Fields<'a> {
    /// Folded key → (key as sent, value).
    keys: BTreeMap<String, (&'a str, &'a Value)>,
    /// Where this object is, for messages; empty at the top level.
    path: &'static str,
}

fn fold(key: &str) -> String {
    key.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>) -> Result<Fields<'a>, String> {
        let mut keys = BTreeMap::new();
        for (key, value) in map {
            if keys.insert(fold(key), (key.as_str(), value)).is_some() {
                return Err(format!("duplicate config key {key:?}"));
            }
        }
        Ok(Fields { keys, path: "" })
    }

    fn of(value: &'a Value, path: &'static str) -> Result<Fields<'a>, String> {
        match value {
            Value::Object(map) => Ok(Fields { path, ..Fields::new(map)? }),
            _ => Err(format!("'{path}' expected a map")),
        }
    }

    fn take(&mut self, field: &str) -> Option<&'a Value> {
        self.keys.remove(&fold(field)).map(|(_, value)| value)
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() { field.to_owned() } else { format!("{}.{field}", self.path) }
    }

    fn string(&mut self, field: &str) -> Result<Option<String>, String> {
        match self.take(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("'{}' expected type 'string', got {}", self.name(field), type_name(other))),
        }
    }

    fn int(&mut self, field: &str) -> Result<Option<i64>, String> {
        match self.take(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) => Ok(Some(n)),
                None => Err(format!("'{}' expected an integer, got {n}", self.name(field))),
            },
            Some(other) => Err(format!("'{}' expected type 'int', got {}", self.name(field), type_name(other))),
        }
    }

    fn bool(&mut self, field: &str) -> Result<bool, String> {
        match self.take(field) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("'{}' expected type 'bool', got {}", self.name(field), type_name(other))),
        }
    }

    /// Refuses what no field took, as Consul's `validateUnusedKeys` does; indexes are output only and ignored.
    fn finish(self) -> Result<(), String> {
        for (folded, (key, _)) in &self.keys {
            if self.path.is_empty() && (folded == "createindex" || folded == "modifyindex") {
                continue;
            }
            let key = if self.path.is_empty() { (*key).to_owned() } else { format!("{}.{key}", self.path) };
            if folded.ends_with("namespace") || folded.ends_with("partition") {
                return Err(format!(
                    "invalid config key {key:?}, namespaces and partitions are a consul enterprise feature"
                ));
            }
            return Err(format!("invalid config key {key:?}"));
        }
        Ok(())
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests;
