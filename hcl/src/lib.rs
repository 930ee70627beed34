//! HCL v1 text, as Consul reads its config files and ACL rules, to a small tree that keeps every value and the
//! line and column of every key and error.
//!
//! Consul decodes both with HCL **v1** (`github.com/hashicorp/hcl` v1.0.1-vault-7), which is far
//! looser than HCL2: items need no separator (several blocks on one line), may be separated by
//! commas, a `}` may close a block on the line of its last attribute, labels may be bare words, keys
//! may be quoted (`"*" = "5s"`), and `key = { "a" = { ... } }` means the same as `key "a" { ... }`.
//! Files written for Consul must parse here, so this is a small hand-written lexer and
//! recursive-descent parser after `hcl/scanner/scanner.go`, `hcl/parser/parser.go` and
//! `hcl/strconv/quote.go` of that version. It does not decide what the tree means: `roster-acl`
//! reads rules from it and the agent turns it into the JSON its config loader walks.
//!
//! Grammar (HCL v1, as its parser reads it):
//!
//! ```text
//! body  = { item [","] }                      (top level ends at EOF, a block at "}")
//! item  = key "=" value                       (one key only)
//!       | key { key } "{" body "}"           (a block; every key after the first is a label)
//! key   = word | string
//! value = string | heredoc | number | bool | word | "{" body "}" | "[" [ value { "," value } [","] ] "]"
//! ```
//!
//! Deliberate differences from HCL v1:
//! - A bare word as a value (`policy = read`) is kept as [`Value::Word`], so the caller can say
//!   "expected a string" about the attribute instead of a bare syntax error (both refuse it).
//! - Numbers are kept as their text ([`Value::Number`]); the caller decides what a number may be.
//! - A heredoc may end at the end of the text without a final newline (HCL v1 wants one).
//! - Repeated `=` attributes are compared by decoded name and quoting, not raw text, so the
//!   far-fetched `"a" = ...` plus `"\x61" = ...` is refused here and not by HCL v1.
//! - Octal and `\x` escapes that spell invalid UTF-8 are an error (Go would keep the raw bytes;
//!   a Rust `String` cannot).
//! - Nesting (objects, lists and block labels together) deeper than [`Options::max_nesting`] is
//!   refused: HCL v1 has no such limit, but neither rules nor configs nest that deep, and the bound
//!   keeps this recursion and the tree's drop off the end of the stack.

#![forbid(unsafe_code)]

use std::collections::HashSet;

/// `key = value`, or a block `key "label" { ... }` (as `key = { label = { ... } }`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key, unquoted and unescaped.
    pub key: String,
    /// Where the key starts.
    pub pos: Pos,
    /// What it is set to.
    pub value: Value,
}

/// A value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string or a heredoc, decoded.
    Str(String),
    /// A number as written (`8500`, `-1`, `0.5`, `1e3`, `0x1F`); HCL v1 reads ints and floats.
    Number(String),
    /// `true` or `false`.
    Bool(bool),
    /// An unquoted word where a value belongs (`policy = read`), which HCL v1 refuses.
    Word(String),
    /// An object or a block body, in the order written; a key may repeat (repeated blocks).
    Obj(Vec<Entry>),
    /// A list.
    List(Vec<Value>),
}

impl Value {
    /// The kind of value, as an error message names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a bool",
            Value::Word(_) => "an unquoted word",
            Value::Obj(_) => "a block",
            Value::List(_) => "a list",
        }
    }
}

/// A position in the text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// A syntax error: where, inside which keys, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Where the offending token (or the unclosed bracket) starts.
    pub pos: Pos,
    /// The keys (and block labels) from the top level down to the item the error is in; empty at
    /// the top level and for an unclosed bracket, whose opening position is the useful part.
    pub path: Vec<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: {}", self.pos.line, self.pos.column, self.message)
    }
}

impl std::error::Error for Error {}

/// How a caller names things in messages, and how deep a tree may nest.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Objects, lists and block labels together may nest this deep.
    pub max_nesting: usize,
    /// The end of the text, as "got ..." names it (`the end of the rules`).
    pub end_of_text: &'static str,
    /// What an item starts with, as "expected ..." names it (`a rule or attribute name`).
    pub item_name: &'static str,
}

type Result<T> = std::result::Result<T, Error>;

/// Parses HCL (v1) text into top-level entries.
pub fn parse(text: &str, options: &Options) -> Result<Vec<Entry>> {
    // HCL v1 turns CRLF into LF before scanning; doing the same keeps `\r` out of heredoc values
    // and line counting simple. Lone `\r`s stay and are whitespace, as there.
    let text = text.replace("\r\n", "\n");
    Parser::new(&text, options).body(None)
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
    /// `true` / `false`.
    Bool(bool),
    /// A number's text.
    Number(String),
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
            Tok::Bool(_) => "a bool".to_owned(),
            Tok::Number(_) => "a number".to_owned(),
            Tok::LBrace => "'{'".to_owned(),
            Tok::RBrace => "'}'".to_owned(),
            Tok::LBrack => "'['".to_owned(),
            Tok::RBrack => "']'".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Assign => "'='".to_owned(),
            Tok::Eof => "the end of the text".to_owned(),
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
    /// Where the token starts.
    pos: Pos,
}

/// A lexing failure: where, and what is wrong (the parser adds the keys it was in).
type LexError = (Pos, String);

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
    /// Byte offset of the current line's first character, for columns.
    line_start: usize,
    /// The last column computed and its byte offset: positions are asked for in increasing order, so each
    /// column is counted on from the last one, which keeps a long single-line text linear.
    column: (usize, usize),
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0, line: 1, line_start: 0, column: (0, 1) }
    }

    /// Where the lexer is now.
    fn here(&mut self) -> Pos {
        let (mut at, mut column) = self.column;
        if at < self.line_start {
            (at, column) = (self.line_start, 1);
        }
        column += self.src[at..self.pos].chars().count();
        self.column = (self.pos, column);
        Pos { line: self.line, column }
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
            self.line_start = self.pos;
        }
        Some(c)
    }

    fn next_token(&mut self) -> std::result::Result<Token, LexError> {
        self.skip_blank()?;
        let line = self.here();
        let Some(c) = self.peek_char() else {
            return Ok(Token { tok: Tok::Eof, pos: line });
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
                let start = self.pos;
                self.number();
                Tok::Number(self.src[start..self.pos].to_owned())
            }
            '-' if self.peek_byte_at(1).is_some_and(|b| b.is_ascii_digit()) => {
                let start = self.pos;
                self.pos += 1;
                self.number();
                Tok::Number(self.src[start..self.pos].to_owned())
            }
            c if is_letter(c) => {
                let start = self.pos;
                while self.peek_char().is_some_and(|c| is_letter(c) || is_digit(c) || c == '-' || c == '.') {
                    self.bump();
                }
                match &self.src[start..self.pos] {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    word => Tok::Word(word.to_owned()),
                }
            }
            c => return Err((line, format!("unexpected character {c:?}"))),
        };
        Ok(Token { tok, pos: line })
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
                        let line = self.here();
                        self.pos += 2;
                        let Some(end) = self.src[self.pos..].find("*/") else {
                            return Err((line, "unterminated /* comment".to_owned()));
                        };
                        let comment = &self.src[self.pos..self.pos + end];
                        self.line += comment.bytes().filter(|&b| b == b'\n').count();
                        if let Some(last) = comment.rfind('\n') {
                            self.line_start = self.pos + last + 1;
                        }
                        self.pos += end + 2;
                    }
                    _ => return Err((self.here(), "unexpected '/' (comments start with // or /*)".to_owned())),
                },
                _ => return Ok(()),
            }
        }
    }

    /// Leaves the newline itself for `skip_blank`, which counts it.
    fn skip_to_newline(&mut self) {
        self.pos = self.src[self.pos..].find('\n').map_or(self.src.len(), |at| self.pos + at);
    }

    /// Looser than HCL v1's (`10s` is one token): the caller refuses a number it cannot read, by its text.
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
        let line = self.here();
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
    fn escape(&mut self, out: &mut Vec<u8>, line: Pos) -> std::result::Result<(), LexError> {
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
        let line = self.here();
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
    pos: Pos,
    what: String,
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    options: &'a Options,
    peeked: Option<Token>,
    /// Keys from the top level down to the object being parsed, to say where an error is.
    path: Vec<String>,
    /// Nesting of the tree being built (objects, lists, block labels), bounded by
    /// [`Options::max_nesting`] so neither this recursion nor dropping the tree can exhaust the stack.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, options: &'a Options) -> Parser<'a> {
        Parser { lexer: Lexer::new(text), options, peeked: None, path: Vec::new(), depth: 0 }
    }

    fn error(&self, pos: Pos, message: impl Into<String>) -> Error {
        Error { pos, path: self.path.clone(), message: message.into() }
    }

    /// A token as messages name it, the end of the text in the caller's words.
    fn describe(&self, tok: &Tok) -> String {
        match tok {
            Tok::Eof => self.options.end_of_text.to_owned(),
            other => other.describe(),
        }
    }

    fn next(&mut self) -> Result<Token> {
        if let Some(token) = self.peeked.take() {
            return Ok(token);
        }
        self.lexer.next_token().map_err(|(pos, message)| self.error(pos, message))
    }

    fn peek(&mut self) -> Result<&Token> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.next()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn enter(&mut self, levels: usize, pos: Pos) -> Result<()> {
        self.depth += levels;
        let max = self.options.max_nesting;
        if self.depth > max {
            return Err(self.error(pos, format!("nesting deeper than {max} levels")));
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
                Tok::Word(key) => Key { text: key, quoted: false, pos: token.pos },
                Tok::Str(key) => Key { text: key, quoted: true, pos: token.pos },
                other => {
                    let message = format!("expected {}, got {}", self.options.item_name, self.describe(&other));
                    return Err(self.error(token.pos, message));
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
                Tok::Word(label) => labels.push(Key { text: label, quoted: false, pos: token.pos }),
                Tok::Str(label) => labels.push(Key { text: label, quoted: true, pos: token.pos }),
                Tok::Assign if labels.is_empty() => {
                    if !assigned.insert((key.quoted, key.text.clone())) {
                        let message =
                            format!("redefined attribute {:?}; each argument can only be defined once", key.text);
                        return Err(self.error(key.pos, message));
                    }
                    self.path.push(key.text.clone());
                    let value = self.next().and_then(|token| self.value(token, &key.text));
                    self.path.pop();
                    return Ok(Entry { key: key.text, pos: key.pos, value: value? });
                }
                Tok::Assign => {
                    let message = format!("{} takes '{{' after its labels, not '='", display_keys(&key, &labels));
                    return Err(self.error(token.pos, message));
                }
                Tok::LBrace => return self.block(key, labels, token.pos),
                other => {
                    let message = format!(
                        "expected '=' or '{{' after {}, got {}",
                        display_keys(&key, &labels),
                        self.describe(&other)
                    );
                    return Err(self.error(token.pos, message));
                }
            }
        }
    }

    /// `key labels... { body }`: every label wraps the body in one more object, as HCL v1
    /// flattens `key "a" { ... }` into `key = { a = { ... } }`.
    fn block(&mut self, key: Key, labels: Vec<Key>, brace: Pos) -> Result<Entry> {
        let open = Opening { pos: key.pos, what: format!("the block {} {{", display_keys(&key, &labels)) };
        let saved = self.path.len();
        self.path.push(key.text.clone());
        self.path.extend(labels.iter().map(|label| label.text.clone()));
        let levels = 1 + labels.len();
        self.enter(levels, brace)?;
        let body = self.body(Some(&open))?;
        self.depth -= levels;
        self.path.truncate(saved);
        let mut value = Value::Obj(body);
        for label in labels.into_iter().rev() {
            value = Value::Obj(vec![Entry { key: label.text, pos: label.pos, value }]);
        }
        Ok(Entry { key: key.text, pos: key.pos, value })
    }

    /// A value starting at `token` (already read); `owner` names it in errors about unclosed brackets.
    fn value(&mut self, token: Token, owner: &str) -> Result<Value> {
        Ok(match token.tok {
            Tok::Str(s) | Tok::Heredoc(s) => Value::Str(s),
            Tok::Number(text) => Value::Number(text),
            Tok::Bool(b) => Value::Bool(b),
            Tok::Word(word) => Value::Word(word),
            Tok::LBrace => {
                self.enter(1, token.pos)?;
                let open = Opening { pos: token.pos, what: format!("the object {owner} = {{") };
                let body = self.body(Some(&open))?;
                self.depth -= 1;
                Value::Obj(body)
            }
            Tok::LBrack => {
                self.enter(1, token.pos)?;
                let open = Opening { pos: token.pos, what: format!("the list {owner} = [") };
                let items = self.list(&open, owner)?;
                self.depth -= 1;
                Value::List(items)
            }
            other => {
                return Err(self.error(token.pos, format!("expected a value, got {}", self.describe(&other))));
            }
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
                    let message = format!("expected ',' or ']' in a list, got {}", self.describe(&other));
                    return Err(self.error(token.pos, message));
                }
            }
        }
    }
}

/// A key of an item: its decoded text, whether it was quoted (HCL v1 tells `a` from `"a"` when
/// it looks for repeated attributes), and where it starts.
struct Key {
    text: String,
    quoted: bool,
    pos: Pos,
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

/// The text ended inside `open`: name where it was opened, where the fix usually is.
fn unclosed(open: &Opening, closer: char) -> Error {
    Error {
        pos: open.pos,
        path: Vec::new(),
        message: format!("{} opened here is never closed (missing '{closer}')", open.what),
    }
}

#[cfg(test)]
mod tests;
