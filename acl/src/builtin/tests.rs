//! Synthesized identity rules and templated policies parse and grant what they should.

use super::*;
use crate::{Authorizer, DefaultPolicy, Policy};

fn authz(rules: &str) -> Authorizer {
    Authorizer::new(&[Policy::parse(rules).unwrap()], DefaultPolicy::Deny)
}

#[test]
fn service_identity_grants_its_service_and_sidecar() {
    let rules = service_identity_rules("web");
    assert!(rules.contains(r#"service "web-sidecar-proxy""#));
    let a = authz(&rules);
    assert!(a.service_write("web") && a.service_write("web-sidecar-proxy"));
    assert!(!a.service_write("web2") && a.service_read("db") && a.node_read("n1") && a.service_read_all());
    assert!(a.node_read_all() && !a.node_write("n1") && !a.key_read("k") && !a.acl_read());
}

#[test]
fn node_identity_grants_its_node() {
    let a = authz(&node_identity_rules("node-1"));
    assert!(a.node_write("node-1") && !a.node_write("node-2") && !a.node_read("node-2"));
    assert!(a.service_read("anything") && !a.service_write("anything"));
}

#[test]
fn identity_names() {
    for ok in ["a", "web", "web-1", "a_b", "0", "x".repeat(256).as_str()] {
        assert!(valid_identity_name(ok), "{ok:?}");
    }
    for bad in ["", "Web", "-web", "web-", "_a", "a_", "a.b", "a b", "é", "a\"", &"x".repeat(257)] {
        assert!(!valid_identity_name(bad), "{bad:?}");
    }
}

#[test]
fn templated_policies_match_consul() {
    let list = templated_policies();
    let names: Vec<_> = list.iter().map(|t| (t.name, t.template_id, !t.schema.is_empty())).collect();
    assert_eq!(
        names,
        [
            ("builtin/service", "00000000-0000-0000-0000-000000000003", true),
            ("builtin/node", "00000000-0000-0000-0000-000000000004", true),
            ("builtin/dns", "00000000-0000-0000-0000-000000000005", false),
            ("builtin/nomad-server", "00000000-0000-0000-0000-000000000006", false),
            ("builtin/api-gateway", "00000000-0000-0000-0000-000000000008", true),
            ("builtin/nomad-client", "00000000-0000-0000-0000-000000000009", false),
        ]
    );
    for t in list {
        assert!(!t.description.is_empty());
        if !t.schema.is_empty() {
            let schema: serde_json::Value = serde_json::from_str(t.schema).unwrap();
            assert_eq!(schema["required"][0], "name");
        }
        let rendered = render_templated_policy(t.name, Some("svc-1")).unwrap();
        assert!(!rendered.contains("${"), "{}", t.name);
        Policy::parse(&rendered).unwrap_or_else(|e| panic!("{}: {e}", t.name));
    }
    assert_eq!(render_templated_policy("builtin/service", Some("web")).unwrap(), service_identity_rules("web"));
    assert_eq!(render_templated_policy("builtin/node", Some("n1")).unwrap(), node_identity_rules("n1"));
}

#[test]
fn templated_policies_grant_what_they_should() {
    let dns = authz(&render_templated_policy("builtin/dns", None).unwrap());
    assert!(dns.node_read("n") && dns.service_read("s") && dns.query_read("q") && !dns.service_write("s"));
    let gw = authz(&render_templated_policy("builtin/api-gateway", Some("gw")).unwrap());
    assert!(gw.mesh_read() && !gw.mesh_write() && gw.service_write("gw") && !gw.service_write("other"));
    let ns = authz(&render_templated_policy("builtin/nomad-server", None).unwrap());
    assert!(ns.acl_write() && ns.service_write("any") && ns.agent_read("n") && !ns.agent_write("n"));
    let nc = authz(&render_templated_policy("builtin/nomad-client", Some("ignored")).unwrap());
    assert!(nc.service_write("any") && nc.key_read("k") && !nc.key_write("k") && !nc.acl_read());
}

#[test]
fn templated_policy_errors_name_the_problem() {
    let unknown = render_templated_policy("builtin/nope", Some("x")).unwrap_err();
    assert!(unknown.contains("builtin/nope"), "{unknown}");
    let missing = render_templated_policy("builtin/service", None).unwrap_err();
    assert!(missing.contains("name") && missing.contains("builtin/service"), "{missing}");
    let empty = render_templated_policy("builtin/node", Some("")).unwrap_err();
    assert!(empty.contains("name"), "{empty}");
    let hostile = render_templated_policy("builtin/api-gateway", Some("gw\" {}\nacl = \"write")).unwrap_err();
    assert!(hostile.contains("invalid"), "{hostile}");
    let upper = render_templated_policy("builtin/service", Some("Web")).unwrap_err();
    assert!(upper.contains("\"Web\""), "{upper}");
}
