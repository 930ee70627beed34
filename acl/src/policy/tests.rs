//! Parsing, validation and in-policy merging, after Consul's `acl/policy_test.go`.

use super::*;

fn err(rules: &str) -> ParseError {
    match Policy::parse(rules) {
        Ok(policy) => panic!("expected an error for {rules:?}, got {policy:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_text_is_an_empty_policy() {
    for text in ["", "  \n\t", "{}", "# only a comment\n"] {
        let policy = Policy::parse(text).unwrap();
        assert!(policy.is_empty(), "{text:?}");
    }
}

#[test]
fn every_rule_form_parses() {
    let rules = r#"
acl = "read"
keyring = "write"
operator = "read"
mesh = "write"
peering = "deny"
agent "a1" { policy = "read" }
agent_prefix "a" { policy = "write" }
event "e1" { policy = "deny" }
event_prefix "" { policy = "read" }
key "k/1" { policy = "list" }
key_prefix "k/" { policy = "write" }
node "n1" { policy = "read" }
node_prefix "" { policy = "deny" }
query "q1" { policy = "write" }
query_prefix "q" { policy = "read" }
service "s1" {
  policy = "write"
  intentions = "read"
}
service_prefix "" { policy = "read" }
session "n1" { policy = "write" }
session_prefix "" { policy = "read" }
"#;
    let p = Policy::parse(rules).unwrap();
    use AccessLevel::*;
    assert_eq!(p.scalars.get(&Resource::Acl), Some(&Read));
    assert_eq!(p.scalars.get(&Resource::Keyring), Some(&Write));
    assert_eq!(p.scalars.get(&Resource::Operator), Some(&Read));
    assert_eq!(p.scalars.get(&Resource::Mesh), Some(&Write));
    assert_eq!(p.scalars.get(&Resource::Peering), Some(&Deny));
    let t = |r: Resource| p.tables.get(&r).cloned().unwrap_or_default();
    assert_eq!(t(Resource::Agent).exact.get("a1"), Some(&Read));
    assert_eq!(t(Resource::Agent).prefix.get("a"), Some(&Write));
    assert_eq!(t(Resource::Event).exact.get("e1"), Some(&Deny));
    assert_eq!(t(Resource::Key).exact.get("k/1"), Some(&List));
    assert_eq!(t(Resource::Key).prefix.get("k/"), Some(&Write));
    assert_eq!(t(Resource::Node).prefix.get(""), Some(&Deny));
    assert_eq!(t(Resource::Query).exact.get("q1"), Some(&Write));
    assert_eq!(t(Resource::Service).exact.get("s1"), Some(&Write));
    assert_eq!(p.intentions.exact.get("s1"), Some(&Read));
    assert_eq!(t(Resource::Session).prefix.get(""), Some(&Read));
}

#[test]
fn json_and_hcl_are_equivalent() {
    let cases = [
        (
            r#"key_prefix "" { policy = "read" }
key "foo/bar" { policy = "write" }
operator = "read""#,
            r#"{"key_prefix": {"": {"policy": "read"}}, "key": {"foo/bar": {"policy": "write"}}, "operator": "read"}"#,
        ),
        (
            r#"service "web" {
  policy = "write"
  intentions = "deny"
}
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
mesh = "write""#,
            r#"  {"service": [{"web": {"policy": "write", "intentions": "deny"}}],
                  "service_prefix": {"": [{"policy": "read"}]},
                  "node_prefix": {"": {"policy": "read"}}, "mesh": "write"}"#,
        ),
        (GLOBAL_READ_ONLY_JSON, crate::GLOBAL_READ_ONLY_RULES),
    ];
    for (a, b) in cases {
        assert_eq!(Policy::parse(a).unwrap(), Policy::parse(b).unwrap(), "{a}\n---\n{b}");
    }
}

const GLOBAL_READ_ONLY_JSON: &str = r#"{
  "acl": "read", "keyring": "read", "operator": "read", "mesh": "read", "peering": "read",
  "agent_prefix": {"": {"policy": "read"}}, "event_prefix": {"": {"policy": "read"}},
  "key_prefix": {"": {"policy": "read"}}, "node_prefix": {"": {"policy": "read"}},
  "query_prefix": {"": {"policy": "read"}}, "service_prefix": {"": {"policy": "read", "intentions": "read"}},
  "session_prefix": {"": {"policy": "read"}}
}"#;

#[test]
fn hcl_object_form_is_the_block_form() {
    let block = Policy::parse(r#"key "a" { policy = "read" }"#).unwrap();
    let object = Policy::parse(r#"key = { "a" = { policy = "read" } }"#).unwrap();
    assert_eq!(block, object);
}

#[test]
fn levels_are_case_insensitive_like_consul() {
    assert_eq!(Policy::parse(r#"operator = "READ""#).unwrap(), Policy::parse(r#"operator = "read""#).unwrap());
}

#[test]
fn duplicate_rules_in_one_policy_merge_by_precedence() {
    use AccessLevel::*;
    // (first, second, merged): deny beats write beats list beats read, in either order.
    let table = [
        ("read", "write", Write),
        ("write", "read", Write),
        ("write", "deny", Deny),
        ("deny", "write", Deny),
        ("read", "list", List),
        ("list", "write", Write),
        ("read", "read", Read),
        ("deny", "read", Deny),
    ];
    for (first, second, merged) in table {
        let rules = format!("key \"a\" {{ policy = \"{first}\" }}\nkey \"a\" {{ policy = \"{second}\" }}");
        let p = Policy::parse(&rules).unwrap();
        assert_eq!(p.tables[&Resource::Key].exact.get("a"), Some(&merged), "{first} + {second}");
        let prefix = rules.replace("key ", "key_prefix ");
        let p = Policy::parse(&prefix).unwrap();
        assert_eq!(p.tables[&Resource::Key].prefix.get("a"), Some(&merged), "{first} + {second} (prefix)");
    }
}

#[test]
fn errors_name_line_and_resource() {
    let e = err("key \"a\" { policy = \"read\" }\nkey_prefix \"lb/\" {\n  policy = \"reed\"\n}\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.resource.as_deref(), Some(r#"key_prefix "lb/""#));
    assert_eq!(e.to_string(), r#"Failed to parse ACL rules: line 3: key_prefix "lb/": invalid policy "reed""#);

    // (rules, line, resource, message fragment)
    let table: &[(&str, Option<usize>, Option<&str>, &str)] = &[
        ("operator = \"read\"\nfoo \"x\" { policy = \"read\" }", Some(2), Some("foo"), "unknown rule type"),
        ("\n\nbogus = \"read\"", Some(3), Some("bogus"), "unknown rule type"),
        (
            "service \"web\" {\n  policy = \"read\"\n  colour = \"red\"\n}",
            Some(3),
            Some(r#"service "web""#),
            "unknown attribute",
        ),
        ("node \"n\" {\n}", Some(1), Some(r#"node "n""#), "missing policy"),
        ("node \"n\" { policy = \"list\" }", Some(1), Some(r#"node "n""#), "invalid policy \"list\""),
        (
            "service_prefix \"\" {\n policy = \"read\"\n intentions = \"list\"\n}",
            Some(3),
            Some(r#"service_prefix """#),
            "intentions",
        ),
        ("\noperator = \"sudo\"", Some(2), Some("operator"), "invalid policy \"sudo\""),
        ("acl = \"list\"", Some(1), Some("acl"), "invalid policy"),
        // The parser refuses a repeated attribute itself (as Consul's DecodeErrorOnDuplicates does),
        // naming the block it is in.
        ("mesh = \"read\"\nmesh = \"write\"", Some(2), None, "redefined attribute"),
        ("key \"a\" {\n policy = \"read\"\n policy = \"write\"\n}", Some(3), Some(r#"key "a""#), "redefined attribute"),
        ("key \"a\" { intentions = \"read\" }", Some(1), Some(r#"key "a""#), "unknown attribute"),
        ("keyring = 3", Some(1), Some("keyring"), "expected a string"),
        ("key = \"read\"", Some(1), Some("key"), "expected a block"),
        ("key \"a\" {\n policy = read\n}", Some(2), Some(r#"key "a""#), "expected a string"),
        ("key \"a\" { policy = \"read\" ", Some(1), None, ""),
        (r#"{"key": {"a": {"policy": "reed"}}}"#, None, Some(r#"key "a""#), "invalid policy \"reed\""),
        (r#"{"identity": {"a": {"policy": "read"}}}"#, None, Some("identity"), "unknown rule type"),
        ("{\n\"key\": }", Some(2), None, ""),
        ("[1]", Some(1), None, ""),
    ];
    for &(rules, line, resource, fragment) in table {
        let e = err(rules);
        assert_eq!(e.line, line, "{rules:?}: {e}");
        assert_eq!(e.resource.as_deref(), resource, "{rules:?}: {e}");
        assert!(e.message.contains(fragment), "{rules:?}: {e}");
        assert!(e.to_string().starts_with("Failed to parse ACL rules: "), "{e}");
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("key = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(err(&deep).message.contains("nesting"));
    let deep_json = format!("{{\"key\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(err(&deep_json).message.contains("nesting"));
}

proptest::proptest! {
    /// Any text: `Policy::parse` answers, never panics.
    #[test]
    fn parse_never_panics(text in ".{0,200}") {
        let _ = Policy::parse(&text);
    }

    /// Rule-shaped text (tokens of the language, shuffled): still no panic.
    #[test]
    fn parse_never_panics_on_rule_shaped_text(tokens in proptest::collection::vec(proptest::sample::select(vec![
        "key", "key_prefix", "service", "intentions", "policy", "operator", "acl", "=", "{", "}", "[", "]",
        "\"", "\"read\"", "\"list\"", "\"a\"", "\"\"", ",", ":", "\n", " ", "#", "//", "/*", "*/", "${", "<<EOT\n",
        "EOT\n", "1", "true", "null", "\\", "é",
    ]), 0..40)) {
        let text: String = tokens.concat();
        let _ = Policy::parse(&text);
    }
}
