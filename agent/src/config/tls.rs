//! Consul's `tls` block and its legacy top-level keys, and the `limits` block: typed, with every key roster does not
//! implement refused by name.
//!
//! Each listener's block (`tls.https`, `tls.internal_rpc`) falls back key by key to `tls.defaults`, then to the
//! legacy top-level key (`ca_file`, `verify_incoming_https`, ...), as Consul's config builder does.
//! `tls.grpc` is refused: roster has no gRPC port.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::duration::duration_from_json;

/// The legacy top-level TLS keys Consul still reads, each the fallback of the `tls` block key it names.
pub(super) const LEGACY_KEYS: [&str; 11] = [
    "ca_file",
    "ca_path",
    "cert_file",
    "key_file",
    "verify_incoming",
    "verify_incoming_rpc",
    "verify_incoming_https",
    "verify_outgoing",
    "verify_server_hostname",
    "tls_min_version",
    "tls_cipher_suites",
];

/// The resolved TLS settings of each listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// The HTTPS API (`tls.https` → `tls.defaults` → legacy keys, `verify_incoming_https`).
    pub https: roster_tls::Settings,
    /// Server RPC and Raft (`tls.internal_rpc` → `tls.defaults` → legacy keys, `verify_incoming_rpc`); the RPC
    /// listener and client take their configs from it.
    pub internal_rpc: roster_tls::Settings,
}

/// Connection limits (`limits.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open HTTP(S) connections one client IP may hold (`limits.http_max_conns_per_client`, default 200; 0 means no
    /// limit). The next one is answered 429 and closed, as Consul does.
    pub http_max_conns_per_client: u32,
    /// How long an HTTPS client may take to finish the TLS handshake (`limits.https_handshake_timeout`, default 5s).
    pub https_handshake_timeout: Duration,
    /// How long an RPC client may take to send its first byte and finish TLS (`limits.rpc_handshake_timeout`,
    /// default 5s).
    pub rpc_handshake_timeout: Duration,
    /// Open RPC connections one client IP may hold (`limits.rpc_max_conns_per_client`, default 100; 0 no limit).
    pub rpc_max_conns_per_client: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            http_max_conns_per_client: 200,
            https_handshake_timeout: Duration::from_secs(5),
            rpc_handshake_timeout: Duration::from_secs(5),
            rpc_max_conns_per_client: 100,
        }
    }
}

/// The keys of one `tls.*` block, each optional so a listener can fall back to `defaults` and the legacy keys.
#[derive(Debug, Default, Clone)]
struct Block {
    ca_file: Option<PathBuf>,
    ca_path: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    min_version: Option<roster_tls::TlsVersion>,
    cipher_suites: Option<Vec<rustls::CipherSuite>>,
    verify_incoming: Option<bool>,
    verify_outgoing: Option<bool>,
    verify_server_hostname: Option<bool>,
}

/// Resolves the merged `tls` block and legacy keys into each listener's settings; every problem goes to `errors`
/// with its dotted key.
pub(super) fn tls_config(tls: Option<&Value>, legacy: &Map<String, Value>, errors: &mut Vec<String>) -> TlsConfig {
    let mut defaults = Block::default();
    let mut https = Block::default();
    let mut internal_rpc = Block::default();
    match tls {
        None => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let target = match key.as_str() {
                    "defaults" => &mut defaults,
                    "https" => &mut https,
                    "internal_rpc" => &mut internal_rpc,
                    "grpc" => {
                        errors.push("tls.grpc: roster has no gRPC port; remove this block".into());
                        continue;
                    }
                    _ => {
                        errors.push(format!(
                            "tls.{key}: unknown key; roster supports tls.defaults, tls.https and tls.internal_rpc"
                        ));
                        continue;
                    }
                };
                read_block(target, &format!("tls.{key}"), value, key == "internal_rpc", errors);
            }
        }
        Some(_) => errors.push("tls: expected an object".into()),
    }
    let mut legacy_block = Block::default();
    let mut legacy_rpc_incoming = None;
    let mut legacy_https_incoming = None;
    for (key, value) in legacy {
        let res = match key.as_str() {
            "verify_incoming_rpc" => boolean(value).map(|v| legacy_rpc_incoming = Some(v)),
            "verify_incoming_https" => boolean(value).map(|v| legacy_https_incoming = Some(v)),
            other => read_key(&mut legacy_block, other, value, true),
        };
        if let Err(why) = res {
            errors.push(format!("{key}: {why}"));
        }
    }
    let fallback = defaults.or(&legacy_block);
    let https = Block { verify_incoming: https.verify_incoming.or(legacy_https_incoming), ..https }.or(&fallback);
    // Only the RPC client checks server names; the legacy top-level key means nothing to HTTPS.
    let https = Block { verify_server_hostname: None, ..https };
    let internal_rpc =
        Block { verify_incoming: internal_rpc.verify_incoming.or(legacy_rpc_incoming), ..internal_rpc }.or(&fallback);
    TlsConfig { https: https.settings(), internal_rpc: internal_rpc.settings() }
}

fn read_block(block: &mut Block, prefix: &str, value: &Value, internal_rpc: bool, errors: &mut Vec<String>) {
    let Value::Object(map) = value else {
        errors.push(format!("{prefix}: expected an object"));
        return;
    };
    for (key, value) in map {
        let res = match key.as_str() {
            "verify_server_hostname" if !internal_rpc => {
                Err("only tls.internal_rpc has this key (it checks the servers' certificates)".into())
            }
            // The HTTPS listener only accepts connections, so the key would change nothing there.
            "verify_outgoing" if prefix == "tls.https" => {
                Err("roster's HTTPS API makes no outgoing connections; set it in tls.defaults or tls.internal_rpc"
                    .into())
            }
            "use_auto_cert" => Err("roster does not implement auto_encrypt/auto_config certificates".into()),
            other => read_key(block, other, value, internal_rpc),
        };
        if let Err(why) = res {
            errors.push(format!("{prefix}.{key}: {why}"));
        }
    }
}

/// Reads one key shared by the `tls.*` blocks and the legacy top level.
fn read_key(block: &mut Block, key: &str, value: &Value, allow_hostname: bool) -> Result<(), String> {
    match key {
        "ca_file" => path(value).map(|v| block.ca_file = Some(v)),
        "ca_path" => path(value).map(|v| block.ca_path = Some(v)),
        "cert_file" => path(value).map(|v| block.cert_file = Some(v)),
        "key_file" => path(value).map(|v| block.key_file = Some(v)),
        "tls_min_version" => string(value)
            .and_then(|text| roster_tls::TlsVersion::parse(&text).map_err(|err| err.to_string()))
            .map(|v| block.min_version = Some(v)),
        "tls_cipher_suites" => cipher_suites(value).map(|v| block.cipher_suites = Some(v)),
        "verify_incoming" => boolean(value).map(|v| block.verify_incoming = Some(v)),
        "verify_outgoing" => boolean(value).map(|v| block.verify_outgoing = Some(v)),
        "verify_server_hostname" if allow_hostname => boolean(value).map(|v| block.verify_server_hostname = Some(v)),
        _ => Err("unknown key; roster supports ca_file, ca_path, cert_file, key_file, tls_min_version, \
                  tls_cipher_suites, verify_incoming, verify_outgoing and (internal_rpc only) verify_server_hostname"
            .into()),
    }
}

impl Block {
    /// Each key of `self`, else of `fallback`.
    fn or(self, fallback: &Block) -> Block {
        Block {
            ca_file: self.ca_file.or_else(|| fallback.ca_file.clone()),
            ca_path: self.ca_path.or_else(|| fallback.ca_path.clone()),
            cert_file: self.cert_file.or_else(|| fallback.cert_file.clone()),
            key_file: self.key_file.or_else(|| fallback.key_file.clone()),
            min_version: self.min_version.or(fallback.min_version),
            cipher_suites: self.cipher_suites.or_else(|| fallback.cipher_suites.clone()),
            verify_incoming: self.verify_incoming.or(fallback.verify_incoming),
            verify_outgoing: self.verify_outgoing.or(fallback.verify_outgoing),
            verify_server_hostname: self.verify_server_hostname.or(fallback.verify_server_hostname),
        }
    }

    fn settings(self) -> roster_tls::Settings {
        roster_tls::Settings {
            ca_file: self.ca_file,
            ca_path: self.ca_path,
            cert_file: self.cert_file,
            key_file: self.key_file,
            min_version: self.min_version.unwrap_or_default(),
            cipher_suites: self.cipher_suites.unwrap_or_default(),
            verify_incoming: self.verify_incoming.unwrap_or(false),
            verify_outgoing: self.verify_outgoing.unwrap_or(false),
            verify_server_hostname: self.verify_server_hostname.unwrap_or(false),
            server_name: None,
        }
    }
}

/// Reads the merged `limits` object; keys Consul has that roster does not implement are refused by name.
pub(super) fn limits(value: Option<&Value>, errors: &mut Vec<String>) -> Limits {
    let mut limits = Limits::default();
    let Some(value) = value else {
        return limits;
    };
    let Value::Object(map) = value else {
        errors.push("limits: expected an object".into());
        return limits;
    };
    for (key, value) in map {
        let res = match key.as_str() {
            "http_max_conns_per_client" => count(value).map(|v| limits.http_max_conns_per_client = v),
            "rpc_max_conns_per_client" => count(value).map(|v| limits.rpc_max_conns_per_client = v),
            "https_handshake_timeout" => timeout(value).map(|v| limits.https_handshake_timeout = v),
            "rpc_handshake_timeout" => timeout(value).map(|v| limits.rpc_handshake_timeout = v),
            "rpc_rate" | "rpc_max_burst" | "rpc_client_timeout" | "kv_max_value_size" | "txn_max_req_len"
            | "request_limits" => Err("roster does not implement this limit".into()),
            _ => Err("unknown key; roster supports http_max_conns_per_client, https_handshake_timeout, \
                      rpc_handshake_timeout and rpc_max_conns_per_client"
                .into()),
        };
        if let Err(why) = res {
            errors.push(format!("limits.{key}: {why}"));
        }
    }
    limits
}

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {value}"))
}

fn string(value: &Value) -> Result<String, String> {
    value.as_str().map(str::to_owned).ok_or_else(|| format!("expected a string, got {value}"))
}

fn path(value: &Value) -> Result<PathBuf, String> {
    let text = string(value)?;
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(PathBuf::from(text))
}

/// Consul's comma-separated string of suite names (a list is accepted too).
fn cipher_suites(value: &Value) -> Result<Vec<rustls::CipherSuite>, String> {
    let names: Vec<String> = match value {
        Value::String(text) => {
            text.split(',').map(str::trim).filter(|name| !name.is_empty()).map(String::from).collect()
        }
        Value::Array(items) => items.iter().map(string).collect::<Result<_, _>>()?,
        other => return Err(format!("expected a comma-separated string of suite names, got {other}")),
    };
    names.iter().map(|name| roster_tls::parse_cipher_suite(name).map_err(|err| err.to_string())).collect()
}

fn count(value: &Value) -> Result<u32, String> {
    value
        .as_u64()
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| format!("expected a whole number from 0, got {value}"))
}

fn timeout(value: &Value) -> Result<Duration, String> {
    let timeout = duration_from_json(value)?;
    if timeout.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(timeout)
}
