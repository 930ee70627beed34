//! Enforcement on the server: a token resolves to its policies' rules, writes it may not make are refused with Consul's
//! text, reads of one named thing are refused, lists are filtered, and the anonymous token gets the default policy.

use roster_acl::DefaultPolicy;
use roster_kv::{
    AclLink, AclPolicy, AclServiceIdentity, AclToken, Answer, Command, KvVerb, Node, Query, Registration, Service,
    State, TxnOp,
};

use super::{AclSettings, Resolver, authorize_command, authorize_query, authorize_txn, filter_answer};
use crate::error::Error;

fn settings(default_policy: DefaultPolicy) -> AclSettings {
    AclSettings { default_policy, enable_key_list_policy: false, datacenter: "dc1".into() }
}

/// A state with the built-ins, a `web` policy and tokens `web-secret` (the policy) and `svc-secret` (a service identity).
fn state() -> State {
    let mut state = State::new();
    let policy = AclPolicy {
        id: "p-web".into(),
        name: "web".into(),
        rules: r#"service "web" { policy = "write" }
key_prefix "lb/web/" { policy = "read" }
key "lb/web/secret" { policy = "deny" }
node_prefix "" { policy = "read" }"#
            .into(),
        ..AclPolicy::default()
    };
    let web = AclToken {
        accessor_id: "acc-web".into(),
        secret_id: "web-secret".into(),
        policies: vec![AclLink { id: "p-web".into(), name: String::new() }],
        ..AclToken::default()
    };
    let svc = AclToken {
        accessor_id: "acc-svc".into(),
        secret_id: "svc-secret".into(),
        service_identities: vec![AclServiceIdentity { service_name: "api".into(), datacenters: vec![] }],
        ..AclToken::default()
    };
    let cmds = [
        Command::AclInit { now_ms: 0 },
        Command::AclPolicySet(Box::new(policy)),
        Command::AclTokenSet(Box::new(web)),
        Command::AclTokenSet(Box::new(svc)),
    ];
    for (i, cmd) in cmds.iter().enumerate() {
        let (result, _) = state.apply(i as u64 + 1, cmd);
        assert_eq!(result, roster_kv::CommandResult::Bool(true), "{cmd:?}");
    }
    state
}

fn resolve(state: &State, secret: &str, default_policy: DefaultPolicy) -> super::Access {
    Resolver::default().resolve(&settings(default_policy), state, secret, 0).expect("resolves")
}

fn denial(result: crate::error::Result<()>) -> String {
    match result {
        Err(Error::PermissionDenied(text)) => text,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn kv_set(key: &str) -> Command {
    Command::KvSet { key: key.into(), value: b"x".to_vec(), flags: 0 }
}

#[test]
fn writes_follow_the_tokens_rules_and_denials_use_consuls_text() {
    let state = state();
    let web = resolve(&state, "web-secret", DefaultPolicy::Deny);
    assert_eq!(
        denial(authorize_command(&web, &kv_set("secret"), &state)),
        "Permission denied: token with AccessorID 'acc-web' lacks permission 'key:write' on \"secret\""
    );
    assert_eq!(
        denial(authorize_command(&web, &kv_set("lb/web/1"), &state)),
        "Permission denied: token with AccessorID 'acc-web' lacks permission 'key:write' on \"lb/web/1\""
    );
    let register = |service: &str| {
        Command::Register(Box::new(Registration {
            node: Node { node: "n1".into(), address: "10.0.0.1".into(), ..Node::default() },
            service: Some(Service { id: service.into(), service: service.into(), ..Service::default() }),
            ..Registration::default()
        }))
    };
    // A new node needs node:write, which the web policy does not give.
    assert!(denial(authorize_command(&web, &register("web"), &state)).contains("'node:write' on \"n1\""));
    let svc = resolve(&state, "svc-secret", DefaultPolicy::Deny);
    assert!(denial(authorize_command(&svc, &register("api"), &state)).contains("node:write"));
    let acl_write = Command::AclTokenDelete { accessor_id: "x".into() };
    assert_eq!(
        denial(authorize_command(&web, &acl_write, &state)),
        "Permission denied: token with AccessorID 'acc-web' lacks permission 'acl:write'"
    );
}

#[test]
fn the_anonymous_token_gets_the_default_policy_and_its_own_wording() {
    let state = state();
    let anonymous = resolve(&state, "", DefaultPolicy::Deny);
    let text = denial(authorize_command(&anonymous, &kv_set("a"), &state));
    assert!(text.starts_with("Permission denied: anonymous token lacks permission 'key:write' on \"a\"."), "{text}");
    let open = resolve(&state, "", DefaultPolicy::Allow);
    assert!(authorize_command(&open, &kv_set("a"), &state).is_ok());
    assert!(authorize_command(&open, &Command::AclTokenDelete { accessor_id: "x".into() }, &state).is_err());
}

#[test]
fn unknown_reserved_and_expired_tokens_are_refused() {
    let mut state = state();
    let resolver = Resolver::default();
    let deny = settings(DefaultPolicy::Deny);
    assert!(matches!(resolver.resolve(&deny, &state, "nope", 0), Err(Error::AclNotFound)));
    assert!(matches!(resolver.resolve(&deny, &state, "manage", 0), Err(Error::AclRootDenied)));
    let expiring = AclToken {
        accessor_id: "acc-exp".into(),
        secret_id: "exp-secret".into(),
        expiration_time_ms: Some(1_000),
        ..AclToken::default()
    };
    state.apply(10, &Command::AclTokenSet(Box::new(expiring)));
    assert!(resolver.resolve(&deny, &state, "exp-secret", 999).is_ok());
    assert!(matches!(resolver.resolve(&deny, &state, "exp-secret", 1_000), Err(Error::AclNotFound)));
}

#[test]
fn a_policy_change_takes_effect_on_the_next_resolution() {
    let mut state = state();
    let resolver = Resolver::default();
    let deny = settings(DefaultPolicy::Deny);
    let before = resolver.resolve(&deny, &state, "web-secret", 0).expect("resolves");
    assert!(!before.authorizer().key_write("anything"));
    let wider = AclPolicy {
        id: "p-web".into(),
        name: "web".into(),
        rules: r#"key_prefix "" { policy = "write" }"#.into(),
        ..AclPolicy::default()
    };
    state.apply(20, &Command::AclPolicySet(Box::new(wider)));
    let after = resolver.resolve(&deny, &state, "web-secret", 0).expect("resolves");
    assert!(after.authorizer().key_write("anything"), "the cached resolution was retired by the ACL index");
}

#[test]
fn a_named_read_is_refused_and_lists_are_filtered() {
    let state = state();
    let web = resolve(&state, "web-secret", DefaultPolicy::Deny);
    assert!(authorize_query(&web, &Query::KvGet { key: "lb/web/1".into() }).is_ok());
    assert!(denial(authorize_query(&web, &Query::KvGet { key: "other".into() })).contains("'key:read' on \"other\""));
    assert!(denial(authorize_query(&web, &Query::AclTokens)).contains("'acl:read'"));
    assert!(denial(authorize_query(&web, &Query::Usage)).contains("'operator:read'"));
    let mut keys = Answer::Keys(vec!["lb/web/1".into(), "lb/web/secret".into(), "other".into()]);
    assert!(filter_answer(&web, &mut keys));
    assert_eq!(keys, Answer::Keys(vec!["lb/web/1".into()]));
    let mut tags = Answer::ServiceTags([("web".to_owned(), vec![]), ("db".to_owned(), vec![])].into());
    assert!(filter_answer(&web, &mut tags));
    assert_eq!(tags, Answer::ServiceTags([("web".to_owned(), vec![])].into()));
    let mut nothing_hidden = Answer::Keys(vec!["lb/web/2".into()]);
    assert!(!filter_answer(&web, &mut nothing_hidden), "the flag is set only when something was removed");
}

#[test]
fn token_lists_hide_secrets_from_readers_without_acl_write() {
    let state = state();
    let read_only = AclToken {
        accessor_id: "acc-ro".into(),
        secret_id: "ro-secret".into(),
        policies: vec![AclLink { id: roster_kv::GLOBAL_READ_ONLY_POLICY_ID.into(), name: String::new() }],
        ..AclToken::default()
    };
    let mut state = state;
    state.apply(30, &Command::AclTokenSet(Box::new(read_only)));
    let reader = resolve(&state, "ro-secret", DefaultPolicy::Deny);
    let (mut answer, _) = Query::AclTokens.eval(&state);
    filter_answer(&reader, &mut answer);
    let Answer::AclTokens(tokens) = answer else { panic!("tokens") };
    assert!(tokens.iter().all(|t| t.secret_id == "<hidden>"));
}

#[test]
fn a_transaction_names_each_operation_its_token_may_not_run() {
    let state = state();
    let web = resolve(&state, "web-secret", DefaultPolicy::Deny);
    let op = |verb, key: &str| TxnOp::Kv {
        verb,
        key: key.into(),
        value: Vec::new(),
        flags: 0,
        index: 0,
        session: String::new(),
    };
    let errors =
        authorize_txn(&web, &[op(KvVerb::Get, "other"), op(KvVerb::Set, "lb/web/1"), op(KvVerb::Set, "x")], &state);
    assert_eq!(errors.iter().map(|e| e.op_index).collect::<Vec<_>>(), [1, 2]);
    assert!(errors[1].what.contains("'key:write' on \"x\""));
}
