//! Every read-API parameter is honoured or refused: an unknown one is a 400 naming it on every route, and each
//! parameter that used to be ignored (`node-meta`, `filter` on catalog/services, `wan`, `hash`, `pretty`, the
//! effective consistency, tenancy) now changes the answer. IDs with `/` (Patroni's `scope/name`) work raw and
//! percent-encoded, and `agent/self` reports the build it runs.

use reqwest::Method;
use roster_tests::{TestAgent, TestCluster};
use serde_json::{Value, json};

/// One concrete request per route of the router (`params.rs` checks that each route has a parameter list).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status/leader"),
    ("GET", "/v1/status/peers"),
    ("GET", "/v1/kv/a"),
    ("PUT", "/v1/kv/a"),
    ("DELETE", "/v1/kv/a"),
    ("PUT", "/v1/session/create"),
    ("PUT", "/v1/session/destroy/x"),
    ("PUT", "/v1/session/renew/x"),
    ("GET", "/v1/session/info/x"),
    ("GET", "/v1/session/node/n"),
    ("GET", "/v1/session/list"),
    ("PUT", "/v1/txn"),
    ("PUT", "/v1/event/fire/e"),
    ("GET", "/v1/event/list"),
    ("PUT", "/v1/agent/job"),
    ("GET", "/v1/agent/jobs"),
    ("GET", "/v1/agent/job/j"),
    ("DELETE", "/v1/agent/job/j"),
    ("GET", "/v1/agent/job/j/logs"),
    ("PUT", "/v1/acl/bootstrap"),
    ("PUT", "/v1/acl/token"),
    ("GET", "/v1/acl/token/self"),
    ("GET", "/v1/acl/token/x"),
    ("PUT", "/v1/acl/token/x"),
    ("DELETE", "/v1/acl/token/x"),
    ("PUT", "/v1/acl/token/x/clone"),
    ("GET", "/v1/acl/tokens"),
    ("PUT", "/v1/acl/policy"),
    ("GET", "/v1/acl/policy/name/p"),
    ("GET", "/v1/acl/policy/x"),
    ("GET", "/v1/acl/policies"),
    ("PUT", "/v1/acl/role"),
    ("GET", "/v1/acl/role/name/r"),
    ("GET", "/v1/acl/role/x"),
    ("GET", "/v1/acl/roles"),
    ("GET", "/v1/acl/templated-policies"),
    ("GET", "/v1/acl/templated-policy/name/builtin/service"),
    ("POST", "/v1/acl/templated-policy/preview/builtin/service"),
    ("PUT", "/v1/agent/token/default"),
    ("PUT", "/v1/acl/auth-method"),
    ("GET", "/v1/acl/auth-method/m"),
    ("GET", "/v1/acl/auth-methods"),
    ("PUT", "/v1/acl/binding-rule"),
    ("GET", "/v1/acl/binding-rule/x"),
    ("GET", "/v1/acl/binding-rules"),
    ("POST", "/v1/acl/login"),
    ("POST", "/v1/acl/logout"),
    ("GET", "/v1/agent/self"),
    ("GET", "/v1/agent/members"),
    ("PUT", "/v1/agent/join/127.0.0.1"),
    ("PUT", "/v1/agent/leave"),
    ("PUT", "/v1/agent/reload"),
    ("PUT", "/v1/agent/force-leave/n"),
    ("GET", "/v1/operator/raft/configuration"),
    ("DELETE", "/v1/operator/raft/peer"),
    ("POST", "/v1/operator/raft/transfer-leader"),
    ("GET", "/v1/operator/usage"),
    ("GET", "/v1/operator/autopilot/configuration"),
    ("PUT", "/v1/operator/autopilot/configuration"),
    ("GET", "/v1/operator/autopilot/health"),
    ("GET", "/v1/operator/autopilot/state"),
    ("GET", "/v1/snapshot"),
    ("PUT", "/v1/snapshot"),
    ("GET", "/v1/operator/keyring"),
    ("GET", "/v1/agent/services"),
    ("GET", "/v1/agent/service/s"),
    ("PUT", "/v1/agent/service/register"),
    ("PUT", "/v1/agent/service/deregister/s"),
    ("GET", "/v1/agent/checks"),
    ("PUT", "/v1/agent/check/register"),
    ("PUT", "/v1/agent/check/deregister/c"),
    ("PUT", "/v1/agent/check/pass/c"),
    ("PUT", "/v1/agent/check/warn/c"),
    ("PUT", "/v1/agent/check/fail/c"),
    ("PUT", "/v1/agent/check/update/c"),
    ("PUT", "/v1/agent/maintenance"),
    ("PUT", "/v1/agent/service/maintenance/s"),
    ("GET", "/v1/agent/health/service/name/s"),
    ("GET", "/v1/agent/health/service/id/s"),
    ("GET", "/v1/catalog/datacenters"),
    ("GET", "/v1/catalog/nodes"),
    ("GET", "/v1/catalog/services"),
    ("GET", "/v1/catalog/service/s"),
    ("GET", "/v1/catalog/node/n"),
    ("GET", "/v1/catalog/node-services/n"),
    ("PUT", "/v1/catalog/register"),
    ("PUT", "/v1/catalog/deregister"),
    ("GET", "/v1/health/service/s"),
    ("GET", "/v1/health/checks/s"),
    ("GET", "/v1/health/node/n"),
    ("GET", "/v1/health/state/any"),
    ("GET", "/v1/health/connect/s"),
    ("GET", "/v1/health/ingress/s"),
];

async fn request(agent: &TestAgent, method: &str, path: &str) -> roster_tests::Resp {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    agent.request(method, path, Some(b"{}".to_vec())).await
}

#[tokio::test]
async fn every_route_refuses_a_parameter_it_does_not_take_and_changes_nothing() {
    let agent = TestAgent::dev("params-walk").await;
    for (method, path) in ROUTES {
        let res = request(&agent, method, &format!("{path}?bogus-param=1")).await;
        assert_eq!(res.status, 400, "{method} {path}: {}", res.text());
        assert_eq!(res.text(), "Unsupported query parameter \"bogus-param\"\n", "{method} {path}");
    }
    // Refused before the handler ran: the PUT, the leave and the deregistrations above changed nothing.
    agent.get("/v1/kv/a").await.expect_status(404);
    agent.get("/v1/agent/self").await.expect_status(200);
    // A read parameter on a write is not taken either, nor a write's on a read.
    assert_eq!(request(&agent, "PUT", "/v1/kv/a?raw").await.status, 400);
    assert_eq!(request(&agent, "GET", "/v1/kv/a?cas=1").await.status, 400);
    // Consul's event list takes only `name` (its node/service/tag filters are the fire's).
    let res = agent.get("/v1/event/list?node=n1").await;
    assert_eq!((res.status, res.text()), (400, "Unsupported query parameter \"node\"\n".to_owned()));
}

#[tokio::test]
async fn tenancy_and_datacenter_accept_only_this_agents() {
    let agent = TestAgent::dev("params-tenancy").await;
    agent.get("/v1/catalog/nodes?ns=default&partition=default").await.expect_status(200);
    let res = agent.get("/v1/catalog/nodes?ns=team").await;
    assert_eq!(res.status, 400);
    assert_eq!(res.text(), "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature\n");
    agent.get("/v1/health/service/web?partition=p1").await.expect_status(400);
    agent.get("/v1/health/service/web?peer=other").await.expect_status(400);
    // Endpoints that never looked at `?dc` now refuse another datacenter too.
    let res = agent.get("/v1/agent/self?dc=dc2").await;
    assert_eq!((res.status, res.text()), (500, "No path to datacenter \"dc2\"\n".to_owned()));
    agent.get("/v1/agent/self?dc=dc1").await.expect_status(200);
}

/// Registers `node` with `meta` and one `web` instance tagged `tag`, with a passing check.
async fn register_node(agent: &TestAgent, node: &str, meta: Value, tag: &str) {
    let body = json!({
        "Node": node,
        "Address": "10.0.0.1",
        "NodeMeta": meta,
        "Service": {"ID": format!("web-{node}"), "Service": "web", "Tags": [tag], "Port": 80},
        "Check": {"CheckID": format!("chk-{node}"), "Name": "c", "Status": "passing", "ServiceID": format!("web-{node}")},
    });
    agent.put_json("/v1/catalog/register", &body).await.expect_status(200);
}

fn names(list: &Value, pointer: &str) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| item.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn node_meta_keeps_only_nodes_with_every_pair_on_catalog_and_health() {
    let agent = TestAgent::dev("params-meta").await;
    register_node(&agent, "a1", json!({"rack": "a", "role": "edge"}), "v1").await;
    register_node(&agent, "a2", json!({"rack": "a"}), "v2").await;
    register_node(&agent, "b1", json!({"rack": "b"}), "v3").await;
    let get = |path: String| {
        let agent = &agent;
        async move {
            let res = agent.get(&path).await;
            res.expect_status(200);
            res.json()
        }
    };
    assert_eq!(names(&get("/v1/catalog/nodes?node-meta=rack:a".into()).await, "/Node"), ["a1", "a2"]);
    // Repeated: every pair must match.
    let both = get("/v1/catalog/nodes?node-meta=rack:a&node-meta=role:edge".into()).await;
    assert_eq!(names(&both, "/Node"), ["a1"]);
    assert_eq!(get("/v1/catalog/services?node-meta=rack:b".into()).await, json!({"web": ["v3"]}));
    assert_eq!(names(&get("/v1/catalog/service/web?node-meta=rack:a".into()).await, "/Node"), ["a1", "a2"]);
    assert_eq!(names(&get("/v1/health/service/web?node-meta=rack:b".into()).await, "/Node/Node"), ["b1"]);
    assert_eq!(names(&get("/v1/health/checks/web?node-meta=role:edge".into()).await, "/Node"), ["a1"]);
    let passing = get("/v1/health/state/passing?node-meta=rack:a".into()).await;
    assert_eq!(names(&passing, "/CheckID"), ["chk-a1", "chk-a2"]);
    // A pair without `:` is the key with an empty value, as Consul parses it: no node has `rack` empty.
    assert_eq!(get("/v1/catalog/nodes?node-meta=rack".into()).await, json!([]));
}

#[tokio::test]
async fn filter_on_catalog_services_runs_over_instances_before_folding_tags() {
    let agent = TestAgent::dev("params-services-filter").await;
    register_node(&agent, "a1", json!({"rack": "a"}), "v1").await;
    register_node(&agent, "b1", json!({"rack": "b"}), "v2").await;
    let all = agent.get("/v1/catalog/services").await.json();
    assert_eq!(all["web"], json!(["v1", "v2"]));
    let res = agent.get("/v1/catalog/services?filter=NodeMeta.rack%20%3D%3D%20%22b%22").await;
    res.expect_status(200);
    assert_eq!(res.json(), json!({"web": ["v2"]}), "only b1's instance passed the filter");
    let res = agent.get("/v1/catalog/services?filter=ServiceTags%20contains%20%22v1%22").await;
    assert_eq!(res.json(), json!({"web": ["v1"]}));
    let res = agent.get("/v1/catalog/services?filter=Nope%20%3D%3D%201").await;
    res.expect_status(400);
}

#[tokio::test]
async fn pretty_indents_and_reads_name_their_effective_consistency() {
    let agent = TestAgent::dev("params-pretty").await;
    let compact = agent.get("/v1/catalog/services").await;
    assert_eq!(compact.text(), "{\"consul\":[]}");
    assert_eq!(compact.header("X-Consul-Effective-Consistency").as_deref(), Some("leader"));
    let pretty = agent.get("/v1/catalog/services?pretty").await;
    assert_eq!(pretty.text(), "{\n    \"consul\": []\n}\n");
    let stale = agent.get("/v1/catalog/nodes?stale").await;
    assert_eq!(stale.header("X-Consul-Effective-Consistency").as_deref(), Some("stale"));
    let consistent = agent.get("/v1/kv/?recurse&consistent").await;
    assert_eq!(consistent.header("X-Consul-Effective-Consistency").as_deref(), Some("consistent"));
    let res = agent.get("/v1/catalog/services?cached&consistent").await;
    assert_eq!(
        (res.status, res.text()),
        (400, "Cannot specify ?cached with ?consistent, conflicting semantics.\n".into())
    );
}

#[tokio::test]
async fn wan_members_are_the_servers_on_a_server_and_null_on_a_client() {
    let cluster = TestCluster::start(1, 1).await;
    let server = &cluster.servers[0];
    let res = server.get("/v1/agent/members?wan=1").await;
    res.expect_status(200);
    let wan = res.json();
    let expected = format!("{}.dc1", server.node_name());
    assert_eq!(names(&wan, "/Name"), [expected], "one server, named <node>.<dc>: {wan}");
    let lan = server.get("/v1/agent/members").await.json();
    assert!(names(&lan, "/Name").contains(&server.node_name().to_owned()), "{lan}");
    let res = cluster.clients[0].get("/v1/agent/members?wan=1").await;
    res.expect_status(200);
    assert_eq!(res.json(), Value::Null, "a client agent is in no WAN pool");
    let res = server.get("/v1/agent/members?wan=1&segment=alpha").await;
    assert_eq!((res.status, res.text()), (400, "Cannot provide a segment with wan=true\n".into()));
}

#[tokio::test]
async fn agent_service_blocks_on_its_content_hash() {
    let agent = TestAgent::dev("params-hash").await;
    let def = json!({"ID": "web1", "Name": "web", "Port": 80});
    agent.put_json("/v1/agent/service/register", &def).await.expect_status(200);
    let first = agent.get("/v1/agent/service/web1").await;
    let hash = first.header("X-Consul-ContentHash").expect("the hash header is on every reply");
    assert_eq!(first.json()["ContentHash"], json!(hash));
    // Another hash answers at once; the current one with a short wait answers the same hash when the wait ends.
    let other = agent.get("/v1/agent/service/web1?hash=0000&wait=10m").await;
    assert_eq!(other.header("X-Consul-ContentHash"), Some(hash.clone()));
    let same = agent.get(&format!("/v1/agent/service/web1?hash={hash}&wait=50ms")).await;
    assert_eq!(same.header("X-Consul-ContentHash"), Some(hash.clone()));
    // A blocked read returns when the service changes, with the new hash.
    let blocked = {
        let (client, url) = (agent.client().clone(), agent.url(&format!("/v1/agent/service/web1?hash={hash}&wait=5m")));
        tokio::spawn(async move { client.get(url).send().await.expect("blocking read").json::<Value>().await })
    };
    // Whether the read parks before the change or arrives after it, it must answer the changed service; had `?hash`
    // been ignored, a read that parked first would answer port 80.
    let changed = json!({"ID": "web1", "Name": "web", "Port": 81});
    agent.put_json("/v1/agent/service/register", &changed).await.expect_status(200);
    let body = blocked.await.expect("join").expect("json");
    assert_eq!(body["Port"], 81);
    assert_ne!(body["ContentHash"], json!(hash));
}

#[tokio::test]
async fn ids_with_slashes_work_raw_and_percent_encoded() {
    let agent = TestAgent::dev("params-slash").await;
    let def = json!({
        "ID": "rosterdemo/pg1", "Name": "rosterdemo", "Port": 5432,
        "Check": {"CheckID": "service:rosterdemo/pg1", "TTL": "30s"},
    });
    agent.put_json("/v1/agent/service/register", &def).await.expect_status(200);
    for path in ["/v1/agent/service/rosterdemo/pg1", "/v1/agent/service/rosterdemo%2Fpg1"] {
        let res = agent.get(path).await;
        res.expect_status(200);
        assert_eq!(res.json()["ID"], "rosterdemo/pg1", "{path}");
    }
    agent.put("/v1/agent/check/pass/service:rosterdemo/pg1", "").await.expect_status(200);
    let health = agent.get("/v1/agent/health/service/id/rosterdemo/pg1").await;
    health.expect_status(200);
    assert_eq!(health.json()["AggregatedStatus"], "passing");
    agent.put("/v1/agent/check/warn/service:rosterdemo%2Fpg1", "").await.expect_status(200);
    let checks = agent.get("/v1/health/checks/rosterdemo").await.json();
    assert_eq!(checks[0]["Status"], "warning", "{checks}");
    agent.put("/v1/agent/service/deregister/rosterdemo/pg1", "").await.expect_status(200);
    assert_eq!(agent.get("/v1/agent/services").await.json(), json!({}), "deregistered by its raw ID");
    agent.put_json("/v1/agent/service/register", &def).await.expect_status(200);
    agent.put("/v1/agent/service/deregister/rosterdemo%2Fpg1", "").await.expect_status(200);
    assert_eq!(agent.get("/v1/agent/services").await.json(), json!({}), "deregistered by its encoded ID");
    agent.get("/v1/catalog/service/rosterdemo").await.expect_status(200);
}

#[tokio::test]
async fn agent_self_reports_the_build_it_runs() {
    let agent = TestAgent::dev("params-self").await;
    let config = agent.get("/v1/agent/self").await.json()["Config"].clone();
    assert_eq!(config["Version"], "1.22.0", "the Consul API version roster implements");
    let revision = config["Revision"].as_str().expect("Revision");
    assert!(!revision.is_empty() && !revision.starts_with("roster-"), "a git revision: {revision}");
    let date = config["BuildDate"].as_str().expect("BuildDate");
    let shape = date.len() == 20 && date.as_bytes()[4] == b'-' && date.as_bytes()[10] == b'T' && date.ends_with('Z');
    assert!(shape, "RFC 3339 in UTC, as Consul formats it: {date}");
    let member = agent.get("/v1/agent/members").await.json();
    assert_eq!(member[0]["Tags"]["build"], format!("1.22.0:{revision}"), "Consul's version:revision build tag");
}

#[tokio::test]
async fn cached_reads_miss_then_hit_and_block_on_the_refreshed_entry() {
    let agent = TestAgent::dev("params-cached").await;
    register_node(&agent, "a1", json!({}), "v1").await;
    let plain = agent.get("/v1/health/service/web").await;
    assert_eq!(plain.header("X-Cache"), None, "only ?cached reads go through the cache");
    let miss = agent.get("/v1/health/service/web?cached").await;
    assert_eq!(miss.header("X-Cache").as_deref(), Some("MISS"));
    let hit = agent.get("/v1/health/service/web?cached").await;
    assert_eq!(hit.header("X-Cache").as_deref(), Some("HIT"));
    assert_eq!(hit.header("Age").as_deref(), Some("0"), "the background refresh reaches the server");
    assert_eq!(names(&hit.json(), "/Node/Node"), ["a1"]);
    // A blocking cached read returns once the background refresh has seen the new instance.
    let index = hit.index();
    register_node(&agent, "a2", json!({}), "v2").await;
    let blocked = agent.get(&format!("/v1/health/service/web?cached&index={index}&wait=5m")).await;
    assert_eq!(blocked.header("X-Cache").as_deref(), Some("HIT"));
    assert!(blocked.index() > index);
    assert_eq!(names(&blocked.json(), "/Node/Node"), ["a1", "a2"]);
    let services = agent.get("/v1/catalog/services?cached").await;
    assert_eq!(services.header("X-Cache").as_deref(), Some("MISS"));
    let dcs = agent.get("/v1/catalog/datacenters?cached").await;
    assert_eq!(dcs.header("X-Cache").as_deref(), Some("HIT"));
}
