//! `?filter=` (Consul's go-bexpr expressions) on the agent, catalog and health listings: what each keeps, the 400s for malformed or
//! unknown-field filters, the limits, that a blocking query's index stays the unfiltered one, and go-bexpr's `any`/`all`
//! collection expressions over checks, tags and metadata.

use roster_tests::shape::{array, pluck};
use roster_tests::{TestAgent, query_escape};
use serde_json::{Value, json};

/// `path` with `?filter=<expr>` appended (or `&filter=` when it has a query already).
fn filtered(path: &str, expr: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}filter={}", query_escape(expr))
}

async fn get_filtered(agent: &TestAgent, path: &str, expr: &str) -> Value {
    let res = agent.get(&filtered(path, expr)).await;
    res.expect_status(200);
    res.json()
}

/// The sorted keys of a JSON object (the agent endpoints answer objects keyed by ID).
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().map(|map| map.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// This agent's `web-1` (qa, passing), `web-2` (prod, critical) and `db-1` (no check), plus an external node `ext` in rack r2 with `web-ext`.
async fn agent_with_services(name: &str) -> TestAgent {
    let agent = TestAgent::dev(name).await;
    let services = [
        json!({"ID": "web-1", "Name": "web", "Tags": ["primary", "v1"], "Port": 8080,
               "Meta": {"env": "qa", "version": "1.2"}, "Check": {"TTL": "10m", "Status": "passing"}}),
        json!({"ID": "web-2", "Name": "web", "Tags": ["secondary", "v2"], "Port": 8081,
               "Meta": {"env": "prod", "version": "2.0"}, "Check": {"TTL": "10m", "Status": "critical"}}),
        json!({"ID": "db-1", "Name": "db", "Tags": ["primary"], "Port": 5432, "Meta": {"env": "prod"}}),
    ];
    for service in &services {
        agent.put_json("/v1/agent/service/register", service).await.expect_status(200);
    }
    let external = json!({
        "Node": "ext", "Address": "10.1.2.3", "NodeMeta": {"rack": "r2"},
        "Service": {"ID": "web-ext", "Service": "web", "Tags": ["edge"], "Port": 80, "Meta": {"env": "qa"}}
    });
    agent.put_json("/v1/catalog/register", &external).await.expect_status(200);
    agent
}

#[tokio::test]
async fn agent_services_and_checks_keep_only_matching_entries() {
    let agent = agent_with_services("filter-agent").await;
    let services = |expr: &'static str| {
        let agent = &agent;
        async move { keys(&get_filtered(agent, "/v1/agent/services", expr).await) }
    };
    assert_eq!(services(r#"Meta.env == "qa""#).await, ["web-1"]);
    assert_eq!(services(r#""primary" in Tags"#).await, ["db-1", "web-1"]);
    assert_eq!(services("Service == web and Port != 8080").await, ["web-2"]);
    assert_eq!(services(r#"Meta.version matches "^2\\.""#).await, ["web-2"]);
    assert_eq!(services("Meta.version is empty").await, ["db-1"], "a missing meta key is empty");
    assert_eq!(services("not (Tags contains v1 or Tags contains v2)").await, ["db-1"]);
    assert_eq!(services("Service == nothing").await, Vec::<String>::new());

    let checks = get_filtered(&agent, "/v1/agent/checks", "Status == critical").await;
    assert_eq!(keys(&checks), ["service:web-2"]);
    let checks = get_filtered(&agent, "/v1/agent/checks", r#"ServiceName == web and "v1" in ServiceTags"#).await;
    assert_eq!(keys(&checks), ["service:web-1"]);
}

#[tokio::test]
async fn catalog_listings_filter_nodes_instances_and_a_nodes_services() {
    let agent = agent_with_services("filter-catalog").await;
    let nodes = get_filtered(&agent, "/v1/catalog/nodes", "Meta.rack == r2").await;
    assert_eq!(pluck(&nodes, "Node"), ["ext"]);
    let nodes = get_filtered(&agent, "/v1/catalog/nodes", r#""rack" not in Meta"#).await;
    assert_eq!(pluck(&nodes, "Node"), ["filter-catalog"]);

    let rows = get_filtered(&agent, "/v1/catalog/service/web", r#"ServiceMeta.version matches "^1\\.""#).await;
    assert_eq!(pluck(&rows, "ServiceID"), ["web-1"]);
    let rows = get_filtered(&agent, "/v1/catalog/service/web", "NodeMeta.rack == r2").await;
    assert_eq!(pluck(&rows, "ServiceID"), ["web-ext"]);
    let rows =
        get_filtered(&agent, "/v1/catalog/service/web", "ServicePort == 8081 or ServiceTags contains edge").await;
    assert_eq!(sorted(pluck(&rows, "ServiceID")), ["web-2", "web-ext"]);
    let rows = get_filtered(&agent, "/v1/catalog/service/web?tag=primary", "ServiceMeta.env == qa").await;
    assert_eq!(pluck(&rows, "ServiceID"), ["web-1"], "?tag and ?filter combine");

    // On the node endpoints the filter applies to the node's services; the node itself stays.
    let node = get_filtered(&agent, "/v1/catalog/node/filter-catalog", "Service == db").await;
    assert_eq!(node["Node"]["Node"], "filter-catalog");
    assert_eq!(keys(&node["Services"]), ["db-1"]);
    let node = get_filtered(&agent, "/v1/catalog/node-services/filter-catalog", r#"Meta.env == "prod""#).await;
    assert_eq!(sorted(pluck(&node["Services"], "ID")), ["db-1", "web-2"]);
}

#[tokio::test]
async fn health_listings_filter_entries_and_checks() {
    let agent = agent_with_services("filter-health").await;
    let ids = |entries: &Value| {
        sorted(array(entries).iter().map(|e| e["Service"]["ID"].as_str().unwrap_or_default().to_owned()).collect())
    };
    // A selector into Checks matches when any of the entry's checks does (serfHealth passes on this node).
    let entries = get_filtered(&agent, "/v1/health/service/web", "Checks.Status == critical").await;
    assert_eq!(ids(&entries), ["web-2"]);
    let entries = get_filtered(&agent, "/v1/health/service/web", "Checks.Status == passing").await;
    assert_eq!(ids(&entries), ["web-1", "web-2"]);
    let entries = get_filtered(&agent, "/v1/health/service/web", "Checks is empty").await;
    assert_eq!(ids(&entries), ["web-ext"], "the external node has no checks");
    let entries = get_filtered(&agent, "/v1/health/service/web", "Node.Meta.rack != r2 and Service.Port == 8080").await;
    assert_eq!(ids(&entries), ["web-1"]);
    let entries = get_filtered(&agent, "/v1/health/service/web?passing", "Service.Meta.env == qa").await;
    assert_eq!(ids(&entries), ["web-1", "web-ext"], "?passing and ?filter combine");

    let checks = get_filtered(&agent, "/v1/health/checks/web", "Status == passing").await;
    assert_eq!(pluck(&checks, "CheckID"), ["service:web-1"]);
    let checks = get_filtered(&agent, "/v1/health/node/filter-health", r#"ServiceName != """#).await;
    assert_eq!(sorted(pluck(&checks, "CheckID")), ["service:web-1", "service:web-2"]);
    let checks = get_filtered(&agent, "/v1/health/state/any", "CheckID == serfHealth").await;
    assert_eq!(pluck(&checks, "CheckID"), ["serfHealth"]);
    let checks = get_filtered(&agent, "/v1/health/state/critical", "ServiceID matches `^web`").await;
    assert_eq!(pluck(&checks, "CheckID"), ["service:web-2"]);
}

#[tokio::test]
async fn any_and_all_collection_expressions_select_over_checks_tags_and_meta() {
    let agent = agent_with_services("filter-collections").await;
    let ids = |entries: &Value| {
        sorted(array(entries).iter().map(|e| e["Service"]["ID"].as_str().unwrap_or_default().to_owned()).collect())
    };
    // web-1: serfHealth + its passing check; web-2: serfHealth + its critical check; web-ext: no checks.
    let entries = get_filtered(&agent, "/v1/health/service/web", r#"any Checks as c { c.Status == "critical" }"#).await;
    assert_eq!(ids(&entries), ["web-2"]);
    let entries = get_filtered(&agent, "/v1/health/service/web", "all Checks as c { c.Status == passing }").await;
    assert_eq!(ids(&entries), ["web-1", "web-ext"], "all over no checks is true");
    let entries = get_filtered(
        &agent,
        "/v1/health/service/web",
        "(any Service.Tags as t { t matches `^v` }) and Checks is not empty",
    )
    .await;
    assert_eq!(ids(&entries), ["web-1", "web-2"]);

    let services =
        keys(&get_filtered(&agent, "/v1/agent/services", "any Meta as k, v { k == version and v == \"2.0\" }").await);
    assert_eq!(services, ["web-2"]);
    let services = keys(&get_filtered(&agent, "/v1/agent/services", "all Tags as t { t == primary }").await);
    assert_eq!(services, ["db-1"]);

    let res = agent.get(&filtered("/v1/agent/services", "any Port as p { p == 1 }")).await;
    res.expect_status(400);
    assert!(res.text().contains("Port is not a list or a map"), "{}", res.text());
    let res = agent.get(&filtered("/v1/agent/services", "any Tags as t { t == x")).await;
    res.expect_status(400);
    assert!(res.text().contains("Failed to parse filter expression: 1:"), "{}", res.text());
}

#[tokio::test]
async fn bad_filters_are_400s_that_say_why() {
    let agent = agent_with_services("filter-errors").await;
    let endpoints = [
        "/v1/agent/services",
        "/v1/agent/checks",
        "/v1/catalog/nodes",
        "/v1/catalog/service/web",
        "/v1/catalog/node/filter-errors",
        "/v1/catalog/node-services/filter-errors",
        "/v1/health/service/web",
        "/v1/health/checks/web",
        "/v1/health/node/filter-errors",
        "/v1/health/state/any",
    ];
    for path in endpoints {
        let res = agent.get(&filtered(path, "Node = x")).await;
        res.expect_status(400);
        let text = res.text();
        assert!(
            text.starts_with("Failed to parse filter expression: 1:6 (5): no match found, expected: "),
            "{path}: {text}"
        );
        assert!(text.contains(r#""==""#), "{path}: the message lists what could come there: {text}");

        let res = agent.get(&filtered(path, "Nope == x")).await;
        res.expect_status(400);
        assert_eq!(res.text().trim(), r#"Selector "Nope" is not valid"#, "{path}: an unknown field is refused");
    }
    let res = agent.get(&filtered("/v1/agent/services", r#"Meta.env == "qa"#)).await;
    res.expect_status(400);
    assert_eq!(res.text().trim(), "Failed to parse filter expression: 1:13 (12): Unterminated string literal");
    let res = agent.get(&filtered("/v1/agent/services", "Port == http")).await;
    res.expect_status(400);
    assert!(res.text().contains(r#"Failed to coerce value "http" for selector "Port""#), "{}", res.text());
    let res = agent.get(&filtered("/v1/agent/services", r#"ID matches "[""#)).await;
    res.expect_status(400);
    assert!(res.text().starts_with("Failed to compile regular expression"), "{}", res.text());

    // An empty filter is no filter, as in Consul.
    let all = agent.get("/v1/agent/services?filter=").await;
    all.expect_status(200);
    assert_eq!(keys(&all.json()), ["db-1", "web-1", "web-2"]);
}

#[tokio::test]
async fn long_and_deeply_nested_filters_are_refused_and_the_agent_survives() {
    let agent = TestAgent::dev("filter-limits").await;
    let long = format!("ID == \"{}\"", "x".repeat(5000));
    let res = agent.get(&filtered("/v1/agent/services", &long)).await;
    res.expect_status(400);
    assert!(res.text().contains("too long"), "{}", res.text());

    let deep = format!("{}ID == x{}", "(".repeat(2000), ")".repeat(2000));
    let res = agent.get(&filtered("/v1/agent/services", &deep)).await;
    res.expect_status(400);
    assert!(res.text().contains("nested too deeply"), "{}", res.text());
    let nots = format!("{}ID == x", "not ".repeat(1000));
    agent.get(&filtered("/v1/health/state/any", &nots)).await.expect_status(400);

    let shallow = format!("{}ID == x{}", "(".repeat(20), ")".repeat(20));
    agent.get(&filtered("/v1/agent/services", &shallow)).await.expect_status(200);
    assert!(agent.is_running(), "the agent survived the hostile filters");
}

#[tokio::test]
async fn blocking_reads_report_the_unfiltered_index() {
    let agent = agent_with_services("filter-index").await;
    let plain = agent.get("/v1/health/service/web").await;
    plain.expect_status(200);
    let none = agent.get(&filtered("/v1/health/service/web", "Service.ID == nothing")).await;
    none.expect_status(200);
    assert_eq!(none.json(), json!([]));
    assert_eq!(none.index(), plain.index(), "an empty filtered answer still carries the data's index");

    // A blocking read with a filter wakes on a change to the service, even one the filter leaves out.
    let index = plain.index();
    // The wait is long, so an answer within the test's minute is the wake-up.
    let path = filtered(&format!("/v1/health/service/web?index={index}&wait=10m"), r#"Service.ID == "web-1""#);
    let parked = agent.parked_queries().await;
    let waiter = agent.spawn_get(&path);
    agent.wait_parked(parked + 1.0).await;
    agent.put("/v1/agent/check/pass/service:web-2", "").await.expect_status(200);
    let res = tokio::time::timeout(std::time::Duration::from_secs(60), waiter)
        .await
        .expect("the change woke the filtered blocking read")
        .expect("the waiter task ran");
    res.expect_status(200);
    assert!(res.index() > index);
    let entries = res.json();
    assert_eq!(array(&entries).len(), 1, "the woken read is still filtered: {entries}");
    assert_eq!(entries[0]["Service"]["ID"], "web-1");
}
