//! The catalog API: datacenters, nodes, services, service/:s, node/:n, node-services/:n and the
//! register / deregister writes that answer `true`, including external nodes registered directly.

use roster_tests::TestAgent;
use roster_tests::shape::{
    CATALOG_SERVICE_KEYS, NODE_KEYS, NODE_SERVICE_KEYS, array, assert_keys, pluck, string_set, strings,
};
use serde_json::{Value, json};

/// An external database node with one service, as a service mesh gateway or registrator sends it.
fn external_db() -> Value {
    json!({
        "Datacenter": "dc1", "Node": "ext-db", "Address": "10.1.2.3", "NodeMeta": {"rack": "r1"},
        "Service": {"ID": "db-1", "Service": "db", "Tags": ["primary"], "Port": 5432}
    })
}

async fn catalog_write(agent: &TestAgent, path: &str, body: &Value) {
    let res = agent.put_json(path, body).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true), "{path} answers true");
}

async fn get_json(agent: &TestAgent, path: &str) -> Value {
    let res = agent.get(path).await;
    res.expect_status(200);
    res.json()
}

#[tokio::test]
async fn datacenters_lists_only_dc1() {
    let agent = TestAgent::dev("cat-dcs").await;
    assert_eq!(get_json(&agent, "/v1/catalog/datacenters").await, json!(["dc1"]));
}

#[tokio::test]
async fn dev_catalog_holds_this_node_and_the_consul_service() {
    let agent = TestAgent::dev("cat-dev").await;
    assert_eq!(get_json(&agent, "/v1/catalog/services").await, json!({"consul": []}));

    let nodes = get_json(&agent, "/v1/catalog/nodes").await;
    assert_eq!(array(&nodes).len(), 1, "a dev agent is the only node: {nodes}");
    let node = &nodes[0];
    assert_keys(node, NODE_KEYS, "catalog node");
    assert_eq!(node["Node"], "cat-dev");
    assert_eq!(node["Address"], "127.0.0.1");
    assert_eq!(node["Datacenter"], "dc1");
    let id = node["ID"].as_str().unwrap_or_default();
    assert!(
        id.len() == 36 && id.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12],
        "node ID must be a UUID, got {id:?}"
    );
    let tagged =
        node["TaggedAddresses"].as_object().map(|map| map.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    for key in ["lan", "lan_ipv4", "wan", "wan_ipv4"] {
        assert!(tagged.iter().any(|tagged_key| tagged_key == key), "TaggedAddresses lacks {key}: {node}");
    }
}

#[tokio::test]
async fn consul_service_entry_has_the_exact_catalog_shape_and_the_server_port() {
    let agent = TestAgent::dev("cat-consul").await;
    let entries = get_json(&agent, "/v1/catalog/service/consul").await;
    assert_eq!(array(&entries).len(), 1, "{entries}");
    let entry = &entries[0];
    assert_keys(entry, CATALOG_SERVICE_KEYS, "catalog service entry");
    assert_eq!(entry["Node"], "cat-consul");
    assert_eq!(entry["Address"], "127.0.0.1");
    assert_eq!(entry["Datacenter"], "dc1");
    assert_eq!(entry["ServiceID"], "consul");
    assert_eq!(entry["ServiceName"], "consul");
    assert_eq!(entry["ServiceTags"], json!([]));
    assert_eq!(entry["ServiceKind"], "");
    assert_eq!(entry["ServiceSocketPath"], "");
    assert_eq!(entry["ServiceConnect"], json!({}));
    assert_eq!(entry["ServiceLocality"], Value::Null);
    assert_eq!(entry["ServicePort"], agent.rpc_addr().port(), "the consul service advertises the server RPC port");
}

#[tokio::test]
async fn agent_registrations_show_in_catalog_with_the_union_of_tags() {
    let agent = TestAgent::dev("cat-union").await;
    for (id, tag, port) in [("web-1", "v1", 80), ("web-2", "v2", 81)] {
        let res = agent
            .put_json("/v1/agent/service/register", &json!({"ID": id, "Name": "web", "Tags": [tag], "Port": port}))
            .await;
        res.expect_status(200);
    }

    let services = get_json(&agent, "/v1/catalog/services").await;
    assert_eq!(services["consul"], json!([]));
    assert_eq!(
        string_set(&services["web"]),
        ["v1".to_owned(), "v2".to_owned()].into(),
        "tags are the union over instances"
    );

    let entries = get_json(&agent, "/v1/catalog/service/web").await;
    let mut ids = pluck(&entries, "ServiceID");
    ids.sort();
    assert_eq!(ids, ["web-1", "web-2"]);
    for entry in array(&entries) {
        assert_keys(entry, CATALOG_SERVICE_KEYS, "agent-registered catalog entry");
        assert_eq!(entry["Node"], "cat-union");
        assert_eq!(entry["ServiceName"], "web");
    }
}

#[tokio::test]
async fn unknown_service_is_an_empty_list() {
    let agent = TestAgent::dev("cat-unknown-svc").await;
    assert_eq!(get_json(&agent, "/v1/catalog/service/nothing-here").await, json!([]));
}

#[tokio::test]
async fn registering_an_external_node_makes_it_visible_everywhere_in_the_catalog() {
    let agent = TestAgent::dev("cat-ext").await;
    catalog_write(&agent, "/v1/catalog/register", &external_db()).await;

    let nodes = get_json(&agent, "/v1/catalog/nodes").await;
    let mut names = pluck(&nodes, "Node");
    names.sort();
    assert_eq!(names, ["cat-ext", "ext-db"]);

    let entries = get_json(&agent, "/v1/catalog/service/db").await;
    assert_eq!(array(&entries).len(), 1, "{entries}");
    let entry = &entries[0];
    assert_keys(entry, CATALOG_SERVICE_KEYS, "external catalog entry");
    assert_eq!(entry["Node"], "ext-db");
    assert_eq!(entry["Address"], "10.1.2.3");
    assert_eq!(entry["NodeMeta"], json!({"rack": "r1"}));
    assert_eq!(entry["ServiceID"], "db-1");
    assert_eq!(entry["ServiceName"], "db");
    assert_eq!(entry["ServiceTags"], json!(["primary"]));
    assert_eq!(entry["ServicePort"], 5432);
    assert_eq!(entry["ServiceAddress"], "");
    assert_eq!(entry["ServiceWeights"], json!({"Passing": 1, "Warning": 1}));

    let services = get_json(&agent, "/v1/catalog/services").await;
    assert_eq!(strings(&services["db"]), ["primary"]);
}

#[tokio::test]
async fn catalog_node_maps_services_by_id_and_node_services_lists_them() {
    let agent = TestAgent::dev("cat-node").await;
    catalog_write(&agent, "/v1/catalog/register", &external_db()).await;

    let node = get_json(&agent, "/v1/catalog/node/ext-db").await;
    assert_keys(&node, &["Node", "Services"], "catalog/node/:n");
    assert_keys(&node["Node"], NODE_KEYS, "catalog/node/:n Node");
    assert_eq!(node["Node"]["Node"], "ext-db");
    assert_eq!(node["Node"]["Address"], "10.1.2.3");
    assert_eq!(node["Node"]["Meta"], json!({"rack": "r1"}));
    let service = &node["Services"]["db-1"];
    assert_keys(service, NODE_SERVICE_KEYS, "catalog/node/:n service");
    assert_eq!(service["Service"], "db");
    assert_eq!(service["Port"], 5432);

    let listed = get_json(&agent, "/v1/catalog/node-services/ext-db").await;
    assert_keys(&listed, &["Node", "Services"], "catalog/node-services/:n");
    assert_eq!(listed["Node"]["Node"], "ext-db");
    assert_eq!(pluck(&listed["Services"], "ID"), ["db-1"]);
    assert_keys(&listed["Services"][0], NODE_SERVICE_KEYS, "node-services entry");
}

#[tokio::test]
async fn catalog_node_of_an_unknown_node_is_null() {
    let agent = TestAgent::dev("cat-node-unknown").await;
    assert_eq!(get_json(&agent, "/v1/catalog/node/ghost").await, Value::Null);
}

#[tokio::test]
async fn catalog_register_accepts_lowercase_field_names() {
    let agent = TestAgent::dev("cat-lower").await;
    let body =
        json!({"node": "ext-lower", "address": "10.9.9.9", "service": {"service": "lower", "port": 7, "tags": ["t"]}});
    catalog_write(&agent, "/v1/catalog/register", &body).await;

    let entries = get_json(&agent, "/v1/catalog/service/lower").await;
    assert_eq!(pluck(&entries, "Node"), ["ext-lower"]);
    assert_eq!(entries[0]["ServicePort"], 7);
    assert_eq!(entries[0]["ServiceTags"], json!(["t"]));
}

#[tokio::test]
async fn catalog_deregister_removes_a_service_then_the_whole_node() {
    let agent = TestAgent::dev("cat-dereg").await;
    catalog_write(&agent, "/v1/catalog/register", &external_db()).await;

    catalog_write(&agent, "/v1/catalog/deregister", &json!({"Node": "ext-db", "ServiceID": "db-1"})).await;
    assert_eq!(get_json(&agent, "/v1/catalog/service/db").await, json!([]));
    assert!(get_json(&agent, "/v1/catalog/services").await.get("db").is_none(), "db must leave catalog/services");
    assert!(
        pluck(&get_json(&agent, "/v1/catalog/nodes").await, "Node").contains(&"ext-db".to_owned()),
        "the node stays"
    );

    catalog_write(&agent, "/v1/catalog/deregister", &json!({"Node": "ext-db"})).await;
    assert_eq!(pluck(&get_json(&agent, "/v1/catalog/nodes").await, "Node"), ["cat-dereg"]);
}
