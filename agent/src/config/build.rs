//! Turning the merged layer into a [`Config`]: defaults (Consul's, or `-dev`'s) and the checks that span keys.
//!
//! Per-value checks (port ranges, durations, IP syntax) already happened while reading each
//! layer; what is left here are rules about combinations, such as "a server needs a data dir".

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::source::Layer;
use super::{Addresses, Config, DnsConfig, LogLevel, Ports};

/// Consul's default datacenter name.
const DEFAULT_DATACENTER: &str = "dc1";
/// Consul's default DNS domain.
const DEFAULT_DOMAIN: &str = "consul";
/// Consul's production Raft multiplier; `-dev` uses 1 for sub-second elections.
const DEFAULT_RAFT_MULTIPLIER: u8 = 5;
/// Consul's default `dns_config.max_stale`: ten years, i.e. a stale answer beats none.
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(87_600 * 3600);
/// Consul's default `dns_config.udp_answer_limit`.
const DEFAULT_UDP_ANSWER_LIMIT: u32 = 3;

/// Consul's default ports; HTTPS is off unless asked for, and WAN gossip and gRPC, which roster lacks, are off.
fn default_ports() -> Ports {
    Ports {
        http: Some(8500),
        https: None,
        dns: Some(8600),
        serf_lan: Some(8301),
        serf_wan: None,
        server: Some(8300),
        grpc: None,
    }
}

/// Applies defaults to `layer` and records every cross-key problem in `errors`.
pub(super) fn build(layer: Layer, dev: bool, config_files: Vec<PathBuf>, errors: &mut Vec<String>) -> Config {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // `-dev` is a single server on loopback that elects itself at once.
    let server = layer.server.unwrap_or(dev);
    let defaults = default_ports();
    let ports = Ports {
        http: layer.ports.http.unwrap_or(defaults.http),
        https: layer.ports.https.unwrap_or(defaults.https),
        dns: layer.ports.dns.unwrap_or(defaults.dns),
        serf_lan: layer.ports.serf_lan.unwrap_or(defaults.serf_lan),
        serf_wan: layer.ports.serf_wan.unwrap_or(defaults.serf_wan),
        server: layer.ports.server.unwrap_or(defaults.server),
        grpc: layer.ports.grpc.unwrap_or(defaults.grpc),
    };
    let bootstrap_expect = layer.bootstrap_expect.filter(|expect| *expect > 0);
    let config = Config {
        datacenter: layer.datacenter.unwrap_or_else(|| DEFAULT_DATACENTER.to_owned()),
        node_name: layer.node_name.unwrap_or_else(super::hostname),
        node_id: layer.node_id,
        node_meta: layer.node_meta,
        // `-dev` is in-memory by definition; a data dir given alongside it is ignored, as in Consul.
        data_dir: if dev { None } else { layer.data_dir },
        dev,
        server,
        // Expecting exactly one server is the same as bootstrapping this one.
        bootstrap: layer.bootstrap.unwrap_or(dev) || bootstrap_expect == Some(1),
        bootstrap_expect,
        bind_addr: layer.bind_addr.unwrap_or(if dev { loopback } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) }),
        advertise_addr: layer.advertise_addr,
        client_addrs: layer.client_addrs.unwrap_or_else(|| vec![loopback]),
        addresses: Addresses { http: layer.http_addrs, https: layer.https_addrs, dns: layer.dns_addrs },
        ports,
        start_join: layer.start_join,
        retry_join: layer.retry_join,
        recursors: layer.recursors,
        enable_script_checks: layer.enable_script_checks.unwrap_or(false),
        enable_local_script_checks: layer.enable_local_script_checks.unwrap_or(false),
        watch_docker: layer.watch_docker.unwrap_or(false),
        exec_bridge: {
            let default = roster_runtime_shim::BridgeConfig::default();
            let (address, prefix_len) = layer.exec_bridge_cidr.unwrap_or((default.address, default.prefix_len));
            roster_runtime_shim::BridgeConfig { name: layer.exec_bridge.unwrap_or(default.name), address, prefix_len }
        },
        // `-dev` is a laptop sandbox: its jobs may reach the whole host unless a config file narrows it.
        host_access: roster_runtime_shim::HostAccess {
            allow_host_rootfs: layer.exec_allow_host_rootfs.unwrap_or(dev),
            exec_mounts: host_paths(layer.exec_host_mounts, dev),
            docker_mounts: host_paths(layer.docker_host_mounts, dev),
        },
        domain: layer.domain.unwrap_or_else(|| DEFAULT_DOMAIN.to_owned()),
        alt_domain: layer.alt_domain,
        dns: DnsConfig {
            node_ttl: layer.node_ttl.unwrap_or(Duration::ZERO),
            service_ttl: layer.service_ttl,
            only_passing: layer.only_passing.unwrap_or(false),
            enable_truncate: layer.enable_truncate.unwrap_or(false),
            max_stale: layer.max_stale.unwrap_or(DEFAULT_MAX_STALE),
            udp_answer_limit: layer.udp_answer_limit.unwrap_or(DEFAULT_UDP_ANSWER_LIMIT),
            settings: layer.dns.build(),
        },
        raft_multiplier: layer.raft_multiplier.filter(|multiplier| *multiplier > 0).unwrap_or(if dev {
            1
        } else {
            DEFAULT_RAFT_MULTIPLIER
        }),
        log_level: layer.log_level.unwrap_or(LogLevel::Info),
        // A leaving server shrinks the quorum, so only clients leave by default.
        leave_on_terminate: layer.leave_on_terminate.unwrap_or(!server),
        skip_leave_on_interrupt: layer.skip_leave_on_interrupt.unwrap_or(server),
        retry_interval: layer.retry_interval.unwrap_or(Duration::from_secs(30)),
        retry_max: layer.retry_max.unwrap_or(0),
        check_update_interval: layer.check_update_interval.unwrap_or(Duration::from_secs(300)),
        coordinate_sync: crate::coordinate_sync::SyncSettings {
            interval_min: layer.sync_coordinate_interval_min.unwrap_or(Duration::from_secs(15)),
            rate_target: layer.sync_coordinate_rate_target.unwrap_or(64.0),
            disabled: layer.disable_coordinates.unwrap_or(false),
        },
        reconnect_timeout: layer.reconnect_timeout.unwrap_or(Duration::from_secs(72 * 3600)),
        services: layer.services,
        checks: layer.checks,
        acl: super::acl::acl_config(layer.acl.as_ref(), errors),
        tls: super::tls::tls_config(layer.tls.as_ref(), &layer.tls_legacy, errors),
        limits: super::tls::limits(layer.limits.as_ref(), errors),
        autopilot: super::autopilot::autopilot_config(layer.autopilot.as_ref(), errors),
        telemetry: super::telemetry::telemetry_config(layer.telemetry.as_ref(), &super::hostname(), errors),
        encrypt: layer.encrypt,
        encrypt_verify_incoming: layer.encrypt_verify_incoming.unwrap_or(true),
        encrypt_verify_outgoing: layer.encrypt_verify_outgoing.unwrap_or(true),
        config_files,
        ui: layer.ui.build(dev),
        logging: layer.logging.build(errors),
    };
    if let Some(primary) = &layer.primary_datacenter
        && *primary != config.datacenter
    {
        errors.push(format!(
            "primary_datacenter: {primary:?} is not this agent's datacenter {:?}; roster runs one datacenter, \
             which is its own primary",
            config.datacenter
        ));
    }
    check_roles(&config, layer.bootstrap, errors);
    check_addresses(&config, errors);
    check_port_clashes(&config.ports, errors);
    check_tls_files(&config, errors);
    config
}

/// Reads every TLS file now, so a missing file, a key that does not match or an expired certificate stops the agent
/// before it binds anything, with the file and the problem named.
fn check_tls_files(config: &Config, errors: &mut Vec<String>) {
    let https = &config.tls.https;
    if config.ports.https.is_some() {
        if https.cert_file.is_none() || https.key_file.is_none() {
            errors.push(
                "ports.https is enabled but tls.https (or tls.defaults) has no cert_file and key_file".to_owned(),
            );
        } else if let Err(err) = roster_tls::Tls::load(https.clone()) {
            errors.push(format!("tls.https: {err}"));
        }
    }
    let rpc = &config.tls.internal_rpc;
    let names_files = [&rpc.ca_file, &rpc.ca_path, &rpc.cert_file, &rpc.key_file].iter().any(|file| file.is_some());
    let rpc_tls_on = names_files || rpc.verify_incoming || rpc.verify_outgoing;
    if rpc_tls_on && let Err(err) = roster_tls::Tls::load(rpc.clone()) {
        errors.push(format!("tls.internal_rpc: {err}"));
    }
    if rpc_tls_on && config.server && rpc.cert_file.is_none() {
        errors.push(
            "tls.internal_rpc: a server needs cert_file and key_file once RPC TLS is on (other servers dial it over TLS)"
                .to_owned(),
        );
    }
}

/// Server, bootstrap and data-dir rules.
/// The host paths a `*.host_mounts` key allows: the listed ones when any layer names the key (`[]`: none), else
/// any under `-dev` and none otherwise.
fn host_paths(listed: Option<Vec<PathBuf>>, dev: bool) -> roster_runtime_shim::HostPaths {
    match listed {
        Some(paths) => roster_runtime_shim::HostPaths::Under(paths),
        None if dev => roster_runtime_shim::HostPaths::Any,
        None => roster_runtime_shim::HostPaths::default(),
    }
}

fn check_roles(config: &Config, explicit_bootstrap: Option<bool>, errors: &mut Vec<String>) {
    if config.server && !config.dev && config.data_dir.is_none() {
        errors.push(
            "a server needs a data directory: set -data-dir or data_dir (or use -dev for an in-memory server)"
                .to_owned(),
        );
    }
    if config.server && config.ports.server.is_none() {
        errors.push("ports.server cannot be disabled (-1) on a server".to_owned());
    }
    if !config.dev && config.ports.serf_lan.is_none() {
        errors.push(
            "ports.serf_lan cannot be disabled (-1): agents find servers and each other through gossip".to_owned(),
        );
    }
    if config.bootstrap && !config.server {
        errors.push("bootstrap requires server mode (-server)".to_owned());
    }
    if let Some(expect) = config.bootstrap_expect {
        if config.dev {
            errors.push("bootstrap_expect is not allowed with -dev".to_owned());
        } else if !config.server {
            errors.push(format!("bootstrap_expect = {expect} requires server mode (-server)"));
        }
        if explicit_bootstrap == Some(true) && !config.dev {
            errors.push("bootstrap and bootstrap_expect are mutually exclusive".to_owned());
        }
    }
}

/// Listen and advertise address rules.
fn check_addresses(config: &Config, errors: &mut Vec<String>) {
    if config.advertise_addr.is_some_and(|advertise| advertise.is_unspecified()) {
        errors.push("advertise_addr cannot be 0.0.0.0 or ::; other nodes must be able to reach it".to_owned());
    }
    let interfaces = [
        ("http", &config.addresses.http, config.ports.http),
        ("https", &config.addresses.https, config.ports.https),
        ("dns", &config.addresses.dns, config.ports.dns),
    ];
    for (name, own, port) in interfaces {
        let empty = own.as_ref().map_or(config.client_addrs.is_empty(), |own| own.is_empty());
        if port.is_some() && empty {
            errors.push(format!("ports.{name} is enabled but there is no address to listen on (client_addr)"));
        }
    }
}

/// Two listeners on the same fixed port would fail at bind time; say so before binding anything.
fn check_port_clashes(ports: &Ports, errors: &mut Vec<String>) {
    let named = [
        ("http", ports.http),
        ("https", ports.https),
        ("dns", ports.dns),
        ("serf_lan", ports.serf_lan),
        ("serf_wan", ports.serf_wan),
        ("server", ports.server),
        ("grpc", ports.grpc),
    ];
    for (idx, (name, port)) in named.iter().enumerate() {
        let Some(port) = port.filter(|port| *port != 0) else {
            continue;
        };
        for (other_name, other_port) in &named[idx + 1..] {
            if *other_port == Some(port) {
                errors.push(format!("ports.{name} and ports.{other_name} both use port {port}"));
            }
        }
    }
}
