//! The `acl` block: Consul's keys, typed and checked, so that `default_policy = "deny"` is either enforced or refused —
//! never accepted and ignored.

use std::time::Duration;

use serde_json::{Map, Value};

use super::duration::duration_from_json;

/// What a token may do where none of its rules speak (`acl.default_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPolicy {
    /// Allow (Consul's default, meant for turning ACLs on gradually).
    Allow,
    /// Deny: the production setting.
    Deny,
}

/// What a client agent does with a token when no server answers (`acl.down_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownPolicy {
    /// Every request is allowed.
    Allow,
    /// Every request is denied.
    Deny,
    /// Cached tokens keep their last known permissions past their TTL; unknown tokens are denied (Consul's default).
    ExtendCache,
    /// As `ExtendCache`, and an expired entry is served at once while it is refreshed in the background.
    AsyncCache,
}

/// The validated `acl` block.
#[derive(Debug, Clone, PartialEq)]
pub struct AclConfig {
    /// Enforce ACLs (`acl.enabled`). Off, every request may do everything and the ACL endpoints answer 401.
    pub enabled: bool,
    /// `acl.default_policy`; default allow, as in Consul.
    pub default_policy: DefaultPolicy,
    /// `acl.down_policy`; default extend-cache.
    pub down_policy: DownPolicy,
    /// Keep tokens set through `/v1/agent/token/*` in the data dir across restarts (`acl.enable_token_persistence`).
    pub enable_token_persistence: bool,
    /// Require `key:list` on the prefix for recursive and keys-only KV reads (`acl.enable_key_list_policy`).
    pub enable_key_list_policy: bool,
    /// How long a client agent trusts a resolved token (`acl.token_ttl`, default 30s).
    pub token_ttl: Duration,
    /// How long a client agent trusts a resolved policy (`acl.policy_ttl`, default 30s).
    pub policy_ttl: Duration,
    /// How long a client agent trusts a resolved role (`acl.role_ttl`, default 30s).
    pub role_ttl: Duration,
    /// The tokens of `acl.tokens`.
    pub tokens: AclTokens,
}

/// The agent's own tokens (`acl.tokens`). Secrets: never logged, never shown.
#[derive(Clone, PartialEq, Default)]
pub struct AclTokens {
    /// Created with global-management on the first leader (`initial_management`, formerly `master`).
    pub initial_management: Option<String>,
    /// The agent's own catalog sync and anti-entropy (`agent`).
    pub agent: Option<String>,
    /// Agent endpoints when the servers are unreachable (`agent_recovery`, formerly `agent_master`).
    pub agent_recovery: Option<String>,
    /// Requests that carry no token (`default`).
    pub default: Option<String>,
    /// DNS answers (`dns`); falls back to `default`.
    pub dns: Option<String>,
    /// Services and checks from config files (`config_file_service_registration`); falls back to `agent`.
    pub config_file_service_registration: Option<String>,
    /// Replication from the primary datacenter (`replication`); roster has one datacenter, so nothing uses it.
    pub replication: Option<String>,
}

impl std::fmt::Debug for AclTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |t: &Option<String>| if t.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("AclTokens")
            .field("initial_management", &set(&self.initial_management))
            .field("agent", &set(&self.agent))
            .field("agent_recovery", &set(&self.agent_recovery))
            .field("default", &set(&self.default))
            .field("dns", &set(&self.dns))
            .field("config_file_service_registration", &set(&self.config_file_service_registration))
            .field("replication", &set(&self.replication))
            .finish()
    }
}

/// Consul's default token, policy and role TTL.
const DEFAULT_TTL: Duration = Duration::from_secs(30);

impl Default for AclConfig {
    fn default() -> AclConfig {
        AclConfig {
            enabled: false,
            default_policy: DefaultPolicy::Allow,
            down_policy: DownPolicy::ExtendCache,
            enable_token_persistence: false,
            enable_key_list_policy: false,
            token_ttl: DEFAULT_TTL,
            policy_ttl: DEFAULT_TTL,
            role_ttl: DEFAULT_TTL,
            tokens: AclTokens::default(),
        }
    }
}

/// Reads the merged `acl` object, recording every problem in `errors` with its dotted key.
pub(super) fn acl_config(value: Option<&Value>, errors: &mut Vec<String>) -> AclConfig {
    let mut config = AclConfig::default();
    let Some(value) = value else {
        return config;
    };
    let Value::Object(map) = value else {
        errors.push("acl: expected an object".into());
        return config;
    };
    for (key, value) in map {
        let res = match key.as_str() {
            "enabled" => boolean(value).map(|v| config.enabled = v),
            "default_policy" => match value.as_str() {
                Some("allow") => {
                    config.default_policy = DefaultPolicy::Allow;
                    Ok(())
                }
                Some("deny") => {
                    config.default_policy = DefaultPolicy::Deny;
                    Ok(())
                }
                _ => Err(format!("expected \"allow\" or \"deny\", got {value}")),
            },
            "down_policy" => match value.as_str() {
                Some("allow") => {
                    config.down_policy = DownPolicy::Allow;
                    Ok(())
                }
                Some("deny") => {
                    config.down_policy = DownPolicy::Deny;
                    Ok(())
                }
                Some("extend-cache") => {
                    config.down_policy = DownPolicy::ExtendCache;
                    Ok(())
                }
                Some("async-cache") => {
                    config.down_policy = DownPolicy::AsyncCache;
                    Ok(())
                }
                _ => Err(format!("expected \"allow\", \"deny\", \"extend-cache\" or \"async-cache\", got {value}")),
            },
            "enable_token_persistence" => boolean(value).map(|v| config.enable_token_persistence = v),
            "enable_key_list_policy" => boolean(value).map(|v| config.enable_key_list_policy = v),
            // Replication copies tokens to secondary datacenters; with one datacenter there is nothing to copy,
            // so either value means the same here.
            "enable_token_replication" => boolean(value).map(|_| ()),
            "token_ttl" => ttl(value).map(|v| config.token_ttl = v),
            "policy_ttl" => ttl(value).map(|v| config.policy_ttl = v),
            "role_ttl" => ttl(value).map(|v| config.role_ttl = v),
            "tokens" => match value {
                Value::Object(tokens) => {
                    read_tokens(tokens, &mut config.tokens, errors);
                    Ok(())
                }
                _ => Err("expected an object".into()),
            },
            "enable_token_replication_override" | "msp_disable_bootstrap" | "enable_key_list" => {
                Err("roster does not support this key".into())
            }
            _ => Err("unknown key; roster supports enabled, default_policy, down_policy, enable_token_persistence, \
                 enable_token_replication, enable_key_list_policy, token_ttl, policy_ttl, role_ttl and tokens"
                .into()),
        };
        if let Err(why) = res {
            errors.push(format!("acl.{key}: {why}"));
        }
    }
    config
}

fn read_tokens(map: &Map<String, Value>, tokens: &mut AclTokens, errors: &mut Vec<String>) {
    for (key, value) in map {
        let slot = match key.as_str() {
            "initial_management" | "master" => &mut tokens.initial_management,
            "agent" => &mut tokens.agent,
            "agent_recovery" | "agent_master" => &mut tokens.agent_recovery,
            "default" => &mut tokens.default,
            "dns" => &mut tokens.dns,
            "config_file_service_registration" => &mut tokens.config_file_service_registration,
            "replication" => &mut tokens.replication,
            _ => {
                errors.push(format!(
                    "acl.tokens.{key}: unknown token; roster supports initial_management, agent, agent_recovery, \
                     default, dns, config_file_service_registration and replication"
                ));
                continue;
            }
        };
        // The value is a secret: the message names the key, never the value.
        match value.as_str() {
            Some(secret) if secret.len() <= roster_kv::MAX_ACL_NAME_LEN => {
                *slot = (!secret.is_empty()).then(|| secret.to_owned());
            }
            Some(_) => errors.push(format!("acl.tokens.{key}: longer than {} bytes", roster_kv::MAX_ACL_NAME_LEN)),
            None => errors.push(format!("acl.tokens.{key}: expected a string")),
        }
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {value}"))
}

fn ttl(value: &Value) -> Result<Duration, String> {
    let ttl = duration_from_json(value)?;
    if ttl.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(ttl)
}
