//! Fuzz target: a filter expression from a client (`?filter=`) or an operator (a binding rule's selector), parsed and
//! validated for one shape, then evaluated on documents of that shape and of the wrong shape.
//! Never a panic, never a stack overflow, every refusal has a message, and `not (F)` is always the opposite of `F`.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use roster_filter::{Field, Filter, schema};
use serde_json::{Value, json};

/// The shapes a filter is checked against; the first input byte picks one.
const SHAPES: [&Field; 7] = [
    &schema::NODE,
    &schema::AGENT_SERVICE,
    &schema::NODE_SERVICE,
    &schema::CATALOG_SERVICE,
    &schema::CHECK,
    &schema::HEALTH_ENTRY,
    &schema::BINDING_IDENTITY,
];

fn documents() -> [Value; 4] {
    let service = json!({"ID": "web1", "Service": "web", "Tags": ["a", "b"], "Meta": {"env": "qa"}, "Port": 80,
        "Weights": {"Passing": 1, "Warning": 1}, "Address": "10.0.0.1", "Kind": ""});
    let check = json!({"Node": "n1", "CheckID": "c", "Name": "c", "Status": "passing", "ServiceTags": ["a"]});
    [
        json!({"Node": {"Node": "n1", "Meta": {"env": "qa"}}, "Service": service, "Checks": [check],
            "ServiceName": "web", "ServiceTags": ["a"], "NodeMeta": {"rack": "r1"}}),
        json!({"Node": "n1", "Address": "10.0.0.1", "Meta": {"env": "qa"}, "TaggedAddresses": {"lan": "10.0.0.1"}}),
        json!({"value": {"role": "web", "sub": "x"}, "list": {"groups": ["admins", "dev"]}}),
        // Nothing like any shape: evaluation must still answer.
        json!({"Node": 7, "Service": [], "Checks": {"x": null}, "value": [1], "list": "x"}),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let shape = SHAPES[usize::from(selector) % SHAPES.len()];
    let filter = match Filter::new(&text, shape) {
        Ok(filter) => filter,
        Err(refusal) => {
            assert!(!refusal.to_string().is_empty(), "a refusal without a message for {text:?}");
            return;
        }
    };
    // Wrapping may only fail by nesting one level too deep.
    let negated = Filter::new(&format!("not ({text})"), shape).ok();
    for doc in documents() {
        let verdict = filter.matches(&doc);
        if let Some(negated) = &negated {
            assert_eq!(negated.matches(&doc), !verdict, "not ({text}) on {doc}");
        }
    }
});
