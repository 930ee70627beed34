//! [`Authorizer`]: a token's policies merged, then chained to the default policy.
//!
//! Follows Consul's `acl/policy_authorizer.go` (exact rule beats prefix rule, longest prefix wins,
//! `KeyWritePrefix`, `NodeReadAll`/`ServiceReadAll`, mesh/peering falling back to operator),
//! `acl/chained_authorizer.go` (first non-default decision wins) and `acl/static_authorizer.go`
//! (allow-all, deny-all, manage-all).

use crate::policy::{AccessLevel, Policy, Resource, Table};

/// What happens when no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPolicy {
    /// Allow everything but ACL management (Consul's `AllowAll`).
    Allow,
    /// Deny everything (Consul's `DenyAll`).
    Deny,
}

/// A rule's verdict: allow, deny, or no opinion (ask the next authorizer in the chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
    Default,
}

/// Answers permission questions for one token: its policies merged, then the default policy.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// The merged rules; empty for the static authorizers.
    rules: Policy,
    /// The static authorizer asked when no rule decides.
    fallback: Static,
}

/// Consul's `staticAuthorizer`: `manage` governs `acl`, `allow` everything else.
#[derive(Debug, Clone, Copy)]
struct Static {
    manage: bool,
    allow: bool,
}

impl Authorizer {
    /// Merges `policies` per Consul's merger and chains them to `default`.
    pub fn new(policies: &[Policy], default: DefaultPolicy) -> Authorizer {
        let mut rules = Policy::default();
        for policy in policies {
            rules.merge(policy);
        }
        let fallback = Static { manage: false, allow: default == DefaultPolicy::Allow };
        Authorizer { rules, fallback }
    }

    /// The global-management policy: everything allowed, including `acl:write`.
    pub fn manage_all() -> Authorizer {
        Authorizer { rules: Policy::default(), fallback: Static { manage: true, allow: true } }
    }

    /// Consul's `AllowAll` (ACLs disabled): everything allowed except `acl` read and write.
    pub fn allow_all() -> Authorizer {
        Authorizer { rules: Policy::default(), fallback: Static { manage: false, allow: true } }
    }

    /// Everything denied.
    pub fn deny_all() -> Authorizer {
        Authorizer { rules: Policy::default(), fallback: Static { manage: false, allow: false } }
    }

    /// Listing ACL tokens, policies and roles.
    pub fn acl_read(&self) -> bool {
        self.manage(self.scalar(Resource::Acl, AccessLevel::Read))
    }
    /// Changing ACL tokens, policies and roles.
    pub fn acl_write(&self) -> bool {
        self.manage(self.scalar(Resource::Acl, AccessLevel::Write))
    }
    /// Reading agent endpoints of `node`.
    pub fn agent_read(&self, node: &str) -> bool {
        self.named(Resource::Agent, node, AccessLevel::Read)
    }
    /// Changing things through agent endpoints of `node`.
    pub fn agent_write(&self, node: &str) -> bool {
        self.named(Resource::Agent, node, AccessLevel::Write)
    }
    /// Reading user event `name`.
    pub fn event_read(&self, name: &str) -> bool {
        self.named(Resource::Event, name, AccessLevel::Read)
    }
    /// Firing user event `name`.
    pub fn event_write(&self, name: &str) -> bool {
        self.named(Resource::Event, name, AccessLevel::Write)
    }
    /// Reading KV entry `key`.
    pub fn key_read(&self, key: &str) -> bool {
        self.named(Resource::Key, key, AccessLevel::Read)
    }
    /// Listing keys under `prefix`: the rule that applies to `prefix` grants list (or write); read does
    /// not. (Consul's KV endpoint asks this only with `acl.enable_key_list_policy`; otherwise it asks
    /// [`Authorizer::key_read`].)
    pub fn key_list(&self, prefix: &str) -> bool {
        self.named(Resource::Key, prefix, AccessLevel::List)
    }
    /// Writing KV entry `key`.
    pub fn key_write(&self, key: &str) -> bool {
        self.named(Resource::Key, key, AccessLevel::Write)
    }
    /// Writing (deleting) everything under `prefix`: the longest prefix rule covering `prefix` grants
    /// write and no rule at or under `prefix` withholds it.
    pub fn key_write_prefix(&self, prefix: &str) -> bool {
        self.chain(self.rules.tables.get(&Resource::Key).map_or(Decision::Default, |t| write_prefix(t, prefix)))
    }
    /// Reading the gossip keyring.
    pub fn keyring_read(&self) -> bool {
        self.chain(self.scalar(Resource::Keyring, AccessLevel::Read))
    }
    /// Changing the gossip keyring.
    pub fn keyring_write(&self) -> bool {
        self.chain(self.scalar(Resource::Keyring, AccessLevel::Write))
    }
    /// Reading mesh config (`mesh`, else `operator`).
    pub fn mesh_read(&self) -> bool {
        self.chain(self.scalar_or_operator(Resource::Mesh, AccessLevel::Read))
    }
    /// Changing mesh config (`mesh`, else `operator`).
    pub fn mesh_write(&self) -> bool {
        self.chain(self.scalar_or_operator(Resource::Mesh, AccessLevel::Write))
    }
    /// Reading (discovering) node `node`.
    pub fn node_read(&self, node: &str) -> bool {
        self.named(Resource::Node, node, AccessLevel::Read)
    }
    /// Reading every node: a `node_prefix ""` rule grants read and no node rule denies, or no rule
    /// decides and the default allows.
    pub fn node_read_all(&self) -> bool {
        self.chain(self.read_all(Resource::Node))
    }
    /// Registering node `node`.
    pub fn node_write(&self, node: &str) -> bool {
        self.named(Resource::Node, node, AccessLevel::Write)
    }
    /// Read-only operator endpoints.
    pub fn operator_read(&self) -> bool {
        self.chain(self.scalar(Resource::Operator, AccessLevel::Read))
    }
    /// State-changing operator endpoints.
    pub fn operator_write(&self) -> bool {
        self.chain(self.scalar(Resource::Operator, AccessLevel::Write))
    }
    /// Reading cluster peerings (`peering`, else `operator`).
    pub fn peering_read(&self) -> bool {
        self.chain(self.scalar_or_operator(Resource::Peering, AccessLevel::Read))
    }
    /// Changing cluster peerings (`peering`, else `operator`).
    pub fn peering_write(&self) -> bool {
        self.chain(self.scalar_or_operator(Resource::Peering, AccessLevel::Write))
    }
    /// Reading prepared query `name`.
    pub fn query_read(&self, name: &str) -> bool {
        self.named(Resource::Query, name, AccessLevel::Read)
    }
    /// Creating, changing or deleting prepared query `name`.
    pub fn query_write(&self, name: &str) -> bool {
        self.named(Resource::Query, name, AccessLevel::Write)
    }
    /// Reading (discovering) service `name`.
    pub fn service_read(&self, name: &str) -> bool {
        self.named(Resource::Service, name, AccessLevel::Read)
    }
    /// Reading every service (as [`Authorizer::node_read_all`]).
    pub fn service_read_all(&self) -> bool {
        self.chain(self.read_all(Resource::Service))
    }
    /// Registering service `name`.
    pub fn service_write(&self, name: &str) -> bool {
        self.named(Resource::Service, name, AccessLevel::Write)
    }
    /// Reading sessions of node `node`.
    pub fn session_read(&self, node: &str) -> bool {
        self.named(Resource::Session, node, AccessLevel::Read)
    }
    /// Creating sessions on node `node`.
    pub fn session_write(&self, node: &str) -> bool {
        self.named(Resource::Session, node, AccessLevel::Write)
    }

    /// The chain's last link for everything but `acl`.
    fn chain(&self, decision: Decision) -> bool {
        match decision {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Default => self.fallback.allow,
        }
    }

    /// The chain's last link for `acl`.
    fn manage(&self, decision: Decision) -> bool {
        match decision {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Default => self.fallback.manage,
        }
    }

    fn scalar(&self, resource: Resource, required: AccessLevel) -> Decision {
        self.rules.scalars.get(&resource).map_or(Decision::Default, |&rule| enforce(rule, required))
    }

    fn scalar_or_operator(&self, resource: Resource, required: AccessLevel) -> Decision {
        match self.rules.scalars.get(&resource) {
            Some(&rule) => enforce(rule, required),
            None => self.scalar(Resource::Operator, required),
        }
    }

    fn named(&self, resource: Resource, name: &str, required: AccessLevel) -> bool {
        let rule = self.rules.tables.get(&resource).and_then(|table| lookup(table, name));
        self.chain(rule.map_or(Decision::Default, |rule| enforce(rule, required)))
    }

    /// Consul's `allAllowed` for read: any deny rule denies; else a `""` prefix rule allows.
    fn read_all(&self, resource: Resource) -> Decision {
        let Some(table) = self.rules.tables.get(&resource) else {
            return Decision::Default;
        };
        let denies = |map: &std::collections::BTreeMap<String, AccessLevel>| {
            map.values().any(|&rule| enforce(rule, AccessLevel::Read) == Decision::Deny)
        };
        if denies(&table.exact) || denies(&table.prefix) {
            return Decision::Deny;
        }
        table.prefix.get("").map_or(Decision::Default, |&rule| enforce(rule, AccessLevel::Read))
    }
}

/// Does `rule` grant `required`? (Consul's `enforce`.)
fn enforce(rule: AccessLevel, required: AccessLevel) -> Decision {
    let allowed = match rule {
        AccessLevel::Write => true,
        AccessLevel::List => matches!(required, AccessLevel::List | AccessLevel::Read),
        AccessLevel::Read => required == AccessLevel::Read,
        AccessLevel::Deny => false,
    };
    if allowed { Decision::Allow } else { Decision::Deny }
}

/// The rule for `name`: its exact rule, else its longest prefix rule.
fn lookup(table: &Table, name: &str) -> Option<AccessLevel> {
    if let Some(&rule) = table.exact.get(name) {
        return Some(rule);
    }
    longest_prefix(table, name)
}

fn longest_prefix(table: &Table, name: &str) -> Option<AccessLevel> {
    (0..=name.len())
        .rev()
        .filter(|&end| name.is_char_boundary(end))
        .find_map(|end| table.prefix.get(&name[..end]).copied())
}

/// Consul's `KeyWritePrefix`.
fn write_prefix(table: &Table, prefix: &str) -> Decision {
    let base = match longest_prefix(table, prefix) {
        Some(AccessLevel::Write) => Decision::Allow,
        Some(_) => return Decision::Deny,
        None => Decision::Default,
    };
    let under = |map: &std::collections::BTreeMap<String, AccessLevel>| {
        map.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .any(|(_, &rule)| rule != AccessLevel::Write)
    };
    if under(&table.exact) || under(&table.prefix) { Decision::Deny } else { base }
}

#[cfg(test)]
mod tests;
