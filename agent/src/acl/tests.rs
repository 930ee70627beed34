//! The agent's token store: fallbacks between kinds, Consul's legacy kind names, and persistence with mode 0600 that
//! survives a restart and wins over the config file.

use std::os::unix::fs::PermissionsExt;

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
