//! roster-acl: Consul's ACL rules language and authorizer, and its `jwt` auth method, pure (no I/O, no clock, no randomness).
//!
//! Parse each ACL policy's rules text with [`Policy::parse`] (HCL, or JSON when it starts with `{`),
//! then build one [`Authorizer`] per token from its policies and the agent's [`DefaultPolicy`], and
//! ask it questions (`key_read`, `service_write`, ...). Decisions follow Consul:
//!
//! - For a name, an exact rule (`key "a/b"`) beats prefix rules (`key_prefix "a/"`); among prefix
//!   rules the longest wins. No matching rule defers to the default policy.
//! - Several rules for the same name, in one policy or across a token's policies, merge:
//!   deny beats write beats list beats read.
//! - `write` grants read, list and write; `list` (keys only) grants read and list; `read` grants read.
//! - `key_write_prefix` needs write from the longest prefix rule covering the prefix and no rule at
//!   or under it withholding write. `node_read_all`/`service_read_all` need a `""` prefix rule
//!   granting read and no deny rule of that kind (or no rule and a default of allow).
//! - `mesh` and `peering` fall back to `operator` when the policies have no rule of their own.
//! - The default policy [`DefaultPolicy::Allow`] allows everything but `acl` read and write, like
//!   Consul's allow-all authorizer; [`Authorizer::manage_all`] allows `acl` too.
//!
//! Rules for `identity`, Sentinel and Enterprise fields are not accepted; unknown blocks and
//! attributes are errors (Consul CE ignores them silently).
//!
//! # Layout
//!
//! - `error.rs`: [`ParseError`] and [`Result`].
//! - `policy.rs`: [`AccessLevel`], [`Resource`], [`Policy`] (validation, merging);
//!   `policy/syntax.rs` turns HCL (a hand-written parser for the HCL v1 that Consul reads, with
//!   line numbers) and JSON into one tree.
//! - `authorizer.rs`: [`Authorizer`], [`DefaultPolicy`]: lookups and the fallback chain.
//! - `builtin.rs`: synthesized rules: [`service_identity_rules`], [`node_identity_rules`],
//!   [`GLOBAL_READ_ONLY_RULES`], [`GLOBAL_MANAGEMENT_RULES`], [`templated_policies`],
//!   [`render_templated_policy`], [`valid_identity_name`].
//! - `jwt.rs` (+ `jwt/keys.rs`): the `jwt` auth method: [`JwtConfig`] (Consul's config keys, inline PEM/JWKS keys) and
//!   verification of a bearer token (signature with `ring`, `exp`/`nbf`/`iat` against a clock the caller passes, issuer,
//!   audiences) into an [`Identity`] of projected claims.
//! - `binding.rs`: binding rules' [`BindType`]s and bind-name templates (`${value.name}`), rendered and checked.
//! - Tests sit beside each module in `tests.rs` (tables from Consul's tests, plus proptest).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authorizer;
mod binding;
mod builtin;
mod error;
mod jwt;
mod policy;

pub use authorizer::{Authorizer, DefaultPolicy};
pub use binding::{BindType, bind_name_for, check_binding_rule, render_bind_name};
pub use builtin::{
    GLOBAL_MANAGEMENT_RULES, GLOBAL_READ_ONLY_RULES, TemplatedPolicy, node_identity_rules, render_templated_policy,
    service_identity_rules, templated_policies, valid_identity_name,
};
pub use error::{ParseError, Result};
pub use jwt::{Identity, JwtConfig};
pub use policy::{AccessLevel, Policy, Resource};
