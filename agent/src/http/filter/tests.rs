//! The filter shapes of `roster_filter::schema` against what `output` renders: a field rendered but missing from its shape would make filters on it a 400.

use roster_filter::{Field, schema};
use serde_json::Value;

/// Every key `output` renders must be a selector of its shape, with a matching type, or filters on real fields would be refused.
#[track_caller]
fn assert_shape_covers(field: &Field, value: &Value, path: &str) {
    match (field, value) {
        (Field::Any, _) | (_, Value::Null) => {}
        (Field::Str, Value::String(_)) | (Field::Int, Value::Number(_)) | (Field::Bool, Value::Bool(_)) => {}
        (Field::StrList, Value::Array(items)) => assert!(items.iter().all(Value::is_string), "{path}"),
        (Field::List(inner), Value::Array(items)) => {
            items.iter().for_each(|item| assert_shape_covers(inner, item, &format!("{path}[]")));
        }
        (Field::Map(inner), Value::Object(map)) => {
            map.iter().for_each(|(key, item)| assert_shape_covers(inner, item, &format!("{path}.{key}")));
        }
        (Field::Obj(fields), Value::Object(map)) => {
            for (key, item) in map {
                let found = fields.iter().find(|(name, _)| name == key);
                let (_, child) = found.unwrap_or_else(|| panic!("{path}.{key} is rendered but not in the shape"));
                assert_shape_covers(child, item, &format!("{path}.{key}"));
            }
        }
        (field, value) => panic!("{path}: shape {field:?} does not describe {value}"),
    }
}

#[test]
fn shapes_cover_every_rendered_field() {
    use super::super::output;
    use roster_kv::{CheckStatus, HealthCheck, Node, Service, ServiceAddress, ServiceEntry};

    let node = Node {
        id: "id".into(),
        node: "n1".into(),
        tagged_addresses: [("lan".to_owned(), "10.0.0.1".to_owned())].into(),
        meta: [("rack".to_owned(), "r1".to_owned())].into(),
        ..Node::default()
    };
    let service = Service {
        id: "web-1".into(),
        service: "web".into(),
        tags: vec!["v1".into()],
        meta: [("version".to_owned(), "1".to_owned())].into(),
        tagged_addresses: [("lan".to_owned(), ServiceAddress { address: "10.0.0.1".into(), port: 80 })].into(),
        kind: "connect-proxy".into(),
        socket_path: "/tmp/s".into(),
        proxy_json: r#"{"Mode":"transparent","Upstreams":[{"DestinationName":"db"}]}"#.into(),
        connect_json: r#"{"Native":true}"#.into(),
        ..Service::default()
    };
    let check = HealthCheck {
        node: "n1".into(),
        check_id: "c1".into(),
        name: "c1".into(),
        status: CheckStatus::Passing,
        notes: String::new(),
        output: String::new(),
        service_id: "web-1".into(),
        service_name: "web".into(),
        service_tags: vec!["v1".into()],
        check_type: "http".into(),
        interval: "10s".into(),
        timeout: "1s".into(),
        definition_json: r#"{"HTTP":"http://x"}"#.into(),
        create_index: 1,
        modify_index: 2,
    };
    let entry = ServiceEntry { node: node.clone(), service: service.clone(), checks: vec![check.clone()] };
    assert_shape_covers(&schema::NODE, &output::node(&node), "node");
    assert_shape_covers(&schema::AGENT_SERVICE, &output::agent_service(&service, "dc1"), "agent_service");
    assert_shape_covers(&schema::NODE_SERVICE, &output::node_service(&service), "node_service");
    assert_shape_covers(&schema::CATALOG_SERVICE, &output::catalog_service(&node, &service), "catalog_service");
    assert_shape_covers(&schema::CHECK, &output::check(&check), "check");
    assert_shape_covers(&schema::HEALTH_ENTRY, &output::health_entry(&entry), "health_entry");
}
