//! roster-filter: Consul's filter language (go-bexpr's), parsed, checked against the shape of what it filters, and evaluated against JSON.
//!
//! The agent uses it for `?filter=` (a boolean expression over the fields of one element of a listing:
//! `Service.Meta.env == "qa" and "primary" in Service.Tags`); the servers use it for the selectors of ACL binding rules, which
//! Consul writes in the same language over the claims a login projects (`value.role == "web"`, `"admins" in list.groups`).
//! Field names are the JSON's: an endpoint renders its answer exactly as without a filter, then keeps the elements the filter matches.
//!
//! # Layout
//! - `parse`: the grammar and its error positions; `ast`: the tree; `unquote`: Go's string escapes.
//! - `schema`: the shapes (`Field`) and validation (unknown selector, wrong operator for the type, literal of the wrong type, bad regex are all refused before anything is evaluated), with the shape of each Consul result type roster filters.
//! - `eval`: go-bexpr's semantics (any-element for lists of objects, absent map keys, typed literals).
//!
//! Limits: an expression is at most `MAX_LENGTH` bytes and nests at most 32 levels, so a hostile filter costs a bounded parse and cannot overflow the stack.
//! Collection expressions (`any Checks as c { c.Status == critical }`, `all Meta as k, v { .. }`) follow go-bexpr: see `parse` for where they may stand and `eval` for what the names after `as` mean.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;

use serde_json::Value;

mod ast;
mod eval;
mod parse;
pub mod schema;
mod unquote;

#[cfg(test)]
mod tests;

pub use parse::ParseError;
pub use schema::Field;

/// The longest filter expression accepted, in bytes.
pub const MAX_LENGTH: usize = 4096;

/// A parsed and validated filter for one shape of document.
#[derive(Debug)]
pub struct Filter {
    expr: ast::Expr,
    shape: &'static Field,
}

/// Why a filter was refused; for `?filter=` each is a 400.
#[derive(Debug)]
pub enum FilterError {
    /// Longer than `MAX_LENGTH` bytes.
    TooLong(usize),
    /// Not in the grammar; the error carries the position.
    Parse(ParseError),
    /// Well-formed but wrong for the shape: an unknown selector, an operator the field does not support, a literal that is not the field's type, a bad pattern.
    Invalid(String),
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::TooLong(len) => {
                write!(f, "Filter expression is too long: {len} bytes, at most {MAX_LENGTH} are allowed")
            }
            FilterError::Parse(err) => write!(f, "Failed to parse filter expression: {err}"),
            FilterError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for FilterError {}

impl Filter {
    /// Parses `text` and validates it against `shape`, the type of one document.
    pub fn new(text: &str, shape: &'static Field) -> Result<Filter, FilterError> {
        if text.len() > MAX_LENGTH {
            return Err(FilterError::TooLong(text.len()));
        }
        let mut expr = parse::parse(text).map_err(FilterError::Parse)?;
        schema::validate(&mut expr, shape).map_err(FilterError::Invalid)?;
        Ok(Filter { expr, shape })
    }

    /// Every selector of the expression as its path segments, in the order written, those inside `any`/`all` included.
    /// What a shape with open maps cannot refuse (a key no document will have) a caller can check here.
    pub fn selectors(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        collect_selectors(&self.expr, &mut out);
        out
    }

    /// Whether one document matches.
    pub fn matches(&self, doc: &Value) -> bool {
        eval::eval(&self.expr, doc, self.shape)
    }
}

fn collect_selectors<'a>(expr: &'a ast::Expr, out: &mut Vec<&'a [String]>) {
    match expr {
        ast::Expr::Or(items) | ast::Expr::And(items) => items.iter().for_each(|item| collect_selectors(item, out)),
        ast::Expr::Not(inner) => collect_selectors(inner, out),
        ast::Expr::Match(m) => out.push(&m.selector.0),
        ast::Expr::Collection(c) => {
            out.push(&c.selector.0);
            collect_selectors(&c.inner, out);
        }
    }
}

/// Whether `doc` stays in the answer: always without a filter.
pub fn keep(filter: Option<&Filter>, doc: &Value) -> bool {
    filter.is_none_or(|f| f.matches(doc))
}
