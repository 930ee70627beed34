//! Query-string parsing with Consul's rules: flags count by presence, `tag` may repeat, `index`/`wait` make a read blocking, `?dc=` must name this datacenter.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use roster_server::Consistency;

use super::Api;
use super::filter::{Field, Filter};
use super::reply::ApiError;
use crate::config::duration::parse_go_duration;

/// The default and the longest `?wait` of a blocking query (Consul's).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// The longest `?wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// A decoded query string.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// How a read should be served.
#[derive(Debug, Clone, Copy)]
pub struct ReadOpts {
    /// Consul's default, `?consistent` or `?stale`.
    pub consistency: Consistency,
    /// `?index`: block until the answer's index exceeds this; 0 answers at once.
    pub min_index: u64,
    /// `?wait`, capped at `MAX_WAIT`, with jitter added.
    pub wait: Duration,
}

fn decode(part: &str) -> String {
    let spaced = part.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

impl Query {
    /// Parses a raw query string (without the `?`).
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(p), String::new()),
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The names of every parameter sent, in order (a repeated one more than once).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// Refuses a parameter not in `allowed` with a 400 naming it, for endpoints that implement only some of Consul's.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::bad_request(format!("Unsupported query parameter {k:?}"))),
            None => Ok(()),
        }
    }

    /// `?node-meta=key:value` (repeatable; every pair must match), as Consul parses it: split at the first `:`, and a
    /// pair without one is the key with an empty value. `None` when not sent.
    pub fn node_meta(&self) -> Option<BTreeMap<String, String>> {
        let pairs = self.all("node-meta");
        if pairs.is_empty() {
            return None;
        }
        let split = |pair: &String| match pair.split_once(':') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (pair.clone(), String::new()),
        };
        Some(pairs.iter().map(split).collect())
    }

    /// `read` filtered by `?node-meta` where the state is read, when it was sent.
    pub fn with_node_meta(&self, read: roster_kv::Query) -> roster_kv::Query {
        match self.node_meta() {
            Some(node_meta) => roster_kv::Query::NodeMeta { node_meta, inner: Box::new(read) },
            None => read,
        }
    }

    /// A flag: present means true (`?recurse`, `?recurse=`, `?recurse=1`), unless it is explicitly false or 0.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"))
    }

    /// An unsigned integer parameter; a value that does not parse is a 400 naming it.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("Invalid {name}: {v:?}"))),
        }
    }

    /// `?filter=`, parsed and validated against `shape`, the type of one element of the endpoint's answer; absent or empty means no filter, as in Consul.
    pub fn filter(&self, shape: &'static Field) -> Result<Option<Filter>, ApiError> {
        match self.get("filter") {
            None | Some("") => Ok(None),
            Some(text) => Filter::new(text, shape).map(Some).map_err(|err| ApiError::bad_request(err.to_string())),
        }
    }

    /// Refuses any `?dc=` other than this agent's datacenter, as Consul does for a datacenter it has no route to.
    pub fn check_dc(&self, api: &Api) -> Result<(), ApiError> {
        self.check_datacenter(&api.info.datacenter)
    }

    /// `check_dc` against a datacenter name.
    pub fn check_datacenter(&self, datacenter: &str) -> Result<(), ApiError> {
        match self.get("dc") {
            Some(dc) if !dc.is_empty() && dc != datacenter => {
                Err(ApiError::internal(format!("No path to datacenter {dc:?}")))
            }
            _ => Ok(()),
        }
    }

    /// The read options, validated; also checks `?dc=`.
    pub fn read_opts(&self, api: &Api) -> Result<ReadOpts, ApiError> {
        self.check_dc(api)?;
        let consistency = match (self.flag("stale"), self.flag("consistent")) {
            (true, true) => {
                return Err(ApiError::bad_request("Cannot specify ?stale with ?consistent, conflicting semantics."));
            }
            (true, false) => Consistency::Stale,
            (false, true) => Consistency::Consistent,
            (false, false) => Consistency::Default,
        };
        let min_index = self.u64("index")?.unwrap_or(0);
        let wait = match self.get("wait") {
            None | Some("") => DEFAULT_WAIT,
            Some(text) => {
                parse_go_duration(text).map_err(|e| ApiError::bad_request(format!("Invalid wait time: {e}")))?
            }
        };
        let wait = wait.min(MAX_WAIT);
        Ok(ReadOpts { consistency, min_index, wait: wait + jitter(wait) })
    }
}

/// Up to wait/16 of extra wait, as Consul adds so that many watchers do not all return at once.
/// The spread needs no quality: the clock's sub-second nanoseconds are enough.
fn jitter(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let max = wait.as_nanos() / 16;
    if max == 0 { Duration::ZERO } else { Duration::from_nanos((u128::from(nanos) % max) as u64) }
}

#[cfg(test)]
mod tests {
    //! Tests for Consul's query-string rules.
    use super::*;

    #[test]
    fn flags_count_by_presence_unless_explicitly_false() {
        let q = Query::parse(Some("recurse&keys=&raw=1&a=True&b=false&c=0"));
        assert!(q.flag("recurse") && q.flag("keys") && q.flag("raw") && q.flag("a"));
        assert!(!q.flag("b") && !q.flag("c") && !q.flag("missing"));
    }

    #[test]
    fn repeated_tags_and_encoded_values() {
        let q = Query::parse(Some("tag=v1&tag=a%20b&tag=c+d&separator=%2F"));
        assert_eq!(q.all("tag"), vec!["v1", "a b", "c d"]);
        assert_eq!(q.get("separator"), Some("/"));
    }

    #[test]
    fn node_meta_pairs_split_at_the_first_colon() {
        let q = Query::parse(Some("node-meta=rack:a&node-meta=url:http://x&node-meta=bare"));
        let roster_kv::Query::NodeMeta { node_meta, inner } = q.with_node_meta(roster_kv::Query::Nodes) else {
            panic!("wrapped")
        };
        assert_eq!(*inner, roster_kv::Query::Nodes);
        let pairs: Vec<(&str, &str)> = node_meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("bare", ""), ("rack", "a"), ("url", "http://x")]);
        assert_eq!(Query::parse(None).with_node_meta(roster_kv::Query::Nodes), roster_kv::Query::Nodes);
    }

    #[test]
    fn bad_integers_are_named() {
        let err = Query::parse(Some("index=abc")).u64("index").unwrap_err();
        assert_eq!(err.message, "Invalid index: \"abc\"");
    }

    #[test]
    fn jitter_stays_within_a_sixteenth() {
        let wait = Duration::from_secs(16);
        assert!(jitter(wait) < Duration::from_secs(1));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
