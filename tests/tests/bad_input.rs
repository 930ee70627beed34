//! Rejected requests: Consul's status code, a message that names the problem, and nothing written.
//! Covers malformed JSON, a missing service name, bad durations and indexes, an unknown `?dc=`,
//! oversized KV values and keys, unknown paths and wrong methods.

use roster_tests::TestAgent;
use serde_json::json;

/// Asserts status and that the body mentions `needle` (case-insensitively), so the user learns
/// what was wrong with the request.
#[track_caller]
fn assert_rejected(res: &roster_tests::Resp, status: u16, needle: &str) {
    res.expect_status(status);
    assert!(
        res.text().to_lowercase().contains(&needle.to_lowercase()),
        "the {status} body must mention {needle:?}, got {:?}",
        res.text()
    );
}

/// Asserts that neither the agent nor the catalog gained a service besides `consul`.
async fn assert_no_services_written(agent: &TestAgent) {
    assert_eq!(agent.get("/v1/agent/services").await.json(), json!({}));
    assert_eq!(agent.get("/v1/catalog/services").await.json(), json!({"consul": []}));
}

#[tokio::test]
async fn malformed_json_registration_is_400_request_decode_failed_and_writes_nothing() {
    let agent = TestAgent::dev("bad-json").await;
    let res = agent.put("/v1/agent/service/register", r#"{"Name": "web", "Port": 80"#).await;
    assert_rejected(&res, 400, "Request decode failed");
    assert_no_services_written(&agent).await;
}

#[tokio::test]
async fn wrongly_typed_field_is_400_request_decode_failed() {
    let agent = TestAgent::dev("bad-type").await;
    let res = agent.put_json("/v1/agent/service/register", &json!({"Name": "web", "Port": "eighty"})).await;
    assert_rejected(&res, 400, "Request decode failed");
    assert_no_services_written(&agent).await;
}

#[tokio::test]
async fn registration_without_a_name_is_400_missing_service_name() {
    let agent = TestAgent::dev("bad-no-name").await;
    let res = agent.put_json("/v1/agent/service/register", &json!({"ID": "web-1", "Port": 80})).await;
    assert_rejected(&res, 400, "Missing service name");
    assert_no_services_written(&agent).await;
}

#[tokio::test]
async fn bad_check_duration_is_400_invalid_duration_and_writes_nothing() {
    let agent = TestAgent::dev("bad-duration").await;
    let body = json!({"Name": "web", "Check": {"TTL": "ten seconds"}});
    let res = agent.put_json("/v1/agent/service/register", &body).await;
    assert_rejected(&res, 400, "invalid duration");
    assert_no_services_written(&agent).await;
    assert_eq!(agent.get("/v1/agent/checks").await.json(), json!({}));
}

#[tokio::test]
async fn bad_wait_duration_on_a_blocking_query_is_400_invalid_wait_time() {
    let agent = TestAgent::dev("bad-wait").await;
    agent.put("/v1/kv/k", "v").await.expect_status(200);
    let res = agent.get("/v1/kv/k?index=1&wait=soon").await;
    assert_rejected(&res, 400, "Invalid wait time");
}

#[tokio::test]
async fn non_numeric_index_is_400_invalid_index() {
    let agent = TestAgent::dev("bad-index").await;
    let res = agent.get("/v1/kv/k?index=latest").await;
    assert_rejected(&res, 400, "Invalid index");
}

#[tokio::test]
async fn unknown_datacenter_is_500_no_path_to_datacenter_and_writes_nothing() {
    let agent = TestAgent::dev("bad-dc").await;
    for path in [
        "/v1/kv/k?dc=mars",
        "/v1/catalog/nodes?dc=mars",
        "/v1/catalog/services?dc=mars",
        "/v1/health/service/consul?dc=mars",
    ] {
        let res = agent.get(path).await;
        assert_rejected(&res, 500, "No path to datacenter");
    }
    let res = agent.put("/v1/kv/written-elsewhere?dc=mars", "v").await;
    assert_rejected(&res, 500, "No path to datacenter");
    agent.get("/v1/kv/written-elsewhere").await.expect_status(404);

    let body = json!({"Node": "ext", "Address": "10.0.0.1", "Service": {"Service": "db"}});
    let res = agent.put_json("/v1/catalog/register?dc=mars", &body).await;
    assert_rejected(&res, 500, "No path to datacenter");
    assert_eq!(agent.get("/v1/catalog/service/db").await.json(), json!([]));
}

#[tokio::test]
async fn kv_value_over_512_kib_is_413_and_not_stored() {
    let agent = TestAgent::dev("bad-too-large").await;
    let res = agent.put("/v1/kv/big", vec![b'x'; 512 * 1024 + 1]).await;
    assert_rejected(&res, 413, "too large");
    agent.get("/v1/kv/big").await.expect_status(404);
}

#[tokio::test]
async fn kv_value_of_exactly_512_kib_is_stored() {
    let agent = TestAgent::dev("kv-max-size").await;
    let value = vec![b'y'; 512 * 1024];
    let res = agent.put("/v1/kv/max", value.clone()).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true), "the limit is inclusive");
    assert_eq!(agent.get("/v1/kv/max?raw").await.body, value);
}

#[tokio::test]
async fn malformed_catalog_register_is_400_and_writes_nothing() {
    let agent = TestAgent::dev("bad-catalog").await;
    let res = agent.put("/v1/catalog/register", "{not json").await;
    assert_rejected(&res, 400, "Request decode failed");
    let nodes = agent.get("/v1/catalog/nodes").await.json();
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "only the agent's own node: {nodes}");
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let agent = TestAgent::dev("bad-path").await;
    for path in ["/v1/no-such-endpoint", "/v1/catalog/everything", "/v2/kv/k"] {
        let res = agent.get(path).await;
        assert_eq!(res.status, 404, "GET {path}: {:?}", res.text());
    }
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let agent = TestAgent::dev("bad-method").await;
    let cases = [
        (reqwest::Method::DELETE, "/v1/status/leader"),
        (reqwest::Method::PUT, "/v1/catalog/services"),
        (reqwest::Method::GET, "/v1/catalog/register"),
        (reqwest::Method::GET, "/v1/agent/service/register"),
        (reqwest::Method::POST, "/v1/kv/k"),
    ];
    for (method, path) in cases {
        let res = agent.request(method.clone(), path, None).await;
        assert_eq!(res.status, 405, "{method} {path}: {:?}", res.text());
    }
    agent.get("/v1/kv/k").await.expect_status(404);
}

#[tokio::test]
async fn txn_key_over_64_kib_is_400_naming_the_limit_and_nothing_is_written() {
    let agent = TestAgent::dev("txn-key-too-long").await;
    let long_key = "k".repeat(64 * 1024 + 1);
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "txn-key/ok", "Value": "dg=="}},
        {"KV": {"Verb": "set", "Key": long_key, "Value": "dg=="}},
    ]);
    let res = agent.put_json("/v1/txn", &ops).await;
    assert_rejected(&res, 400, "max size: 65536 bytes");
    agent.get("/v1/kv/txn-key/ok").await.expect_status(404);
}
