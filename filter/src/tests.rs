//! Tests of the filter language: the parser against expected trees and error positions, evaluation against Consul's documented examples, validation and limits.

use serde_json::{Value, json};

use super::parse::{MAX_DEPTH, parse};
use super::{Field, Filter, MAX_LENGTH, schema};

/// The tree of `text` in its one-line form, or the error as the API would word its position.
fn parsed(text: &str) -> String {
    match parse(text) {
        Ok(expr) => expr.to_string(),
        Err(err) => format!("error {err}"),
    }
}

#[track_caller]
fn check_parse(cases: &[(&str, &str)]) {
    for (text, expect) in cases {
        assert_eq!(parsed(text), *expect, "parsing {text:?}");
    }
}

#[test]
fn every_operator_parses() {
    check_parse(&[
        ("Meta.env == qa", r#"(Equal Meta.env "qa")"#),
        (r#"Meta.env=="qa""#, r#"(Equal Meta.env "qa")"#),
        ("Meta.env != qa", r#"(Not Equal Meta.env "qa")"#),
        (r#""primary" in ServiceTags"#, r#"(In ServiceTags "primary")"#),
        (r#""primary" not in ServiceTags"#, r#"(Not In ServiceTags "primary")"#),
        ("ServiceTags contains primary", r#"(In ServiceTags "primary")"#),
        ("ServiceTags not contains primary", r#"(Not In ServiceTags "primary")"#),
        (r#"Name matches "^web""#, r#"(Matches Name "^web")"#),
        (r#"Name not matches "^web""#, r#"(Not Matches Name "^web")"#),
        ("Tags is empty", "(Is Empty Tags)"),
        ("Tags is not empty", "(Is Not Empty Tags)"),
        ("Proxy is nil", "(Is Nil Proxy)"),
        ("Proxy is not nil", "(Is Not Nil Proxy)"),
        ("  \tPort == 8080\n", r#"(Equal Port "8080")"#),
    ]);
}

#[test]
fn precedence_is_not_then_and_then_or() {
    check_parse(&[
        ("a == 1 or b == 2 and not c == 3", r#"(or (Equal a "1") (and (Equal b "2") (not (Equal c "3"))))"#),
        ("a == 1 and b == 2 or c == 3", r#"(or (and (Equal a "1") (Equal b "2")) (Equal c "3"))"#),
        ("(a == 1 or b == 2) and c == 3", r#"(and (or (Equal a "1") (Equal b "2")) (Equal c "3"))"#),
        ("not (a == 1 or b == 2)", r#"(not (or (Equal a "1") (Equal b "2")))"#),
        ("not not a == 1", r#"(not (not (Equal a "1")))"#),
        ("a == 1 or b == 2 or c == 3", r#"(or (Equal a "1") (Equal b "2") (Equal c "3"))"#),
        ("( ( a == 1 ) )", r#"(Equal a "1")"#),
    ]);
}

#[test]
fn keywords_need_whitespace_and_prefix_no_identifier() {
    check_parse(&[
        ("notes == x", r#"(Equal notes "x")"#),
        ("not == x", r#"(Equal not "x")"#),
        ("android == a and order == b", r#"(and (Equal android "a") (Equal order "b"))"#),
        ("isx is empty", "(Is Empty isx)"),
    ]);
    assert!(parsed("not(a == 1)").starts_with("error 1:4 (3): no match found"), "{}", parsed("not(a == 1)"));
    assert!(parsed("a == 1 and(b == 2)").starts_with("error"), "and( is not a keyword");
}

#[test]
fn selectors_take_dots_indexes_and_json_pointers() {
    check_parse(&[
        (r#"Meta["a.b"] == x"#, r#"(Equal Meta["a.b"] "x")"#),
        (r#"Meta[ `key with space` ] == x"#, r#"(Equal Meta["key with space"] "x")"#),
        ("Service.TaggedAddresses.lan.Port == 80", r#"(Equal Service.TaggedAddresses.lan.Port "80")"#),
        ("Tags.0 == x", r#"(Equal Tags.0 "x")"#),
        (r#""/Service/Meta/env" == qa"#, r#"(Equal Service.Meta.env "qa")"#),
        (r#""/Meta/a~1b~0c" == qa"#, r#"(Equal Meta["a/b~c"] "qa")"#),
        // A bare selector as a value stands for its own text.
        ("Node == Service.Address", r#"(Equal Node "Service.Address")"#),
    ]);
}

#[test]
fn values_are_strings_numbers_and_identifiers() {
    check_parse(&[
        ("Port == -12", r#"(Equal Port "-12")"#),
        ("Weight == 1.25", r#"(Equal Weight "1.25")"#),
        ("(Port == 0)", r#"(Equal Port "0")"#),
        ("EnableTagOverride == true", r#"(Equal EnableTagOverride "true")"#),
        (r#"Name == "a\tb\\c\"d""#, r#"(Equal Name "a\tb\\c\"d")"#),
        (r#"Name == "\x41\u00e9\U0001F600\101""#, r#"(Equal Name "Aé😀A")"#),
        (r"Name == `a\tb`", r#"(Equal Name "a\\tb")"#),
        (r#"Name == """#, r#"(Equal Name "")"#),
        (r#""" in Tags"#, r#"(In Tags "")"#),
    ]);
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    check_parse(&[
        ("Meta.env ==", "error 1:12 (11): no match found, expected: value or whitespace"),
        (
            "Meta.env = qa",
            r#"error 1:10 (9): no match found, expected: "!=", "==", "contains", "in", "is", "matches" or "not""#,
        ),
        ("a == 1 and", "error 1:11 (10): no match found, expected: whitespace"),
        ("a == 1 b", r#"error 1:8 (7): no match found, expected: "and", "or" or end of input"#),
        ("", r#"error 1:1 (0): no match found, expected: "(", "all", "any", "not", selector, value or whitespace"#),
        (
            "a == 1\nand b = 2",
            r#"error 2:7 (13): no match found, expected: "!=", "==", "contains", "in", "is", "matches" or "not""#,
        ),
        ("(a == 1", "error 1:8 (7): Unmatched parentheses"),
        (r#"a == "abc"#, "error 1:6 (5): Unterminated string literal"),
        ("a == `abc", "error 1:6 (5): Unterminated string literal"),
        (r#""x" in 5"#, "error 1:8 (7): Invalid selector"),
        ("Meta[foo] == x", "error 1:6 (5): Invalid index"),
        (r#"Meta["foo" == x"#, "error 1:12 (11): Unclosed index expression"),
        ("Port == 80x", "error 1:9 (8): Invalid number literal"),
        ("Port == 1.", "error 1:9 (8): Invalid number literal"),
        (r#"Name == "a\qb""#, r"error 1:11 (10): invalid escape sequence in string literal at \q"),
        (r#"Name == "\u12""#, r"error 1:10 (9): invalid escape sequence in string literal at \u"),
        (
            "é == x",
            r#"error 1:1 (0): no match found, expected: "(", "all", "any", "not", selector, value or whitespace"#,
        ),
    ]);
}

#[test]
fn nesting_is_bounded_without_overflowing_the_stack() {
    let nested = |n: usize| format!("{}a == 1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(parsed(&nested(MAX_DEPTH)), r#"(Equal a "1")"#);
    assert!(parsed(&nested(MAX_DEPTH + 1)).contains("expression nested too deeply"), "{}", parsed(&nested(33)));
    let nots = format!("{}a == 1", "not ".repeat(MAX_DEPTH + 1));
    assert!(parsed(&nots).contains("expression nested too deeply"));
    // Far past the limit: refused quickly, no recursion per level beyond the limit.
    let deep = "(".repeat(MAX_LENGTH);
    assert!(parsed(&deep).contains("nested too deeply"));
    assert!(matches!(Filter::new(&"(".repeat(MAX_LENGTH + 1), &schema::NODE), Err(super::FilterError::TooLong(_))));
}

/// Which of `docs` (an object keyed by name) `text` keeps, against `shape`.
#[track_caller]
fn kept(shape: &'static Field, docs: &Value, text: &str) -> Vec<String> {
    let filter = Filter::new(text, shape).unwrap_or_else(|err| panic!("{text:?}: {err}"));
    let map = docs.as_object().expect("fixtures are objects keyed by name");
    map.iter().filter(|(_, doc)| filter.matches(doc)).map(|(name, _)| name.clone()).collect()
}

#[track_caller]
fn check_kept(shape: &'static Field, docs: &Value, cases: &[(&str, &[&str])]) {
    for (text, expect) in cases {
        assert_eq!(kept(shape, docs, text), *expect, "filter {text:?}");
    }
}

/// The `/v1/agent/services` example of Consul's filtering page.
fn redis_services() -> Value {
    let svc = |id: &str, tags: Value, meta: Value, port: u16| {
        json!({"ID": id, "Service": "redis", "Tags": tags, "Meta": meta, "Port": port, "Address": "",
               "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false, "Datacenter": "dc1"})
    };
    json!({
        "redis1": svc("redis1", json!(["primary", "production"]), json!({"env": "production", "foo": "bar"}), 1234),
        "redis2": svc("redis2", json!(["secondary", "production"]), json!({"env": "production", "foo": "bar"}), 1235),
        "redis3": svc("redis3", json!(["primary", "qa"]), json!({"env": "qa"}), 1234),
    })
}

#[test]
fn consul_agent_services_example() {
    check_kept(
        &schema::AGENT_SERVICE,
        &redis_services(),
        &[
            (r#"Meta.env == "qa""#, &["redis3"]),
            ("Meta.env == qa", &["redis3"]),
            (r#"Meta["env"] != qa"#, &["redis1", "redis2"]),
            (r#""primary" in Tags"#, &["redis1", "redis3"]),
            ("Tags contains production and Port == 1235", &["redis2"]),
            ("Tags not contains qa", &["redis1", "redis2"]),
            ("Port == 1234", &["redis1", "redis3"]),
            (r#"Port == "0x4d2""#, &["redis1", "redis3"]),
            (r#"ID matches "^redis[12]$""#, &["redis1", "redis2"]),
            (r#"ID not matches "1|2""#, &["redis3"]),
            ("Service contains dis and not (ID == redis2)", &["redis1", "redis3"]),
            ("EnableTagOverride == false and Weights.Passing == 1", &["redis1", "redis2", "redis3"]),
            (r#"Datacenter == dc2 or "env" not in Meta"#, &[]),
        ],
    );
}

#[test]
fn absent_map_keys_and_absent_fields() {
    check_kept(
        &schema::AGENT_SERVICE,
        &redis_services(),
        &[
            // A missing key: nothing equals, contains or matches it, and it is empty.
            ("Meta.foo == bar", &["redis1", "redis2"]),
            ("Meta.foo != bar", &["redis3"]),
            ("Meta.foo is empty", &["redis3"]),
            ("Meta.foo is not empty", &["redis1", "redis2"]),
            (r#"Meta.foo matches ".""#, &["redis1", "redis2"]),
            (r#"Meta.foo not matches ".""#, &["redis3"]),
            (r#""foo" in Meta"#, &["redis1", "redis2"]),
            // Fields the agent view leaves out when unset read as their zero value.
            (r#"Kind == """#, &["redis1", "redis2", "redis3"]),
            ("Kind is empty and SocketPath is empty", &["redis1", "redis2", "redis3"]),
            ("TaggedAddresses is empty", &["redis1", "redis2", "redis3"]),
            ("TaggedAddresses.lan.Port == 0", &[]),
            ("TaggedAddresses.lan.Port != 0", &["redis1", "redis2", "redis3"]),
            ("Proxy is nil", &["redis1", "redis2", "redis3"]),
            ("Proxy.Mode == x", &[]),
        ],
    );
}

#[test]
fn consul_catalog_service_example() {
    let row = |node: &str, os: &str, tags: Value| {
        json!({"ID": "x", "Node": node, "Address": "198.18.0.1", "Datacenter": "dc1", "TaggedAddresses": null,
               "NodeMeta": {"os": os}, "ServiceKind": "", "ServiceID": "api-internal", "ServiceName": "api-internal",
               "ServiceTags": tags, "ServicePort": 9090, "ServiceProxy": {}, "ServiceConnect": {}})
    };
    let docs = json!({
        "node-1": row("node-1", "darwin", json!(["tag"])),
        "node-2": row("node-2", "linux", json!(["test", "tag"])),
        "node-4": row("node-4", "freebsd", json!([])),
    });
    check_kept(
        &schema::CATALOG_SERVICE,
        &docs,
        &[
            (r#"NodeMeta.os == "linux""#, &["node-2"]),
            ("ServiceTags is empty", &["node-4"]),
            (r#""tag" in ServiceTags"#, &["node-1", "node-2"]),
            ("TaggedAddresses is empty", &["node-1", "node-2", "node-4"]),
            ("ServiceConnect.Native == true", &[]),
        ],
    );
}

#[test]
fn consul_health_node_example() {
    let check = |id: &str, service: &str, status: &str| {
        json!({"Node": "node-1", "CheckID": id, "Name": id, "Status": status, "Notes": "", "Output": "",
               "ServiceID": "", "ServiceName": service, "ServiceTags": [], "Definition": {}})
    };
    let docs = json!({
        "node-health": check("node-health", "", "critical"),
        "svc-web-health": check("svc-web-health", "web", "warning"),
    });
    check_kept(
        &schema::CHECK,
        &docs,
        &[
            (r#"ServiceName != """#, &["svc-web-health"]),
            ("Status == critical", &["node-health"]),
            ("crit in Status", &["node-health"]),
            ("Definition.HTTP is empty", &["node-health", "svc-web-health"]),
        ],
    );
}

/// Health entries: checks are a list of objects, and a selector into them matches when any check does.
fn health_entries() -> Value {
    let check = |status: &str| json!({"CheckID": format!("c-{status}"), "Status": status, "ServiceTags": ["t"]});
    let entry = |version: &str, checks: Value, upstreams: Value| {
        json!({"Node": {"Node": "n1", "Meta": {"rack": "r1"}},
               "Service": {"ID": "web", "Meta": {"version": version}, "Port": 80, "Tags": [],
                           "Proxy": {"Mode": "", "Upstreams": upstreams}},
               "Checks": checks})
    };
    json!({
        "all-passing": entry("1.2", json!([check("passing"), check("passing")]), json!([{"DestinationName": "db"}])),
        "one-critical": entry("1.10", json!([check("passing"), check("critical")]), json!([])),
        "no-checks": entry("2.0", json!([]), Value::Null),
    })
}

#[test]
fn lists_of_objects_match_when_any_element_does() {
    check_kept(
        &schema::HEALTH_ENTRY,
        &health_entries(),
        &[
            ("Checks.Status == passing", &["all-passing", "one-critical"]),
            ("Checks.Status == critical", &["one-critical"]),
            ("Checks.Status != passing", &["one-critical"]),
            ("not Checks.Status != passing", &["all-passing", "no-checks"]),
            ("Checks is empty", &["no-checks"]),
            ("t in Checks.ServiceTags", &["all-passing", "one-critical"]),
            (r#"Service.Meta.version matches "^1\\.""#, &["all-passing", "one-critical"]),
            ("Service.Meta.version matches `^1\\.1`", &["one-critical"]),
            ("Node.Meta.rack == r1 and Service.Port == 80", &["all-passing", "no-checks", "one-critical"]),
            ("Service.Proxy.Upstreams.DestinationName == db", &["all-passing"]),
            ("Service.Proxy.Upstreams.0.DestinationName == db", &["all-passing"]),
            ("Service.Proxy.Upstreams is empty", &["no-checks", "one-critical"]),
            (r#""/Service/Meta/version" == "2.0""#, &["no-checks"]),
        ],
    );
}

#[test]
fn collection_expressions_parse_with_every_binding_form() {
    check_parse(&[
        (r#"any Checks as c { c.Status == "critical" }"#, r#"(any Checks as c (Equal c.Status "critical"))"#),
        ("all Service.Tags as t {t != x}", r#"(all Service.Tags as t (Not Equal t "x"))"#),
        ("any Meta as k, v { k == env and v == qa }", r#"(any Meta as k, v (and (Equal k "env") (Equal v "qa")))"#),
        ("all Meta as k , _ { k != x }", r#"(all Meta as k, _ (Not Equal k "x"))"#),
        ("any Meta as _,v { v == qa }", r#"(any Meta as _, v (Equal v "qa"))"#),
        (
            "any Checks as c { all c.ServiceTags as t { t == x } }",
            r#"(any Checks as c (all c.ServiceTags as t (Equal t "x")))"#,
        ),
        // A whole `or` expression: alone, in parentheses, or after the last `or`.
        ("(any Tags as t { t == x }) and Port == 1", r#"(and (any Tags as t (Equal t "x")) (Equal Port "1"))"#),
        ("Port == 1 or any Tags as t { t == x }", r#"(or (Equal Port "1") (any Tags as t (Equal t "x")))"#),
        ("not (all Tags as t { t == x })", r#"(not (all Tags as t (Equal t "x")))"#),
        // `any` and `all` are still field names and values where a match fits.
        ("any == x", r#"(Equal any "x")"#),
        ("all in Tags", r#"(In Tags "all")"#),
    ]);
}

#[test]
fn collection_expressions_fail_where_go_bexpr_does() {
    check_parse(&[
        (r#"all Checks as { c.Status == "x" }"#, r#"error 1:15 (14): no match found, expected: "_" or identifier"#),
        (r#"all as t { t.Name == "x" }"#, r#"error 1:8 (7): no match found, expected: "as""#),
        ("any Tags as t { t == x", r#"error 1:23 (22): no match found, expected: "}" or whitespace"#),
        ("any Tags as t { t == x } and Port == 1", r#"error 1:26 (25): no match found, expected: end of input"#),
        ("any Tags as _, _ { Port == 1 }", r#"error 1:14 (13): no match found, expected: whitespace"#),
    ]);
}

/// Services whose tags, metadata and checks the collection expressions look into.
fn tagged_entries() -> Value {
    let check =
        |status: &str, tags: Value| json!({"CheckID": format!("c-{status}"), "Status": status, "ServiceTags": tags});
    let entry = |tags: Value, meta: Value, checks: Value| json!({"Node": {"Node": "n1", "Meta": {}}, "Service": {"ID": "s", "Tags": tags, "Meta": meta}, "Checks": checks});
    json!({
        "healthy": entry(json!(["v1", "primary"]), json!({"env": "qa"}),
                         json!([check("passing", json!(["v1"])), check("passing", json!([]))])),
        "sick": entry(json!(["v2"]), json!({"env": "prod", "tier": "db"}),
                      json!([check("passing", json!(["v2"])), check("critical", json!(["v2", "x"]))])),
        "bare": entry(json!([]), Value::Null, json!([])),
    })
}

#[test]
fn any_and_all_quantify_over_lists_and_maps() {
    check_kept(
        &schema::HEALTH_ENTRY,
        &tagged_entries(),
        &[
            // Lists of objects: the name stands for each element.
            (r#"any Checks as c { c.Status == "critical" }"#, &["sick"]),
            ("all Checks as c { c.Status == passing }", &["bare", "healthy"]),
            ("all Checks as c { c.Status == passing and c.CheckID matches `^c-` }", &["bare", "healthy"]),
            // Lists of strings; an empty list makes `any` false and `all` true.
            ("any Service.Tags as t { t == v2 }", &["sick"]),
            ("all Service.Tags as t { t matches `^v` }", &["bare", "sick"]),
            // With two names a list gives the index first.
            ("any Service.Tags as i, t { i == 1 and t == primary }", &["healthy"]),
            ("any Service.Tags as i, _ { i == 1 }", &["healthy"]),
            // Maps: one name is the key; `_, v` the value; an absent map has no entries.
            ("any Service.Meta as k { k == tier }", &["sick"]),
            ("any Service.Meta as _, v { v == qa }", &["healthy"]),
            ("all Service.Meta as k, v { k == env and v != prod }", &["bare", "healthy"]),
            // Nesting, shadowing, and negation around a collection.
            ("any Checks as c { any c.ServiceTags as t { t == x } }", &["sick"]),
            ("any Checks as t { any t.ServiceTags as t { t == v1 } }", &["healthy"]),
            ("not (any Checks as c { c.Status == critical })", &["bare", "healthy"]),
            ("Service.ID == none or all Checks as c { c.Status != critical }", &["bare", "healthy"]),
        ],
    );
}

#[test]
fn collection_expressions_are_validated_against_the_shape() {
    let shape = &schema::HEALTH_ENTRY;
    assert_eq!(refused(shape, "any Service.ID as i { i == x }"), "Service.ID is not a list or a map");
    assert_eq!(refused(shape, "any Checks.ServiceTags as t { t == x }"), "Checks.ServiceTags is not a list or a map");
    assert_eq!(refused(shape, "any Checks as c { c.Nope == x }"), r#"Selector "c.Nope" is not valid"#);
    assert_eq!(refused(shape, "any Checks as c { Nope == x }"), r#"Selector "Nope" is not valid"#);
    assert_eq!(refused(shape, "any Checks as c { c == x }"), r#"Invalid match operator "Equal" for selector "c""#);
    assert_eq!(
        refused(shape, "any Checks as i, _ { i == x }"),
        r#"Failed to coerce value "x" for selector "i": invalid syntax"#
    );
    assert_eq!(refused(shape, "any Service.Meta as k { k.x == y }"), r#"Selector "k.x" is not valid: k is a key"#);
    assert_eq!(
        refused(shape, "all Service.Meta as k, k { k == x }"),
        r#""k" cannot be used as a placeholder for both the index and the value"#
    );
    // A name is bound only inside its own braces.
    assert_eq!(refused(shape, "(any Checks as c { c.Status == x }) or c.Status == x"), r#"Selector "c" is not valid"#);
}

#[track_caller]
fn refused(shape: &'static Field, text: &str) -> String {
    match Filter::new(text, shape) {
        Ok(_) => panic!("{text:?} was accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn validation_refuses_what_the_shape_cannot_answer() {
    let shape = &schema::AGENT_SERVICE;
    assert_eq!(refused(shape, "Foo == x"), r#"Selector "Foo" is not valid"#);
    assert_eq!(refused(shape, "service == redis"), r#"Selector "service" is not valid"#, "field names are exact");
    assert_eq!(refused(shape, "Weights.Critical == 1"), r#"Selector "Weights.Critical" is not valid"#);
    assert_eq!(refused(shape, "Meta.env.x == 1"), r#"Selector "Meta.env.x" is not valid"#);
    assert_eq!(refused(shape, r#""" == 1"#), r#"Selector "" is not valid"#);
    assert_eq!(refused(&schema::HEALTH_ENTRY, "Checks.Nope == 1"), r#"Selector "Checks.Nope" is not valid"#);
    assert_eq!(refused(shape, "Port contains 1"), r#"Invalid match operator "In" for selector "Port""#);
    assert_eq!(refused(shape, "Tags == x"), r#"Invalid match operator "Equal" for selector "Tags""#);
    assert_eq!(refused(shape, "Weights is empty"), r#"Invalid match operator "Is Empty" for selector "Weights""#);
    assert_eq!(refused(shape, "Port == abc"), r#"Failed to coerce value "abc" for selector "Port": invalid syntax"#);
    assert_eq!(
        refused(shape, "EnableTagOverride == yes"),
        r#"Failed to coerce value "yes" for selector "EnableTagOverride": invalid syntax"#
    );
    assert!(refused(shape, r#"ID matches "(""#).starts_with(r#"Failed to compile regular expression "(""#));
    assert!(refused(shape, "ID ==").starts_with("Failed to parse filter expression: 1:6 (5): no match found"));
}

#[test]
fn selectors_are_listed_in_the_order_written() {
    let filter = Filter::new(
        r#"value.role == "web" and ("ops" in list.groups or any list.teams as t { t == "a" })"#,
        &schema::BINDING_IDENTITY,
    )
    .expect("valid binding selector");
    let paths: Vec<String> = filter.selectors().iter().map(|p| p.join(".")).collect();
    assert_eq!(paths, ["value.role", "list.groups", "list.teams", "t"]);
    assert!(filter.matches(&json!({"value": {"role": "web"}, "list": {"groups": ["ops"]}})));
    assert!(!filter.matches(&json!({"value": {"role": "db"}, "list": {"groups": ["ops"]}})));
}

/// The fuzz target's seeds (`fuzz/corpus/filter_expr`: a shape byte, then the text) must be valid filters for the
/// shape they pick, in the target's order, so the fuzzer starts from inputs that get past validation.
#[test]
fn the_fuzz_seeds_are_valid_filters() {
    let shapes: [&'static Field; 7] = [
        &schema::NODE,
        &schema::AGENT_SERVICE,
        &schema::NODE_SERVICE,
        &schema::CATALOG_SERVICE,
        &schema::CHECK,
        &schema::HEALTH_ENTRY,
        &schema::BINDING_IDENTITY,
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/filter_expr");
    let mut n_seeds = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed corpus") {
        let bytes = std::fs::read(entry.expect("a seed").path()).expect("a readable seed");
        let (selector, text) = bytes.split_first().expect("a seed is not empty");
        let text = std::str::from_utf8(text).expect("a seed is UTF-8");
        let shape = shapes[usize::from(*selector) % shapes.len()];
        assert!(Filter::new(text, shape).is_ok(), "seed {text:?}: {:?}", Filter::new(text, shape).err());
        n_seeds += 1;
    }
    assert!(n_seeds >= 5, "only {n_seeds} seeds");
}
