//! Tests of reading the health and KV answers and of rendering templates.

use serde_json::{Value, json};

use super::{Backend, DEFAULT_TEMPLATE, Settings, backends, render, settings};

/// A `/v1/health/service` entry.
fn instance(id: &str, node_addr: &str, service_addr: &str, port: u16) -> Value {
    json!({"Node": {"Node": "n1", "Address": node_addr},
           "Service": {"ID": id, "Address": service_addr, "Port": port, "Weights": {"Passing": 1, "Warning": 1}},
           "Checks": []})
}

/// A KV entry with a base64 value.
fn kv(key: &str, value: &str) -> Value {
    use base64::Engine;
    json!({"Key": key, "Value": base64::engine::general_purpose::STANDARD.encode(value)})
}

/// Renders `template` and compares with `expect`.
fn check(template: &str, backends: &[Backend], settings: &Settings, expect: &str) {
    let rendered = render(template, "web", backends, settings).unwrap_or_else(|err| panic!("render: {err:#}"));
    assert_eq!(rendered, expect);
}

#[test]
fn backends_are_sorted_and_fall_back_to_the_node_address() {
    let health = json!([instance("web-b", "10.0.0.2", "", 8080), instance("web-a", "10.0.0.9", "10.0.0.1", 8080)]);
    let found = backends(&health).expect("a list");
    let addresses: Vec<(&str, &str)> = found.iter().map(|b| (b.id.as_str(), b.address.as_str())).collect();
    assert_eq!(addresses, [("web-a", "10.0.0.1"), ("web-b", "10.0.0.2")]);
}

#[test]
fn unusable_addresses_are_skipped_and_ipv6_is_bracketed() {
    let health = json!([
        instance("evil", "", "1.2.3.4; include /etc/passwd", 80),
        instance("no-port", "10.0.0.1", "", 0),
        instance("v6", "", "::1", 80),
    ]);
    let found = backends(&health).expect("a list");
    assert_eq!(found.iter().map(|b| b.address.as_str()).collect::<Vec<_>>(), ["[::1]"]);
}

#[test]
fn kv_settings_override_defaults_and_bad_values_are_ignored() {
    let entries = json!([
        kv("lb/web/max_fails", "3"),
        kv("lb/web/fail_timeout", "30s; evil"),
        kv("lb/web/weight/web-a", "5"),
        kv("lb/web/weight/web-b", "0"),
        kv("lb/web/unrelated", "x"),
    ]);
    let read = settings(&entries, "lb/web/");
    assert_eq!(read.max_fails, 3);
    assert_eq!(read.fail_timeout, "10s", "an invalid time keeps the default");
    assert_eq!(read.weights.into_iter().collect::<Vec<_>>(), [("web-a".to_owned(), 5)]);
    assert_eq!(settings(&Value::Null, "lb/web/"), Settings::default(), "an empty prefix is the defaults");
}

#[test]
fn default_template_renders_one_server_per_backend() {
    let health = json!([instance("web-a", "", "10.0.0.1", 8080), instance("web-b", "", "10.0.0.2", 8081)]);
    let mut settings = Settings::default();
    settings.weights.insert("web-b".to_owned(), 4);
    let expect = "\
# Written by roster-lb-helper for service web; changes here are overwritten.
upstream web {
    server 10.0.0.1:8080 weight=1 max_fails=1 fail_timeout=10s;
    server 10.0.0.2:8081 weight=4 max_fails=1 fail_timeout=10s;
}
";
    check(DEFAULT_TEMPLATE, &backends(&health).expect("a list"), &settings, expect);
}

#[test]
fn default_template_without_backends_keeps_nginx_valid() {
    let expect = "\
# Written by roster-lb-helper for service web; changes here are overwritten.
upstream web {
    server 127.0.0.1:9 down;
}
";
    check(DEFAULT_TEMPLATE, &[], &Settings::default(), expect);
}

#[test]
fn custom_template_placeholders() {
    let backend = Backend { address: "h".into(), port: 1, id: "a/b".into(), node: "n1".into(), weight: 2 };
    check(
        "{{#each backends}}{{ id }}@{{node}}={{address}}:{{port}}*{{weight}},{{/each}}",
        &[backend],
        &Settings::default(),
        "a_b@n1=h:1*2,",
    );
}

#[test]
fn template_errors_are_reported() {
    let err = |template: &str| format!("{:#}", render(template, "web", &[], &Settings::default()).expect_err(template));
    assert!(err("{{nope}}").contains("unknown placeholder `{{nope}}`"), "{}", err("{{nope}}"));
    assert!(err("{{#each backends}}x").contains("without `{{/each}}`"), "{}", err("{{#each backends}}x"));
    assert!(err("a {{service").contains("without its `}}`"));
}
