//! Tests of `roster acl` argument parsing and of the ACL output formats against fixed JSON (no sockets).

use serde_json::{Value, json};

use super::format;
use super::run::agent_token_kind;
use super::*;
use crate::cli::{Cli, Command, parse};

/// Parses a command line given as one string (split on spaces), program name included.
fn acl(line: &str) -> AclCommand {
    match parse(line.split(' ')) {
        Ok(Cli { command: Command::Acl(command) }) => command,
        Ok(other) => panic!("{line:?} is not an acl command: {other:?}"),
        Err(err) => panic!("{line:?} did not parse: {err}"),
    }
}

/// Checks a formatter's output line by line, so a failure shows the first differing line.
fn check(actual: &str, expect: &str) {
    assert_eq!(actual.lines().collect::<Vec<_>>(), expect.lines().collect::<Vec<_>>(), "\n{actual}");
    assert_eq!(actual, expect);
}

/// A token with every section Consul's formatter prints.
fn full_token() -> Value {
    json!({
        "AccessorID": "6a1253d2-1785-24fd-91c2-f8e78c745511",
        "SecretID": "45a3bd52-07c7-47a4-52fd-0745e0cfe967",
        "Description": "web token",
        "Policies": [{"ID": "b3e1cc5c-7f0e-4c7a-8e5c-f20c1a0f6a11", "Name": "web-read"}],
        "Roles": [{"ID": "3b0a78fe-b9c3-40de-b8ea-7d4d6674b366", "Name": "ops"}],
        "ServiceIdentities": [{"ServiceName": "web"}, {"ServiceName": "db", "Datacenters": ["east", "west"]}],
        "NodeIdentities": [{"NodeName": "node-1", "Datacenter": "dc1"}],
        "TemplatedPolicies": [{"TemplateName": "builtin/service", "TemplateVariables": {"Name": "api"}}],
        "Local": false,
        "CreateTime": "2024-05-01T10:00:00.500Z",
        "ExpirationTime": "2024-05-02T10:00:00Z",
        "Hash": "UuiRkOQPRCvUQQ/wcMGoGw==",
        "CreateIndex": 12,
        "ModifyIndex": 14
    })
}

#[test]
fn token_create_takes_every_consul_flag() {
    let line = "roster acl token create -description d -policy-id p1 -policy-id p2 -policy-name n1 \
                -role-id r1 -role-name rn -service-identity web -service-identity db:east,west \
                -node-identity node-1:dc1 -templated-policy builtin/service -var name:api -expires-ttl 1h \
                -local -accessor A -secret S -format json -token-file /t -http-addr h:1";
    let AclCommand::Token(TokenCommand::Create(args)) = acl(&line.split_whitespace().collect::<Vec<_>>().join(" "))
    else {
        panic!("not token create");
    };
    assert_eq!(args.description.as_deref(), Some("d"));
    assert_eq!(args.links.policy_id, ["p1", "p2"]);
    assert_eq!(args.links.policy_name, ["n1"]);
    assert_eq!((args.role_id.as_slice(), args.role_name.as_slice()), (&["r1".to_owned()][..], &["rn".to_owned()][..]));
    assert_eq!(args.links.service_identity, ["web", "db:east,west"]);
    assert_eq!(args.links.node_identity, ["node-1:dc1"]);
    assert_eq!(
        (args.templated_policy.as_deref(), args.vars.as_slice()),
        (Some("builtin/service"), &["name:api".to_owned()][..])
    );
    assert_eq!(args.expires_ttl.as_deref(), Some("1h"));
    assert!(args.local);
    assert_eq!((args.accessor.as_deref(), args.secret.as_deref()), (Some("A"), Some("S")));
    assert_eq!(args.output.format, OutputFormat::Json);
    assert_eq!(args.http.token_file.as_deref(), Some(std::path::Path::new("/t")));
}

#[test]
fn token_read_update_clone_delete_accept_accessor_id_and_the_older_id() {
    for line in ["roster acl token read -accessor-id abc", "roster acl token read -id abc"] {
        let AclCommand::Token(TokenCommand::Read(args)) = acl(line) else { panic!("{line}: not token read") };
        assert_eq!(args.accessor_id.as_deref(), Some("abc"), "{line}");
        assert!(!args.self_token && !args.expanded);
    }
    let AclCommand::Token(TokenCommand::Read(args)) = acl("roster acl token read -self -expanded -meta") else {
        panic!("not token read");
    };
    assert!(args.self_token && args.expanded && args.output.meta);

    let AclCommand::Token(TokenCommand::Update(args)) =
        acl("roster acl token update -id abc -append-policy-name extra -policy-id p -description new")
    else {
        panic!("not token update");
    };
    assert_eq!(args.accessor_id.as_deref(), Some("abc"));
    assert_eq!(
        (args.append_policy_name.as_slice(), args.links.policy_id.as_slice()),
        (&["extra".to_owned()][..], &["p".to_owned()][..])
    );

    let AclCommand::Token(TokenCommand::Clone(args)) = acl("roster acl token clone -id abc -description copy") else {
        panic!("not token clone");
    };
    assert_eq!((args.accessor_id.as_deref(), args.description.as_deref()), (Some("abc"), Some("copy")));
    let AclCommand::Token(TokenCommand::Delete(args)) = acl("roster acl token delete -accessor-id=abc") else {
        panic!("not token delete");
    };
    assert_eq!(args.accessor_id.as_deref(), Some("abc"));
    assert!(matches!(acl("roster acl token list -format=json"), AclCommand::Token(TokenCommand::List(_))));
}

#[test]
fn policy_role_and_agent_token_commands_parse() {
    let AclCommand::Policy(PolicyCommand::Create(args)) = acl(
        "roster acl policy create -name web -description d -rules @rules.hcl -valid-datacenter dc1 -valid-datacenter dc2",
    ) else {
        panic!("not policy create");
    };
    assert_eq!((args.name.as_deref(), args.rules.as_deref()), (Some("web"), Some("@rules.hcl")));
    assert_eq!(args.valid_datacenter, ["dc1", "dc2"]);
    // `-` (stdin) stays a value, not a flag.
    let AclCommand::Policy(PolicyCommand::Update(args)) = acl("roster acl policy update -name web -rules -") else {
        panic!("not policy update");
    };
    assert_eq!((args.select.name.as_deref(), args.rules.as_deref()), (Some("web"), Some("-")));
    let AclCommand::Policy(PolicyCommand::Delete(args)) = acl("roster acl policy delete -id 1234") else {
        panic!("not policy delete");
    };
    assert_eq!(args.select.id.as_deref(), Some("1234"));

    let AclCommand::Role(RoleCommand::Create(args)) =
        acl("roster acl role create -name ops -policy-name web -service-identity api -node-identity n:dc1")
    else {
        panic!("not role create");
    };
    assert_eq!((args.name.as_deref(), args.links.policy_name.as_slice()), (Some("ops"), &["web".to_owned()][..]));
    assert!(matches!(acl("roster acl role read -name ops"), AclCommand::Role(RoleCommand::Read(_))));
    assert!(
        matches!(acl("roster acl role update -id x -no-merge"), AclCommand::Role(RoleCommand::Update(a)) if a.no_merge)
    );

    let AclCommand::SetAgentToken(args) = acl("roster acl set-agent-token -token root agent s3cret") else {
        panic!("not set-agent-token");
    };
    assert_eq!(
        (args.kind.as_str(), args.token_value.as_str(), args.http.token.as_deref()),
        ("agent", "s3cret", Some("root"))
    );

    let AclCommand::TemplatedPolicy(TemplatedPolicyCommand::Preview(args)) =
        acl("roster acl templated-policy preview -name builtin/service -var name:web")
    else {
        panic!("not templated-policy preview");
    };
    assert_eq!((args.name.as_deref(), args.vars.as_slice()), (Some("builtin/service"), &["name:web".to_owned()][..]));
}

#[test]
fn auth_method_binding_rule_login_and_logout_take_consuls_flags() {
    let AclCommand::AuthMethod(AuthMethodCommand::Create(args)) =
        acl("roster acl auth-method create -type jwt -name ci -display-name CI -description x -max-token-ttl 1h \
         -token-locality global -config @jwt.json")
    else {
        panic!("not auth-method create");
    };
    assert_eq!(
        (args.method_type.as_deref(), args.name.as_deref(), args.max_token_ttl.as_deref(), args.config.as_deref()),
        (Some("jwt"), Some("ci"), Some("1h"), Some("@jwt.json"))
    );
    assert_eq!(args.token_locality.as_deref(), Some("global"));
    let AclCommand::BindingRule(BindingRuleCommand::Create(args)) = acl(
        "roster acl binding-rule create -method ci -bind-type service -bind-name ${value.service} -selector value.role==web",
    ) else {
        panic!("not binding-rule create");
    };
    assert_eq!(
        (args.method.as_deref(), args.bind_type.as_deref(), args.bind_name.as_deref(), args.selector.as_deref()),
        (Some("ci"), Some("service"), Some("${value.service}"), Some("value.role==web"))
    );
    let line = "roster login -method ci -bearer-token-file jwt.txt -token-sink-file out -meta pod=web-1 -meta ns=a";
    let Ok(Cli { command: Command::Login(args) }) = parse(line.split(' ')) else { panic!("login did not parse") };
    assert_eq!((args.method.as_deref(), args.meta.len()), (Some("ci"), 2));
    assert!(matches!(parse("roster logout -token abc".split(' ')), Ok(Cli { command: Command::Logout(_) })));
    // Flags of Consul's other method types are not silently taken.
    assert!(parse("roster acl auth-method create -type kubernetes -kubernetes-host x".split(' ')).is_err());
    assert!(parse("roster acl token create -format yaml".split(' ')).is_err());
}

#[test]
fn agent_token_kinds_include_consuls_legacy_names() {
    let cases = [
        ("default", "default"),
        ("acl_token", "default"),
        ("agent", "agent"),
        ("acl_agent_token", "agent"),
        ("agent_recovery", "agent_recovery"),
        ("recovery", "agent_recovery"),
        ("agent_master", "agent_recovery"),
        ("acl_agent_master_token", "agent_recovery"),
        ("replication", "replication"),
        ("acl_replication_token", "replication"),
        ("config_file_service_registration", "config_file_service_registration"),
        ("dns", "dns"),
    ];
    for (kind, path) in cases {
        assert_eq!(agent_token_kind(kind), Some(path), "{kind}");
    }
    assert_eq!(agent_token_kind("master"), None);
}

#[test]
fn token_pretty_is_consuls_format() {
    check(
        &format::token_pretty(&full_token(), false),
        "AccessorID:       6a1253d2-1785-24fd-91c2-f8e78c745511\n\
         SecretID:         45a3bd52-07c7-47a4-52fd-0745e0cfe967\n\
         Description:      web token\n\
         Local:            false\n\
         Create Time:      2024-05-01 10:00:00.5 +0000 UTC\n\
         Expiration Time:  2024-05-02 10:00:00 +0000 UTC\n\
         Policies:\n   b3e1cc5c-7f0e-4c7a-8e5c-f20c1a0f6a11 - web-read\n\
         Roles:\n   3b0a78fe-b9c3-40de-b8ea-7d4d6674b366 - ops\n\
         Service Identities:\n   web (Datacenters: all)\n   db (Datacenters: east, west)\n\
         Node Identities:\n   node-1 (Datacenter: dc1)\n\
         Templated Policies:\n   builtin/service\n      Name: api\n      Datacenters: all\n",
    );
}

#[test]
fn token_pretty_with_meta_shows_the_hash_in_hex_and_the_indexes() {
    let bootstrap = json!({
        "AccessorID": "a", "SecretID": "s", "Description": "Bootstrap Token (Global Management)",
        "Policies": [{"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"}],
        "Local": false, "CreateTime": "2024-05-01T12:00:00.123456789+02:00",
        "Hash": "3q2+7w==", "CreateIndex": 5, "ModifyIndex": 6
    });
    check(
        &format::token_pretty(&bootstrap, true),
        "AccessorID:       a\nSecretID:         s\nDescription:      Bootstrap Token (Global Management)\n\
         Local:            false\nCreate Time:      2024-05-01 12:00:00.123456789 +0200 +0200\n\
         Hash:             deadbeef\nCreate Index:     5\nModify Index:     6\n\
         Policies:\n   00000000-0000-0000-0000-000000000001 - global-management\n",
    );
}

#[test]
fn token_list_separates_tokens_by_a_blank_line() {
    let tokens = json!([
        {"AccessorID": "a1", "SecretID": "s1", "Description": "one", "Local": true, "CreateTime": "2024-05-01T10:00:00Z"},
        {"AccessorID": "a2", "SecretID": "s2", "Description": "two", "Local": false, "CreateTime": "2024-05-01T10:00:00Z",
         "Policies": [{"ID": "p", "Name": "n"}]}
    ]);
    let text = format::token_list_pretty(&tokens, false).expect("list");
    check(
        &text,
        "AccessorID:       a1\nSecretID:         s1\nDescription:      one\nLocal:            true\n\
         Create Time:      2024-05-01 10:00:00 +0000 UTC\n\
         \n\
         AccessorID:       a2\nSecretID:         s2\nDescription:      two\nLocal:            false\n\
         Create Time:      2024-05-01 10:00:00 +0000 UTC\nPolicies:\n   p - n\n",
    );
    assert!(format::token_list_pretty(&json!({}), false).is_err());
}

#[test]
fn policy_formats_are_consuls() {
    let policy = json!({
        "ID": "e359bd81-baca-903e-7e64-1ccd9fdc78f5", "Name": "web", "Description": "web access",
        "Rules": "service \"web\" {\n  policy = \"write\"\n}", "Datacenters": ["dc1", "dc2"],
        "Hash": "AAE=", "CreateIndex": 3, "ModifyIndex": 4
    });
    check(
        &format::policy_pretty(&policy, false),
        "ID:           e359bd81-baca-903e-7e64-1ccd9fdc78f5\nName:         web\nDescription:  web access\n\
         Datacenters:  dc1, dc2\nRules:\nservice \"web\" {\n  policy = \"write\"\n}",
    );
    let list = format::policy_list_pretty(&json!([policy, {"ID": "x", "Name": "other"}]), true).expect("list");
    check(
        &list,
        "web:\n   ID:           e359bd81-baca-903e-7e64-1ccd9fdc78f5\n   Description:  web access\n\
         \x20  Datacenters:  dc1, dc2\n   Hash:         0001\n   Create Index: 3\n   Modify Index: 4\n\
         other:\n   ID:           x\n   Description:  \n   Datacenters:  \n   Hash:         \n\
         \x20  Create Index: 0\n   Modify Index: 0\n",
    );
}

#[test]
fn role_formats_are_consuls() {
    let role = json!({
        "ID": "r-1", "Name": "ops", "Description": "operators",
        "Policies": [{"ID": "p-1", "Name": "web"}],
        "ServiceIdentities": [{"ServiceName": "api", "Datacenters": ["dc1"]}],
        "NodeIdentities": [{"NodeName": "n1", "Datacenter": "dc1"}]
    });
    check(
        &format::role_pretty(&role, false),
        "ID:           r-1\nName:         ops\nDescription:  operators\nPolicies:\n   p-1 - web\n\
         Service Identities:\n   api (Datacenters: dc1)\nNode Identities:\n   n1 (Datacenter: dc1)\n",
    );
    check(
        &format::role_list_pretty(&json!([role]), false).expect("list"),
        "ops:\n   ID:           r-1\n   Description:  operators\n   Policies:\n      p-1 - web\n\
         \x20  Service Identities:\n      api (Datacenters: dc1)\n   Node Identities:\n      n1 (Datacenter: dc1)\n",
    );
}

#[test]
fn templated_policy_formats() {
    let templates = json!({
        "builtin/service": {"TemplateName": "builtin/service"},
        "builtin/dns": {"TemplateName": "builtin/dns"},
        "builtin/node": {"TemplateName": "builtin/node"}
    });
    check(
        &format::templated_policy_list_pretty(&templates).expect("list"),
        "builtin/dns\nbuiltin/node\nbuiltin/service\n",
    );
    check(
        &format::templated_policy_pretty(&json!({"TemplateName": "builtin/service"}), false),
        "Name:            builtin/service\nInput variables:\n\tName: String - Required - The name of the service.\n\
         Example usage:\n\troster acl token create -templated-policy builtin/service -var name:api\n",
    );
}

#[test]
fn json_output_is_indented_by_four_spaces() {
    let text = format::json_text(&json!({"AccessorID": "a", "Policies": [{"ID": "p"}]})).expect("json");
    check(
        &text,
        "{\n    \"AccessorID\": \"a\",\n    \"Policies\": [\n        {\n            \"ID\": \"p\"\n        }\n    ]\n}",
    );
}

#[test]
fn identities_and_variables_parse_like_consuls_flags() {
    assert_eq!(format::service_identity("web").expect("web"), json!({"ServiceName": "web"}));
    assert_eq!(
        format::service_identity("db:east, west").expect("db"),
        json!({"ServiceName": "db", "Datacenters": ["east", "west"]})
    );
    assert!(format::service_identity(":dc1").is_err());
    assert_eq!(format::node_identity("n1:dc1").expect("n1"), json!({"NodeName": "n1", "Datacenter": "dc1"}));
    for bad in ["n1", "n1:", ":dc1"] {
        assert!(format::node_identity(bad).is_err(), "{bad}");
    }
    assert_eq!(format::template_variables(&["name:web".to_owned()]).expect("vars"), Some(json!({"Name": "web"})));
    assert_eq!(format::template_variables(&[]).expect("none"), None);
    assert!(format::template_variables(&["name".to_owned()]).is_err());
    assert!(format::template_variables(&["color:red".to_owned()]).is_err());
}

#[test]
fn times_print_as_go_prints_them() {
    let cases = [
        ("2024-05-01T10:00:00Z", "2024-05-01 10:00:00 +0000 UTC"),
        ("2024-05-01T10:00:00.120000Z", "2024-05-01 10:00:00.12 +0000 UTC"),
        ("2024-05-01T10:00:00.000Z", "2024-05-01 10:00:00 +0000 UTC"),
        ("2024-05-01T10:00:00-04:00", "2024-05-01 10:00:00 -0400 -0400"),
        ("2024-05-01T10:00:00+00:00", "2024-05-01 10:00:00 +0000 UTC"),
        ("not a time", "not a time"),
    ];
    for (input, expect) in cases {
        assert_eq!(format::go_time(input), expect, "{input}");
    }
}
