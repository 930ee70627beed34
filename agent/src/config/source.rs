//! Reading one config layer (a JSON or HCL file, the `ROSTER_*` environment, the command line, a `-hcl`
//! snippet) into a [`Layer`].
//!
//! Files are parsed to `serde_json::Value` (HCL through `hcl.rs`, with Consul's rules for repeated
//! blocks) and then walked key by key rather than deserialized
//! into a struct with `deny_unknown_fields`: that way every unknown key and every bad value in a
//! file is reported, each with the file name and its full dotted key (`ports.htp`), in one pass.
//! Flags and environment variables are turned into the same `(key, value)` pairs, so a port given
//! as `-http-port` is checked by exactly the code that checks `ports.http` in a file.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{EnvSource, ListenAddr, LogLevel};
use crate::cli::AgentArgs;

/// One layer's settings, typed and range-checked; `None` / empty means "not set by this layer".
#[derive(Debug, Default)]
pub(super) struct Layer {
    pub datacenter: Option<String>,
    pub primary_datacenter: Option<String>,
    pub node_name: Option<String>,
    pub node_id: Option<uuid::Uuid>,
    pub node_meta: BTreeMap<String, String>,
    pub data_dir: Option<PathBuf>,
    pub server: Option<bool>,
    pub bootstrap: Option<bool>,
    pub bootstrap_expect: Option<u32>,
    pub bind_addr: Option<IpAddr>,
    pub advertise_addr: Option<IpAddr>,
    pub client_addrs: Option<Vec<IpAddr>>,
    pub http_addrs: Option<Vec<ListenAddr>>,
    pub https_addrs: Option<Vec<ListenAddr>>,
    pub dns_addrs: Option<Vec<ListenAddr>>,
    pub ports: PortsLayer,
    pub start_join: Vec<String>,
    pub retry_join: Vec<String>,
    pub recursors: Vec<SocketAddr>,
    pub enable_script_checks: Option<bool>,
    pub enable_local_script_checks: Option<bool>,
    pub watch_docker: Option<bool>,
    pub exec_bridge: Option<String>,
    pub exec_bridge_cidr: Option<(std::net::Ipv4Addr, u8)>,
    pub exec_allow_host_rootfs: Option<bool>,
    /// `None` when no layer names `exec.host_mounts`, so `-dev` can tell "unset" (any path) from "empty" (none).
    pub exec_host_mounts: Option<Vec<PathBuf>>,
    /// `None` when no layer names `docker.host_mounts`, as for `exec.host_mounts`.
    pub docker_host_mounts: Option<Vec<PathBuf>>,
    pub domain: Option<String>,
    pub alt_domain: Option<String>,
    pub node_ttl: Option<Duration>,
    pub service_ttl: BTreeMap<String, Duration>,
    pub only_passing: Option<bool>,
    pub enable_truncate: Option<bool>,
    pub max_stale: Option<Duration>,
    pub udp_answer_limit: Option<u32>,
    /// The `dns_config` keys `dns.rs` reads.
    pub dns: super::dns::DnsLayer,
    pub raft_multiplier: Option<u8>,
    pub log_level: Option<LogLevel>,
    pub leave_on_terminate: Option<bool>,
    pub skip_leave_on_interrupt: Option<bool>,
    pub retry_interval: Option<Duration>,
    pub retry_max: Option<u32>,
    pub reconnect_timeout: Option<Duration>,
    pub check_update_interval: Option<Duration>,
    pub sync_coordinate_interval_min: Option<Duration>,
    pub sync_coordinate_rate_target: Option<f64>,
    pub disable_coordinates: Option<bool>,
    pub services: Vec<Value>,
    pub checks: Vec<Value>,
    pub acl: Option<Value>,
    /// The `tls` block, deep-merged across layers like `acl`, typed in `tls.rs`.
    pub tls: Option<Value>,
    /// Consul's legacy top-level TLS keys (`ca_file`, `verify_incoming_rpc`, ...), later layers winning per key.
    pub tls_legacy: Map<String, Value>,
    /// The `limits` block, deep-merged across layers.
    pub limits: Option<Value>,
    /// The `autopilot` block, deep-merged like `limits`, typed in `autopilot.rs`.
    pub autopilot: Option<Value>,
    /// The `telemetry` block, deep-merged like `limits`, typed in `telemetry.rs`.
    pub telemetry: Option<Value>,
    pub encrypt: Option<crate::gossip::Key>,
    pub encrypt_verify_incoming: Option<bool>,
    pub encrypt_verify_outgoing: Option<bool>,
    /// The web UI's keys (`ui_config`, `ui`, `ui_content_path`), typed in `ui.rs`.
    pub ui: super::ui::UiLayer,
    /// The log format, log file and pid file keys `logging.rs` reads.
    pub logging: super::logging::LoggingLayer,
}

/// Ports set by one layer; the inner `None` is an explicit `-1` (disabled).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PortsLayer {
    pub http: Option<Option<u16>>,
    pub https: Option<Option<u16>>,
    pub dns: Option<Option<u16>>,
    pub serf_lan: Option<Option<u16>>,
    pub serf_wan: Option<Option<u16>>,
    pub server: Option<Option<u16>>,
    pub grpc: Option<Option<u16>>,
}

/// Environment variables honoured by the agent, and the config key each one sets.
pub(super) const ENV_KEYS: [(&str, &str); 7] = [
    ("ROSTER_DATACENTER", "datacenter"),
    ("ROSTER_NODE_NAME", "node_name"),
    ("ROSTER_DATA_DIR", "data_dir"),
    ("ROSTER_LOG_LEVEL", "log_level"),
    ("ROSTER_BIND_ADDR", "bind_addr"),
    ("ROSTER_CLIENT_ADDR", "client_addr"),
    ("ROSTER_ADVERTISE_ADDR", "advertise_addr"),
];

/// A config file's format: from `-config-format`, else from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Hcl,
}

impl Format {
    /// The format a path's extension names, if any.
    fn of(path: &Path) -> Option<Format> {
        match path.extension().and_then(|ext| ext.to_str()) {
            Some("json") => Some(Format::Json),
            Some("hcl") => Some(Format::Hcl),
            _ => None,
        }
    }
}

/// `-config-format`: `None` when not given; an unknown name is an error.
fn forced_format(args: &AgentArgs, errors: &mut Vec<String>) -> Option<Format> {
    match args.config_format.as_deref()? {
        "json" => Some(Format::Json),
        "hcl" => Some(Format::Hcl),
        other => {
            errors.push(format!("-config-format: {other:?} is not a config format; use json or hcl"));
            None
        }
    }
}

/// Reads and merges every layer for `args`; returns the merged layer and the files read.
///
/// As in Consul, `-hcl` snippets come last, after the flags, each read like a file.
pub(super) fn collect(args: &AgentArgs, env: &dyn EnvSource, errors: &mut Vec<String>) -> (Layer, Vec<PathBuf>) {
    let mut merged = Layer::default();
    let forced = forced_format(args, errors);
    let mut files = args.config_file.clone();
    for dir in &args.config_dir {
        files.extend(list_config_dir(dir, forced, errors));
    }
    for file in &files {
        merged.merge(read_file(file, forced, errors));
    }
    merged.merge(read_env(env, errors));
    merged.merge(read_flags(args, errors));
    for (idx, snippet) in args.hcl.iter().enumerate() {
        merged.merge(read_hcl(snippet, &format!("-hcl #{}", idx + 1), errors));
    }
    (merged, files)
}

/// Parses the HCL text of one config file (or of a `-hcl` snippet); `origin` names it in error messages.
pub(super) fn read_hcl(text: &str, origin: &str, errors: &mut Vec<String>) -> Layer {
    let mut layer = Layer::default();
    if let Some(map) = super::hcl::to_json(text, origin, errors) {
        let mut reader = Reader { origin, errors };
        reader.apply_object(&mut layer, "", &map);
    }
    layer
}

/// Parses the JSON text of one config file; `origin` names it in error messages.
pub(super) fn read_json(text: &str, origin: &str, errors: &mut Vec<String>) -> Layer {
    let mut layer = Layer::default();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            let mut reader = Reader { origin, errors };
            reader.apply_object(&mut layer, "", &map);
        }
        Ok(_) => errors.push(format!("{origin}: expected a JSON object at the top level")),
        Err(err) => errors.push(format!("{origin}: invalid JSON: {err}")),
    }
    layer
}

impl Layer {
    /// Overlays `later` on `self`: later scalars win, lists and maps accumulate.
    pub(super) fn merge(&mut self, later: Layer) {
        over(&mut self.datacenter, later.datacenter);
        over(&mut self.primary_datacenter, later.primary_datacenter);
        over(&mut self.node_name, later.node_name);
        over(&mut self.node_id, later.node_id);
        self.node_meta.extend(later.node_meta);
        over(&mut self.data_dir, later.data_dir);
        over(&mut self.server, later.server);
        over(&mut self.bootstrap, later.bootstrap);
        over(&mut self.bootstrap_expect, later.bootstrap_expect);
        over(&mut self.bind_addr, later.bind_addr);
        over(&mut self.advertise_addr, later.advertise_addr);
        over(&mut self.client_addrs, later.client_addrs);
        over(&mut self.http_addrs, later.http_addrs);
        over(&mut self.https_addrs, later.https_addrs);
        over(&mut self.dns_addrs, later.dns_addrs);
        self.ports.merge(later.ports);
        self.start_join.extend(later.start_join);
        self.retry_join.extend(later.retry_join);
        self.recursors.extend(later.recursors);
        over(&mut self.enable_script_checks, later.enable_script_checks);
        over(&mut self.enable_local_script_checks, later.enable_local_script_checks);
        over(&mut self.watch_docker, later.watch_docker);
        over(&mut self.exec_bridge, later.exec_bridge);
        over(&mut self.exec_bridge_cidr, later.exec_bridge_cidr);
        over(&mut self.exec_allow_host_rootfs, later.exec_allow_host_rootfs);
        concat_paths(&mut self.exec_host_mounts, later.exec_host_mounts);
        concat_paths(&mut self.docker_host_mounts, later.docker_host_mounts);
        over(&mut self.domain, later.domain);
        over(&mut self.alt_domain, later.alt_domain);
        over(&mut self.node_ttl, later.node_ttl);
        self.service_ttl.extend(later.service_ttl);
        over(&mut self.only_passing, later.only_passing);
        over(&mut self.enable_truncate, later.enable_truncate);
        over(&mut self.max_stale, later.max_stale);
        over(&mut self.udp_answer_limit, later.udp_answer_limit);
        self.dns.merge(later.dns);
        over(&mut self.raft_multiplier, later.raft_multiplier);
        over(&mut self.log_level, later.log_level);
        over(&mut self.leave_on_terminate, later.leave_on_terminate);
        over(&mut self.skip_leave_on_interrupt, later.skip_leave_on_interrupt);
        over(&mut self.retry_interval, later.retry_interval);
        over(&mut self.retry_max, later.retry_max);
        over(&mut self.reconnect_timeout, later.reconnect_timeout);
        over(&mut self.check_update_interval, later.check_update_interval);
        over(&mut self.sync_coordinate_interval_min, later.sync_coordinate_interval_min);
        over(&mut self.sync_coordinate_rate_target, later.sync_coordinate_rate_target);
        over(&mut self.disable_coordinates, later.disable_coordinates);
        over(&mut self.encrypt, later.encrypt);
        over(&mut self.encrypt_verify_incoming, later.encrypt_verify_incoming);
        over(&mut self.encrypt_verify_outgoing, later.encrypt_verify_outgoing);
        self.services.extend(later.services);
        self.checks.extend(later.checks);
        merge_object(&mut self.acl, later.acl);
        merge_object(&mut self.tls, later.tls);
        self.tls_legacy.extend(later.tls_legacy);
        merge_object(&mut self.limits, later.limits);
        merge_object(&mut self.autopilot, later.autopilot);
        self.ui.merge(later.ui);
        merge_object(&mut self.telemetry, later.telemetry);
        self.logging.merge(later.logging);
    }
}

impl PortsLayer {
    /// Overlays `later` port by port.
    fn merge(&mut self, later: PortsLayer) {
        over(&mut self.http, later.http);
        over(&mut self.https, later.https);
        over(&mut self.dns, later.dns);
        over(&mut self.serf_lan, later.serf_lan);
        over(&mut self.serf_wan, later.serf_wan);
        over(&mut self.server, later.server);
        over(&mut self.grpc, later.grpc);
    }
}

/// Replaces `slot` when the later layer set a value.
fn over<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

/// Deep-merges a later layer's block (`acl`, `tls`, `limits`) into the earlier one's.
fn merge_object(earlier: &mut Option<Value>, later: Option<Value>) {
    *earlier = match (earlier.take(), later) {
        (Some(mut earlier_value), Some(later_value)) => {
            deep_merge(&mut earlier_value, later_value);
            Some(earlier_value)
        }
        (earlier_value, later_value) => later_value.or(earlier_value),
    };
}

/// Merges JSON objects key by key; anything else is replaced, as Consul merges maps.
pub(super) fn deep_merge(earlier: &mut Value, later: Value) {
    match (earlier, later) {
        (Value::Object(earlier_map), Value::Object(later_map)) => {
            for (key, later_value) in later_map {
                match earlier_map.get_mut(&key) {
                    Some(earlier_value) => deep_merge(earlier_value, later_value),
                    None => {
                        earlier_map.insert(key, later_value);
                    }
                }
            }
        }
        (earlier, later) => *earlier = later,
    }
}

/// The `*.json` and `*.hcl` files of a config dir in lexical order (every regular file under
/// `-config-format`), as Consul reads a config dir; subdirectories are not descended into.
fn list_config_dir(dir: &Path, forced: Option<Format>, errors: &mut Vec<String>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            errors.push(format!("cannot read config dir {}: {err}", dir.display()));
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() && (forced.is_some() || Format::of(&path).is_some()) {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Reads one config file in `-config-format`'s format, else its extension's; a file named neither
/// `.json` nor `.hcl` is refused (Consul skips it with a warning, which is easy to miss).
fn read_file(path: &Path, forced: Option<Format>, errors: &mut Vec<String>) -> Layer {
    let origin = path.display().to_string();
    let Some(format) = forced.or_else(|| Format::of(path)) else {
        errors.push(format!(
            "{origin}: a config file's name must end in .json or .hcl, or -config-format must say which it is"
        ));
        return Layer::default();
    };
    match std::fs::read_to_string(path) {
        Ok(text) if format == Format::Hcl => read_hcl(&text, &origin, errors),
        Ok(text) => read_json(&text, &origin, errors),
        Err(err) => {
            errors.push(format!("cannot read config file {origin}: {err}"));
            Layer::default()
        }
    }
}

/// Reads the `ROSTER_*` variables listed in [`ENV_KEYS`].
fn read_env(env: &dyn EnvSource, errors: &mut Vec<String>) -> Layer {
    let mut layer = Layer::default();
    for (variable, key) in ENV_KEYS {
        if let Some(text) = env.var(variable) {
            let origin = format!("environment variable {variable}");
            let mut reader = Reader { origin: &origin, errors };
            reader.apply(&mut layer, key, &Value::String(text));
        }
    }
    layer
}

/// Turns the agent's flags into config keys and reads them like a file.
fn read_flags(args: &AgentArgs, errors: &mut Vec<String>) -> Layer {
    let mut map = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            map.insert(key.to_owned(), value);
        }
    };
    let text = |value: &Option<String>| value.clone().map(Value::String);
    let number = |value: &Option<i64>| value.map(Value::from);
    let list = |values: &[String]| (!values.is_empty()).then(|| Value::from(values.to_vec()));
    put("datacenter", text(&args.datacenter));
    put("node_name", text(&args.node));
    put("node_id", text(&args.node_id));
    put("data_dir", args.data_dir.as_ref().map(|dir| Value::String(dir.display().to_string())));
    put("server", args.server.map(Value::Bool));
    put("bootstrap", args.bootstrap.map(Value::Bool));
    put("bootstrap_expect", number(&args.bootstrap_expect));
    put("bind_addr", text(&args.bind));
    put("advertise_addr", text(&args.advertise));
    put("client_addr", text(&args.client));
    put("domain", text(&args.domain));
    put("alt_domain", text(&args.alt_domain));
    put("log_level", text(&args.log_level));
    put("recursors", list(&args.recursor));
    put("start_join", list(&args.join));
    put("retry_join", list(&args.retry_join));
    put("retry_interval", text(&args.retry_interval));
    put("retry_max", number(&args.retry_max));
    put("enable_script_checks", args.enable_script_checks.map(Value::Bool));
    put("enable_local_script_checks", args.enable_local_script_checks.map(Value::Bool));
    put("watch_docker", args.watch_docker.map(Value::Bool));
    put("encrypt", text(&args.encrypt));
    put("ui", args.ui.map(Value::Bool));
    put("ui_content_path", text(&args.ui_content_path));
    for (key, value) in super::logging::flag_values(args) {
        put(key, Some(value));
    }
    let ports = [
        ("http", number(&args.http_port)),
        ("https", number(&args.https_port)),
        ("dns", number(&args.dns_port)),
        ("serf_lan", number(&args.serf_lan_port)),
        ("serf_wan", number(&args.serf_wan_port)),
        ("server", number(&args.server_port)),
        ("grpc", number(&args.grpc_port)),
    ];
    let ports: Map<String, Value> =
        ports.into_iter().filter_map(|(key, value)| Some((key.to_owned(), value?))).collect();
    put("ports", (!ports.is_empty()).then_some(Value::Object(ports)));
    let mut layer = Layer::default();
    let mut reader = Reader { origin: "command line", errors };
    reader.apply_object(&mut layer, "", &map);
    layer.node_meta.extend(node_meta_flags(&args.node_meta, reader.errors));
    layer
}

/// Parses `-node-meta key:value` flags.
fn node_meta_flags(flags: &[String], errors: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    for flag in flags {
        match flag.split_once(':') {
            Some((key, value)) if !key.is_empty() => {
                meta.insert(key.to_owned(), value.to_owned());
            }
            _ => errors.push(format!("command line: -node-meta {flag:?}: expected key:value")),
        }
    }
    meta
}

/// Walks JSON config values into a [`Layer`], recording errors against `origin` and the dotted key.
struct Reader<'a> {
    origin: &'a str,
    errors: &'a mut Vec<String>,
}

impl Reader<'_> {
    /// Applies every key of an object found at `prefix` (`""` at the top level).
    fn apply_object(&mut self, layer: &mut Layer, prefix: &str, map: &Map<String, Value>) {
        for (key, value) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            self.apply(layer, &path, value);
        }
    }

    /// Applies one key given by its dotted path.
    fn apply(&mut self, layer: &mut Layer, key: &str, value: &Value) {
        let res = match key {
            "ports" | "addresses" | "dns_config" | "performance" | "exec" | "docker" => match value {
                Value::Object(map) => {
                    self.apply_object(layer, key, map);
                    Ok(())
                }
                _ => Err("expected an object".to_owned()),
            },
            "datacenter" => datacenter(value).map(|v| layer.datacenter = Some(v)),
            "primary_datacenter" => datacenter(value).map(|v| layer.primary_datacenter = Some(v)),
            "node_name" => non_empty(value).map(|v| layer.node_name = Some(v)),
            "node_id" => node_id(value).map(|v| layer.node_id = Some(v)),
            "node_meta" => string_map(value).map(|v| layer.node_meta.extend(v)),
            "data_dir" => non_empty(value).map(|v| layer.data_dir = Some(PathBuf::from(v))),
            "server" => boolean(value).map(|v| layer.server = Some(v)),
            "bootstrap" => boolean(value).map(|v| layer.bootstrap = Some(v)),
            "bootstrap_expect" => bootstrap_expect(value).map(|v| layer.bootstrap_expect = Some(v)),
            "bind_addr" => ip(value).map(|v| layer.bind_addr = Some(v)),
            "advertise_addr" => ip(value).map(|v| layer.advertise_addr = Some(v)),
            "client_addr" => ip_list(value).map(|v| layer.client_addrs = Some(v)),
            "addresses.http" => listen_list(value).map(|v| layer.http_addrs = Some(v)),
            "addresses.https" => listen_list(value).map(|v| layer.https_addrs = Some(v)),
            "addresses.dns" => listen_list(value).map(|v| layer.dns_addrs = Some(v)),
            "ports.http" => port(value).map(|v| layer.ports.http = Some(v)),
            "ports.https" => port(value).map(|v| layer.ports.https = Some(v)),
            "ports.dns" => port(value).map(|v| layer.ports.dns = Some(v)),
            "ports.serf_lan" => port(value).map(|v| layer.ports.serf_lan = Some(v)),
            "ports.serf_wan" => disabled_only(value, "roster runs a single datacenter, without WAN gossip")
                .map(|v| layer.ports.serf_wan = Some(v)),
            "ports.server" => port(value).map(|v| layer.ports.server = Some(v)),
            "ports.grpc" | "ports.grpc_tls" => {
                disabled_only(value, "roster has no gRPC server").map(|v| layer.ports.grpc = Some(v))
            }
            "start_join" => strings(value).map(|v| layer.start_join.extend(v)),
            "retry_join" => strings(value).map(|v| layer.retry_join.extend(v)),
            "recursors" => recursors(value).map(|v| layer.recursors.extend(v)),
            "enable_script_checks" => boolean(value).map(|v| layer.enable_script_checks = Some(v)),
            "enable_local_script_checks" => boolean(value).map(|v| layer.enable_local_script_checks = Some(v)),
            "watch_docker" => boolean(value).map(|v| layer.watch_docker = Some(v)),
            "exec.bridge" => bridge_name(value).map(|v| layer.exec_bridge = Some(v)),
            "exec.bridge_cidr" => bridge_cidr(value).map(|v| layer.exec_bridge_cidr = Some(v)),
            "exec.allow_host_rootfs" => boolean(value).map(|v| layer.exec_allow_host_rootfs = Some(v)),
            "exec.host_mounts" => {
                host_paths(value).map(|v| layer.exec_host_mounts.get_or_insert_with(Vec::new).extend(v))
            }
            "docker.host_mounts" => {
                host_paths(value).map(|v| layer.docker_host_mounts.get_or_insert_with(Vec::new).extend(v))
            }
            "domain" => domain(value).map(|v| layer.domain = Some(v)),
            "alt_domain" => domain(value).map(|v| layer.alt_domain = Some(v)),
            "dns_config.node_ttl" => duration(value).map(|v| layer.node_ttl = Some(v)),
            "dns_config.service_ttl" => self.service_ttl(layer, value),
            "dns_config.only_passing" => boolean(value).map(|v| layer.only_passing = Some(v)),
            "dns_config.enable_truncate" => boolean(value).map(|v| layer.enable_truncate = Some(v)),
            "dns_config.max_stale" => duration(value).map(|v| layer.max_stale = Some(v)),
            "dns_config.udp_answer_limit" => {
                int_in(value, 1, i64::from(u32::MAX)).map(|v| layer.udp_answer_limit = Some(v))
            }
            dns if super::dns::is_key(dns) => layer.dns.apply(dns, value),
            // 0 is Consul's "the default", kept so it overrides an earlier layer's value.
            "performance.raft_multiplier" => int_in(value, 0, 10).map(|v| layer.raft_multiplier = Some(v)),
            logging if super::logging::is_key(logging) => layer.logging.apply(logging, value),
            "log_level" => log_level(value).map(|v| layer.log_level = Some(v)),
            "leave_on_terminate" => boolean(value).map(|v| layer.leave_on_terminate = Some(v)),
            "skip_leave_on_interrupt" => boolean(value).map(|v| layer.skip_leave_on_interrupt = Some(v)),
            "retry_interval" => positive_duration(value).map(|v| layer.retry_interval = Some(v)),
            "retry_max" => int_in(value, 0, i64::from(u32::MAX)).map(|v| layer.retry_max = Some(v)),
            "reconnect_timeout" => reconnect_timeout(value).map(|v| layer.reconnect_timeout = Some(v)),
            "check_update_interval" => duration(value).map(|v| layer.check_update_interval = Some(v)),
            "sync_coordinate_interval_min" => {
                positive_duration(value).map(|v| layer.sync_coordinate_interval_min = Some(v))
            }
            "sync_coordinate_rate_target" => {
                positive_number(value).map(|v| layer.sync_coordinate_rate_target = Some(v))
            }
            "disable_coordinates" => boolean(value).map(|v| layer.disable_coordinates = Some(v)),
            "service" => one_or_more(value).map(|v| layer.services.extend(v)),
            "services" => objects(value).map(|v| layer.services.extend(v)),
            "check" => one_or_more(value).map(|v| layer.checks.extend(v)),
            "checks" => objects(value).map(|v| layer.checks.extend(v)),
            "acl" => object(value).map(|v| layer.acl = Some(v)),
            "tls" => object(value).map(|v| layer.tls = Some(v)),
            "limits" => object(value).map(|v| layer.limits = Some(v)),
            "autopilot" => object(value).map(|v| layer.autopilot = Some(v)),
            "telemetry" => object(value).map(|v| layer.telemetry = Some(v)),
            legacy if super::tls::LEGACY_KEYS.contains(&legacy) => {
                layer.tls_legacy.insert(legacy.to_owned(), value.clone());
                Ok(())
            }
            "encrypt" => gossip_key(value).map(|v| layer.encrypt = Some(v)),
            "encrypt_verify_incoming" => boolean(value).map(|v| layer.encrypt_verify_incoming = Some(v)),
            "encrypt_verify_outgoing" => boolean(value).map(|v| layer.encrypt_verify_outgoing = Some(v)),
            ui if super::ui::is_key(ui) => layer.ui.apply(ui, value),
            _ => {
                self.errors.push(super::consul_keys::refusal(self.origin, key));
                Ok(())
            }
        };
        if let Err(message) = res {
            self.error(key, &message);
        }
    }

    /// Reads `dns_config.service_ttl`, a map of service name (or `prefix*`) to duration.
    fn service_ttl(&mut self, layer: &mut Layer, value: &Value) -> Result<(), String> {
        let Value::Object(map) = value else {
            return Err("expected an object of service name to duration".to_owned());
        };
        for (service, ttl) in map {
            match duration(ttl) {
                Ok(ttl) => {
                    layer.service_ttl.insert(service.clone(), ttl);
                }
                Err(message) => {
                    self.error(&format!("dns_config.service_ttl.{service}"), &message);
                }
            }
        }
        Ok(())
    }

    /// Records one error as `<origin>: <key>: <message>`.
    fn error(&mut self, key: &str, message: &str) {
        self.errors.push(format!("{}: {key}: {message}", self.origin));
    }
}

/// A gossip encryption key: base64 of 16, 24 or 32 bytes. The value is a secret, so errors never show it.
fn gossip_key(value: &Value) -> Result<crate::gossip::Key, String> {
    let Value::String(text) = value else { return Err("expected a base64 string".to_owned()) };
    crate::gossip::Key::parse(text).map_err(|error| format!("invalid key: {error}"))
}

/// Describes a JSON value briefly for error messages.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 40 { format!("{}…", text.chars().take(40).collect::<String>()) } else { text }
}

fn string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        other => Err(format!("expected a string, got {}", shown(other))),
    }
}

fn non_empty(value: &Value) -> Result<String, String> {
    let text = string(value)?;
    if text.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(text)
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        other => Err(format!("expected true or false, got {}", shown(other))),
    }
}

fn positive_number(value: &Value) -> Result<f64, String> {
    match value.as_f64() {
        Some(number) if number > 0.0 && number.is_finite() => Ok(number),
        _ => Err(format!("expected a number greater than zero, got {}", shown(value))),
    }
}

fn integer(value: &Value) -> Result<i64, String> {
    match value.as_i64() {
        Some(number) => Ok(number),
        None => Err(format!("expected a whole number, got {}", shown(value))),
    }
}

/// An integer in `min..=max`, converted to the target type.
fn int_in<T: TryFrom<i64>>(value: &Value, min: i64, max: i64) -> Result<T, String> {
    let number = integer(value)?;
    if number < min || number > max {
        return Err(format!("{number} is out of range ({min} to {max})"));
    }
    T::try_from(number).map_err(|_| format!("{number} is out of range ({min} to {max})"))
}

/// A port: `-1` disables the listener (`None`), `0` lets the OS choose.
fn port(value: &Value) -> Result<Option<u16>, String> {
    match integer(value)? {
        -1 => Ok(None),
        number => match u16::try_from(number) {
            Ok(port) => Ok(Some(port)),
            Err(_) => Err(format!("{number} is not a valid port (use 1 to 65535, 0 for any free port, -1 to disable)")),
        },
    }
}

/// A port of a listener roster does not have: only `-1`, which turns it off, is accepted.
fn disabled_only(value: &Value, why: &str) -> Result<Option<u16>, String> {
    match port(value)? {
        None => Ok(None),
        Some(_) => Err(format!("roster does not support this Consul setting ({why}); only -1 (disabled) is accepted")),
    }
}

fn bootstrap_expect(value: &Value) -> Result<u32, String> {
    let number = integer(value)?;
    if number < 0 {
        return Err(format!("{number} is negative; use 1 or more, or leave it unset"));
    }
    u32::try_from(number).map_err(|_| format!("{number} is too large"))
}

fn duration(value: &Value) -> Result<Duration, String> {
    super::duration_from_json(value)
}

fn positive_duration(value: &Value) -> Result<Duration, String> {
    let d = duration(value)?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
}

/// How long a failed node stays in the member list and catalog before it is reaped.
/// Consul refuses less than 8 hours, so that a node that is merely partitioned is not forgotten.
fn reconnect_timeout(value: &Value) -> Result<Duration, String> {
    let d = duration(value)?;
    if d < MIN_RECONNECT_TIMEOUT {
        return Err(format!("must be at least 8h, got {}", super::format_go_duration(d)));
    }
    Ok(d)
}

/// The smallest `reconnect_timeout` accepted.
const MIN_RECONNECT_TIMEOUT: Duration = Duration::from_secs(8 * 3600);

/// A network device name for the exec bridge: what the kernel accepts (1–15 bytes, no `/`, `:` or whitespace).
fn bridge_name(value: &Value) -> Result<String, String> {
    let name = string(value)?;
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?} must be 1 to 15 bytes long (a network device name)"));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) || name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid network device name"));
    }
    Ok(name)
}

/// The bridge's own address with its subnet's prefix, `10.89.0.1/24`: a prefix from 8 to 30 (room for tasks), and
/// an address inside the subnet that is neither its network nor its broadcast address.
fn bridge_cidr(value: &Value) -> Result<(std::net::Ipv4Addr, u8), String> {
    let text = string(value)?;
    let invalid = || format!("{text:?} is not an IPv4 address with a prefix length, like \"10.89.0.1/24\"");
    let (address, prefix) = text.trim().split_once('/').ok_or_else(invalid)?;
    let address: std::net::Ipv4Addr = address.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    if !(8..=30).contains(&prefix) {
        return Err(format!("{text:?}: the prefix length must be 8 to 30, so the subnet has room for tasks"));
    }
    let host_bits = u32::MAX >> prefix;
    let host = u32::from(address) & host_bits;
    if host == 0 || host == host_bits {
        return Err(format!(
            "{text:?}: the bridge needs a host address, not the subnet's network or broadcast address"
        ));
    }
    Ok((address, prefix))
}

/// Host paths a bind mount may be at or below: absolute, without `..`, so the allowlist says what it allows.
/// Appends a later layer's host paths to an earlier one's; a layer that names the key, even with `[]`, makes it set.
fn concat_paths(earlier: &mut Option<Vec<PathBuf>>, later: Option<Vec<PathBuf>>) {
    match (earlier.as_mut(), later) {
        (Some(paths), Some(later_paths)) => paths.extend(later_paths),
        (None, later_paths) => *earlier = later_paths,
        (Some(_), None) => {}
    }
}

fn host_paths(value: &Value) -> Result<Vec<PathBuf>, String> {
    let Value::Array(_) = value else {
        return Err(format!("expected a list of absolute paths, got {}", shown(value)));
    };
    strings(value)?
        .into_iter()
        .map(|text| {
            let path = PathBuf::from(&text);
            if !path.is_absolute() {
                return Err(format!("{text:?} is not an absolute path"));
            }
            if path.components().any(|component| component == std::path::Component::ParentDir) {
                return Err(format!("{text:?} contains \"..\"; write the path without it"));
            }
            Ok(path)
        })
        .collect()
}

fn ip(value: &Value) -> Result<IpAddr, String> {
    let text = string(value)?;
    text.trim().parse().map_err(|_| format!("{text:?} is not an IP address"))
}

/// A space-separated string of IPs (Consul's `client_addr` form) or a list of IP strings.
fn ip_list(value: &Value) -> Result<Vec<IpAddr>, String> {
    let words: Vec<String> =
        strings(value)?.iter().flat_map(|text| text.split_whitespace().map(str::to_owned)).collect();
    if words.is_empty() {
        return Err("must name at least one IP address".to_owned());
    }
    words.iter().map(|word| ip(&Value::String(word.clone()))).collect()
}

/// A single string or a list of strings.
fn strings(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) => items.iter().map(string).collect(),
        other => Err(format!("expected a list of strings, got {}", shown(other))),
    }
}

fn string_map(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(map) = value else {
        return Err(format!("expected an object, got {}", shown(value)));
    };
    map.iter().map(|(key, value)| Ok((key.clone(), string(value)?))).collect()
}

/// `addresses.*`: IPs as in `client_addr`, each optionally with its own port (`IP:port`, `[v6]:port`).
fn listen_list(value: &Value) -> Result<Vec<ListenAddr>, String> {
    let words: Vec<String> =
        strings(value)?.iter().flat_map(|text| text.split_whitespace().map(str::to_owned)).collect();
    if words.is_empty() {
        return Err("must name at least one IP address".to_owned());
    }
    words
        .iter()
        .map(|word| {
            if let Ok(ip) = word.parse::<IpAddr>() {
                return Ok(ListenAddr { ip, port: None });
            }
            word.parse::<SocketAddr>()
                .map(|addr| ListenAddr { ip: addr.ip(), port: Some(addr.port()) })
                .map_err(|_| format!("{word:?} is not an IP address or IP:port"))
        })
        .collect()
}

/// DNS upstreams: `IP` or `IP:port` (`[v6]:port`), port 53 by default.
fn recursors(value: &Value) -> Result<Vec<SocketAddr>, String> {
    strings(value)?
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<SocketAddr>()
                .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| format!("{text:?} is not an IP address or IP:port"))
        })
        .collect()
}

/// Datacenter names appear in DNS names, so only `[a-z0-9_-]` is allowed (after lowercasing).
fn datacenter(value: &Value) -> Result<String, String> {
    let name = non_empty(value)?.to_ascii_lowercase();
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !name.chars().all(valid) {
        return Err(format!("{name:?} may only contain letters, digits, '-' and '_'"));
    }
    Ok(name)
}

/// A DNS domain, stored lowercase without leading or trailing dots.
fn domain(value: &Value) -> Result<String, String> {
    let text = string(value)?;
    let name = text.trim().trim_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(format!("{text:?} is not a valid domain"));
    }
    Ok(name)
}

fn node_id(value: &Value) -> Result<uuid::Uuid, String> {
    let text = string(value)?;
    uuid::Uuid::parse_str(text.trim()).map_err(|_| format!("{text:?} is not a UUID"))
}

fn log_level(value: &Value) -> Result<LogLevel, String> {
    let text = string(value)?;
    LogLevel::parse(&text).ok_or_else(|| format!("{text:?} is not a log level (trace, debug, info, warn, error)"))
}

fn object(value: &Value) -> Result<Value, String> {
    match value {
        Value::Object(_) => Ok(value.clone()),
        other => Err(format!("expected an object, got {}", shown(other))),
    }
}

/// `service`/`check`: one object, or several when an HCL file repeats the block.
fn one_or_more(value: &Value) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(_) => objects(value),
        _ => object(value).map(|v| vec![v]),
    }
}

fn objects(value: &Value) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => items.iter().map(object).collect(),
        other => Err(format!("expected a list of objects, got {}", shown(other))),
    }
}
