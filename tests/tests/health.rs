//! The health API: `health/service/:name` (with `?passing` and repeatable `?tag`), `health/checks`,
//! `health/node` and `health/state`, and the read-your-write guarantee after an agent registration.

use roster_tests::TestAgent;
use roster_tests::shape::{
    HEALTH_CHECK_KEYS, HEALTH_ENTRY_KEYS, NODE_KEYS, NODE_SERVICE_KEYS, array, assert_keys, pluck,
};
use serde_json::{Value, json};

async fn register(agent: &TestAgent, definition: Value) {
    agent.put_json("/v1/agent/service/register", &definition).await.expect_status(200);
}

async fn get_json(agent: &TestAgent, path: &str) -> Value {
    let res = agent.get(path).await;
    res.expect_status(200);
    res.json()
}

/// Service IDs of a `health/service` answer, in the order the agent returned them.
fn service_ids(entries: &Value) -> Vec<String> {
    array(entries).iter().map(|entry| entry["Service"]["ID"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Three `web` instances whose only service checks are passing, warning and critical.
async fn register_mixed_web(agent: &TestAgent) {
    for (id, status) in [("web-ok", "passing"), ("web-warn", "warning"), ("web-bad", "critical")] {
        register(agent, json!({"ID": id, "Name": "web", "Port": 80, "Check": {"TTL": "10m", "Status": status}})).await;
    }
}

#[tokio::test]
async fn registration_is_visible_in_health_service_right_after_the_200() {
    let agent = TestAgent::dev("health-ryw").await;
    register(&agent, json!({"Name": "web", "Port": 8080})).await;
    // No retry loop on purpose: a client that registers and then resolves must see its service.
    let entries = get_json(&agent, "/v1/health/service/web").await;
    assert_eq!(service_ids(&entries), ["web"]);
}

#[tokio::test]
async fn health_service_entry_has_the_exact_shape_with_node_and_service_checks() {
    let agent = TestAgent::dev("health-shape").await;
    register(
        &agent,
        json!({"Name": "web", "Tags": ["v1"], "Port": 8080, "Check": {"TTL": "10m", "Status": "passing"}}),
    )
    .await;

    let entries = get_json(&agent, "/v1/health/service/web").await;
    assert_eq!(array(&entries).len(), 1, "{entries}");
    let entry = &entries[0];
    assert_keys(entry, HEALTH_ENTRY_KEYS, "health entry");
    assert_keys(&entry["Node"], NODE_KEYS, "health entry Node");
    assert_eq!(entry["Node"]["Node"], "health-shape");

    let service = &entry["Service"];
    assert_keys(service, NODE_SERVICE_KEYS, "health entry Service");
    assert_eq!(service["ID"], "web");
    assert_eq!(service["Service"], "web");
    assert_eq!(service["Tags"], json!(["v1"]));
    assert_eq!(service["Port"], 8080);
    assert_eq!(service["Proxy"], json!({"Mode": "", "MeshGateway": {}, "Expose": {}}));
    assert_eq!(service["Connect"], json!({}));
    assert_eq!(service["PeerName"], "");

    let mut check_ids = pluck(&entry["Checks"], "CheckID");
    check_ids.sort();
    assert_eq!(check_ids, ["serfHealth", "service:web"], "node checks and service checks both count");
    for check in array(&entry["Checks"]) {
        assert_keys(check, HEALTH_CHECK_KEYS, "health entry check");
        assert_eq!(check["Status"], "passing");
    }
}

#[tokio::test]
async fn passing_filter_drops_warning_and_critical_instances() {
    let agent = TestAgent::dev("health-passing").await;
    register_mixed_web(&agent).await;

    let all = get_json(&agent, "/v1/health/service/web").await;
    assert_eq!(service_ids(&all), ["web-bad", "web-ok", "web-warn"], "ordered by node, then service ID");
    let passing = get_json(&agent, "/v1/health/service/web?passing").await;
    assert_eq!(service_ids(&passing), ["web-ok"]);
    let passing_one = get_json(&agent, "/v1/health/service/web?passing=1").await;
    assert_eq!(service_ids(&passing_one), ["web-ok"]);
    let explicit_false = get_json(&agent, "/v1/health/service/web?passing=false").await;
    assert_eq!(service_ids(&explicit_false), ["web-bad", "web-ok", "web-warn"], "passing=false is no filter");
}

#[tokio::test]
async fn tag_filter_is_repeatable_and_requires_every_tag() {
    let agent = TestAgent::dev("health-tags").await;
    register(&agent, json!({"ID": "web-1", "Name": "web", "Tags": ["v1", "blue"]})).await;
    register(&agent, json!({"ID": "web-2", "Name": "web", "Tags": ["v2", "blue"]})).await;

    assert_eq!(service_ids(&get_json(&agent, "/v1/health/service/web?tag=blue").await), ["web-1", "web-2"]);
    assert_eq!(service_ids(&get_json(&agent, "/v1/health/service/web?tag=v1").await), ["web-1"]);
    assert_eq!(service_ids(&get_json(&agent, "/v1/health/service/web?tag=v1&tag=blue").await), ["web-1"]);
    assert_eq!(get_json(&agent, "/v1/health/service/web?tag=v1&tag=v2").await, json!([]));
}

#[tokio::test]
async fn unknown_service_is_an_empty_list() {
    let agent = TestAgent::dev("health-unknown").await;
    assert_eq!(get_json(&agent, "/v1/health/service/ghost").await, json!([]));
    assert_eq!(get_json(&agent, "/v1/health/checks/ghost").await, json!([]));
    assert_eq!(get_json(&agent, "/v1/health/node/ghost").await, json!([]));
}

#[tokio::test]
async fn consul_service_is_healthy_on_a_dev_agent() {
    let agent = TestAgent::dev("health-consul").await;
    let entries = get_json(&agent, "/v1/health/service/consul?passing").await;
    assert_eq!(service_ids(&entries), ["consul"]);
    assert_eq!(entries[0]["Service"]["Port"], agent.rpc_addr().port());
    assert_eq!(pluck(&entries[0]["Checks"], "CheckID"), ["serfHealth"], "the consul service has only the node check");
}

#[tokio::test]
async fn health_node_reports_the_serf_health_check_of_a_dev_node() {
    let agent = TestAgent::dev("health-node").await;
    let checks = get_json(&agent, "/v1/health/node/health-node").await;
    assert_eq!(array(&checks).len(), 1, "{checks}");
    let check = &checks[0];
    assert_keys(check, HEALTH_CHECK_KEYS, "serfHealth");
    assert_eq!(check["Node"], "health-node");
    assert_eq!(check["CheckID"], "serfHealth");
    assert_eq!(check["Name"], "Serf Health Status");
    assert_eq!(check["Status"], "passing");
    assert_eq!(check["Output"], "Agent alive and reachable");
    assert_eq!(check["ServiceID"], "");
    assert_eq!(check["ServiceName"], "");
    assert_eq!(check["ServiceTags"], json!([]));
    assert_eq!(check["Type"], "");
}

#[tokio::test]
async fn health_checks_lists_only_the_checks_of_that_service() {
    let agent = TestAgent::dev("health-checks").await;
    register_mixed_web(&agent).await;
    register(&agent, json!({"Name": "other", "Check": {"TTL": "10m"}})).await;

    let checks = get_json(&agent, "/v1/health/checks/web").await;
    let mut ids = pluck(&checks, "CheckID");
    ids.sort();
    assert_eq!(ids, ["service:web-bad", "service:web-ok", "service:web-warn"], "no node checks, no other services");
    for check in array(&checks) {
        assert_keys(check, HEALTH_CHECK_KEYS, "health/checks entry");
        assert_eq!(check["ServiceName"], "web");
    }
}

#[tokio::test]
async fn health_state_filters_checks_by_status() {
    let agent = TestAgent::dev("health-state").await;
    register_mixed_web(&agent).await;

    let mut critical = pluck(&get_json(&agent, "/v1/health/state/critical").await, "CheckID");
    critical.sort();
    assert_eq!(critical, ["service:web-bad"]);
    let mut warning = pluck(&get_json(&agent, "/v1/health/state/warning").await, "CheckID");
    warning.sort();
    assert_eq!(warning, ["service:web-warn"]);
    let mut passing = pluck(&get_json(&agent, "/v1/health/state/passing").await, "CheckID");
    passing.sort();
    assert_eq!(passing, ["serfHealth", "service:web-ok"]);
    let mut any = pluck(&get_json(&agent, "/v1/health/state/any").await, "CheckID");
    any.sort();
    assert_eq!(any, ["serfHealth", "service:web-bad", "service:web-ok", "service:web-warn"]);
}

#[tokio::test]
async fn health_state_rejects_an_unknown_state_with_400() {
    let agent = TestAgent::dev("health-bad-state").await;
    agent.get("/v1/health/state/sleepy").await.expect_status(400);
}

#[tokio::test]
async fn catalog_registered_check_shows_in_health_of_an_external_node() {
    let agent = TestAgent::dev("health-ext").await;
    let body = json!({
        "Node": "ext-db", "Address": "10.1.2.3",
        "Service": {"ID": "db-1", "Service": "db", "Port": 5432},
        "Check": {"Node": "ext-db", "CheckID": "db-alive", "Name": "db alive", "Status": "passing", "ServiceID": "db-1"}
    });
    let res = agent.put_json("/v1/catalog/register", &body).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true));

    let entries = get_json(&agent, "/v1/health/service/db?passing").await;
    assert_eq!(service_ids(&entries), ["db-1"]);
    assert_eq!(entries[0]["Node"]["Node"], "ext-db");
    // External nodes have no agent, hence no serfHealth: only the registered check.
    let checks = &entries[0]["Checks"];
    assert_eq!(pluck(checks, "CheckID"), ["db-alive"]);
    assert_keys(&checks[0], HEALTH_CHECK_KEYS, "catalog-registered check");
    assert_eq!(checks[0]["ServiceName"], "db");
}

/// The same read asked again answers the same bytes until a write, and never an answer the write made stale: a
/// server agent keeps the encoded answer of a repeated read for as long as its state has not moved.
#[tokio::test]
async fn a_repeated_read_answers_what_the_last_write_left() {
    let agent = TestAgent::dev("health-repeat").await;
    register(&agent, json!({"ID": "web", "Name": "web", "Port": 80, "Check": {"TTL": "10m", "Status": "passing"}}))
        .await;
    let path = "/v1/health/service/web?passing";
    let first = agent.get(path).await;
    let again = agent.get(path).await;
    again.expect_status(200);
    assert_eq!((again.body.clone(), again.index()), (first.body.clone(), first.index()));
    assert_eq!(service_ids(&again.json()), ["web"]);
    let before = again.index();

    agent.put("/v1/agent/check/fail/service:web", "").await.expect_status(200);
    let failed = agent.get(path).await;
    assert_eq!(failed.json(), json!([]), "the failed instance is gone at once");
    assert!(failed.index() > before);
    // Asked with an index the state has moved past, a blocking read answers at once, with the same bytes.
    let woken = agent.get(&format!("{path}&index={before}&wait=10m")).await;
    assert_eq!((woken.body.clone(), woken.index()), (failed.body.clone(), failed.index()));

    // Now nothing newer than `failed` exists: the read parks until the check passes again, and answers that.
    let parked_path = format!("{path}&index={}&wait=10m", failed.index());
    let before_parking = agent.parked_queries().await;
    let read = agent.get(&parked_path);
    tokio::pin!(read);
    let parked = tokio::select! {
        // Answered without parking: the state has not moved past `failed`, so this can only be the stale answer,
        // which the assertions below refuse.
        answered = &mut read => answered,
        () = async {
            // The pass is written only once the read parked, as seen from the agent's count of parked reads.
            agent.wait_parked(before_parking + 1.0).await;
        } => {
            agent.put("/v1/agent/check/pass/service:web", "").await.expect_status(200);
            read.await
        }
    };
    assert_eq!(service_ids(&parked.json()), ["web"], "the parked read answers the write that woke it");
    assert!(parked.index() > failed.index());
    let catalog = get_json(&agent, "/v1/catalog/service/web").await;
    register(&agent, json!({"ID": "web-2", "Name": "web", "Port": 81})).await;
    let grown = get_json(&agent, "/v1/catalog/service/web").await;
    assert_eq!((array(&catalog).len(), array(&grown).len()), (1, 2), "{grown}");
}

/// Watchers one write wakes read one state: the first to answer keeps its encoded answer and the rest answer with it.
/// Every one of them must answer what a read after the write answers, and the next write must not find that answer.
#[tokio::test]
async fn watchers_woken_by_one_write_all_answer_what_a_read_after_it_answers() {
    let agent = TestAgent::dev("health-woken").await;
    for id in ["web-1", "web-2"] {
        register(&agent, json!({"ID": id, "Name": "web", "Port": 80, "Check": {"TTL": "10m", "Status": "passing"}}))
            .await;
    }
    let path = "/v1/health/service/web?passing";
    let index = agent.get(path).await.index();
    let before_parking = agent.parked_queries().await;
    let watchers: Vec<_> = (0..20).map(|_| agent.spawn_get(&format!("{path}&index={index}&wait=10m"))).collect();
    agent.wait_parked(before_parking + 20.0).await;

    agent.put("/v1/agent/check/fail/service:web-1", "").await.expect_status(200);
    let after = agent.get(path).await;
    assert_eq!(service_ids(&after.json()), ["web-2"]);
    for watcher in watchers {
        let woken = watcher.await.expect("watcher task");
        assert_eq!((woken.index(), woken.text()), (after.index(), after.text()));
    }

    agent.put("/v1/agent/check/fail/service:web-2", "").await.expect_status(200);
    let woken = agent.get(&format!("{path}&index={}&wait=10m", after.index())).await;
    assert_eq!(woken.json(), json!([]), "the next write's answer, not the one kept for the last state");
    assert!(woken.index() > after.index());
}
