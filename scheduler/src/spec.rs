//! A cluster job's `[placement]` and `[update]` sections, and `JobShape`: what the servers read out of a stored job
//! spec (its name, those two sections, the drivers its tasks need, the services they register) without knowing the
//! rest of the spec, which the agent's runtime validates.
//!
//! These types are also stored in the replicated state (postcard, which is not self-describing), so their fields
//! are always written, never skipped, and only appended.
//!
//! Every problem is reported with its field path (`placement.constraints[1].operator`), so the HTTP edge can answer
//! 400 naming the field, and `roster-kv` can refuse the same spec at apply with the same words.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::Interval;

/// The longest cluster job name: the name of the local job a node runs for an allocation is `<job>-<seq>`, and local
/// job names are DNS labels of at most 63 characters, so 48 leaves room for a 14-digit sequence number.
pub const MAX_JOB_NAME_LEN: usize = 48;
/// The most explicit nodes or constraints one placement may list.
pub const MAX_PLACEMENT_ITEMS: usize = 64;
/// The most allocations a `count` may ask for.
pub const MAX_COUNT: u32 = 1024;
/// The grace a node's `serfHealth` may stay critical before its allocations move, when the job names none.
pub const DEFAULT_RESCHEDULE_GRACE: Interval = Interval::secs(30);

/// Where a job's allocations go (`[placement]`). Without the section a job runs one allocation on any eligible node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Exactly these nodes, one allocation on each (Helios's `deploy JOB HOST`).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// How many allocations (default 1; with `nodes`, the number of nodes listed).
    #[serde(default)]
    pub count: Option<u32>,
    /// Never two allocations of this job on one node.
    #[serde(default)]
    pub distinct_hosts: bool,
    /// One allocation on every eligible node, including nodes that join later.
    #[serde(default)]
    pub global: bool,
    /// Conditions on a node's name and metadata; a node must satisfy every one.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// How long a node's `serfHealth` may stay critical before its allocations are placed elsewhere (default 30s).
    #[serde(default)]
    pub reschedule_grace: Option<Interval>,
}

/// One condition on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// `node.name`, or `node_meta.<key>` (a missing key compares as the empty string).
    pub attribute: String,
    /// How the attribute is compared with `value`.
    pub operator: Operator,
    /// The value compared with.
    pub value: String,
}

/// A constraint's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    /// Equal.
    #[serde(rename = "=")]
    Equal,
    /// Not equal.
    #[serde(rename = "!=")]
    NotEqual,
    /// The attribute matches the regular expression `value` (unanchored, Rust `regex` syntax).
    #[serde(rename = "regexp")]
    Regexp,
    /// The attribute, a comma-separated list, contains every item of the comma-separated `value`.
    #[serde(rename = "set_contains")]
    SetContains,
}

/// How a new version replaces the running allocations (`[update]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicy {
    /// How many allocations are replaced at a time (default 1).
    #[serde(default = "default_max_parallel")]
    pub max_parallel: u32,
    /// How long a new allocation must stay healthy before the next step (default 10s).
    #[serde(default = "default_min_healthy_time")]
    pub min_healthy_time: Interval,
    /// How long a new allocation gets to become healthy before the version is marked failed (default 5m).
    #[serde(default = "default_healthy_deadline")]
    pub healthy_deadline: Interval,
    /// On failure, go back to the last version that became healthy everywhere (default false).
    #[serde(default)]
    pub auto_revert: bool,
}

impl Default for UpdatePolicy {
    fn default() -> UpdatePolicy {
        UpdatePolicy {
            max_parallel: default_max_parallel(),
            min_healthy_time: default_min_healthy_time(),
            healthy_deadline: default_healthy_deadline(),
            auto_revert: false,
        }
    }
}

fn default_max_parallel() -> u32 {
    1
}

fn default_min_healthy_time() -> Interval {
    Interval::secs(10)
}

fn default_healthy_deadline() -> Interval {
    Interval::secs(300)
}

/// One problem in a job spec, named by its field path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    /// Where: `placement.count`; empty for the document as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FieldProblem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> FieldProblem {
        FieldProblem { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem, joined as the spec parser joins them.
pub fn describe(problems: &[FieldProblem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl Placement {
    /// The number of allocations this placement wants when it is not global: the listed nodes, else `count` (default 1).
    pub fn wanted(&self) -> u32 {
        if self.nodes.is_empty() { self.count.unwrap_or(1) } else { self.nodes.len() as u32 }
    }

    /// The grace before allocations on a failed node move.
    pub fn grace(&self) -> Interval {
        self.reschedule_grace.unwrap_or(DEFAULT_RESCHEDULE_GRACE)
    }

    /// Checks what serde cannot; every problem under `placement.`.
    pub fn validate(&self, problems: &mut Vec<FieldProblem>) {
        if self.global && (!self.nodes.is_empty() || self.count.is_some()) {
            problems.push(FieldProblem::new("placement.global", "a global job names no nodes and no count"));
        }
        if let Some(count) = self.count {
            if !self.nodes.is_empty() && count as usize != self.nodes.len() {
                let why = format!("{count} differs from the {} nodes listed (omit it: one per node)", self.nodes.len());
                problems.push(FieldProblem::new("placement.count", why));
            }
            if count > MAX_COUNT {
                problems.push(FieldProblem::new("placement.count", format!("{count} is over {MAX_COUNT}")));
            }
        }
        if self.nodes.len() > MAX_PLACEMENT_ITEMS {
            problems.push(FieldProblem::new("placement.nodes", format!("more than {MAX_PLACEMENT_ITEMS} nodes")));
        }
        let mut seen = BTreeSet::new();
        for (idx, node) in self.nodes.iter().enumerate() {
            if node.is_empty() {
                problems.push(FieldProblem::new(format!("placement.nodes[{idx}]"), "must not be empty"));
            } else if !seen.insert(node) {
                problems
                    .push(FieldProblem::new(format!("placement.nodes[{idx}]"), format!("{node:?} is listed twice")));
            }
        }
        if self.constraints.len() > MAX_PLACEMENT_ITEMS {
            let why = format!("more than {MAX_PLACEMENT_ITEMS} constraints");
            problems.push(FieldProblem::new("placement.constraints", why));
        }
        for (idx, constraint) in self.constraints.iter().enumerate() {
            constraint.validate(&format!("placement.constraints[{idx}]"), problems);
        }
    }
}

impl Constraint {
    fn validate(&self, path: &str, problems: &mut Vec<FieldProblem>) {
        let known = self.attribute == "node.name"
            || self.attribute.strip_prefix("node_meta.").is_some_and(|key| !key.is_empty());
        if !known {
            let why = format!("unknown attribute {:?} (use node.name or node_meta.<key>)", self.attribute);
            problems.push(FieldProblem::new(format!("{path}.attribute"), why));
        }
        if self.operator == Operator::Regexp
            && let Err(err) = regex::Regex::new(&self.value)
        {
            problems.push(FieldProblem::new(format!("{path}.value"), format!("not a regular expression: {err}")));
        }
    }
}

impl UpdatePolicy {
    /// Checks what serde cannot; every problem under `update.`.
    pub fn validate(&self, problems: &mut Vec<FieldProblem>) {
        if self.max_parallel == 0 {
            problems.push(FieldProblem::new("update.max_parallel", "must be at least 1"));
        }
        if self.healthy_deadline <= self.min_healthy_time {
            let why =
                format!("{} must be longer than min_healthy_time ({})", self.healthy_deadline, self.min_healthy_time);
            problems.push(FieldProblem::new("update.healthy_deadline", why));
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::Equal => "=",
            Operator::NotEqual => "!=",
            Operator::Regexp => "regexp",
            Operator::SetContains => "set_contains",
        })
    }
}

/// What the servers need of a job spec: read from its JSON, the rest of which they keep as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobShape {
    /// The job's name.
    pub name: String,
    /// Where its allocations go.
    pub placement: Placement,
    /// How a new version rolls out.
    pub update: UpdatePolicy,
    /// The drivers its tasks use, sorted and deduplicated: a node must offer every one.
    pub drivers: Vec<String>,
    /// The names of the services its tasks register, sorted and deduplicated (deploying needs `service:write` on each).
    pub services: Vec<String>,
}

impl JobShape {
    /// Reads and validates the parts of a job spec (JSON, the agent's canonical form) the servers use.
    pub fn from_spec(spec: &serde_json::Value) -> Result<JobShape, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let Some(object) = spec.as_object() else {
            return Err(vec![FieldProblem::new("", "a job spec is a JSON object")]);
        };
        let name = match object.get("name") {
            Some(serde_json::Value::String(name)) => name.clone(),
            _ => {
                problems.push(FieldProblem::new("name", "missing, or not a string"));
                String::new()
            }
        };
        if name.len() > MAX_JOB_NAME_LEN {
            let why = format!("{name:?} is longer than {MAX_JOB_NAME_LEN} characters (a cluster job's limit)");
            problems.push(FieldProblem::new("name", why));
        }
        let placement: Placement = section(object.get("placement"), "placement", &mut problems);
        let update: UpdatePolicy = section(object.get("update"), "update", &mut problems);
        placement.validate(&mut problems);
        update.validate(&mut problems);
        let mut drivers = BTreeSet::new();
        let mut services = BTreeSet::new();
        match object.get("tasks").and_then(|tasks| tasks.as_array()) {
            Some(tasks) if !tasks.is_empty() => {
                for (idx, task) in tasks.iter().enumerate() {
                    match task.get("driver").and_then(|d| d.as_str()) {
                        Some(driver) => drivers.insert(driver.to_owned()),
                        None => {
                            problems.push(FieldProblem::new(format!("tasks[{idx}].driver"), "missing"));
                            false
                        }
                    };
                    let listed = task.get("services").and_then(|s| s.as_array()).into_iter().flatten();
                    services.extend(listed.filter_map(|s| s.get("name")?.as_str().map(str::to_owned)));
                }
            }
            _ => problems.push(FieldProblem::new("tasks", "a job needs at least one task")),
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(JobShape {
            name,
            placement,
            update,
            drivers: drivers.into_iter().collect(),
            services: services.into_iter().collect(),
        })
    }
}

/// A section read into its type, defaulted when absent; a problem names the field inside it.
fn section<T: for<'de> Deserialize<'de> + Default>(
    value: Option<&serde_json::Value>,
    name: &str,
    problems: &mut Vec<FieldProblem>,
) -> T {
    let Some(value) = value.filter(|v| !v.is_null()) else { return T::default() };
    match T::deserialize(value) {
        Ok(parsed) => parsed,
        Err(err) => {
            problems.push(FieldProblem::new(name, err.to_string()));
            T::default()
        }
    }
}

#[cfg(test)]
mod tests;
