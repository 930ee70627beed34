//! Authorizer decisions, after Consul's `acl/policy_authorizer_test.go`, `policy_merger_test.go`,
//! `chained_authorizer_test.go` and `static_authorizer.go`; plus property tests.

use proptest::prelude::*;

use super::*;

fn authz(rules: &[&str], default: DefaultPolicy) -> Authorizer {
    let policies: Vec<Policy> = rules.iter().map(|r| Policy::parse(r).unwrap()).collect();
    Authorizer::new(&policies, default)
}

#[test]
fn static_authorizers_follow_consul() {
    let all = Authorizer::allow_all();
    let deny = Authorizer::deny_all();
    let manage = Authorizer::manage_all();
    // allow-all allows everything but ACL management.
    assert!(!all.acl_read() && !all.acl_write());
    assert!(all.key_write_prefix("") && all.node_read_all() && all.service_read_all() && all.operator_write());
    assert!(all.mesh_write() && all.peering_write() && all.keyring_write() && all.session_write("n"));
    assert!(manage.acl_read() && manage.acl_write() && manage.key_write("x") && manage.service_read_all());
    assert!(!deny.acl_read() && !deny.key_read("x") && !deny.node_read_all() && !deny.mesh_read());
}

#[test]
fn exact_beats_prefix_and_longest_prefix_wins() {
    let a = authz(
        &[r#"
key_prefix "" { policy = "read" }
key_prefix "foo/" { policy = "write" }
key_prefix "foo/priv/" { policy = "deny" }
key "foo/priv/open" { policy = "write" }
key "foo/exact" { policy = "deny" }
key_prefix "list/" { policy = "list" }
"#],
        DefaultPolicy::Deny,
    );
    // (key, read, list, write)
    let table = [
        ("other", true, false, false),
        ("foo/", true, true, true),
        ("foo/bar", true, true, true),
        ("foo/priv/", false, false, false),
        ("foo/priv/x", false, false, false),
        ("foo/priv/open", true, true, true),
        ("foo/priv/open/sub", false, false, false),
        ("foo/exact", false, false, false),
        ("foo/exact2", true, true, true),
        ("list/a", true, true, false),
        ("fo", true, false, false),
    ];
    for (key, read, list, write) in table {
        assert_eq!(a.key_read(key), read, "read {key}");
        assert_eq!(a.key_list(key), list, "list {key}");
        assert_eq!(a.key_write(key), write, "write {key}");
    }
}

#[test]
fn key_write_prefix_needs_write_on_the_whole_subtree() {
    let rules = r#"
key_prefix "" { policy = "write" }
key_prefix "ro/" { policy = "read" }
key "app/locked" { policy = "read" }
key "app/ok" { policy = "write" }
key_prefix "zone/" { policy = "deny" }
key_prefix "zone/open/" { policy = "write" }
"#;
    let a = authz(&[rules], DefaultPolicy::Deny);
    let table = [
        ("", false), // rules under "" withhold write
        ("app/", false),
        ("app/ok", true),
        ("app/locked", false),
        ("app/o", true),
        ("ro/", false),
        ("ro/x/", false),
        ("r", false),
        ("misc/", true),
        ("zone/", false),
        ("zone/open/", true),
        ("zone/open", false), // longest prefix covering "zone/open" is "zone/"
    ];
    for (prefix, want) in table {
        assert_eq!(a.key_write_prefix(prefix), want, "{prefix:?}");
    }
    // No covering prefix rule: the default decides unless something under the prefix denies.
    let b = authz(&[r#"key "a/b" { policy = "read" }"#], DefaultPolicy::Allow);
    assert!(!b.key_write_prefix("a/"));
    assert!(b.key_write_prefix("c/"));
    let c = authz(&[r#"key "a/b" { policy = "write" }"#], DefaultPolicy::Deny);
    assert!(!c.key_write_prefix("a/"));
}

#[test]
fn each_named_resource_by_level() {
    type Check = fn(&Authorizer, &str) -> bool;
    let kinds: [(&str, Check, Check); 6] = [
        ("agent", Authorizer::agent_read, Authorizer::agent_write),
        ("event", Authorizer::event_read, Authorizer::event_write),
        ("node", Authorizer::node_read, Authorizer::node_write),
        ("query", Authorizer::query_read, Authorizer::query_write),
        ("service", Authorizer::service_read, Authorizer::service_write),
        ("session", Authorizer::session_read, Authorizer::session_write),
    ];
    for (kind, read, write) in kinds {
        let rules = format!(
            "{kind}_prefix \"\" {{ policy = \"read\" }}\n{kind}_prefix \"w\" {{ policy = \"write\" }}\n\
             {kind}_prefix \"wd\" {{ policy = \"deny\" }}\n{kind} \"wdx\" {{ policy = \"read\" }}\n{kind} \"d\" {{ policy = \"deny\" }}"
        );
        for default in [DefaultPolicy::Allow, DefaultPolicy::Deny] {
            let a = authz(&[&rules], default);
            // (name, read, write)
            for (name, r, w) in [
                ("x", true, false),
                ("w", true, true),
                ("wz", true, true),
                ("wd", false, false),
                ("wdy", false, false),
                ("wdx", true, false),
                ("d", false, false),
                ("dd", true, false),
            ] {
                assert_eq!(read(&a, name), r, "{kind} read {name}");
                assert_eq!(write(&a, name), w, "{kind} write {name}");
            }
        }
        // No rule: the default decides.
        assert!(read(&authz(&[""], DefaultPolicy::Allow), "x") && write(&authz(&[""], DefaultPolicy::Allow), "x"));
        assert!(!read(&authz(&[""], DefaultPolicy::Deny), "x"));
    }
}

#[test]
fn scalars_and_mesh_peering_fallback_to_operator() {
    let a = authz(&[r#"operator = "write""#], DefaultPolicy::Deny);
    assert!(a.operator_read() && a.operator_write() && a.mesh_write() && a.peering_write());
    assert!(!a.keyring_read() && !a.acl_read());
    let b = authz(
        &[r#"operator = "write"
mesh = "read"
peering = "deny""#],
        DefaultPolicy::Allow,
    );
    assert!(b.mesh_read() && !b.mesh_write() && !b.peering_read());
    let c = authz(
        &[r#"acl = "read"
keyring = "deny""#],
        DefaultPolicy::Allow,
    );
    assert!(c.acl_read() && !c.acl_write() && !c.keyring_read() && c.operator_write());
    // Default allow never grants ACL management (Consul's AllowAll denies it).
    assert!(!authz(&[""], DefaultPolicy::Allow).acl_read());
    assert!(authz(&[r#"acl = "write""#], DefaultPolicy::Deny).acl_write());
}

#[test]
fn read_all_needs_a_catch_all_and_no_denies() {
    let cases: [(&[&str], DefaultPolicy, bool, bool); 8] = [
        (&[r#"node_prefix "" { policy = "read" }"#], DefaultPolicy::Deny, true, false),
        (
            &[r#"node_prefix "" { policy = "read" }
node "db" { policy = "deny" }"#],
            DefaultPolicy::Allow,
            false,
            true,
        ),
        (
            &[r#"node_prefix "" { policy = "write" }"#, r#"node_prefix "x" { policy = "deny" }"#],
            DefaultPolicy::Allow,
            false,
            true,
        ),
        (&[r#"node_prefix "a" { policy = "read" }"#], DefaultPolicy::Deny, false, false),
        (&[r#"node_prefix "a" { policy = "read" }"#], DefaultPolicy::Allow, true, true),
        (&[r#"node_prefix "" { policy = "deny" }"#], DefaultPolicy::Allow, false, true),
        (&[r#"service_prefix "" { policy = "read" }"#], DefaultPolicy::Deny, false, true),
        (&[crate::GLOBAL_READ_ONLY_RULES], DefaultPolicy::Deny, true, true),
    ];
    for (rules, default, node_all, service_all) in cases {
        let a = authz(rules, default);
        assert_eq!(a.node_read_all(), node_all, "{rules:?} {default:?}");
        assert_eq!(a.service_read_all(), service_all, "{rules:?} {default:?}");
    }
}

#[test]
fn merging_policies_deny_beats_write_beats_list_beats_read() {
    // (level in policy 1, level in policy 2, read, list, write)
    let table = [
        ("read", "write", true, true, true),
        ("write", "deny", false, false, false),
        ("deny", "read", false, false, false),
        ("read", "list", true, true, false),
        ("list", "write", true, true, true),
    ];
    for (one, two, read, list, write) in table {
        let p1 = format!("key \"k\" {{ policy = \"{one}\" }}");
        let p2 = format!("key \"k\" {{ policy = \"{two}\" }}");
        for order in [[&p1, &p2], [&p2, &p1]] {
            let a = authz(&[order[0], order[1]], DefaultPolicy::Allow);
            assert_eq!((a.key_read("k"), a.key_list("k"), a.key_write("k")), (read, list, write), "{one}+{two}");
        }
    }
    // Exact in one policy beats prefix in another; the longest prefix across policies wins.
    let a = authz(
        &[
            r#"service_prefix "" { policy = "write" }"#,
            r#"service "api" { policy = "read" }
service_prefix "db" { policy = "deny" }"#,
        ],
        DefaultPolicy::Allow,
    );
    assert!(!a.service_write("api") && a.service_read("api") && !a.service_read("db-1") && a.service_write("web"));
}

#[test]
fn merged_key_write_prefix_can_exceed_each_policy() {
    // Consul's merger keeps the strongest level per name, so a write on "a/b" in one policy lifts
    // the read on it in the other: the subtree "a/" is writable only with both. (Why property 1
    // leaves key_write_prefix out.)
    let one = r#"key_prefix "" { policy = "write" }
key "a/b" { policy = "read" }"#;
    let two = r#"key "a/b" { policy = "write" }"#;
    assert!(authz(&[one, two], DefaultPolicy::Deny).key_write_prefix("a/"));
    assert!(!authz(&[one], DefaultPolicy::Deny).key_write_prefix("a/"));
    assert!(!authz(&[two], DefaultPolicy::Deny).key_write_prefix("a/"));
}

#[test]
fn management_rules_allow_everything() {
    let a = authz(&[crate::GLOBAL_MANAGEMENT_RULES], DefaultPolicy::Deny);
    assert!(a.acl_write() && a.key_write_prefix("") && a.node_read_all() && a.service_write("x") && a.mesh_write());
    let r = authz(&[crate::GLOBAL_READ_ONLY_RULES], DefaultPolicy::Deny);
    // read does not grant list (Consul's enforce): builtin/global-read-only cannot list keys.
    assert!(r.acl_read() && !r.acl_write() && r.key_read("x") && !r.key_list("x") && !r.key_write("x"));
    assert!(r.operator_read() && !r.operator_write() && r.mesh_read() && r.peering_read() && r.keyring_read());
    assert!(r.session_read("n") && r.query_read("q") && r.event_read("e") && r.agent_read("n") && !r.agent_write("n"));
}

// ---- properties ----

const NAMES: [&str; 6] = ["", "a", "ab", "abc", "b", "ba"];
const NAMED: [&str; 7] = ["agent", "event", "key", "node", "query", "service", "session"];
const SCALARS: [&str; 5] = ["acl", "keyring", "operator", "mesh", "peering"];
const LEVELS: [&str; 4] = ["deny", "read", "write", "list"];

/// One rule: (kind index, prefix?, name index, level index); scalars use kind >= NAMED.len().
type Rule = (usize, bool, usize, usize);

fn render(rules: &[Rule]) -> String {
    let mut out = String::new();
    let mut scalars_done = Vec::new();
    for &(kind, prefix, name, level) in rules {
        let mut level = LEVELS[level];
        if kind < NAMED.len() {
            if level == "list" && NAMED[kind] != "key" {
                level = "read";
            }
            let suffix = if prefix { "_prefix" } else { "" };
            out.push_str(&format!("{}{suffix} {:?} {{ policy = \"{level}\" }}\n", NAMED[kind], NAMES[name]));
        } else {
            let scalar = SCALARS[(kind - NAMED.len()) % SCALARS.len()];
            if scalars_done.contains(&scalar) {
                continue;
            }
            scalars_done.push(scalar);
            if level == "list" {
                level = "write";
            }
            out.push_str(&format!("{scalar} = \"{level}\"\n"));
        }
    }
    out
}

fn rule() -> impl Strategy<Value = Rule> {
    (0..NAMED.len() + SCALARS.len(), any::<bool>(), 0..NAMES.len(), 0..LEVELS.len())
}

fn default_policy() -> impl Strategy<Value = DefaultPolicy> {
    prop_oneof![Just(DefaultPolicy::Allow), Just(DefaultPolicy::Deny)]
}

/// Every question with the name `name`, as (label, answer); key_write_prefix is left out (see
/// `merged_key_write_prefix_can_exceed_each_policy`).
fn answers(a: &Authorizer, name: &str) -> Vec<(&'static str, bool)> {
    vec![
        ("acl_read", a.acl_read()),
        ("acl_write", a.acl_write()),
        ("agent_read", a.agent_read(name)),
        ("agent_write", a.agent_write(name)),
        ("event_read", a.event_read(name)),
        ("event_write", a.event_write(name)),
        ("key_read", a.key_read(name)),
        ("key_list", a.key_list(name)),
        ("key_write", a.key_write(name)),
        ("keyring_read", a.keyring_read()),
        ("keyring_write", a.keyring_write()),
        ("mesh_read", a.mesh_read()),
        ("mesh_write", a.mesh_write()),
        ("node_read", a.node_read(name)),
        ("node_read_all", a.node_read_all()),
        ("node_write", a.node_write(name)),
        ("operator_read", a.operator_read()),
        ("operator_write", a.operator_write()),
        ("peering_read", a.peering_read()),
        ("peering_write", a.peering_write()),
        ("query_read", a.query_read(name)),
        ("query_write", a.query_write(name)),
        ("service_read", a.service_read(name)),
        ("service_read_all", a.service_read_all()),
        ("service_write", a.service_write(name)),
        ("session_read", a.session_read(name)),
        ("session_write", a.session_write(name)),
    ]
}

proptest! {
    /// (1) Several policies together never allow what no single one of them (nor the default alone) allows.
    #[test]
    fn merged_never_exceeds_the_union(
        sets in prop::collection::vec(prop::collection::vec(rule(), 0..8), 1..4),
        default in default_policy(),
    ) {
        let policies: Vec<Policy> = sets.iter().map(|s| Policy::parse(&render(s)).unwrap()).collect();
        let merged = Authorizer::new(&policies, default);
        let mut singles: Vec<Authorizer> = policies.iter().map(|p| Authorizer::new(std::slice::from_ref(p), default)).collect();
        singles.push(Authorizer::new(&[], default));
        for name in NAMES.iter().chain(["abcd", "c", "bab"].iter()) {
            let single_answers: Vec<_> = singles.iter().map(|a| answers(a, name)).collect();
            for (i, (label, allowed)) in answers(&merged, name).into_iter().enumerate() {
                if allowed {
                    prop_assert!(single_answers.iter().any(|s| s[i].1), "{label}({name:?}) with {sets:?}");
                }
            }
        }
    }

    /// (3) An exact deny rule in any one policy denies that name, whatever the others say.
    #[test]
    fn exact_deny_in_any_policy_denies(
        sets in prop::collection::vec(prop::collection::vec(rule(), 0..8), 1..4),
        which in any::<prop::sample::Index>(),
        kind in 0..NAMED.len(),
        name in 0..NAMES.len(),
        default in default_policy(),
    ) {
        let mut sets = sets;
        let at = which.index(sets.len());
        sets[at].push((kind, false, name, 0));
        let policies: Vec<Policy> = sets.iter().map(|s| Policy::parse(&render(s)).unwrap()).collect();
        let a = Authorizer::new(&policies, default);
        let n = NAMES[name];
        let denied = match NAMED[kind] {
            "agent" => !a.agent_read(n) && !a.agent_write(n),
            "event" => !a.event_read(n) && !a.event_write(n),
            "key" => !a.key_read(n) && !a.key_list(n) && !a.key_write(n) && !a.key_write_prefix(n),
            "node" => !a.node_read(n) && !a.node_write(n) && !a.node_read_all(),
            "query" => !a.query_read(n) && !a.query_write(n),
            "service" => !a.service_read(n) && !a.service_write(n) && !a.service_read_all(),
            _ => !a.session_read(n) && !a.session_write(n),
        };
        prop_assert!(denied, "{} {n:?} with {sets:?}", NAMED[kind]);
    }
}
