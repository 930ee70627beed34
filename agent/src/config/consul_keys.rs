//! The Consul config keys roster does not implement, each with the reason, so a config written for Consul
//! is refused by name ("roster does not support this Consul setting") rather than as a typo ("unknown key").
//!
//! The list follows Consul's `agent/config/config.go` and `deprecated.go` (every key its decoder takes) and
//! the config reference. Keys other parts of roster read (`ui`, `telemetry`, `log_*`, `pid_file`, the
//! `acl`/`tls`/`limits`/`autopilot` blocks, which refuse their own unsupported keys) are not listed here.

/// Why roster lacks a Consul setting; the message a refusal carries after the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// WAN gossip, WAN federation and mesh gateways between datacenters.
    SingleDatacenter,
    /// Consul Connect, its proxies, certificates and the gRPC/xDS server they use.
    ServiceMesh,
    /// Consul Enterprise and HCP features.
    Enterprise,
    /// Consul's ACL keys from before the `acl` block.
    LegacyAcl,
    /// Settings Consul only uses internally or in its own tests.
    Internal,
    /// Anything else roster does not implement.
    NotImplemented,
}

impl Reason {
    fn text(self) -> &'static str {
        match self {
            Reason::SingleDatacenter => "roster runs a single datacenter, without WAN gossip or federation",
            Reason::ServiceMesh => "roster does not implement Consul's service mesh (Connect, xDS, gRPC)",
            Reason::Enterprise => "a Consul Enterprise or HCP feature",
            Reason::LegacyAcl => "a pre-1.4 ACL key; use the acl block (acl.tokens, acl.default_policy, ...)",
            Reason::Internal => "an internal Consul setting",
            Reason::NotImplemented => "roster does not implement it",
        }
    }
}

/// Consul keys (dotted below the top level) that roster refuses, with the reason.
const UNSUPPORTED: &[(&str, Reason)] = &[
    ("advertise_addr_wan", Reason::SingleDatacenter),
    ("advertise_addr_wan_ipv4", Reason::SingleDatacenter),
    ("advertise_addr_wan_ipv6", Reason::SingleDatacenter),
    ("translate_wan_addrs", Reason::SingleDatacenter),
    ("retry_join_wan", Reason::SingleDatacenter),
    ("retry_interval_wan", Reason::SingleDatacenter),
    ("retry_max_wan", Reason::SingleDatacenter),
    ("start_join_wan", Reason::SingleDatacenter),
    ("reconnect_timeout_wan", Reason::SingleDatacenter),
    ("serf_wan", Reason::SingleDatacenter),
    ("serf_wan_allowed_cidrs", Reason::SingleDatacenter),
    ("gossip_wan", Reason::SingleDatacenter),
    ("primary_gateways", Reason::SingleDatacenter),
    ("primary_gateways_interval", Reason::SingleDatacenter),
    ("connect", Reason::ServiceMesh),
    ("auto_encrypt", Reason::ServiceMesh),
    ("auto_config", Reason::ServiceMesh),
    ("xds", Reason::ServiceMesh),
    ("config_entries", Reason::ServiceMesh),
    ("peering", Reason::ServiceMesh),
    ("addresses.grpc", Reason::ServiceMesh),
    ("addresses.grpc_tls", Reason::ServiceMesh),
    ("ports.proxy_min_port", Reason::ServiceMesh),
    ("ports.proxy_max_port", Reason::ServiceMesh),
    ("ports.sidecar_min_port", Reason::ServiceMesh),
    ("ports.sidecar_max_port", Reason::ServiceMesh),
    ("ports.expose_min_port", Reason::ServiceMesh),
    ("ports.expose_max_port", Reason::ServiceMesh),
    ("performance.grpc_keepalive_interval", Reason::ServiceMesh),
    ("performance.grpc_keepalive_timeout", Reason::ServiceMesh),
    ("audit", Reason::Enterprise),
    ("read_replica", Reason::Enterprise),
    ("non_voting_server", Reason::Enterprise),
    ("segment", Reason::Enterprise),
    ("segments", Reason::Enterprise),
    ("partition", Reason::Enterprise),
    ("license_path", Reason::Enterprise),
    ("reporting", Reason::Enterprise),
    ("cloud", Reason::Enterprise),
    ("dns_config.prefer_namespace", Reason::Enterprise),
    ("acl_agent_master_token", Reason::LegacyAcl),
    ("acl_agent_token", Reason::LegacyAcl),
    ("acl_token", Reason::LegacyAcl),
    ("acl_enable_key_list_policy", Reason::LegacyAcl),
    ("acl_master_token", Reason::LegacyAcl),
    ("acl_replication_token", Reason::LegacyAcl),
    ("enable_acl_replication", Reason::LegacyAcl),
    ("acl_datacenter", Reason::LegacyAcl),
    ("acl_default_policy", Reason::LegacyAcl),
    ("acl_down_policy", Reason::LegacyAcl),
    ("acl_ttl", Reason::LegacyAcl),
    ("ae_interval", Reason::Internal),
    ("check_deregister_interval_min", Reason::Internal),
    ("check_reap_interval", Reason::Internal),
    ("consul", Reason::Internal),
    ("revision", Reason::Internal),
    ("segment_limit", Reason::Internal),
    ("segment_name_limit", Reason::Internal),
    ("version", Reason::Internal),
    ("version_prerelease", Reason::Internal),
    ("version_metadata", Reason::Internal),
    ("build_date", Reason::Internal),
    ("advertise_addr_ipv4", Reason::NotImplemented),
    ("advertise_addr_ipv6", Reason::NotImplemented),
    ("advertise_reconnect_timeout", Reason::NotImplemented),
    ("auto_reload_config", Reason::NotImplemented),
    ("cache", Reason::NotImplemented),
    ("check_output_max_size", Reason::NotImplemented),
    ("default_query_time", Reason::NotImplemented),
    ("max_query_time", Reason::NotImplemented),
    ("disable_anonymous_signature", Reason::NotImplemented),
    ("disable_host_node_id", Reason::NotImplemented),
    ("disable_http_unprintable_char_filter", Reason::NotImplemented),
    ("disable_keyring_file", Reason::NotImplemented),
    ("disable_remote_exec", Reason::NotImplemented),
    ("disable_update_check", Reason::NotImplemented),
    ("discard_check_output", Reason::NotImplemented),
    ("discovery_max_stale", Reason::NotImplemented),
    ("enable_agent_tls_for_checks", Reason::NotImplemented),
    ("enable_central_service_config", Reason::NotImplemented),
    ("enable_debug", Reason::NotImplemented),
    ("enable_syslog", Reason::NotImplemented),
    ("syslog_facility", Reason::NotImplemented),
    ("experiments", Reason::NotImplemented),
    ("gossip_lan", Reason::NotImplemented),
    ("http_config", Reason::NotImplemented),
    ("locality", Reason::NotImplemented),
    ("protocol", Reason::NotImplemented),
    ("raft_protocol", Reason::NotImplemented),
    ("raft_snapshot_threshold", Reason::NotImplemented),
    ("raft_snapshot_interval", Reason::NotImplemented),
    ("raft_trailing_logs", Reason::NotImplemented),
    ("raft_logstore", Reason::NotImplemented),
    ("raft_boltdb", Reason::NotImplemented),
    ("rejoin_after_leave", Reason::NotImplemented),
    ("rpc", Reason::NotImplemented),
    ("serf_lan", Reason::NotImplemented),
    ("serf_lan_allowed_cidrs", Reason::NotImplemented),
    ("server_name", Reason::NotImplemented),
    ("session_ttl_min", Reason::NotImplemented),
    ("snapshot_agent", Reason::NotImplemented),
    ("tagged_addresses", Reason::NotImplemented),
    ("tls_prefer_server_cipher_suites", Reason::NotImplemented),
    ("unix_sockets", Reason::NotImplemented),
    ("use_streaming_backend", Reason::NotImplemented),
    ("watches", Reason::NotImplemented),
    ("performance.leave_drain_time", Reason::NotImplemented),
    ("performance.rpc_hold_timeout", Reason::NotImplemented),
];

/// Why roster refuses the Consul key `key` (dotted), or `None` when Consul has no such key.
pub(super) fn unsupported(key: &str) -> Option<Reason> {
    UNSUPPORTED.iter().find(|(name, _)| *name == key).map(|(_, reason)| *reason)
}

/// The error for a key roster does not read: a Consul setting it lacks, named as such, or an unknown key.
pub(super) fn refusal(origin: &str, key: &str) -> String {
    match unsupported(key) {
        Some(reason) => format!("{origin}: {key:?}: roster does not support this Consul setting ({})", reason.text()),
        None => format!("{origin}: unknown key {key:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_other_parts_of_roster_read_are_not_refused_here() {
        // `ui`/`ui_config`, `telemetry` and the logging keys are implemented elsewhere; a refusal here would
        // shadow them.
        for key in ["ui", "ui_config", "ui_dir", "ui_content_path", "telemetry", "log_json", "log_file", "pid_file"] {
            assert_eq!(unsupported(key), None, "{key}");
        }
        let mut names: Vec<&str> = UNSUPPORTED.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), UNSUPPORTED.len(), "a key is listed twice");
    }

    #[test]
    fn consul_settings_and_typos_read_differently() {
        assert_eq!(
            refusal("a.hcl", "watches"),
            "a.hcl: \"watches\": roster does not support this Consul setting (roster does not implement it)"
        );
        assert_eq!(refusal("a.hcl", "watchs"), "a.hcl: unknown key \"watchs\"");
    }
}
