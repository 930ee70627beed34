//! Consul's HCL config files (and `-hcl` snippets) read into the JSON object the JSON path walks.
//!
//! Consul decodes HCL v1 into the same map as JSON and lets a repeated key become a list: two
//! `service { }` blocks are two services, and `services`/`checks`/`watches` are lists even when a
//! file has one such block. Other repeated blocks (two `ports { }` in one file) are merged key by key,
//! as later files are. Text that starts with `{` is JSON, as HCL v1 itself decides.

use roster_hcl::{Entry, Options, Value as Hcl};
use serde_json::{Map, Number, Value};

/// Keys whose blocks are always a list (a single block too), at any depth (a service's `checks`).
const LIST_KEYS: [&str; 3] = ["services", "checks", "watches"];
/// Keys that are one object, or a list when the block repeats.
const REPEATABLE_KEYS: [&str; 2] = ["service", "check"];

/// How a config file's syntax errors name things.
const OPTIONS: Options =
    Options { max_nesting: 64, end_of_text: "the end of the file", item_name: "a key or block name" };

/// Parses one HCL text; every problem goes to `errors` as `<origin>: line L, column C: ...`.
pub(super) fn to_json(text: &str, origin: &str, errors: &mut Vec<String>) -> Option<Map<String, Value>> {
    if text.trim_start().starts_with('{') {
        return match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Some(map),
            Ok(_) => {
                errors.push(format!("{origin}: expected a JSON object at the top level"));
                None
            }
            Err(err) => {
                errors.push(format!("{origin}: invalid JSON: {err}"));
                None
            }
        };
    }
    match roster_hcl::parse(text, &OPTIONS) {
        Ok(entries) => {
            let before = errors.len();
            let map = object(entries, origin, errors);
            (errors.len() == before).then_some(map)
        }
        Err(err) => {
            errors.push(format!("{origin}: {err}"));
            None
        }
    }
}

/// One body's entries as a JSON object, with Consul's rules for repeated keys.
fn object(entries: Vec<Entry>, origin: &str, errors: &mut Vec<String>) -> Map<String, Value> {
    let mut map = Map::new();
    for entry in entries {
        let value = match value(entry.value, origin, errors) {
            Ok(Some(value)) => value,
            Ok(None) => continue,
            Err(message) => {
                let roster_hcl::Pos { line, column } = entry.pos;
                errors.push(format!("{origin}: line {line}, column {column}: {}: {message}", entry.key));
                continue;
            }
        };
        let listed = LIST_KEYS.contains(&entry.key.as_str());
        match map.get_mut(&entry.key) {
            None if listed && value.is_object() => {
                map.insert(entry.key, Value::Array(vec![value]));
            }
            None => {
                map.insert(entry.key, value);
            }
            Some(Value::Array(items)) if listed || REPEATABLE_KEYS.contains(&entry.key.as_str()) => match value {
                Value::Array(more) => items.extend(more),
                one => items.push(one),
            },
            Some(earlier) if REPEATABLE_KEYS.contains(&entry.key.as_str()) => {
                let first = earlier.take();
                *earlier = Value::Array(vec![first, value]);
            }
            Some(earlier) => super::source::deep_merge(earlier, value),
        }
    }
    map
}

/// One value; `Ok(None)` when an error inside it was already recorded with its own position.
fn value(hcl: Hcl, origin: &str, errors: &mut Vec<String>) -> Result<Option<Value>, String> {
    Ok(Some(match hcl {
        Hcl::Str(text) => Value::String(text),
        Hcl::Bool(flag) => Value::Bool(flag),
        Hcl::Number(text) => Value::Number(number(&text)?),
        Hcl::Word(word) => return Err(format!("expected a value, got the unquoted word `{word}` (quote strings)")),
        Hcl::Obj(entries) => {
            let before = errors.len();
            let map = object(entries, origin, errors);
            if errors.len() != before {
                return Ok(None);
            }
            Value::Object(map)
        }
        Hcl::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match value(item, origin, errors)? {
                    Some(item) => out.push(item),
                    None => return Ok(None),
                }
            }
            Value::Array(out)
        }
    }))
}

/// An HCL v1 number: a decimal, hex (`0x`) or octal (leading `0`) integer, or a float.
fn number(text: &str) -> Result<Number, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let radix = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some((hex, 16))
    } else if digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some((&digits[1..], 8))
    } else {
        None
    };
    let integer = match radix {
        Some((body, radix)) => i64::from_str_radix(body, radix).ok(),
        None => digits.parse::<i64>().ok(),
    };
    if let Some(integer) = integer {
        return Ok(Number::from(if negative { -integer } else { integer }));
    }
    text.parse::<f64>()
        .ok()
        .filter(|float| float.is_finite() && radix.is_none())
        .and_then(Number::from_f64)
        .ok_or_else(|| format!("{text:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(text: &str) -> Value {
        let mut errors = Vec::new();
        let map = to_json(text, "t.hcl", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        Value::Object(map.unwrap_or_default())
    }

    fn problems(text: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let map = to_json(text, "t.hcl", &mut errors);
        assert!(map.is_none(), "{map:?}");
        errors
    }

    #[test]
    fn blocks_lists_and_values_become_consuls_json() {
        let text = r#"
datacenter = "dc1"
ports { http = 8500, grpc = -1 }
performance { raft_multiplier = 1 }
sync_coordinate_rate_target = 64.5
mode = 0x1F
server = true
node_meta { rack = "r1" }
service {
  name = "web"
  port = 80
  check { http = "http://localhost/health", interval = "10s" }
}
services { name = "a" }
services { name = "b" checks { ttl = "30s" } }
watches = [{ type = "key", key = "k" }]
"#;
        let want = json!({
            "datacenter": "dc1",
            "ports": {"http": 8500, "grpc": -1},
            "performance": {"raft_multiplier": 1},
            "sync_coordinate_rate_target": 64.5,
            "mode": 31,
            "server": true,
            "node_meta": {"rack": "r1"},
            "service": {"name": "web", "port": 80, "check": {"http": "http://localhost/health", "interval": "10s"}},
            "services": [{"name": "a"}, {"name": "b", "checks": [{"ttl": "30s"}]}],
            "watches": [{"type": "key", "key": "k"}],
        });
        assert_eq!(read(text), want);
    }

    #[test]
    fn a_repeated_service_is_a_list_and_a_repeated_block_merges() {
        let got = read(
            "service { name = \"a\" }\nservice { name = \"b\" }\nservice { name = \"c\" }\nacl { enabled = true }\nacl { tokens { agent = \"t\" } }",
        );
        assert_eq!(got["service"], json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        assert_eq!(got["acl"], json!({"enabled": true, "tokens": {"agent": "t"}}));
    }

    #[test]
    fn json_text_is_read_as_json() {
        assert_eq!(read("  {\"datacenter\": \"dc2\"}"), json!({"datacenter": "dc2"}));
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        assert_eq!(problems("ports {\n  http = \n}"), ["t.hcl: line 3, column 1: expected a value, got '}'"]);
        assert_eq!(problems("ports {\n  http = 80s\n}"), ["t.hcl: line 2, column 3: http: \"80s\" is not a number"]);
        assert_eq!(
            problems("log_level = info"),
            ["t.hcl: line 1, column 1: log_level: expected a value, got the unquoted word `info` (quote strings)"]
        );
    }
}
