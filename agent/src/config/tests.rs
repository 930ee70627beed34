//! Tests of config layering, validation and Go durations, driven through the real CLI parser.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::cli::{self, Command};

/// Parses `roster agent <flags>` into `AgentArgs`.
fn agent_args(flags: &[&str]) -> AgentArgs {
    let argv = ["roster", "agent"].iter().chain(flags);
    match cli::parse(argv.copied()) {
        Ok(cli::Cli { command: Command::Agent(args) }) => args,
        other => panic!("not an agent command line: {other:?}"),
    }
}

/// Loads a config from flags with no environment.
fn load_flags(flags: &[&str]) -> Result<Config, ConfigErrors> {
    load(&agent_args(flags), &EmptyEnv)
}

/// Writes `text` to `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test config");
    path.display().to_string()
}

/// Asserts that loading fails and every `needle` appears in some error message.
fn check_errors(res: Result<Config, ConfigErrors>, needles: &[&str]) -> Vec<String> {
    let errors = match res {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(ConfigErrors(errors)) => errors,
    };
    for needle in needles {
        assert!(errors.iter().any(|error| error.contains(needle)), "no error mentions {needle:?}: {errors:#?}");
    }
    errors
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test IP")
}

#[test]
fn client_mode_defaults_match_consul() {
    let config = load_flags(&[]).expect("defaults are valid");
    assert_eq!(config.datacenter, "dc1");
    assert_eq!(config.domain, "consul");
    assert_eq!(config.node_name, hostname());
    assert!(!config.server && !config.dev && !config.bootstrap);
    assert_eq!(config.bind_addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(config.client_addrs, vec![ip("127.0.0.1")]);
    assert_eq!(
        config.ports,
        Ports {
            http: Some(8500),
            https: None,
            dns: Some(8600),
            serf_lan: Some(8301),
            serf_wan: None,
            server: Some(8300),
            grpc: None,
        }
    );
    assert_eq!(config.http_addrs(), vec![SocketAddr::from(([127, 0, 0, 1], 8500))]);
    assert_eq!(config.dns_addrs(), vec![SocketAddr::from(([127, 0, 0, 1], 8600))]);
    assert_eq!(config.rpc_addr(), Some(SocketAddr::from(([0, 0, 0, 0], 8300))));
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.raft_multiplier, 5);
    assert!(config.leave_on_terminate, "clients leave on terminate");
    assert_eq!(config.dns.udp_answer_limit, 3);
    assert_eq!(config.dns.node_ttl, Duration::ZERO);
    assert!(config.data_dir.is_none());
}

#[test]
fn dev_is_an_in_memory_bootstrapped_server_on_loopback() {
    let config = load_flags(&["-dev", "-data-dir", "/ignored"]).expect("dev is valid");
    assert!(config.dev && config.server && config.bootstrap);
    assert_eq!(config.data_dir, None);
    assert_eq!(config.bind_addr, ip("127.0.0.1"));
    assert_eq!(config.client_addrs, vec![ip("127.0.0.1")]);
    assert_eq!(config.rpc_addr(), Some(SocketAddr::from(([127, 0, 0, 1], 8300))));
    assert_eq!(config.raft_multiplier, 1);
    assert!(!config.leave_on_terminate, "servers stay on terminate");
    assert_eq!(config.node_name, hostname());
}

#[test]
fn seed_workflow_command_lines_are_valid() {
    let server = load_flags(&[
        "-server",
        "-bootstrap-expect",
        "1",
        "-bind",
        "10.0.0.5",
        "-client",
        "10.0.0.5",
        "-recursor",
        "8.8.8.8",
        "-data-dir",
        "/tmp/roster",
    ])
    .expect("seed server line is valid");
    assert!(server.server && server.bootstrap);
    assert_eq!(server.bootstrap_expect, Some(1));
    assert_eq!(server.recursors, vec![SocketAddr::from(([8, 8, 8, 8], 53))]);
    assert_eq!(server.data_dir, Some(PathBuf::from("/tmp/roster")));
    assert_eq!(server.http_addrs(), vec![SocketAddr::from(([10, 0, 0, 5], 8500))]);

    let client = load_flags(&["-bind", "10.0.0.6", "-join", "10.0.0.5"]).expect("client line");
    assert!(!client.server);
    assert_eq!(client.start_join, vec!["10.0.0.5".to_owned()]);
}

#[test]
fn later_layers_win_defaults_file_dir_env_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "file.json",
        r#"{"datacenter":"from-file","domain":"file.test","log_level":"warn","node_name":"file-node","retry_join":["a"]}"#,
    );
    let conf_dir = tmp.path().join("conf.d");
    std::fs::create_dir(&conf_dir).expect("mkdir");
    // Lexical order: 10-*.json is read before 20-*.json, so 20 wins.
    write(&conf_dir, "20-late.json", r#"{"domain":"dir.test","node_name":"dir-node-late"}"#);
    write(&conf_dir, "10-early.json", r#"{"datacenter":"from-dir","node_name":"dir-node-early","retry_join":["b"]}"#);
    write(&conf_dir, "notes.txt", "not config");
    let conf_dir = conf_dir.display().to_string();
    let args = agent_args(&["-config-dir", &conf_dir, "-config-file", &file, "-node", "flag-node", "-retry-join", "c"]);
    let env = [("ROSTER_DATACENTER", "from-env"), ("ROSTER_NODE_NAME", "env-node")];
    let config = load(&args, &env).expect("valid layers");
    assert_eq!(config.log_level, LogLevel::Warn, "file beats default");
    assert_eq!(config.domain, "dir.test", "dir beats file, later dir file wins");
    assert_eq!(config.datacenter, "from-env", "env beats dir");
    assert_eq!(config.node_name, "flag-node", "flags beat env");
    assert_eq!(config.retry_join, ["a", "b", "c"], "lists accumulate");
    assert_eq!(config.config_files.len(), 3);
}

#[test]
fn later_config_file_flag_wins_over_earlier() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = write(tmp.path(), "1.json", r#"{"ports":{"http":1111,"dns":2222}}"#);
    let second = write(tmp.path(), "2.json", r#"{"ports":{"http":0}}"#);
    let config = load_flags(&["-config-file", &first, "-config-file", &second, "-dns-port", "-1"]).expect("valid");
    assert_eq!(config.ports.http, Some(0), "0 means an OS-chosen port");
    assert_eq!(config.ports.dns, None, "-1 disables");
    assert!(config.dns_addrs().is_empty());
}

#[test]
fn unknown_keys_are_named_with_their_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(tmp.path(), "typo.json", r#"{"datacentre":"dc2","ports":{"htp":1},"dns_config":{"ttl":"1s"}}"#);
    let errors = check_errors(load_flags(&["-config-file", &file]), &["\"datacentre\"", "ports.htp", "dns_config.ttl"]);
    assert!(errors.iter().all(|error| error.contains(&file) && error.contains("unknown key")), "{errors:#?}");
}

#[test]
fn every_invalid_value_is_reported_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "bad.json",
        r#"{
            "ports": {"http": 70000, "dns": -2},
            "dns_config": {"node_ttl": "10 parsecs", "max_stale": -5, "service_ttl": {"*": "1y"}},
            "bootstrap_expect": -1,
            "bind_addr": "not-an-ip",
            "log_level": "loud",
            "performance": {"raft_multiplier": 11},
            "server": "yes",
            "datacenter": "DC 1"
        }"#,
    );
    let errors = check_errors(
        load_flags(&["-config-file", &file, "-http-port", "99999", "-node-id", "nope"]),
        &[
            "ports.http: 70000",
            "ports.dns: -2",
            "dns_config.node_ttl",
            "dns_config.max_stale",
            "dns_config.service_ttl.*",
            "bootstrap_expect: -1 is negative",
            "bind_addr",
            "log_level",
            "performance.raft_multiplier",
            "server: expected true or false",
            "datacenter",
            "command line: ports.http: 99999",
            "command line: node_id",
        ],
    );
    assert_eq!(errors.len(), 13, "{errors:#?}");
}

#[test]
fn every_dns_config_key_consul_has_is_read_with_consuls_defaults() {
    let defaults = load_flags(&["-dev"]).expect("valid").dns.settings;
    let soa = roster_dns::Soa { refresh: 3600, retry: 600, expire: 86_400, min_ttl: 0 };
    assert_eq!((defaults.allow_stale, defaults.a_record_limit, defaults.soa), (true, 0, soa));
    assert_eq!(defaults.recursor_strategy, roster_dns::RecursorStrategy::Sequential);
    assert_eq!(defaults.recursor_timeout, Duration::from_secs(2));
    assert!(defaults.node_meta_txt && !defaults.disable_compression && defaults.use_cache);
    assert_eq!(defaults.cache_max_age, Duration::ZERO);

    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "dns.json",
        r#"{"dns_config": {
            "allow_stale": false, "a_record_limit": 4, "soa": {"expire": 1, "min_ttl": 2, "refresh": 3, "retry": 4},
            "recursor_strategy": "random", "recursor_timeout": "750ms", "use_cache": false, "cache_max_age": "10s",
            "enable_additional_node_meta_txt": false, "disable_compression": true
        }}"#,
    );
    // A later layer overrides one SOA timer and keeps the others.
    let later = write(tmp.path(), "later.json", r#"{"dns_config": {"soa": {"retry": 40}}}"#);
    let settings = load_flags(&["-dev", "-config-file", &file, "-config-file", &later]).expect("valid").dns.settings;
    let soa = roster_dns::Soa { refresh: 3, retry: 40, expire: 1, min_ttl: 2 };
    assert_eq!((settings.allow_stale, settings.a_record_limit, settings.soa), (false, 4, soa));
    assert_eq!(settings.recursor_strategy, roster_dns::RecursorStrategy::Random);
    assert_eq!(
        (settings.recursor_timeout, settings.cache_max_age),
        (Duration::from_millis(750), Duration::from_secs(10))
    );
    assert!(!settings.use_cache && !settings.node_meta_txt && settings.disable_compression);
    let dns = crate::run::dns_config(&load_flags(&["-dev", "-config-file", &file]).expect("valid"));
    assert_eq!((dns.a_record_limit, dns.recursor_timeout, dns.soa.refresh), (4, Duration::from_millis(750), 3));
    assert!(!dns.node_meta_txt && dns.disable_compression);
}

#[test]
fn bad_dns_config_values_are_refused_by_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "dns.json",
        r#"{"dns_config": {
            "a_record_limit": -1, "soa": {"refresh": 1, "ttl": 5}, "recursor_strategy": "fastest",
            "recursor_timeout": "0s", "use_cache": "yes", "cache_max_age": "soon"
        }}"#,
    );
    let errors = check_errors(
        load_flags(&["-config-file", &file]),
        &[
            "dns_config.a_record_limit: cannot be -1",
            "dns_config.soa: unknown key \"ttl\"",
            "dns_config.recursor_strategy: invalid strategy",
            "dns_config.recursor_timeout: must be greater than zero",
            "dns_config.use_cache: expected true or false",
            "dns_config.cache_max_age",
        ],
    );
    assert_eq!(errors.len(), 6, "{errors:#?}");
}

#[test]
fn invalid_json_and_missing_files_are_reported_together() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broken = write(tmp.path(), "broken.json", r#"{"datacenter": "#);
    let missing = tmp.path().join("missing.json").display().to_string();
    let hcl = write(tmp.path(), "broken.hcl", "datacenter = \"dc1\"\nports {\n  http = \n}");
    let conf = write(tmp.path(), "roster.conf", "{}");
    check_errors(
        load_flags(&["-config-file", &broken, "-config-file", &missing, "-config-file", &hcl, "-config-file", &conf]),
        &[
            "broken.json: invalid JSON",
            "cannot read config file",
            "broken.hcl: line 4, column 1: expected a value, got '}'",
            "roster.conf: a config file's name must end in .json or .hcl",
        ],
    );
}

#[test]
fn server_rules_are_checked_together() {
    check_errors(
        load_flags(&["-server", "-bootstrap", "-bootstrap-expect", "3"]),
        &["needs a data directory", "mutually exclusive"],
    );
    check_errors(load_flags(&["-bootstrap-expect", "2"]), &["requires server mode"]);
    check_errors(load_flags(&["-dev", "-bootstrap-expect", "1"]), &["not allowed with -dev"]);
    check_errors(load_flags(&["-bootstrap"]), &["bootstrap requires server mode"]);
    check_errors(load_flags(&["-advertise", "0.0.0.0"]), &["advertise_addr"]);
    check_errors(load_flags(&["-http-port", "8600"]), &["ports.http and ports.dns both use port 8600"]);
    let config =
        load_flags(&["-server", "-data-dir", "/d", "-bootstrap-expect", "3"]).expect("three-server bootstrap is valid");
    assert!(!config.bootstrap);
    assert_eq!(config.bootstrap_expect, Some(3));
}

#[test]
fn server_flag_can_be_switched_off_go_style() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(tmp.path(), "s.json", r#"{"server":true,"data_dir":"/d"}"#);
    let config = load_flags(&["-config-file", &file, "-server=false"]).expect("valid");
    assert!(!config.server);
}

#[test]
fn services_checks_and_acl_accumulate_across_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = write(
        tmp.path(),
        "a.json",
        r#"{"service":{"name":"a"},"checks":[{"id":"c1","ttl":"10s"}],"acl":{"enabled":true,"tokens":{"agent":"x"}}}"#,
    );
    let second = write(
        tmp.path(),
        "b.json",
        r#"{"services":[{"name":"b"},{"name":"c"}],"check":{"id":"c2","ttl":"5s"},"acl":{"tokens":{"default":"y"}},"ui":true}"#,
    );
    let config = load_flags(&["-config-file", &first, "-config-file", &second]).expect("valid");
    let names: Vec<&str> = config.services.iter().filter_map(|service| service["name"].as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(config.checks.len(), 2);
    assert!(config.acl.enabled);
    assert_eq!(config.acl.tokens.agent.as_deref(), Some("x"));
    assert_eq!(config.acl.tokens.default.as_deref(), Some("y"));
}

#[test]
fn the_acl_block_is_typed_and_every_unsupported_key_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = write(
        tmp.path(),
        "acl.json",
        r#"{"primary_datacenter":"dc1","acl":{"enabled":true,"default_policy":"deny","down_policy":"async-cache",
            "enable_token_persistence":true,"token_ttl":"45s","tokens":{"master":"m","agent_master":"r","dns":"d"}}}"#,
    );
    let config = load_flags(&["-config-file", &good]).expect("valid");
    assert_eq!(config.acl.default_policy, crate::config::DefaultPolicy::Deny);
    assert_eq!(config.acl.down_policy, crate::config::DownPolicy::AsyncCache);
    assert_eq!(config.acl.token_ttl, std::time::Duration::from_secs(45));
    assert_eq!(config.acl.tokens.initial_management.as_deref(), Some("m"), "the legacy name is an alias");
    assert_eq!(config.acl.tokens.agent_recovery.as_deref(), Some("r"));
    let bad = write(
        tmp.path(),
        "bad.json",
        r#"{"primary_datacenter":"dc2","acl":{"enabled":"yes","default_policy":"denny","bogus":1,
            "tokens":{"agnet":"s3cret"},"token_ttl":"0s"}}"#,
    );
    let err = load_flags(&["-config-file", &bad]).expect_err("invalid").to_string();
    for needle in [
        "acl.enabled: expected true or false",
        "acl.default_policy: expected \"allow\" or \"deny\"",
        "acl.bogus: unknown key",
        "acl.tokens.agnet: unknown token",
        "acl.token_ttl: must be more than 0",
        "primary_datacenter: \"dc2\" is not this agent's datacenter",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from {err}");
    }
    assert!(!err.contains("s3cret"), "a token's value never appears in an error");
}

#[test]
fn addresses_override_client_addr_per_interface() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "a.json",
        r#"{"client_addr":"127.0.0.1 ::1","addresses":{"dns":"172.17.0.1"},"ports":{"dns":53}}"#,
    );
    let config = load_flags(&["-config-file", &file]).expect("valid");
    assert_eq!(config.http_addrs().len(), 2);
    assert_eq!(config.dns_addrs(), vec![SocketAddr::from(([172, 17, 0, 1], 53))]);
}

#[test]
fn addresses_may_carry_their_own_port() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(tmp.path(), "a.json", r#"{"addresses":{"dns":"127.0.0.1 172.18.0.1:53 [::1]:5353"}}"#);
    let config = load_flags(&["-config-file", &file]).expect("valid");
    let want: Vec<SocketAddr> = vec![
        SocketAddr::from(([127, 0, 0, 1], 8600)),
        SocketAddr::from(([172, 18, 0, 1], 53)),
        "[::1]:5353".parse().expect("addr"),
    ];
    assert_eq!(config.dns_addrs(), want);

    let off = write(tmp.path(), "b.json", r#"{"addresses":{"dns":"172.18.0.1:53"},"ports":{"dns":-1}}"#);
    let config = load_flags(&["-config-file", &off]).expect("valid");
    assert!(config.dns_addrs().is_empty(), "ports.dns = -1 turns DNS off everywhere");

    let bad = write(tmp.path(), "c.json", r#"{"addresses":{"dns":"172.18.0.1:99999"}}"#);
    let error = load_flags(&["-config-file", &bad]).expect_err("port out of range").to_string();
    assert!(error.contains("is not an IP address or IP:port"), "{error}");
}

#[test]
fn node_meta_and_domains_are_normalised() {
    let config = load_flags(&[
        "-node-meta",
        "rack:r1",
        "-node-meta",
        "zone:a:b",
        "-domain",
        "Example.COM.",
        "-alt-domain",
        "alt.",
        "-datacenter",
        "EU-West",
    ])
    .expect("valid");
    assert_eq!(config.node_meta["rack"], "r1");
    assert_eq!(config.node_meta["zone"], "a:b");
    assert_eq!(config.domain, "example.com");
    assert_eq!(config.alt_domain.as_deref(), Some("alt"));
    assert_eq!(config.datacenter, "eu-west");
    check_errors(load_flags(&["-node-meta", "novalue"]), &["-node-meta"]);
}

#[test]
fn shipped_examples_parse() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dev = examples.join("dev.json").display().to_string();
    let server = examples.join("server.json").display().to_string();

    let config = load_flags(&["-dev", "-config-file", &dev]).expect("examples/dev.json");
    assert_eq!(config.node_name, "dev-1");
    assert_eq!(config.services.len(), 1);
    assert_eq!(
        config.dns.service_ttl.get("web"),
        Some(&Duration::from_secs(30)),
        "matching patterns is roster-dns's job"
    );

    let config = load_flags(&["-config-file", &server]).expect("examples/server.json");
    assert!(config.server);
    assert_eq!(config.bootstrap_expect, Some(3));
    assert_eq!(config.retry_join.len(), 2);
    assert_eq!(config.http_addrs().len(), 2);

    let acl = examples.join("acl.json").display().to_string();
    let config = load_flags(&["-config-file", &server, "-config-file", &acl]).expect("examples/acl.json");
    assert!(config.acl.enabled, "a later file turns ACLs on over server.json's off");
    assert_eq!(config.acl.default_policy, crate::config::DefaultPolicy::Deny);
    assert!(config.acl.tokens.agent.is_some() && config.acl.enable_token_persistence);
}

#[test]
fn errors_display_one_per_line() {
    let errors = ConfigErrors(vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(errors.to_string(), "invalid configuration (2 errors):\n  * a\n  * b");
    let one = ConfigErrors(vec!["a".to_owned()]);
    assert_eq!(one.to_string(), "invalid configuration: a");
}

/// Checks `parse_go_duration(input)` against `expect` (`Err` text is matched by substring).
fn check_duration(input: &str, expect: Result<Duration, &str>) {
    match (parse_go_duration(input), expect) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{input:?}"),
        (Err(got), Err(want)) => assert!(got.contains(want), "{input:?}: {got}"),
        (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn go_durations_parse_like_time_parse_duration() {
    let ms = Duration::from_millis;
    check_duration("10s", Ok(Duration::from_secs(10)));
    check_duration("1m30s", Ok(Duration::from_secs(90)));
    check_duration("100ms", Ok(ms(100)));
    check_duration("0s", Ok(Duration::ZERO));
    check_duration("0", Ok(Duration::ZERO));
    check_duration("1.5h", Ok(Duration::from_secs(5400)));
    check_duration("2h45m0.5s", Ok(ms(9_900_500)));
    check_duration("+3ns", Ok(Duration::from_nanos(3)));
    check_duration("1us", Ok(Duration::from_micros(1)));
    check_duration("1µs", Ok(Duration::from_micros(1)));
    check_duration(".5s", Ok(ms(500)));
    check_duration("87600h", Ok(Duration::from_secs(87_600 * 3600)));
    check_duration("", Err("empty"));
    check_duration("10", Err("missing unit"));
    check_duration("-1s", Err("negative"));
    check_duration("1d", Err("unknown unit"));
    check_duration("s", Err("expected a number"));
    check_duration("1.2.3s", Err("expected a number"));
    check_duration("10 s", Err("unknown unit"));
    // Go does not trim, and neither do the servers: the agent refuses exactly what they refuse.
    check_duration("15s ", Err("unknown unit"));
    check_duration(" 15s", Err("expected a number"));
    check_duration("9999999999h", Err("too large"));
}

#[test]
fn json_durations_take_strings_or_nanoseconds() {
    use serde_json::json;
    assert_eq!(duration_from_json(&json!("5s")), Ok(Duration::from_secs(5)));
    assert_eq!(duration_from_json(&json!(1_500_000_000u64)), Ok(Duration::from_millis(1500)));
    assert!(duration_from_json(&json!(-1)).is_err());
    assert!(duration_from_json(&json!(true)).is_err());
}

#[test]
fn go_durations_format_like_duration_string() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_nanos(1), "1ns"),
        (Duration::from_nanos(1_500), "1.5µs"),
        (Duration::from_micros(1_500), "1.5ms"),
        (Duration::from_millis(100), "100ms"),
        (Duration::from_secs(10), "10s"),
        (Duration::from_millis(10_250), "10.25s"),
        (Duration::from_secs(90), "1m30s"),
        (Duration::from_secs(3600), "1h0m0s"),
        (Duration::from_secs(9_000), "2h30m0s"),
    ];
    for (duration, text) in cases {
        assert_eq!(format_go_duration(duration), text);
        assert_eq!(parse_go_duration(text), Ok(duration), "round trip {text}");
    }
}

#[test]
fn join_retry_and_leave_settings_follow_consul() {
    let client = load_flags(&["-retry-join", "10.0.0.1", "-retry-interval", "5s", "-retry-max", "3"]).expect("valid");
    assert_eq!(client.retry_join, vec!["10.0.0.1".to_owned()]);
    assert_eq!(client.retry_interval, Duration::from_secs(5));
    assert_eq!(client.retry_max, 3);
    assert_eq!(client.reconnect_timeout, Duration::from_secs(72 * 3600));
    assert_eq!(client.check_update_interval, Duration::from_secs(300), "Consul's default");
    assert!(!client.skip_leave_on_interrupt, "clients leave on Ctrl-C");
    let server = load_flags(&["-server", "-data-dir", "data"]).expect("valid");
    assert!(server.skip_leave_on_interrupt, "servers stay in the quorum on Ctrl-C");
    assert_eq!(server.retry_interval, Duration::from_secs(30));

    let errs = check_errors(load_flags(&["-retry-interval", "0s"]), &["retry_interval", "greater than zero"]);
    assert_eq!(errs.len(), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "a.json", r#"{"reconnect_timeout": "1h"}"#);
    check_errors(load_flags(&["-config-file", &file]), &["reconnect_timeout", "at least 8h"]);
    check_errors(load_flags(&["-serf-lan-port", "-1"]), &["serf_lan cannot be disabled"]);
}

#[test]
fn exec_bridge_defaults_and_overrides_are_checked() {
    let config = load_flags(&[]).expect("defaults are valid");
    assert_eq!(config.exec_bridge, roster_runtime_shim::BridgeConfig::default());
    assert_eq!((config.exec_bridge.name.as_str(), config.exec_bridge.prefix_len), ("roster0", 24));

    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(tmp.path(), "exec.json", r#"{"exec":{"bridge":"tasks1","bridge_cidr":"172.30.8.1/22"}}"#);
    let config = load_flags(&["-config-file", &file]).expect("valid");
    assert_eq!(config.exec_bridge.name, "tasks1");
    assert_eq!((config.exec_bridge.address, config.exec_bridge.prefix_len), (Ipv4Addr::new(172, 30, 8, 1), 22));

    for (value, needle) in [
        (r#"{"exec":{"bridge":"a-name-longer-than-15"}}"#, "1 to 15 bytes"),
        (r#"{"exec":{"bridge":"br/0"}}"#, "not a valid network device name"),
        (r#"{"exec":{"bridge_cidr":"10.89.0.1"}}"#, "prefix length, like"),
        (r#"{"exec":{"bridge_cidr":"10.89.0.1/31"}}"#, "must be 8 to 30"),
        (r#"{"exec":{"bridge_cidr":"10.89.0.0/24"}}"#, "not the subnet's network or broadcast"),
        (r#"{"exec":{"bridge_cidr":"10.89.0.255/24"}}"#, "not the subnet's network or broadcast"),
        (r#"{"exec":{"bridg":"x"}}"#, "exec.bridg"),
    ] {
        let file = write(tmp.path(), "bad.json", value);
        check_errors(load_flags(&["-config-file", &file]), &[needle]);
    }
}

#[test]
fn host_access_is_closed_by_default_open_under_dev_and_narrowed_by_config() {
    use roster_runtime_shim::{HostAccess, HostPaths};
    let closed = load_flags(&[]).expect("defaults are valid");
    assert_eq!(closed.host_access, HostAccess::default());
    assert_eq!(closed.host_access.exec_mounts, HostPaths::Under(vec![]));
    let dev = load_flags(&["-dev"]).expect("dev is valid");
    assert_eq!(dev.host_access, HostAccess::unrestricted());

    let tmp = tempfile::tempdir().expect("tempdir");
    let first = write(
        tmp.path(),
        "a.json",
        r#"{"exec":{"allow_host_rootfs":true,"host_mounts":["/srv/exec"]},"docker":{"host_mounts":["/srv/data"]}}"#,
    );
    let second = write(
        tmp.path(),
        "b.json",
        r#"{"exec":{"host_mounts":["/srv/more"]},"docker":{"host_mounts":["/var/lib/files/"]}}"#,
    );
    let config = load_flags(&["-config-file", &first, "-config-file", &second]).expect("valid");
    let exec_lists = vec![PathBuf::from("/srv/exec"), PathBuf::from("/srv/more")];
    let docker_lists = vec![PathBuf::from("/srv/data"), PathBuf::from("/var/lib/files/")];
    let expected = HostAccess {
        allow_host_rootfs: true,
        exec_mounts: HostPaths::Under(exec_lists),
        docker_mounts: HostPaths::Under(docker_lists),
    };
    assert_eq!(config.host_access, expected);

    // Under -dev, a config file that names the keys still narrows them, each on its own.
    let exec_only = write(tmp.path(), "d.json", r#"{"exec":{"host_mounts":["/srv/exec"]}}"#);
    let config = load_flags(&["-dev", "-config-file", &exec_only]).expect("valid");
    let expected = HostAccess {
        allow_host_rootfs: true,
        exec_mounts: HostPaths::Under(vec![PathBuf::from("/srv/exec")]),
        docker_mounts: HostPaths::Any,
    };
    assert_eq!(config.host_access, expected);
    let narrow = write(
        tmp.path(),
        "c.json",
        r#"{"exec":{"allow_host_rootfs":false,"host_mounts":[]},"docker":{"host_mounts":[]}}"#,
    );
    let config = load_flags(&["-dev", "-config-file", &narrow]).expect("valid");
    assert_eq!(config.host_access, HostAccess::default());
}

#[test]
fn host_access_values_are_checked_and_unknown_keys_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (value, needle) in [
        (r#"{"exec":{"allow_host_rootfs":"yes"}}"#, "exec.allow_host_rootfs: expected true or false"),
        (r#"{"docker":{"host_mounts":["srv/data"]}}"#, r#"docker.host_mounts: "srv/data" is not an absolute path"#),
        (r#"{"docker":{"host_mounts":["/srv/../etc"]}}"#, r#"docker.host_mounts: "/srv/../etc" contains "..""#),
        (r#"{"docker":{"host_mounts":"/srv/data"}}"#, "docker.host_mounts: expected a list of absolute paths"),
        (r#"{"exec":{"host_mounts":["srv/data"]}}"#, r#"exec.host_mounts: "srv/data" is not an absolute path"#),
        (r#"{"exec":{"host_mounts":["/srv/../etc"]}}"#, r#"exec.host_mounts: "/srv/../etc" contains "..""#),
        (r#"{"exec":{"host_mounts":"/srv/data"}}"#, "exec.host_mounts: expected a list of absolute paths"),
        (r#"{"docker":{"host_mount":["/srv"]}}"#, r#"unknown key "docker.host_mount""#),
        (r#"{"docker":true}"#, "docker: expected an object"),
    ] {
        let file = write(tmp.path(), "bad.json", value);
        check_errors(load_flags(&["-config-file", &file]), &[needle]);
    }
}

#[test]
fn each_tls_listener_falls_back_key_by_key_to_defaults_then_the_legacy_keys() {
    let tls = serde_json::json!({
        "defaults": {"ca_file": "/d/ca.pem", "verify_outgoing": true, "tls_min_version": "TLSv1_3"},
        "https": {"cert_file": "/h/cert.pem", "key_file": "/h/key.pem"},
        "internal_rpc": {"verify_server_hostname": true, "ca_file": "/r/ca.pem"},
    });
    let legacy = serde_json::json!({
        "ca_file": "/legacy/ca.pem", "ca_path": "/legacy/cas", "verify_incoming_https": true,
        "verify_incoming_rpc": false, "verify_incoming": true, "cert_file": "/legacy/cert.pem",
        "tls_cipher_suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    });
    let mut errors = Vec::new();
    let config = super::tls::tls_config(Some(&tls), legacy.as_object().expect("object"), &mut errors);
    assert_eq!(errors, Vec::<String>::new());
    let https = &config.https;
    assert_eq!(https.ca_file.as_deref(), Some(Path::new("/d/ca.pem")), "defaults beat the legacy key");
    assert_eq!(https.ca_path.as_deref(), Some(Path::new("/legacy/cas")), "the legacy key fills what nothing set");
    assert_eq!(https.cert_file.as_deref(), Some(Path::new("/h/cert.pem")), "the listener's own key wins");
    assert!(https.verify_incoming, "verify_incoming_https applies to HTTPS");
    assert!(https.verify_outgoing);
    assert_eq!(https.min_version, roster_tls::TlsVersion::Tls13);
    assert_eq!(https.cipher_suites.len(), 1);
    let rpc = &config.internal_rpc;
    assert_eq!(rpc.ca_file.as_deref(), Some(Path::new("/r/ca.pem")));
    assert_eq!(rpc.cert_file.as_deref(), Some(Path::new("/legacy/cert.pem")));
    assert!(!rpc.verify_incoming, "verify_incoming_rpc applies to RPC and beats the general legacy key");
    assert!(rpc.verify_server_hostname);

    let legacy_only = serde_json::json!({"verify_server_hostname": true, "verify_outgoing": true});
    let config = super::tls::tls_config(None, legacy_only.as_object().expect("object"), &mut errors);
    assert!(config.internal_rpc.verify_server_hostname && config.internal_rpc.verify_outgoing);
    assert!(!config.https.verify_server_hostname, "server names are the RPC client's business");
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn tls_and_limits_keys_roster_does_not_implement_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = write(
        tmp.path(),
        "tls.json",
        r#"{"tls":{"grpc":{"use_auto_cert":true},"https":{"verify_server_hostname":true,"use_auto_cert":false,"verify_outgoing":true,
            "tls_cipher_suites":"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},"defaults":{"tls_min_version":"TLSv1_0",
            "ecdh_curves":"X25519"}},"limits":{"rpc_rate":10,"http_max_conns_per_client":-1,"bogus":1},
            "ca_file":"/nowhere/ca.pem","ports":{"https":0}}"#,
    );
    check_errors(
        load_flags(&["-config-file", &bad]),
        &[
            "tls.grpc: roster has no gRPC port",
            "tls.https.verify_server_hostname: only tls.internal_rpc has this key",
            "tls.https.use_auto_cert: roster does not implement auto_encrypt/auto_config certificates",
            "tls.https.verify_outgoing: roster's HTTPS API makes no outgoing connections",
            "tls.https.tls_cipher_suites: cipher suite \"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\" is not supported",
            "tls.defaults.tls_min_version: \"TLSv1_0\" is not supported",
            "tls.defaults.ecdh_curves: unknown key",
            "limits.rpc_rate: roster does not implement this limit",
            "limits.http_max_conns_per_client: expected a whole number",
            "limits.bogus: unknown key",
            "ports.https is enabled but tls.https (or tls.defaults) has no cert_file and key_file",
        ],
    );
    let missing = write(
        tmp.path(),
        "missing.json",
        r#"{"tls":{"defaults":{"cert_file":"/nowhere/cert.pem","key_file":"/nowhere/key.pem"}},"ports":{"https":0}}"#,
    );
    check_errors(load_flags(&["-config-file", &missing]), &["tls.https: cannot read /nowhere/cert.pem"]);
    let rpc = write(tmp.path(), "rpc.json", r#"{"tls":{"internal_rpc":{"verify_incoming":true}}}"#);
    check_errors(
        load_flags(&["-config-file", &rpc]),
        &["tls.internal_rpc: verify_incoming is set but no ca_file or ca_path is given"],
    );
}

#[test]
fn limits_default_as_consul_and_are_read() {
    let config = load_flags(&["-dev"]).expect("dev");
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.limits.http_max_conns_per_client, 200);
    assert_eq!(config.limits.rpc_max_conns_per_client, 100);
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(
        tmp.path(),
        "limits.json",
        r#"{"limits":{"http_max_conns_per_client":3,"rpc_max_conns_per_client":0,"rpc_handshake_timeout":"2s",
            "https_handshake_timeout":"1s"}}"#,
    );
    let config = load_flags(&["-dev", "-config-file", &file]).expect("valid");
    assert_eq!(
        config.limits,
        Limits {
            http_max_conns_per_client: 3,
            rpc_max_conns_per_client: 0,
            rpc_handshake_timeout: Duration::from_secs(2),
            https_handshake_timeout: Duration::from_secs(1),
        }
    );
}

#[test]
fn encrypt_keys_are_checked_by_name_without_showing_the_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
    let file = write(dir.path(), "a.json", r#"{"encrypt_verify_incoming": false, "encrypt_verify_outgoing": false}"#);
    let config = load_flags(&["-encrypt", key, "-config-file", &file]).expect("a valid key");
    assert_eq!(config.encrypt.map(|key| key.to_base64()).as_deref(), Some(key));
    assert!(!config.encrypt_verify_incoming && !config.encrypt_verify_outgoing);
    let defaults = load_flags(&[]).expect("defaults are valid");
    assert!(defaults.encrypt.is_none() && defaults.encrypt_verify_incoming && defaults.encrypt_verify_outgoing);

    // 20 bytes: base64 of "secret-too-short-key".
    let bad = write(dir.path(), "bad.json", r#"{"encrypt": "c2VjcmV0LXRvby1zaG9ydC1rZXk="}"#);
    let errors =
        check_errors(load_flags(&["-config-file", &bad]), &["bad.json: encrypt: invalid key: the key is 20 bytes"]);
    assert!(!errors.iter().any(|error| error.contains("c2VjcmV0")), "the secret stays out of errors");
    check_errors(
        load_flags(&["-encrypt", "not base64!"]),
        &["command line: encrypt: invalid key: the key is not valid base64"],
    );
    check_errors(load_flags(&["-encrypt", "c2hvcnQ="]), &["encrypt: invalid key: the key is 5 bytes"]);
}

#[test]
fn a_reload_names_every_changed_key_that_needs_a_restart() {
    let old = load_flags(&["-dev"]).expect("valid");
    let mut new = old.clone();
    new.log_level = LogLevel::Debug;
    new.services.push(serde_json::json!({"Name": "web"}));
    new.checks.push(serde_json::json!({"Name": "mem", "TTL": "10s"}));
    new.limits.http_max_conns_per_client = 7;
    new.leave_on_terminate = !old.leave_on_terminate;
    new.config_files.push(PathBuf::from("/etc/roster.d/web.json"));
    new.dns.only_passing = !old.dns.only_passing;
    new.dns.node_ttl = Duration::from_secs(30);
    new.dns.max_stale = Duration::from_secs(5);
    new.recursors.push("127.0.0.1:53".parse().expect("addr"));
    new.dns.settings.recursor_strategy = roster_dns::RecursorStrategy::Random;
    new.dns.settings.cache_max_age = Duration::from_secs(3);
    new.dns.settings.soa.min_ttl = 60;
    assert!(restart_required(&old, &new).is_empty(), "all of these reload");

    new.ports.http = Some(1);
    new.datacenter = "dc2".into();
    new.dns.settings.use_cache = !old.dns.settings.use_cache;
    new.tls.https.verify_incoming = true;
    new.limits.rpc_max_conns_per_client = 1;
    new.data_dir = Some(PathBuf::from("/elsewhere"));
    assert_eq!(
        restart_required(&old, &new),
        [
            "datacenter",
            "data_dir",
            "ports.http",
            "dns_config.use_cache",
            "tls.https",
            "limits.rpc_max_conns_per_client"
        ]
    );
}

#[test]
fn reading_the_same_sources_again_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.json", r#"{"service": {"name": "web", "port": 80}, "log_level": "warn"}"#);
    let dir_flag = dir.path().display().to_string();
    let args = agent_args(&["-dev", "-config-dir", &dir_flag, "-log-level", "debug"]);
    let first = load(&args, &EmptyEnv).expect("valid");
    write(dir.path(), "b.json", r#"{"service": {"name": "db", "port": 5432}, "log_level": "trace"}"#);
    let second = load(&args, &EmptyEnv).expect("valid");
    assert!(restart_required(&first, &second).is_empty());
    assert_eq!(second.services.len(), 2, "the new file's service is read");
    // The flag still beats the files.
    assert_eq!(second.log_level, LogLevel::Debug);
}

mod formats;

#[test]
fn ui_flags_and_keys_turn_the_web_ui_on_and_move_it() {
    assert!(!load_flags(&["-server", "-data-dir", "data"]).expect("loads").ui.enabled, "off by default");
    assert!(load_flags(&["-dev"]).expect("loads").ui.enabled, "on in -dev");
    assert!(!load_flags(&["-dev", "-ui=false"]).expect("loads").ui.enabled);
    let moved = load_flags(&["-dev", "-ui", "-ui-content-path", "ops/ui"]).expect("loads").ui;
    assert_eq!((moved.enabled, moved.content_path.as_str()), (true, "/ops/ui/"));
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path(), "ui.json", r#"{"ui_config": {"enabled": true, "metrics_provider": "prometheus"}}"#);
    check_errors(load_flags(&["-dev", "-config-file", &file]), &["ui_config.metrics_provider: not implemented"]);
    check_errors(load_flags(&["-dev", "-ui-content-path", "/v1/"]), &["cannot have 'v[0-9]'"]);
}

#[test]
fn logging_keys_follow_consul_and_rotation_without_a_log_file_is_refused() {
    let config = load_flags(&[]).expect("defaults");
    assert_eq!(config.logging, LoggingConfig::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = format!("{}/", dir.path().display());
    let config =
        load_flags(&["-log-json", "-log-file", &logs, "-log-rotate-bytes", "1024", "-log-rotate-max-files", "-1"])
            .expect("valid");
    assert!(config.logging.json);
    let file = config.logging.file.expect("a log file");
    assert_eq!((file.dir.as_path(), file.name.as_str()), (dir.path(), DEFAULT_LOG_FILE_NAME));
    assert_eq!((file.rotate_bytes, file.max_files), (1024, -1));
    assert_eq!(file.rotate_duration, Duration::from_secs(24 * 3600), "Consul's default");
    let named = write(dir.path(), "c.json", r#"{"log_file": "/var/log/agent", "pid_file": "/run/roster.pid"}"#);
    let config = load_flags(&["-config-file", &named]).expect("valid");
    let file = config.logging.file.expect("a log file");
    assert_eq!((file.dir, file.name), (PathBuf::from("/var/log"), "agent".to_owned()));
    assert_eq!(config.logging.pid_file, Some(PathBuf::from("/run/roster.pid")));
    check_errors(
        load_flags(&["-log-rotate-bytes", "10", "-log-rotate-max-files", "-2"]),
        &[
            "log_rotate_max_files: -2 is out of range (at least -1)",
            "log_rotate_bytes: rotates the log file, but no log_file",
        ],
    );
}
