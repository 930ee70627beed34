//! The agent's token store: fallbacks between kinds, Consul's legacy kind names, and persistence with mode 0600 that
//! survives a restart and wins over the config file.

use std::os::unix::fs::PermissionsExt;

use sha2::{Digest, Sha256};

use super::{Acl, TokenKind};
use crate::config::{AclConfig, AclTokens};

fn config(persist: bool) -> AclConfig {
    AclConfig {
        enabled: true,
        enable_token_persistence: persist,
        tokens: AclTokens { default: Some("dflt".into()), agent: Some("agnt".into()), ..AclTokens::default() },
        ..AclConfig::default()
    }
}

#[test]
fn requests_without_a_token_act_with_the_default_and_dns_falls_back_to_it() {
    let acl = Acl::new(&config(false), "dc1", "n1", None);
    assert_eq!(acl.caller_secret(None), "dflt");
    assert_eq!(acl.caller_secret(Some("")), "dflt");
    assert_eq!(acl.caller_secret(Some("mine")), "mine");
    assert_eq!(acl.dns_secret(), "dflt");
    assert_eq!(acl.config_file_secret(), "agnt");
    acl.set_token(TokenKind::Dns, "dnstok").expect("no persistence, nothing to write");
    assert_eq!(acl.dns_secret(), "dnstok");
}

#[test]
fn legacy_kind_names_are_consuls_aliases() {
    assert_eq!(TokenKind::parse("acl_token"), Some(TokenKind::Default));
    assert_eq!(TokenKind::parse("agent_master"), Some(TokenKind::AgentRecovery));
    assert_eq!(TokenKind::parse("acl_agent_master_token"), Some(TokenKind::AgentRecovery));
    assert_eq!(TokenKind::parse("dns_token"), Some(TokenKind::Dns));
    assert_eq!(TokenKind::parse("master"), None);
}

#[test]
fn persisted_tokens_are_private_and_win_over_the_config_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = Acl::new(&config(true), "dc1", "n1", Some(dir.path()));
    acl.set_token(TokenKind::Agent, "rotated").expect("persisted");
    let file = dir.path().join("acl-tokens.json");
    let mode = std::fs::metadata(&file).expect("written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = Acl::new(&config(true), "dc1", "n1", Some(dir.path()));
    assert_eq!(again.agent_secret(), "rotated");
    assert_eq!(again.caller_secret(None), "dflt", "kinds never set through the API keep the config's value");
}

#[test]
fn without_persistence_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = Acl::new(&config(false), "dc1", "n1", Some(dir.path()));
    acl.set_token(TokenKind::Agent, "rotated").expect("nothing to write");
    assert!(!dir.path().join("acl-tokens.json").exists());
}

#[test]
fn the_store_never_prints_a_secret() {
    let text = format!("{:?}", config(false));
    assert!(!text.contains("dflt") && !text.contains("agnt"), "{text}");
}

/// A one-server cluster in process with ACLs on, a client `Backend` reaching it over the RPC, and a token `sec1`
/// whose policy `p1` has `rules`.
async fn cluster_with_token(rules: &str) -> (roster_server::Server, crate::backend::Backend) {
    use roster_kv::{AclLink, AclToken, Command};
    let settings = roster_server::AclSettings {
        default_policy: roster_acl::DefaultPolicy::Deny,
        enable_key_list_policy: false,
        datacenter: "dc1".into(),
    };
    let server = crate::test_server::start(Some(settings)).await;
    let rpc = server.rpc_addr();
    set_policy(&server, rules).await;
    let token = AclToken {
        accessor_id: "a1".into(),
        secret_id: "sec1".into(),
        policies: vec![AclLink { id: "p1".into(), name: String::new() }],
        ..AclToken::default()
    };
    server.write(Command::AclTokenSet(Box::new(token))).await.expect("token");
    let remote = roster_server::Remote::new(tokio_util::sync::CancellationToken::new());
    remote.set_servers(vec![rpc]);
    (server, crate::backend::Backend::Remote(remote))
}

async fn set_policy(server: &roster_server::Server, rules: &str) {
    let policy = roster_kv::AclPolicy { id: "p1".into(), name: "p1".into(), rules: rules.into(), ..Default::default() };
    server.write(roster_kv::Command::AclPolicySet(Box::new(policy))).await.expect("policy");
}

fn client_acl(down_policy: crate::config::DownPolicy) -> Acl {
    let ttl = std::time::Duration::from_millis(200);
    let config = AclConfig {
        enabled: true,
        default_policy: crate::config::DefaultPolicy::Deny,
        down_policy,
        token_ttl: ttl,
        policy_ttl: ttl,
        role_ttl: ttl,
        ..AclConfig::default()
    };
    Acl::new(&config, "dc1", "c1", None)
}

async fn may_write(acl: &Acl, backend: &crate::backend::Backend) -> bool {
    match acl.resolve(backend, "sec1").await {
        Ok(access) => access.authorizer().key_write("app/x"),
        Err(_) => panic!("sec1 resolves"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_cache_refetches_an_expired_entry_before_answering() {
    let (server, backend) = cluster_with_token(r#"key_prefix "app/" { policy = "write" }"#).await;
    let acl = client_acl(crate::config::DownPolicy::ExtendCache);
    assert!(may_write(&acl, &backend).await);
    set_policy(&server, r#"key_prefix "app/" { policy = "read" }"#).await;
    assert!(may_write(&acl, &backend).await, "within the TTL the cached grant answers");
    // Let the entry expire; what is asserted is the answer after it, not how long anything took.
    tokio::time::sleep(acl.cache_ttl()).await;
    assert!(!may_write(&acl, &backend).await, "an expired entry is fetched again before the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_cache_answers_from_an_expired_entry_and_refreshes_it_behind_the_request() {
    let (server, backend) = cluster_with_token(r#"key_prefix "app/" { policy = "write" }"#).await;
    let acl = client_acl(crate::config::DownPolicy::AsyncCache);
    assert!(may_write(&acl, &backend).await);
    set_policy(&server, r#"key_prefix "app/" { policy = "read" }"#).await;
    tokio::time::sleep(acl.cache_ttl()).await;
    assert!(may_write(&acl, &backend).await, "the expired grant answers at once");
    // The refresh it started lands in the cache; poll for it rather than for a time.
    let mut refreshed = false;
    for _ in 0..500 {
        let fresh =
            acl.cache.get(&Sha256::digest(b"sec1").into()).is_some_and(|(at, _)| at.elapsed() < acl.cache_ttl());
        if fresh {
            refreshed = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(refreshed, "the background refresh stored a fresh entry");
    assert!(!may_write(&acl, &backend).await, "the refreshed grant is the narrowed policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_deletes_expired_tokens_and_keeps_the_others() {
    use roster_kv::{AclToken, Command};
    let (server, _backend) = cluster_with_token(r#"key_prefix "app/" { policy = "write" }"#).await;
    let expired = AclToken {
        accessor_id: "gone".into(),
        secret_id: "gone-secret".into(),
        expiration_time_ms: Some(1),
        ..AclToken::default()
    };
    server.write(Command::AclTokenSet(Box::new(expired))).await.expect("token");
    let acl = client_acl(crate::config::DownPolicy::ExtendCache);
    super::leader_pass(&acl, &server).await.expect("a leader pass");
    let left: Vec<String> = server.read_local(|s| s.acl_tokens().0.into_iter().map(|t| t.accessor_id).collect());
    assert!(!left.contains(&"gone".to_owned()), "{left:?}");
    assert!(left.contains(&"a1".to_owned()), "unexpiring tokens stay: {left:?}");
    assert!(left.iter().any(|id| id == roster_kv::ANONYMOUS_TOKEN_ACCESSOR_ID), "the pass also ran AclInit");
}
