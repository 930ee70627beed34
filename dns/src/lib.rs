//! roster's DNS interface: a hickory-server request handler answering Consul's names
//! (`*.service`, `*.node`, `*.addr`, reverse lookups) from a read-only [`CatalogView`], and
//! forwarding everything else to the configured recursors.
//!
//! # Layout
//! - `name`: the pure query-name parser, [`parse_query_name`] → [`QueryKind`].
//! - `answer`: records from the catalog view (health filter, shuffle, SRV, TXT, PTR, SOA).
//! - `handler`: the `RequestHandler` (screening, time bounds, forwarding, truncation).
//! - `server`: [`serve`], which runs hickory's `Server` on sockets bound by the agent.
//! - `view`: the [`CatalogView`] trait the agent implements, and its record types.
//!
//! **Architecture Invariant:** dns never writes the catalog and never waits unboundedly: every
//! query ends in an answer or an error code within `query_timeout` or `recursor_timeout`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod answer;
mod config;
mod error;
mod handler;
mod name;
mod server;
mod view;

pub use config::Config;
pub use error::{Error, Result};
pub use name::{QueryKind, Zone, parse_query_name};
pub use server::serve;
pub use view::{CatalogView, Health, Instance, NodeRecord, ViewError};
