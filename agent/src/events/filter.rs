//! The node, service and tag filters of an event: checked when fired, matched by every agent that receives it.
//!
//! As in Consul, each is an unanchored regular expression: `node` against the agent's node name, `service` against
//! the names of its local services, and `tag` against the tags of a service that matched `service`.

use regex::Regex;
use roster_kv::Service;

use crate::gossip::UserEvent;

/// The filters of a fire request, as given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters {
    /// Regular expression over node names; empty matches every node.
    pub node: String,
    /// Regular expression over service names; empty matches every node, with or without services.
    pub service: String,
    /// Regular expression over the tags of a service that matched `service`; needs `service`.
    pub tag: String,
}

impl Filters {
    /// Refuses what Consul refuses: a pattern that does not compile, a tag filter without a service filter.
    pub fn validate(&self) -> Result<(), String> {
        if !self.tag.is_empty() && self.service.is_empty() {
            return Err("Cannot provide tag filter without service filter".to_owned());
        }
        for (what, pattern) in [("node", &self.node), ("service", &self.service), ("tag", &self.tag)] {
            Regex::new(pattern).map_err(|error| format!("Invalid {what} filter: {error}"))?;
        }
        Ok(())
    }
}

/// Whether an agent named `node` with `services` should keep `event` (Consul's `shouldProcessUserEvent`).
///
/// A filter that does not compile matches nothing: it can only come from a peer that skipped validation.
pub(crate) fn matches(event: &UserEvent, node: &str, services: &[Service]) -> bool {
    if !event.node_filter.is_empty() && !compile(&event.node_filter).is_some_and(|re| re.is_match(node)) {
        return false;
    }
    if event.service_filter.is_empty() {
        return true;
    }
    let Some(service_re) = compile(&event.service_filter) else {
        return false;
    };
    let tag_re = match event.tag_filter.as_str() {
        "" => None,
        pattern => match compile(pattern) {
            Some(re) => Some(re),
            None => return false,
        },
    };
    services.iter().filter(|service| service_re.is_match(&service.service)).any(|service| match &tag_re {
        None => true,
        Some(tag_re) => service.tags.iter().any(|tag| tag_re.is_match(tag)),
    })
}

fn compile(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}
