//! Login decided on a state: which rules bind, what the minted token carries, and the refusals.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use roster_kv::{AclAuthMethod, AclBindingRule, AclPolicy, AclRole, Command, CommandResult, State};
use serde_json::{Value, json};

use super::{Login, mint};
use crate::error::Error;

const NOW_MS: u64 = 1_800_000_000_000;

/// A P-256 key and the method config that trusts it, as an inline JWK.
fn key_and_config() -> (EcdsaKeyPair, String) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("pkcs8");
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
    let config = json!({
        "JWTValidationPubKeys": [jwk.to_string()],
        "JWTSupportedAlgs": ["ES256"],
        "ClaimMappings": {"role": "role", "service": "service"},
        "ListClaimMappings": {"groups": "groups"},
    });
    (pair, config.to_string())
}

fn jwt(pair: &EcdsaKeyPair, claims: &Value) -> String {
    let signed =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = pair.sign(&SystemRandom::new(), signed.as_bytes()).expect("sign");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn rule(id: &str, selector: &str, bind_type: &str, bind_name: &str) -> Command {
    Command::AclBindingRuleSet(Box::new(AclBindingRule {
        id: id.into(),
        auth_method: "jwt".into(),
        selector: selector.into(),
        bind_type: bind_type.into(),
        bind_name: bind_name.into(),
        ..AclBindingRule::default()
    }))
}

fn state_with(config: &str, locality: &str) -> State {
    let mut state = State::new();
    let commands = [
        Command::AclPolicySet(Box::new(AclPolicy {
            id: "p1".into(),
            name: "readers".into(),
            rules: r#"key_prefix "" { policy = "read" }"#.into(),
            ..AclPolicy::default()
        })),
        Command::AclRoleSet(Box::new(AclRole { id: "r1".into(), name: "ops".into(), ..AclRole::default() })),
        Command::AclAuthMethodSet(Box::new(AclAuthMethod {
            name: "jwt".into(),
            method_type: "jwt".into(),
            max_token_ttl_ms: 600_000,
            token_locality: locality.into(),
            config_json: config.into(),
            ..AclAuthMethod::default()
        })),
        rule("b1", r#"value.role == "web""#, "service", "${value.service}"),
        rule("b2", r#""ops" in list.groups"#, "role", "ops"),
        rule("b3", r#""ops" in list.groups"#, "role", "no-such-role"),
        rule("b4", r#"value.role == "reader""#, "policy", "readers"),
        rule("b5", r#"value.role == "node""#, "node", "${value.service}"),
    ];
    for (i, cmd) in commands.iter().enumerate() {
        assert_eq!(state.apply(i as u64 + 1, cmd).0, CommandResult::Bool(true), "{cmd:?}");
    }
    state
}

fn login(bearer: String) -> Login {
    Login { auth_method: "jwt".into(), bearer_token: bearer, meta: [("pod".to_owned(), "web-1".to_owned())].into() }
}

fn ids() -> (String, String) {
    ("acc".into(), "sec".into())
}

#[test]
fn matching_rules_bind_and_the_token_says_where_it_came_from() {
    let (pair, config) = key_and_config();
    let state = state_with(&config, "");
    let bearer = jwt(&pair, &json!({"role": "web", "service": "api", "groups": ["ops"], "exp": NOW_MS / 1000 + 60}));
    let token = mint(&state, "dc1", &login(bearer), NOW_MS, ids()).expect("login binds");
    let services: Vec<&str> = token.service_identities.iter().map(|s| s.service_name.as_str()).collect();
    assert_eq!(services, ["api"]);
    assert_eq!(
        token.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["ops"],
        "a missing role binds nothing"
    );
    assert!(token.policies.is_empty() && token.node_identities.is_empty());
    assert_eq!(token.description, r#"token created via login: {"pod":"web-1"}"#);
    assert_eq!(token.auth_method, "jwt");
    assert!(token.local, "TokenLocality defaults to local");
    assert_eq!(token.expiration_time_ms, Some(NOW_MS + 600_000));

    let global = state_with(&config, "global");
    let node_bearer = jwt(&pair, &json!({"role": "node", "service": "host-1"}));
    let token = mint(&global, "dc1", &login(node_bearer), NOW_MS, ids()).expect("node binding");
    assert_eq!(token.node_identities[0].node_name, "host-1");
    assert_eq!(token.node_identities[0].datacenter, "dc1");
    assert!(!token.local);
    let reader = jwt(&pair, &json!({"role": "reader"}));
    assert_eq!(mint(&state, "dc1", &login(reader), NOW_MS, ids()).expect("policy").policies[0].id, "p1");
}

#[test]
fn refusals() {
    let (pair, config) = key_and_config();
    let (stranger, _) = key_and_config();
    let state = state_with(&config, "");
    let denied = |bearer: String, method: &str| {
        let request = Login { auth_method: method.into(), ..login(bearer) };
        match mint(&state, "dc1", &request, NOW_MS, ids()) {
            Err(Error::PermissionDenied(why)) => why,
            other => panic!("expected a denial, got {other:?}"),
        }
    };
    assert_eq!(denied(jwt(&pair, &json!({"role": "db"})), "jwt"), "Permission denied", "no rule matches");
    assert!(
        denied(jwt(&stranger, &json!({"role": "web", "service": "api"})), "jwt").contains("failed to verify signature")
    );
    let expired = jwt(&pair, &json!({"role": "web", "service": "api", "exp": NOW_MS / 1000 - 3600}));
    assert!(denied(expired, "jwt").contains("token is expired"));
    assert!(denied(jwt(&pair, &json!({})), "other").contains("auth method \"other\" not found"));
    // A rule that matches but renders an invalid service name fails the login instead of binding something else.
    let bad_name = jwt(&pair, &json!({"role": "web", "service": "Not Valid"}));
    assert!(matches!(mint(&state, "dc1", &login(bad_name), NOW_MS, ids()), Err(Error::Rejected(_))));
}

#[test]
fn a_login_never_prints_its_bearer_token() {
    let text = format!("{:?}", login("header.very-secret-claims.signature".into()));
    assert!(text.contains("jwt") && !text.contains("very-secret-claims"), "{text}");
}
