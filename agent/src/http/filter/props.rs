//! Property tests of the `?filter=` language: no input, however malformed, panics the parser,
//! the validator or the evaluator; a parse error or a 400 is the worst a caller can cause; and
//! `not (F)` keeps exactly what `F` leaves out. (`filter/fuzz` explores the same API deeper.)

use proptest::prelude::*;
use serde_json::json;

use super::{Filter, schema};

/// Pieces of the grammar, so generated text gets past the lexer and into the parser's corners.
const TOKENS: &[&str] = &[
    "Service",
    "ServiceName",
    "ServiceTags",
    "Tags",
    "Meta",
    "Meta.env",
    "Node",
    "Checks",
    "Status",
    "Port",
    "Weights.Passing",
    "==",
    "!=",
    "contains",
    "not",
    "in",
    "is",
    "empty",
    "matches",
    "and",
    "or",
    "(",
    ")",
    "\"web\"",
    "`raw`",
    "\"\\u00e9\"",
    "\"a\\\"b\"",
    "1",
    "-1",
    "true",
    "any",
    "all",
    "as",
    "_",
    "{",
    "}",
    ".",
    "\"",
    "`",
    "\\",
];

fn token_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|tokens| tokens.join(" "))
}

/// Documents of each result shape, with the fields filters name.
fn documents() -> Vec<(&'static schema::Field, serde_json::Value)> {
    let service = json!({"ID": "web1", "Service": "web", "Tags": ["a", "b"], "Meta": {"env": "qa"}, "Port": 80,
        "Weights": {"Passing": 1, "Warning": 1}, "Address": "10.0.0.1"});
    let check = json!({"Node": "n1", "CheckID": "c", "Name": "c", "Status": "passing", "ServiceTags": ["a"]});
    vec![
        (&schema::AGENT_SERVICE, service.clone()),
        (&schema::NODE, json!({"Node": "n1", "Address": "10.0.0.1", "Meta": {"env": "qa"}})),
        (&schema::CHECK, check.clone()),
        (&schema::HEALTH_ENTRY, json!({"Node": {"Node": "n1"}, "Service": service, "Checks": [check]})),
        // A document that does not have the shape at all: evaluation must still not panic.
        (&schema::HEALTH_ENTRY, json!({"Node": 7, "Service": [], "Checks": {"x": null}})),
    ]
}

fn parse_and_eval(text: &str) {
    for (shape, doc) in documents() {
        if let Ok(filter) = Filter::new(text, shape) {
            let _ = filter.matches(&doc);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,120}") {
        parse_and_eval(&text);
    }

    #[test]
    fn grammar_shaped_text_never_panics(text in token_text()) {
        parse_and_eval(&text);
    }

    #[test]
    fn a_negated_filter_keeps_exactly_what_the_filter_leaves_out(text in token_text()) {
        for (shape, doc) in documents() {
            let (Ok(filter), Ok(negated)) = (Filter::new(&text, shape), Filter::new(&format!("not ({text})"), shape))
            else { continue };
            prop_assert_eq!(negated.matches(&doc), !filter.matches(&doc), "{} on {}", text, doc);
        }
    }
}
