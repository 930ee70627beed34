//! The HTTP fuzz targets' seed corpora: each seed must reach the stage it was made for, and the committed seeds must
//! be exactly these, so the fuzzers always start from inputs that get past the first check. `UPDATE_SEEDS=1` rewrites
//! them.

use super::*;
use crate::fuzzing::check_seeds;

fn with_mode(mode: u8, body: &str) -> Vec<u8> {
    [&[mode][..], body.as_bytes()].concat()
}

fn definition_seeds() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        ("minimal", with_mode(0, r#"{"Name": "web", "Port": 80}"#), "registered"),
        (
            "full",
            with_mode(
                0,
                r#"{"ID": "web1", "Name": "web", "Tags": ["a", "b"], "Address": "10.0.0.1", "Port": 8080,
                    "Meta": {"env": "qa"}, "Weights": {"Passing": 3, "Warning": 1}, "EnableTagOverride": true,
                    "TaggedAddresses": {"lan": {"Address": "10.0.0.1", "Port": 80}}, "Kind": "connect-proxy",
                    "Proxy": {"DestinationServiceName": "web"}, "Connect": {"Native": false}}"#,
            ),
            "registered",
        ),
        (
            "checks",
            with_mode(
                1,
                r#"{"name": "db", "checks": [{"TTL": "10s", "Status": "passing"},
                    {"HTTP": "http://127.0.0.1:1/h", "Interval": "1s", "Header": {"X": ["y"]}},
                    {"Args": ["/bin/true"], "Interval": "5s"}, {"AliasService": "web"}]}"#,
            ),
            "registered",
        ),
        ("script-refused", with_mode(0, r#"{"Name": "db", "Check": {"Args": ["true"], "Interval": "5s"}}"#), "refused"),
        ("not-an-object", with_mode(0, r#"["Name"]"#), "not-an-object"),
    ]
}

#[test]
fn definition_seeds_register_and_are_committed() {
    check_seeds("service_definition", definition_seeds(), service_definition);
}
