//! HCL and JSON rules text to one small tree, so both forms are validated by the same code.
//!
//! The HCL side is `roster-hcl`, the HCL v1 parser Consul's rules and config files share; this module
//! keeps only what rules need of its tree (strings, objects, lists; anything else by kind, so the
//! error says "expected a string") and names errors by the rule they are in.

use super::MAX_NESTING;
use crate::error::{ParseError, Result};

/// `key = value`, or a block `key "label" { ... }` (as `key = { label = { ... } }`).
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: String,
    /// 1-based line, when known.
    pub(super) line: Option<usize>,
    pub(super) value: Value,
}

#[derive(Debug)]
pub(super) enum Value {
    Str(String),
    Obj(Vec<Entry>),
    List(Vec<Value>),
    /// Anything else (numbers, bools, bare words, ...), by kind, for the error message.
    Other(&'static str),
}

impl Value {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Obj(_) => "a block",
            Value::List(_) => "a list",
            Value::Other(kind) => kind,
        }
    }
}

/// How rules name the end of the text and the start of an item in syntax errors.
const OPTIONS: roster_hcl::Options = roster_hcl::Options {
    max_nesting: MAX_NESTING,
    end_of_text: "the end of the rules",
    item_name: "a rule or attribute name",
};

/// Parses HCL (v1) text into top-level entries.
pub(super) fn hcl(text: &str) -> Result<Vec<Entry>> {
    match roster_hcl::parse(text, &OPTIONS) {
        Ok(entries) => Ok(entries.into_iter().map(hcl_entry).collect()),
        Err(e) => Err(ParseError::new(Some(e.pos.line), resource(&e.path), e.message)),
    }
}

/// The rule an error is inside: `key_prefix "lb/"` in a block, `key` in `key = {`, none at the top.
fn resource(path: &[String]) -> Option<String> {
    let word = path.first()?.to_ascii_lowercase();
    Some(match path.get(1) {
        Some(label) => format!("{word} {label:?}"),
        None => word,
    })
}

fn hcl_entry(entry: roster_hcl::Entry) -> Entry {
    Entry { key: entry.key, line: Some(entry.pos.line), value: hcl_value(entry.value) }
}

fn hcl_value(value: roster_hcl::Value) -> Value {
    match value {
        roster_hcl::Value::Str(s) => Value::Str(s),
        roster_hcl::Value::Obj(entries) => Value::Obj(entries.into_iter().map(hcl_entry).collect()),
        roster_hcl::Value::List(items) => Value::List(items.into_iter().map(hcl_value).collect()),
        other => Value::Other(other.kind()),
    }
}

/// Parses JSON text into top-level entries (no line numbers past syntax errors).
pub(super) fn json(text: &str) -> Result<Vec<Entry>> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let message = match full.rfind(" at line ") {
            Some(at) => full[..at].to_owned(),
            None => full,
        };
        ParseError::new(Some(e.line()).filter(|&l| l > 0), None, message)
    })?;
    match json_value(value) {
        Value::Obj(entries) => Ok(entries),
        other => Err(ParseError::new(None, None, format!("expected a JSON object, got {}", other.kind()))),
    }
}

fn json_value(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Object(map) => Value::Obj(
            map.into_iter().map(|(key, value)| Entry { key, line: None, value: json_value(value) }).collect(),
        ),
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(json_value).collect()),
        serde_json::Value::Null => Value::Other("null"),
        serde_json::Value::Bool(_) => Value::Other("a bool"),
        serde_json::Value::Number(_) => Value::Other("a number"),
    }
}

#[cfg(test)]
mod tests;
