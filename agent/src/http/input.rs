//! Reading Consul request bodies: JSON whose field names match case-insensitively and ignoring `_`, without caring for Content-Type.
//!
//! Clients send `Name`, `name`, `EnableTagOverride`, `enable_tag_override`; user maps (`Meta`, `NodeMeta`, `Header`, `TaggedAddresses` keys) keep their keys exactly as sent.
//! Each getter returns an error text that names the field, which the handler turns into Consul's 400 "Request decode failed: ..." answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

pub use crate::config::duration::format_go_duration;
use crate::config::duration::parse_go_duration;

/// A JSON object viewed with Consul's lenient field matching.
#[derive(Clone, Copy)]
pub struct Obj<'a>(pub &'a Map<String, Value>);

/// Parses a request body into an object, whatever the Content-Type said.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!("expected a JSON object, got {}", kind(&other))),
        Err(err) => Err(err.to_string()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn normalise(name: &str) -> String {
    name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

impl<'a> Obj<'a> {
    /// The value of the first field matching any of `names`, ignoring case and `_`; JSON null counts as absent.
    pub fn get(&self, names: &[&str]) -> Option<&'a Value> {
        let wanted: Vec<String> = names.iter().map(|n| normalise(n)).collect();
        self.0.iter().find(|(k, v)| !v.is_null() && wanted.contains(&normalise(k))).map(|(_, v)| v)
    }

    /// A string field; absent gives "".
    pub fn str(&self, names: &[&str]) -> Result<String, String> {
        match self.get(names) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{}: expected a string, got {}", names[0], kind(other))),
        }
    }

    /// A boolean field; absent gives false.
    pub fn bool(&self, names: &[&str]) -> Result<bool, String> {
        match self.get(names) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("{}: expected a boolean, got {}", names[0], kind(other))),
        }
    }

    /// An integer field within `min..=max`; absent gives None.
    pub fn int(&self, names: &[&str], min: i64, max: i64) -> Result<Option<i64>, String> {
        match self.get(names) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(format!("{}: {n} is out of range {min}..={max}", names[0])),
            },
            Some(other) => Err(format!("{}: expected a number, got {}", names[0], kind(other))),
        }
    }

    /// A list of strings; absent gives an empty list.
    pub fn str_list(&self, names: &[&str]) -> Result<Vec<String>, String> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| format!("{}: every item must be a string", names[0]))
                })
                .collect(),
            Some(other) => Err(format!("{}: expected a list of strings, got {}", names[0], kind(other))),
        }
    }

    /// A user map of strings to strings; keys are kept exactly as sent.
    pub fn str_map(&self, names: &[&str]) -> Result<BTreeMap<String, String>, String> {
        match self.get(names) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(format!("{}.{k}: expected a string, got {}", names[0], kind(other))),
                })
                .collect(),
            Some(other) => Err(format!("{}: expected an object, got {}", names[0], kind(other))),
        }
    }

    /// A nested object.
    pub fn obj(&self, names: &[&str]) -> Result<Option<Obj<'a>>, String> {
        match self.get(names) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj(map))),
            Some(other) => Err(format!("{}: expected an object, got {}", names[0], kind(other))),
        }
    }

    /// A duration: a Go duration string or integer nanoseconds; absent or zero gives None.
    pub fn duration(&self, names: &[&str]) -> Result<Option<Duration>, String> {
        let parsed = match self.get(names) {
            None => return Ok(None),
            Some(Value::String(s)) if s.is_empty() => return Ok(None),
            Some(Value::String(s)) => parse_go_duration(s).map_err(|e| format!("{}: {e}", names[0]))?,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(nanos) => Duration::from_nanos(nanos),
                None => return Err(format!("{}: invalid duration {n}", names[0])),
            },
            Some(other) => return Err(format!("{}: expected a duration, got {}", names[0], kind(other))),
        };
        Ok((!parsed.is_zero()).then_some(parsed))
    }
}

#[cfg(test)]
mod tests;
