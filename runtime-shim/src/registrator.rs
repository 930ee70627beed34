//! Registrator's grammar: the Consul service definitions a container asks for through `SERVICE_*` labels or env.
//!
//! One service per port the container exposes (or one portless service when it exposes none). A published port
//! registers the host's address and the host port; an unpublished one the container's own address and port, so
//! containers on the same network find each other. Keys, as registrator reads them (a label wins over an env
//! variable of the same name, and `SERVICE_<port>_<KEY>` wins over `SERVICE_<KEY>` for that port):
//! `NAME` (default: the image's base name, with `-<port>` appended when the container exposes several ports),
//! `ID`, `TAGS` (comma list), `IGNORE`, `CHECK_HTTP` (a path), `CHECK_TCP`, `CHECK_TTL`, `CHECK_SCRIPT`,
//! `CHECK_INTERVAL` (default 10s), `CHECK_TIMEOUT`, `CHECK_INITIAL_STATUS`, `CHECK_DEREGISTER_AFTER`; any other
//! key becomes service `Meta` (lowercased, as registrator does). Containers with no `SERVICE_*` key at all are
//! not registered: roster registers only what asks to be.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

/// What the mapping needs to know about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The runtime's ID.
    pub id: String,
    /// The container's name, without Docker's leading `/`.
    pub name: String,
    /// The image reference it runs (`repo/name:tag`).
    pub image: String,
    /// Labels, then `KEY=value` env entries; labels win.
    pub labels: BTreeMap<String, String>,
    /// The environment as `KEY=value` strings.
    pub env: Vec<String>,
    /// Exposed ports: container port, protocol, and the host port when published.
    pub ports: Vec<(u16, String, Option<u16>)>,
    /// The container's address on its (first) network.
    pub ip: Option<IpAddr>,
}

const CHECK_KEYS: [&str; 8] = [
    "CHECK_HTTP",
    "CHECK_TCP",
    "CHECK_TTL",
    "CHECK_SCRIPT",
    "CHECK_INTERVAL",
    "CHECK_TIMEOUT",
    "CHECK_INITIAL_STATUS",
    "CHECK_DEREGISTER_AFTER",
];

/// The service definitions (`PUT /v1/agent/service/register` bodies) for a container on node `node` whose host
/// address is `host`. Empty when the container asks for nothing or says `SERVICE_IGNORE`.
pub fn registrations(node: &str, host: IpAddr, container: &ContainerInfo) -> Vec<Value> {
    let keys = service_keys(container);
    if keys.is_empty() || keys.contains_key("IGNORE") {
        return Vec::new();
    }
    let base = image_base(&container.image);
    let ports: Vec<Option<&(u16, String, Option<u16>)>> =
        if container.ports.is_empty() { vec![None] } else { container.ports.iter().map(Some).collect() };
    let several = ports.len() > 1;
    let mut out = Vec::new();
    for port in ports {
        let port_no = port.map(|(p, _, _)| *p);
        let scoped = |key: &str| -> Option<String> { scoped_key(&keys, port_no, key) };
        if port.is_some_and(|(p, _, _)| keys.contains_key(&format!("{p}_IGNORE"))) {
            continue;
        }
        let name = match (scoped("NAME"), port) {
            (Some(name), Some((p, _, _))) if several && !keys.contains_key(&format!("{p}_NAME")) => {
                format!("{name}-{p}")
            }
            (Some(name), _) => name,
            (None, Some((p, _, _))) if several => format!("{base}-{p}"),
            (None, _) => base.clone(),
        };
        let (address, service_port) = match port {
            Some((_, _, Some(host_port))) => (host.to_string(), Some(*host_port)),
            Some((p, _, None)) => (container.ip.unwrap_or(host).to_string(), Some(*p)),
            None => (container.ip.unwrap_or(host).to_string(), None),
        };
        let port_part = port.map_or_else(
            || "0".to_owned(),
            |(p, proto, _)| {
                if proto == "udp" { format!("{p}:udp") } else { p.to_string() }
            },
        );
        let id = scoped("ID").unwrap_or_else(|| format!("{node}:{}:{port_part}", container.name));
        let tags: Vec<String> = scoped("TAGS")
            .map(|tags| tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let meta: Map<String, Value> = keys
            .iter()
            .filter(|(key, _)| is_meta_key(key))
            .map(|(key, value)| (key.to_ascii_lowercase(), Value::String(value.clone())))
            .collect();
        let mut definition = json!({
            "ID": id,
            "Name": name,
            "Tags": tags,
            "Meta": meta,
            "Address": address,
        });
        if let Some(p) = service_port {
            definition["Port"] = json!(p);
        }
        if let Some(check) = check(&scoped, &address, service_port) {
            definition["Check"] = check;
        }
        out.push(definition);
    }
    out
}

/// `SERVICE_<port>_<KEY>` when set for this port, else `SERVICE_<KEY>`.
fn scoped_key(keys: &BTreeMap<String, String>, port: Option<u16>, key: &str) -> Option<String> {
    port.and_then(|p| keys.get(&format!("{p}_{key}"))).or_else(|| keys.get(key)).cloned()
}

/// The container's `SERVICE_*` keys without the prefix: env first, labels over them.
fn service_keys(container: &ContainerInfo) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for entry in &container.env {
        if let Some((key, value)) = entry.split_once('=')
            && let Some(key) = key.strip_prefix("SERVICE_")
        {
            keys.insert(key.to_owned(), value.to_owned());
        }
    }
    for (key, value) in &container.labels {
        if let Some(key) = key.strip_prefix("SERVICE_") {
            keys.insert(key.to_owned(), value.clone());
        }
    }
    keys
}

/// Keys that are neither service fields nor checks nor port-scoped become Meta.
fn is_meta_key(key: &str) -> bool {
    let first = key.split('_').next().unwrap_or("");
    !matches!(key, "NAME" | "ID" | "TAGS" | "IGNORE")
        && !CHECK_KEYS.contains(&key)
        && !first.chars().all(|c| c.is_ascii_digit())
}

/// The check the keys ask for, if any.
fn check(scoped: &dyn Fn(&str) -> Option<String>, address: &str, port: Option<u16>) -> Option<Value> {
    let interval = scoped("CHECK_INTERVAL").unwrap_or_else(|| "10s".to_owned());
    let mut check = if let Some(path) = scoped("CHECK_HTTP") {
        let port = port?;
        json!({"HTTP": format!("http://{address}:{port}{path}"), "Interval": interval})
    } else if scoped("CHECK_TCP").is_some_and(|v| v == "true") {
        json!({"TCP": format!("{address}:{}", port?), "Interval": interval})
    } else if let Some(ttl) = scoped("CHECK_TTL") {
        json!({"TTL": ttl})
    } else if let Some(script) = scoped("CHECK_SCRIPT") {
        let script = script.replace("$SERVICE_IP", address).replace("$SERVICE_PORT", &port.unwrap_or(0).to_string());
        json!({"Args": ["/bin/sh", "-c", script], "Interval": interval})
    } else {
        return None;
    };
    if let Some(timeout) = scoped("CHECK_TIMEOUT") {
        check["Timeout"] = json!(timeout);
    }
    if let Some(status) = scoped("CHECK_INITIAL_STATUS") {
        check["Status"] = json!(status);
    }
    if let Some(after) = scoped("CHECK_DEREGISTER_AFTER") {
        check["DeregisterCriticalServiceAfter"] = json!(after);
    }
    Some(check)
}

/// `registry:5000/team/web:1.2` → `web`.
fn image_base(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last).to_owned()
}

#[cfg(test)]
mod tests;
