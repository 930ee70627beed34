//! Service and check definitions as clients send them to `agent/service/register` and `catalog/register`, validated into catalog records.
//!
//! Validation happens here, before anything is proposed, and every message names the field at fault.
//! Checks given inside a service registration get Consul's IDs: `service:<id>` for one, `service:<id>:1..N` for several, and start critical unless they say otherwise.
//! Running the checks is the health subsystem's job; here their definitions are stored (as the check's `Definition`) so that it can.

use std::collections::BTreeMap;
use std::time::Duration;

use roster_kv::{CheckStatus, HealthCheck, Service, ServiceAddress, Weights};
use serde_json::{Map, Value, json};

use super::input::{Obj, format_go_duration};

/// Parses a service definition (`Name`, `ID`, `Tags`, `Port`, ...) and its `Check`/`Checks`.
pub fn service(o: Obj<'_>, enable_scripts: bool) -> Result<(Service, Vec<HealthCheck>), String> {
    let name = o.str(&["Name", "Service"])?;
    if name.is_empty() {
        return Err("Missing service name".into());
    }
    let id = match o.str(&["ID"])? {
        id if id.is_empty() => name.clone(),
        id => id,
    };
    let meta = o.str_map(&["Meta"])?;
    validate_meta(&meta)?;
    let weights = match o.obj(&["Weights"])? {
        None => Weights::default(),
        Some(w) => {
            let passing = w.int(&["Passing"], i64::MIN, i64::MAX)?.unwrap_or(1);
            let warning = w.int(&["Warning"], i64::MIN, i64::MAX)?.unwrap_or(1);
            if passing < 1 {
                return Err("Passing must be greater than 0".into());
            }
            if warning < 0 {
                return Err("Warning must be greater or equal than 0".into());
            }
            Weights { passing, warning }
        }
    };
    let svc = Service {
        id: id.clone(),
        service: name.clone(),
        tags: o.str_list(&["Tags"])?,
        address: o.str(&["Address"])?,
        tagged_addresses: service_tagged_addresses(o)?,
        meta,
        port: port(o)?,
        weights,
        enable_tag_override: o.bool(&["EnableTagOverride"])?,
        kind: o.str(&["Kind"])?,
        socket_path: o.str(&["SocketPath"])?,
        proxy_json: raw_object(o, "Proxy")?,
        connect_json: raw_object(o, "Connect")?,
        create_index: 0,
        modify_index: 0,
    };
    let mut defs: Vec<Obj<'_>> = Vec::new();
    if let Some(single) = o.obj(&["Check"])? {
        defs.push(single);
    }
    match o.get(&["Checks"]) {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Object(map) => defs.push(Obj(map)),
                    _ => return Err("Checks: every item must be an object".into()),
                }
            }
        }
        Some(_) => return Err("Checks: expected a list of check definitions".into()),
    }
    let n_checks = defs.len();
    let mut checks = Vec::with_capacity(n_checks);
    for (idx, def) in defs.into_iter().enumerate() {
        let mut c = check(def, enable_scripts).map_err(|e| format!("Invalid check: {e}"))?;
        if c.check_id.is_empty() {
            c.check_id = if n_checks == 1 { format!("service:{id}") } else { format!("service:{id}:{}", idx + 1) };
        }
        if c.name.is_empty() {
            c.name = format!("Service '{name}' check");
        }
        c.service_id = id.clone();
        checks.push(c);
    }
    Ok((svc, checks))
}

fn port(o: Obj<'_>) -> Result<u16, String> {
    Ok(o.int(&["Port"], 0, i64::from(u16::MAX))?.map_or(0, |p| p as u16))
}

fn service_tagged_addresses(o: Obj<'_>) -> Result<BTreeMap<String, ServiceAddress>, String> {
    let Some(map) = o.obj(&["TaggedAddresses"])? else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (name, value) in map.0 {
        let Value::Object(inner) = value else {
            return Err(format!("TaggedAddresses.{name}: expected an object with Address and Port"));
        };
        let inner = Obj(inner);
        out.insert(name.clone(), ServiceAddress { address: inner.str(&["Address"])?, port: port(inner)? });
    }
    Ok(out)
}

/// A pass-through object kept as JSON text; "" when absent.
fn raw_object(o: Obj<'_>, name: &str) -> Result<String, String> {
    match o.get(&[name]) {
        None => Ok(String::new()),
        Some(v @ Value::Object(_)) => Ok(v.to_string()),
        Some(_) => Err(format!("{name}: expected an object")),
    }
}

/// The server checks the same at apply (`roster_kv::check_service_meta`); calling it here keeps the two from disagreeing.
fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    roster_kv::check_service_meta(meta)
}

/// The kinds of check Consul knows, each named by the field that defines it.
const CHECK_KINDS: [(&str, &[&str]); 9] = [
    ("ttl", &["TTL"]),
    ("http", &["HTTP"]),
    ("tcp", &["TCP"]),
    ("udp", &["UDP"]),
    ("grpc", &["GRPC"]),
    ("script", &["Args", "ScriptArgs"]),
    ("docker", &["DockerContainerID"]),
    ("alias", &["AliasService", "AliasNode"]),
    ("h2ping", &["H2PING", "H2Ping"]),
];

/// Parses one check definition (agent form: `HTTP`, `Interval`, ... at top level; catalog form: inside `Definition`).
pub fn check(o: Obj<'_>, enable_scripts: bool) -> Result<HealthCheck, String> {
    let def = o.obj(&["Definition"])?.unwrap_or(o);
    let kinds: Vec<&str> =
        CHECK_KINDS.iter().filter(|(_, fields)| def.get(fields).is_some()).map(|(k, _)| *k).collect();
    if kinds.len() > 1 {
        return Err(format!("a check has exactly one type; this one sets {}", kinds.join(" and ")));
    }
    let kind = kinds.first().copied().unwrap_or("");
    let interval = def.duration(&["Interval"])?;
    let timeout = def.duration(&["Timeout"])?;
    let ttl = def.duration(&["TTL"])?;
    match kind {
        "ttl" if ttl.is_none() => return Err("TTL must be > 0 for TTL checks".into()),
        "http" | "tcp" | "udp" | "grpc" | "script" | "docker" | "h2ping" if interval.is_none() => {
            return Err("Interval must be > 0 for script, HTTP, H2PING, TCP, UDP, gRPC or Docker checks".into());
        }
        "script" if !enable_scripts => {
            return Err(
                "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' to true".into()
            );
        }
        "http" => {
            let url = def.str(&["HTTP"])?;
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "http://".len() {
                return Err(format!("HTTP: {url:?} is not an http:// or https:// URL"));
            }
        }
        _ => {}
    }
    let status = match o.str(&["Status"])?.as_str() {
        "" => CheckStatus::Critical,
        other => {
            CheckStatus::parse(other).ok_or_else(|| format!("Status: {other:?} is not passing, warning or critical"))?
        }
    };
    for field in ["SuccessBeforePassing", "FailuresBeforeWarning", "FailuresBeforeCritical", "OutputMaxSize"] {
        def.int(&[field], 0, i64::from(u32::MAX))?;
    }
    Ok(HealthCheck {
        node: String::new(),
        check_id: o.str(&["CheckID", "ID"])?,
        name: o.str(&["Name"])?,
        status,
        notes: o.str(&["Notes"])?,
        output: o.str(&["Output"])?,
        service_id: o.str(&["ServiceID"])?,
        service_name: String::new(),
        service_tags: Vec::new(),
        check_type: kind.to_owned(),
        interval: interval.map(format_go_duration).unwrap_or_default(),
        timeout: timeout.map(format_go_duration).unwrap_or_default(),
        definition_json: definition(def, interval, timeout, ttl)?.to_string(),
        create_index: 0,
        modify_index: 0,
    })
}

/// The check's `Definition` as Consul shows it: the fields that were set, durations as Go strings.
fn definition(
    def: Obj<'_>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    ttl: Option<Duration>,
) -> Result<Value, String> {
    let mut out = Map::new();
    let go = |d: Option<Duration>| json!(format_go_duration(d.unwrap_or_default()));
    out.insert("Interval".into(), go(interval));
    out.insert("Timeout".into(), go(timeout));
    out.insert("DeregisterCriticalServiceAfter".into(), go(def.duration(&["DeregisterCriticalServiceAfter"])?));
    if ttl.is_some() {
        out.insert("TTL".into(), go(ttl));
    }
    let strings =
        ["HTTP", "Method", "Body", "TLSServerName", "TCP", "UDP", "GRPC", "H2PING", "DockerContainerID", "Shell"];
    for name in strings.into_iter().chain(["AliasNode", "AliasService"]) {
        let value = def.str(&[name])?;
        if !value.is_empty() {
            out.insert(name.into(), json!(value));
        }
    }
    for name in ["TLSSkipVerify", "GRPCUseTLS", "TCPUseTLS", "H2PingUseTLS", "DisableRedirects"] {
        if def.bool(&[name])? {
            out.insert(name.into(), json!(true));
        }
    }
    let args = def.str_list(&["Args", "ScriptArgs"])?;
    if !args.is_empty() {
        out.insert("ScriptArgs".into(), json!(args));
    }
    if let Some(header) = def.obj(&["Header"])? {
        for (name, values) in header.0 {
            if !values.as_array().is_some_and(|vs| vs.iter().all(Value::is_string)) {
                return Err(format!("Header.{name}: expected a list of strings"));
            }
        }
        out.insert("Header".into(), Value::Object(header.0.clone()));
    }
    for name in ["SuccessBeforePassing", "FailuresBeforeWarning", "FailuresBeforeCritical", "OutputMaxSize"] {
        if let Some(n) = def.int(&[name], 0, i64::from(u32::MAX))? {
            out.insert(name.into(), json!(n));
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
