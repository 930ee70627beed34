//! Access control where the state is: resolving a token against the replicated ACL tables, deciding whether a command may be
//! proposed, and cutting from an answer what the caller may not see.
//!
//! Every request that carries a caller's token goes through here on the server that serves it: a server agent's own HTTP API
//! in process, and a client agent's requests over the RPC (the client forwards the caller's token and never decides on its
//! own). The agent's internal calls on a server (its own catalog sync, the leader's reconcile) use the untokened methods.
//!
//! Decisions follow Consul's endpoints: a write the token may not make is refused whole with Consul's "Permission denied"
//! text; a read of one named thing (a KV key, the ACL tables) is refused the same way; lists are filtered silently, and the
//! caller learns only that something was left out (`X-Consul-Results-Filtered-By-ACLs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use roster_acl::{AccessLevel, Authorizer, DefaultPolicy, Policy, Resource};
use roster_kv::{
    ANONYMOUS_TOKEN_ACCESSOR_ID, ANONYMOUS_TOKEN_SECRET, AclNodeIdentity, AclServiceIdentity, AclTemplatedPolicy,
    Answer, Command, HealthCheck, KvVerb, Query, ResolvedToken, State, TxnError, TxnOp, TxnResult,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How a server enforces ACLs: what the agent's `acl` block says.
#[derive(Debug, Clone)]
pub struct AclSettings {
    /// What a token may do where no rule of its policies speaks.
    pub default_policy: DefaultPolicy,
    /// Require `key:list` on the prefix for recursive and keys-only KV reads (`acl.enable_key_list_policy`).
    pub enable_key_list_policy: bool,
    /// This datacenter: policies, identities and templated policies limited to other datacenters grant nothing here.
    pub datacenter: String,
}

/// What one caller may do: its token's accessor ID (for denial messages) and the merged authorizer.
#[derive(Debug, Clone)]
pub struct Access {
    accessor_id: Arc<str>,
    anonymous: bool,
    authorizer: Arc<Authorizer>,
    /// Unix milliseconds from which the token is no longer valid.
    expires_ms: Option<u64>,
    key_list_policy: bool,
}

impl Access {
    /// Everything allowed: ACLs are off, or the caller is this server itself.
    pub fn manage_all() -> Access {
        Access {
            accessor_id: Arc::from(""),
            anonymous: false,
            authorizer: Arc::new(Authorizer::manage_all()),
            expires_ms: None,
            key_list_policy: false,
        }
    }

    /// An access decided by the agent itself, without the servers (the agent recovery token).
    pub fn local(accessor_id: &str, authorizer: Authorizer) -> Access {
        Access {
            accessor_id: Arc::from(accessor_id),
            anonymous: false,
            authorizer: Arc::new(authorizer),
            expires_ms: None,
            key_list_policy: false,
        }
    }

    /// The access a resolved token grants here: its policies, its roles' policies, and every identity and templated policy
    /// valid in this datacenter, merged and chained to the default policy.
    pub fn from_resolved(settings: &AclSettings, resolved: &ResolvedToken, cache: &PolicyCache) -> Access {
        let dc = settings.datacenter.as_str();
        let in_dc = |dcs: &[String]| dcs.is_empty() || dcs.iter().any(|d| d == dc);
        let mut policies: Vec<Policy> =
            resolved.policies.iter().filter(|p| in_dc(&p.datacenters)).filter_map(|p| cache.parse(p)).collect();
        let token = &resolved.token;
        let services = token.service_identities.iter().chain(resolved.roles.iter().flat_map(|r| &r.service_identities));
        let nodes = token.node_identities.iter().chain(resolved.roles.iter().flat_map(|r| &r.node_identities));
        let templated =
            token.templated_policies.iter().chain(resolved.roles.iter().flat_map(|r| &r.templated_policies));
        let synthesized = services
            .filter(|s| in_dc(&s.datacenters))
            .map(service_identity)
            .chain(nodes.filter(|n| n.datacenter == dc).map(node_identity))
            .chain(templated.filter(|t| in_dc(&t.datacenters)).filter_map(templated_rules));
        policies.extend(synthesized.filter_map(|rules| Policy::parse(&rules).ok()));
        Access {
            accessor_id: Arc::from(token.accessor_id.as_str()),
            anonymous: token.accessor_id == ANONYMOUS_TOKEN_ACCESSOR_ID,
            authorizer: Arc::new(Authorizer::new(&policies, settings.default_policy)),
            expires_ms: token.expiration_time_ms,
            key_list_policy: settings.enable_key_list_policy,
        }
    }

    /// The token's accessor ID; empty for `manage_all`.
    pub fn accessor_id(&self) -> &str {
        &self.accessor_id
    }

    /// Whether this is the anonymous token (a request that named none).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The authorizer, for the agent's own endpoints.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Whether the token has expired by `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| now_ms >= at)
    }

    /// `Ok` when `allowed`, else Consul's denial for `resource:level` on `name` (unnamed for acl, operator, keyring, mesh, peering).
    pub fn require(&self, allowed: bool, resource: Resource, level: AccessLevel, name: Option<&str>) -> Result<()> {
        if allowed { Ok(()) } else { Err(Error::PermissionDenied(self.denial(resource, level, name))) }
    }

    /// Consul's text for a denied permission.
    pub fn denial(&self, resource: Resource, level: AccessLevel, name: Option<&str>) -> String {
        let on = name.map(|n| format!(" on {n:?}")).unwrap_or_default();
        if self.accessor_id.is_empty() && !self.anonymous {
            // Only an access decided without a token record has no accessor: `down_policy` with no server to ask.
            return format!(
                "Permission denied: the token could not be resolved (no server answered) and acl.down_policy denies \
                 '{resource}:{level}'{on}"
            );
        }
        if self.anonymous {
            format!(
                "Permission denied: anonymous token lacks permission '{resource}:{level}'{on}. \
                 The anonymous token is used implicitly when a request does not specify a token."
            )
        } else {
            format!(
                "Permission denied: token with AccessorID '{}' lacks permission '{resource}:{level}'{on}",
                self.accessor_id
            )
        }
    }
}

fn service_identity(identity: &AclServiceIdentity) -> String {
    roster_acl::service_identity_rules(&identity.service_name)
}

fn node_identity(identity: &AclNodeIdentity) -> String {
    roster_acl::node_identity_rules(&identity.node_name)
}

fn templated_rules(templated: &AclTemplatedPolicy) -> Option<String> {
    roster_acl::render_templated_policy(&templated.template_name, templated.name.as_deref()).ok()
}

/// Parsed policies by (ID, ModifyIndex), so a request does not parse the rules text of every policy its token links.
/// The rules text is kept and compared too: a snapshot restore can bring back a policy with the same ID and
/// ModifyIndex but other rules (a snapshot of another cluster, or of another history).
#[derive(Debug, Default)]
pub struct PolicyCache {
    parsed: Mutex<HashMap<(String, u64), (String, Policy)>>,
}

/// More distinct policy versions than this and the cache starts over; each holds a small rule tree.
const POLICY_CACHE_MAX: usize = 4096;

impl PolicyCache {
    fn parse(&self, policy: &roster_kv::AclPolicy) -> Option<Policy> {
        let key = (policy.id.clone(), policy.modify_index);
        let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((rules, found)) = parsed.get(&key)
            && *rules == policy.rules
        {
            return Some(found.clone());
        }
        // Apply refuses rules that do not parse, so a failure here means a record from an older, laxer build: it grants nothing.
        let fresh = match Policy::parse(&policy.rules) {
            Ok(fresh) => fresh,
            Err(err) => {
                tracing::warn!(policy = %policy.id, %err, "stored ACL policy does not parse; it grants nothing");
                return None;
            }
        };
        if parsed.len() >= POLICY_CACHE_MAX {
            parsed.clear();
        }
        parsed.insert(key, (policy.rules.clone(), fresh.clone()));
        Some(fresh)
    }
}

/// Resolved tokens by the SHA-256 of their secret, with the ACL index they were resolved at; a server re-resolves a token
/// as soon as any ACL write moves that index, so a policy change takes effect on the next request.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    policies: PolicyCache,
    tokens: Mutex<HashMap<[u8; 32], (u64, Access)>>,
}

/// More cached tokens than this and the cache starts over.
const TOKEN_CACHE_MAX: usize = 8192;

impl Resolver {
    /// Resolves `secret` against `state`; empty means the anonymous token.
    pub(crate) fn resolve(&self, settings: &AclSettings, state: &State, secret: &str, now_ms: u64) -> Result<Access> {
        if matches!(secret, "allow" | "deny" | "manage") {
            return Err(Error::AclRootDenied);
        }
        let secret = if secret.is_empty() { ANONYMOUS_TOKEN_SECRET } else { secret };
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let index = state.acl_index();
        let cached = self.tokens.lock().unwrap_or_else(PoisonError::into_inner).get(&digest).cloned();
        let access = match cached {
            Some((at, access)) if at == index => access,
            _ => {
                let access = match state.acl_resolve(secret) {
                    Some(resolved) => Access::from_resolved(settings, &resolved, &self.policies),
                    // Before the leader has created the anonymous token, a request without one is still anonymous.
                    None if secret == ANONYMOUS_TOKEN_SECRET => Access::from_resolved(
                        settings,
                        &ResolvedToken {
                            token: roster_kv::AclToken {
                                accessor_id: ANONYMOUS_TOKEN_ACCESSOR_ID.into(),
                                ..roster_kv::AclToken::default()
                            },
                            policies: Vec::new(),
                            roles: Vec::new(),
                        },
                        &self.policies,
                    ),
                    None => return Err(Error::AclNotFound),
                };
                let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
                if tokens.len() >= TOKEN_CACHE_MAX {
                    tokens.clear();
                }
                tokens.insert(digest, (index, access.clone()));
                access
            }
        };
        // An expired token is reported as Consul reports it: as if it did not exist.
        if access.expired(now_ms) {
            return Err(Error::AclNotFound);
        }
        Ok(access)
    }
}

/// Whether `access` may propose `cmd` against `state`; a denial is Consul's "Permission denied" text.
pub(crate) fn authorize_command(access: &Access, cmd: &Command, state: &State) -> Result<()> {
    let authz = access.authorizer();
    match cmd {
        Command::KvSet { key, .. }
        | Command::KvCas { key, .. }
        | Command::KvDelete { key }
        | Command::KvDeleteCas { key, .. }
        | Command::KvLock { key, .. }
        | Command::KvUnlock { key, .. } => {
            access.require(authz.key_write(key), Resource::Key, AccessLevel::Write, Some(key))
        }
        Command::KvDeleteTree { prefix } => {
            access.require(authz.key_write_prefix(prefix), Resource::Key, AccessLevel::Write, Some(prefix))
        }
        Command::Register(reg) => authorize_register(access, reg, state),
        Command::Deregister { node, service_id, check_id } => {
            authorize_deregister(access, node, service_id.as_deref(), check_id.as_deref(), state)
        }
        Command::SessionCreate(session) => access.require(
            authz.session_write(&session.node),
            Resource::Session,
            AccessLevel::Write,
            Some(&session.node),
        ),
        Command::SessionDestroy { id, .. } => match state.session(id) {
            Some(session) => access.require(
                authz.session_write(&session.node),
                Resource::Session,
                AccessLevel::Write,
                Some(&session.node),
            ),
            None => Ok(()),
        },
        Command::Txn { ops, .. } => match authorize_txn(access, ops, state).first() {
            Some(denied) => Err(Error::PermissionDenied(denied.what.clone())),
            None => Ok(()),
        },
        // Bootstrapping is open to anyone until it is done; the state refuses it after that.
        Command::AclBootstrap { .. } => Ok(()),
        Command::AclInit { .. }
        | Command::AclTokenSet(_)
        | Command::AclTokenDelete { .. }
        | Command::AclPolicySet(_)
        | Command::AclPolicyDelete { .. }
        | Command::AclRoleSet(_)
        | Command::AclRoleDelete { .. }
        | Command::AclAuthMethodSet(_)
        | Command::AclAuthMethodDelete { .. }
        | Command::AclBindingRuleSet(_)
        | Command::AclBindingRuleDelete { .. }
        // A restore replaces everything, ACLs included: Consul asks for `acl:write` (management) on its snapshot endpoint.
        | Command::RestoreBegin { .. }
        | Command::RestoreChunk { .. }
        | Command::RestoreCommit { .. } => {
            access.require(authz.acl_write(), Resource::Acl, AccessLevel::Write, None)
        }
        Command::AutopilotSet { .. } => {
            access.require(authz.operator_write(), Resource::Operator, AccessLevel::Write, None)
        }
        // Consul's `Coordinate.Update` asks for node:write on the node whose coordinate it is.
        Command::CoordinateBatchUpdate { updates } => updates.iter().try_for_each(|u| {
            access.require(authz.node_write(&u.node), Resource::Node, AccessLevel::Write, Some(&u.node))
        }),
        Command::PreparedQuerySet { query, .. } => prepared_query::authorize_set(access, query, state),
        Command::PreparedQueryDelete { id } => prepared_query::authorize_delete(access, id, state),
        Command::ConfigEntrySet { entry, .. } => authorize_config_entry_write(access, &entry.kind, &entry.name),
        Command::ConfigEntryDelete { kind, name, .. } => authorize_config_entry_write(access, kind, name),
        Command::JobSubmit { spec, .. } => authorize_job_submit(access, spec),
        // The scheduler's plans and the tombstone reap come from the leader itself (unchecked); one from a token needs
        // the operator's right.
        Command::JobStop { .. }
        | Command::JobRevert { .. }
        | Command::JobPlanApply { .. }
        | Command::TombstoneReap { .. } => {
            access.require(authz.operator_write(), Resource::Operator, AccessLevel::Write, None)
        }
        // An agent reports for its own node, as it registers it: node:write.
        Command::AllocReport { node, .. } | Command::HostReport { node, .. } => {
            access.require(authz.node_write(node), Resource::Node, AccessLevel::Write, Some(node))
        }
    }
}

/// Deploying a job starts processes on any node, so it needs `operator:write` (roster's choice; Consul has no jobs),
/// plus `service:write` on every service its tasks register, as registering them directly would.
fn authorize_job_submit(access: &Access, spec: &str) -> Result<()> {
    let authz = access.authorizer();
    access.require(authz.operator_write(), Resource::Operator, AccessLevel::Write, None)?;
    // A spec the state cannot read is refused at apply; only the services of one it can read need checking here.
    let shape = serde_json::from_str(spec).ok().and_then(|value| roster_kv::JobShape::from_spec(&value).ok());
    for service in shape.iter().flat_map(|shape| &shape.services) {
        access.require(authz.service_write(service), Resource::Service, AccessLevel::Write, Some(service))?;
    }
    Ok(())
}

/// Consul's `CanWrite` per kind: `service:write` on a service's defaults, `mesh:write` (which falls back to
/// `operator:write`) on the global proxy defaults.
fn authorize_config_entry_write(access: &Access, kind: &str, name: &str) -> Result<()> {
    let authz = access.authorizer();
    if kind == roster_kv::PROXY_DEFAULTS {
        return access.require(authz.mesh_write(), Resource::Mesh, AccessLevel::Write, None);
    }
    access.require(authz.service_write(name), Resource::Service, AccessLevel::Write, Some(name))
}

/// Consul's `CanRead` per kind: `service:read` on a service's defaults; the proxy defaults are open to every caller.
fn config_entry_readable(authz: &Authorizer, kind: &str, name: &str) -> bool {
    kind == roster_kv::PROXY_DEFAULTS || authz.service_read(name)
}

/// A catalog registration: node write when it creates or changes the node, service write on the service (and on the one
/// it replaces under the same ID), and for each check the permission on what it belongs to.
fn authorize_register(access: &Access, reg: &roster_kv::Registration, state: &State) -> Result<()> {
    let authz = access.authorizer();
    let name = reg.node.node.as_str();
    // Consul asks for the service first (`servicePreApply`), then the node, then each check.
    if let Some(service) = &reg.service {
        access.require(
            authz.service_write(&service.service),
            Resource::Service,
            AccessLevel::Write,
            Some(&service.service),
        )?;
        if let Some(replaced) = state.service(name, &service.id).filter(|old| old.service != service.service) {
            let old = replaced.service.as_str();
            access.require(authz.service_write(old), Resource::Service, AccessLevel::Write, Some(old))?;
        }
    }
    let existing = state.node(name).0;
    let changes_node = existing.is_none_or(|n| {
        !reg.skip_node_update
            && (n.address != reg.node.address
                || n.tagged_addresses != reg.node.tagged_addresses
                || n.meta != reg.node.meta
                || n.id != reg.node.id)
    });
    if changes_node {
        access.require(authz.node_write(name), Resource::Node, AccessLevel::Write, Some(name))?;
    }
    for check in &reg.checks {
        // A check without a node belongs to the registration's node, as apply will record it.
        if check.node.is_empty() {
            let on_node = HealthCheck { node: name.to_owned(), ..check.clone() };
            authorize_check_write(access, &on_node, reg.service.as_ref(), state)?;
        } else {
            authorize_check_write(access, check, reg.service.as_ref(), state)?;
        }
    }
    Ok(())
}

/// A check write: node write for a node check, service write on the service it belongs to otherwise.
fn authorize_check_write(
    access: &Access,
    check: &HealthCheck,
    with: Option<&roster_kv::Service>,
    state: &State,
) -> Result<()> {
    let authz = access.authorizer();
    if check.service_id.is_empty() {
        let node = check.node.as_str();
        return access.require(authz.node_write(node), Resource::Node, AccessLevel::Write, Some(node));
    }
    let service = with
        .filter(|s| s.id == check.service_id)
        .map(|s| s.service.clone())
        .or_else(|| state.service(&check.node, &check.service_id).map(|s| s.service.clone()))
        .unwrap_or_else(|| check.service_name.clone());
    access.require(authz.service_write(&service), Resource::Service, AccessLevel::Write, Some(&service))
}

fn authorize_deregister(
    access: &Access,
    node: &str,
    service_id: Option<&str>,
    check_id: Option<&str>,
    state: &State,
) -> Result<()> {
    let authz = access.authorizer();
    if authz.node_write(node) {
        return Ok(());
    }
    let node_denied = || access.require(false, Resource::Node, AccessLevel::Write, Some(node));
    if let Some(id) = service_id {
        return match state.service(node, id) {
            Some(s) => {
                access.require(authz.service_write(&s.service), Resource::Service, AccessLevel::Write, Some(&s.service))
            }
            None => node_denied(),
        };
    }
    if let Some(id) = check_id {
        return match state.check(node, id) {
            Some(check) if !check.service_name.is_empty() => {
                let service = check.service_name.as_str();
                access.require(authz.service_write(service), Resource::Service, AccessLevel::Write, Some(service))
            }
            _ => node_denied(),
        };
    }
    node_denied()
}

/// The denials of a transaction's operations, as its errors: empty when every operation is allowed.
pub(crate) fn authorize_txn(access: &Access, ops: &[TxnOp], state: &State) -> Vec<TxnError> {
    let authz = access.authorizer();
    let mut errors = Vec::new();
    for (op_index, op) in ops.iter().enumerate() {
        let denied = match op {
            TxnOp::Kv { verb, key, .. } => match verb {
                // Reads are filtered afterwards, not refused.
                KvVerb::Get | KvVerb::GetOrEmpty | KvVerb::GetTree => Ok(()),
                KvVerb::CheckIndex | KvVerb::CheckSession | KvVerb::CheckNotExists => {
                    access.require(authz.key_read(key), Resource::Key, AccessLevel::Read, Some(key))
                }
                KvVerb::DeleteTree => {
                    access.require(authz.key_write_prefix(key), Resource::Key, AccessLevel::Write, Some(key))
                }
                _ => access.require(authz.key_write(key), Resource::Key, AccessLevel::Write, Some(key)),
            },
            TxnOp::Node { verb, node } if !is_get(*verb) => {
                access.require(authz.node_write(&node.node), Resource::Node, AccessLevel::Write, Some(&node.node))
            }
            TxnOp::Service { verb, node, service } if !is_get(*verb) => {
                let name = state.service(node, &service.id).map_or(service.service.as_str(), |s| s.service.as_str());
                let name = if name.is_empty() { service.service.as_str() } else { name };
                access.require(authz.service_write(name), Resource::Service, AccessLevel::Write, Some(name))
            }
            TxnOp::Check { verb, check } if !is_get(*verb) => authorize_check_write(access, check, None, state),
            _ => Ok(()),
        };
        if let Err(Error::PermissionDenied(what)) = denied {
            errors.push(TxnError { op_index: op_index as u64, what });
        }
    }
    errors
}

fn is_get(verb: roster_kv::CatalogVerb) -> bool {
    verb == roster_kv::CatalogVerb::Get
}

/// Whether `access` may run `query` at all: reads of one named thing are refused rather than filtered.
pub(crate) fn authorize_query(access: &Access, query: &Query) -> Result<()> {
    let authz = access.authorizer();
    match query {
        Query::KvGet { key } => access.require(authz.key_read(key), Resource::Key, AccessLevel::Read, Some(key)),
        Query::KvList { prefix } | Query::KvKeys { prefix, .. } if access.key_list_policy => {
            access.require(authz.key_list(prefix), Resource::Key, AccessLevel::List, Some(prefix))
        }
        Query::NodeStatus { node, .. } | Query::NodeCoordinate { node } => {
            access.require(authz.node_read(node), Resource::Node, AccessLevel::Read, Some(node))
        }
        Query::AclTokens | Query::AclPolicies | Query::AclRoles | Query::AclAuthMethods | Query::AclBindingRules => {
            access.require(authz.acl_read(), Resource::Acl, AccessLevel::Read, None)
        }
        // Counts say nothing about any one name, so Consul guards them with operator:read alone.
        Query::Usage | Query::AutopilotConfig => {
            access.require(authz.operator_read(), Resource::Operator, AccessLevel::Read, None)
        }
        Query::ConfigEntry { kind, name } if !config_entry_readable(authz, kind, name) => {
            access.require(false, Resource::Service, AccessLevel::Read, Some(name))
        }
        // A filtered read needs what the read it filters needs.
        Query::NodeMeta { inner, .. } => authorize_query(access, inner),
        // Job specs say what runs where (and may carry secrets in their environment): operator:read, like the other
        // operator views. A node's agent reads its own allocations with the node:write its token has for it.
        Query::Jobs | Query::Job { .. } | Query::Hosts | Query::Allocations | Query::Scheduling => {
            access.require(authz.operator_read(), Resource::Operator, AccessLevel::Read, None)
        }
        Query::NodeAllocations { node } => {
            access.require(authz.operator_read() || authz.node_write(node), Resource::Operator, AccessLevel::Read, None)
        }
        _ => Ok(()),
    }
}

/// Removes from `answer` what `access` may not read; true when anything was removed.
pub(crate) fn filter_answer(access: &Access, answer: &mut Answer) -> bool {
    let authz = access.authorizer();
    let node_and_service = |node: &str, service: &str| authz.node_read(node) && authz.service_read(service);
    let check_visible = |c: &HealthCheck| {
        authz.node_read(&c.node) && (c.service_name.is_empty() || authz.service_read(&c.service_name))
    };
    match answer {
        Answer::Entries(entries) => retain(entries, |e| authz.key_read(&e.key)),
        Answer::Keys(keys) => retain(keys, |k| authz.key_read(k)),
        Answer::Nodes(nodes) => retain(nodes, |n| authz.node_read(&n.node)),
        Answer::Node(node) => {
            let hidden = node.as_ref().is_some_and(|n| !authz.node_read(&n.node));
            if hidden {
                *node = None;
            }
            hidden
        }
        Answer::NodeServices { node, services } => match node {
            Some(n) if !authz.node_read(&n.node) => {
                *node = None;
                services.clear();
                true
            }
            _ => retain(services, |s| authz.service_read(&s.service)),
        },
        Answer::ServiceTags(tags) => {
            let before = tags.len();
            tags.retain(|name, _| authz.service_read(name));
            tags.len() != before
        }
        Answer::ServiceNodes(instances) => retain(instances, |(n, s)| node_and_service(&n.node, &s.service)),
        Answer::Health(entries) => retain(entries, |e| node_and_service(&e.node.node, &e.service.service)),
        Answer::Checks(checks) => retain(checks, check_visible),
        Answer::Instances(instances) => retain(instances, |i| node_and_service(&i.node, &i.service_name)),
        Answer::Sessions(sessions) => retain(sessions, |s| authz.session_read(&s.node)),
        Answer::Coordinates(coordinates) => retain(coordinates, |c| authz.node_read(&c.node)),
        Answer::Txn(roster_kv::TxnOutcome::Applied(results)) => retain(results, |r| match r {
            TxnResult::Kv(entry) => authz.key_read(&entry.key),
            TxnResult::Node(node) => authz.node_read(&node.node),
            TxnResult::Service(service) => authz.service_read(&service.service),
            TxnResult::Check(check) => check_visible(check),
        }),
        Answer::PreparedQueries(_) | Answer::PreparedQuery(_) => prepared_query::filter(access, answer),
        Answer::ConfigEntries(entries) => retain(entries, |e| config_entry_readable(authz, &e.kind, &e.name)),
        Answer::AclTokens(tokens) => {
            // Readers without acl:write see that a token exists, not its secret.
            if !authz.acl_write() {
                for token in tokens.iter_mut() {
                    token.secret_id = "<hidden>".into();
                }
            }
            false
        }
        _ => false,
    }
}

fn retain<T>(items: &mut Vec<T>, keep: impl Fn(&T) -> bool) -> bool {
    let before = items.len();
    items.retain(|item| keep(item));
    items.len() != before
}

pub(crate) mod prepared_query;
#[cfg(test)]
mod tests;
