//! The shapes filters are checked against: one per kind of result element, with the field names and types `output` renders.
//!
//! Consul validates a filter against the Go type of the result (go-bexpr's field configurations), so a misspelled field is a 400, not an empty answer.
//! Here the type is the JSON shape: these tables must list what `output.rs` renders, and the tests compare them with its output.

use super::ast::{Binding, Collection, Expr, Match, Op, Selector};
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

/// What a binding rule's selector sees of a login (Consul's `SelectableFields` of a verified identity): `value.<name>` for each
/// `ClaimMappings` name and `list.<name>` for each `ListClaimMappings` name.
pub const BINDING_IDENTITY: Field = Obj(&[("value", STR_MAP), ("list", Field::Map(&StrList))]);

/// Checks every match of `expr` against `root`: its selector names a field, its operator applies to that field's type, its literal reads as that type, and its pattern compiles.
/// Collection expressions must iterate over a list or a map, and the names they bind are in scope inside their braces.
/// Compiles the patterns and records each collection's type on the way, so evaluation never fails.
pub(crate) fn validate(expr: &mut Expr, root: &'static Field) -> Result<(), String> {
    validate_in(expr, root, &mut Vec::new())
}

/// A name bound by an enclosing collection expression.
struct Bound {
    /// The name as written after `as`.
    name: String,
    /// The type of what it stands for.
    field: &'static Field,
    /// A key or an index: a value of its own, with no fields to select into.
    scalar: bool,
}

fn validate_in(expr: &mut Expr, root: &'static Field, scope: &mut Vec<Bound>) -> Result<(), String> {
    match expr {
        Expr::Or(items) | Expr::And(items) => items.iter_mut().try_for_each(|item| validate_in(item, root, scope)),
        Expr::Not(inner) => validate_in(inner, root, scope),
        Expr::Match(m) => validate_match(m, root, scope),
        Expr::Collection(c) => validate_collection(c, root, scope),
    }
}

fn validate_collection(c: &mut Collection, root: &'static Field, scope: &mut Vec<Bound>) -> Result<(), String> {
    let (field, through_list) = resolve(root, &c.selector, scope)?;
    // A selector through a list means "any element's" in a match, which names no one collection.
    let (key, element) = match field {
        _ if through_list => return Err(format!("{} is not a list or a map", c.selector)),
        StrList => (&Int, &Str),
        Field::List(inner) => (&Int, *inner),
        Field::Map(values) => (&Str, *values),
        Any => (&Any, &Any),
        _ => return Err(format!("{} is not a list or a map", c.selector)),
    };
    if let Binding::IndexAndValue(index, value) = &c.binding
        && index == value
    {
        return Err(format!("{index:?} cannot be used as a placeholder for both the index and the value"));
    }
    // For pass-through JSON the kind is known only per document; either reading binds the same names.
    let is_map = matches!(field, Field::Map(_));
    let outer = scope.len();
    if let Some(name) = c.binding.index_name(is_map) {
        scope.push(Bound { name: name.to_owned(), field: key, scalar: true });
    }
    if let Some(name) = c.binding.value_name(is_map) {
        scope.push(Bound { name: name.to_owned(), field: element, scalar: false });
    }
    let res = validate_in(&mut c.inner, root, scope);
    scope.truncate(outer);
    c.shape = Some(field);
    res
}

fn validate_match(m: &mut Match, root: &'static Field, scope: &[Bound]) -> Result<(), String> {
    let (field, _) = resolve(root, &m.selector, scope)?;
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

/// The type a selector ends at, and whether it stepped through a list of objects on the way (a
/// selector into one matches any element). A selector that starts with a name in `scope` starts
/// from what the name is bound to; the innermost binding of a name wins.
fn resolve(root: &'static Field, selector: &Selector, scope: &[Bound]) -> Result<(&'static Field, bool), String> {
    let invalid = |len: usize| format!("Selector {:?} is not valid", Selector(selector.0[..len].to_vec()).to_string());
    let Some(first) = selector.0.first() else { return Err(invalid(0)) };
    let (mut field, skip) = match scope.iter().rev().find(|bound| bound.name == *first) {
        Some(bound) if bound.scalar && selector.0.len() > 1 => {
            let kind = if matches!(bound.field, Int) { "an index" } else { "a key" };
            return Err(format!("Selector {:?} is not valid: {first} is {kind}", selector.to_string()));
        }
        Some(bound) => (bound.field, 1),
        None => (root, 0),
    };
    let mut through_list = false;
    for (idx, part) in selector.0.iter().enumerate().skip(skip) {
        if let Field::List(inner) = field {
            field = inner;
            through_list = true;
        }
        field = match field {
            Obj(fields) => {
                fields.iter().find(|(name, _)| name == part).map(|(_, f)| f).ok_or_else(|| invalid(idx + 1))?
            }
            Field::Map(values) => values,
            Any => return Ok((&Any, through_list)),
            _ => return Err(invalid(idx + 1)),
        };
    }
    Ok((field, through_list))
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
