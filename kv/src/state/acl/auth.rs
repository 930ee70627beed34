//! Applying auth methods and binding rules, with the checks Consul makes of them, and deleting what a method minted with it.
//!
//! Apply re-validates everything the HTTP edge did (type, token locality, max token TTL, the whole `jwt` config with its keys,
//! each selector against the binding-identity shape, each bind name rendered with placeholder values), so no path into the log
//! can store a method a login could not use or a rule that could never be evaluated.

use std::time::Duration;

use roster_acl::{BindType, JwtConfig};

use super::{MAX_ACL_DESCRIPTION_LEN, MAX_ACL_NAME_LEN, check_len, touch};
use crate::acl::{AclAuthMethod, AclBindingRule, secret_digest};
use crate::state::State;
use crate::watch::{Changes, Table};

/// The shortest `MaxTokenTTL` (Consul's `acl_token_min_expiration_ttl` default).
const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
/// The longest `MaxTokenTTL` (Consul's `acl_token_max_expiration_ttl` default).
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// The largest config of one method, in bytes (a few PEM keys).
const MAX_CONFIG_LEN: usize = 256 * 1024;

/// Reads and checks a `jwt` method's config text, as apply and the servers' login read it.
pub fn jwt_config(config_json: &str) -> Result<JwtConfig, String> {
    let value: serde_json::Value = if config_json.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(config_json).map_err(|e| format!("Config is not valid JSON: {e}"))?
    };
    JwtConfig::from_json(&value, crate::parse_go_duration)
}

impl State {
    pub(super) fn acl_auth_method_set(
        &mut self,
        index: u64,
        method: &AclAuthMethod,
        changes: &mut Changes,
    ) -> Result<(), String> {
        check_len("Name", &method.name, MAX_ACL_NAME_LEN)?;
        check_len("DisplayName", &method.display_name, MAX_ACL_NAME_LEN)?;
        check_len("Description", &method.description, MAX_ACL_DESCRIPTION_LEN)?;
        check_len("Config", &method.config_json, MAX_CONFIG_LEN)?;
        if !valid_method_name(&method.name) {
            return Err(format!("Invalid Auth Method: invalid Name {:?}", method.name));
        }
        if method.method_type != "jwt" {
            return Err(format!("Invalid Auth Method: Type should be one of: [jwt], not {:?}", method.method_type));
        }
        if !matches!(method.token_locality.as_str(), "" | "local" | "global") {
            return Err("Invalid Auth Method: TokenLocality should be one of 'local' or 'global'".into());
        }
        let ttl = Duration::from_millis(method.max_token_ttl_ms);
        if !ttl.is_zero() && ttl < MIN_TOKEN_TTL {
            return Err(format!(
                "Invalid Auth Method: MaxTokenTTL {}ms cannot be less than 1m0s",
                method.max_token_ttl_ms
            ));
        }
        if ttl > MAX_TOKEN_TTL {
            return Err(format!(
                "Invalid Auth Method: MaxTokenTTL {}ms cannot be more than 24h0m0s",
                method.max_token_ttl_ms
            ));
        }
        let config = jwt_config(&method.config_json).map_err(|why| format!("Invalid Auth Method: {why}"))?;
        // A changed config must still serve every rule already bound to the method.
        for rule in self.acl_binding_rules.values().filter(|r| r.auth_method == method.name) {
            check_rule_against(rule, &config).map_err(|why| {
                format!("Invalid Auth Method: binding rule {} would no longer be valid: {why}", rule.id)
            })?;
        }
        let mut stored = method.clone();
        stored.modify_index = index;
        stored.create_index = self.acl_auth_methods.get(&method.name).map_or(index, |m| m.create_index);
        self.acl_auth_methods.insert(stored.name.clone(), stored);
        touch(self, index, Table::AclAuthMethods, changes);
        Ok(())
    }

    /// Deletes a method, its rules and the tokens it minted, as Consul's `ACLAuthMethodDelete` does.
    pub(super) fn acl_auth_method_delete(&mut self, index: u64, name: &str, changes: &mut Changes) {
        if self.acl_auth_methods.remove(name).is_none() {
            return;
        }
        touch(self, index, Table::AclAuthMethods, changes);
        let n_rules = self.acl_binding_rules.len();
        self.acl_binding_rules.retain(|_, rule| rule.auth_method != name);
        if self.acl_binding_rules.len() != n_rules {
            touch(self, index, Table::AclBindingRules, changes);
        }
        let minted: Vec<String> =
            self.acl_tokens.values().filter(|t| t.auth_method == name).map(|t| t.accessor_id.clone()).collect();
        for accessor_id in &minted {
            if let Some(token) = self.acl_tokens.remove(accessor_id) {
                self.acl_secrets.remove(&secret_digest(&token.secret_id));
            }
        }
        if !minted.is_empty() {
            touch(self, index, Table::AclTokens, changes);
        }
    }

    pub(super) fn acl_binding_rule_set(
        &mut self,
        index: u64,
        rule: &AclBindingRule,
        changes: &mut Changes,
    ) -> Result<(), String> {
        check_len("ID", &rule.id, MAX_ACL_NAME_LEN)?;
        check_len("Description", &rule.description, MAX_ACL_DESCRIPTION_LEN)?;
        check_len("BindName", &rule.bind_name, MAX_ACL_NAME_LEN)?;
        check_len("Selector", &rule.selector, roster_filter::MAX_LENGTH)?;
        if rule.id.is_empty() {
            return Err("Invalid Binding Rule: no ID is set".into());
        }
        if rule.auth_method.is_empty() {
            return Err("Invalid Binding Rule: no AuthMethod is set".into());
        }
        let method = self
            .acl_auth_methods
            .get(&rule.auth_method)
            .ok_or_else(|| format!("Invalid Binding Rule: unknown AuthMethod {:?}", rule.auth_method))?;
        if let Some(existing) = self.acl_binding_rules.get(&rule.id)
            && existing.auth_method != rule.auth_method
        {
            return Err("Invalid Binding Rule: the AuthMethod of a binding rule cannot change".into());
        }
        let config = jwt_config(&method.config_json)?;
        check_rule_against(rule, &config)?;
        let mut stored = rule.clone();
        stored.modify_index = index;
        stored.create_index = self.acl_binding_rules.get(&rule.id).map_or(index, |r| r.create_index);
        self.acl_binding_rules.insert(stored.id.clone(), stored);
        touch(self, index, Table::AclBindingRules, changes);
        Ok(())
    }

    pub(super) fn acl_binding_rule_delete(&mut self, index: u64, id: &str, changes: &mut Changes) {
        if self.acl_binding_rules.remove(id).is_some() {
            touch(self, index, Table::AclBindingRules, changes);
        }
    }

    /// One auth method by name.
    pub fn acl_auth_method(&self, name: &str) -> Option<&AclAuthMethod> {
        self.acl_auth_methods.get(name)
    }

    /// The binding rules of one auth method, by ID.
    pub fn acl_binding_rules_of<'a>(&'a self, method: &'a str) -> impl Iterator<Item = &'a AclBindingRule> + 'a {
        self.acl_binding_rules.values().filter(move |rule| rule.auth_method == method)
    }
}

/// A rule's selector and bind name checked against what its method's config projects.
fn check_rule_against(rule: &AclBindingRule, config: &JwtConfig) -> Result<(), String> {
    let bind_type = BindType::parse(&rule.bind_type)?;
    if !rule.selector.is_empty() {
        let filter = roster_filter::Filter::new(&rule.selector, &roster_filter::schema::BINDING_IDENTITY)
            .map_err(|why| format!("Invalid Binding Rule: invalid Selector: {why}"))?;
        // Consul types the selector by the method's mappings, so a name no mapping projects is refused, not a rule that
        // silently never matches.
        for path in filter.selectors() {
            let known = match path {
                [kind, name, ..] if kind == "value" => config.value_names().any(|n| n == name),
                [kind, name, ..] if kind == "list" => config.list_names().any(|n| n == name),
                _ => true,
            };
            if !known {
                return Err(format!(
                    "Invalid Binding Rule: invalid Selector: Selector {:?} is not valid",
                    path.join(".")
                ));
            }
        }
    }
    if bind_type != BindType::TemplatedPolicy && rule.bind_var_name.is_some() {
        return Err("Invalid Binding Rule: BindVars are only for the templated-policy BindType".into());
    }
    roster_acl::check_binding_rule(bind_type, &rule.bind_name, rule.bind_var_name.as_deref(), config.value_names())
}

/// Consul's rule for auth method names: 1 to 128 of letters, digits, `-` and `_`.
fn valid_method_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
