//! Evaluation of a validated expression against one result element's JSON, with go-bexpr's semantics.
//!
//! - A selector into a list of objects (`Checks.Status`) matches when the match holds for any element, so `Checks.Status != passing` means "some check is not passing".
//! - A map key that is not there (`Meta.env` without `env`) is go-bexpr's "not present": `==`, `in`, `matches` and `is not empty` are false, their negations true.
//! - A field of an object that the JSON leaves out (`Kind` on a plain service) is its zero value, as the Go struct field would be.
//! - A literal is read as the selected value's type: `Port == 8080` compares numbers, `EnableTagOverride == true` bools, anything else strings.
//! - `any`/`all` try the inner expression once per element of a list (index and element) or entry of a map (key and value), with the names after `as` bound to them; an absent or null collection has no elements, so `any` is false and `all` true.

use serde_json::{Map, Value};

use super::ast::{Collection, Expr, Match, Op, Quantifier};
use super::schema::Field;

/// Whether `doc` satisfies `expr`; `root` is the shape `expr` was validated against.
pub fn eval(expr: &Expr, doc: &Value, root: &Field) -> bool {
    Env { doc, root, bound: Vec::new() }.eval(expr)
}

/// What an expression is evaluated against: the document, and the names bound by the collection expressions around it.
struct Env<'a> {
    /// The result element.
    doc: &'a Value,
    /// Its shape.
    root: &'a Field,
    /// Bound names, innermost last, so a later binding of a name shadows an earlier one.
    bound: Vec<(&'a str, Bound<'a>)>,
}

/// What a name after `as` stands for in one round of a collection expression.
enum Bound<'a> {
    /// An element of a list or a value of a map, and its type.
    Value(&'a Value, &'a Field),
    /// A key of a map, or an index of a list (as a JSON number), a value of its own.
    Scalar(Value),
}

impl<'a> Env<'a> {
    fn eval(&mut self, expr: &'a Expr) -> bool {
        match expr {
            Expr::Or(items) => items.iter().any(|item| self.eval(item)),
            Expr::And(items) => items.iter().all(|item| self.eval(item)),
            Expr::Not(inner) => !self.eval(inner),
            Expr::Match(m) => self.eval_match(m),
            Expr::Collection(c) => self.eval_collection(c),
        }
    }

    fn eval_match(&self, m: &Match) -> bool {
        let path = m.selector.0.as_slice();
        match path.split_first().and_then(|(first, rest)| Some((self.lookup(first)?, rest))) {
            Some((Bound::Value(value, field), rest)) => select(m, Some(value), field, rest),
            // Only pass-through JSON gets a path past a key (validation refuses it elsewhere); go-bexpr errors, and no match is the nearest answer.
            Some((Bound::Scalar(value), rest)) => rest.is_empty() && leaf(m, Some(value), &Field::Any),
            None => select(m, Some(self.doc), self.root, path),
        }
    }

    /// What `name` is bound to, innermost first.
    fn lookup(&self, name: &str) -> Option<&Bound<'a>> {
        self.bound.iter().rev().find(|(bound, _)| *bound == name).map(|(_, bound)| bound)
    }

    fn eval_collection(&mut self, c: &'a Collection) -> bool {
        let Some(field) = c.shape else { return false };
        let element = match field {
            Field::List(inner) => *inner,
            Field::Map(values) => *values,
            Field::StrList => &Field::Str,
            _ => &Field::Any,
        };
        let entries: Vec<(Value, &'a Value)> = match self.collection(c) {
            Some(Value::Array(items)) => items.iter().enumerate().map(|(idx, item)| (Value::from(idx), item)).collect(),
            Some(Value::Object(map)) => map.iter().map(|(key, value)| (Value::from(key.as_str()), value)).collect(),
            // Absent, null, or (pass-through JSON only) a scalar: nothing to iterate.
            _ => Vec::new(),
        };
        let outer = self.bound.len();
        let wanted = c.quantifier == Quantifier::Any;
        let mut res = !wanted;
        for (key, value) in entries {
            let is_map = key.is_string();
            if let Some(name) = c.binding.index_name(is_map) {
                self.bound.push((name, Bound::Scalar(key)));
            }
            if let Some(name) = c.binding.value_name(is_map) {
                self.bound.push((name, Bound::Value(value, element)));
            }
            let matched = self.eval(&c.inner);
            self.bound.truncate(outer);
            if matched == wanted {
                res = wanted;
                break;
            }
        }
        res
    }

    /// The list or map a collection expression names, if the document has one there.
    fn collection(&self, c: &Collection) -> Option<&'a Value> {
        let path = c.selector.0.as_slice();
        let (mut value, rest) = match path.split_first().and_then(|(first, rest)| Some((self.lookup(first)?, rest))) {
            Some((Bound::Value(value, _), rest)) => (*value, rest),
            Some((Bound::Scalar(_), _)) => return None,
            None => (self.doc, path),
        };
        for part in rest {
            value = match value {
                Value::Object(map) => map.get(part)?,
                Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

/// Follows `path` from `value` (of type `field`) and applies the match where it ends.
fn select(m: &Match, value: Option<&Value>, field: &Field, path: &[String]) -> bool {
    let value = value.filter(|v| !v.is_null());
    let Some((key, rest)) = path.split_first() else { return leaf(m, value, field) };
    match field {
        Field::List(inner) => elements(value).iter().any(|item| select(m, Some(item), inner, path)),
        Field::Obj(fields) => match fields.iter().find(|(name, _)| name == key) {
            Some((_, child)) => select(m, value.and_then(|v| v.get(key)), child, rest),
            None => false,
        },
        Field::Map(inner) => match value.and_then(|v| v.get(key)) {
            Some(child) => select(m, Some(child), inner, rest),
            None => m.op.when_absent(),
        },
        Field::Any => match value {
            Some(Value::Object(map)) => {
                map.get(key).map_or(m.op.when_absent(), |child| select(m, Some(child), field, rest))
            }
            // An index picks one element; any other name looks into every element, as for typed lists.
            Some(Value::Array(items)) => match key.parse::<usize>() {
                Ok(idx) => items.get(idx).map_or(m.op.when_absent(), |child| select(m, Some(child), field, rest)),
                Err(_) => items.iter().any(|item| select(m, Some(item), field, path)),
            },
            _ => m.op.when_absent(),
        },
        // Validation refuses selectors past a scalar.
        Field::Str | Field::Int | Field::Bool | Field::StrList => false,
    }
}

fn elements(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A selected value, seen as the kinds the operators distinguish.
enum View<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
    List(&'a [Value]),
    Map(&'a Map<String, Value>),
}

fn view(value: &Value) -> Option<View<'_>> {
    Some(match value {
        Value::Null => return None,
        Value::String(s) => View::Str(s),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => View::Int(i128::from(i)),
            (None, Some(u)) => View::Int(i128::from(u)),
            _ => View::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Bool(b) => View::Bool(*b),
        Value::Array(items) => View::List(items),
        Value::Object(map) => View::Map(map),
    })
}

/// The value a Go struct field has when the JSON leaves it out; containers need none, since "absent" already answers for them as an empty one would.
fn zero(field: &Field) -> Option<View<'static>> {
    match field {
        Field::Str => Some(View::Str("")),
        Field::Int => Some(View::Int(0)),
        Field::Bool => Some(View::Bool(false)),
        _ => None,
    }
}

fn leaf(m: &Match, value: Option<&Value>, field: &Field) -> bool {
    let (op, negated) = m.op.positive();
    if op == Op::IsNil {
        return value.is_none() != negated;
    }
    let Some(view) = value.and_then(view).or_else(|| zero(field)) else { return m.op.when_absent() };
    let raw = m.value.as_deref().unwrap_or_default();
    let positive = match (op, view) {
        (Op::Equal, view) => equals(&view, raw),
        (Op::In, View::Str(s)) => s.contains(raw),
        (Op::In, View::List(items)) => items.iter().filter_map(self::view).any(|item| equals(&item, raw)),
        (Op::In, View::Map(map)) => map.contains_key(raw),
        (Op::IsEmpty, View::Str(s)) => s.is_empty(),
        (Op::IsEmpty, View::List(items)) => items.is_empty(),
        (Op::IsEmpty, View::Map(map)) => map.is_empty(),
        (Op::Matches, View::Str(s)) => m.regex.as_ref().is_some_and(|re| re.is_match(s)),
        // Only pass-through JSON gets here (validation refuses these pairs on typed fields); go-bexpr errors, and no match is the nearest answer.
        _ => false,
    };
    positive != negated
}

/// `==` with the literal read as the value's type; a literal that does not read as it is unequal.
fn equals(view: &View<'_>, raw: &str) -> bool {
    match view {
        View::Str(s) => *s == raw,
        View::Int(i) => parse_int(raw) == Some(*i),
        View::Float(f) => raw.parse::<f64>().ok() == Some(*f),
        View::Bool(b) => parse_bool(raw) == Some(*b),
        View::List(_) | View::Map(_) => false,
    }
}

/// An integer as Go's `strconv.ParseInt(s, 0, 64)` reads it: a sign, then decimal, `0x` hex, `0o` or leading-`0` octal, or `0b` binary; `_` between digits only with a prefix.
pub fn parse_int(raw: &str) -> Option<i128> {
    let (negative, unsigned) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex, true)
    } else if let Some(oct) = lower.strip_prefix("0o") {
        (8, oct, true)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (2, bin, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    let digits = if prefixed { digits.replace('_', "") } else { digits.to_owned() };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    // Go reads into 64 bits; unsigned fields (the indexes) reach 2^64-1.
    (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&value).then_some(value)
}

/// A bool as Go's `strconv.ParseBool` reads it.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
