//! HCL config files, `-config-format`, `-hcl` snippets, and Consul keys roster refuses by name.

use super::*;

#[test]
fn a_config_dir_reads_json_and_hcl_in_lexical_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("consul.d");
    std::fs::create_dir(&dir).expect("mkdir");
    write(&dir, "10-base.hcl", "datacenter = \"east\"\nnode_name = \"from-hcl\"\nports { http = 8600 dns = -1 }");
    write(&dir, "20-node.json", r#"{"node_name": "from-json", "retry_join": ["a"]}"#);
    write(&dir, "30-more.hcl", "retry_join = [\"b\"]\nservice { name = \"web\" port = 80 }\nservice { name = \"db\" }");
    write(&dir, "README.md", "not config");
    let config = load_flags(&["-config-dir", &dir.display().to_string()]).expect("loads");
    assert_eq!(config.datacenter, "east");
    assert_eq!(config.node_name, "from-json", "20-node.json is read after 10-base.hcl");
    assert_eq!(config.ports.http, Some(8600));
    assert_eq!(config.ports.dns, None);
    assert_eq!(config.retry_join, ["a", "b"], "lists concatenate across formats");
    let names: Vec<&str> = config.services.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["web", "db"], "a repeated service block is two services");
    assert_eq!(config.services[0]["port"], 80);
}

#[test]
fn config_format_forces_the_format_of_every_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hcl = write(tmp.path(), "consul.conf", "datacenter = \"west\"");
    let config = load_flags(&["-config-format", "hcl", "-config-file", &hcl]).expect("loads");
    assert_eq!(config.datacenter, "west");
    // HCL v1 reads JSON text too, so a JSON file still loads under `-config-format hcl`.
    let json = write(tmp.path(), "consul.json", r#"{"datacenter": "north"}"#);
    assert_eq!(load_flags(&["-config-format", "hcl", "-config-file", &json]).expect("loads").datacenter, "north");
    check_errors(load_flags(&["-config-format", "json", "-config-file", &hcl]), &["consul.conf: invalid JSON"]);
    check_errors(
        load_flags(&["-config-format", "yaml", "-config-file", &hcl]),
        &["-config-format: \"yaml\" is not a config format; use json or hcl"],
    );
}

#[test]
fn hcl_snippets_come_after_files_and_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(tmp.path(), "a.json", r#"{"datacenter": "file", "node_name": "file-node"}"#);
    let config = load_flags(&[
        "-config-file",
        &file,
        "-node",
        "flag-node",
        "-hcl",
        "node_name = \"snippet-node\"",
        "-hcl",
        "node_meta { rack = \"r1\" }",
    ])
    .expect("loads");
    assert_eq!(config.datacenter, "file");
    assert_eq!(config.node_name, "snippet-node", "a -hcl snippet beats the flags, as in Consul");
    assert_eq!(config.node_meta.get("rack").map(String::as_str), Some("r1"));
    check_errors(load_flags(&["-hcl", "bogus = 1"]), &["-hcl #1: unknown key \"bogus\""]);
    check_errors(load_flags(&["-hcl", "ok = \"x\"", "-hcl", "ports {"]), &["-hcl #2: line 1, column 1:"]);
}

#[test]
fn consul_settings_roster_lacks_are_named_apart_from_typos() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "consul.hcl",
        "watches = [{ type = \"key\", key = \"k\", args = [\"h\"] }]\nrejoin_after_leave = true\nperformance { leave_drain_time = \"5s\" }\nretry_jion = [\"x\"]",
    );
    let errors = check_errors(
        load_flags(&["-config-file", &file]),
        &[
            "consul.hcl: \"watches\": roster does not support this Consul setting",
            "consul.hcl: \"rejoin_after_leave\": roster does not support this Consul setting",
            "consul.hcl: \"performance.leave_drain_time\": roster does not support this Consul setting",
            "consul.hcl: unknown key \"retry_jion\"",
        ],
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn grpc_and_wan_ports_are_accepted_only_disabled() {
    let config = load_flags(&["-hcl", "ports { grpc = -1, grpc_tls = -1, serf_wan = -1 }"]).expect("loads");
    assert_eq!((config.ports.grpc, config.ports.serf_wan), (None, None));
    let errors = check_errors(
        load_flags(&["-hcl", "ports { grpc = 8502 }", "-serf-wan-port", "8302"]),
        &[
            "ports.grpc: roster does not support this Consul setting (roster has no gRPC server)",
            "command line: ports.serf_wan: roster does not support this Consul setting",
        ],
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn raft_multiplier_zero_means_the_default() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = write(tmp.path(), "a.hcl", "performance { raft_multiplier = 3 }");
    assert_eq!(load_flags(&["-config-file", &first]).expect("loads").raft_multiplier, 3);
    let second = write(tmp.path(), "b.hcl", "performance { raft_multiplier = 0 }");
    let config = load_flags(&["-config-file", &first, "-config-file", &second]).expect("loads");
    assert_eq!(config.raft_multiplier, 5, "a later 0 puts back Consul's default");
}
