//! ACL tokens, policies, roles, auth methods and binding rules in the state: bootstrap once (and its reset), links that must exist, unique names and secrets, built-ins that cannot be broken, resolution by secret, and the snapshot round trip.

use super::run;
use crate::acl::{
    ANONYMOUS_TOKEN_ACCESSOR_ID, ANONYMOUS_TOKEN_SECRET, AclAuthMethod, AclBindingRule, AclLink, AclPolicy, AclRole,
    AclToken, GLOBAL_MANAGEMENT_POLICY_ID, GLOBAL_READ_ONLY_POLICY_ID,
};
use crate::command::{Command, CommandResult};
use crate::query::{Answer, Query};
use crate::state::State;
use crate::watch::{Table, WatchKey};

fn token(accessor: &str, secret: &str, policies: &[&str]) -> AclToken {
    AclToken {
        accessor_id: accessor.into(),
        secret_id: secret.into(),
        policies: policies.iter().map(|id| AclLink { id: (*id).into(), name: String::new() }).collect(),
        create_time_ms: 1_000,
        ..AclToken::default()
    }
}

fn policy(id: &str, name: &str, rules: &str) -> Command {
    Command::AclPolicySet(Box::new(AclPolicy {
        id: id.into(),
        name: name.into(),
        rules: rules.into(),
        ..AclPolicy::default()
    }))
}

fn bootstrap(secret: &str, reset_index: u64) -> Command {
    Command::AclBootstrap { token: Box::new(token(&format!("acc-{secret}"), secret, &[])), reset_index }
}

fn rejected(result: &CommandResult) -> &str {
    match result {
        CommandResult::Rejected(why) => why,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn bootstrap_creates_builtins_and_a_management_token_once() {
    let (state, results) = run(&[bootstrap("s1", 0), bootstrap("s2", 0)]);
    assert_eq!(results[0], CommandResult::Bool(true));
    assert_eq!(rejected(&results[1]), "ACL bootstrap no longer allowed (reset index: 1)");
    let resolved = state.acl_resolve("s1").expect("the bootstrap token resolves");
    assert_eq!(resolved.token.policies[0].name, "global-management");
    assert_eq!(resolved.policies[0].id, GLOBAL_MANAGEMENT_POLICY_ID);
    assert!(state.acl_resolve("s2").is_none(), "the refused bootstrap stored nothing");
    let anonymous = state.acl_resolve(ANONYMOUS_TOKEN_SECRET).expect("anonymous exists");
    assert_eq!(anonymous.token.accessor_id, ANONYMOUS_TOKEN_ACCESSOR_ID);
    assert!(state.acl_policies.contains_key(GLOBAL_READ_ONLY_POLICY_ID));
}

#[test]
fn bootstrap_reset_needs_the_exact_reset_index() {
    let (state, results) = run(&[bootstrap("s1", 0), bootstrap("s2", 7), bootstrap("s3", 1), bootstrap("s4", 1)]);
    assert_eq!(rejected(&results[1]), "Invalid bootstrap reset index (specified 7, reset index: 1)");
    assert_eq!(results[2], CommandResult::Bool(true));
    assert_eq!(state.acl_bootstrap_index(), Some(3));
    assert_eq!(rejected(&results[3]), "Invalid bootstrap reset index (specified 1, reset index: 3)");
    assert!(state.acl_resolve("s3").is_some() && state.acl_resolve("s1").is_some());
}

#[test]
fn token_links_must_exist_and_secrets_are_unique_and_fixed() {
    let (state, results) = run(&[
        Command::AclInit { now_ms: 5 },
        Command::AclTokenSet(Box::new(token("a1", "sec1", &["missing"]))),
        policy("p1", "web", r#"service "web" { policy = "write" }"#),
        Command::AclTokenSet(Box::new(token("a1", "sec1", &["p1"]))),
        Command::AclTokenSet(Box::new(token("a2", "sec1", &[]))),
        Command::AclTokenSet(Box::new(token("a1", "other", &["p1"]))),
    ]);
    assert_eq!(rejected(&results[1]), "cannot find policy missing");
    assert_eq!(results[3], CommandResult::Bool(true));
    assert_eq!(rejected(&results[4]), "Invalid Token: SecretID is already in use");
    assert_eq!(rejected(&results[5]), "Changing a token's SecretID is not permitted");
    let resolved = state.acl_resolve("sec1").expect("token resolves");
    assert_eq!(resolved.token.accessor_id, "a1");
    assert_eq!((resolved.token.create_index, resolved.token.policies[0].name.as_str()), (4, "web"));
    assert!(state.acl_resolve("sec").is_none() && state.acl_resolve("sec1 ").is_none());
}

#[test]
fn policy_names_are_unique_and_builtins_keep_their_meaning() {
    let (state, results) = run(&[
        Command::AclInit { now_ms: 0 },
        policy("p1", "web", ""),
        policy("p2", "web", ""),
        policy(GLOBAL_MANAGEMENT_POLICY_ID, "global-management", "acl = \"read\""),
        Command::AclPolicyDelete { id: GLOBAL_MANAGEMENT_POLICY_ID.into() },
        Command::AclTokenDelete { accessor_id: ANONYMOUS_TOKEN_ACCESSOR_ID.into() },
        policy("p3", "bad", "key_prefix \"\" { policy = \"reed\" }"),
    ]);
    assert_eq!(rejected(&results[2]), "Invalid Policy: A Policy with Name \"web\" already exists");
    assert_eq!(rejected(&results[3]), "Changing the Rules for the builtin global-management policy is not permitted");
    assert_eq!(rejected(&results[4]), "Delete operation not permitted on a builtin policy");
    assert_eq!(rejected(&results[5]), "Delete operation not permitted on the anonymous token");
    assert!(rejected(&results[6]).starts_with("Failed to parse ACL rules"), "apply parses rules again: {results:?}");
    assert_eq!(state.acl_policies().0.len(), 3);
}

#[test]
fn a_deleted_policy_disappears_from_the_links_and_a_rename_shows() {
    let role = AclRole {
        id: "r1".into(),
        name: "ops".into(),
        policies: vec![AclLink { id: "p2".into(), name: "kv".into() }],
        ..AclRole::default()
    };
    let mut tok = token("a1", "sec1", &["p1"]);
    tok.roles = vec![AclLink { id: "r1".into(), name: "ops".into() }];
    let (state, results) = run(&[
        policy("p1", "web", ""),
        policy("p2", "kv", "key_prefix \"\" { policy = \"read\" }"),
        Command::AclRoleSet(Box::new(role)),
        Command::AclTokenSet(Box::new(tok)),
        Command::AclPolicyDelete { id: "p1".into() },
        policy("p2", "kv-read", "key_prefix \"\" { policy = \"read\" }"),
    ]);
    assert!(results.iter().all(|r| *r == CommandResult::Bool(true)), "{results:?}");
    let resolved = state.acl_resolve("sec1").expect("resolves");
    assert!(resolved.token.policies.is_empty(), "the deleted policy's link is gone");
    assert_eq!(resolved.roles[0].policies[0].name, "kv-read");
    assert_eq!(resolved.policies.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["p2"]);
}

#[test]
fn acl_writes_wake_acl_watchers_and_not_kv_ones() {
    let mut state = State::new();
    let (_, changes) = state.apply(1, &policy("p1", "web", ""));
    assert!(changes.touches(&WatchKey::Table(Table::AclPolicies)));
    assert!(!changes.touches(&WatchKey::Table(Table::Kvs)));
    for key in (Query::AclResolve { secret_id: "x".into() }).watch_keys() {
        if key == WatchKey::Table(Table::AclPolicies) {
            return;
        }
    }
    panic!("resolution must watch the policies table");
}

#[test]
fn acl_tables_survive_a_snapshot_and_resolve_after_it() {
    let (state, _) = run(&[
        bootstrap("root", 0),
        policy("p1", "web", r#"service "web" { policy = "write" }"#),
        Command::AclTokenSet(Box::new(token("a1", "sec1", &["p1"]))),
    ]);
    let bytes = state.encode_snapshot();
    let decoded = State::decode_snapshot(&bytes).expect("decodes");
    assert_eq!(decoded, state);
    assert_eq!(decoded.encode_snapshot(), bytes);
    let (answer, index) = Query::AclResolve { secret_id: "sec1".into() }.eval(&decoded);
    assert_eq!(index, 3);
    match answer {
        Answer::AclResolved(Some(resolved)) => assert_eq!(resolved.policies[0].name, "web"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(decoded.acl_bootstrap_index(), Some(1));
}

#[test]
fn a_token_never_prints_its_secret() {
    let text = format!("{:?}", Command::AclTokenSet(Box::new(token("acc", "very-secret-value", &[]))));
    assert!(text.contains("acc") && !text.contains("very-secret-value"), "{text}");
}

/// A `jwt` config with one inline Ed25519 JWK (any 32 bytes parse; no login is verified here) and two claim mappings.
const JWT_CONFIG: &str = r#"{"JWTValidationPubKeys":["{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"],"ClaimMappings":{"role":"role","svc":"service"}}"#;

fn method(name: &str) -> AclAuthMethod {
    AclAuthMethod {
        name: name.into(),
        method_type: "jwt".into(),
        config_json: JWT_CONFIG.into(),
        ..AclAuthMethod::default()
    }
}

fn rule(id: &str, method: &str, selector: &str, bind_type: &str, bind_name: &str) -> Command {
    Command::AclBindingRuleSet(Box::new(AclBindingRule {
        id: id.into(),
        auth_method: method.into(),
        selector: selector.into(),
        bind_type: bind_type.into(),
        bind_name: bind_name.into(),
        ..AclBindingRule::default()
    }))
}

#[test]
fn auth_methods_are_checked_again_at_apply() {
    let set = |m: AclAuthMethod| Command::AclAuthMethodSet(Box::new(m));
    let cases = [
        (set(AclAuthMethod { method_type: "kubernetes".into(), ..method("m") }), "Type should be one of: [jwt]"),
        (set(AclAuthMethod { token_locality: "galaxy".into(), ..method("m") }), "TokenLocality should be one of"),
        (set(AclAuthMethod { max_token_ttl_ms: 1_000, ..method("m") }), "cannot be less than 1m0s"),
        (set(AclAuthMethod { max_token_ttl_ms: 90_000_000, ..method("m") }), "cannot be more than 24h0m0s"),
        (set(AclAuthMethod { config_json: r#"{"JWKSURL":"https://x"}"#.into(), ..method("m") }), "Config.JWKSURL"),
        (set(AclAuthMethod { config_json: "{".into(), ..method("m") }), "not valid JSON"),
        (set(method("bad name")), "invalid Name"),
    ];
    let commands: Vec<Command> = cases.iter().map(|(c, _)| c.clone()).collect();
    let (state, results) = run(&commands);
    for (result, (_, expect)) in results.iter().zip(cases) {
        assert!(rejected(result).contains(expect), "{result:?} should say {expect:?}");
    }
    assert!(state.acl_auth_methods.is_empty());
    assert!(!state.table_index.contains_key(&Table::AclAuthMethods), "a rejected write moves no index");
}

#[test]
fn binding_rules_need_their_method_a_selector_that_parses_and_a_bind_name_that_renders() {
    let (state, results) = run(&[
        Command::AclAuthMethodSet(Box::new(method("m"))),
        rule("r1", "m", r#"value.role == "web""#, "service", "${value.service}"),
        rule("r2", "nope", "", "service", "web"),
        rule("r3", "m", "value.role ==", "service", "web"),
        rule("r4", "m", "", "service", "${value.unmapped}"),
        rule("r5", "m", "", "group", "web"),
        rule("r6", "m", "", "node", "Not A Node"),
        rule("r7", "m", "nope.x == 1", "role", "admins"),
        rule("r8", "m", r#"value.rol == "web""#, "service", "web"),
        rule("r9", "m", r#""ops" in list.groups"#, "service", "web"),
    ]);
    assert_eq!(results[1], CommandResult::Bool(true));
    assert!(rejected(&results[2]).contains("unknown AuthMethod \"nope\""));
    assert!(rejected(&results[3]).contains("invalid Selector"));
    assert!(rejected(&results[4]).contains("unknown variable accessed: value.unmapped"));
    assert!(rejected(&results[5]).contains("unknown BindType \"group\""));
    assert!(rejected(&results[6]).contains("invalid bind name"));
    assert!(rejected(&results[7]).contains("invalid Selector"));
    assert!(
        rejected(&results[8]).contains(r#"Selector "value.rol" is not valid"#),
        "a typo is refused, not a dead rule"
    );
    assert!(rejected(&results[9]).contains(r#"Selector "list.groups" is not valid"#));
    assert_eq!(state.acl_binding_rules_of("m").map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r1"]);
    // A config change that would orphan a rule's variable is refused.
    let narrowed = AclAuthMethod { config_json: JWT_CONFIG.replace(r#","svc":"service""#, ""), ..method("m") };
    let mut state = state;
    let (result, _) = state.apply(20, &Command::AclAuthMethodSet(Box::new(narrowed)));
    assert!(rejected(&result).contains("binding rule r1 would no longer be valid"), "{result:?}");
}

#[test]
fn deleting_a_method_deletes_its_rules_and_the_tokens_it_minted() {
    let minted = AclToken { auth_method: "m".into(), ..token("login-1", "login-secret", &[]) };
    let (mut state, results) = run(&[
        Command::AclAuthMethodSet(Box::new(method("m"))),
        Command::AclAuthMethodSet(Box::new(method("other"))),
        rule("r1", "m", "", "service", "web"),
        rule("r2", "other", "", "service", "web"),
        Command::AclTokenSet(Box::new(minted)),
        Command::AclTokenSet(Box::new(token("plain", "plain-secret", &[]))),
        Command::AclTokenSet(Box::new(AclToken { auth_method: "ghost".into(), ..token("g", "g-secret", &[]) })),
    ]);
    assert!(results[..6].iter().all(|r| *r == CommandResult::Bool(true)), "{results:?}");
    assert!(rejected(&results[6]).contains("No such auth method with Name: ghost"));
    let (_, changes) = state.apply(10, &Command::AclAuthMethodDelete { name: "m".into() });
    assert!(state.acl_auth_method("m").is_none() && state.acl_auth_method("other").is_some());
    assert_eq!(state.acl_binding_rules.keys().collect::<Vec<_>>(), ["r2"]);
    assert!(state.acl_token("login-1").is_none() && state.acl_token_by_secret("login-secret").is_none());
    assert!(state.acl_token("plain").is_some());
    for table in [Table::AclAuthMethods, Table::AclBindingRules, Table::AclTokens] {
        assert_eq!(state.table(table), 10, "{table:?}");
        assert!(changes.tables.contains(&table), "{table:?}");
    }
}

#[test]
fn methods_and_rules_survive_a_snapshot_and_a_version_3_snapshot_has_none() {
    let (state, _) = run(&[
        bootstrap("root", 0),
        Command::AclAuthMethodSet(Box::new(AclAuthMethod { max_token_ttl_ms: 3_600_000, ..method("m") })),
        rule("r1", "m", r#"value.role == "web""#, "service", "${value.service}"),
    ]);
    let bytes = state.encode_snapshot();
    assert_eq!(u16::from(bytes[7]), crate::SNAPSHOT_VERSION, "this build writes its own version");
    let decoded = State::decode_snapshot(&bytes).expect("decodes");
    assert_eq!(decoded, state);
    assert_eq!(decoded.encode_snapshot(), bytes);
    assert_eq!(decoded.table(Table::AclBindingRules), 3);

    // A version-4 snapshot is version 10's body without the cluster-job tail (seven bytes when empty), the config-entry and prepared-query tails and the
    // coordinates tail (none, index 0: two bytes each), the autopilot tail (`None`, index 0) and the restore staging (`None`: one byte).
    let coordinates_tail = postcard::to_allocvec(&(Vec::<crate::NodeCoordinate>::new(), 0u64)).expect("encodes");
    let autopilot_tail = postcard::to_allocvec(&(Option::<crate::AutopilotConfig>::None, 0u64)).expect("encodes");
    let mut v4 = bytes.clone();
    v4[7] = 4;
    v4.truncate(v4.len() - 7 - 2 - 2 - coordinates_tail.len() - autopilot_tail.len() - 1);
    assert_eq!(State::decode_snapshot(&v4).expect("version 4 decodes"), state);

    // A version-3 snapshot is version 4's body without the auth tail (postcard ignores nothing: cut it off).
    let tail = postcard::to_allocvec(&(
        state.acl_auth_methods.values().cloned().collect::<Vec<_>>(),
        state.acl_binding_rules.values().cloned().collect::<Vec<_>>(),
        [2u64, 3u64],
    ))
    .expect("encodes");
    let mut v3 = bytes.clone();
    v3[7] = 3;
    v3.truncate(v3.len() - autopilot_tail.len() - 1 - tail.len());
    let old = State::decode_snapshot(&v3).expect("version 3 decodes");
    assert!(old.acl_auth_methods.is_empty() && old.acl_binding_rules.is_empty());
    assert_eq!(old.acl_bootstrap_index(), Some(1));
    assert_eq!(old.acl_tokens().0, state.acl_tokens().0);
}
