//! `login`: turning a bearer token into an ACL token, as Consul's `ACL.Login` does, decided and minted on a server.
//!
//! The server that receives a login (from its own HTTP API or a client agent's `ClientLogin`) reads its applied state: the
//! method, its `jwt` config and its binding rules. It verifies the bearer token with the server's clock, evaluates each rule's
//! selector on the claims the method projects, renders the bind names of the rules that match, and proposes a fresh token
//! (IDs drawn here, never in `kv`) carrying what they bind. Apply then checks the token like any other, so a role or policy
//! deleted meanwhile cannot be linked. A login that no rule matches, or whose bindings come to nothing, is Consul's plain
//! "Permission denied" and writes nothing.

use std::collections::BTreeMap;

use roster_acl::BindType;
use roster_filter::{Filter, schema::BINDING_IDENTITY};
use roster_kv::{AclLink, AclNodeIdentity, AclServiceIdentity, AclTemplatedPolicy, AclToken, State};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A login request: Consul's `ACLLoginParams`. Its `Debug` leaves the bearer token out: it is a credential.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct Login {
    /// The auth method's name.
    pub auth_method: String,
    /// The credential the method verifies (a JWT for `jwt`).
    pub bearer_token: String,
    /// Free key/values recorded in the minted token's description.
    pub meta: BTreeMap<String, String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("auth_method", &self.auth_method)
            .field("bearer_token", &"<hidden>")
            .field("meta", &self.meta)
            .finish()
    }
}

/// What the matching rules of a login bind, before it becomes a token.
#[derive(Debug, Default)]
struct Bindings {
    services: Vec<AclServiceIdentity>,
    nodes: Vec<AclNodeIdentity>,
    roles: Vec<AclLink>,
    policies: Vec<AclLink>,
    templated: Vec<AclTemplatedPolicy>,
}

impl Bindings {
    fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.nodes.is_empty()
            && self.roles.is_empty()
            && self.policies.is_empty()
            && self.templated.is_empty()
    }
}

/// The token `login` would mint in `state` at `now_ms`, with the given accessor and secret, or why it is refused.
pub(crate) fn mint(
    state: &State,
    datacenter: &str,
    login: &Login,
    now_ms: u64,
    (accessor_id, secret_id): (String, String),
) -> Result<AclToken> {
    let Some(method) = state.acl_auth_method(&login.auth_method) else {
        return Err(Error::PermissionDenied(format!("ACL not found: auth method {:?} not found", login.auth_method)));
    };
    // Apply checked the config; a failure here is a record written by a laxer build, which verifies nothing.
    let config = roster_kv::jwt_config(&method.config_json).map_err(Error::Rejected)?;
    let now_secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let identity = config
        .verify(&login.bearer_token, now_secs)
        .map_err(|why| Error::PermissionDenied(format!("Permission denied: invalid bearer token: {why}")))?;
    let selectable = identity.selectable();
    let vars = identity.projected_vars();
    let mut bindings = Bindings::default();
    for rule in state.acl_binding_rules_of(&method.name) {
        // A selector that no longer parses matches nothing, as in Consul.
        let matched = rule.selector.is_empty()
            || Filter::new(&rule.selector, &BINDING_IDENTITY).is_ok_and(|f| f.matches(&selectable));
        if matched {
            bind(state, datacenter, rule, &vars, &mut bindings)?;
        }
    }
    if bindings.is_empty() {
        return Err(Error::PermissionDenied("Permission denied".into()));
    }
    Ok(AclToken {
        accessor_id,
        secret_id,
        description: description(&login.meta),
        policies: bindings.policies,
        roles: bindings.roles,
        service_identities: bindings.services,
        node_identities: bindings.nodes,
        templated_policies: bindings.templated,
        local: method.token_locality != "global",
        auth_method: method.name.clone(),
        expiration_time_ms: (method.max_token_ttl_ms > 0).then(|| now_ms.saturating_add(method.max_token_ttl_ms)),
        create_time_ms: now_ms,
        ..AclToken::default()
    })
}

/// Adds what one matching rule binds; a role or policy that does not exist binds nothing, as in Consul.
fn bind(
    state: &State,
    datacenter: &str,
    rule: &roster_kv::AclBindingRule,
    vars: &BTreeMap<String, String>,
    bindings: &mut Bindings,
) -> Result<()> {
    let bind_type = BindType::parse(&rule.bind_type).map_err(Error::Rejected)?;
    let (name, var) = roster_acl::bind_name_for(bind_type, &rule.bind_name, rule.bind_var_name.as_deref(), vars)
        .map_err(Error::Rejected)?;
    match bind_type {
        BindType::Service => {
            bindings.services.push(AclServiceIdentity { service_name: name, datacenters: Vec::new() });
        }
        BindType::Node => {
            bindings.nodes.push(AclNodeIdentity { node_name: name, datacenter: datacenter.to_owned() });
        }
        BindType::Role => {
            let found = state.acl_roles().0.into_iter().find(|r| r.name == name);
            bindings.roles.extend(found.map(|r| AclLink { id: r.id, name: r.name }));
        }
        BindType::Policy => {
            let found = state.acl_policies().0.into_iter().find(|p| p.name == name);
            bindings.policies.extend(found.map(|p| AclLink { id: p.id.clone(), name: p.name.clone() }));
        }
        BindType::TemplatedPolicy => {
            bindings.templated.push(AclTemplatedPolicy { template_name: name, name: var, datacenters: Vec::new() });
        }
    }
    Ok(())
}

/// Consul's description of a login token: the prefix, then the login's meta as JSON when there is any.
fn description(meta: &BTreeMap<String, String>) -> String {
    const PREFIX: &str = "token created via login";
    if meta.is_empty() {
        return PREFIX.to_owned();
    }
    format!("{PREFIX}: {}", serde_json::to_string(meta).unwrap_or_default())
}

#[cfg(test)]
mod tests;
