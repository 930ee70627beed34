//! What each `-type` of watch reads, and the JSON it hands to the handler.
//!
//! The results are shaped like the values Consul's `api/watch` functions return, since handlers
//! written for Consul parse them: `key` gives one KV entry object (or `null` when the key does
//! not exist), `keyprefix` the list of entries (or `null`), `event` only the events newer than
//! the last one seen, every other type the endpoint's JSON as it is.

use anyhow::bail;
use serde_json::Value;

use super::agent_http::{Reply, kv_path, segment};

/// The data views `-type` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchType {
    /// One KV entry (`-key`).
    Key,
    /// Every KV entry under a prefix (`-prefix`).
    Keyprefix,
    /// The catalog's service names and their tags.
    Services,
    /// The catalog's nodes.
    Nodes,
    /// The health of one service's instances (`-service`, `-tag`, `-passingonly`).
    Service,
    /// Health checks in one state (`-state`) or of one service (`-service`).
    Checks,
    /// User events, optionally of one name (`-name`).
    Event,
}

/// The parameters of a watch that decide what it reads.
#[derive(Debug, Clone, Default)]
pub(super) struct Params {
    pub key: Option<String>,
    pub prefix: Option<String>,
    pub service: Option<String>,
    pub tags: Vec<String>,
    pub passing_only: bool,
    pub state: Option<String>,
    pub name: Option<String>,
    pub filter: Option<String>,
}

/// A validated watch: the request path without `index`, and how to read its answers.
#[derive(Debug, Clone)]
pub(super) struct Source {
    /// The watch type, which decides how answers become results.
    kind: WatchType,
    /// Path and query of the read.
    path: String,
}

impl Source {
    /// Validates the parameters for `kind` the way Consul's watch parser does and builds the path.
    pub fn new(kind: WatchType, params: &Params) -> anyhow::Result<Source> {
        refuse_foreign_params(kind, params)?;
        let mut query = Vec::new();
        let path = match kind {
            WatchType::Key => kv_path(required(&params.key, "Must specify a single key to watch")?),
            WatchType::Keyprefix => {
                query.push("recurse".to_owned());
                kv_path(required(&params.prefix, "Must specify a single prefix to watch")?)
            }
            WatchType::Services => "/v1/catalog/services".to_owned(),
            WatchType::Nodes => "/v1/catalog/nodes".to_owned(),
            WatchType::Service => {
                let service = required(&params.service, "Must specify a single service to watch")?;
                query.extend(params.tags.iter().map(|tag| format!("tag={}", segment(tag))));
                if params.passing_only {
                    query.push("passing".to_owned());
                }
                format!("/v1/health/service/{}", segment(service))
            }
            WatchType::Checks => checks_path(params)?,
            WatchType::Event => {
                if let Some(name) = params.name.as_deref().filter(|name| !name.is_empty()) {
                    query.push(format!("name={}", segment(name)));
                }
                "/v1/event/list".to_owned()
            }
        };
        if let Some(filter) = params.filter.as_deref().filter(|filter| !filter.is_empty()) {
            query.push(format!("filter={}", segment(filter)));
        }
        let path = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
        Ok(Source { kind, path })
    }

    /// The request path and query, without `index`/`wait`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the view's index is a Raft index; the event list's is a hash of an event ID.
    pub fn ordered_index(&self) -> bool {
        self.kind != WatchType::Event
    }

    /// Turns one answer into the watch's index and result; `last_index` prunes old events.
    pub fn result(&self, reply: &Reply, last_index: u64) -> anyhow::Result<(u64, Value)> {
        let missing = reply.status == reqwest::StatusCode::NOT_FOUND;
        let value = match self.kind {
            WatchType::Key | WatchType::Keyprefix if missing => Value::Null,
            WatchType::Key => match reply.json()? {
                Value::Array(mut entries) if !entries.is_empty() => entries.swap_remove(0),
                _ => Value::Null,
            },
            WatchType::Event => new_events(reply.json()?, last_index),
            _ => reply.json()?,
        };
        Ok((reply.index, value))
    }
}

/// The events after the one whose ID hashes to `last_index`, as Consul's event watch prunes them;
/// all of them when that event is no longer in the list (or on the first query).
fn new_events(events: Value, last_index: u64) -> Value {
    let Value::Array(events) = events else { return events };
    let seen = events.iter().position(|event| event["ID"].as_str().and_then(event_index) == Some(last_index));
    match seen {
        Some(seen_idx) => Value::Array(events[seen_idx + 1..].to_vec()),
        None => Value::Array(events),
    }
}

/// Consul's `Event.IDToIndex`: the XOR of a UUID's two 64-bit halves, which `/v1/event/list`
/// reports as its index because events are not in the Raft log.
pub(super) fn event_index(id: &str) -> Option<u64> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let low = u64::from_str_radix(&hex[..16], 16).ok()?;
    let high = u64::from_str_radix(&hex[16..], 16).ok()?;
    Some(low ^ high)
}

/// `checks`: by state (default `any`) or by service, not both.
fn checks_path(params: &Params) -> anyhow::Result<String> {
    match (params.service.as_deref(), params.state.as_deref()) {
        (Some(_), Some(_)) => bail!("Cannot specify service and state"),
        (Some(service), None) => Ok(format!("/v1/health/checks/{}", segment(service))),
        (None, state) => Ok(format!("/v1/health/state/{}", segment(state.unwrap_or("any")))),
    }
}

/// A parameter the type needs, non-empty.
fn required<'a>(value: &'a Option<String>, message: &str) -> anyhow::Result<&'a str> {
    match value.as_deref() {
        Some(value) if !value.is_empty() => Ok(value),
        _ => bail!("{message}"),
    }
}

/// Consul refuses parameters a type does not read ("Invalid parameters: [...]") rather than
/// silently watching something other than what was asked for.
fn refuse_foreign_params(kind: WatchType, params: &Params) -> anyhow::Result<()> {
    let allowed: &[&str] = match kind {
        WatchType::Key => &["key"],
        WatchType::Keyprefix => &["prefix"],
        WatchType::Services | WatchType::Nodes => &["filter"],
        WatchType::Service => &["service", "tag", "passingonly", "filter"],
        WatchType::Checks => &["service", "state", "filter"],
        WatchType::Event => &["name"],
    };
    let given = [
        ("key", params.key.is_some()),
        ("prefix", params.prefix.is_some()),
        ("service", params.service.is_some()),
        ("tag", !params.tags.is_empty()),
        ("passingonly", params.passing_only),
        ("state", params.state.is_some()),
        ("name", params.name.is_some()),
        ("filter", params.filter.is_some()),
    ];
    let foreign: Vec<&str> =
        given.iter().filter(|(name, set)| *set && !allowed.contains(name)).map(|(name, _)| *name).collect();
    if !foreign.is_empty() {
        bail!("Invalid parameters: [{}]", foreign.join(" "));
    }
    Ok(())
}
