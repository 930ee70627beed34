//! A recursive-descent parser for go-bexpr's grammar, written to accept exactly what go-bexpr's PEG accepts and to fail the same way.
//!
//! The grammar, precedence lowest first:
//!
//! ```text
//! input    = ws? or ws? EOF
//! or       = and (ws "or" ws and)* (ws "or" ws collection)? | collection
//! collection = ("any" | "all") ws selector ws "as" ws binding ws? "{" ws? or ws? "}"
//! binding  = ident ws? "," ws? ident | ident ws? "," ws? "_" | "_" ws? "," ws? ident | ident
//! and      = not (ws "and" ws not)*
//! not      = "not" ws not | group
//! group    = "(" ws? or ws? ")" | match
//! match    = selector op value | selector unary | value in-op selector
//! op       = ws? "==" ws? | ws? "!=" ws? | ws "contains" ws | ws "not" ws "contains" ws | ws "matches" ws | ws "not" ws "matches" ws
//! unary    = ws "is" ws "empty" | ws "is" ws "not" ws "empty" | ws "is" ws "nil" | ws "is" ws "not" ws "nil"
//! in-op    = ws "in" ws | ws "not" ws "in" ws
//! selector = ident ("." ident | "." digits | "[" ws? string ws? "]")* | '"' ("/" pointer-chars+)* '"'
//! value    = string | selector | number          (a bare selector as a value stands for its own text)
//! ident    = [a-zA-Z] [a-zA-Z0-9_/]*
//! number   = "-"? ("0" | [1-9][0-9]*) ("." [0-9]+)?   followed by whitespace, ")" or the end
//! string   = '"' chars with Go escapes '"' | '`' raw chars '`'
//! ```
//!
//! A collection expression stands where a whole `or` does (the whole input, inside `( )` or `{ }`, after the last `or` of a chain), so elsewhere it joins `and`/`or`/`not` only in parentheses, as in go-bexpr: `(any Checks as c { c.Status == critical }) and Port == 80`.
//! It is tried only after the `or` alternative fails, so `any` and `all` stay usable as field names (`any == x`).
//!
//! Keywords need whitespace around them (`not(`, `a==b and(` do not parse), as in go-bexpr, because its PEG spells them that way.
//! Like a PEG, the parser backtracks, and a failure reports the farthest position any alternative reached with everything that could have come there, which is what pigeon (go-bexpr's generator) reports.
//! Errors go-bexpr raises on the spot (an unterminated string, a bad number, an unclosed `(` or `[`) stop the parse at once.
//! Two deliberate differences: `\"` is accepted inside a double-quoted string (go-bexpr ends the string there and then fails), and a quoted value that looks like a JSON pointer stays the string it reads as (go-bexpr takes it for a selector and drops its leading `/`).

use std::collections::BTreeSet;
use std::fmt;

use super::ast::{Binding, Collection, Expr, Match, Op, Quantifier, Selector};

/// How deep parentheses and `not` may nest; the parser and the evaluator recurse once per level, and the request runs on a task's stack.
pub const MAX_DEPTH: usize = 32;

/// A syntax error at a position of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// 0-based byte offset.
    pub offset: usize,
    /// What went wrong, or what was expected there.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({}): {}", self.line, self.column, self.offset, self.message)
    }
}

/// Parses a filter expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser { text, pos: 0, farthest: 0, expected: BTreeSet::new(), depth: 0 };
    match parser.input() {
        Ok(expr) => Ok(expr),
        Err(Stop::Fatal(offset, message)) => Err(error_at(text, offset, message)),
        Err(Stop::NoMatch) => {
            let message = format!("no match found, expected: {}", one_of(&parser.expected));
            Err(error_at(text, parser.farthest, message))
        }
    }
}

/// Why an alternative stopped: it did not match (try the next one), or the input is wrong whatever follows.
enum Stop {
    NoMatch,
    Fatal(usize, String),
}

type Step<T> = Result<T, Stop>;

/// One element of a keyword sequence such as `ws "not" ws "in" ws`.
#[derive(Clone, Copy)]
enum Tok {
    /// Required whitespace.
    Ws,
    /// Optional whitespace.
    OptWs,
    /// A literal.
    Lit(&'static str),
}

use Tok::{Lit, OptWs, Ws};

/// The operators after a selector that take a value, in go-bexpr's order of trial.
const VALUE_OPS: [(&[Tok], Op); 6] = [
    (&[OptWs, Lit("=="), OptWs], Op::Equal),
    (&[OptWs, Lit("!="), OptWs], Op::NotEqual),
    (&[Ws, Lit("contains"), Ws], Op::In),
    (&[Ws, Lit("not"), Ws, Lit("contains"), Ws], Op::NotIn),
    (&[Ws, Lit("matches"), Ws], Op::Matches),
    (&[Ws, Lit("not"), Ws, Lit("matches"), Ws], Op::NotMatches),
];

/// The operators after a selector that take no value.
const UNARY_OPS: [(&[Tok], Op); 4] = [
    (&[Ws, Lit("is"), Ws, Lit("empty")], Op::IsEmpty),
    (&[Ws, Lit("is"), Ws, Lit("not"), Ws, Lit("empty")], Op::IsNotEmpty),
    (&[Ws, Lit("is"), Ws, Lit("nil")], Op::IsNil),
    (&[Ws, Lit("is"), Ws, Lit("not"), Ws, Lit("nil")], Op::IsNotNil),
];

/// The operators between a value and a selector.
const IN_OPS: [(&[Tok], Op); 2] = [(&[Ws, Lit("in"), Ws], Op::In), (&[Ws, Lit("not"), Ws, Lit("in"), Ws], Op::NotIn)];

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// The farthest offset an alternative failed at, and what it wanted there: the error a failed parse reports.
    farthest: usize,
    expected: BTreeSet<String>,
    /// Parentheses and `not` currently open.
    depth: usize,
}

impl Parser<'_> {
    fn input(&mut self) -> Step<Expr> {
        self.opt_ws();
        let expr = self.or()?;
        self.opt_ws();
        if self.pos < self.text.len() {
            self.expect("end of input");
            return Err(Stop::NoMatch);
        }
        Ok(expr)
    }

    fn or(&mut self) -> Step<Expr> {
        let start = self.pos;
        match self.chain("or", Self::and, Some(Self::collection), Expr::Or) {
            Err(Stop::NoMatch) => {
                self.pos = start;
                self.collection()
            }
            res => res,
        }
    }

    /// `any|all <selector> as <binding> { <or> }`; consumes nothing when it does not match.
    fn collection(&mut self) -> Step<Expr> {
        let start = self.pos;
        let res = self.nested(start, |p| {
            let quantifier = if p.seq(&[Lit("any"), Ws]) {
                Quantifier::Any
            } else if p.seq(&[Lit("all"), Ws]) {
                Quantifier::All
            } else {
                return Err(Stop::NoMatch);
            };
            let selector = p.selector()?;
            if !p.seq(&[Ws, Lit("as"), Ws]) {
                return Err(Stop::NoMatch);
            }
            let binding = p.binding().ok_or(Stop::NoMatch)?;
            if !p.seq(&[OptWs, Lit("{"), OptWs]) {
                return Err(Stop::NoMatch);
            }
            let inner = p.or()?;
            if !p.seq(&[OptWs, Lit("}")]) {
                return Err(Stop::NoMatch);
            }
            Ok(Expr::Collection(Collection { quantifier, selector, binding, inner: Box::new(inner), shape: None }))
        });
        if matches!(res, Err(Stop::NoMatch)) {
            self.pos = start;
        }
        res
    }

    /// The names after `as`: `x`, `i, v`, `i, _` or `_, v`, trying go-bexpr's alternatives in its order.
    fn binding(&mut self) -> Option<Binding> {
        let start = self.pos;
        let first = self.binding_name()?;
        let after_first = self.pos;
        if self.seq(&[OptWs, Lit(","), OptWs]) {
            match (first.clone(), self.binding_name()) {
                (Some(index), Some(Some(value))) => return Some(Binding::IndexAndValue(index, value)),
                (Some(index), Some(None)) => return Some(Binding::Index(index)),
                (None, Some(Some(value))) => return Some(Binding::Value(value)),
                _ => {}
            }
        }
        self.pos = after_first;
        match first {
            Some(name) => Some(Binding::Default(name)),
            None => {
                self.pos = start;
                None
            }
        }
    }

    /// An identifier (`Some(name)`) or the placeholder `_` (`None`); `None` outside when neither is here.
    fn binding_name(&mut self) -> Option<Option<String>> {
        if let Some(name) = self.identifier() {
            return Some(Some(name));
        }
        if self.lit("_") {
            return Some(None);
        }
        self.expect("identifier");
        None
    }

    fn and(&mut self) -> Step<Expr> {
        self.chain("and", Self::not, None, Expr::And)
    }

    /// `item (ws keyword ws item)*`, one node for the whole run; a keyword without an item after it is left for the caller, as the PEG's fallback alternative does.
    /// `last`, when given, may stand after the final keyword instead of an item: go-bexpr's `or` takes a whole `or` expression on its right, so `a == 1 or any ..` parses where `any .. or a == 1` does not.
    fn chain(
        &mut self,
        keyword: &'static str,
        item: fn(&mut Self) -> Step<Expr>,
        last: Option<fn(&mut Self) -> Step<Expr>>,
        node: fn(Vec<Expr>) -> Expr,
    ) -> Step<Expr> {
        let mut items = vec![item(self)?];
        loop {
            let before = self.pos;
            if !self.seq(&[Ws, Lit(keyword), Ws]) {
                break;
            }
            let after_keyword = self.pos;
            let res = match item(self) {
                Err(Stop::NoMatch) if let Some(last) = last => {
                    self.pos = after_keyword;
                    last(self).map(|expr| (expr, true))
                }
                res => res.map(|expr| (expr, false)),
            };
            match res {
                Ok((expr, is_last)) => {
                    items.push(expr);
                    if is_last {
                        break;
                    }
                }
                Err(Stop::NoMatch) => {
                    self.pos = before;
                    break;
                }
                Err(fatal) => return Err(fatal),
            }
        }
        Ok(if items.len() == 1 { items.remove(0) } else { node(items) })
    }

    fn not(&mut self) -> Step<Expr> {
        let start = self.pos;
        if self.seq(&[Lit("not"), Ws]) {
            match self.nested(start, Self::not) {
                Ok(inner) => return Ok(Expr::Not(Box::new(inner))),
                // `not` may also be a selector: `not == x` compares a field named "not".
                Err(Stop::NoMatch) => self.pos = start,
                Err(fatal) => return Err(fatal),
            }
        }
        self.group()
    }

    fn group(&mut self) -> Step<Expr> {
        let start = self.pos;
        if self.lit("(") {
            let inner = self.nested(start, |p| {
                p.opt_ws();
                p.or()
            });
            match inner {
                Ok(expr) => {
                    self.opt_ws();
                    if self.lit(")") {
                        return Ok(expr);
                    }
                    return Err(Stop::Fatal(self.pos, "Unmatched parentheses".into()));
                }
                Err(Stop::NoMatch) => self.pos = start,
                Err(fatal) => return Err(fatal),
            }
        }
        self.matching()
    }

    /// Runs `f` one nesting level deeper, refusing to go past `MAX_DEPTH`.
    fn nested<T>(&mut self, at: usize, f: impl FnOnce(&mut Self) -> Step<T>) -> Step<T> {
        if self.depth >= MAX_DEPTH {
            return Err(Stop::Fatal(at, format!("expression nested too deeply (at most {MAX_DEPTH} levels)")));
        }
        self.depth += 1;
        let res = f(self);
        self.depth -= 1;
        res
    }

    fn matching(&mut self) -> Step<Expr> {
        let start = self.pos;
        match self.selector() {
            Ok(selector) => {
                let after = self.pos;
                if let Some(op) = self.first_of(&VALUE_OPS) {
                    match self.value() {
                        Ok(value) => return Ok(match_expr(selector, op, Some(value))),
                        Err(Stop::NoMatch) => self.pos = after,
                        Err(fatal) => return Err(fatal),
                    }
                }
                if let Some(op) = self.first_of(&UNARY_OPS) {
                    return Ok(match_expr(selector, op, None));
                }
                self.pos = start;
            }
            Err(Stop::NoMatch) => self.pos = start,
            Err(fatal) => return Err(fatal),
        }
        let value = self.value()?;
        let Some(op) = self.first_of(&IN_OPS) else {
            self.pos = start;
            return Err(Stop::NoMatch);
        };
        let at = self.pos;
        match self.selector() {
            Ok(selector) => Ok(match_expr(selector, op, Some(value))),
            Err(Stop::NoMatch) => Err(Stop::Fatal(at, "Invalid selector".into())),
            Err(fatal) => Err(fatal),
        }
    }

    fn selector(&mut self) -> Step<Selector> {
        if self.peek() == Some('"') {
            return self.json_pointer();
        }
        let Some(first) = self.identifier() else {
            self.expect("selector");
            return Err(Stop::NoMatch);
        };
        let mut path = vec![first];
        loop {
            let before = self.pos;
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    match self.identifier().or_else(|| self.digits()) {
                        Some(part) => path.push(part),
                        None => {
                            self.pos = before;
                            break;
                        }
                    }
                }
                Some('[') => path.push(self.index()?),
                _ => break,
            }
        }
        Ok(Selector(path))
    }

    /// `["key"]`: a map key that is not an identifier.
    fn index(&mut self) -> Step<String> {
        self.pos += 1;
        self.skip_ws();
        if !matches!(self.peek(), Some('"' | '`')) {
            return Err(Stop::Fatal(self.pos, "Invalid index".into()));
        }
        let key = self.string()?;
        self.skip_ws();
        if self.peek() != Some(']') {
            return Err(Stop::Fatal(self.pos, "Unclosed index expression".into()));
        }
        self.pos += 1;
        Ok(key)
    }

    /// `"/Service/Meta/env"`: a selector written as a JSON pointer (`~1` is `/`, `~0` is `~`).
    fn json_pointer(&mut self) -> Step<Selector> {
        let start = self.pos;
        self.pos += 1;
        let mut path = Vec::new();
        while self.peek() == Some('/') {
            self.pos += 1;
            let rest = &self.text[self.pos..];
            let len = rest.find(|c: char| !(c.is_alphanumeric() || "-_.~:|".contains(c))).unwrap_or(rest.len());
            if len == 0 {
                self.pos = start;
                return Err(Stop::NoMatch);
            }
            path.push(rest[..len].replace("~1", "/").replace("~0", "~"));
            self.pos += len;
        }
        if self.peek() != Some('"') {
            self.pos = start;
            return Err(Stop::NoMatch);
        }
        self.pos += 1;
        Ok(Selector(path))
    }

    fn value(&mut self) -> Step<String> {
        match self.peek() {
            Some('"' | '`') => self.string(),
            Some(c) if c.is_ascii_alphabetic() => Ok(self.selector()?.joined()),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            _ => {
                self.expect("value");
                Err(Stop::NoMatch)
            }
        }
    }

    fn number(&mut self) -> Step<String> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let digit_at = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
        let mut end = start + usize::from(bytes[start] == b'-');
        match bytes.get(end) {
            Some(b'0') => end += 1,
            Some(b'1'..=b'9') => {
                while digit_at(end) {
                    end += 1;
                }
            }
            _ => {
                self.expect("number");
                return Err(Stop::NoMatch);
            }
        }
        if bytes.get(end) == Some(&b'.') && digit_at(end + 1) {
            end += 1;
            while digit_at(end) {
                end += 1;
            }
        }
        // A number must end at whitespace, `)` or the end: `80x` is not 80 followed by something.
        if !matches!(bytes.get(end), None | Some(b' ' | b'\t' | b'\r' | b'\n' | b')')) {
            return Err(Stop::Fatal(start, "Invalid number literal".into()));
        }
        self.pos = end;
        Ok(self.text[start..end].to_owned())
    }

    /// A double-quoted string with Go's escapes, or a backtick raw string.
    fn string(&mut self) -> Step<String> {
        let start = self.pos;
        let quote = self.text.as_bytes()[start];
        let body = &self.text[start + 1..];
        let unterminated = || Stop::Fatal(start, "Unterminated string literal".into());
        if quote == b'`' {
            let len = body.find('`').ok_or_else(unterminated)?;
            self.pos = start + 1 + len + 1;
            return Ok(body[..len].to_owned());
        }
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return Err(unterminated());
        }
        let value = super::unquote::unescape(&body[..i]).map_err(|(at, why)| Stop::Fatal(start + 1 + at, why))?;
        self.pos = start + 1 + i + 1;
        Ok(value)
    }

    fn identifier(&mut self) -> Option<String> {
        let rest = &self.text[self.pos..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '/')).unwrap_or(rest.len());
        self.pos += len;
        Some(rest[..len].to_owned())
    }

    fn digits(&mut self) -> Option<String> {
        let rest = &self.text[self.pos..];
        let len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        self.pos += len;
        (len > 0).then(|| rest[..len].to_owned())
    }

    /// The first operator whose keyword sequence matches here.
    fn first_of(&mut self, ops: &[(&[Tok], Op)]) -> Option<Op> {
        ops.iter().find(|(toks, _)| self.seq(toks)).map(|(_, op)| *op)
    }

    /// Matches the whole sequence or consumes nothing.
    fn seq(&mut self, toks: &[Tok]) -> bool {
        let start = self.pos;
        let matched = toks.iter().all(|tok| match tok {
            Ws => self.ws(),
            OptWs => {
                self.opt_ws();
                true
            }
            Lit(text) => self.lit(text),
        });
        if !matched {
            self.pos = start;
        }
        matched
    }

    fn lit(&mut self, text: &'static str) -> bool {
        if self.text[self.pos..].starts_with(text) {
            self.pos += text.len();
            return true;
        }
        self.expect(&format!("{text:?}"));
        false
    }

    fn ws(&mut self) -> bool {
        let start = self.pos;
        self.opt_ws();
        self.pos > start
    }

    /// Optional whitespace; like pigeon, it still counts as expected where none was found.
    fn opt_ws(&mut self) {
        if self.skip_ws() == 0 {
            self.expect("whitespace");
        }
    }

    fn skip_ws(&mut self) -> usize {
        let rest = &self.text[self.pos..];
        let len = rest.find(|c: char| !matches!(c, ' ' | '\t' | '\r' | '\n')).unwrap_or(rest.len());
        self.pos += len;
        len
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// Records that `what` would have matched at the current position.
    fn expect(&mut self, what: &str) {
        if self.pos > self.farthest {
            self.farthest = self.pos;
            self.expected.clear();
        }
        if self.pos == self.farthest {
            self.expected.insert(what.to_owned());
        }
    }
}

fn match_expr(selector: Selector, op: Op, value: Option<String>) -> Expr {
    Expr::Match(Match { selector, op, value, regex: None })
}

/// `"a", "b" or c`, as pigeon lists alternatives.
fn one_of(expected: &BTreeSet<String>) -> String {
    let items: Vec<&str> = expected.iter().map(String::as_str).collect();
    match items.split_last() {
        None => "nothing".into(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn error_at(text: &str, offset: usize, message: String) -> ParseError {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    ParseError { line, column, offset, message }
}
