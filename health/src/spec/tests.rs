//! Tests of the Consul definition parser and Go durations.

use std::time::Duration;

use serde_json::json;

use crate::spec::{CheckKind, CheckSpec, parse_go_duration};
use crate::status::{Status, Thresholds};

fn parse(check_type: &str, definition: serde_json::Value) -> Result<CheckSpec, String> {
    CheckSpec::from_consul("c1", check_type, &definition, Status::Critical)
}

#[test]
fn go_durations_parse_like_time_parse_duration() {
    let cases = [
        ("10s", Duration::from_secs(10)),
        ("1m30s", Duration::from_secs(90)),
        ("100ms", Duration::from_millis(100)),
        ("1.5h", Duration::from_secs(5400)),
        ("0s", Duration::ZERO),
        ("0", Duration::ZERO),
        ("2us", Duration::from_micros(2)),
        ("3µs", Duration::from_micros(3)),
        ("1h2m3s4ms", Duration::from_millis(3_723_004)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_go_duration(text), Ok(expected), "{text}");
    }
    for bad in ["", "10", "s", "-1s", "1x", "1.2.3s"] {
        assert!(parse_go_duration(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn http_definition_reads_every_field() {
    let spec = parse(
        "http",
        json!({
            "HTTP": "https://10.0.0.1:8443/health", "Method": "POST", "Header": {"X-A": ["1", "2"]}, "Body": "{}",
            "TLSServerName": "web.local", "TLSSkipVerify": true, "DisableRedirects": true,
            "Interval": "15s", "Timeout": 2_000_000_000u64, "SuccessBeforePassing": 2, "FailuresBeforeWarning": 1,
            "FailuresBeforeCritical": 3, "OutputMaxSize": 64, "DeregisterCriticalServiceAfter": "90m", "StartPeriod": "30s"
        }),
    )
    .expect("valid");
    assert_eq!(
        spec,
        CheckSpec {
            check_id: "c1".to_string(),
            kind: CheckKind::Http {
                url: "https://10.0.0.1:8443/health".to_string(),
                method: "POST".to_string(),
                headers: vec![("X-A".to_string(), vec!["1".to_string(), "2".to_string()])],
                body: "{}".to_string(),
                tls_server_name: Some("web.local".to_string()),
                tls_skip_verify: true,
                disable_redirects: true,
            },
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(2),
            thresholds: Thresholds {
                success_before_passing: 2,
                failures_before_warning: 1,
                failures_before_critical: 3
            },
            initial_status: Status::Critical,
            output_max_size: 64,
            start_period: Duration::from_secs(30),
            deregister_critical_after: Some(Duration::from_secs(5400)),
        }
    );
}

#[test]
fn consul_defaults_and_minimums_apply() {
    let spec =
        parse("tcp", json!({"TCP": "127.0.0.1:80", "Interval": "100ms", "DeregisterCriticalServiceAfter": "10s"}))
            .expect("valid");
    assert_eq!(spec.interval, Duration::from_secs(1), "Consul raises intervals below 1s");
    assert_eq!(spec.timeout, Duration::from_secs(10));
    assert_eq!(spec.output_max_size, 4096);
    assert_eq!(spec.deregister_critical_after, Some(Duration::from_secs(60)), "Consul's reaper minimum");
    let script = parse("script", json!({"Args": ["/bin/true"], "Interval": "10s"})).expect("valid");
    assert_eq!(script.timeout, Duration::from_secs(30));
    let h2 = parse("h2ping", json!({"H2PING": "localhost:443", "Interval": "10s"})).expect("valid");
    assert!(matches!(h2.kind, CheckKind::H2Ping { use_tls: true, .. }), "H2PingUseTLS defaults to true");
    let none = parse("tcp", json!({"TCP": "a:1", "Interval": "10s", "DeregisterCriticalServiceAfter": "0s"}));
    assert_eq!(none.expect("valid").deregister_critical_after, None);
}

#[test]
fn field_names_match_case_and_underscore_insensitively() {
    let spec = parse("", json!({"grpc": "127.0.0.1:9000/web", "grpc_use_tls": true, "interval": "5s"})).expect("valid");
    assert_eq!(
        spec.kind,
        CheckKind::Grpc { target: "127.0.0.1:9000/web".to_string(), use_tls: true, tls_skip_verify: false }
    );
}

#[test]
fn every_kind_parses_from_its_fields() {
    let ttl = parse("ttl", json!({"TTL": "30s"})).expect("valid");
    assert_eq!(ttl.kind, CheckKind::Ttl { ttl: Duration::from_secs(30) });
    let udp = parse("udp", json!({"UDP": "127.0.0.1:53", "Interval": "10s"})).expect("valid");
    assert_eq!(udp.kind, CheckKind::Udp { addr: "127.0.0.1:53".to_string() });
    let alias = parse("alias", json!({"AliasService": "web-1"})).expect("valid");
    assert_eq!(alias.kind, CheckKind::Alias { node: String::new(), service_id: Some("web-1".to_string()) });
    let docker = parse("docker", json!({"DockerContainerID": "f00", "ScriptArgs": ["/check"], "Interval": "10s"}));
    assert_eq!(
        docker.expect("valid").kind,
        CheckKind::Docker { container_id: "f00".into(), shell: "/bin/sh".into(), args: vec!["/check".into()] }
    );
    let legacy =
        parse("docker", json!({"DockerContainerID": "f00", "Shell": "/bin/bash", "Script": "x", "Interval": "1s"}));
    assert_eq!(
        legacy.expect("valid").kind,
        CheckKind::Docker {
            container_id: "f00".into(),
            shell: "/bin/bash".into(),
            args: vec!["/bin/bash".into(), "-c".into(), "x".into()]
        }
    );
}

#[test]
fn invalid_definitions_are_refused_with_a_reason() {
    let cases = [
        ("http", json!({"HTTP": "http://x/"}), "Interval"),
        ("ttl", json!({}), "TTL"),
        ("tcp", json!({"TCP": "a:1", "Interval": "soon"}), "Interval"),
        ("script", json!({"Interval": "10s"}), "ScriptArgs"),
        ("http", json!({"HTTP": "http://x/", "Interval": "1s", "Header": {"A": 1}}), "Header"),
        ("bogus", json!({}), "unknown check type"),
        ("", json!({"Interval": "10s"}), "check type"),
        ("http", json!([1]), "JSON object"),
    ];
    for (check_type, definition, needle) in cases {
        let err = parse(check_type, definition.clone()).expect_err("should be refused");
        assert!(err.contains(needle), "{definition}: {err:?} should mention {needle:?}");
    }
}
