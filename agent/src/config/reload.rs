//! Which settings a running agent can take on reload, and which need a restart.
//!
//! A reload must never accept a changed key and then drop it, so the new config is compared with the running one
//! field by field. The destructuring below is exhaustive on purpose: a field added to [`Config`] does not compile
//! until it is classed here as reloadable or as needing a restart.

use super::{Config, Limits};

/// The keys whose new values `new` asks for but that take effect only after a restart, in Consul's spelling.
/// Empty when everything that changed can be applied to the running agent.
pub fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let Config {
        datacenter,
        node_name,
        node_id,
        node_meta,
        data_dir,
        dev,
        server,
        bootstrap,
        bootstrap_expect,
        bind_addr,
        advertise_addr,
        client_addrs,
        addresses,
        ports,
        start_join,
        retry_join,
        // Reloaded: the DNS threads read the recursors per question.
        recursors: _,
        enable_script_checks,
        enable_local_script_checks,
        watch_docker,
        exec_bridge,
        host_access,
        domain,
        alt_domain,
        // Reloaded: the DNS threads read their settings per query; but whether lookups read stale and whether a
        // client caches them shape the DNS view, which is built once.
        dns,
        raft_multiplier,
        // Reloaded: the log level, the signal behaviour at shutdown and the config files' services and checks.
        log_level: _,
        leave_on_terminate: _,
        skip_leave_on_interrupt: _,
        services: _,
        checks: _,
        config_files: _,
        retry_interval,
        retry_max,
        reconnect_timeout,
        check_update_interval,
        coordinate_sync,
        acl,
        tls,
        limits,
        encrypt,
        encrypt_verify_incoming,
        encrypt_verify_outgoing,
        autopilot,
        ui,
        telemetry,
        logging,
    } = new;
    let mut keys = Vec::new();
    let mut differs = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    differs(*datacenter != old.datacenter, "datacenter");
    differs(*node_name != old.node_name, "node_name");
    differs(*node_id != old.node_id, "node_id");
    differs(*node_meta != old.node_meta, "node_meta");
    differs(*data_dir != old.data_dir, "data_dir");
    differs(*dev != old.dev, "dev");
    differs(*server != old.server, "server");
    differs(*bootstrap != old.bootstrap, "bootstrap");
    differs(*bootstrap_expect != old.bootstrap_expect, "bootstrap_expect");
    differs(*bind_addr != old.bind_addr, "bind_addr");
    differs(*advertise_addr != old.advertise_addr, "advertise_addr");
    differs(*client_addrs != old.client_addrs, "client_addr");
    differs(addresses.http != old.addresses.http, "addresses.http");
    differs(addresses.https != old.addresses.https, "addresses.https");
    differs(addresses.dns != old.addresses.dns, "addresses.dns");
    differs(ports.http != old.ports.http, "ports.http");
    differs(ports.https != old.ports.https, "ports.https");
    differs(ports.dns != old.ports.dns, "ports.dns");
    differs(ports.serf_lan != old.ports.serf_lan, "ports.serf_lan");
    differs(ports.serf_wan != old.ports.serf_wan, "ports.serf_wan");
    differs(ports.server != old.ports.server, "ports.server");
    differs(ports.grpc != old.ports.grpc, "ports.grpc");
    differs(*start_join != old.start_join, "start_join");
    differs(*retry_join != old.retry_join, "retry_join");
    differs(dns.settings.allow_stale != old.dns.settings.allow_stale, "dns_config.allow_stale");
    differs(dns.settings.use_cache != old.dns.settings.use_cache, "dns_config.use_cache");
    differs(*enable_script_checks != old.enable_script_checks, "enable_script_checks");
    differs(*enable_local_script_checks != old.enable_local_script_checks, "enable_local_script_checks");
    differs(*watch_docker != old.watch_docker, "watch_docker");
    differs(*exec_bridge != old.exec_bridge, "exec");
    differs(*host_access != old.host_access, "exec.host_mounts/exec.allow_host_rootfs/docker.host_mounts");
    differs(*domain != old.domain, "domain");
    differs(*alt_domain != old.alt_domain, "alt_domain");
    differs(*raft_multiplier != old.raft_multiplier, "performance.raft_multiplier");
    differs(*retry_interval != old.retry_interval, "retry_interval");
    differs(*retry_max != old.retry_max, "retry_max");
    differs(*reconnect_timeout != old.reconnect_timeout, "reconnect_timeout");
    differs(*check_update_interval != old.check_update_interval, "check_update_interval");
    differs(
        *coordinate_sync != old.coordinate_sync,
        "sync_coordinate_interval_min, sync_coordinate_rate_target or disable_coordinates",
    );
    differs(*acl != old.acl, "acl");
    differs(tls.https != old.tls.https, "tls.https");
    differs(tls.internal_rpc != old.tls.internal_rpc, "tls.internal_rpc");
    let Limits {
        http_max_conns_per_client: _,
        https_handshake_timeout,
        rpc_handshake_timeout,
        rpc_max_conns_per_client,
    } = limits;
    differs(*https_handshake_timeout != old.limits.https_handshake_timeout, "limits.https_handshake_timeout");
    differs(*rpc_handshake_timeout != old.limits.rpc_handshake_timeout, "limits.rpc_handshake_timeout");
    differs(*rpc_max_conns_per_client != old.limits.rpc_max_conns_per_client, "limits.rpc_max_conns_per_client");
    differs(*encrypt != old.encrypt, "encrypt");
    differs(*telemetry != old.telemetry, "telemetry");
    differs(*encrypt_verify_incoming != old.encrypt_verify_incoming, "encrypt_verify_incoming");
    differs(*encrypt_verify_outgoing != old.encrypt_verify_outgoing, "encrypt_verify_outgoing");
    // The block only seeds the replicated configuration when none is stored; a running cluster's is changed through
    // the operator API, so the key names where to go.
    differs(
        *autopilot != old.autopilot,
        "autopilot (it seeds a new cluster only; use `roster operator autopilot set-config`)",
    );
    // The router is built once, with or without the UI's routes and at its path.
    differs(*ui != old.ui, "ui_config");
    // The sinks are built once at start, as in Consul.
    differs(logging.json != old.logging.json, "log_json");
    differs(logging.file != old.logging.file, "log_file/log_rotate_bytes/log_rotate_duration/log_rotate_max_files");
    differs(logging.pid_file != old.logging.pid_file, "pid_file");
    keys
}
