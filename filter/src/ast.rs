//! The syntax tree of a filter expression, and a compact rendering of it that the parser tests compare against.

use std::fmt;

use super::schema::Field;

/// A boolean expression over one result element.
#[derive(Debug)]
pub enum Expr {
    /// True when any operand is; `a or b or c` is one node, so long chains do not deepen the tree.
    Or(Vec<Expr>),
    /// True when every operand is.
    And(Vec<Expr>),
    /// The negation of its operand.
    Not(Box<Expr>),
    /// A comparison of a selected value with a literal.
    Match(Match),
    /// `any`/`all` of a list's elements or a map's entries satisfy an inner expression.
    Collection(Collection),
}

/// `any <selector> as <binding> { <expr> }` or `all ...`: go-bexpr's collection expression.
#[derive(Debug)]
pub struct Collection {
    /// Whether one element or every element must satisfy `inner`.
    pub quantifier: Quantifier,
    /// The list or map iterated over.
    pub selector: Selector,
    /// The names the elements are known by inside the braces.
    pub binding: Binding,
    /// The expression tried on each element.
    pub inner: Box<Expr>,
    /// The type of what `selector` names; `None` until the expression is validated.
    pub shape: Option<&'static Field>,
}

/// `any` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// True when some element satisfies the inner expression; false for an empty or absent collection.
    Any,
    /// True when every element does; true for an empty or absent collection.
    All,
}

/// The names after `as`. go-bexpr gives a single name different meanings by collection: a list's
/// element, but a map's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `as x`: the element of a list, the key of a map.
    Default(String),
    /// `as i, _`: only the index of a list or the key of a map.
    Index(String),
    /// `as _, v`: only the element of a list or the value of a map.
    Value(String),
    /// `as i, v`: the index or key, and the element or value.
    IndexAndValue(String, String),
}

/// `<selector> <op> <value>`, `<value> in <selector>` or `<selector> is [not] empty|nil`.
#[derive(Debug)]
pub struct Match {
    /// The path to the value the operator looks at.
    pub selector: Selector,
    /// What to do with it.
    pub op: Op,
    /// The literal as written, unquoted: go-bexpr keeps it raw and reads it as a number or a bool only when the selected field is one.
    pub value: Option<String>,
    /// The compiled pattern of `matches`/`not matches`; `None` until the expression is validated.
    pub regex: Option<regex::Regex>,
}

/// A path through the JSON of a result element: field names, map keys and list indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(pub Vec<String>);

/// The match operators; `contains` is `In` and `not contains` is `NotIn`, as in go-bexpr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `"v" in S` or `S contains "v"`: an element of a list, a key of a map, or a substring.
    In,
    /// `not in`, `not contains`
    NotIn,
    /// `is empty`
    IsEmpty,
    /// `is not empty`
    IsNotEmpty,
    /// `matches`: a regular expression that finds a match anywhere in the string.
    Matches,
    /// `not matches`
    NotMatches,
    /// `is nil`: the value is null or absent.
    IsNil,
    /// `is not nil`
    IsNotNil,
}

impl Op {
    /// go-bexpr's answer for a map key that is not there: nothing equals, contains or matches a missing value, and a missing value is empty.
    pub fn when_absent(self) -> bool {
        matches!(self, Op::NotEqual | Op::NotIn | Op::IsEmpty | Op::NotMatches | Op::IsNil)
    }

    /// The name go-bexpr gives the operator in its messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Equal => "Equal",
            Op::NotEqual => "Not Equal",
            Op::In => "In",
            Op::NotIn => "Not In",
            Op::IsEmpty => "Is Empty",
            Op::IsNotEmpty => "Is Not Empty",
            Op::Matches => "Matches",
            Op::NotMatches => "Not Matches",
            Op::IsNil => "Is Nil",
            Op::IsNotNil => "Is Not Nil",
        }
    }

    /// The operator this one negates, if it is a negated form; `not in` is evaluated as `!(in)`.
    pub fn positive(self) -> (Op, bool) {
        match self {
            Op::NotEqual => (Op::Equal, true),
            Op::NotIn => (Op::In, true),
            Op::IsNotEmpty => (Op::IsEmpty, true),
            Op::NotMatches => (Op::Matches, true),
            Op::IsNotNil => (Op::IsNil, true),
            other => (other, false),
        }
    }
}

impl Selector {
    /// The parts joined with dots, which is what go-bexpr takes a bare selector written as a value to mean (`Meta.env == qa` compares with "qa").
    pub fn joined(&self) -> String {
        self.0.join(".")
    }
}

impl fmt::Display for Selector {
    /// As it would be written: `Meta.env`, or `Meta["a.b"]` for a key that is not an identifier.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, part) in self.0.iter().enumerate() {
            let plain = part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/');
            let index = !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
            match (idx, plain || index) {
                (0, true) => f.write_str(part)?,
                (_, true) => write!(f, ".{part}")?,
                (_, false) => write!(f, "[{part:?}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    /// A Lisp-like form, `(and (== Meta.env "qa") (not (in Tags "x")))`, so a test states the tree in one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, items: &[Expr]| {
            write!(f, "({name}")?;
            items.iter().try_for_each(|item| write!(f, " {item}"))?;
            f.write_str(")")
        };
        match self {
            Expr::Or(items) => list(f, "or", items),
            Expr::And(items) => list(f, "and", items),
            Expr::Not(inner) => write!(f, "(not {inner})"),
            Expr::Collection(c) => {
                let quantifier = match c.quantifier {
                    Quantifier::Any => "any",
                    Quantifier::All => "all",
                };
                write!(f, "({quantifier} {} as {} {})", c.selector, c.binding, c.inner)
            }
            Expr::Match(m) => {
                write!(f, "({} {}", m.op.name(), m.selector)?;
                if let Some(value) = &m.value {
                    write!(f, " {value:?}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl Binding {
    /// The name of the index (a list) or key (a map), if bound: for a map, a lone name is the key.
    pub fn index_name(&self, is_map: bool) -> Option<&str> {
        match self {
            Binding::Default(name) if is_map => Some(name),
            Binding::Index(name) | Binding::IndexAndValue(name, _) => Some(name),
            Binding::Default(_) | Binding::Value(_) => None,
        }
    }

    /// The name of the element (a list) or value (a map), if bound: for a list, a lone name is the element.
    pub fn value_name(&self, is_map: bool) -> Option<&str> {
        match self {
            Binding::Default(name) if !is_map => Some(name),
            Binding::Value(name) | Binding::IndexAndValue(_, name) => Some(name),
            Binding::Default(_) | Binding::Index(_) => None,
        }
    }
}

impl fmt::Display for Binding {
    /// As written after `as`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::Default(name) => f.write_str(name),
            Binding::Index(name) => write!(f, "{name}, _"),
            Binding::Value(name) => write!(f, "_, {name}"),
            Binding::IndexAndValue(index, value) => write!(f, "{index}, {value}"),
        }
    }
}
