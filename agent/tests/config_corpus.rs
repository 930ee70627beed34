//! The config corpus: Consul configs shaped like Consul's documentation and tutorials (a server, a client, dev,
//! services and checks, watches, ACLs, TLS, telemetry, a federated server), in HCL and JSON, each loaded alone by the
//! agent's loader. Each either loads, with spot-checked values, or is refused naming exactly the Consul settings
//! roster does not support.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use roster_agent::cli::AgentArgs;
use roster_agent::config::{self, Config, ConfigErrors, EmptyEnv};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config-corpus")
}

fn load(name: &str) -> Result<Config, ConfigErrors> {
    let args = AgentArgs { config_file: vec![corpus().join(name)], ..AgentArgs::default() };
    config::load(&args, &EmptyEnv)
}

fn loads(name: &str) -> Config {
    load(name).unwrap_or_else(|errors| panic!("{name}: {errors}"))
}

/// The keys an error calls unsupported Consul settings; panics on any other error.
fn unsupported_keys(name: &str) -> BTreeSet<String> {
    let Err(ConfigErrors(errors)) = load(name) else { panic!("{name} loaded, expected refusals") };
    let origin = format!("{}: ", corpus().join(name).display());
    errors
        .iter()
        .map(|error| {
            let rest = error.strip_prefix(&origin).unwrap_or_else(|| panic!("{name}: not about the file: {error}"));
            let (key, _) = rest
                .split_once(": roster does not support this Consul setting")
                .unwrap_or_else(|| panic!("{name}: not an unsupported setting: {error}"));
            key.trim_matches('"').to_owned()
        })
        .collect()
}

fn names(services: &[serde_json::Value]) -> Vec<&str> {
    services.iter().filter_map(|service| service["name"].as_str()).collect()
}

#[test]
fn every_corpus_file_has_an_expectation() {
    let mut files: Vec<String> = std::fs::read_dir(corpus())
        .expect("corpus dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let covered = [
        "client.hcl",
        "dev.json",
        "federation.hcl",
        "legacy-acl.json",
        "server.hcl",
        "services.hcl",
        "services.json",
        "telemetry.hcl",
        "tls.hcl",
        "watches.hcl",
    ];
    assert_eq!(files, covered, "a corpus file without a test below, or a test without its file");
}

#[test]
fn a_production_server_loads() {
    let config = loads("server.hcl");
    assert!(config.server);
    assert_eq!(config.bootstrap_expect, Some(3));
    assert_eq!(config.raft_multiplier, 1);
    assert_eq!(config.retry_join, ["10.0.0.10", "10.0.0.11", "10.0.0.12"]);
    assert_eq!((config.ports.grpc, config.ports.http), (None, Some(8500)));
    assert!(config.encrypt.is_some());
    assert_eq!(config.autopilot.server_stabilization_time_ms, 10_000);
}

#[test]
fn a_client_with_acls_dns_and_a_heredoc_check_loads() {
    let config = loads("client.hcl");
    assert!(!config.server);
    assert_eq!(config.node_name, "web-01");
    assert_eq!(config.node_meta.get("rack-id").map(String::as_str), Some("r12"));
    assert!(config.acl.enabled);
    assert_eq!(config.dns.node_ttl, std::time::Duration::from_secs(10));
    assert_eq!(config.dns.service_ttl.get("*"), Some(&std::time::Duration::from_secs(5)));
    assert_eq!(config.recursors.len(), 2);
    assert_eq!(config.checks.len(), 1);
    assert_eq!(config.checks[0]["notes"], "Warns when the root filesystem fills up.\n");
}

#[test]
fn a_dev_config_in_json_loads() {
    let config = loads("dev.json");
    assert_eq!(config.datacenter, "dev");
    assert!(config.enable_local_script_checks && !config.enable_script_checks);
    assert_eq!(config.ports.dns, Some(8600));
}

#[test]
fn service_definitions_load_in_both_formats() {
    let hcl = loads("services.hcl");
    assert_eq!(names(&hcl.services), ["redis", "web", "api", "worker"]);
    assert_eq!(hcl.services[0]["check"]["tcp"], "localhost:6379");
    assert_eq!(hcl.services[1]["checks"].as_array().map(Vec::len), Some(2));
    assert_eq!(hcl.services[1]["weights"]["passing"], 10);
    let json = loads("services.json");
    assert_eq!(names(&json.services), ["billing"]);
    assert_eq!(json.checks.len(), 1);
}

#[test]
fn tls_settings_without_files_load() {
    let config = loads("tls.hcl");
    assert!(!config.tls.https.verify_incoming);
}

#[test]
fn consul_settings_roster_lacks_are_named_exactly() {
    let expect = |keys: &[&str]| keys.iter().map(|key| (*key).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(unsupported_keys("watches.hcl"), expect(&["watches"]));
    assert_eq!(
        unsupported_keys("federation.hcl"),
        expect(&["retry_join_wan", "advertise_addr_wan", "connect", "ports.grpc", "ports.serf_wan"])
    );
    assert_eq!(
        unsupported_keys("legacy-acl.json"),
        expect(&["acl_datacenter", "acl_master_token", "acl_default_policy", "disable_update_check"])
    );
}

#[test]
fn telemetry_as_consul_guides_set_it_up_loads() {
    let config = loads("telemetry.hcl");
    assert_eq!(config.telemetry.prometheus_retention, std::time::Duration::from_secs(60));
    assert_eq!(config.telemetry.hostname, None, "disable_hostname keeps the hostname out of gauge names");
}
