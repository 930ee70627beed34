//! Rules text to [`Policy`]: access levels, resources, parsing, validation, and merging.
//!
//! Follows Consul's `acl/policy.go` (rule kinds, `isPolicyValid`) and `acl/policy_merger.go`
//! (`takesPrecedenceOver`: deny beats write beats list beats read). Several rules for the same
//! name, in one policy or across policies, merge that way.

mod syntax;

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{ParseError, Result};
use syntax::{Entry, Value};

/// A rule's access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLevel {
    /// Explicitly denied; never falls through to the default policy.
    Deny,
    /// Read only.
    Read,
    /// Read and list (keys only).
    List,
    /// Everything: read, list and write.
    Write,
}

impl AccessLevel {
    /// Consul's word for the level: `deny`, `read`, `list`, `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Deny => "deny",
            AccessLevel::Read => "read",
            AccessLevel::List => "list",
            AccessLevel::Write => "write",
        }
    }

    /// Parses a level the way Consul's `AccessLevelFromString` does (case-insensitive).
    fn from_word(word: &str) -> Option<AccessLevel> {
        match word.to_ascii_lowercase().as_str() {
            "deny" => Some(AccessLevel::Deny),
            "read" => Some(AccessLevel::Read),
            "list" => Some(AccessLevel::List),
            "write" => Some(AccessLevel::Write),
            _ => None,
        }
    }

    /// Rank in Consul's `takesPrecedenceOver`: deny > write > list > read.
    fn precedence(self) -> u8 {
        match self {
            AccessLevel::Read => 0,
            AccessLevel::List => 1,
            AccessLevel::Write => 2,
            AccessLevel::Deny => 3,
        }
    }

    /// The level that wins when two rules for the same thing meet.
    pub(crate) fn merge(self, other: AccessLevel) -> AccessLevel {
        if other.precedence() > self.precedence() { other } else { self }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a permission is about. Display gives Consul's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `acl`: ACL tokens, policies, roles (a single level).
    Acl,
    /// `agent`/`agent_prefix`: agent endpoints, by node name.
    Agent,
    /// `event`/`event_prefix`: user events, by name.
    Event,
    /// `key`/`key_prefix`: KV entries, by key.
    Key,
    /// `keyring`: the gossip keyring (a single level).
    Keyring,
    /// `mesh`: mesh config (a single level; falls back to `operator`).
    Mesh,
    /// `node`/`node_prefix`: catalog nodes, by name.
    Node,
    /// `operator`: operator endpoints (a single level).
    Operator,
    /// `peering`: cluster peering (a single level; falls back to `operator`).
    Peering,
    /// `query`/`query_prefix`: prepared queries, by name.
    Query,
    /// `service`/`service_prefix`: catalog services, by name.
    Service,
    /// `session`/`session_prefix`: sessions, by node name.
    Session,
}

impl Resource {
    /// Consul's word for the resource.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Acl => "acl",
            Resource::Agent => "agent",
            Resource::Event => "event",
            Resource::Key => "key",
            Resource::Keyring => "keyring",
            Resource::Mesh => "mesh",
            Resource::Node => "node",
            Resource::Operator => "operator",
            Resource::Peering => "peering",
            Resource::Query => "query",
            Resource::Service => "service",
            Resource::Session => "session",
        }
    }

    /// The single-level resources, written `acl = "read"`.
    fn scalar(word: &str) -> Option<Resource> {
        match word {
            "acl" => Some(Resource::Acl),
            "keyring" => Some(Resource::Keyring),
            "mesh" => Some(Resource::Mesh),
            "operator" => Some(Resource::Operator),
            "peering" => Some(Resource::Peering),
            _ => None,
        }
    }

    /// The named resources, written `key "x" { ... }` (exact) or `key_prefix "x" { ... }`.
    fn named(word: &str) -> Option<(Resource, bool)> {
        let (base, prefix) = match word.strip_suffix("_prefix") {
            Some(base) => (base, true),
            None => (word, false),
        };
        let resource = match base {
            "agent" => Resource::Agent,
            "event" => Resource::Event,
            "key" => Resource::Key,
            "node" => Resource::Node,
            "query" => Resource::Query,
            "service" => Resource::Service,
            "session" => Resource::Session,
            _ => return None,
        };
        Some((resource, prefix))
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exact-name and prefix rules of one named resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Table {
    pub(crate) exact: BTreeMap<String, AccessLevel>,
    pub(crate) prefix: BTreeMap<String, AccessLevel>,
}

impl Table {
    fn insert(&mut self, prefix: bool, name: &str, level: AccessLevel) {
        let map = if prefix { &mut self.prefix } else { &mut self.exact };
        map.entry(name.to_owned()).and_modify(|have| *have = have.merge(level)).or_insert(level);
    }

    fn merge(&mut self, other: &Table) {
        for (name, &level) in &other.exact {
            self.insert(false, name, level);
        }
        for (name, &level) in &other.prefix {
            self.insert(true, name, level);
        }
    }
}

/// One parsed policy (the `Rules` text of an ACL policy).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// `acl`, `keyring`, `mesh`, `operator`, `peering`.
    pub(crate) scalars: BTreeMap<Resource, AccessLevel>,
    /// `agent`, `event`, `key`, `node`, `query`, `service`, `session`.
    pub(crate) tables: BTreeMap<Resource, Table>,
    /// The explicit `intentions` levels of service rules (kept and merged; roster has no intentions).
    pub(crate) intentions: Table,
}

/// Nesting deeper than this is refused while parsing, so hostile input cannot exhaust the stack.
const MAX_NESTING: usize = 64;

impl Policy {
    /// Parses Consul rules: HCL, or JSON when the trimmed text starts with '{'. Empty text is an empty policy.
    pub fn parse(rules: &str) -> Result<Policy> {
        let trimmed = rules.trim();
        if trimmed.is_empty() {
            return Ok(Policy::default());
        }
        let entries = if trimmed.starts_with('{') {
            // serde_json stops at 128 levels; the bracket count holds JSON to the same 64 as HCL.
            if nesting_depth(trimmed) > MAX_NESTING {
                return Err(ParseError::new(None, None, format!("nesting deeper than {MAX_NESTING} levels")));
            }
            syntax::json(rules)?
        } else {
            // The HCL parser counts its own nesting (not brackets in strings or comments).
            syntax::hcl(rules)?
        };
        let mut policy = Policy::default();
        let mut scalars_seen = Vec::new();
        for entry in entries {
            policy.add_top(entry, &mut scalars_seen)?;
        }
        Ok(policy)
    }

    /// Merges `other` into `self` as Consul's policy merger does.
    pub(crate) fn merge(&mut self, other: &Policy) {
        for (&resource, &level) in &other.scalars {
            self.scalars.entry(resource).and_modify(|have| *have = have.merge(level)).or_insert(level);
        }
        for (&resource, table) in &other.tables {
            self.tables.entry(resource).or_default().merge(table);
        }
        self.intentions.merge(&other.intentions);
    }

    /// True when the policy has no rules at all.
    pub fn is_empty(&self) -> bool {
        self.scalars.is_empty() && self.tables.values().all(|t| t.exact.is_empty() && t.prefix.is_empty())
    }

    fn add_top(&mut self, entry: Entry, scalars_seen: &mut Vec<Resource>) -> Result<()> {
        let word = entry.key.to_ascii_lowercase();
        if let Some(resource) = Resource::scalar(&word) {
            let what = Some(word.clone());
            if scalars_seen.contains(&resource) {
                return Err(ParseError::new(
                    entry.line,
                    what,
                    "was already set; each argument can only be defined once",
                ));
            }
            scalars_seen.push(resource);
            let Value::Str(text) = &entry.value else {
                return Err(ParseError::new(
                    entry.line,
                    what,
                    format!("expected a string, got {}", entry.value.kind()),
                ));
            };
            let level = level(text, false).map_err(|message| ParseError::new(entry.line, what, message))?;
            self.scalars.insert(resource, level);
            return Ok(());
        }
        if let Some((resource, prefix)) = Resource::named(&word) {
            return self.add_named(resource, prefix, &word, entry.line, entry.value);
        }
        Err(ParseError::new(entry.line, Some(entry.key), "unknown rule type"))
    }

    /// `value` maps names to rule bodies (`key "a" { ... }` is `key = { a = { ... } }`), or is a list of such maps.
    fn add_named(
        &mut self,
        resource: Resource,
        prefix: bool,
        word: &str,
        line: Option<usize>,
        value: Value,
    ) -> Result<()> {
        match value {
            Value::Obj(rules) => {
                for rule in rules {
                    self.add_rule(resource, prefix, word, rule)?;
                }
                Ok(())
            }
            Value::List(items) => {
                for item in items {
                    self.add_named(resource, prefix, word, line, item)?;
                }
                Ok(())
            }
            other => Err(ParseError::new(
                line,
                Some(word.to_owned()),
                format!("expected a block with a name label, got {}", other.kind()),
            )),
        }
    }

    fn add_rule(&mut self, resource: Resource, prefix: bool, word: &str, rule: Entry) -> Result<()> {
        let what = format!("{word} {:?}", rule.key);
        let bodies = match rule.value {
            Value::Obj(attrs) => vec![attrs],
            Value::List(items) => {
                let mut bodies = Vec::new();
                for item in items {
                    match item {
                        Value::Obj(attrs) => bodies.push(attrs),
                        other => {
                            return Err(ParseError::new(
                                rule.line,
                                Some(what),
                                format!("expected a block, got {}", other.kind()),
                            ));
                        }
                    }
                }
                bodies
            }
            other => {
                return Err(ParseError::new(rule.line, Some(what), format!("expected a block, got {}", other.kind())));
            }
        };
        for attrs in bodies {
            let mut policy = None;
            let mut intentions = None;
            for attr in attrs {
                let name = attr.key.to_ascii_lowercase();
                let slot = match name.as_str() {
                    "policy" => &mut policy,
                    "intentions" if resource == Resource::Service => &mut intentions,
                    _ => {
                        let message = format!("unknown attribute {:?}", attr.key);
                        return Err(ParseError::new(attr.line, Some(what), message));
                    }
                };
                if slot.is_some() {
                    let message = format!("attribute {name:?} was already set; each argument can only be defined once");
                    return Err(ParseError::new(attr.line, Some(what), message));
                }
                let Value::Str(text) = &attr.value else {
                    let message = format!("{name}: expected a string, got {}", attr.value.kind());
                    return Err(ParseError::new(attr.line, Some(what), message));
                };
                let allow_list = resource == Resource::Key && name == "policy";
                let parsed = level(text, allow_list).map_err(|message| {
                    let message = if name == "policy" { message } else { format!("{name}: {message}") };
                    ParseError::new(attr.line, Some(what.clone()), message)
                })?;
                *slot = Some(parsed);
            }
            let Some(policy) = policy else {
                return Err(ParseError::new(rule.line, Some(what), "missing policy"));
            };
            self.tables.entry(resource).or_default().insert(prefix, &rule.key, policy);
            if let Some(intentions) = intentions {
                self.intentions.insert(prefix, &rule.key, intentions);
            }
        }
        Ok(())
    }
}

/// Consul's `isPolicyValid`: deny, read, write, and list only where `allow_list` (keys).
fn level(text: &str, allow_list: bool) -> std::result::Result<AccessLevel, String> {
    match AccessLevel::from_word(text) {
        Some(AccessLevel::List) if !allow_list => Err(format!("invalid policy {text:?} (list is only valid for keys)")),
        Some(level) => Ok(level),
        None => Err(format!("invalid policy {text:?}")),
    }
}

/// The deepest bracket nesting in `text`, counting brackets inside strings too (a cheap upper bound).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'{' | b'[' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests;
