//! HCL and JSON rules text to one small tree, so both forms are validated by the same code.

use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Body, Structure};

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
    /// Anything else (numbers, bools, templates, ...), by kind, for the error message.
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

/// Parses HCL text into top-level entries.
pub(super) fn hcl(text: &str) -> Result<Vec<Entry>> {
    let body = hcl::edit::parser::parse_body(text)
        .map_err(|e| ParseError::new(Some(e.location().line()), None, e.message().to_owned()))?;
    let lines = Lines::new(text);
    Ok(body_entries(&body, &lines))
}

struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        Lines(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i).collect())
    }

    fn of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        span.map(|span| self.0.partition_point(|&newline| newline < span.start) + 1)
    }
}

fn body_entries(body: &Body, lines: &Lines) -> Vec<Entry> {
    body.iter()
        .map(|structure| match structure {
            Structure::Attribute(attr) => Entry {
                key: attr.key.as_str().to_owned(),
                line: lines.of(attr.span()),
                value: expr_value(&attr.value, lines),
            },
            Structure::Block(block) => {
                let line = lines.of(block.span());
                let mut value = Value::Obj(body_entries(&block.body, lines));
                for label in block.labels.iter().rev() {
                    value = Value::Obj(vec![Entry { key: label.as_str().to_owned(), line, value }]);
                }
                Entry { key: block.ident.as_str().to_owned(), line, value }
            }
        })
        .collect()
}

fn expr_value(expr: &Expression, lines: &Lines) -> Value {
    match expr {
        Expression::String(s) => Value::Str(s.as_str().to_owned()),
        Expression::Array(items) => Value::List(items.iter().map(|e| expr_value(e, lines)).collect()),
        Expression::Object(object) => {
            let mut entries = Vec::new();
            for (key, value) in object.iter() {
                let key = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                    ObjectKey::Expression(Expression::String(s)) => s.as_str().to_owned(),
                    ObjectKey::Expression(_) => return Value::Other("an object with a computed key"),
                };
                let expr = value.expr();
                entries.push(Entry { key, line: lines.of(expr.span()), value: expr_value(expr, lines) });
            }
            Value::Obj(entries)
        }
        Expression::Parenthesis(inner) => expr_value(inner.inner(), lines),
        Expression::Null(_) => Value::Other("null"),
        Expression::Bool(_) => Value::Other("a bool"),
        Expression::Number(_) => Value::Other("a number"),
        Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => Value::Other("a template"),
        _ => Value::Other("an expression"),
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
