//! roster's DNS interface: a hickory-server request handler answering Consul's names
//! (`*.service`, `*.node`, `*.addr`, reverse lookups) from a read-only [`CatalogView`], and
//! forwarding everything else to the configured recursors.
//!
//! # Layout
//! - `name`: the pure query-name parser, [`parse_query_name`] → [`QueryKind`].
//! - `answer`: records from the catalog view (health filter, shuffle, SRV, TXT, PTR, SOA); `query`: prepared
//!   query answers (`<name>.query.<domain>`), in the order and with the TTL the executed query gives.
//! - `handler`: the `RequestHandler` (screening, time bounds, truncation), which also files local
//!   UDP answers in the answer cache.
//! - `forward`: names outside the domain, to the recursors one at a time (`recursor_strategy`).
//! - `cache` and `wire`: the answer cache of pre-encoded records, and the strict scan of a plain query that
//!   finds a cached answer without a full parse.
//! - `udp`: our UDP loop (cache hits inline, the rest through the handler).
//! - `server`: [`serve`], which runs the UDP loops and hickory's `Server` for TCP on sockets bound by the agent.
//! - `view`: the [`CatalogView`] trait the agent implements, and its record types.
//!
//! **Architecture Invariant:** dns never writes the catalog and never waits unboundedly: every
//! query ends in an answer or an error code within `query_timeout`, or `recursor_timeout` per recursor.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod answer;
mod cache;
mod config;
mod error;
mod forward;
mod handler;
mod name;
mod query;
mod server;
mod udp;
mod view;
mod wire;

pub use config::{Config, RecursorStrategy, SharedConfig, Soa};
pub use error::{Error, Result};
pub use name::{QueryKind, Zone, parse_query_name, parse_srv_query_name};
pub use server::serve;
pub use view::{CatalogView, Health, Instance, NodeMeta, NodeRecord, PreparedQueryResult, ViewError};
