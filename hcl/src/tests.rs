//! The tree the parser builds for Consul's config shapes: values kept, positions of keys and errors.

use super::*;

const OPTIONS: Options = Options { max_nesting: 32, end_of_text: "the end of the file", item_name: "a key" };

fn entries(text: &str) -> Vec<Entry> {
    parse(text, &OPTIONS).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn err(text: &str) -> Error {
    match parse(text, &OPTIONS) {
        Ok(entries) => panic!("expected an error for {text:?}, got {entries:?}"),
        Err(e) => e,
    }
}

/// The keys and values of a body, positions left out.
fn shape(entries: &[Entry]) -> Vec<(String, Value)> {
    entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect()
}

fn num(text: &str) -> Value {
    Value::Number(text.to_owned())
}

#[test]
fn numbers_bools_and_words_keep_their_values() {
    let got = shape(&entries("port = 8500\ngrpc = -1\nrate = 0.5\nbig = 1e3\nui = true\noff = false\nbad = read"));
    let want = vec![
        ("port".to_owned(), num("8500")),
        ("grpc".to_owned(), num("-1")),
        ("rate".to_owned(), num("0.5")),
        ("big".to_owned(), num("1e3")),
        ("ui".to_owned(), Value::Bool(true)),
        ("off".to_owned(), Value::Bool(false)),
        ("bad".to_owned(), Value::Word("read".to_owned())),
    ];
    assert_eq!(got, want);
}

#[test]
fn repeated_blocks_stay_in_order_and_one_line_blocks_take_commas() {
    let text = r#"
service { name = "web", port = 80 }
service {
  name = "db"
  check { tcp = "localhost:5432" interval = "10s" }
}
dns_config { service_ttl { "*" = "5s" } }
"#;
    let got = entries(text);
    let keys: Vec<&str> = got.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["service", "service", "dns_config"]);
    let Value::Obj(web) = &got[0].value else { panic!("{:?}", got[0]) };
    assert_eq!(shape(web), vec![("name".to_owned(), Value::Str("web".into())), ("port".to_owned(), num("80"))]);
    let Value::Obj(dns) = &got[2].value else { panic!("{:?}", got[2]) };
    let Value::Obj(ttl) = &dns[0].value else { panic!("{dns:?}") };
    assert_eq!(shape(ttl), vec![("*".to_owned(), Value::Str("5s".into()))]);
}

#[test]
fn keys_carry_line_and_column() {
    let got = entries("# comment\n/* two\n lines */ a = 1\n  ports {\n\thttp = 8500 }");
    assert_eq!(got[0].pos, Pos { line: 3, column: 11 });
    assert_eq!(got[1].pos, Pos { line: 4, column: 3 });
    let Value::Obj(ports) = &got[1].value else { panic!("{got:?}") };
    assert_eq!(ports[0].pos, Pos { line: 5, column: 2 });
}

#[test]
fn errors_carry_line_column_and_the_keys_they_are_in() {
    let e = err("ports {\n  http = 8500\n  dns = }\n}");
    assert_eq!(e.pos, Pos { line: 3, column: 9 });
    assert_eq!(e.path, ["ports", "dns"]);
    assert_eq!(e.message, "expected a value, got '}'");
    let e = err("acl {\n  tokens {\n    agent = \"x\"\n");
    assert_eq!(e.pos, Pos { line: 2, column: 3 });
    assert!(e.message.contains("the block tokens { opened here is never closed"), "{e}");
    let e = err("datacenter = ");
    assert_eq!(e.message, "expected a value, got the end of the file");
    assert_eq!(e.to_string(), "line 1, column 14: expected a value, got the end of the file");
    // Columns count characters, not bytes.
    let e = err("name = \"é\" ;");
    assert_eq!(e.pos, Pos { line: 1, column: 12 });
}

#[test]
fn heredocs_lists_of_objects_and_labels() {
    let text = "watches = [\n  { type = \"key\", key = \"a\" },\n  { type = \"event\" },\n]\nnote = <<EOF\nhello\nEOF\nkey \"a\" \"b\" {}";
    let got = entries(text);
    let Value::List(watches) = &got[0].value else { panic!("{got:?}") };
    assert_eq!(watches.len(), 2);
    assert_eq!(got[1].value, Value::Str("hello\n".to_owned()));
    let Value::Obj(a) = &got[2].value else { panic!("{got:?}") };
    assert_eq!(a[0].key, "a");
    let Value::Obj(b) = &a[0].value else { panic!("{a:?}") };
    assert_eq!(shape(b), vec![("b".to_owned(), Value::Obj(Vec::new()))]);
}
