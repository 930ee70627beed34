//! Tests for lenient body parsing and Go duration formatting.

use super::*;

fn obj(text: &str) -> Map<String, Value> {
    parse_object(text.as_bytes()).expect("valid object")
}

#[test]
fn field_names_match_ignoring_case_and_underscores() {
    let map = obj(r#"{"enable_tag_override": true, "NAME": "web", "meta": {"Key_One": "v"}}"#);
    let o = Obj(&map);
    assert!(o.bool(&["EnableTagOverride"]).unwrap());
    assert_eq!(o.str(&["Name"]).unwrap(), "web");
    let meta = o.str_map(&["Meta"]).unwrap();
    assert_eq!(meta.keys().collect::<Vec<_>>(), vec!["Key_One"], "user map keys are never normalised");
}

#[test]
fn wrong_types_name_the_field() {
    let map = obj(r#"{"Port": "eighty", "Tags": [1]}"#);
    let o = Obj(&map);
    assert_eq!(o.int(&["Port"], 0, 65535).unwrap_err(), "Port: expected a number, got a string");
    assert_eq!(o.str_list(&["Tags"]).unwrap_err(), "Tags: every item must be a string");
    assert!(o.int(&["Port"], 0, 65535).is_err());
    let map = obj(r#"{"Port": 70000}"#);
    assert!(Obj(&map).int(&["Port"], 0, 65535).unwrap_err().contains("out of range"));
}

#[test]
fn durations_accept_go_strings_and_nanoseconds() {
    let map = obj(r#"{"Interval": "1m30s", "Timeout": 2000000000, "TTL": "0s", "Bad": "ten"}"#);
    let o = Obj(&map);
    assert_eq!(o.duration(&["Interval"]).unwrap(), Some(Duration::from_secs(90)));
    assert_eq!(o.duration(&["Timeout"]).unwrap(), Some(Duration::from_secs(2)));
    assert_eq!(o.duration(&["TTL"]).unwrap(), None, "0s means unset");
    assert!(o.duration(&["Bad"]).unwrap_err().starts_with("Bad: "));
}

#[test]
fn non_objects_are_refused_with_their_kind() {
    assert_eq!(parse_object(b"[1]").unwrap_err(), "expected a JSON object, got an array");
    assert!(parse_object(b"{not json").is_err());
}
