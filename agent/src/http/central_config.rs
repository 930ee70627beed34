//! `?merge-central-config` on `/v1/catalog/service/:s`, `/v1/health/service/:s` and `/v1/agent/service/:id`: the
//! `proxy-defaults` and `service-defaults` config entries merged into the `Proxy` of sidecar proxies and gateways, as
//! Consul's `MergeNodeServiceWithCentralConfig` does. Other services are returned as registered.
//!
//! The registration wins: a default fills only what the service's own `Proxy` leaves unset (`Config` keys it lacks,
//! an empty `Mode`, `MeshGateway.Mode`, `MutualTLSMode`, zero `TransparentProxy` fields, no `Expose` paths).
//! Between the entries, `service-defaults` of the destination service beats `proxy-defaults` (its `Protocol` becomes
//! `Config.protocol`). Blocking with `?index` is refused: the read parks on the service alone and would not wake
//! when an entry changes.

use roster_kv::{
    Answer, ConfigEntry, PROXY_DEFAULTS, PROXY_DEFAULTS_NAME, Query as StateQuery, SERVICE_DEFAULTS, Service,
};
use serde_json::{Map, Value};

use super::query::Query;
use super::reply::ApiError;
use super::{Api, read, unexpected};

/// The kinds Consul merges into besides sidecar proxies.
const GATEWAY_KINDS: [&str; 4] = ["mesh-gateway", "terminating-gateway", "ingress-gateway", "api-gateway"];

/// Refuses `?merge-central-config` with a blocking `?index`; called before the read parks.
pub(crate) fn refuse_blocking_merge(q: &Query) -> Result<(), ApiError> {
    if q.flag("merge-central-config") && q.u64("index")?.is_some_and(|index| index > 0) {
        return Err(ApiError::bad_request(
            "?merge-central-config cannot be combined with a blocking ?index: roster would not wake the read when a config entry changes",
        ));
    }
    if q.flag("merge-central-config") && q.get("hash").is_some_and(|hash| !hash.is_empty()) {
        return Err(ApiError::bad_request(
            "?merge-central-config cannot be combined with a blocking ?hash: roster would not wake the read when a config entry changes",
        ));
    }
    Ok(())
}

/// Merges the central defaults into every sidecar proxy or gateway among `services` when the request asks for it.
pub(crate) async fn merge_central_config(api: &Api, q: &Query, services: Vec<&mut Service>) -> Result<(), ApiError> {
    if !q.flag("merge-central-config") {
        return Ok(());
    }
    // Boxed: inline, the merge's reads would sit in the future of every read that may merge, each parked watcher's.
    Box::pin(merge(api, q, services)).await
}

/// Merges the stored defaults into each proxy or gateway among `services` (`merge_central_config`'s work).
async fn merge(api: &Api, q: &Query, services: Vec<&mut Service>) -> Result<(), ApiError> {
    let mut proxy_defaults: Option<Option<Map<String, Value>>> = None;
    for service in services {
        let mut proxy = match serde_json::from_str::<Value>(&service.proxy_json) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let Some(target) = merge_target(service, &proxy) else { continue };
        if proxy_defaults.is_none() {
            proxy_defaults = Some(entry(api, q, PROXY_DEFAULTS, PROXY_DEFAULTS_NAME).await?);
        }
        let service_defaults = entry(api, q, SERVICE_DEFAULTS, &target).await?;
        let global = proxy_defaults.as_ref().and_then(Option::as_ref);
        if global.is_none() && service_defaults.is_none() {
            continue;
        }
        merge_into(&mut proxy, &Defaults::resolve(global, service_defaults.as_ref()));
        service.proxy_json = Value::Object(proxy).to_string();
    }
    Ok(())
}

/// The service whose defaults apply: a sidecar's destination, a gateway's own name; `None` for other services.
fn merge_target(service: &Service, proxy: &Map<String, Value>) -> Option<String> {
    if service.kind == "connect-proxy" {
        return get(proxy, "DestinationServiceName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    GATEWAY_KINDS.contains(&service.kind.as_str()).then(|| service.service.clone())
}

/// One stored entry's body, read as the caller.
async fn entry(api: &Api, q: &Query, kind: &str, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    let opts = q.read_opts(api)?;
    let query = StateQuery::ConfigEntry { kind: kind.to_owned(), name: name.to_owned() };
    let (answer, _, _) = read(api, &opts, &query).await?;
    let Answer::ConfigEntries(entries) = answer else { return Err(unexpected()) };
    Ok(entries.first().map(ConfigEntry::body_json))
}

/// The defaults both entries resolve to (Consul's `ComputeResolvedServiceConfig` for the fields roster stores).
#[derive(Debug, Default)]
struct Defaults {
    config: Map<String, Value>,
    mode: String,
    mesh_gateway_mode: String,
    mutual_tls_mode: String,
    outbound_listener_port: u64,
    dialed_directly: bool,
    expose_checks: bool,
    expose_paths: Vec<Value>,
}

impl Defaults {
    fn resolve(global: Option<&Map<String, Value>>, service: Option<&Map<String, Value>>) -> Defaults {
        let mut out = Defaults::default();
        for entry in [global, service].into_iter().flatten() {
            if let Some(Value::Object(config)) = entry.get("Config") {
                out.config.extend(config.clone());
            }
            if let Some(protocol) = text(entry.get("Protocol")) {
                out.config.insert("protocol".into(), Value::String(protocol));
            }
            out.mode = text(entry.get("Mode")).unwrap_or(std::mem::take(&mut out.mode));
            out.mutual_tls_mode = text(entry.get("MutualTLSMode")).unwrap_or(std::mem::take(&mut out.mutual_tls_mode));
            let nested = |outer: &str, inner: &str| entry.get(outer).and_then(|v| v.get(inner));
            out.mesh_gateway_mode =
                text(nested("MeshGateway", "Mode")).unwrap_or(std::mem::take(&mut out.mesh_gateway_mode));
            if let Some(port) = nested("TransparentProxy", "OutboundListenerPort").and_then(Value::as_u64) {
                out.outbound_listener_port = port;
            }
            out.dialed_directly |= nested("TransparentProxy", "DialedDirectly") == Some(&Value::Bool(true));
            out.expose_checks |= nested("Expose", "Checks") == Some(&Value::Bool(true));
            if let Some(Value::Array(paths)) =
                nested("Expose", "Paths").filter(|p| p.as_array().is_some_and(|a| !a.is_empty()))
            {
                out.expose_paths = paths.clone();
            }
        }
        out
    }
}

/// Fills what the registration's `Proxy` leaves unset (Consul's `MergeServiceConfig`).
fn merge_into(proxy: &mut Map<String, Value>, defaults: &Defaults) {
    if !defaults.config.is_empty() {
        let config = object_at(proxy, "Config");
        for (key, value) in &defaults.config {
            config.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    fill_text(proxy, "Mode", &defaults.mode);
    fill_text(proxy, "MutualTLSMode", &defaults.mutual_tls_mode);
    fill_text(object_at(proxy, "MeshGateway"), "Mode", &defaults.mesh_gateway_mode);
    let transparent = object_at(proxy, "TransparentProxy");
    if defaults.outbound_listener_port > 0
        && get(transparent, "OutboundListenerPort").and_then(Value::as_u64).unwrap_or(0) == 0
    {
        set(transparent, "OutboundListenerPort", defaults.outbound_listener_port.into());
    }
    if defaults.dialed_directly && get(transparent, "DialedDirectly") != Some(&Value::Bool(true)) {
        set(transparent, "DialedDirectly", Value::Bool(true));
    }
    let expose = object_at(proxy, "Expose");
    if defaults.expose_checks && get(expose, "Checks") != Some(&Value::Bool(true)) {
        set(expose, "Checks", Value::Bool(true));
    }
    let has_paths = get(expose, "Paths").and_then(Value::as_array).is_some_and(|paths| !paths.is_empty());
    if !defaults.expose_paths.is_empty() && !has_paths {
        set(expose, "Paths", Value::Array(defaults.expose_paths.clone()));
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The key of `map` that names `field` as the agent reads field names (any case, `_` ignored).
fn key_of(map: &Map<String, Value>, field: &str) -> Option<String> {
    map.keys().find(|key| key.replace('_', "").eq_ignore_ascii_case(field)).cloned()
}

fn get<'m>(map: &'m Map<String, Value>, field: &str) -> Option<&'m Value> {
    key_of(map, field).and_then(|key| map.get(&key))
}

/// Sets `field` under the key the client used, or Consul's name when it used none.
fn set(map: &mut Map<String, Value>, field: &str, value: Value) {
    let key = key_of(map, field).unwrap_or_else(|| field.to_owned());
    map.insert(key, value);
}

fn fill_text(map: &mut Map<String, Value>, field: &str, value: &str) {
    if !value.is_empty() && get(map, field).and_then(Value::as_str).unwrap_or_default().is_empty() {
        set(map, field, Value::String(value.to_owned()));
    }
}

/// The object at `field`, made an empty object when absent or not an object.
fn object_at<'m>(map: &'m mut Map<String, Value>, field: &str) -> &'m mut Map<String, Value> {
    let key = key_of(map, field).unwrap_or_else(|| field.to_owned());
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("made an object just above"),
    }
}

#[cfg(test)]
mod tests {
    //! The precedence of the registration, `service-defaults` and `proxy-defaults`.
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn the_registration_beats_service_defaults_which_beat_proxy_defaults() {
        let global = map(json!({"Config": {"protocol": "tcp", "connect_timeout_ms": 500}, "Mode": "direct",
                                "MeshGateway": {"Mode": "local"}, "Expose": {"Checks": true}}));
        let web = map(json!({"Protocol": "grpc", "MeshGateway": {"Mode": "remote"},
                             "TransparentProxy": {"OutboundListenerPort": 15001}}));
        let defaults = Defaults::resolve(Some(&global), Some(&web));
        let mut proxy =
            map(json!({"destination_service_name": "web", "config": {"connect_timeout_ms": 900}, "Mode": ""}));
        merge_into(&mut proxy, &defaults);
        assert_eq!(
            Value::Object(proxy),
            json!({"destination_service_name": "web", "config": {"connect_timeout_ms": 900, "protocol": "grpc"},
                   "Mode": "direct", "MeshGateway": {"Mode": "remote"},
                   "TransparentProxy": {"OutboundListenerPort": 15001}, "Expose": {"Checks": true}})
        );
    }

    #[test]
    fn only_sidecars_and_gateways_are_merged() {
        let mut service = Service { kind: "connect-proxy".into(), service: "web-sidecar".into(), ..Service::default() };
        let proxy = map(json!({"DestinationServiceName": "web"}));
        assert_eq!(merge_target(&service, &proxy).as_deref(), Some("web"));
        assert_eq!(merge_target(&service, &Map::new()), None, "a proxy without a destination is no sidecar");
        service.kind = "mesh-gateway".into();
        assert_eq!(merge_target(&service, &Map::new()).as_deref(), Some("web-sidecar"));
        service.kind = String::new();
        assert_eq!(merge_target(&service, &proxy), None);
    }
}
