//! The agent's own checks over HTTP: TTL pass/warn/fail/update, check register/deregister, maintenance mode, the agent health summary endpoints, and TTL state across a restart.

use roster_tests::TestAgent;
use serde_json::{Value, json};

async fn register_ttl_service(agent: &TestAgent, id: &str) {
    let body = json!({"Name": "web", "ID": id, "Port": 80, "Check": {"TTL": "30s"}});
    agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
}

async fn passing_ids(agent: &TestAgent, service: &str) -> Vec<String> {
    let res = agent.get(&format!("/v1/health/service/{service}?passing")).await;
    res.expect_status(200);
    res.json().as_array().expect("array").iter().map(|e| e["Service"]["ID"].as_str().unwrap_or("").to_owned()).collect()
}

async fn check(agent: &TestAgent, id: &str) -> Value {
    let res = agent.get("/v1/agent/checks").await;
    res.expect_status(200);
    res.json()[id].clone()
}

#[tokio::test]
async fn ttl_pass_warn_fail_and_update_move_the_service_in_and_out_of_passing() {
    let agent = TestAgent::dev("ttl-flow").await;
    register_ttl_service(&agent, "web-1").await;
    assert!(passing_ids(&agent, "web").await.is_empty(), "a TTL check starts critical");

    agent.put("/v1/agent/check/pass/service:web-1?note=all%20good", "").await.expect_status(200);
    assert_eq!(passing_ids(&agent, "web").await, vec!["web-1"]);
    let c = check(&agent, "service:web-1").await;
    assert_eq!((c["Status"].as_str(), c["Output"].as_str()), (Some("passing"), Some("all good")));

    agent.put("/v1/agent/check/warn/service:web-1", "").await.expect_status(200);
    assert!(passing_ids(&agent, "web").await.is_empty(), "warning is not passing");
    let summary = agent.get("/v1/agent/health/service/id/web-1").await;
    assert_eq!(summary.status, 429);
    assert_eq!(summary.json()["AggregatedStatus"], "warning");

    agent
        .put_json("/v1/agent/check/update/service:web-1", &json!({"Status": "critical", "Output": "disk full"}))
        .await
        .expect_status(200);
    let c = check(&agent, "service:web-1").await;
    assert_eq!((c["Status"].as_str(), c["Output"].as_str()), (Some("critical"), Some("disk full")));
    let text = agent.get("/v1/agent/health/service/name/web?format=text").await;
    assert_eq!((text.status, text.text()), (503, "critical".to_owned()));

    agent.put("/v1/agent/check/pass/service:web-1", "").await.expect_status(200);
    let by_name = agent.get("/v1/agent/health/service/name/web").await;
    assert_eq!(by_name.status, 200);
    assert_eq!(by_name.json()[0]["Service"]["ID"], "web-1");
}

#[tokio::test]
async fn ttl_calls_on_unknown_or_non_ttl_checks_are_refused() {
    let agent = TestAgent::dev("ttl-bad").await;
    assert_eq!(agent.put("/v1/agent/check/pass/nope", "").await.status, 404);
    let body = json!({"Name": "db", "Check": {"TCP": "127.0.0.1:1", "Interval": "10s"}});
    agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
    let res = agent.put("/v1/agent/check/pass/service:db", "").await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("not a TTL check"), "{}", res.text());
    register_ttl_service(&agent, "web-2").await;
    let bad = agent.put_json("/v1/agent/check/update/service:web-2", &json!({"Status": "fine"})).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("Invalid check status"), "{}", bad.text());
    assert_eq!(check(&agent, "service:web-2").await["Status"], "critical", "a refused update changes nothing");
}

#[tokio::test]
async fn check_register_and_deregister_on_the_agent() {
    let agent = TestAgent::dev("check-reg").await;
    let node_check = json!({"Name": "mem", "TTL": "1m", "Notes": "memory pressure", "Status": "passing"});
    agent.put_json("/v1/agent/check/register", &node_check).await.expect_status(200);
    let c = check(&agent, "mem").await;
    assert_eq!(
        (c["Status"].as_str(), c["Notes"].as_str(), c["ServiceID"].as_str()),
        (Some("passing"), Some("memory pressure"), Some(""))
    );
    let health = agent.get(&format!("/v1/health/node/{}", agent.node_name())).await.json();
    assert!(
        health.as_array().expect("array").iter().any(|c| c["CheckID"] == "mem"),
        "the node check reaches the catalog"
    );

    let orphan = json!({"Name": "x", "TTL": "1m", "ServiceID": "ghost"});
    let res = agent.put_json("/v1/agent/check/register", &orphan).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("ghost"), "the error names the unknown service: {}", res.text());

    let script = json!({"Name": "s", "Args": ["/bin/true"], "Interval": "10s"});
    let res = agent.put_json("/v1/agent/check/register", &script).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("Scripts are disabled"), "{}", res.text());

    let untyped = agent.put_json("/v1/agent/check/register", &json!({"Name": "nothing"})).await;
    assert_eq!(untyped.status, 400);

    agent.put("/v1/agent/check/deregister/mem", "").await.expect_status(200);
    assert_eq!(check(&agent, "mem").await, Value::Null);
    assert_eq!(agent.put("/v1/agent/check/deregister/mem", "").await.status, 404);
}

#[tokio::test]
async fn service_and_node_maintenance_take_instances_out_of_passing_and_back() {
    let agent = TestAgent::dev("maint").await;
    agent.put_json("/v1/agent/service/register", &json!({"Name": "api", "Port": 9})).await.expect_status(200);
    assert_eq!(passing_ids(&agent, "api").await, vec!["api"]);

    agent.put("/v1/agent/service/maintenance/api?enable=true&reason=deploying", "").await.expect_status(200);
    assert!(passing_ids(&agent, "api").await.is_empty());
    let c = check(&agent, "_service_maintenance:api").await;
    assert_eq!((c["Status"].as_str(), c["Notes"].as_str()), (Some("critical"), Some("deploying")));
    agent.put("/v1/agent/service/maintenance/api?enable=false", "").await.expect_status(200);
    assert_eq!(passing_ids(&agent, "api").await, vec!["api"]);

    agent.put("/v1/agent/maintenance?enable=true", "").await.expect_status(200);
    assert!(passing_ids(&agent, "api").await.is_empty(), "node maintenance takes every service on the node out");
    assert!(
        check(&agent, "_node_maintenance").await["Notes"]
            .as_str()
            .is_some_and(|n| n.contains("no reason was provided"))
    );
    agent.put("/v1/agent/maintenance?enable=false", "").await.expect_status(200);
    assert_eq!(passing_ids(&agent, "api").await, vec!["api"]);

    assert_eq!(agent.put("/v1/agent/maintenance", "").await.status, 400, "enable is required");
    assert_eq!(agent.put("/v1/agent/service/maintenance/ghost?enable=true", "").await.status, 404);
}

#[tokio::test]
async fn agent_health_endpoints_404_for_unknown_services() {
    let agent = TestAgent::dev("agent-health-404").await;
    assert_eq!(agent.get("/v1/agent/health/service/name/none").await.status, 404);
    assert_eq!(agent.get("/v1/agent/health/service/id/none").await.status, 404);
}

#[tokio::test]
async fn ttl_state_and_registrations_survive_a_restart() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let mut agent = TestAgent::server("ttl-restart", data_dir.path()).await;
    register_ttl_service(&agent, "web-9").await;
    agent.put("/v1/agent/check/pass/service:web-9?note=warm", "").await.expect_status(200);
    agent.kill9();
    agent.restart().await;
    let c = check(&agent, "service:web-9").await;
    assert_eq!(
        (c["Status"].as_str(), c["Output"].as_str()),
        (Some("passing"), Some("warm")),
        "the agent kept its TTL state"
    );
    assert_eq!(passing_ids(&agent, "web").await, vec!["web-9"]);
    let services = agent.get("/v1/agent/services").await.json();
    assert_eq!(services["web-9"]["Service"], "web");
}

#[tokio::test]
async fn services_and_checks_from_config_files_are_registered_at_start() {
    let extra = json!({
        "services": [{"name": "cfg-web", "id": "cfg-web-1", "port": 8081, "tags": ["from-file"], "check": {"ttl": "1m"}}],
        "checks": [{"name": "disk", "ttl": "5m", "status": "passing"}],
    });
    let agent = roster_tests::TestAgent::start_with_config("cfg-defs", roster_tests::AgentMode::Dev, extra)
        .await
        .expect("agent starts with config-file definitions");
    let services = agent.get("/v1/agent/services").await.json();
    assert_eq!(services["cfg-web-1"]["Tags"], json!(["from-file"]));
    assert_eq!(check(&agent, "service:cfg-web-1").await["Status"], "critical");
    assert_eq!(check(&agent, "disk").await["Status"], "passing");
    let catalog = agent.get("/v1/catalog/service/cfg-web").await.json();
    assert_eq!(catalog[0]["ServicePort"], 8081);
}

#[tokio::test]
async fn an_invalid_config_file_service_stops_the_agent_with_its_position() {
    let extra = json!({"services": [{"name": "ok"}, {"port": 1}]});
    let err = roster_tests::TestAgent::start_with_config("cfg-bad", roster_tests::AgentMode::Dev, extra)
        .await
        .err()
        .expect("the agent refuses to start");
    let text = format!("{err:#}");
    assert!(text.contains("services[1]") && text.contains("Missing service name"), "{text}");
}

/// `/v1/agent/services` and `/v1/agent/checks` are the agent's own view, as Consul's are: a client agent that has no
/// server to reach still lists the services and checks registered with it, and each TTL update shows at once.
#[tokio::test]
async fn a_client_agent_with_no_server_lists_its_own_services_and_checks() {
    let data = tempfile::tempdir().expect("data dir");
    let mode = roster_tests::AgentMode::LoneClient { data_dir: data.path().to_path_buf() };
    let agent = TestAgent::start_with_config("no-server-client", mode, json!({})).await.expect("client starts");
    let body = json!({"Name": "api", "Check": {"TTL": "10m", "Notes": "heartbeat"}});
    agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
    agent.put("/v1/agent/check/pass/service:api?note=beating", "").await.expect_status(200);

    let res = agent.get("/v1/agent/checks").await;
    res.expect_status(200);
    let checks = res.json();
    assert_eq!(checks.as_object().map(|map| map.len()), Some(1), "{checks}");
    let check = &checks["service:api"];
    assert_eq!(check["Node"], "no-server-client", "{check}");
    assert_eq!((check["ServiceID"].clone(), check["ServiceName"].clone()), (json!("api"), json!("api")), "{check}");
    assert_eq!((check["Status"].clone(), check["Output"].clone()), (json!("passing"), json!("beating")), "{check}");
    // Nothing reached a catalog: there is no leader to write through.
    assert_eq!(res.header("x-consul-knownleader").as_deref(), Some("false"));

    let services = agent.get("/v1/agent/services").await;
    services.expect_status(200);
    let services = services.json();
    assert_eq!(services.as_object().map(|map| map.len()), Some(1), "{services}");
    assert_eq!((services["api"]["ID"].clone(), services["api"]["Service"].clone()), (json!("api"), json!("api")));
    let one = agent.get("/v1/agent/service/api").await;
    one.expect_status(200);
    assert_eq!(one.json()["Service"], "api");
    let hash = one.header("x-consul-contenthash").expect("a content hash");

    // A hash wait is on the agent's own state, which needs no server: it runs out with the same service, or ends
    // when the service changes.
    let same = agent.get(&format!("/v1/agent/service/api?hash={hash}&wait=100ms")).await;
    same.expect_status(200);
    assert_eq!(same.header("x-consul-contenthash"), Some(hash.clone()));
    let blocked = {
        let (client, url) = (agent.client().clone(), agent.url(&format!("/v1/agent/service/api?hash={hash}&wait=10m")));
        tokio::spawn(async move { client.get(url).send().await.expect("blocking read").json::<Value>().await })
    };
    let changed = json!({"Name": "api", "Port": 8081, "Check": {"TTL": "10m"}});
    agent.put_json("/v1/agent/service/register", &changed).await.expect_status(200);
    let body = tokio::time::timeout(std::time::Duration::from_secs(60), blocked)
        .await
        .expect("the wait ended on the change")
        .expect("join")
        .expect("json");
    assert_eq!(body["Port"], 8081, "{body}");
    assert_ne!(body["ContentHash"], json!(hash));
}
