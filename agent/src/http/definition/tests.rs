//! Tests for service and check definition parsing: defaults, Consul's check IDs, and the 400 messages for bad definitions.

use super::*;
use crate::http::input::parse_object;

fn parse(text: &str, scripts: bool) -> Result<(Service, Vec<HealthCheck>), String> {
    let map = parse_object(text.as_bytes()).expect("test JSON is an object");
    service(Obj(&map), scripts)
}

#[test]
fn minimal_service_gets_consul_defaults() {
    let (svc, checks) = parse(r#"{"name": "files", "port": 8000}"#, false).unwrap();
    assert_eq!((svc.id.as_str(), svc.service.as_str(), svc.port), ("files", "files", 8000));
    assert_eq!(svc.weights, Weights { passing: 1, warning: 1 });
    assert!(checks.is_empty());
}

#[test]
fn one_check_is_service_id_and_several_are_numbered() {
    let (_, one) = parse(r#"{"Name": "web", "ID": "web1", "Check": {"TTL": "10s"}}"#, false).unwrap();
    assert_eq!(one[0].check_id, "service:web1");
    assert_eq!(one[0].name, "Service 'web' check");
    assert_eq!(one[0].status, CheckStatus::Critical, "checks start critical");
    assert_eq!(one[0].check_type, "ttl");
    let (_, two) = parse(
        r#"{"Name": "web", "Checks": [{"TTL": "10s"}, {"HTTP": "http://127.0.0.1:1/h", "Interval": "1s", "status": "passing"}]}"#,
        false,
    )
    .unwrap();
    assert_eq!(two.iter().map(|c| c.check_id.as_str()).collect::<Vec<_>>(), vec!["service:web:1", "service:web:2"]);
    assert_eq!(two[1].status, CheckStatus::Passing);
    assert_eq!(two[1].interval, "1s");
}

#[test]
fn check_definition_is_stored_with_go_durations() {
    let (_, checks) = parse(
        r#"{"Name": "web", "Check": {"HTTP": "http://x/", "Interval": 10000000000, "Header": {"X-A": ["1"]}, "TLSSkipVerify": true}}"#,
        false,
    )
    .unwrap();
    let def: Value = serde_json::from_str(&checks[0].definition_json).unwrap();
    assert_eq!(def["Interval"], "10s");
    assert_eq!(def["HTTP"], "http://x/");
    assert_eq!(def["Header"]["X-A"][0], "1");
    assert_eq!(def["TLSSkipVerify"], true);
}

#[test]
fn bad_definitions_name_the_problem() {
    let cases = [
        (r#"{"Port": 80}"#, "Missing service name"),
        (r#"{"Name": "a", "Port": 70000}"#, "Port: 70000 is out of range 0..=65535"),
        (r#"{"Name": "a", "Check": {"HTTP": "http://x/"}}"#, "Invalid check: Interval must be > 0"),
        (r#"{"Name": "a", "Check": {"TTL": "ten"}}"#, "Invalid check: TTL: invalid duration"),
        (r#"{"Name": "a", "Check": {"Args": ["true"], "Interval": "1s"}}"#, "Invalid check: Scripts are disabled"),
        (r#"{"Name": "a", "Check": {"HTTP": "ftp://x", "Interval": "1s"}}"#, "Invalid check: HTTP: \"ftp://x\""),
        (r#"{"Name": "a", "Check": {"TTL": "1s", "Status": "ok"}}"#, "Invalid check: Status: \"ok\""),
        (r#"{"Name": "a", "Meta": {"consul-x": "1"}}"#, "Invalid Service Meta: Key prefix 'consul-'"),
        (r#"{"Name": "a", "Weights": {"Passing": 0}}"#, "Passing must be greater than 0"),
        (r#"{"Name": "a", "Check": {"TTL": "1s", "TCP": "x:1", "Interval": "1s"}}"#, "exactly one type"),
    ];
    for (body, want) in cases {
        let err = parse(body, false).expect_err(body);
        assert!(err.contains(want), "{body}: got {err:?}, want it to contain {want:?}");
    }
}

#[test]
fn script_checks_pass_when_enabled() {
    let (_, checks) = parse(r#"{"Name": "a", "Check": {"Args": ["/bin/true"], "Interval": "5s"}}"#, true).unwrap();
    assert_eq!(checks[0].check_type, "script");
}

/// Found by the service-definition property test: serde_json's default float parser is fast but not exact, so a number
/// in a pass-through object (`Proxy`, `Connect`) could come back from the API with its last digits changed.
#[test]
fn numbers_in_pass_through_objects_come_back_exactly_as_sent() {
    for number in [
        "1.0430173986986222e+203",
        "1.043017398698622e+203",
        "-1.2171052471433493e+258",
        "0.1",
        "5e-324",
        "1.7976931348623157e+308",
    ] {
        let (svc, _) = parse(&format!(r#"{{"Name": "web", "Proxy": {{"X": {number}}}}}"#), false).unwrap();
        assert_eq!(svc.proxy_json, format!(r#"{{"X":{number}}}"#));
    }
}
