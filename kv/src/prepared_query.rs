//! Prepared queries (Consul's `/v1/query`): the stored record, the checks a definition must pass (at the HTTP edge and
//! again at apply), and how a name resolves to a query.
//!
//! A query names a service and the filters its instances must pass; a *template* (`Template.Type` =
//! `name_prefix_match`) answers every name its own name is a prefix of, rendering `${name.full}`, `${name.prefix}`,
//! `${name.suffix}`, `${match(N)}` and `${agent.segment}` into its service fields for the name asked (`template.rs`).
//! Lookup is Consul's `PreparedQueryResolve`: an ID (a UUID; a template is never found by ID), then an exact name
//! (ignoring ASCII case), then the template with the longest name that prefixes the asked name (the catch-all template
//! is named "").
//!
//! Everything here is pure and deterministic; shuffling and distance sorting happen outside `kv`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod template;

pub use template::{CompiledTemplate, RenderContext};

/// The fields a `Near` may name besides a node: the executing agent's node and the caller's address.
pub const NEAR_AGENT: &str = "_agent";
/// See `NEAR_AGENT`.
pub const NEAR_IP: &str = "_ip";

/// The template type Consul knows (and the only one).
pub const TEMPLATE_NAME_PREFIX_MATCH: &str = "name_prefix_match";

/// The text Consul shows instead of a query's token to a reader without `acl:write`.
pub const REDACTED_TOKEN: &str = "<hidden>";

/// The largest encoded prepared query apply accepts, in bytes: far above any real definition, small enough that a
/// list of thousands stays cheap to send.
pub const MAX_PREPARED_QUERY_SIZE: usize = 64 * 1024;

/// A stored prepared query (Consul's `PreparedQuery`).
///
/// The Raft log and snapshot schema: fields are appended, never reordered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedQuery {
    /// The query's UUID, drawn by the proposer.
    pub id: String,
    /// The name it is executed by; empty for a session-bound query or the catch-all template.
    pub name: String,
    /// A session the query lives as long as; empty for none.
    pub session: String,
    /// The token whose rights filter the instances at execution; empty: the executing caller's.
    pub token: String,
    /// Template options; `kind` empty for a plain query.
    pub template: QueryTemplate,
    /// What to look up.
    pub service: ServiceQuery,
    /// DNS options.
    pub dns: QueryDns,
    /// The index the query was created at.
    pub create_index: u64,
    /// The index of its last change.
    pub modify_index: u64,
}

/// Consul's `QueryTemplateOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTemplate {
    /// `Type`: empty (not a template) or `name_prefix_match`.
    pub kind: String,
    /// A regular expression matched against the name asked; `${match(N)}` reads its groups.
    pub regexp: String,
    /// Drop tags that render empty.
    pub remove_empty_tags: bool,
}

/// Consul's `ServiceQuery`: which instances an execution returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceQuery {
    /// The service name.
    pub service: String,
    /// Where to look when this datacenter has no instance.
    pub failover: QueryFailover,
    /// Only instances whose every (not ignored) check passes; otherwise only critical ones are left out.
    pub only_passing: bool,
    /// Checks that do not count for health.
    pub ignore_check_ids: Vec<String>,
    /// Sort by distance from this node (`_agent`, `_ip`, or a node name).
    pub near: String,
    /// Tags every instance must carry; `!tag` ones it must not (case-insensitive).
    pub tags: Vec<String>,
    /// Node meta pairs every instance's node must carry.
    pub node_meta: BTreeMap<String, String>,
    /// Service meta pairs every instance must carry.
    pub service_meta: BTreeMap<String, String>,
}

/// Consul's `QueryFailoverOptions`. With one datacenter there is nowhere to fail over to; the options are kept as
/// written and an execution reports `Failovers: 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFailover {
    /// Try this many of the nearest other datacenters.
    pub nearest_n: i64,
    /// Then these datacenters, in order.
    pub datacenters: Vec<String>,
    /// Or, instead of both, these targets (datacenters only: roster has no cluster peering).
    pub targets: Vec<String>,
}

/// Consul's `QueryDNSOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryDns {
    /// The TTL of DNS answers, a Go duration; empty: the agent's `dns_config` rules.
    pub ttl: String,
}

/// What resolving a name or ID found (`Query::PreparedQueryGet`, `PreparedQueryExplain`, `PreparedQueryExecute`).
///
/// Sent over the server RPC: variants are appended, never reshaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreparedQueryAnswer {
    /// No query has that ID or name (Consul's "Query not found").
    NotFound,
    /// The name resolved but the query cannot run (a template asked for by ID, a render that failed).
    Failed(String),
    /// The stored query (`GET /v1/query/:id`).
    Found(Box<PreparedQuery>),
    /// The query as it would run, a template rendered for the name (`/explain`).
    Explained(Box<PreparedQuery>),
    /// The query as it ran and the instances that passed its filters, unshuffled.
    Executed {
        /// The query, a template rendered for the name.
        query: Box<PreparedQuery>,
        /// The instances, by node then ID.
        nodes: Vec<crate::query::ServiceEntry>,
        /// The node to sort the instances by distance from (`?near`, else the query's `Near`, `_agent` and `_ip`
        /// resolved); empty: no sort.
        origin: String,
        /// The coordinates of the origin and of the instances' nodes that have one, for the caller's sort (it
        /// shuffles first, which the replicated state may not).
        coordinates: Vec<crate::coordinate::NodeCoordinate>,
    },
}

/// Where an execution comes from, for `Near`.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The executing agent's node (`_agent`).
    pub agent: &'a str,
    /// The caller's `?near`; empty: the query's own `Near`.
    pub near: &'a str,
    /// The caller's address (`_ip`); empty when unknown.
    pub source_ip: &'a str,
}

impl PreparedQuery {
    /// The name Consul's `query` ACL rules govern this query by: its name, for a named query or any template; `None`
    /// for a session-bound query without a name, which only its ID (and management) reaches.
    pub fn acl_prefix(&self) -> Option<&str> {
        (!self.name.is_empty() || self.is_template()).then_some(self.name.as_str())
    }

    /// Whether this is a template.
    pub fn is_template(&self) -> bool {
        !self.template.kind.is_empty()
    }

    /// The TTL of its DNS answers, when it sets one.
    pub fn dns_ttl(&self) -> Option<std::time::Duration> {
        if self.dns.ttl.is_empty() { None } else { crate::duration::parse_go_duration(&self.dns.ttl).ok() }
    }
}

/// Why a definition is refused, with Consul's texts (`parseQuery`, and the template compile the state store does),
/// prefixed as Consul prefixes them. The HTTP edge and `State::apply` both call this.
pub fn check_prepared_query(query: &PreparedQuery) -> Result<(), String> {
    check_definition(query).map_err(|why| format!("Invalid prepared query: {why}"))?;
    if query.is_template() {
        CompiledTemplate::compile(query).map_err(|why| format!("failed compiling template: {why}"))?;
    }
    let size = postcard::to_allocvec(query).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_PREPARED_QUERY_SIZE {
        return Err(format!("prepared query is too large ({size} bytes, at most {MAX_PREPARED_QUERY_SIZE})"));
    }
    Ok(())
}

fn check_definition(query: &PreparedQuery) -> Result<(), String> {
    if query.name.is_empty() && !query.is_template() && query.session.is_empty() {
        return Err("Must be bound to a session".into());
    }
    if query.token == REDACTED_TOKEN {
        return Err(format!(
            "Bad Token '{}', it looks like a query definition with a redacted token was submitted",
            query.token
        ));
    }
    let service = &query.service;
    if service.service.is_empty() {
        return Err("Must provide a Service name to query".into());
    }
    let failover = &service.failover;
    if failover.nearest_n < 0 {
        return Err(format!("Bad NearestN '{}', must be >= 0", failover.nearest_n));
    }
    if (failover.nearest_n != 0 || !failover.datacenters.is_empty()) && !failover.targets.is_empty() {
        return Err("Targets cannot be populated with NearestN or Datacenters".into());
    }
    check_node_meta(&service.node_meta)?;
    if !query.dns.ttl.is_empty() {
        let ttl = &query.dns.ttl;
        crate::duration::parse_go_duration(ttl).map_err(|why| format!("Bad DNS TTL '{ttl}': {why}"))?;
    }
    Ok(())
}

/// Consul's `ValidateNodeMetadata` with the `consul-` prefix allowed, as a query filter may name it.
fn check_node_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    use crate::limits::{MAX_META_KEY_LEN, MAX_META_PAIRS, MAX_META_VALUE_LEN};
    if meta.len() > MAX_META_PAIRS {
        return Err(format!("Node metadata cannot contain more than {MAX_META_PAIRS} key/value pairs"));
    }
    for (key, value) in meta {
        if key.is_empty() {
            return Err("Key cannot be blank".into());
        }
        if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("Key contains invalid characters: {key:?}"));
        }
        if key.len() > MAX_META_KEY_LEN {
            return Err(format!("Key is too long (limit: {MAX_META_KEY_LEN} characters)"));
        }
        if value.len() > MAX_META_VALUE_LEN {
            return Err(format!("Value is too long (limit: {MAX_META_VALUE_LEN} characters)"));
        }
    }
    Ok(())
}

/// Whether `text` has a UUID's form (Consul looks a name up by ID only then).
pub fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests;
