//! The replicated ACL records: tokens, policies and roles, as Consul's ACL system stores them, and the built-in ones every cluster has.
//!
//! These structs are persisted like `model`'s (postcard, field order is the format). A token's `secret_id` is the credential: the state indexes
//! it by its SHA-256 rather than by the secret itself, so a lookup's timing says nothing about the secrets held, and the final comparison is
//! constant-time (`secret_matches`).
//!
//! Links from tokens and roles to policies and roles are by ID; the name stored beside the ID is the one it had when the link was made, and
//! readers show the current name (`State::acl_policy`), dropping links to what has since been deleted, as Consul does.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The ID of the built-in `global-management` policy.
pub const GLOBAL_MANAGEMENT_POLICY_ID: &str = "00000000-0000-0000-0000-000000000001";
/// The name of the built-in management policy.
pub const GLOBAL_MANAGEMENT_POLICY_NAME: &str = "global-management";
/// The ID of the built-in `builtin/global-read-only` policy.
pub const GLOBAL_READ_ONLY_POLICY_ID: &str = "00000000-0000-0000-0000-000000000002";
/// The name of the built-in read-only policy.
pub const GLOBAL_READ_ONLY_POLICY_NAME: &str = "builtin/global-read-only";
/// The accessor ID of the anonymous token: what a request without a token is.
pub const ANONYMOUS_TOKEN_ACCESSOR_ID: &str = "00000000-0000-0000-0000-000000000002";
/// The secret of the anonymous token.
pub const ANONYMOUS_TOKEN_SECRET: &str = "anonymous";

/// A link to a policy or role: its ID and the name it had when linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclLink {
    /// The ID.
    pub id: String,
    /// The name.
    pub name: String,
}

/// A service identity: the rules Consul synthesizes for one service (write on it, read on every service and node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclServiceIdentity {
    /// The service name.
    pub service_name: String,
    /// Datacenters it is valid in; empty means all.
    pub datacenters: Vec<String>,
}

/// A node identity: write on one node, read on every service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclNodeIdentity {
    /// The node name.
    pub node_name: String,
    /// The datacenter it is valid in.
    pub datacenter: String,
}

/// A use of one of Consul's templated policies (`builtin/service`, `builtin/dns`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclTemplatedPolicy {
    /// The template's name.
    pub template_name: String,
    /// `TemplateVariables.Name`, for the templates that take one.
    pub name: Option<String>,
    /// Datacenters it is valid in; empty means all.
    pub datacenters: Vec<String>,
}

/// An ACL token. Its `Debug` leaves the secret out, so no log line or panic message can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclToken {
    /// The public identifier (a UUID).
    pub accessor_id: String,
    /// The credential (a UUID unless the creator chose one).
    pub secret_id: String,
    /// Free text.
    pub description: String,
    /// Linked policies.
    pub policies: Vec<AclLink>,
    /// Linked roles.
    pub roles: Vec<AclLink>,
    /// Service identities.
    pub service_identities: Vec<AclServiceIdentity>,
    /// Node identities.
    pub node_identities: Vec<AclNodeIdentity>,
    /// Templated policies.
    pub templated_policies: Vec<AclTemplatedPolicy>,
    /// Local to this datacenter (never replicated to others).
    pub local: bool,
    /// The auth method that minted it (login), or empty.
    pub auth_method: String,
    /// When it stops being valid, in Unix milliseconds.
    pub expiration_time_ms: Option<u64>,
    /// When it was created, in Unix milliseconds (the proposer's clock).
    pub create_time_ms: u64,
    /// A digest of the fields that define what the token grants.
    pub hash: Vec<u8>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

impl std::fmt::Debug for AclToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclToken")
            .field("accessor_id", &self.accessor_id)
            .field("secret_id", &"<hidden>")
            .field("description", &self.description)
            .field("policies", &self.policies)
            .field("roles", &self.roles)
            .field("service_identities", &self.service_identities)
            .field("node_identities", &self.node_identities)
            .field("templated_policies", &self.templated_policies)
            .field("local", &self.local)
            .field("expiration_time_ms", &self.expiration_time_ms)
            .field("create_index", &self.create_index)
            .field("modify_index", &self.modify_index)
            .finish_non_exhaustive()
    }
}

/// An ACL policy: named rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclPolicy {
    /// The ID (a UUID).
    pub id: String,
    /// The unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The rules text (HCL or JSON).
    pub rules: String,
    /// Datacenters it is valid in; empty means all.
    pub datacenters: Vec<String>,
    /// A digest of the fields that define what the policy grants.
    pub hash: Vec<u8>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// An ACL role: a named set of policies and identities that tokens link to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclRole {
    /// The ID (a UUID).
    pub id: String,
    /// The unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Linked policies.
    pub policies: Vec<AclLink>,
    /// Service identities.
    pub service_identities: Vec<AclServiceIdentity>,
    /// Node identities.
    pub node_identities: Vec<AclNodeIdentity>,
    /// Templated policies.
    pub templated_policies: Vec<AclTemplatedPolicy>,
    /// A digest of the fields that define what the role grants.
    pub hash: Vec<u8>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// An auth method (Consul's `ACLAuthMethod`): how a login proves who it is. Only the `jwt` type exists here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclAuthMethod {
    /// The unique name.
    pub name: String,
    /// The type: `jwt`.
    pub method_type: String,
    /// A name for UIs.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// The lifetime of a token minted by a login, in milliseconds; 0 means tokens that never expire.
    pub max_token_ttl_ms: u64,
    /// `local` (or empty: the same) or `global`: whether minted tokens are local to the datacenter.
    pub token_locality: String,
    /// The type's configuration, Consul's JSON object as text (`roster_acl::JwtConfig` reads it).
    pub config_json: String,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// A binding rule (Consul's `ACLBindingRule`): what a login through its method is granted when its selector matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AclBindingRule {
    /// The ID (a UUID).
    pub id: String,
    /// Free text.
    pub description: String,
    /// The auth method's name.
    pub auth_method: String,
    /// A filter expression over the login's projected claims; empty matches every login.
    pub selector: String,
    /// `service`, `node`, `role`, `policy` or `templated-policy`.
    pub bind_type: String,
    /// The name bound, a template over `${value.<name>}`.
    pub bind_name: String,
    /// `BindVars.Name` of a templated-policy rule, itself a template.
    pub bind_var_name: Option<String>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// A token with everything it grants: its policies (linked directly or through its roles, current versions, each once) and its roles.
/// What a client agent fetches in one round trip to authorize a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedToken {
    /// The token, links refreshed to current names and stripped of deleted targets.
    pub token: AclToken,
    /// Every policy the token grants, directly or through its roles, by ID.
    pub policies: Vec<AclPolicy>,
    /// The token's roles.
    pub roles: Vec<AclRole>,
}

/// The digest by which the state indexes a secret.
pub(crate) fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two secrets in time that depends only on their lengths, so a caller learns nothing from how long a mismatch took.
pub fn secret_matches(held: &str, offered: &str) -> bool {
    let (held, offered) = (held.as_bytes(), offered.as_bytes());
    if held.len() != offered.len() {
        return false;
    }
    held.iter().zip(offered).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The built-in policies, as the state creates them on `Command::AclInit`.
pub(crate) fn builtin_policies() -> [AclPolicy; 2] {
    [
        AclPolicy {
            id: GLOBAL_MANAGEMENT_POLICY_ID.into(),
            name: GLOBAL_MANAGEMENT_POLICY_NAME.into(),
            description: "Builtin Policy that grants unlimited access".into(),
            rules: roster_acl::GLOBAL_MANAGEMENT_RULES.into(),
            ..AclPolicy::default()
        },
        AclPolicy {
            id: GLOBAL_READ_ONLY_POLICY_ID.into(),
            name: GLOBAL_READ_ONLY_POLICY_NAME.into(),
            description: "Builtin Policy that grants unlimited read-only access to all components".into(),
            rules: roster_acl::GLOBAL_READ_ONLY_RULES.into(),
            ..AclPolicy::default()
        },
    ]
}

/// The anonymous token, as the state creates it on `Command::AclInit`.
pub(crate) fn anonymous_token(now_ms: u64) -> AclToken {
    AclToken {
        accessor_id: ANONYMOUS_TOKEN_ACCESSOR_ID.into(),
        secret_id: ANONYMOUS_TOKEN_SECRET.into(),
        description: "Anonymous Token".into(),
        create_time_ms: now_ms,
        ..AclToken::default()
    }
}
