//! Prepared queries end to end over HTTP (`/v1/query` create, list, read, update, delete, execute, explain),
//! templates included, with failing and canary instances excluded, and the refusals of bad definitions.
//! The catalog names documentation addresses (192.0.2.x); nothing is ever sent to them.

use reqwest::Method;
use roster_tests::Resp;
use roster_tests::TestAgent;
use serde_json::{Value, json};

async fn post(agent: &TestAgent, path: &str, body: &Value) -> Resp {
    agent.request(Method::POST, path, Some(body.to_string().into_bytes())).await
}

async fn register(agent: &TestAgent, node: &str, address: &str, id: &str, service: &str, tags: &[&str], status: &str) {
    let body = json!({
        "Node": node, "Address": address, "NodeMeta": {"rack": format!("rack-{node}")},
        "Service": {"ID": id, "Service": service, "Port": 8080, "Tags": tags},
        "Checks": [{"CheckID": format!("check-{id}"), "Name": "probe", "ServiceID": id, "Status": status}],
    });
    agent.put_json("/v1/catalog/register", &body).await.expect_status(200);
}

/// web-1 passing, web-2 passing canary, web-3 warning, web-4 critical; db-1 passing.
async fn catalog(agent: &TestAgent) {
    register(agent, "n1", "192.0.2.1", "web-1", "web", &["v1"], "passing").await;
    register(agent, "n2", "192.0.2.2", "web-2", "web", &["v1", "canary"], "passing").await;
    register(agent, "n3", "192.0.2.3", "web-3", "web", &["v1"], "warning").await;
    register(agent, "n4", "192.0.2.4", "web-4", "web", &["v1"], "critical").await;
    register(agent, "n5", "192.0.2.5", "db-1", "db", &["primary"], "passing").await;
}

fn service_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["Nodes"]
        .as_array()
        .expect("Nodes is a list")
        .iter()
        .map(|entry| entry["Service"]["ID"].as_str().expect("an ID").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_query_is_created_read_listed_executed_updated_and_deleted() {
    let agent = TestAgent::dev("pq-crud").await;
    catalog(&agent).await;
    let definition = json!({
        "Name": "web",
        "Service": {"Service": "web", "OnlyPassing": true, "Tags": ["!canary"]},
        "DNS": {"TTL": "10s"},
    });
    let created = post(&agent, "/v1/query", &definition).await;
    created.expect_status(200);
    let id = created.json()["ID"].as_str().expect("an ID").to_owned();

    let read = agent.get(&format!("/v1/query/{id}")).await;
    read.expect_status(200);
    let stored = &read.json()[0];
    assert_eq!(stored["ID"], id.as_str());
    assert_eq!(stored["Name"], "web");
    assert_eq!(stored["Service"]["Tags"], json!(["!canary"]));
    assert_eq!(stored["DNS"]["TTL"], "10s");
    assert_eq!(stored["Template"]["Type"], "");
    assert!(stored["CreateIndex"].as_u64().unwrap() > 0);
    let listed = agent.get("/v1/query").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // By name and by ID: the passing, non-canary instance only.
    for asked in ["web", "WEB", id.as_str()] {
        let executed = agent.get(&format!("/v1/query/{asked}/execute")).await;
        executed.expect_status(200);
        let body = executed.json();
        assert_eq!(service_ids(&body), ["web-1"], "{asked}");
        assert_eq!((body["Service"].clone(), body["Datacenter"].clone()), (json!("web"), json!("dc1")));
        assert_eq!(body["DNS"], json!({"TTL": "10s"}));
        assert_eq!(body["Failovers"], 0);
        assert_eq!(body["Nodes"][0]["Node"]["Node"], "n1");
        assert_eq!(body["Nodes"][0]["Checks"][0]["Status"], "passing");
    }

    // Without OnlyPassing, warning instances count as healthy; critical ones never do.
    let updated = json!({"Name": "web", "Service": {"Service": "web", "Tags": ["v1"]}});
    agent.put_json(&format!("/v1/query/{id}"), &updated).await.expect_status(200);
    let executed = agent.get("/v1/query/web/execute").await.json();
    assert_eq!(service_ids(&executed), ["web-1", "web-2", "web-3"]);
    let limited = agent.get("/v1/query/web/execute?limit=2").await.json();
    assert_eq!(limited["Nodes"].as_array().map(Vec::len), Some(2));
    let reread = agent.get(&format!("/v1/query/{id}")).await.json();
    assert!(reread[0]["ModifyIndex"].as_u64() > reread[0]["CreateIndex"].as_u64());

    agent.delete(&format!("/v1/query/{id}")).await.expect_status(200);
    let gone = agent.get(&format!("/v1/query/{id}")).await;
    gone.expect_status(404);
    assert_eq!(gone.text().trim(), "Query not found");
    let missing = agent.get("/v1/query/web/execute").await;
    missing.expect_status(404);
    assert_eq!(missing.text().trim(), "Query not found");
    assert_eq!(agent.get("/v1/query").await.json(), json!([]));
}

#[tokio::test]
async fn templates_render_for_the_name_asked_and_the_longest_prefix_wins() {
    let agent = TestAgent::dev("pq-templates").await;
    catalog(&agent).await;
    let catch_all = json!({
        "Name": "",
        "Template": {"Type": "name_prefix_match"},
        "Service": {"Service": "${name.full}", "OnlyPassing": true},
    });
    post(&agent, "/v1/query", &catch_all).await.expect_status(200);
    let regexp = json!({
        "Name": "svc-",
        "Template": {"Type": "name_prefix_match", "Regexp": "^svc-([^-]+)-?(.*)$", "RemoveEmptyTags": true},
        "Service": {"Service": "${match(1)}", "Tags": ["${match(2)}", "!canary"]},
    });
    post(&agent, "/v1/query", &regexp).await.expect_status(200);

    assert_eq!(service_ids(&agent.get("/v1/query/web/execute").await.json()), ["web-1", "web-2"]);
    assert_eq!(service_ids(&agent.get("/v1/query/db/execute").await.json()), ["db-1"]);
    assert_eq!(service_ids(&agent.get("/v1/query/svc-web/execute").await.json()), ["web-1", "web-3"]);
    assert!(service_ids(&agent.get("/v1/query/svc-db-replica/execute").await.json()).is_empty());
    assert_eq!(service_ids(&agent.get("/v1/query/svc-db-primary/execute").await.json()), ["db-1"]);
    assert!(service_ids(&agent.get("/v1/query/nothing-here/execute").await.json()).is_empty());

    let explained = agent.get("/v1/query/svc-db-primary/explain").await;
    explained.expect_status(200);
    let query = &explained.json()["Query"];
    assert_eq!(query["Service"]["Service"], "db");
    assert_eq!(query["Service"]["Tags"], json!(["primary", "!canary"]));
    assert_eq!(query["Name"], "svc-");
    let rendered_empty = agent.get("/v1/query/svc-web/explain").await.json();
    assert_eq!(rendered_empty["Query"]["Service"]["Tags"], json!(["!canary"]), "RemoveEmptyTags drops the empty tag");

    // A template is found by name only.
    let listed = agent.get("/v1/query").await.json();
    let template_id = listed.as_array().unwrap().iter().find(|q| q["Name"] == "svc-").unwrap()["ID"].clone();
    let by_id = agent.get(&format!("/v1/query/{}/execute", template_id.as_str().unwrap())).await;
    by_id.expect_status(500);
    assert!(by_id.text().contains("can only be resolved up by name"), "{}", by_id.text());
}

#[tokio::test]
async fn bad_definitions_are_refused_and_change_nothing() {
    let agent = TestAgent::dev("pq-bad").await;
    let refused = [
        (json!({"Name": "x", "Service": {}}), "Must provide a Service name to query"),
        (
            json!({"Name": "x", "Template": {"Type": "name_prefix_match", "Regexp": "(["}, "Service": {"Service": "x"}}),
            "Bad Regexp",
        ),
        (json!({"Name": "x", "Service": {"Service": "x"}, "DNS": {"TTL": "ten seconds"}}), "Bad DNS TTL 'ten seconds'"),
        (
            json!({"Name": "x", "Template": {"Type": "regexp"}, "Service": {"Service": "x"}}),
            "Bad Template.Type 'regexp'",
        ),
        (json!({"Service": {"Service": "x"}}), "Must be bound to a session"),
        (json!({"Name": "x", "Service": {"Service": "x", "Failover": {"NearestN": -1}}}), "Bad NearestN '-1'"),
        (
            json!({"Name": "x", "Service": {"Service": "x", "Failover": {"NearestN": 1, "Targets": [{"Datacenter": "dc2"}]}}}),
            "Targets cannot be populated with NearestN or Datacenters",
        ),
        (
            json!({"Name": "x", "Service": {"Service": "x", "Failover": {"Targets": [{"Peer": "p"}]}}}),
            "Peer is not supported",
        ),
        (json!({"Name": "x", "Service": {"Service": "x"}, "Bogus": 1}), "unknown field \"Bogus\""),
    ];
    for (body, expect) in refused {
        let res = post(&agent, "/v1/query", &body).await;
        res.expect_status(400);
        assert!(res.text().contains(expect), "{body}: {:?} should contain {expect:?}", res.text());
    }
    let ok = post(&agent, "/v1/query", &json!({"Name": "x", "Service": {"Service": "x"}})).await;
    ok.expect_status(200);
    let duplicate = post(&agent, "/v1/query", &json!({"Name": "X", "Service": {"Service": "y"}})).await;
    duplicate.expect_status(400);
    assert!(duplicate.text().contains("name 'X' aliases an existing query name"), "{}", duplicate.text());
    assert_eq!(agent.get("/v1/query").await.json().as_array().map(Vec::len), Some(1), "nothing else was stored");

    // Failing over has nowhere to go with one datacenter: accepted, and said so in Failovers.
    let failover =
        json!({"Name": "far", "Service": {"Service": "nothing", "Failover": {"NearestN": 3, "Datacenters": ["dc2"]}}});
    post(&agent, "/v1/query", &failover).await.expect_status(200);
    let executed = agent.get("/v1/query/far/execute").await.json();
    assert_eq!((executed["Nodes"].clone(), executed["Failovers"].clone()), (json!([]), json!(0)));

    let unknown = agent
        .put_json("/v1/query/00000000-0000-4000-8000-000000000000", &json!({"Name": "z", "Service": {"Service": "z"}}))
        .await;
    unknown.expect_status(404);
    assert!(unknown.text().contains("Cannot modify non-existent prepared query"), "{}", unknown.text());
    agent.get("/v1/query/far/execute?connect").await.expect_status(400);
    agent.get("/v1/query/far/execute?limit=x").await.expect_status(400);
    agent.get("/v1/query/far/execute?bogus=1").await.expect_status(400);
}

/// The node the first instance of an execution runs on.
async fn first_node(agent: &TestAgent, path: &str, headers: &[(&str, &str)]) -> String {
    let res = agent.request_with_headers(Method::GET, path, headers, None).await;
    res.expect_status(200);
    res.json()["Nodes"][0]["Node"]["Node"].as_str().expect("a node").to_owned()
}

#[tokio::test]
async fn near_puts_the_named_nodes_instance_first() {
    let agent = TestAgent::dev("pq-near").await;
    catalog(&agent).await;
    // An instance on the agent's own node (the dev agent registered it at its advertise address).
    let own = json!({"Node": "pq-near", "SkipNodeUpdate": true,
                     "Service": {"ID": "web-own", "Service": "web", "Port": 8080, "Tags": ["v1"]}});
    agent.put_json("/v1/catalog/register", &own).await.expect_status(200);
    let near_agent = json!({"Name": "web", "Service": {"Service": "web", "OnlyPassing": true, "Near": "_agent"}});
    post(&agent, "/v1/query", &near_agent).await.expect_status(200);
    let stored = agent.get("/v1/query").await.json();
    assert_eq!(stored[0]["Service"]["Near"], "_agent");

    // Shuffled every time, but the origin's own instance always leads (Consul moves it to the front).
    for _ in 0..10 {
        assert_eq!(first_node(&agent, "/v1/query/web/execute", &[]).await, "pq-near");
        assert_eq!(first_node(&agent, "/v1/query/web/execute?near=n2", &[]).await, "n2", "?near wins");
        let forwarded = [("X-Forwarded-For", "192.0.2.2, 10.9.9.9")];
        assert_eq!(first_node(&agent, "/v1/query/web/execute?near=_ip", &forwarded).await, "n2", "_ip");
    }
    let limited = agent.get("/v1/query/web/execute?near=n1&limit=1").await.json();
    assert_eq!(service_ids(&limited), ["web-1"], "the limit applies after the sort");
}

/// The answer records `dig` prints for `name`/`qtype`, each as its whitespace-separated fields, and the status.
fn dig(agent: &TestAgent, name: &str, qtype: &str) -> (String, Vec<Vec<String>>) {
    let addr = agent.dns_addr();
    let output = std::process::Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=5", "+tries=3", "+nocookie", "+noedns", name, qtype])
        .output()
        .expect("dig is installed (apt-get install bind9-dnsutils)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let status = text.split("status: ").nth(1).and_then(|rest| rest.split(',').next()).unwrap_or("").to_owned();
    let mut in_answer = false;
    let mut records = Vec::new();
    for line in text.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            in_answer = true;
        } else if line.trim().is_empty() {
            in_answer = false;
        } else if in_answer && !line.starts_with(';') {
            records.push(line.split_whitespace().map(str::to_owned).collect());
        }
    }
    (status, records)
}

fn last_fields(records: &[Vec<String>]) -> Vec<String> {
    let mut out: Vec<String> = records.iter().filter_map(|r| r.last().cloned()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn dns_answers_a_query_by_name_with_its_ttl_and_the_catch_all_template() {
    let agent = TestAgent::dev_with_dns("pq-dns", json!({"dns_config": {"service_ttl": {"*": "7s"}}})).await;
    catalog(&agent).await;
    let (status, _) = dig(&agent, "web.query.consul", "A");
    assert_eq!(status, "NXDOMAIN", "no query yet");
    let web = json!({"Name": "web", "Service": {"Service": "web", "OnlyPassing": true, "Tags": ["!canary"]},
                     "DNS": {"TTL": "10s"}});
    post(&agent, "/v1/query", &web).await.expect_status(200);

    let (status, answer) = dig(&agent, "web.query.consul", "A");
    assert_eq!(status, "NOERROR");
    assert_eq!(last_fields(&answer), ["192.0.2.1"], "the passing, non-canary instance only");
    assert_eq!(answer[0][1], "10", "the query's DNS.TTL");
    let (_, srv) = dig(&agent, "_web._tcp.query.consul", "SRV");
    assert_eq!(srv.len(), 1, "{srv:?}");
    assert_eq!(srv[0][4..], ["1", "1", "8080", "n1.node.dc1.consul."]);
    let (_, by_dc) = dig(&agent, "web.query.dc1.consul", "A");
    assert_eq!(last_fields(&by_dc), ["192.0.2.1"]);
    assert_eq!(dig(&agent, "web.query.dc2.consul", "A").0, "NXDOMAIN", "no other datacenter");

    // The catch-all template answers any other name, with dns_config.service_ttl when it sets no TTL.
    assert_eq!(dig(&agent, "db.query.consul", "A").0, "NXDOMAIN");
    let catch_all = json!({"Name": "", "Template": {"Type": "name_prefix_match"},
                           "Service": {"Service": "${name.full}", "OnlyPassing": true}});
    post(&agent, "/v1/query", &catch_all).await.expect_status(200);
    let (status, db) = dig(&agent, "db.query.consul", "A");
    assert_eq!(status, "NOERROR");
    assert_eq!(last_fields(&db), ["192.0.2.5"]);
    assert_eq!(db[0][1], "7", "dns_config.service_ttl");
    assert_eq!(dig(&agent, "nothing.query.consul", "A").0, "NXDOMAIN", "a query that finds no instance");
}

/// py-consul's `query` methods through the unmodified client (`tests/py/py_consul_query.py`); skipped with the reason
/// outside CI when py-consul is not installed.
#[tokio::test]
async fn py_consul_query_methods_work_unchanged() {
    if !roster_tests::py_consul::may_run() {
        return;
    }
    let agent = TestAgent::dev("pq-py").await;
    let stdout = roster_tests::py_consul::run_script(&agent, "py_consul_query.py", &[]).await;
    assert!(stdout.contains("all py-consul query steps passed"), "{stdout}");
}

/// `method path` with `token` in `X-Consul-Token` (none when empty) and a JSON body.
async fn call(agent: &TestAgent, token: &str, method: Method, path: &str, body: Option<&Value>) -> Resp {
    let headers: Vec<(&str, &str)> = if token.is_empty() { vec![] } else { vec![("X-Consul-Token", token)] };
    agent.request_with_headers(method, path, &headers, body.map(|b| b.to_string().into_bytes())).await
}

/// A token holding `rules`, made with the management token `root`; returns its secret.
async fn token_with_rules(agent: &TestAgent, root: &str, name: &str, rules: &str) -> String {
    let policy = json!({"Name": name, "Rules": rules});
    call(agent, root, Method::PUT, "/v1/acl/policy", Some(&policy)).await.expect_status(200);
    let token = json!({"Policies": [{"Name": name}]});
    let res = call(agent, root, Method::PUT, "/v1/acl/token", Some(&token)).await;
    res.expect_status(200);
    res.json()["SecretID"].as_str().expect("SecretID").to_owned()
}

#[tokio::test]
async fn query_rules_govern_named_queries_and_a_querys_token_filters_its_execution() {
    let config = json!({"acl": {"enabled": true, "default_policy": "deny"}});
    let agent = TestAgent::start_with_config("pq-acl", roster_tests::AgentMode::Dev, config).await.expect("agent");
    let res = agent.put("/v1/acl/bootstrap", "").await;
    res.expect_status(200);
    let root = res.json()["SecretID"].as_str().expect("SecretID").to_owned();
    let register = |id: &str, service: &str| {
        json!({"Node": "n1", "Address": "192.0.2.1",
               "Service": {"ID": id, "Service": service, "Port": 80}})
    };
    for (id, service) in [("web-1", "web"), ("db-1", "db")] {
        call(&agent, &root, Method::PUT, "/v1/catalog/register", Some(&register(id, service))).await.expect_status(200);
    }
    let web_writer = token_with_rules(&agent, &root, "web-writer", r#"query_prefix "web" { policy = "write" }"#).await;
    let db_reader = token_with_rules(
        &agent,
        &root,
        "db-reader",
        r#"service "db" { policy = "read" } node "n1" { policy = "read" }"#,
    )
    .await;

    // query:write on the name: web-* yes, db no, and nothing changes on a refusal.
    let web = json!({"Name": "web-api", "Service": {"Service": "web"}});
    call(&agent, &web_writer, Method::POST, "/v1/query", Some(&web)).await.expect_status(200);
    let db = json!({"Name": "db", "Service": {"Service": "db"}, "Token": db_reader});
    let denied = call(&agent, &web_writer, Method::POST, "/v1/query", Some(&db)).await;
    denied.expect_status(403);
    assert!(denied.text().contains("lacks permission 'query:write' on \"db\""), "{}", denied.text());
    call(&agent, &root, Method::POST, "/v1/query", Some(&db)).await.expect_status(200);

    // Reads: a list holds what query:read allows, tokens hidden from all but acl:write; a named query is refused.
    let listed = call(&agent, &web_writer, Method::GET, "/v1/query", None).await;
    listed.expect_status(200);
    assert_eq!(
        listed.json().as_array().map(|q| q.iter().map(|q| q["Name"].clone()).collect()),
        Some(vec![json!("web-api")])
    );
    assert_eq!(listed.header("X-Consul-Results-Filtered-By-ACLs").as_deref(), Some("true"));
    let everything = call(&agent, &root, Method::GET, "/v1/query", None).await.json();
    let db_id =
        everything.as_array().unwrap().iter().find(|q| q["Name"] == "db").unwrap()["ID"].as_str().unwrap().to_owned();
    let by_root = call(&agent, &root, Method::GET, &format!("/v1/query/{db_id}"), None).await.json();
    assert_eq!(by_root[0]["Token"], db_reader.as_str(), "management sees the token");
    let hidden = token_with_rules(&agent, &root, "db-query-reader", r#"query "db" { policy = "read" }"#).await;
    let by_reader = call(&agent, &hidden, Method::GET, &format!("/v1/query/{db_id}"), None).await;
    by_reader.expect_status(200);
    assert_eq!(by_reader.json()[0]["Token"], "<hidden>");
    call(&agent, &web_writer, Method::GET, &format!("/v1/query/{db_id}"), None).await.expect_status(403);

    // Execution needs no query rule; the instances are what the query's token may read, else the caller's.
    let db_run = call(&agent, "", Method::GET, "/v1/query/db/execute", None).await;
    db_run.expect_status(200);
    assert_eq!(service_ids(&db_run.json()), ["db-1"], "filtered with the query's own token");
    let web_run = call(&agent, "", Method::GET, "/v1/query/web-api/execute", None).await;
    web_run.expect_status(200);
    assert!(service_ids(&web_run.json()).is_empty(), "the anonymous caller may read no service");
    assert_eq!(web_run.header("X-Consul-Results-Filtered-By-ACLs").as_deref(), Some("true"));
}
