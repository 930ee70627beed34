//! ACLs across a real cluster: 3 servers and client agents with `default_policy = "deny"` and 2 s token, policy and
//! role TTLs, every agent configured with the same `initial_management` token, which is also its `agent` token.
//!
//! What a user sees through a client agent: the management token works everywhere; a token of a `key_prefix "app/"`
//! policy writes there and nowhere else; a policy change reaches the client's own endpoints within the TTL; the
//! client's service registration reaches the servers' catalog; and with every server gone the client follows
//! `acl.down_policy` (extend-cache keeps what it resolved before, deny refuses it).
//!
//! The cluster helper polls `/v1/agent/members` without a token while the cluster forms, before any leader could have
//! created the management token; under `default_policy = "deny"` the anonymous token sees no member. So every agent also
//! has an `agent_recovery` token, which it resolves by itself (agent write, node read), as its `default` token; a test
//! that checks anonymous requests clears the client's default token through `PUT /v1/agent/token/default` first.

use std::time::Duration;

use reqwest::Method;
use roster_tests::{RPC_PORT, Resp, SERF_PORT, TestAgent, TestCluster, eventually};
use serde_json::{Value, json};

/// The `initial_management` secret of every agent, also its `agent` token so its anti-entropy may write its node.
const MANAGEMENT: &str = "6a1f8e2c-3b7d-4c59-9e0a-2d4f6b8c1e37";
/// The `agent_recovery` token of every agent, also its `default` token (see the module docs).
const RECOVERY: &str = "9b4c2d7e-1f3a-4e6b-8c5d-0a7f9e2b4c61";
/// Long enough for a cluster on a loaded 2-core machine to propagate a write or notice that servers died; every wait on
/// a cache TTL (2 s) or a Raft write ends well within it.
const CONVERGE: Duration = Duration::from_secs(30);

/// The config of every agent of these tests, with `down_policy` when given.
fn acl_config(down_policy: Option<&str>) -> Value {
    let mut acl = json!({
        "enabled": true,
        "default_policy": "deny",
        "token_ttl": "2s",
        "policy_ttl": "2s",
        "role_ttl": "2s",
        "tokens": {
            "initial_management": MANAGEMENT,
            "agent": MANAGEMENT,
            "agent_recovery": RECOVERY,
            "default": RECOVERY,
        },
    });
    if let Some(policy) = down_policy {
        acl["down_policy"] = json!(policy);
    }
    json!({"acl": acl})
}

async fn start_cluster(n_clients: usize) -> TestCluster {
    TestCluster::try_start(3, n_clients, acl_config(None)).await.unwrap_or_else(|err| {
        panic!("a 3+{n_clients} cluster with ACLs on (default_policy deny) did not form: {err:#}")
    })
}

/// One request to `agent` with `token` in `X-Consul-Token` (none when empty).
async fn call(agent: &TestAgent, method: Method, path: &str, token: &str, body: Option<String>) -> Resp {
    let mut request = agent.client().request(method.clone(), agent.url(path));
    if !token.is_empty() {
        request = request.header("X-Consul-Token", token);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let res = request.send().await.unwrap_or_else(|err| panic!("{method} {path} on {}: {err}", agent.node_name()));
    Resp::read(res).await.unwrap_or_else(|err| panic!("reading {method} {path} on {}: {err}", agent.node_name()))
}

async fn get_as(agent: &TestAgent, path: &str, token: &str) -> Resp {
    call(agent, Method::GET, path, token, None).await
}

async fn put_as(agent: &TestAgent, path: &str, token: &str, body: impl Into<String>) -> Resp {
    call(agent, Method::PUT, path, token, Some(body.into())).await
}

/// Creates a policy with `rules` through `agent`; returns its ID.
async fn create_policy(agent: &TestAgent, name: &str, rules: &str) -> String {
    let res = put_as(agent, "/v1/acl/policy", MANAGEMENT, json!({"Name": name, "Rules": rules}).to_string()).await;
    res.expect_status(200);
    let policy = res.json();
    assert_eq!(policy["Name"], name, "{policy}");
    assert_eq!(policy["Rules"], rules, "{policy}");
    policy["ID"].as_str().expect("policy ID").to_owned()
}

/// Replaces the rules of policy `id` through `agent`.
async fn update_policy(agent: &TestAgent, id: &str, name: &str, rules: &str) {
    let body = json!({"ID": id, "Name": name, "Rules": rules}).to_string();
    let res = put_as(agent, &format!("/v1/acl/policy/{id}"), MANAGEMENT, body).await;
    res.expect_status(200);
    assert_eq!(res.json()["Rules"], rules);
}

/// A token of the named policies, created through `agent`: (accessor ID, secret ID).
async fn create_token(agent: &TestAgent, description: &str, policies: &[&str]) -> (String, String) {
    let links: Vec<Value> = policies.iter().map(|name| json!({"Name": name})).collect();
    let body = json!({"Description": description, "Policies": links}).to_string();
    let res = put_as(agent, "/v1/acl/token", MANAGEMENT, body).await;
    res.expect_status(200);
    let token = res.json();
    let linked: Vec<&str> =
        token["Policies"].as_array().expect("policies").iter().filter_map(|p| p["Name"].as_str()).collect();
    assert_eq!(linked, policies, "{token}");
    let accessor = token["AccessorID"].as_str().expect("AccessorID").to_owned();
    (accessor, token["SecretID"].as_str().expect("SecretID").to_owned())
}

/// Consul's denial text for a token.
fn denial(accessor: &str, permission: &str, name: &str) -> String {
    format!("Permission denied: token with AccessorID '{accessor}' lacks permission '{permission}' on \"{name}\"")
}

/// Asserts a 403 with exactly `text` (roster ends every error body with a newline).
#[track_caller]
fn assert_denied(res: &Resp, text: &str) {
    assert_eq!((res.status, res.text().trim_end()), (403, text));
}

/// Waits until every agent resolves the management token, which the first leader creates from the config; returns
/// what each resolved.
async fn wait_for_management(cluster: &TestCluster) -> Vec<Value> {
    let mut resolved = Vec::new();
    for agent in cluster.agents() {
        let token = eventually("the initial management token resolves", CONVERGE, || async {
            let res = get_as(agent, "/v1/acl/token/self", MANAGEMENT).await;
            (res.status == 200).then(|| res.json())
        })
        .await;
        resolved.push(token);
    }
    resolved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_agent_enforces_tokens_and_follows_policy_changes() {
    let cluster = start_cluster(1).await;
    let client = &cluster.clients[0];
    let node = client.node_name().to_owned();

    // The leader created the initial management token from the config; every agent resolves it.
    for (agent, token) in cluster.agents().zip(wait_for_management(&cluster).await) {
        assert_eq!(token["SecretID"], MANAGEMENT, "on {}: {token}", agent.node_name());
        assert_eq!(token["Description"], "Initial Management Token", "{token}");
        assert_eq!(token["Policies"][0]["Name"], "global-management", "{token}");
    }
    // The client joined the catalog with ACLs on: its node, and the leader's serfHealth check for it.
    let leader = &cluster.servers[cluster.wait_for_leader(CONVERGE).await.expect("leader")];
    eventually("the client's serfHealth is passing in the catalog", CONVERGE, || async {
        let res = get_as(leader, &format!("/v1/health/node/{node}"), MANAGEMENT).await;
        let checks = res.json();
        let serf = checks.as_array()?.iter().find(|c| c["CheckID"] == "serfHealth")?.clone();
        (serf["Status"] == "passing").then_some(())
    })
    .await;
    let res = get_as(leader, &format!("/v1/catalog/node/{node}"), MANAGEMENT).await;
    assert_eq!(res.json()["Node"]["Node"], node.as_str(), "{}", res.text());

    // From here on a request without a token is the anonymous token's.
    put_as(client, "/v1/agent/token/default", MANAGEMENT, json!({"Token": ""}).to_string()).await.expect_status(200);

    // A key_prefix "app/" write token, created through the client.
    let app_policy = create_policy(client, "app-write", "key_prefix \"app/\" { policy = \"write\" }").await;
    let agent_policy = create_policy(client, "agent-read", &format!("agent \"{node}\" {{ policy = \"read\" }}")).await;
    let (accessor, secret) = create_token(client, "app writer", &["app-write", "agent-read"]).await;

    let res = put_as(client, "/v1/kv/app/x", &secret, "v1").await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true));
    assert_denied(&put_as(client, "/v1/kv/other/x", &secret, "v1").await, &denial(&accessor, "key:write", "other/x"));
    for server in &cluster.servers {
        eventually("app/x is on every server", CONVERGE, || async {
            let res = get_as(server, "/v1/kv/app/x?raw", MANAGEMENT).await;
            (res.status == 200 && res.text() == "v1").then_some(())
        })
        .await;
        let res = get_as(server, "/v1/kv/other/x", MANAGEMENT).await;
        assert_eq!(res.status, 404, "the refused write is nowhere: {}", res.text());
    }
    let res = put_as(client, "/v1/kv/app/anon", "", "v").await;
    assert_denied(
        &res,
        "Permission denied: anonymous token lacks permission 'key:write' on \"app/anon\". \
         The anonymous token is used implicitly when a request does not specify a token.",
    );
    let res = get_as(client, "/v1/agent/self", "").await;
    assert_eq!(res.status, 403, "anonymous agent/self: {}", res.text());

    // The client's own endpoint, resolved (and cached) at the client.
    get_as(client, "/v1/agent/self", &secret).await.expect_status(200);

    // Write becomes read: the client refuses the write within the TTL; the read still works.
    update_policy(client, &app_policy, "app-write", "key_prefix \"app/\" { policy = \"read\" }").await;
    let refused = eventually("the client refuses app/x after the policy became read", CONVERGE, || async {
        let res = put_as(client, "/v1/kv/app/x", &secret, "v2").await;
        (res.status != 200).then_some(res)
    })
    .await;
    assert_denied(&refused, &denial(&accessor, "key:write", "app/x"));
    assert_eq!(get_as(client, "/v1/kv/app/x?raw", &secret).await.text(), "v1");

    // agent:read on the client's node taken away: the client's cached resolution gives way within the TTL.
    update_policy(client, &agent_policy, "agent-read", "node_prefix \"\" { policy = \"read\" }").await;
    let refused = eventually("the client refuses agent/self after agent:read was removed", CONVERGE, || async {
        let res = get_as(client, "/v1/agent/self", &secret).await;
        (res.status != 200).then_some(res)
    })
    .await;
    assert_denied(&refused, &denial(&accessor, "agent:read", &node));

    // The client registers a service for a token with service:write on it, and its sync puts it in the catalog.
    create_policy(client, "web-write", "service \"web\" { policy = \"write\" }").await;
    let (web_accessor, web_secret) = create_token(client, "web registrar", &["web-write"]).await;
    let web = json!({"ID": "web-1", "Name": "web", "Port": 8080}).to_string();
    put_as(client, "/v1/agent/service/register", &web_secret, web).await.expect_status(200);
    let db = json!({"ID": "db-1", "Name": "db", "Port": 5432}).to_string();
    let res = put_as(client, "/v1/agent/service/register", &web_secret, db).await;
    assert_denied(&res, &denial(&web_accessor, "service:write", "db"));
    for server in &cluster.servers {
        let instances = eventually("web-1 of the client is in every server's catalog", CONVERGE, || async {
            let res = get_as(server, "/v1/catalog/service/web", MANAGEMENT).await;
            let instances = res.json();
            (instances.as_array()?.len() == 1).then_some(instances)
        })
        .await;
        assert_eq!(instances[0]["Node"], node.as_str(), "{instances}");
        assert_eq!(instances[0]["ServiceID"], "web-1", "{instances}");
        assert_eq!(instances[0]["ServicePort"], 8080, "{instances}");
        let res = get_as(server, "/v1/catalog/service/db", MANAGEMENT).await;
        assert_eq!(res.json(), json!([]), "the refused registration is nowhere");
    }
}

/// Polls `token` on `agent`'s `/v1/agent/self` until it is refused; returns the refusal.
async fn refused_agent_self(agent: &TestAgent, token: &str, what: &str) -> Resp {
    eventually(what, CONVERGE, || async {
        let res = get_as(agent, "/v1/agent/self", token).await;
        (res.status != 200).then_some(res)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_agents_follow_down_policy_when_every_server_is_gone() {
    let mut cluster = start_cluster(2).await;
    // c1 keeps the default down_policy (extend-cache); c2 comes back with down_policy "deny".
    let mut deny_config = acl_config(Some("deny"));
    deny_config["ports"] = json!({"http": 0, "dns": -1, "server": RPC_PORT, "serf_lan": SERF_PORT});
    cluster.clients[1].rewrite_config(deny_config);
    cluster.clients[1].restart().await;
    cluster.wait_formed().await.expect("c2 rejoins with down_policy deny");
    let (extend, deny) = (&cluster.clients[0], &cluster.clients[1]);
    wait_for_management(&cluster).await;

    create_policy(&cluster.servers[0], "agents-read", "agent_prefix \"\" { policy = \"read\" }").await;
    let (_, cached) = create_token(&cluster.servers[0], "used before the outage", &["agents-read"]).await;
    let (_, fresh) = create_token(&cluster.servers[0], "never used at a client", &["agents-read"]).await;
    // Each client resolves and caches `cached`; c2 after c1, so once c2's entry has outlived the TTL, c1's has too.
    for client in [extend, deny] {
        let res = eventually("the new token resolves at the client", CONVERGE, || async {
            let res = get_as(client, "/v1/agent/self", &cached).await;
            (res.status == 200).then_some(res)
        })
        .await;
        assert_eq!(res.json()["Config"]["NodeName"], client.node_name());
    }

    for server in &mut cluster.servers {
        server.kill9();
    }
    let (extend, deny) = (&cluster.clients[0], &cluster.clients[1]);

    // No server answers: a token neither client ever resolved is refused by both.
    for client in [extend, deny] {
        let res = refused_agent_self(client, &fresh, "the never-resolved token is refused with the servers gone").await;
        assert_eq!(res.status, 403, "{}", res.text());
        assert!(res.text().starts_with("Permission denied"), "{}", res.text());
    }
    // down_policy deny: once its cache entry is past the TTL, the cached token is refused too.
    let res = refused_agent_self(deny, &cached, "deny refuses the cached token past its TTL").await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert!(res.text().starts_with("Permission denied"), "{}", res.text());
    // extend-cache: c1's entry is older than c2's, so past the TTL as well, and is still served; unknown tokens are not.
    let res = get_as(extend, "/v1/agent/self", &cached).await;
    assert_eq!(res.status, 200, "extend-cache serves the cached token with the servers gone: {}", res.text());
    assert_eq!(res.json()["Config"]["NodeName"], extend.node_name());
    let res = get_as(extend, "/v1/agent/self", &fresh).await;
    assert_eq!(res.status, 403, "{}", res.text());
    let res = get_as(extend, "/v1/agent/self", "00000000-1111-2222-3333-444444444444").await;
    assert_eq!(res.status, 403, "an unknown secret: {}", res.text());
}
