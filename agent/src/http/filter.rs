//! Consul's `?filter=` expressions (go-bexpr's language), parsed, checked against the endpoint's result shape, and evaluated against each result element's JSON.
//!
//! A filter is a boolean expression over the fields of one element of a listing: `Service.Meta.env == "qa" and "primary" in Service.Tags`.
//! The endpoint renders its answer exactly as without a filter, then keeps the elements the filter matches (for an object keyed by ID, such as `/v1/agent/services`, the values), so field names are Consul's output names by construction.
//! A blocking query still waits on, and reports, the unfiltered data's index, as Consul's does.
//!
//! # Layout
//! - `parse`: the grammar and its error positions; `ast`: the tree; `unquote`: Go's string escapes.
//! - `schema`: per-endpoint shapes and validation (unknown selector, wrong operator for the type, literal of the wrong type, bad regex are all 400s before any read).
//! - `eval`: go-bexpr's semantics (any-element for lists of objects, absent map keys, typed literals).
//!
//! Limits: an expression is at most `MAX_LENGTH` bytes and nests at most `parse::MAX_DEPTH` levels, so a hostile filter costs a bounded parse and cannot overflow the stack.
//! Collection expressions (`any Checks as c { c.Status == critical }`, `all Meta as k, v { .. }`) follow go-bexpr: see `parse` for where they may stand and `eval` for what the names after `as` mean.

use std::fmt;

use serde_json::Value;

mod ast;
mod eval;
mod parse;
pub mod schema;
mod unquote;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use schema::Field;

/// The longest filter expression accepted, in bytes.
pub const MAX_LENGTH: usize = 4096;

/// A parsed and validated filter for one endpoint's result shape.
#[derive(Debug)]
pub struct Filter {
    expr: ast::Expr,
    shape: &'static Field,
}

/// Why a filter was refused; each is a 400.
#[derive(Debug)]
pub enum FilterError {
    /// Longer than `MAX_LENGTH` bytes.
    TooLong(usize),
    /// Not in the grammar; the error carries the position.
    Parse(parse::ParseError),
    /// Well-formed but wrong for the endpoint: an unknown selector, an operator the field does not support, a literal that is not the field's type, a bad pattern.
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

impl Filter {
    /// Parses `text` and validates it against `shape`, the type of one result element.
    pub fn new(text: &str, shape: &'static Field) -> Result<Filter, FilterError> {
        if text.len() > MAX_LENGTH {
            return Err(FilterError::TooLong(text.len()));
        }
        let mut expr = parse::parse(text).map_err(FilterError::Parse)?;
        schema::validate(&mut expr, shape).map_err(FilterError::Invalid)?;
        Ok(Filter { expr, shape })
    }

    /// Whether one result element matches.
    pub fn matches(&self, doc: &Value) -> bool {
        eval::eval(&self.expr, doc, self.shape)
    }
}

/// Whether `doc` stays in the answer: always without a filter.
pub fn keep(filter: Option<&Filter>, doc: &Value) -> bool {
    filter.is_none_or(|f| f.matches(doc))
}
