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
fn consul_leniency_blocks_side_by_side_and_brace_on_the_attribute_line() {
    // Both accepted by Consul (HCL v1), refused by HCL2 parsers with "expected newline or eof".
    let p = Policy::parse(r#"service "web" { policy = "write" }  key_prefix "lb/web/" { policy = "read" }"#).unwrap();
    assert_eq!(p.tables[&Resource::Service].exact.get("web"), Some(&AccessLevel::Write));
    assert_eq!(p.tables[&Resource::Key].prefix.get("lb/web/"), Some(&AccessLevel::Read));
    assert_eq!(p.tables.len(), 2);
    assert!(p.scalars.is_empty() && p.intentions.exact.is_empty());

    assert_eq!(
        Policy::parse("key_prefix \"\" {\n policy = \"read\" }").unwrap().tables[&Resource::Key].prefix.get(""),
        Some(&AccessLevel::Read)
    );
    let e = err("key_prefix \"\" {\n policy = \"reed\" }");
    assert_eq!(e.line, Some(2));
    assert_eq!(e.resource.as_deref(), Some(r#"key_prefix """#));
    assert_eq!(e.to_string(), r#"Failed to parse ACL rules: line 2: key_prefix "": invalid policy "reed""#);
}

/// Every text in `texts` parses to the same policy as `want`.
fn same(want: &str, texts: &[&str]) {
    let want_policy = Policy::parse(want).unwrap();
    assert!(!want_policy.is_empty());
    for text in texts {
        match Policy::parse(text) {
            Ok(p) => assert_eq!(p, want_policy, "{text:?}"),
            Err(e) => panic!("{text:?}: {e}"),
        }
    }
}

#[test]
fn layouts_consul_accepts_parse_alike() {
    let canonical = "key \"a\" {\n  policy = \"read\"\n}\nservice \"web\" {\n  policy = \"write\"\n  intentions = \"read\"\n}\noperator = \"read\"\n";
    same(
        canonical,
        &[
            // several blocks (and attributes) per line
            r#"key "a" { policy = "read" } service "web" { policy = "write" intentions = "read" } operator = "read""#,
            // commas between items, trailing commas
            r#"key "a" { policy = "read", }, service "web" { policy = "write", intentions = "read", }, operator = "read","#,
            // comments of all three kinds
            "# hash\nkey \"a\" { // slashes\n  policy = \"read\" /* block */\n}\n/* a\n longer { one } */\nservice \"web\" {\n  policy = \"write\" # trailing\n  intentions = /* inline */ \"read\"\n}\noperator = \"read\" // end",
            // CRLF line endings
            &canonical.replace('\n', "\r\n"),
            // bare-word labels, quoted keys, the object form, a block without its label
            "key a { policy = \"read\" }\n\"service\" web { \"policy\" = \"write\"\n intentions = \"read\" }\noperator = \"read\"",
            "key = { \"a\" = { policy = \"read\" } }\nservice = { web = { policy = \"write\", intentions = \"read\" } }\noperator = \"read\"",
            "key { a { policy = \"read\" } }\nservice { web { policy = \"write\" intentions = \"read\" } }\noperator = \"read\"",
            // a list of objects, as HCL v1 (and JSON) allow
            "key = [{ a = { policy = \"read\" } }]\nservice \"web\" { policy = \"write\"\nintentions = \"read\" }\noperator = \"read\"",
            // whitespace everywhere
            "\n\n  key\n\"a\"\n{\npolicy\n=\n\"read\"\n}\t\tservice \"web\"{policy=\"write\"intentions=\"read\"}operator=\"read\"\n\n",
        ],
    );
    // The error still names its line in a CRLF text.
    let e = err("key \"a\" {\r\n  policy = \"read\"\r\n}\r\nkey \"b\" {\r\n  policy = \"sudo\"\r\n}\r\n");
    assert_eq!((e.line, e.resource.as_deref()), (Some(5), Some(r#"key "b""#)));
}

#[test]
fn labels_with_escapes_and_unicode() {
    let p = Policy::parse(
        "key \"a\\\"b\" { policy = \"read\" }\nkey \"back\\\\slash\" { policy = \"write\" }\nkey \"tab\\there\" { policy = \"deny\" }\nservice \"café-日本\" { policy = \"read\" }\nservice \"\\u00e9\\U0001F600\" { policy = \"write\" }\nnode_prefix \"ünï/\" { policy = \"read\" }",
    )
    .unwrap();
    let keys = &p.tables[&Resource::Key].exact;
    assert_eq!(keys.get("a\"b"), Some(&AccessLevel::Read));
    assert_eq!(keys.get("back\\slash"), Some(&AccessLevel::Write));
    assert_eq!(keys.get("tab\there"), Some(&AccessLevel::Deny));
    let services = &p.tables[&Resource::Service].exact;
    assert_eq!(services.get("café-日本"), Some(&AccessLevel::Read));
    assert_eq!(services.get("é😀"), Some(&AccessLevel::Write));
    assert_eq!(p.tables[&Resource::Node].prefix.get("ünï/"), Some(&AccessLevel::Read));
    // An error names the label as decoded.
    let e = err("key \"a\\\"b\" {\n policy = \"reed\"\n}");
    assert_eq!(e.resource.as_deref(), Some(r#"key "a\"b""#));
}

#[test]
fn heredoc_rules() {
    // A heredoc value keeps its final newline (HCL v1), which is no level in Consul either.
    let e = err("key \"a\" {\n  policy = <<EOF\nread\nEOF\n}");
    assert_eq!((e.line, e.resource.as_deref()), (Some(2), Some(r#"key "a""#)));
    assert!(e.message.contains(r#"invalid policy "read\n""#), "{e}");
    // Heredocs elsewhere do not derail the items around them: `}` and `"` inside are text.
    let e =
        err("key \"a\" { policy = \"read\" }\nacl = <<-EOT\n  } \"write\" {\n  EOT\nkey \"b\" { policy = \"write\" }");
    assert_eq!((e.line, e.resource.as_deref()), (Some(2), Some("acl")));
    assert!(e.message.contains(r#"invalid policy "} \"write\" {\n""#), "{e}");
    // An unterminated heredoc names its line.
    let e = err("key \"a\" {\n  policy = <<EOF\nread\n}\n");
    assert_eq!((e.line, e.resource.as_deref()), (Some(2), Some(r#"key "a""#)));
    assert!(e.message.contains("unterminated heredoc"), "{e}");
}

#[test]
fn unterminated_strings_and_blocks_name_their_line() {
    let e = err("key \"a\" { policy = \"read\" }\nkey \"b\" {\n  policy = \"read\n}\n");
    assert_eq!((e.line, e.resource.as_deref()), (Some(3), Some(r#"key "b""#)));
    assert!(e.message.contains("unterminated string"), "{e}");
    let e = err(
        "key \"a\" { policy = \"read\" }\nkey_prefix \"lb/\" {\n  policy = \"read\"\n\nnode \"n\" { policy = \"read\" }\n",
    );
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains(r#"the block key_prefix "lb/" { opened here is never closed"#), "{e}");
    let e = err("key \"unterminated { policy = \"read\" }");
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn numbers_bools_and_bare_words_are_type_errors() {
    for (value, kind) in [("3", "a number"), ("1.5", "a number"), ("true", "a bool"), ("write", "an unquoted word")] {
        let e = err(&format!("service \"web\" {{\n  policy = {value}\n}}"));
        assert_eq!((e.line, e.resource.as_deref()), (Some(2), Some(r#"service "web""#)), "{e}");
        assert!(e.message.contains(&format!("expected a string, got {kind}")), "{e}");
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
        "EOT\n", "1", "true", "null", "\\", "é", "<<-EOT\n", "  EOT", "\r\n", "\r", "'", "\\u00e9", "\\x", "\\7",
        "\\U0001F600", "-", "-1", "1e", "$", "${", "<", "<<", "/", "*", "web", "service_prefix", "\t", "\u{0}",
    ]), 0..60)) {
        let text: String = tokens.concat();
        let _ = Policy::parse(&text);
    }

    /// Arbitrary bytes (as text, lossily): no panic either.
    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = Policy::parse(&String::from_utf8_lossy(&bytes));
    }

    /// A random rule set renders to HCL in a canonical multi-line layout, on one line, and with
    /// CRLFs, commas and comments; all parse to the policy the rule set means.
    #[test]
    fn layouts_of_a_rule_set_parse_to_the_same_policy(set in rule_set()) {
        let want = set.policy();
        for layout in [Layout::Canonical, Layout::OneLine, Layout::Noisy] {
            let text = set.render(layout);
            match Policy::parse(&text) {
                Ok(policy) => proptest::prop_assert_eq!(&policy, &want, "{:?}\n{}", layout, text),
                Err(e) => proptest::prop_assert!(false, "{:?}: {}\n{}", layout, e, text),
            }
        }
    }
}

/// A rule set for the layout property: scalar rules (each at most once, as Consul wants) and
/// named rules (repeats allowed: they merge).
#[derive(Debug, Clone)]
struct RuleSet {
    scalars: Vec<(Resource, AccessLevel)>,
    named: Vec<Named>,
}

#[derive(Debug, Clone)]
struct Named {
    resource: Resource,
    prefix: bool,
    name: String,
    policy: AccessLevel,
    intentions: Option<AccessLevel>,
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    Canonical,
    OneLine,
    Noisy,
}

fn access_level() -> impl proptest::strategy::Strategy<Value = AccessLevel> {
    proptest::sample::select(vec![AccessLevel::Deny, AccessLevel::Read, AccessLevel::Write])
}

fn rule_set() -> impl proptest::strategy::Strategy<Value = RuleSet> {
    use proptest::prelude::*;
    let scalars = proptest::sample::subsequence(
        vec![Resource::Acl, Resource::Keyring, Resource::Mesh, Resource::Operator, Resource::Peering],
        0..=5,
    )
    .prop_flat_map(|resources| {
        let n = resources.len();
        (Just(resources), proptest::collection::vec(access_level(), n))
    })
    .prop_map(|(resources, levels)| resources.into_iter().zip(levels).collect::<Vec<_>>());
    let resource = proptest::sample::select(vec![
        Resource::Agent,
        Resource::Event,
        Resource::Key,
        Resource::Node,
        Resource::Query,
        Resource::Service,
        Resource::Session,
    ]);
    // Names with the characters that need escaping, unicode, and HCL punctuation (no `${`,
    // which HCL v1 copies verbatim, so no escape could be written inside it).
    let name = "[a-z0-9/_. {}\\[\\]=#\"\\\\\n\té日😀\u{1}-]{0,8}";
    let named = (resource, any::<bool>(), name, access_level(), proptest::option::of(access_level())).prop_map(
        |(resource, prefix, name, policy, intentions)| Named {
            resource,
            prefix,
            name,
            policy,
            intentions: intentions.filter(|_| resource == Resource::Service),
        },
    );
    (scalars, proptest::collection::vec(named, 0..8)).prop_map(|(scalars, named)| RuleSet { scalars, named })
}

/// A string literal HCL v1 reads back as `s`.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl RuleSet {
    /// The policy the rules mean, built directly (named repeats merge by precedence).
    fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        for &(resource, level) in &self.scalars {
            policy.scalars.insert(resource, level);
        }
        for rule in &self.named {
            policy.tables.entry(rule.resource).or_default().insert(rule.prefix, &rule.name, rule.policy);
            if let Some(intentions) = rule.intentions {
                policy.intentions.insert(rule.prefix, &rule.name, intentions);
            }
        }
        policy
    }

    fn render(&self, layout: Layout) -> String {
        let mut items = Vec::new();
        for &(resource, level) in &self.scalars {
            items.push(match layout {
                Layout::Noisy => format!("{resource} /* level */ = {}, # trailing", quote(level.as_str())),
                _ => format!("{resource} = {}", quote(level.as_str())),
            });
        }
        for rule in &self.named {
            let word = if rule.prefix { format!("{}_prefix", rule.resource) } else { rule.resource.to_string() };
            let mut attrs = vec![format!("policy = {}", quote(rule.policy.as_str()))];
            if let Some(intentions) = rule.intentions {
                attrs.push(format!("intentions = {}", quote(intentions.as_str())));
            }
            items.push(match layout {
                Layout::Canonical => format!("{word} {} {{\n  {}\n}}", quote(&rule.name), attrs.join("\n  ")),
                Layout::OneLine => format!("{word} {} {{ {} }}", quote(&rule.name), attrs.join(" ")),
                Layout::Noisy => {
                    format!("{word} // the rule\n{} {{ {}, }}, ", quote(&rule.name), attrs.join(", /* and */\n"))
                }
            });
        }
        match layout {
            Layout::Canonical => items.join("\n") + "\n",
            Layout::OneLine => items.join(" "),
            Layout::Noisy => items.join("\n").replace('\n', "\r\n"),
        }
    }
}
