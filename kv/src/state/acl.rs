//! Applying the ACL commands, and the ACL reads: tokens, policies, roles, the bootstrap record and token resolution.
//!
//! The HTTP edge validates a write (rules parse, names resolve to IDs, the caller may make it) before proposing it; apply checks again
//! everything the state decides: links point at existing policies and roles, names and secrets are unique, built-ins keep their meaning.
//! Rules are parsed again here, so a command that reaches the log by another path cannot store a policy no authorizer could read.

use std::collections::BTreeSet;

use crate::acl::{
    ANONYMOUS_TOKEN_ACCESSOR_ID, AclLink, AclPolicy, AclRole, AclToken, GLOBAL_MANAGEMENT_POLICY_ID,
    GLOBAL_MANAGEMENT_POLICY_NAME, ResolvedToken, anonymous_token, builtin_policies, secret_digest, secret_matches,
};
use crate::command::{Command, CommandResult};
use crate::state::State;
use crate::watch::{Changes, Table};

mod auth;

pub use auth::jwt_config;

/// The longest ID, name or secret an ACL record may carry, in bytes.
pub const MAX_ACL_NAME_LEN: usize = 256;
/// The longest description, in bytes.
pub const MAX_ACL_DESCRIPTION_LEN: usize = 4096;
/// The largest rules text of one policy, in bytes.
pub const MAX_ACL_RULES_LEN: usize = 128 * 1024;
/// The most links, identities and templated policies one token or role may carry, of each kind.
pub const MAX_ACL_LINKS: usize = 256;

impl State {
    /// Applies one ACL command.
    pub(crate) fn apply_acl(&mut self, index: u64, cmd: &Command, changes: &mut Changes) -> CommandResult {
        let outcome = match cmd {
            Command::AclInit { now_ms } => {
                self.acl_init(index, *now_ms, changes);
                Ok(())
            }
            Command::AclBootstrap { token, reset_index } => self.acl_bootstrap(index, token, *reset_index, changes),
            Command::AclTokenSet(token) => self.acl_token_set(index, token, changes),
            Command::AclTokenDelete { accessor_id } => self.acl_token_delete(index, accessor_id, changes),
            Command::AclPolicySet(policy) => self.acl_policy_set(index, policy, changes),
            Command::AclPolicyDelete { id } => self.acl_policy_delete(index, id, changes),
            Command::AclRoleSet(role) => self.acl_role_set(index, role, changes),
            Command::AclRoleDelete { id } => {
                if self.acl_roles.remove(id).is_some() {
                    touch(self, index, Table::AclRoles, changes);
                }
                Ok(())
            }
            Command::AclAuthMethodSet(method) => self.acl_auth_method_set(index, method, changes),
            Command::AclAuthMethodDelete { name } => {
                self.acl_auth_method_delete(index, name, changes);
                Ok(())
            }
            Command::AclBindingRuleSet(rule) => self.acl_binding_rule_set(index, rule, changes),
            Command::AclBindingRuleDelete { id } => {
                self.acl_binding_rule_delete(index, id, changes);
                Ok(())
            }
            _ => Err("internal: misrouted command".to_owned()),
        };
        match outcome {
            Ok(()) => CommandResult::Bool(true),
            Err(why) => CommandResult::Rejected(why),
        }
    }

    fn acl_init(&mut self, index: u64, now_ms: u64, changes: &mut Changes) {
        for policy in builtin_policies() {
            if !self.acl_policies.contains_key(&policy.id) {
                self.acl_policies
                    .insert(policy.id.clone(), AclPolicy { create_index: index, modify_index: index, ..policy });
                touch(self, index, Table::AclPolicies, changes);
            }
        }
        if !self.acl_tokens.contains_key(ANONYMOUS_TOKEN_ACCESSOR_ID) {
            let token = AclToken { create_index: index, modify_index: index, ..anonymous_token(now_ms) };
            self.insert_token(token);
            touch(self, index, Table::AclTokens, changes);
        }
    }

    fn acl_bootstrap(
        &mut self,
        index: u64,
        token: &AclToken,
        reset_index: u64,
        changes: &mut Changes,
    ) -> Result<(), String> {
        if let Some(done_at) = self.acl_bootstrap_index {
            if reset_index == 0 {
                return Err(format!("ACL bootstrap no longer allowed (reset index: {done_at})"));
            }
            if reset_index != done_at {
                return Err(format!("Invalid bootstrap reset index (specified {reset_index}, reset index: {done_at})"));
            }
        }
        self.acl_init(index, token.create_time_ms, changes);
        let mut token = token.clone();
        token.policies =
            vec![AclLink { id: GLOBAL_MANAGEMENT_POLICY_ID.into(), name: GLOBAL_MANAGEMENT_POLICY_NAME.into() }];
        self.acl_token_set(index, &token, changes)?;
        self.acl_bootstrap_index = Some(index);
        Ok(())
    }

    fn acl_token_set(&mut self, index: u64, token: &AclToken, changes: &mut Changes) -> Result<(), String> {
        check_len("AccessorID", &token.accessor_id, MAX_ACL_NAME_LEN)?;
        check_len("SecretID", &token.secret_id, MAX_ACL_NAME_LEN)?;
        check_len("Description", &token.description, MAX_ACL_DESCRIPTION_LEN)?;
        if token.accessor_id.is_empty() || token.secret_id.is_empty() {
            return Err("A token needs an AccessorID and a SecretID".into());
        }
        check_count(token.policies.len() + token.roles.len())?;
        check_count(token.service_identities.len() + token.node_identities.len() + token.templated_policies.len())?;
        self.check_policy_links(&token.policies)?;
        if !token.auth_method.is_empty() && !self.acl_auth_methods.contains_key(&token.auth_method) {
            return Err(format!("No such auth method with Name: {}", token.auth_method));
        }
        for link in &token.roles {
            if !self.acl_roles.contains_key(&link.id) {
                return Err(format!("cannot find role {}", link.id));
            }
        }
        if let Some(owner) = self.acl_secrets.get(&secret_digest(&token.secret_id))
            && *owner != token.accessor_id
        {
            return Err("Invalid Token: SecretID is already in use".into());
        }
        let mut stored = token.clone();
        stored.modify_index = index;
        match self.acl_tokens.get(&token.accessor_id) {
            Some(existing) => {
                if !secret_matches(&existing.secret_id, &token.secret_id) {
                    return Err("Changing a token's SecretID is not permitted".into());
                }
                stored.create_index = existing.create_index;
                stored.create_time_ms = existing.create_time_ms;
            }
            None => stored.create_index = index,
        }
        self.insert_token(stored);
        touch(self, index, Table::AclTokens, changes);
        Ok(())
    }

    fn acl_token_delete(&mut self, index: u64, accessor_id: &str, changes: &mut Changes) -> Result<(), String> {
        if accessor_id == ANONYMOUS_TOKEN_ACCESSOR_ID {
            return Err("Delete operation not permitted on the anonymous token".into());
        }
        if let Some(token) = self.acl_tokens.remove(accessor_id) {
            self.acl_secrets.remove(&secret_digest(&token.secret_id));
            touch(self, index, Table::AclTokens, changes);
        }
        Ok(())
    }

    fn acl_policy_set(&mut self, index: u64, policy: &AclPolicy, changes: &mut Changes) -> Result<(), String> {
        check_len("ID", &policy.id, MAX_ACL_NAME_LEN)?;
        check_len("Name", &policy.name, MAX_ACL_NAME_LEN)?;
        check_len("Description", &policy.description, MAX_ACL_DESCRIPTION_LEN)?;
        check_len("Rules", &policy.rules, MAX_ACL_RULES_LEN)?;
        check_count(policy.datacenters.len())?;
        if policy.id.is_empty() || policy.name.is_empty() {
            return Err("Invalid Policy: no Name is set".into());
        }
        if let Err(err) = roster_acl::Policy::parse(&policy.rules) {
            return Err(err.to_string());
        }
        if self.acl_policies.values().any(|p| p.name == policy.name && p.id != policy.id) {
            return Err(format!("Invalid Policy: A Policy with Name {:?} already exists", policy.name));
        }
        let mut stored = policy.clone();
        stored.modify_index = index;
        match self.acl_policies.get(&policy.id) {
            Some(existing) if existing.id == GLOBAL_MANAGEMENT_POLICY_ID => {
                if existing.rules != policy.rules || !policy.datacenters.is_empty() {
                    return Err("Changing the Rules for the builtin global-management policy is not permitted".into());
                }
                stored.create_index = existing.create_index;
            }
            Some(existing) => stored.create_index = existing.create_index,
            None => stored.create_index = index,
        }
        self.acl_policies.insert(stored.id.clone(), stored);
        touch(self, index, Table::AclPolicies, changes);
        Ok(())
    }

    fn acl_policy_delete(&mut self, index: u64, id: &str, changes: &mut Changes) -> Result<(), String> {
        if builtin_policies().iter().any(|p| p.id == id) {
            return Err("Delete operation not permitted on a builtin policy".into());
        }
        if self.acl_policies.remove(id).is_some() {
            touch(self, index, Table::AclPolicies, changes);
        }
        Ok(())
    }

    fn acl_role_set(&mut self, index: u64, role: &AclRole, changes: &mut Changes) -> Result<(), String> {
        check_len("ID", &role.id, MAX_ACL_NAME_LEN)?;
        check_len("Name", &role.name, MAX_ACL_NAME_LEN)?;
        check_len("Description", &role.description, MAX_ACL_DESCRIPTION_LEN)?;
        check_count(role.policies.len())?;
        check_count(role.service_identities.len() + role.node_identities.len() + role.templated_policies.len())?;
        if role.id.is_empty() || role.name.is_empty() {
            return Err("Invalid Role: no Name is set".into());
        }
        self.check_policy_links(&role.policies)?;
        if self.acl_roles.values().any(|r| r.name == role.name && r.id != role.id) {
            return Err(format!("Invalid Role: A Role with Name {:?} already exists", role.name));
        }
        let mut stored = role.clone();
        stored.modify_index = index;
        stored.create_index = self.acl_roles.get(&role.id).map_or(index, |existing| existing.create_index);
        self.acl_roles.insert(stored.id.clone(), stored);
        touch(self, index, Table::AclRoles, changes);
        Ok(())
    }

    fn check_policy_links(&self, links: &[AclLink]) -> Result<(), String> {
        match links.iter().find(|link| !self.acl_policies.contains_key(&link.id)) {
            Some(missing) => Err(format!("cannot find policy {}", missing.id)),
            None => Ok(()),
        }
    }

    fn insert_token(&mut self, token: AclToken) {
        self.acl_secrets.insert(secret_digest(&token.secret_id), token.accessor_id.clone());
        self.acl_tokens.insert(token.accessor_id.clone(), token);
    }

    /// The index at which ACLs were bootstrapped, if they were.
    pub fn acl_bootstrap_index(&self) -> Option<u64> {
        self.acl_bootstrap_index
    }

    /// Every token by accessor ID, links refreshed, and the tokens table's index.
    pub fn acl_tokens(&self) -> (Vec<AclToken>, u64) {
        (self.acl_tokens.values().map(|t| self.refresh_token(t)).collect(), self.table(Table::AclTokens))
    }

    /// One token by accessor ID.
    pub fn acl_token(&self, accessor_id: &str) -> Option<AclToken> {
        self.acl_tokens.get(accessor_id).map(|t| self.refresh_token(t))
    }

    /// One token by secret, compared in constant time.
    pub fn acl_token_by_secret(&self, secret: &str) -> Option<AclToken> {
        let accessor = self.acl_secrets.get(&secret_digest(secret))?;
        let token = self.acl_tokens.get(accessor)?;
        secret_matches(&token.secret_id, secret).then(|| self.refresh_token(token))
    }

    /// Every policy by ID, and the policies table's index.
    pub fn acl_policies(&self) -> (Vec<&AclPolicy>, u64) {
        (self.acl_policies.values().collect(), self.table(Table::AclPolicies))
    }

    /// Every role by ID, links refreshed, and the roles table's index.
    pub fn acl_roles(&self) -> (Vec<AclRole>, u64) {
        (self.acl_roles.values().map(|r| self.refresh_role(r)).collect(), self.table(Table::AclRoles))
    }

    /// A token found by secret with every policy and role it grants.
    pub fn acl_resolve(&self, secret: &str) -> Option<ResolvedToken> {
        let token = self.acl_token_by_secret(secret)?;
        let roles: Vec<AclRole> =
            token.roles.iter().filter_map(|link| self.acl_roles.get(&link.id)).map(|r| self.refresh_role(r)).collect();
        let ids: BTreeSet<&str> = token
            .policies
            .iter()
            .chain(roles.iter().flat_map(|r| r.policies.iter()))
            .map(|link| link.id.as_str())
            .collect();
        let policies = ids.into_iter().filter_map(|id| self.acl_policies.get(id)).cloned().collect();
        Some(ResolvedToken { token, policies, roles })
    }

    /// The highest index of the three ACL tables.
    pub fn acl_index(&self) -> u64 {
        [Table::AclTokens, Table::AclPolicies, Table::AclRoles].into_iter().map(|t| self.table(t)).max().unwrap_or(1)
    }

    fn refresh_token(&self, token: &AclToken) -> AclToken {
        let mut token = token.clone();
        token.policies = self.refresh_links(&token.policies, |id| self.acl_policies.get(id).map(|p| p.name.clone()));
        token.roles = self.refresh_links(&token.roles, |id| self.acl_roles.get(id).map(|r| r.name.clone()));
        token
    }

    fn refresh_role(&self, role: &AclRole) -> AclRole {
        let mut role = role.clone();
        role.policies = self.refresh_links(&role.policies, |id| self.acl_policies.get(id).map(|p| p.name.clone()));
        role
    }

    fn refresh_links(&self, links: &[AclLink], name_of: impl Fn(&str) -> Option<String>) -> Vec<AclLink> {
        links.iter().filter_map(|link| name_of(&link.id).map(|name| AclLink { id: link.id.clone(), name })).collect()
    }
}

pub(super) fn touch(state: &mut State, index: u64, table: Table, changes: &mut Changes) {
    state.table_index.insert(table, index);
    changes.tables.insert(table);
}

pub(super) fn check_len(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field} is too long ({} bytes, at most {max})", value.len()));
    }
    Ok(())
}

fn check_count(n: usize) -> Result<(), String> {
    if n > MAX_ACL_LINKS {
        return Err(format!("too many links ({n}, at most {MAX_ACL_LINKS} of each kind)"));
    }
    Ok(())
}
