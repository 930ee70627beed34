//! roster-acl: Consul's ACL rules language and authorizer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authorizer;
mod error;
mod policy;

pub use authorizer::{Authorizer, DefaultPolicy};
pub use error::{ParseError, Result};
pub use policy::{AccessLevel, Policy, Resource};
