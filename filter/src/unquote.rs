//! Go's escape sequences in double-quoted strings (`strconv.Unquote`), which go-bexpr applies to its string literals.

/// Expands the escapes of a string literal's body; an error carries the byte offset of the bad escape within `body`.
pub fn unescape(body: &str) -> Result<String, (usize, String)> {
    // `\x` and octal escapes name bytes, not characters, so the result is assembled as bytes and checked once at the end.
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((_, kind)) = chars.next() else {
            return Err((at, "invalid escape sequence at the end of the string".into()));
        };
        let simple = match kind {
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
            continue;
        }
        let mut take = |n: usize| -> String { (0..n).filter_map(|_| chars.next().map(|(_, c)| c)).collect() };
        let bad = || (at, format!("invalid escape sequence in string literal at \\{kind}"));
        match kind {
            'x' => out.push(u8::from_str_radix(&exactly(take(2), 2).ok_or_else(bad)?, 16).map_err(|_| bad())?),
            'u' | 'U' => {
                let digits = exactly(take(if kind == 'u' { 4 } else { 8 }), if kind == 'u' { 4 } else { 8 });
                let code = digits.and_then(|d| u32::from_str_radix(&d, 16).ok()).ok_or_else(bad)?;
                let c = char::from_u32(code).ok_or_else(bad)?;
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let digits = format!("{kind}{}", take(2));
                let code = exactly(digits, 3).and_then(|d| u8::from_str_radix(&d, 8).ok()).ok_or_else(bad)?;
                out.push(code);
            }
            _ => return Err(bad()),
        }
    }
    String::from_utf8(out).map_err(|_| (0, "string literal is not valid UTF-8".into()))
}

/// The text if it has exactly `n` characters (an escape cut short by the end of the string has fewer).
fn exactly(text: String, n: usize) -> Option<String> {
    (text.chars().count() == n).then_some(text)
}
