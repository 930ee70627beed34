//! The agent's local service API: register (with check definitions) / deregister, `agent/services`,
//! `agent/service/:id` and `agent/checks`, with the exact shapes clients diff against.

use roster_tests::TestAgent;
use roster_tests::shape::{AGENT_SERVICE_KEYS, HEALTH_CHECK_KEYS, assert_keys};
use serde_json::{Value, json};

/// Registers `definition` and asserts Consul's answer: 200 with an empty body.
async fn register(agent: &TestAgent, definition: &Value) {
    let res = agent.put_json("/v1/agent/service/register", definition).await;
    res.expect_status(200);
    assert!(res.body.is_empty(), "agent register answers with an empty body, got {:?}", res.text());
}

async fn services(agent: &TestAgent) -> Value {
    let res = agent.get("/v1/agent/services").await;
    res.expect_status(200);
    res.json()
}

async fn checks(agent: &TestAgent) -> Value {
    let res = agent.get("/v1/agent/checks").await;
    res.expect_status(200);
    res.json()
}

#[tokio::test]
async fn fresh_dev_agent_has_no_local_services_or_checks() {
    // The `consul` service and `serfHealth` live in the catalog, not in the agent's local state.
    let agent = TestAgent::dev("agent-fresh").await;
    assert_eq!(services(&agent).await, json!({}));
    assert_eq!(checks(&agent).await, json!({}));
}

#[tokio::test]
async fn plain_service_is_echoed_with_consul_defaults_and_no_optional_fields() {
    let agent = TestAgent::dev("agent-plain").await;
    register(&agent, &json!({"Name": "foo"})).await;

    let expected = json!({
        "ID": "foo", "Service": "foo", "Tags": [], "Meta": {}, "Port": 0, "Address": "",
        "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false, "Datacenter": "dc1"
    });
    assert_eq!(services(&agent).await, json!({"foo": expected}));
}

#[tokio::test]
async fn full_registration_is_echoed_exactly_as_registered() {
    // Nomad re-registers on any difference between what it sent and what it reads back.
    let agent = TestAgent::dev("agent-full").await;
    register(
        &agent,
        &json!({
            "ID": "web-1", "Name": "web", "Tags": ["v1", "primary"], "Address": "10.0.0.7", "Port": 8080,
            "Meta": {"Version": "1.2.3"}, "EnableTagOverride": true, "Weights": {"Passing": 10, "Warning": 3}
        }),
    )
    .await;

    let expected = json!({
        "ID": "web-1", "Service": "web", "Tags": ["v1", "primary"], "Meta": {"Version": "1.2.3"}, "Port": 8080,
        "Address": "10.0.0.7", "Weights": {"Passing": 10, "Warning": 3}, "EnableTagOverride": true,
        "Datacenter": "dc1"
    });
    assert_eq!(services(&agent).await, json!({"web-1": expected}));
}

#[tokio::test]
async fn field_names_match_case_insensitively_but_meta_keys_keep_their_case() {
    let agent = TestAgent::dev("agent-casing").await;
    register(
        &agent,
        &json!({
            "name": "api", "id": "api-1", "tags": ["x"], "port": 9000, "address": "10.0.0.9",
            "enable_tag_override": true, "meta": {"Version": "2", "lower_key": "v", "MiXeD": "m"}
        }),
    )
    .await;

    let services = services(&agent).await;
    let service = &services["api-1"];
    assert_keys(service, AGENT_SERVICE_KEYS, "service registered with lowercase keys");
    assert_eq!(service["Service"], "api");
    assert_eq!(service["Tags"], json!(["x"]));
    assert_eq!(service["Port"], 9000);
    assert_eq!(service["Address"], "10.0.0.9");
    assert_eq!(service["EnableTagOverride"], true, "enable_tag_override must map to EnableTagOverride");
    assert_eq!(
        service["Meta"],
        json!({"Version": "2", "lower_key": "v", "MiXeD": "m"}),
        "user map keys are never normalised"
    );
}

#[tokio::test]
async fn lowercase_tagged_addresses_come_back_capitalised() {
    let agent = TestAgent::dev("agent-tagged").await;
    register(
        &agent,
        &json!({"Name": "edge", "Port": 443, "TaggedAddresses": {"lan": {"address": "10.0.0.1", "port": 443},
            "wan": {"address": "198.51.100.7", "port": 8443}}}),
    )
    .await;

    let services = services(&agent).await;
    let service = &services["edge"];
    let mut expected_keys = AGENT_SERVICE_KEYS.to_vec();
    expected_keys.push("TaggedAddresses");
    assert_keys(service, &expected_keys, "service with TaggedAddresses");
    assert_eq!(
        service["TaggedAddresses"],
        json!({"lan": {"Address": "10.0.0.1", "Port": 443}, "wan": {"Address": "198.51.100.7", "Port": 8443}})
    );
}

#[tokio::test]
async fn service_by_id_adds_a_content_hash_that_matches_its_header_and_tracks_changes() {
    let agent = TestAgent::dev("agent-by-id").await;
    register(&agent, &json!({"ID": "cache-1", "Name": "cache", "Tags": ["a"], "Port": 6379})).await;

    let first = agent.get("/v1/agent/service/cache-1").await;
    first.expect_status(200);
    let body = first.json();
    let mut expected_keys = AGENT_SERVICE_KEYS.to_vec();
    expected_keys.push("ContentHash");
    assert_keys(&body, &expected_keys, "agent/service/:id");
    assert_eq!(body["ID"], "cache-1");
    assert_eq!(body["Service"], "cache");
    let hash = body["ContentHash"].as_str().unwrap_or_default().to_owned();
    assert!(!hash.is_empty(), "ContentHash must be a non-empty string: {body}");
    assert_eq!(first.header("X-Consul-ContentHash").as_deref(), Some(hash.as_str()));

    register(&agent, &json!({"ID": "cache-1", "Name": "cache", "Tags": ["b"], "Port": 6379})).await;
    let second = agent.get("/v1/agent/service/cache-1").await.json();
    assert_eq!(second["Tags"], json!(["b"]), "re-registering the same ID replaces the service");
    assert_ne!(second["ContentHash"].as_str(), Some(hash.as_str()), "a changed service must change its hash");
}

#[tokio::test]
async fn unknown_service_id_is_404() {
    let agent = TestAgent::dev("agent-unknown-id").await;
    agent.get("/v1/agent/service/nope").await.expect_status(404);
}

#[tokio::test]
async fn reregistering_an_id_replaces_rather_than_duplicates() {
    let agent = TestAgent::dev("agent-rereg").await;
    register(&agent, &json!({"ID": "w", "Name": "web", "Tags": ["v1"]})).await;
    register(&agent, &json!({"ID": "w", "Name": "web", "Tags": ["v2"], "Port": 81})).await;

    let services = services(&agent).await;
    assert_eq!(services.as_object().map(|map| map.len()), Some(1), "one ID, one service: {services}");
    assert_eq!(services["w"]["Tags"], json!(["v2"]));
    assert_eq!(services["w"]["Port"], 81);
}

#[tokio::test]
async fn service_id_with_hash_characters_is_addressable_url_encoded() {
    // registrator-style IDs such as `app#127.0.0.1#3000` are valid and travel URL-encoded.
    let agent = TestAgent::dev("agent-hash-id").await;
    register(&agent, &json!({"ID": "app#127.0.0.1#3000", "Name": "app", "Port": 3000})).await;

    let res = agent.get("/v1/agent/service/app%23127.0.0.1%233000").await;
    res.expect_status(200);
    assert_eq!(res.json()["ID"], "app#127.0.0.1#3000");

    agent.put("/v1/agent/service/deregister/app%23127.0.0.1%233000", "").await.expect_status(200);
    assert_eq!(services(&agent).await, json!({}));
}

#[tokio::test]
async fn deregister_removes_the_service_and_its_checks_everywhere() {
    let agent = TestAgent::dev("agent-dereg").await;
    register(&agent, &json!({"Name": "web", "Port": 80, "Check": {"TTL": "10m"}})).await;
    assert!(checks(&agent).await.get("service:web").is_some(), "the service check must exist before deregistering");

    let res = agent.put("/v1/agent/service/deregister/web", "").await;
    res.expect_status(200);
    assert!(res.body.is_empty(), "deregister answers with an empty body, got {:?}", res.text());
    assert_eq!(services(&agent).await, json!({}));
    assert_eq!(checks(&agent).await, json!({}), "a service's checks go with it");
    let health = agent.get("/v1/health/service/web").await;
    health.expect_status(200);
    assert_eq!(health.json(), json!([]), "the catalog must drop the instance right after the 200");
}

#[tokio::test]
async fn one_check_definition_becomes_service_id_check_named_after_the_service_and_critical() {
    let agent = TestAgent::dev("agent-one-check").await;
    register(&agent, &json!({"Name": "web", "Tags": ["t1"], "Port": 80, "Check": {"TTL": "10m"}})).await;

    let checks = checks(&agent).await;
    assert_eq!(checks.as_object().map(|map| map.len()), Some(1), "{checks}");
    let check = &checks["service:web"];
    assert_keys(check, HEALTH_CHECK_KEYS, "agent check");
    assert_eq!(check["Node"], "agent-one-check");
    assert_eq!(check["CheckID"], "service:web");
    assert_eq!(check["Name"], "Service 'web' check");
    assert_eq!(check["Status"], "critical", "a new check starts critical unless told otherwise");
    assert_eq!(check["ServiceID"], "web");
    assert_eq!(check["ServiceName"], "web");
    assert_eq!(check["ServiceTags"], json!(["t1"]));
    assert_eq!(check["Type"], "ttl");
}

#[tokio::test]
async fn several_check_definitions_are_numbered_and_keep_their_fields() {
    let agent = TestAgent::dev("agent-many-checks").await;
    register(
        &agent,
        &json!({"ID": "db-1", "Name": "db", "Checks": [
            {"TTL": "10m"},
            {"TTL": "10m", "Name": "replication lag", "Status": "passing", "Notes": "lag under 1s"}
        ]}),
    )
    .await;

    let checks = checks(&agent).await;
    let mut ids: Vec<&String> = checks.as_object().map(|map| map.keys().collect()).unwrap_or_default();
    ids.sort();
    assert_eq!(ids, ["service:db-1:1", "service:db-1:2"]);
    let first = &checks["service:db-1:1"];
    assert_eq!(first["Name"], "Service 'db' check");
    assert_eq!(first["Status"], "critical");
    let second = &checks["service:db-1:2"];
    assert_keys(second, HEALTH_CHECK_KEYS, "numbered agent check");
    assert_eq!(second["Name"], "replication lag");
    assert_eq!(second["Status"], "passing");
    assert_eq!(second["Notes"], "lag under 1s");
    assert_eq!(second["ServiceID"], "db-1");
    assert_eq!(second["ServiceName"], "db");
}

#[tokio::test]
async fn check_with_explicit_id_and_initial_status_is_stored_as_given() {
    let agent = TestAgent::dev("agent-check-id").await;
    register(
        &agent,
        &json!({"Name": "queue", "Check": {"CheckID": "queue-ttl", "Name": "queue alive", "TTL": "10m", "Status": "warning"}}),
    )
    .await;

    let checks = checks(&agent).await;
    let check = &checks["queue-ttl"];
    assert_eq!(check["CheckID"], "queue-ttl");
    assert_eq!(check["Name"], "queue alive");
    assert_eq!(check["Status"], "warning");
    assert_eq!(check["ServiceID"], "queue");
}

#[tokio::test]
async fn body_is_parsed_whatever_the_content_type() {
    // `curl -d` sends application/x-www-form-urlencoded; the Go client sends no Content-Type.
    let agent = TestAgent::dev("agent-content-type").await;
    let res = agent
        .client()
        .put(agent.url("/v1/agent/service/register"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(json!({"Name": "curl-style", "Port": 1}).to_string())
        .send()
        .await
        .expect("register request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(services(&agent).await["curl-style"]["Port"], 1);
}
