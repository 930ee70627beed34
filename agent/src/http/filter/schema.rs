//! The shapes filters are checked against: one per kind of result element, with the field names and types `output` renders.
//!
//! Consul validates a filter against the Go type of the result (go-bexpr's field configurations), so a misspelled field is a 400, not an empty answer.
//! Here the type is the JSON shape: these tables must list what `output.rs` renders, and the tests compare them with its output.

use super::ast::{Expr, Match, Op, Selector};
use super::eval::{parse_bool, parse_int};

/// The type of a field, as far as filtering cares.
#[derive(Debug)]
pub enum Field {
    /// A string: compared, searched (`in`/`contains`), matched, tested for emptiness.
    Str,
    /// An integer: `==`/`!=` with the literal read as a number.
    Int,
    /// A bool: `==`/`!=` with the literal read as Go's `strconv.ParseBool` reads it.
    Bool,
    /// A list of strings: `in`, `is empty`.
    StrList,
    /// A map with any keys (`Meta`): `in` tests a key; a selector goes on through any key to the values.
    Map(&'static Field),
    /// An object with these fields.
    Obj(&'static [(&'static str, Field)]),
    /// A list of objects (`Checks`): a selector into it matches when any element does.
    List(&'static Field),
    /// Pass-through JSON of no fixed shape (`Proxy`, `Connect`, a check's `Definition`): any selector, typed by the value found.
    Any,
}

use Field::{Any, Bool, Int, Obj, Str, StrList};

const STR_MAP: Field = Field::Map(&Str);
const WEIGHTS: Field = Obj(&[("Passing", Int), ("Warning", Int)]);
/// A service's tagged address: `{"Address", "Port"}`.
const SERVICE_ADDRESS: Field = Obj(&[("Address", Str), ("Port", Int)]);

/// A catalog node (`/v1/catalog/nodes`, the `Node` of a health entry).
pub const NODE: Field = Obj(&[
    ("ID", Str),
    ("Node", Str),
    ("Address", Str),
    ("Datacenter", Str),
    ("TaggedAddresses", STR_MAP),
    ("Meta", STR_MAP),
    ("CreateIndex", Int),
    ("ModifyIndex", Int),
]);

/// A service as `/v1/agent/services` shows it.
pub const AGENT_SERVICE: Field = Obj(&[
    ("ID", Str),
    ("Service", Str),
    ("Tags", StrList),
    ("Meta", STR_MAP),
    ("Port", Int),
    ("Address", Str),
    ("Weights", WEIGHTS),
    ("EnableTagOverride", Bool),
    ("Datacenter", Str),
    ("Kind", Str),
    ("TaggedAddresses", Field::Map(&SERVICE_ADDRESS)),
    ("SocketPath", Str),
    ("Proxy", Any),
    ("Connect", Any),
]);

/// A service instance as the catalog node and health endpoints show it (Consul's `NodeService`).
pub const NODE_SERVICE: Field = Obj(&[
    ("ID", Str),
    ("Service", Str),
    ("Tags", StrList),
    ("Address", Str),
    ("Meta", STR_MAP),
    ("Port", Int),
    ("Weights", WEIGHTS),
    ("EnableTagOverride", Bool),
    ("Proxy", Any),
    ("Connect", Any),
    ("PeerName", Str),
    ("CreateIndex", Int),
    ("ModifyIndex", Int),
    ("Kind", Str),
    ("TaggedAddresses", Field::Map(&SERVICE_ADDRESS)),
    ("SocketPath", Str),
]);

/// A row of `/v1/catalog/service/:name`.
pub const CATALOG_SERVICE: Field = Obj(&[
    ("ID", Str),
    ("Node", Str),
    ("Address", Str),
    ("Datacenter", Str),
    ("TaggedAddresses", STR_MAP),
    ("NodeMeta", STR_MAP),
    ("ServiceKind", Str),
    ("ServiceID", Str),
    ("ServiceName", Str),
    ("ServiceTags", StrList),
    ("ServiceAddress", Str),
    ("ServiceWeights", WEIGHTS),
    ("ServiceMeta", STR_MAP),
    ("ServicePort", Int),
    ("ServiceSocketPath", Str),
    ("ServiceEnableTagOverride", Bool),
    ("ServiceProxy", Any),
    ("ServiceConnect", Any),
    ("ServiceLocality", Any),
    ("ServiceTaggedAddresses", Field::Map(&SERVICE_ADDRESS)),
    ("CreateIndex", Int),
    ("ModifyIndex", Int),
]);

/// A health check (`/v1/agent/checks`, `/v1/health/{node,checks,state}`).
pub const CHECK: Field = Obj(&[
    ("Node", Str),
    ("CheckID", Str),
    ("Name", Str),
    ("Status", Str),
    ("Notes", Str),
    ("Output", Str),
    ("ServiceID", Str),
    ("ServiceName", Str),
    ("ServiceTags", StrList),
    ("Type", Str),
    ("Interval", Str),
    ("Timeout", Str),
    ("ExposedPort", Int),
    ("Definition", Any),
    ("CreateIndex", Int),
    ("ModifyIndex", Int),
]);

/// A row of `/v1/health/service/:name`.
pub const HEALTH_ENTRY: Field = Obj(&[("Node", NODE), ("Service", NODE_SERVICE), ("Checks", Field::List(&CHECK))]);

/// Checks every match of `expr` against `root`: its selector names a field, its operator applies to that field's type, its literal reads as that type, and its pattern compiles.
/// Compiles the patterns on the way, so evaluation never fails.
pub fn validate(expr: &mut Expr, root: &Field) -> Result<(), String> {
    match expr {
        Expr::Or(items) | Expr::And(items) => items.iter_mut().try_for_each(|item| validate(item, root)),
        Expr::Not(inner) => validate(inner, root),
        Expr::Match(m) => validate_match(m, root),
    }
}

fn validate_match(m: &mut Match, root: &Field) -> Result<(), String> {
    let field = resolve(root, &m.selector)?;
    if !allowed(field, m.op) {
        return Err(format!("Invalid match operator {:?} for selector {:?}", m.op.name(), m.selector.to_string()));
    }
    let raw = m.value.as_deref().unwrap_or_default();
    let coerced = match field {
        Int => parse_int(raw).is_some(),
        Bool => parse_bool(raw).is_some(),
        _ => true,
    };
    if !coerced {
        return Err(format!(
            "Failed to coerce value {raw:?} for selector {:?}: invalid syntax",
            m.selector.to_string()
        ));
    }
    if matches!(m.op, Op::Matches | Op::NotMatches) {
        // Patterns come from clients: bound the compiled size so one filter cannot take the server's memory.
        let regex = regex::RegexBuilder::new(raw)
            .size_limit(1 << 20)
            .build()
            .map_err(|err| format!("Failed to compile regular expression {raw:?}: {err}"))?;
        m.regex = Some(regex);
    }
    Ok(())
}

/// The type a selector ends at; lists of objects are stepped through, since a selector into one matches any element.
fn resolve<'a>(root: &'a Field, selector: &Selector) -> Result<&'a Field, String> {
    let invalid = |len: usize| format!("Selector {:?} is not valid", Selector(selector.0[..len].to_vec()).to_string());
    if selector.0.is_empty() {
        return Err(invalid(0));
    }
    let mut field = root;
    for (idx, part) in selector.0.iter().enumerate() {
        if let Field::List(inner) = field {
            field = inner;
        }
        field = match field {
            Obj(fields) => {
                fields.iter().find(|(name, _)| name == part).map(|(_, f)| f).ok_or_else(|| invalid(idx + 1))?
            }
            Field::Map(values) => values,
            Any => return Ok(&Any),
            _ => return Err(invalid(idx + 1)),
        };
    }
    Ok(field)
}

/// The operators each type supports (the "Supported Operations" of Consul's filtering tables, plus `is empty` on strings and `is nil` on containers, which newer go-bexpr allows).
fn allowed(field: &Field, op: Op) -> bool {
    use Op::*;
    match field {
        Str => !matches!(op, IsNil | IsNotNil),
        Int | Bool => matches!(op, Equal | NotEqual),
        StrList | Field::Map(_) => matches!(op, In | NotIn | IsEmpty | IsNotEmpty | IsNil | IsNotNil),
        Field::List(_) => matches!(op, IsEmpty | IsNotEmpty | IsNil | IsNotNil),
        Obj(_) => matches!(op, IsNil | IsNotNil),
        Any => true,
    }
}
