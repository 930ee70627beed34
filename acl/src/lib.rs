//! roster-acl: Consul's ACL rules language and authorizer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authorizer;
mod builtin;
mod error;
mod policy;

pub use authorizer::{Authorizer, DefaultPolicy};
pub use builtin::{
    GLOBAL_MANAGEMENT_RULES, GLOBAL_READ_ONLY_RULES, TemplatedPolicy, node_identity_rules, render_templated_policy,
    service_identity_rules, templated_policies, valid_identity_name,
};
pub use error::{ParseError, Result};
pub use policy::{AccessLevel, Policy, Resource};
