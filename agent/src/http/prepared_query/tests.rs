//! Reading definitions: Consul's fields in any case, what roster cannot honour refused by name, and the JSON shape
//! read back.

use serde_json::json;

use super::*;

fn parse(body: Value) -> Result<PreparedQuery, String> {
    let Value::Object(map) = body else { panic!("not an object") };
    parse_query(Obj(&map))
}

#[test]
fn a_definition_reads_in_any_case_and_renders_back_in_consuls_shape() {
    let query = parse(json!({
        "name": "web",
        "service": {"service": "web", "onlypassing": true, "tags": ["!canary"], "failover": {"nearestn": 2},
                    "NodeMeta": {"rack": "a"}, "IgnoreCheckIDs": ["maint"]},
        "dns": {"ttl": "10s"},
        "template": {"type": "name_prefix_match", "regexp": "^web-(.*)$", "remove_empty_tags": true},
    }))
    .unwrap();
    let rendered = query_json(&query);
    assert_eq!(rendered["Name"], "web");
    assert_eq!(rendered["Service"]["OnlyPassing"], true);
    assert_eq!(rendered["Service"]["Tags"], json!(["!canary"]));
    assert_eq!(rendered["Service"]["Failover"], json!({"NearestN": 2, "Datacenters": null, "Targets": null}));
    assert_eq!(rendered["Service"]["NodeMeta"], json!({"rack": "a"}));
    assert_eq!(rendered["Service"]["ServiceMeta"], Value::Null);
    assert_eq!(
        rendered["Template"],
        json!({"Type": "name_prefix_match", "Regexp": "^web-(.*)$", "RemoveEmptyTags": true})
    );
    assert_eq!(rendered["DNS"], json!({"TTL": "10s"}));
}

#[test]
fn what_roster_cannot_honour_is_refused_by_name() {
    let refused = |body: Value, expect: &str| {
        let why = parse(body).unwrap_err();
        assert!(why.contains(expect), "{why:?} should contain {expect:?}");
    };
    let service = |extra: Value| {
        let mut s = json!({"Service": "web"});
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"Name": "q", "Service": s})
    };
    refused(service(json!({"Peer": "other"})), "Peer \"other\" is not supported");
    refused(service(json!({"SamenessGroup": "g"})), "SamenessGroup");
    refused(service(json!({"Connect": true})), "Connect");
    refused(service(json!({"Failover": {"Targets": [{"Peer": "p"}]}})), "Targets[0].Peer is not supported");
    refused(service(json!({"Frobnicate": 1})), "unknown field Service.\"Frobnicate\"");
    refused(json!({"Name": "q", "Namespace": "team-a"}), "Namespace \"team-a\" is not supported");
    refused(json!({"Name": "q", "DNS": {"TTL": 10}}), "TTL: expected a string");

    let fine =
        parse(service(json!({"Failover": {"Targets": [{"Datacenter": "dc2"}]}, "Namespace": "default"}))).unwrap();
    assert_eq!(fine.service.failover.targets, ["dc2"]);
}
