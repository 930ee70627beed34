//! HCL and JSON rules text to one small tree, so both forms are validated by the same code.
//!
//! Consul decodes rules with HCL **v1** (`github.com/hashicorp/hcl` v1.0.1-vault-7), which is far
//! looser than HCL2: items need no separator (several blocks on one line), may be separated by
//! commas, a `}` may close a block on the line of its last attribute, labels may be bare words, and
//! `key = { "a" = { ... } }` means the same as `key "a" { ... }`. Rules written for Consul must
//! parse here, so the HCL side is a small hand-written lexer and recursive-descent parser for the
//! part of HCL v1 that rules use, after `hcl/scanner/scanner.go`, `hcl/parser/parser.go` and
//! `hcl/strconv/quote.go` of that version.
//!
//! Grammar (HCL v1, as its parser reads it):
//!
//! ```text
//! body  = { item [","] }                      (top level ends at EOF, a block at "}")
//! item  = key "=" value                       (one key only)
//!       | key { key } "{" body "}"           (a block; every key after the first is a label)
//! key   = word | string
//! value = string | heredoc | number | bool | "{" body "}" | "[" [ value { "," value } [","] ] "]"
//! ```
//!
//! Deliberate differences from HCL v1:
//! - A bare word as a value (`policy = read`) is kept as a non-string value, so the error is
//!   "expected a string" on the attribute's rule instead of a bare syntax error (both refuse it).
//! - Numbers are kept as non-strings too (HCL v1 would hand `policy = 3` on as the text "3",
//!   which is no level either), for the same clearer "expected a string".
//! - A heredoc may end at the end of the text without a final newline (HCL v1 wants one).
//! - Repeated `=` attributes are compared by decoded name and quoting, not raw text, so the
//!   far-fetched `"a" = ...` plus `"\x61" = ...` is refused here and not by HCL v1.
//! - Octal and `\x` escapes that spell invalid UTF-8 are an error (Go would keep the raw bytes;
//!   a Rust `String` cannot).
//! - Nesting (objects, lists and block labels together) deeper than [`MAX_NESTING`] is refused:
//!   Consul has no such limit, but real rules never nest more than three levels.

use std::collections::HashSet;

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

/// Parses HCL (v1) text into top-level entries.
pub(super) fn hcl(text: &str) -> Result<Vec<Entry>> {
    // HCL v1 turns CRLF into LF before scanning; doing the same keeps `\r` out of heredoc values
    // and line counting simple. Lone `\r`s stay and are whitespace, as there.
    let text = text.replace("\r\n", "\n");
    Parser::new(&text).body(None)
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: letters, digits, `_`, `-`, `.` (not starting with a digit).
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// A heredoc's value, as HCL v1 computes it.
    Heredoc(String),
    /// `true` / `false`: only kept to say "got a bool".
    Bool,
    /// Only kept to say "got a number".
    Number,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Comma,
    Assign,
    Eof,
}

impl Tok {
    /// The token as an error message names it.
    fn describe(&self) -> String {
        match self {
            Tok::Word(word) => format!("the word `{}`", clip(word)),
            Tok::Str(s) => format!("the string {:?}", clip(s)),
            Tok::Heredoc(_) => "a heredoc".to_owned(),
            Tok::Bool => "a bool".to_owned(),
            Tok::Number => "a number".to_owned(),
            Tok::LBrace => "'{'".to_owned(),
            Tok::RBrace => "'}'".to_owned(),
            Tok::LBrack => "'['".to_owned(),
            Tok::RBrack => "']'".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Assign => "'='".to_owned(),
            Tok::Eof => "the end of the rules".to_owned(),
        }
    }
}

/// At most 40 characters of `s`, so an error about a huge token stays readable.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_owned(),
    }
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    /// 1-based line the token starts on.
    line: usize,
}

/// A lexing failure: the 1-based line and what is wrong (the parser adds the rule it was in).
type LexError = (usize, String);

/// HCL v1's identifier letters: `unicode.IsLetter` past ASCII.
fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!c.is_ascii() && c.is_alphabetic())
}

/// HCL v1's identifier digits: `unicode.IsDigit` past ASCII.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// Go's `[[:space:]]`, which HCL v1 allows around a heredoc's closing anchor.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// One pass over the text; every byte is looked at a bounded number of times (linear time).
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0, line: 1 }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_byte_at(&self, offset: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + offset).copied()
    }

    /// Consumes one char, counting lines.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn next_token(&mut self) -> std::result::Result<Token, LexError> {
        self.skip_blank()?;
        let line = self.line;
        let Some(c) = self.peek_char() else {
            return Ok(Token { tok: Tok::Eof, line });
        };
        let tok = match c {
            '{' | '}' | '[' | ']' | ',' | '=' => {
                self.pos += 1;
                match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    '[' => Tok::LBrack,
                    ']' => Tok::RBrack,
                    ',' => Tok::Comma,
                    _ => Tok::Assign,
                }
            }
            '"' => Tok::Str(self.string()?),
            '<' => Tok::Heredoc(self.heredoc()?),
            '0'..='9' => {
                self.number();
                Tok::Number
            }
            '-' if self.peek_byte_at(1).is_some_and(|b| b.is_ascii_digit()) => {
                self.pos += 1;
                self.number();
                Tok::Number
            }
            c if is_letter(c) => {
                let start = self.pos;
                while self.peek_char().is_some_and(|c| is_letter(c) || is_digit(c) || c == '-' || c == '.') {
                    self.bump();
                }
                match &self.src[start..self.pos] {
                    "true" | "false" => Tok::Bool,
                    word => Tok::Word(word.to_owned()),
                }
            }
            c => return Err((line, format!("unexpected character {c:?}"))),
        };
        Ok(Token { tok, line })
    }

    /// Skips whitespace and the three comment forms (`#`, `//`, `/* */`, the last not nested).
    fn skip_blank(&mut self) -> std::result::Result<(), LexError> {
        loop {
            match self.peek_byte_at(0) {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => self.skip_to_newline(),
                Some(b'/') => match self.peek_byte_at(1) {
                    Some(b'/') => self.skip_to_newline(),
                    Some(b'*') => {
                        let line = self.line;
                        self.pos += 2;
                        let Some(end) = self.src[self.pos..].find("*/") else {
                            return Err((line, "unterminated /* comment".to_owned()));
                        };
                        self.line += self.src[self.pos..self.pos + end].bytes().filter(|&b| b == b'\n').count();
                        self.pos += end + 2;
                    }
                    _ => return Err((self.line, "unexpected '/' (comments start with // or /*)".to_owned())),
                },
                _ => return Ok(()),
            }
        }
    }

    /// Leaves the newline itself for `skip_blank`, which counts it.
    fn skip_to_newline(&mut self) {
        self.pos = self.src[self.pos..].find('\n').map_or(self.src.len(), |at| self.pos + at);
    }

    /// Only the extent matters (numbers are a type error), so this is looser than HCL v1's.
    fn number(&mut self) {
        let bytes = self.src.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            let sign_of_exponent =
                (b == b'+' || b == b'-') && self.pos > 0 && matches!(bytes[self.pos - 1], b'e' | b'E');
            if b.is_ascii_alphanumeric() || b == b'.' || sign_of_exponent {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// A double-quoted string, unescaped like HCL v1's `Unquote`: Go's escapes, no raw newline,
    /// and `${ ... }` copied verbatim (quotes and newlines inside it do not end the string).
    fn string(&mut self) -> std::result::Result<String, LexError> {
        let line = self.line;
        let unterminated = || (line, "unterminated string (a quoted string ends on the line it starts)".to_owned());
        self.pos += 1;
        // Bytes, not chars: octal and `\x` escapes make single bytes that may pair up into UTF-8.
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek_char() else { return Err(unterminated()) };
            match c {
                '"' => {
                    self.pos += 1;
                    break;
                }
                '\n' => return Err(unterminated()),
                '\\' => {
                    self.pos += 1;
                    self.escape(&mut out, line)?;
                }
                '$' if self.peek_byte_at(1) == Some(b'{') => {
                    let start = self.pos;
                    self.pos += 2;
                    let mut depth = 1usize;
                    while depth > 0 {
                        match self.bump() {
                            None => return Err(unterminated()),
                            Some('{') => depth += 1,
                            Some('}') => depth -= 1,
                            Some(_) => {}
                        }
                    }
                    out.extend_from_slice(&self.src.as_bytes()[start..self.pos]);
                }
                c => {
                    self.pos += c.len_utf8();
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(out).map_err(|_| (line, "string escapes spell invalid UTF-8".to_owned()))
    }

    /// One escape after `\`: Go's set (`\a \b \f \n \r \t \v \\ \"`, octal `\NNN`, `\xHH`,
    /// `\uHHHH`, `\UHHHHHHHH`), as HCL v1's scanner and `Unquote` accept it.
    fn escape(&mut self, out: &mut Vec<u8>, line: usize) -> std::result::Result<(), LexError> {
        let bad = |what: &str| (line, format!("invalid escape {what} in string"));
        let Some(c) = self.peek_char() else {
            return Err((line, "unterminated string (a quoted string ends on the line it starts)".to_owned()));
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            return Ok(());
        }
        // Octal takes exactly three digits (this one and two more), the others a fixed count of hex.
        let digits = match c {
            '0'..='7' | 'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => return Err(bad(&format!("\\{c}"))),
        };
        let escape_start = self.pos - 1;
        let text = self.src.get(self.pos..self.pos + digits).filter(|text| text.bytes().all(|b| b.is_ascii_hexdigit()));
        let value = match (text, c) {
            (Some(text), '0'..='7') => u32::from_str_radix(&format!("{c}{text}"), 8).ok(),
            (Some(text), _) => u32::from_str_radix(text, 16).ok(),
            (None, _) => None,
        };
        let Some(value) = value else {
            let mut end = (self.pos + digits).min(self.src.len());
            while !self.src.is_char_boundary(end) {
                end += 1;
            }
            return Err(bad(&format!("\\{}", &self.src[escape_start..end])));
        };
        self.pos += digits;
        match c {
            'u' | 'U' => {
                // Go's `utf8.EncodeRune` writes U+FFFD for surrogates; only past U+10FFFF is an error.
                let Some(c) = (value <= 0x10_ffff).then(|| char::from_u32(value).unwrap_or('\u{fffd}')) else {
                    return Err(bad(&format!("\\{}", &self.src[escape_start..self.pos])));
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => {
                // A single byte, as in Go; `\xc3\xa9` pairs up into UTF-8 "é", a lone `\xff` is refused later.
                let Ok(byte) = u8::try_from(value) else {
                    return Err(bad(&format!("\\{}", &self.src[escape_start..self.pos])));
                };
                out.push(byte);
            }
        }
        Ok(())
    }

    /// `<<ANCHOR` or `<<-ANCHOR`, a newline, then lines up to one holding only the anchor
    /// (spaces around it allowed). The value is computed as HCL v1's `unindentHeredoc` does.
    fn heredoc(&mut self) -> std::result::Result<String, LexError> {
        let line = self.line;
        if self.peek_byte_at(1) != Some(b'<') {
            return Err((line, "unexpected '<' (a heredoc starts with <<)".to_owned()));
        }
        self.pos += 2;
        let indented = self.peek_byte_at(0) == Some(b'-');
        if indented {
            self.pos += 1;
        }
        let anchor_start = self.pos;
        while self.peek_char().is_some_and(|c| is_letter(c) || is_digit(c)) {
            self.bump();
        }
        let anchor = &self.src[anchor_start..self.pos];
        match self.peek_byte_at(0) {
            _ if anchor.is_empty() => return Err((line, "heredoc without an anchor name after <<".to_owned())),
            Some(b'\n') => {
                self.bump();
            }
            None => return Err((line, format!("unterminated heredoc (no closing line {anchor})"))),
            Some(_) => return Err((line, "invalid characters after the heredoc anchor".to_owned())),
        }
        let body_start = self.pos;
        loop {
            let line_start = self.pos;
            let line_end = self.src[line_start..].find('\n').map_or(self.src.len(), |at| line_start + at);
            let text = &self.src[line_start..line_end];
            let rest = text.trim_start_matches(is_go_space);
            if rest.trim_end_matches('\r') == anchor {
                let indent = &text[..text.len() - rest.len()];
                let body = &self.src[body_start..line_start];
                self.pos = line_end;
                return Ok(heredoc_value(body, indent, indented));
            }
            if line_end == self.src.len() {
                return Err((line, format!("unterminated heredoc (no closing line {anchor})")));
            }
            self.pos = line_end;
            self.bump();
        }
    }
}

/// HCL v1's `unindentHeredoc`: `body` is every line before the closing one (each with its `\n`)
/// and `indent` the whitespace before the closing anchor. `<<` keeps both (so the value ends in a
/// newline, and Consul rejects `policy = <<EOF` levels: so do we). `<<-` strips `indent` from
/// every line when all lines have it, else keeps the body with trailing blanks trimmed.
fn heredoc_value(body: &str, indent: &str, indented: bool) -> String {
    if !indented {
        return format!("{body}{indent}");
    }
    let mut lines: Vec<&str> = body.split_terminator('\n').collect();
    if body.is_empty() {
        lines.clear();
    }
    if lines.iter().all(|line| line.starts_with(indent)) {
        let mut out = String::with_capacity(body.len());
        for line in lines {
            out.push_str(&line[indent.len()..]);
            out.push('\n');
        }
        return out;
    }
    // Go slices one byte short of the anchor here, so the indent loses its last character.
    let cut = &indent[..indent.len().saturating_sub(1)];
    format!("{body}{cut}").trim_end_matches([' ', '\t']).to_owned()
}

// ---------------------------------------------------------------------------------------------
// Parser

/// An open `{` (or `[`), for the error when the text ends before it is closed.
struct Opening {
    line: usize,
    what: String,
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    /// Keys from the top level down to the object being parsed, to name the rule in errors.
    path: Vec<String>,
    /// Nesting of the tree being built (objects, lists, block labels), bounded by [`MAX_NESTING`]
    /// so neither this recursion nor dropping the tree can exhaust the stack.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser { lexer: Lexer::new(text), peeked: None, path: Vec::new(), depth: 0 }
    }

    /// The rule the parser is inside: `key_prefix "lb/"` in a block, `key` in `key = {`, none at the top.
    fn resource(&self) -> Option<String> {
        let word = self.path.first()?.to_ascii_lowercase();
        Some(match self.path.get(1) {
            Some(label) => format!("{word} {label:?}"),
            None => word,
        })
    }

    fn error(&self, line: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(Some(line), self.resource(), message)
    }

    fn next(&mut self) -> Result<Token> {
        if let Some(token) = self.peeked.take() {
            return Ok(token);
        }
        self.lexer.next_token().map_err(|(line, message)| self.error(line, message))
    }

    fn peek(&mut self) -> Result<&Token> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.next()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn enter(&mut self, levels: usize, line: usize) -> Result<()> {
        self.depth += levels;
        if self.depth > MAX_NESTING {
            return Err(self.error(line, format!("nesting deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    /// Items up to the end of the text (`open` is `None`) or up to the `}` closing `open`.
    fn body(&mut self, open: Option<&Opening>) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        // Names given with `=` in this body: HCL v1 (as Consul calls it) refuses repeating one.
        let mut assigned = HashSet::new();
        loop {
            let token = self.next()?;
            let key = match token.tok {
                Tok::Eof => match open {
                    None => return Ok(entries),
                    Some(open) => return Err(unclosed(open, '}')),
                },
                Tok::RBrace if open.is_some() => return Ok(entries),
                Tok::Word(key) => Key { text: key, quoted: false, line: token.line },
                Tok::Str(key) => Key { text: key, quoted: true, line: token.line },
                other => {
                    let message = format!("expected a rule or attribute name, got {}", other.describe());
                    return Err(self.error(token.line, message));
                }
            };
            entries.push(self.item(key, &mut assigned)?);
            if self.peek()?.tok == Tok::Comma {
                self.next()?;
            }
        }
    }

    /// One item after its first key: `key = value`, or `key label... { body }`.
    fn item(&mut self, key: Key, assigned: &mut HashSet<(bool, String)>) -> Result<Entry> {
        let mut labels = Vec::new();
        loop {
            let token = self.next()?;
            match token.tok {
                Tok::Word(label) => labels.push(Key { text: label, quoted: false, line: token.line }),
                Tok::Str(label) => labels.push(Key { text: label, quoted: true, line: token.line }),
                Tok::Assign if labels.is_empty() => {
                    if !assigned.insert((key.quoted, key.text.clone())) {
                        let message =
                            format!("redefined attribute {:?}; each argument can only be defined once", key.text);
                        return Err(self.error(key.line, message));
                    }
                    self.path.push(key.text.clone());
                    let value = self.next().and_then(|token| self.value(token, &key.text));
                    self.path.pop();
                    return Ok(Entry { key: key.text, line: Some(key.line), value: value? });
                }
                Tok::Assign => {
                    let message = format!("{} takes '{{' after its labels, not '='", display_keys(&key, &labels));
                    return Err(self.error(token.line, message));
                }
                Tok::LBrace => return self.block(key, labels, token.line),
                other => {
                    let message =
                        format!("expected '=' or '{{' after {}, got {}", display_keys(&key, &labels), other.describe());
                    return Err(self.error(token.line, message));
                }
            }
        }
    }

    /// `key labels... { body }`: every label wraps the body in one more object, as HCL v1
    /// flattens `key "a" { ... }` into `key = { a = { ... } }`.
    fn block(&mut self, key: Key, labels: Vec<Key>, brace_line: usize) -> Result<Entry> {
        let open = Opening { line: key.line, what: format!("the block {} {{", display_keys(&key, &labels)) };
        let saved = self.path.len();
        self.path.push(key.text.clone());
        self.path.extend(labels.iter().map(|label| label.text.clone()));
        let levels = 1 + labels.len();
        self.enter(levels, brace_line)?;
        let body = self.body(Some(&open))?;
        self.depth -= levels;
        self.path.truncate(saved);
        let mut value = Value::Obj(body);
        for label in labels.into_iter().rev() {
            value = Value::Obj(vec![Entry { key: label.text, line: Some(label.line), value }]);
        }
        Ok(Entry { key: key.text, line: Some(key.line), value })
    }

    /// A value starting at `token` (already read); `owner` names it in errors about unclosed brackets.
    fn value(&mut self, token: Token, owner: &str) -> Result<Value> {
        Ok(match token.tok {
            Tok::Str(s) | Tok::Heredoc(s) => Value::Str(s),
            Tok::Number => Value::Other("a number"),
            Tok::Bool => Value::Other("a bool"),
            Tok::Word(_) => Value::Other("an unquoted word"),
            Tok::LBrace => {
                self.enter(1, token.line)?;
                let open = Opening { line: token.line, what: format!("the object {owner} = {{") };
                let body = self.body(Some(&open))?;
                self.depth -= 1;
                Value::Obj(body)
            }
            Tok::LBrack => {
                self.enter(1, token.line)?;
                let open = Opening { line: token.line, what: format!("the list {owner} = [") };
                let items = self.list(&open, owner)?;
                self.depth -= 1;
                Value::List(items)
            }
            other => return Err(self.error(token.line, format!("expected a value, got {}", other.describe()))),
        })
    }

    /// List items after `[`, comma-separated, a trailing comma allowed.
    fn list(&mut self, open: &Opening, owner: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            let token = self.next()?;
            match token.tok {
                Tok::RBrack => return Ok(items),
                Tok::Eof => return Err(unclosed(open, ']')),
                _ => items.push(self.value(token, owner)?),
            }
            let token = self.next()?;
            match token.tok {
                Tok::Comma => {}
                Tok::RBrack => return Ok(items),
                Tok::Eof => return Err(unclosed(open, ']')),
                other => {
                    let message = format!("expected ',' or ']' in a list, got {}", other.describe());
                    return Err(self.error(token.line, message));
                }
            }
        }
    }
}

/// A key of an item: its decoded text, whether it was quoted (HCL v1 tells `a` from `"a"` when
/// it looks for repeated attributes), and its line.
struct Key {
    text: String,
    quoted: bool,
    line: usize,
}

/// `key_prefix "lb/"`: the keys as written (labels quoted), for messages.
fn display_keys(key: &Key, labels: &[Key]) -> String {
    let mut out = if key.quoted { format!("{:?}", clip(&key.text)) } else { clip(&key.text) };
    for label in labels {
        out.push(' ');
        out.push_str(&format!("{:?}", clip(&label.text)));
    }
    out
}

/// The text ended inside `open`: name the line it was opened on, where the fix usually is.
fn unclosed(open: &Opening, closer: char) -> ParseError {
    ParseError::new(Some(open.line), None, format!("{} opened here is never closed (missing '{closer}')", open.what))
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
