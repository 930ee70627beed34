//! Lexer and parser details of the HCL v1 subset: string values, escapes, heredocs, nesting, errors.

use super::*;

/// The tree as plain data, so tests can compare it: (key, line, value).
#[derive(Debug, PartialEq)]
enum V {
    S(String),
    O(Vec<(String, Option<usize>, V)>),
    L(Vec<V>),
    X(&'static str),
}

fn plain(value: &Value) -> V {
    match value {
        Value::Str(s) => V::S(s.clone()),
        Value::Obj(entries) => V::O(entries.iter().map(|e| (e.key.clone(), e.line, plain(&e.value))).collect()),
        Value::List(items) => V::L(items.iter().map(plain).collect()),
        Value::Other(kind) => V::X(kind),
    }
}

fn tree(text: &str) -> V {
    match hcl(text) {
        Ok(entries) => plain(&Value::Obj(entries)),
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn err(text: &str) -> ParseError {
    match hcl(text) {
        Ok(entries) => panic!("expected an error for {text:?}, got {entries:?}"),
        Err(e) => e,
    }
}

/// The single attribute value of `key "a" { policy = <value> }` written as `text`.
fn policy_value(value_text: &str) -> V {
    let V::O(top) = tree(&format!("key \"a\" {{ policy = {value_text}\n}}")) else { panic!("not an object") };
    let V::O(labels) = &top[0].2 else { panic!("{top:?}") };
    let V::O(attrs) = &labels[0].2 else { panic!("{labels:?}") };
    match &attrs[..] {
        [(key, _, value)] if key == "policy" => match value {
            V::S(s) => V::S(s.clone()),
            V::X(kind) => V::X(kind),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn s(text: &str) -> V {
    V::S(text.to_owned())
}

#[test]
fn blocks_are_nested_objects_with_lines() {
    let got = tree("key \"a\" {\n  policy = \"read\"\n}\nacl = \"write\"");
    let want = V::O(vec![
        ("key".into(), Some(1), V::O(vec![("a".into(), Some(1), V::O(vec![("policy".into(), Some(2), s("read"))]))])),
        ("acl".into(), Some(4), s("write")),
    ]);
    assert_eq!(got, want);
}

#[test]
fn labels_may_be_bare_words_or_several_and_keys_may_be_quoted() {
    // HCL v1's objectKey takes any run of IDENT | STRING tokens before '{'.
    assert_eq!(tree(r#"key foo { policy = "read" }"#), tree(r#"key "foo" { policy = "read" }"#));
    assert_eq!(tree(r#""key" "foo" { "policy" = "read" }"#), tree(r#"key "foo" { policy = "read" }"#));
    assert_eq!(tree(r#"key { foo { policy = "read" } }"#), tree(r#"key "foo" { policy = "read" }"#));
    assert_eq!(
        tree("a \"b\"\n c {}"),
        V::O(vec![(
            "a".into(),
            Some(1),
            V::O(vec![("b".into(), Some(1), V::O(vec![("c".into(), Some(2), V::O(vec![]))]))])
        )])
    );
    // Words take HCL v1's identifier characters, dashes and dots included.
    assert_eq!(tree(r#"key web-1.dc_2 { policy = "read" }"#), tree(r#"key "web-1.dc_2" { policy = "read" }"#));
}

#[test]
fn string_escapes_follow_go() {
    let table = [
        (r#""a\"b""#, "a\"b"),
        (r#""a\\b""#, "a\\b"),
        (r#""\n\t\r""#, "\n\t\r"),
        (r#""\a\b\f\v""#, "\x07\x08\x0c\x0b"),
        (r#""\u00e9\U0001F600""#, "é😀"),
        (r#""\x41\101""#, "AA"),
        // Single bytes that pair up into UTF-8, as Go's strings would.
        (r#""\xc3\xa9""#, "é"),
        // Go writes U+FFFD for a surrogate.
        (r#""\ud800""#, "\u{fffd}"),
        (r#""é ü 日本""#, "é ü 日本"),
        // HCL v1 copies `${ ... }` verbatim: quotes inside do not end the string.
        (r#""${a "b" {c}}d""#, r#"${a "b" {c}}d"#),
        (r#""$a {b}""#, "$a {b}"),
        (r#""""#, ""),
    ];
    for (text, want) in table {
        assert_eq!(policy_value(text), s(want), "{text}");
    }
}

#[test]
fn bad_escapes_are_errors_naming_the_line() {
    for text in
        [r#""\q""#, r#""\'""#, r#""\u12""#, r#""\u12G4""#, r#""\xff""#, r#""\777""#, r#""\8""#, r#""\U00110000""#]
    {
        let e = err(&format!("key \"a\" {{\n policy = {text}\n}}"));
        assert_eq!(e.line, Some(2), "{text}: {e}");
        assert_eq!(e.resource.as_deref(), Some(r#"key "a""#), "{text}: {e}");
        assert!(e.message.contains("escape") || e.message.contains("UTF-8"), "{text}: {e}");
    }
    // Cut off inside an escape, or just after a backslash.
    for text in ["key \"a\" { policy = \"\\u12", "key \"a\" { policy = \"\\", "key \"a\" { policy = \"é\\xé"] {
        let e = err(text);
        assert_eq!(e.line, Some(1), "{text:?}: {e}");
    }
}

#[test]
fn heredocs_take_hcl_v1_values() {
    // `<<`: every line up to the closing one, newline included (so never a valid level).
    assert_eq!(policy_value("<<EOF\nread\nEOF"), s("read\n"));
    assert_eq!(policy_value("<<EOF\nline \"1\" }\n  line 2\nEOF"), s("line \"1\" }\n  line 2\n"));
    assert_eq!(policy_value("<<EOF\nEOF"), s(""));
    // The closing line may be indented; `<<` keeps that indent (Go slices up to the anchor).
    assert_eq!(policy_value("<<EOF\nread\n  EOF"), s("read\n  "));
    // `<<-` strips the closing line's indent when every line has it.
    assert_eq!(policy_value("<<-EOT\n    read\n      more\n    EOT"), s("read\n  more\n"));
    // ... and keeps the lines when one has less.
    assert_eq!(policy_value("<<-EOT\n  read\nx\n    EOT"), s("  read\nx\n"));
    assert_eq!(policy_value("<<-EOT\nEOT"), s(""));
    // The anchor word inside a longer line does not close it.
    assert_eq!(policy_value("<<EOF\nEOF2\nnot EOF\nEOF"), s("EOF2\nnot EOF\n"));
    // A heredoc is followed by more items.
    let got = tree("a = <<X\n}\nX\nb = \"c\"");
    assert_eq!(got, V::O(vec![("a".into(), Some(1), s("}\n")), ("b".into(), Some(4), s("c"))]));
}

#[test]
fn heredoc_errors_name_the_opening_line() {
    let table = [
        ("key \"a\" {\n policy = <<EOF\nread\n", 2, "unterminated heredoc"),
        ("key \"a\" {\n policy = <<EOF", 2, "unterminated heredoc"),
        ("key \"a\" {\n policy = <<\nread\n\n", 2, "anchor"),
        ("key \"a\" {\n policy = <<EOF x\nread\nEOF\n}", 2, "anchor"),
        ("key \"a\" {\n policy = < \"read\"\n}", 2, "heredoc"),
    ];
    for (text, line, fragment) in table {
        let e = err(text);
        assert_eq!(e.line, Some(line), "{text:?}: {e}");
        assert_eq!(e.resource.as_deref(), Some(r#"key "a""#), "{text:?}: {e}");
        assert!(e.message.contains(fragment), "{text:?}: {e}");
    }
}

#[test]
fn non_string_values_keep_their_kind() {
    assert_eq!(policy_value("3"), V::X("a number"));
    assert_eq!(policy_value("-1.5e-3"), V::X("a number"));
    assert_eq!(policy_value("true"), V::X("a bool"));
    assert_eq!(policy_value("read"), V::X("an unquoted word"));
    assert_eq!(
        tree("key = [{a = {}}, \"x\",]"),
        V::O(vec![("key".into(), Some(1), V::L(vec![V::O(vec![("a".into(), Some(1), V::O(vec![]))]), s("x")]))])
    );
    assert_eq!(tree("k = []"), V::O(vec![("k".into(), Some(1), V::L(vec![]))]));
}

#[test]
fn comments_and_whitespace() {
    let text = "# hash\n// slashes\n/* block\n spanning { lines */ key /* inside */ \"a\" { # after\n\tpolicy = \"read\" // trailing\n}\r\n";
    assert_eq!(tree(text), tree("\n\n\nkey \"a\" {\npolicy = \"read\"\n}"));
    // A lone '\r' is whitespace (not a line break), as in HCL v1.
    assert_eq!(tree("a = \"b\"\rc = \"d\""), tree("a = \"b\" c = \"d\""));
}

#[test]
fn syntax_errors_name_line_and_rule() {
    // (text, line, resource, message fragment)
    let table: &[(&str, usize, Option<&str>, &str)] = &[
        ("key \"a\" {\n policy = \"read\n}", 2, Some(r#"key "a""#), "unterminated string"),
        ("operator = \"read", 1, Some("operator"), "unterminated string"),
        ("key \"a\" {\n policy = \"read\"\n", 1, None, r#"the block key "a" { opened here is never closed"#),
        ("key = {\n \"a\" = {\n  policy = \"read\"\n }\n", 1, None, "the object key = { opened here"),
        ("key = [\n", 1, None, "missing ']'"),
        ("key = [\"a\" \"b\"]", 1, Some("key"), "expected ',' or ']'"),
        ("\n/* never closed\nkey", 2, None, "unterminated /* comment"),
        ("key \"a\" {\n policy / \"read\"\n}", 2, Some(r#"key "a""#), "unexpected '/'"),
        ("key \"a\" {\n policy = \"read\";\n}", 2, Some(r#"key "a""#), "unexpected character ';'"),
        ("key \"a\" = {}", 1, None, r#"key "a" takes '{' after its labels"#),
        (
            "key \"a\" {\n policy \"read\"\n}",
            3,
            Some(r#"key "a""#),
            r#"expected '=' or '{' after policy "read", got '}'"#,
        ),
        ("key \"a\"", 1, None, "got the end of the rules"),
        ("}", 1, None, "expected a rule or attribute name, got '}'"),
        ("key \"a\" { , }", 1, Some(r#"key "a""#), "got ','"),
        ("= \"read\"", 1, None, "got '='"),
        ("acl =", 1, Some("acl"), "expected a value, got the end of the rules"),
        ("acl = }", 1, Some("acl"), "expected a value, got '}'"),
        ("a = \"x\"\nb = \"y\"\na = \"z\"", 3, None, "redefined attribute \"a\""),
        ("a = {\n b = \"x\"\n b = \"y\"\n}", 3, Some("a"), "redefined attribute \"b\""),
        ("key = {}\nkey = {}", 2, None, "redefined attribute \"key\""),
    ];
    for &(text, line, resource, fragment) in table {
        let e = err(text);
        assert_eq!(e.line, Some(line), "{text:?}: {e}");
        assert_eq!(e.resource.as_deref(), resource, "{text:?}: {e}");
        assert!(e.message.contains(fragment), "{text:?}: {e}");
    }
}

#[test]
fn repeated_blocks_and_differently_quoted_names_are_not_redefinitions() {
    // HCL v1 only tracks `=` items, and tells `a` from `"a"`.
    hcl("key \"a\" {}\nkey \"a\" {}").unwrap();
    hcl("a = \"x\"\n\"a\" = \"y\"").unwrap();
    hcl("a = { b = \"x\" }\nc = { b = \"y\" }").unwrap();
}

#[test]
fn nesting_is_bounded_by_objects_lists_and_labels() {
    let ok = format!("a = {}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
    hcl(&ok).unwrap();
    let deep = format!("a = {}{}", "[".repeat(MAX_NESTING + 1), "]".repeat(MAX_NESTING + 1));
    assert!(err(&deep).message.contains("nesting"));
    // Each label is a level of the tree too, so a block with many labels cannot build a deep one.
    let labels = format!("key {} {{}}", "a ".repeat(100_000));
    assert!(err(&labels).message.contains("nesting"));
    let objects = "a = {".repeat(100_000);
    assert!(err(&objects).message.contains("nesting"));
    // Brackets in strings and comments do not count.
    let quoted = format!("key \"{}\" {{ policy = \"read\" }} # {}", "{".repeat(1000), "[".repeat(1000));
    hcl(&quoted).unwrap();
}

#[test]
fn large_inputs_parse_in_linear_time() {
    let block = "key_prefix \"lb/web/\" { policy = \"read\" } ";
    let text = block.repeat(20_000);
    let started = std::time::Instant::now();
    assert_eq!(hcl(&text).unwrap().len(), 20_000);
    // Long unterminated constructs are one pass each, not quadratic.
    let _ = hcl(&format!("a = \"${{{}", "{".repeat(200_000)));
    let _ = hcl(&format!("a = <<EOF\n{}", "x\n".repeat(200_000)));
    let _ = hcl(&format!("/*{}", "*".repeat(200_000)));
    // Generous: a debug build does this in well under a second.
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}
