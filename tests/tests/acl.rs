//! ACLs on one agent under `default_policy = "deny"`, seen as a Consul client sees them: bootstrap and its reset file,
//! a permission matrix per endpoint family (a token with the rule succeeds, one without gets Consul's 403 text or a
//! filtered answer with `X-Consul-Results-Filtered-By-ACLs: true`, and a denied write changes nothing), where the
//! token comes from, the agent's default and DNS tokens, blocking queries that re-check their token, and durability.
//!
//! Catalog data names documentation addresses (192.0.2.x); nothing is ever sent to them.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use roster_tests::{AgentMode, Resp, TestAgent, b64, eventually};
use serde_json::{Value, json};

/// The rules column of a row whose request carries no token at all.
const ANONYMOUS: &str = "<anonymous>";
/// The header a read sends when it left something out for the caller.
const FILTERED: &str = "X-Consul-Results-Filtered-By-ACLs";
/// Consul's built-in global-management policy.
const GLOBAL_MANAGEMENT_ID: &str = "00000000-0000-0000-0000-000000000001";

fn acl_config() -> Value {
    json!({"acl": {"enabled": true, "default_policy": "deny"}})
}

/// A `-dev` agent with ACLs on under deny, bootstrapped; returns the agent and the management secret.
async fn dev_acl(node_name: &str) -> (TestAgent, String) {
    let agent = TestAgent::start_with_config(node_name, AgentMode::Dev, acl_config()).await.expect("dev agent");
    let root = bootstrap(&agent).await;
    (agent, root)
}

async fn bootstrap(agent: &TestAgent) -> String {
    let res = agent.put("/v1/acl/bootstrap", "").await;
    res.expect_status(200);
    res.json()["SecretID"].as_str().expect("SecretID").to_owned()
}

/// A token: what a request sends (`secret`) and what denials name (`accessor`); both empty for the anonymous token.
#[derive(Clone, Default)]
struct Token {
    secret: String,
    accessor: String,
}

/// `method path` with `token` in `X-Consul-Token` (none for the anonymous token); a JSON string body goes raw.
async fn call(agent: &TestAgent, token: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let body = body.map(|value| match value {
        Value::String(raw) => raw.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    });
    let headers: Vec<(&str, &str)> = if token.is_empty() { vec![] } else { vec![("X-Consul-Token", token)] };
    agent.request_with_headers(method, path, &headers, body).await
}

/// A new policy holding `rules` and a token linked to it by name.
async fn token_with_rules(agent: &TestAgent, root: &str, rules: &str) -> Token {
    static N_POLICIES: AtomicU64 = AtomicU64::new(0);
    let name = format!("policy-{}", N_POLICIES.fetch_add(1, Ordering::Relaxed));
    let policy = call(agent, root, "PUT", "/v1/acl/policy", Some(&json!({"Name": name, "Rules": rules}))).await;
    assert_eq!(policy.status, 200, "creating a policy with {rules:?}: {}", policy.text());
    let body = json!({"Description": rules, "Policies": [{"Name": name}]});
    let token = call(agent, root, "PUT", "/v1/acl/token", Some(&body)).await;
    token.expect_status(200);
    let token = token.json();
    Token {
        secret: token["SecretID"].as_str().expect("SecretID").to_owned(),
        accessor: token["AccessorID"].as_str().expect("AccessorID").to_owned(),
    }
}

/// Consul's denial of `permission` (e.g. `key:write`) on `name` (empty for unnamed resources such as `operator`).
fn denial(token: &Token, permission: &str, name: &str) -> String {
    let on = if name.is_empty() { String::new() } else { format!(" on {name:?}") };
    if token.accessor.is_empty() {
        format!(
            "Permission denied: anonymous token lacks permission '{permission}'{on}. \
             The anonymous token is used implicitly when a request does not specify a token."
        )
    } else {
        format!("Permission denied: token with AccessorID '{}' lacks permission '{permission}'{on}", token.accessor)
    }
}

/// An error body without the line end Consul's error texts are written with.
fn message(res: &Resp) -> String {
    res.text().trim_end().to_owned()
}

/// What a row's request must get back.
enum Expect {
    /// 200: the write or read was allowed.
    Ok,
    /// Anything but 403: the permission check passed (the request may fail for other reasons).
    NotDenied,
    /// 403 with Consul's denial of this permission on this name.
    Denied(&'static str, &'static str),
    /// 200 with this view of the body, and whether the filtered header is sent.
    Read(fn(&Value) -> Value, Value, bool),
    /// 404 (Consul's KV answer to an empty list), and whether the filtered header is sent.
    NotFound(bool),
    /// This status and a body containing this text.
    Status(u16, &'static str),
}

/// One request of the matrix: the rules of the token it carries ([`ANONYMOUS`]: none), and what it must get.
struct Row {
    rules: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    expect: Expect,
}

fn row(rules: &'static str, method: &'static str, path: &'static str, body: Option<Value>, expect: Expect) -> Row {
    Row { rules, method, path, body, expect }
}

/// Runs each row with a fresh token holding its rules, in order, and checks what it got.
async fn check(agent: &TestAgent, root: &str, rows: Vec<Row>) {
    for row in rows {
        let token =
            if row.rules == ANONYMOUS { Token::default() } else { token_with_rules(agent, root, row.rules).await };
        let res = call(agent, &token.secret, row.method, row.path, row.body.as_ref()).await;
        let what = format!("{} {} with {:?}", row.method, row.path, row.rules);
        let filtered = res.header(FILTERED);
        match row.expect {
            Expect::Ok => assert_eq!(res.status, 200, "{what}: {}", res.text()),
            Expect::NotDenied => assert_ne!(res.status, 403, "{what}: {}", res.text()),
            Expect::Denied(permission, name) => {
                assert_eq!((res.status, message(&res)), (403, denial(&token, permission, name)), "{what}");
            }
            Expect::Read(view, answer, expect_filtered) => {
                assert_eq!(res.status, 200, "{what}: {}", res.text());
                assert_eq!(view(&res.json()), answer, "{what}: {}", res.text());
                assert_eq!(filtered.as_deref(), expect_filtered.then_some("true"), "{what}: filtered header");
            }
            Expect::NotFound(expect_filtered) => {
                assert_eq!(res.status, 404, "{what}: {}", res.text());
                assert_eq!(filtered.as_deref(), expect_filtered.then_some("true"), "{what}: filtered header");
            }
            Expect::Status(status, text) => {
                assert_eq!(res.status, status, "{what}: {}", res.text());
                assert!(res.text().contains(text), "{what}: {:?} does not contain {text:?}", res.text());
            }
        }
    }
}

/// `field` of every element of an array, or of every value of an object, sorted.
fn sorted_field(value: &Value, pointer: &str) -> Value {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => vec![],
    };
    let mut out: Vec<String> =
        items.iter().filter_map(|item| item.pointer(pointer)).filter_map(|v| v.as_str()).map(str::to_owned).collect();
    out.sort();
    json!(out)
}

fn keys(value: &Value) -> Value {
    match value {
        Value::Array(items) if items.iter().all(Value::is_string) => value.clone(),
        _ => sorted_field(value, "/Key"),
    }
}

fn object_keys(value: &Value) -> Value {
    let mut out: Vec<&String> = value.as_object().map(|map| map.keys().collect()).unwrap_or_default();
    out.sort();
    json!(out)
}

fn node_names(value: &Value) -> Value {
    sorted_field(value, "/Node")
}

fn names(value: &Value) -> Value {
    sorted_field(value, "/Name")
}

fn check_ids(value: &Value) -> Value {
    sorted_field(value, "/CheckID")
}

fn instance_nodes(value: &Value) -> Value {
    sorted_field(value, "/Node/Node")
}

fn node_service_ids(value: &Value) -> Value {
    sorted_field(&value["Services"], "/ID")
}

fn whole(value: &Value) -> Value {
    value.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_once_then_only_with_the_reset_index_from_the_data_dir() {
    let data = tempfile::tempdir().expect("data dir");
    let agent = TestAgent::start_with_config(
        "acl-bootstrap",
        AgentMode::Server { data_dir: data.path().to_path_buf() },
        acl_config(),
    )
    .await
    .expect("server");

    let first = agent.put("/v1/acl/bootstrap", "").await;
    first.expect_status(200);
    let token = first.json();
    assert_eq!(token["ID"], token["SecretID"], "the legacy ID field is the secret");
    assert_ne!(token["AccessorID"], token["SecretID"]);
    assert_eq!(token["Policies"], json!([{"ID": GLOBAL_MANAGEMENT_ID, "Name": "global-management"}]));
    let secret = token["SecretID"].as_str().expect("SecretID").to_owned();
    let own = call(&agent, &secret, "GET", "/v1/acl/token/self", None).await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["AccessorID"], token["AccessorID"]);

    let again = agent.put("/v1/acl/bootstrap", "").await;
    assert_eq!(again.status, 403, "{}", again.text());
    let reset_index: u64 = again
        .text()
        .trim_end()
        .strip_prefix("Permission denied: ACL bootstrap no longer allowed (reset index: ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected refusal {:?}", again.text()));

    // A wrong index is refused and the file stays for the operator to correct.
    let reset_file = data.path().join("acl-bootstrap-reset");
    std::fs::write(&reset_file, format!("{}", reset_index + 7)).expect("reset file");
    let wrong = agent.put("/v1/acl/bootstrap", "").await;
    assert_eq!(
        (wrong.status, message(&wrong)),
        (500, format!("Invalid bootstrap reset index (specified {}, reset index: {reset_index})", reset_index + 7))
    );
    assert!(reset_file.exists(), "a wrong index leaves the reset file in place");

    // The right index allows exactly one more bootstrap, and the file is consumed.
    std::fs::write(&reset_file, format!("{reset_index}\n")).expect("reset file");
    let second = agent.put("/v1/acl/bootstrap", "").await;
    second.expect_status(200);
    assert_ne!(second.json()["AccessorID"], token["AccessorID"], "a new management token");
    assert_eq!(second.json()["Policies"][0]["ID"], GLOBAL_MANAGEMENT_ID);
    assert!(!reset_file.exists(), "the reset file is removed once used");
    let third = agent.put("/v1/acl/bootstrap", "").await;
    assert_eq!(third.status, 403, "{}", third.text());
    assert!(message(&third).starts_with("Permission denied: ACL bootstrap no longer allowed (reset index: "));
    assert_ne!(third.text(), again.text(), "the reset index moved with the second bootstrap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_reads_are_denied_or_filtered_and_denied_writes_change_nothing() {
    let (agent, root) = dev_acl("acl-kv").await;
    for (key, value) in [("app/a", "a"), ("app/b", "b"), ("secret/x", "x"), ("tmp/1", "1"), ("tmp/2", "2")] {
        call(&agent, &root, "PUT", &format!("/v1/kv/{key}"), Some(&json!(value))).await.expect_status(200);
    }
    let app_read = r#"key_prefix "app/" { policy = "read" }"#;
    let app_write_but_b = r#"key_prefix "app/" { policy = "write" }
key "app/b" { policy = "read" }"#;
    let rows = vec![
        row(app_read, "GET", "/v1/kv/app/a", None, Expect::Read(keys, json!(["app/a"]), false)),
        row(app_read, "GET", "/v1/kv/secret/x", None, Expect::Denied("key:read", "secret/x")),
        row(app_read, "GET", "/v1/kv/secret/missing", None, Expect::Denied("key:read", "secret/missing")),
        row(app_read, "GET", "/v1/kv/?recurse", None, Expect::Read(keys, json!(["app/a", "app/b"]), true)),
        row(app_read, "GET", "/v1/kv/?keys", None, Expect::Read(keys, json!(["app/a", "app/b"]), true)),
        row(app_read, "GET", "/v1/kv/app/?recurse", None, Expect::Read(keys, json!(["app/a", "app/b"]), false)),
        row(app_read, "GET", "/v1/kv/secret/?recurse", None, Expect::NotFound(true)),
        row(app_read, "PUT", "/v1/kv/app/a", Some(json!("changed")), Expect::Denied("key:write", "app/a")),
        row(app_read, "DELETE", "/v1/kv/app/a", None, Expect::Denied("key:write", "app/a")),
        row(app_write_but_b, "DELETE", "/v1/kv/app/?recurse", None, Expect::Denied("key:write", "app/")),
        row(app_write_but_b, "PUT", "/v1/kv/app/b", Some(json!("changed")), Expect::Denied("key:write", "app/b")),
        row(ANONYMOUS, "GET", "/v1/kv/?recurse", None, Expect::NotFound(true)),
        row(ANONYMOUS, "GET", "/v1/kv/?keys", None, Expect::NotFound(true)),
        row(ANONYMOUS, "GET", "/v1/kv/app/a", None, Expect::Denied("key:read", "app/a")),
        row(ANONYMOUS, "PUT", "/v1/kv/app/a", Some(json!("changed")), Expect::Denied("key:write", "app/a")),
        row(r#"key "secret/x" { policy = "write" }"#, "PUT", "/v1/kv/secret/x", Some(json!("new")), Expect::Ok),
        row(r#"key_prefix "tmp/" { policy = "write" }"#, "DELETE", "/v1/kv/tmp/?recurse", None, Expect::Ok),
    ];
    check(&agent, &root, rows).await;

    // Read back as the management token: only the allowed writes happened.
    let everything = call(&agent, &root, "GET", "/v1/kv/?recurse", None).await;
    everything.expect_status(200);
    assert_eq!(everything.header(FILTERED), None, "the management token sees everything");
    let values: Vec<(String, String)> = everything
        .json()
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| {
            let value = roster_tests::unb64(entry["Value"].as_str().unwrap_or_default());
            (entry["Key"].as_str().unwrap_or_default().to_owned(), String::from_utf8_lossy(&value).into_owned())
        })
        .collect();
    let expected = [("app/a", "a"), ("app/b", "b"), ("secret/x", "new")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_with_one_denied_operation_applies_nothing() {
    let (agent, root) = dev_acl("acl-txn").await;
    let token = token_with_rules(&agent, &root, r#"key_prefix "app/" { policy = "write" }"#).await;
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "app/t", "Value": b64("1")}},
        {"KV": {"Verb": "set", "Key": "secret/t", "Value": b64("2")}},
    ]);
    let res = call(&agent, &token.secret, "PUT", "/v1/txn", Some(&ops)).await;
    assert_eq!(res.status, 409, "{}", res.text());
    let errors = res.json()["Errors"].clone();
    assert_eq!(errors, json!([{"OpIndex": 1, "What": denial(&token, "key:write", "secret/t")}]));
    for key in ["app/t", "secret/t"] {
        call(&agent, &root, "GET", &format!("/v1/kv/{key}"), None).await.expect_status(404);
    }

    let allowed = json!([{"KV": {"Verb": "set", "Key": "app/t", "Value": b64("1")}}]);
    call(&agent, &token.secret, "PUT", "/v1/txn", Some(&allowed)).await.expect_status(200);
    call(&agent, &root, "GET", "/v1/kv/app/t", None).await.expect_status(200);
    let anonymous = call(&agent, "", "PUT", "/v1/txn", Some(&allowed)).await;
    assert_eq!(anonymous.status, 409, "{}", anonymous.text());
    assert_eq!(anonymous.json()["Errors"][0]["What"], json!(denial(&Token::default(), "key:write", "app/t")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_session_write_on_the_node_and_lists_are_filtered() {
    let (agent, root) = dev_acl("acl-sessions").await;
    call(&agent, &root, "PUT", "/v1/session/create", Some(&json!({"Name": "by-root"}))).await.expect_status(200);
    let rows = vec![
        row(
            r#"session "acl-sessions" { policy = "write" }"#,
            "PUT",
            "/v1/session/create",
            Some(json!({"Name": "mine"})),
            Expect::Ok,
        ),
        row(
            r#"session "elsewhere" { policy = "write" }"#,
            "PUT",
            "/v1/session/create",
            Some(json!({"Name": "denied"})),
            Expect::Denied("session:write", "acl-sessions"),
        ),
        row(
            ANONYMOUS,
            "PUT",
            "/v1/session/create",
            Some(json!({"Name": "denied"})),
            Expect::Denied("session:write", "acl-sessions"),
        ),
        row(
            r#"session_prefix "" { policy = "read" }"#,
            "GET",
            "/v1/session/list",
            None,
            Expect::Read(names, json!(["by-root", "mine"]), false),
        ),
        row(
            r#"session "elsewhere" { policy = "read" }"#,
            "GET",
            "/v1/session/list",
            None,
            Expect::Read(names, json!([]), true),
        ),
        row(ANONYMOUS, "GET", "/v1/session/list", None, Expect::Read(names, json!([]), true)),
    ];
    check(&agent, &root, rows).await;
    let all = call(&agent, &root, "GET", "/v1/session/list", None).await;
    assert_eq!(names(&all.json()), json!(["by-root", "mine"]), "denied creates made no session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_need_event_write_and_lists_are_filtered() {
    let (agent, root) = dev_acl("acl-events").await;
    call(&agent, &root, "PUT", "/v1/event/fire/other", Some(&json!(""))).await.expect_status(200);
    let deploy_write = r#"event_prefix "deploy" { policy = "write" }"#;
    let rows = vec![
        row(deploy_write, "PUT", "/v1/event/fire/deploy-web", Some(json!("")), Expect::Ok),
        row(deploy_write, "PUT", "/v1/event/fire/restart", Some(json!("")), Expect::Denied("event:write", "restart")),
        row(ANONYMOUS, "PUT", "/v1/event/fire/restart", Some(json!("")), Expect::Denied("event:write", "restart")),
    ];
    check(&agent, &root, rows).await;
    // Events reach the list through gossip; wait until both allowed ones are there.
    eventually("both events listed", Duration::from_secs(10), || async {
        let list = call(&agent, &root, "GET", "/v1/event/list", None).await.json();
        (names(&list) == json!(["deploy-web", "other"])).then_some(())
    })
    .await;
    let rows = vec![
        row(
            r#"event_prefix "" { policy = "read" }"#,
            "GET",
            "/v1/event/list",
            None,
            Expect::Read(names, json!(["deploy-web", "other"]), false),
        ),
        row(
            r#"event_prefix "deploy" { policy = "read" }"#,
            "GET",
            "/v1/event/list",
            None,
            Expect::Read(names, json!(["deploy-web"]), true),
        ),
        row(ANONYMOUS, "GET", "/v1/event/list", None, Expect::Read(names, json!([]), true)),
    ];
    check(&agent, &root, rows).await;
}

/// A catalog registration of `service` on `node`, with one node-level and one service-level check.
fn registration(node: &str, address: &str, service: &str) -> Value {
    json!({
        "Node": node, "Address": address,
        "Service": {"ID": service, "Service": service, "Port": 8080},
        "Checks": [
            {"CheckID": format!("{node}-alive"), "Name": "alive", "Status": "passing"},
            {"CheckID": format!("{service}-on-{node}"), "Name": "probe", "ServiceID": service, "Status": "passing"},
        ],
    })
}

async fn register_catalog(agent: &TestAgent, root: &str) {
    for (node, address, service) in
        [("web-1", "192.0.2.1", "web"), ("web-2", "192.0.2.2", "web"), ("db-1", "192.0.2.3", "db")]
    {
        let body = registration(node, address, service);
        call(agent, root, "PUT", "/v1/catalog/register", Some(&body)).await.expect_status(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_writes_need_node_and_service_write_and_reads_are_filtered() {
    let (agent, root) = dev_acl("acl-catalog").await;
    register_catalog(&agent, &root).await;
    let tmp = json!({"Node": "tmp-1", "Address": "192.0.2.9", "Service": {"ID": "tmp", "Service": "tmp"}});
    call(&agent, &root, "PUT", "/v1/catalog/register", Some(&tmp)).await.expect_status(200);

    let all_nodes_web = r#"node_prefix "" { policy = "read" }
service "web" { policy = "read" }"#;
    let web_1_only = r#"node "web-1" { policy = "read" }
service "web" { policy = "read" }"#;
    let rows = vec![
        row(all_nodes_web, "GET", "/v1/catalog/services", None, Expect::Read(object_keys, json!(["web"]), true)),
        row(web_1_only, "GET", "/v1/catalog/nodes", None, Expect::Read(node_names, json!(["web-1"]), true)),
        row(
            all_nodes_web,
            "GET",
            "/v1/catalog/service/web",
            None,
            Expect::Read(node_names, json!(["web-1", "web-2"]), false),
        ),
        row(web_1_only, "GET", "/v1/catalog/service/web", None, Expect::Read(node_names, json!(["web-1"]), true)),
        row(all_nodes_web, "GET", "/v1/catalog/service/db", None, Expect::Read(node_names, json!([]), true)),
        row(
            r#"service "web" { policy = "read" }"#,
            "GET",
            "/v1/catalog/service/web",
            None,
            Expect::Read(node_names, json!([]), true),
        ),
        row(
            r#"node "db-1" { policy = "read" }"#,
            "GET",
            "/v1/catalog/node/db-1",
            None,
            Expect::Read(node_service_ids, json!([]), true),
        ),
        row(
            r#"node "db-1" { policy = "read" }
service "db" { policy = "read" }"#,
            "GET",
            "/v1/catalog/node/db-1",
            None,
            Expect::Read(node_service_ids, json!(["db"]), false),
        ),
        row(ANONYMOUS, "GET", "/v1/catalog/services", None, Expect::Read(whole, json!({}), true)),
        row(ANONYMOUS, "GET", "/v1/catalog/nodes", None, Expect::Read(whole, json!([]), true)),
        row(ANONYMOUS, "GET", "/v1/catalog/service/web", None, Expect::Read(whole, json!([]), true)),
        // Writes.
        row(
            r#"node "web-4" { policy = "write" }
service "web" { policy = "write" }"#,
            "PUT",
            "/v1/catalog/register",
            Some(json!({"Node": "web-4", "Address": "192.0.2.6", "Service": {"Service": "web"}})),
            Expect::Ok,
        ),
        row(
            r#"node "web-9" { policy = "write" }"#,
            "PUT",
            "/v1/catalog/register",
            Some(registration("web-9", "192.0.2.5", "api")),
            Expect::Denied("service:write", "api"),
        ),
        row(
            r#"service "web" { policy = "write" }"#,
            "PUT",
            "/v1/catalog/register",
            Some(registration("web-9", "192.0.2.5", "web")),
            Expect::Denied("node:write", "web-9"),
        ),
        row(
            r#"node "db-1" { policy = "read" }"#,
            "PUT",
            "/v1/catalog/deregister",
            Some(json!({"Node": "db-1"})),
            Expect::Denied("node:write", "db-1"),
        ),
        row(
            r#"service "tmp" { policy = "read" }"#,
            "PUT",
            "/v1/catalog/deregister",
            Some(json!({"Node": "tmp-1", "ServiceID": "tmp"})),
            Expect::Denied("service:write", "tmp"),
        ),
        row(
            r#"service "tmp" { policy = "write" }"#,
            "PUT",
            "/v1/catalog/deregister",
            Some(json!({"Node": "tmp-1", "ServiceID": "tmp"})),
            Expect::Ok,
        ),
        // Consul checks service:write (servicePreApply) before node:write (vetRegisterWithACL).
        row(
            ANONYMOUS,
            "PUT",
            "/v1/catalog/register",
            Some(registration("web-9", "192.0.2.5", "web")),
            Expect::Denied("service:write", "web"),
        ),
        // A node-level check names no Node: it is the registration's node, so node:write on web-3 covers it.
        row(
            r#"node "web-3" { policy = "write" }
service "web" { policy = "write" }"#,
            "PUT",
            "/v1/catalog/register",
            Some(registration("web-3", "192.0.2.4", "web")),
            Expect::Ok,
        ),
    ];
    check(&agent, &root, rows).await;

    let nodes = call(&agent, &root, "GET", "/v1/catalog/nodes", None).await.json();
    assert_eq!(
        node_names(&nodes),
        json!(["acl-catalog", "db-1", "tmp-1", "web-1", "web-2", "web-3", "web-4"]),
        "web-9 was never registered and db-1 never deregistered"
    );
    let services = call(&agent, &root, "GET", "/v1/catalog/services", None).await.json();
    assert_eq!(object_keys(&services), json!(["consul", "db", "web"]), "tmp was deregistered, api never registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_an_instance_only_with_node_read_and_service_read() {
    let (agent, root) = dev_acl("acl-health").await;
    register_catalog(&agent, &root).await;
    let web_1_only = r#"node "web-1" { policy = "read" }
service "web" { policy = "read" }"#;
    let all_nodes_web = r#"node_prefix "" { policy = "read" }
service "web" { policy = "read" }"#;
    let rows = vec![
        row(
            all_nodes_web,
            "GET",
            "/v1/health/service/web",
            None,
            Expect::Read(instance_nodes, json!(["web-1", "web-2"]), false),
        ),
        row(web_1_only, "GET", "/v1/health/service/web", None, Expect::Read(instance_nodes, json!(["web-1"]), true)),
        row(
            r#"service "web" { policy = "read" }"#,
            "GET",
            "/v1/health/service/web",
            None,
            Expect::Read(instance_nodes, json!([]), true),
        ),
        row(
            r#"node_prefix "" { policy = "read" }"#,
            "GET",
            "/v1/health/service/web",
            None,
            Expect::Read(instance_nodes, json!([]), true),
        ),
        row(web_1_only, "GET", "/v1/health/checks/web", None, Expect::Read(check_ids, json!(["web-on-web-1"]), true)),
        row(
            r#"node "web-1" { policy = "read" }"#,
            "GET",
            "/v1/health/node/web-1",
            None,
            Expect::Read(check_ids, json!(["web-1-alive"]), true),
        ),
        row(
            web_1_only,
            "GET",
            "/v1/health/node/web-1",
            None,
            Expect::Read(check_ids, json!(["web-1-alive", "web-on-web-1"]), false),
        ),
        row(
            web_1_only,
            "GET",
            "/v1/health/state/any",
            None,
            Expect::Read(check_ids, json!(["web-1-alive", "web-on-web-1"]), true),
        ),
        row(ANONYMOUS, "GET", "/v1/health/service/web", None, Expect::Read(whole, json!([]), true)),
        row(ANONYMOUS, "GET", "/v1/health/state/any", None, Expect::Read(whole, json!([]), true)),
        row(ANONYMOUS, "GET", "/v1/health/node/web-1", None, Expect::Read(whole, json!([]), true)),
    ];
    check(&agent, &root, rows).await;
}

/// One URL asked over and over by callers with different tokens, nothing written in between: a server agent keeps
/// each caller's encoded answer apart, so every caller keeps getting its own view and its own filtered header, and a
/// token deleted meanwhile is refused rather than answered from what it was given before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_read_answers_each_caller_with_its_own_view() {
    let (agent, root) = dev_acl("acl-repeat").await;
    register_catalog(&agent, &root).await;
    let web_1 =
        token_with_rules(&agent, &root, "node \"web-1\" { policy = \"read\" }\nservice \"web\" { policy = \"read\" }")
            .await;
    let all = token_with_rules(
        &agent,
        &root,
        "node_prefix \"\" { policy = \"read\" }\nservice \"web\" { policy = \"read\" }",
    )
    .await;
    let callers = [
        (web_1.secret.as_str(), json!(["web-1"]), true),
        (all.secret.as_str(), json!(["web-1", "web-2"]), false),
        ("", json!([]), true),
        (root.as_str(), json!(["web-1", "web-2"]), false),
    ];
    for path in ["/v1/health/service/web", "/v1/catalog/service/web"] {
        let mut indexes = Vec::new();
        for round in 0..3 {
            for (secret, nodes, filtered) in &callers {
                let res = call(&agent, secret, "GET", path, None).await;
                let what = format!("round {round} of {path} with {secret:?}");
                assert_eq!(res.status, 200, "{what}: {}", res.text());
                let body = res.json();
                let seen = if path.contains("health") { instance_nodes(&body) } else { node_names(&body) };
                assert_eq!(&seen, nodes, "{what}");
                assert_eq!(res.header(FILTERED).as_deref(), filtered.then_some("true"), "{what}: filtered header");
                indexes.push(res.index());
            }
        }
        indexes.dedup();
        assert_eq!(indexes.len(), 1, "nothing was written, so every answer of {path} has one index: {indexes:?}");
    }

    call(&agent, &root, "DELETE", &format!("/v1/acl/token/{}", web_1.accessor), None).await.expect_status(200);
    let res = call(&agent, &web_1.secret, "GET", "/v1/health/service/web", None).await;
    assert_eq!((res.status, message(&res)), (403, "ACL not found".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_endpoints_check_agent_service_node_and_operator_rules() {
    let (agent, root) = dev_acl("acl-agent").await;
    for name in ["svc", "svc2"] {
        let body = json!({"Name": name, "Port": 80});
        call(&agent, &root, "PUT", "/v1/agent/service/register", Some(&body)).await.expect_status(200);
    }
    let svc_check = json!({"CheckID": "svc-ttl", "Name": "svc ttl", "TTL": "300s", "ServiceID": "svc"});
    call(&agent, &root, "PUT", "/v1/agent/check/register", Some(&svc_check)).await.expect_status(200);
    let agent_read = r#"agent "acl-agent" { policy = "read" }"#;
    let agent_write = r#"agent "acl-agent" { policy = "write" }"#;
    let node_write = r#"node "acl-agent" { policy = "write" }"#;
    let svc_write = r#"service "svc" { policy = "write" }"#;
    let other_write = r#"service "other" { policy = "write" }"#;
    let node_check = json!({"CheckID": "node-ttl", "Name": "node ttl", "TTL": "300s"});
    let rows = vec![
        row(agent_read, "GET", "/v1/agent/self", None, Expect::Ok),
        row(
            r#"node_prefix "" { policy = "read" }"#,
            "GET",
            "/v1/agent/self",
            None,
            Expect::Denied("agent:read", "acl-agent"),
        ),
        row(ANONYMOUS, "GET", "/v1/agent/self", None, Expect::Denied("agent:read", "acl-agent")),
        // Services.
        row(
            r#"service "api" { policy = "write" }"#,
            "PUT",
            "/v1/agent/service/register",
            Some(json!({"Name": "api", "Port": 81})),
            Expect::Ok,
        ),
        row(
            svc_write,
            "PUT",
            "/v1/agent/service/register",
            Some(json!({"Name": "rogue", "Port": 82})),
            Expect::Denied("service:write", "rogue"),
        ),
        row(svc_write, "PUT", "/v1/agent/service/deregister/api", None, Expect::Denied("service:write", "api")),
        row(r#"service "api" { policy = "write" }"#, "PUT", "/v1/agent/service/deregister/api", None, Expect::Ok),
        row(
            r#"service "svc" { policy = "read" }"#,
            "GET",
            "/v1/agent/services",
            None,
            Expect::Read(object_keys, json!(["svc"]), true),
        ),
        row(ANONYMOUS, "GET", "/v1/agent/services", None, Expect::Read(whole, json!({}), true)),
        // Checks.
        row(
            svc_write,
            "PUT",
            "/v1/agent/check/register",
            Some(json!({"CheckID": "svc-ttl-2", "Name": "another", "TTL": "300s", "ServiceID": "svc"})),
            Expect::Ok,
        ),
        row(
            other_write,
            "PUT",
            "/v1/agent/check/register",
            Some(json!({"CheckID": "svc-ttl-3", "Name": "denied", "TTL": "300s", "ServiceID": "svc"})),
            Expect::Denied("service:write", "svc"),
        ),
        row(
            svc_write,
            "PUT",
            "/v1/agent/check/register",
            Some(node_check.clone()),
            Expect::Denied("node:write", "acl-agent"),
        ),
        row(node_write, "PUT", "/v1/agent/check/register", Some(node_check), Expect::Ok),
        row(svc_write, "PUT", "/v1/agent/check/pass/svc-ttl", None, Expect::Ok),
        row(other_write, "PUT", "/v1/agent/check/fail/svc-ttl", None, Expect::Denied("service:write", "svc")),
        row(node_write, "PUT", "/v1/agent/check/fail/node-ttl", None, Expect::Ok),
        row(svc_write, "PUT", "/v1/agent/check/pass/node-ttl", None, Expect::Denied("node:write", "acl-agent")),
        row(
            r#"service "svc" { policy = "read" }"#,
            "GET",
            "/v1/agent/checks",
            None,
            Expect::Read(object_keys, json!(["svc-ttl", "svc-ttl-2"]), true),
        ),
        // Maintenance, members, cluster operations.
        row(
            agent_write,
            "PUT",
            "/v1/agent/maintenance?enable=true&reason=x",
            None,
            Expect::Denied("node:write", "acl-agent"),
        ),
        row(node_write, "PUT", "/v1/agent/maintenance?enable=true&reason=x", None, Expect::Ok),
        row(node_write, "PUT", "/v1/agent/maintenance?enable=false", None, Expect::Ok),
        row(
            r#"node "acl-agent" { policy = "read" }"#,
            "GET",
            "/v1/agent/members",
            None,
            Expect::Read(names, json!(["acl-agent"]), false),
        ),
        row(agent_read, "GET", "/v1/agent/members", None, Expect::Read(names, json!([]), true)),
        row(ANONYMOUS, "GET", "/v1/agent/members", None, Expect::Read(whole, json!([]), true)),
        row(agent_write, "PUT", "/v1/agent/force-leave/ghost", None, Expect::Denied("operator:write", "")),
        row(r#"operator = "write""#, "PUT", "/v1/agent/force-leave/ghost", None, Expect::NotDenied),
        row(agent_read, "PUT", "/v1/agent/join/127.0.0.1:1", None, Expect::Denied("agent:write", "acl-agent")),
        row(agent_read, "PUT", "/v1/agent/leave", None, Expect::Denied("agent:write", "acl-agent")),
        row(ANONYMOUS, "PUT", "/v1/agent/leave", None, Expect::Denied("agent:write", "acl-agent")),
        row(agent_read, "PUT", "/v1/agent/reload", None, Expect::Denied("agent:write", "acl-agent")),
        row(ANONYMOUS, "PUT", "/v1/agent/reload", None, Expect::Denied("agent:write", "acl-agent")),
        row(agent_write, "PUT", "/v1/agent/reload", None, Expect::Ok),
        row(r#"operator = "read""#, "GET", "/v1/operator/raft/configuration", None, Expect::Ok),
        row(agent_write, "GET", "/v1/operator/raft/configuration", None, Expect::Denied("operator:read", "")),
        row(ANONYMOUS, "GET", "/v1/operator/raft/configuration", None, Expect::Denied("operator:read", "")),
    ];
    check(&agent, &root, rows).await;

    // Denied writes changed nothing; the agent still runs after the denied leave.
    let services = call(&agent, &root, "GET", "/v1/agent/services", None).await.json();
    assert_eq!(object_keys(&services), json!(["svc", "svc2"]), "rogue never registered, api deregistered");
    let checks = call(&agent, &root, "GET", "/v1/agent/checks", None).await.json();
    assert_eq!(object_keys(&checks), json!(["node-ttl", "svc-ttl", "svc-ttl-2"]));
    assert_eq!(checks["svc-ttl"]["Status"], "passing", "the denied fail left the pass in place");
    assert_eq!(checks["node-ttl"]["Status"], "critical", "the denied pass left the fail in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_a_job_needs_agent_write_and_service_write_on_each_service() {
    let (agent, root) = dev_acl("acl-jobs").await;
    let spec = json!({
        "name": "static",
        "tasks": [{
            "name": "web",
            "driver": "exec",
            "rootfs": "/",
            "command": "/bin/true",
            "services": [{"name": "static"}],
        }],
    });
    let rows = vec![
        row(
            r#"agent "acl-jobs" { policy = "write" }"#,
            "PUT",
            "/v1/agent/job",
            Some(spec.clone()),
            Expect::Denied("service:write", "static"),
        ),
        row(
            r#"service "static" { policy = "write" }"#,
            "PUT",
            "/v1/agent/job",
            Some(spec.clone()),
            Expect::Denied("agent:write", "acl-jobs"),
        ),
        row(ANONYMOUS, "PUT", "/v1/agent/job", Some(spec), Expect::Denied("agent:write", "acl-jobs")),
        row(
            r#"agent "acl-jobs" { policy = "write" }"#,
            "GET",
            "/v1/agent/jobs",
            None,
            Expect::Read(whole, json!([]), false),
        ),
        row(ANONYMOUS, "GET", "/v1/agent/jobs", None, Expect::Denied("agent:read", "acl-jobs")),
    ];
    check(&agent, &root, rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_api_needs_acl_read_and_write_and_refuses_unknown_names_and_bad_rules() {
    let (agent, root) = dev_acl("acl-api").await;
    let rows = vec![
        row(r#"node_prefix "" { policy = "read" }"#, "GET", "/v1/acl/tokens", None, Expect::Denied("acl:read", "")),
        row(ANONYMOUS, "GET", "/v1/acl/tokens", None, Expect::Denied("acl:read", "")),
        row(
            r#"acl = "read""#,
            "PUT",
            "/v1/acl/token",
            Some(json!({"Description": "x"})),
            Expect::Denied("acl:write", ""),
        ),
        row(r#"acl = "write""#, "PUT", "/v1/acl/token", Some(json!({"Description": "x"})), Expect::Ok),
        row(
            r#"acl = "read""#,
            "PUT",
            "/v1/acl/policy",
            Some(json!({"Name": "sneaky", "Rules": r#"acl = "write""#})),
            Expect::Denied("acl:write", ""),
        ),
        row(
            r#"acl = "write""#,
            "PUT",
            "/v1/acl/token",
            Some(json!({"Policies": [{"Name": "no-such-policy"}]})),
            Expect::Status(400, r#""no-such-policy""#),
        ),
    ];
    check(&agent, &root, rows).await;

    // A reader without acl:write sees every token, but no secret.
    let reader = token_with_rules(&agent, &root, r#"acl = "read""#).await;
    let listed = call(&agent, &reader.secret, "GET", "/v1/acl/tokens", None).await;
    listed.expect_status(200);
    let tokens = listed.json();
    let tokens = tokens.as_array().expect("token list");
    assert!(tokens.len() >= 3, "bootstrap, the writer's and the reader's tokens: {tokens:?}");
    assert!(tokens.iter().all(|t| t["SecretID"] == "<hidden>"), "secrets hidden from a reader: {tokens:?}");
    let as_root = call(&agent, &root, "GET", "/v1/acl/tokens", None).await.json();
    assert!(as_root.as_array().expect("tokens").iter().any(|t| t["SecretID"] == json!(root)), "a writer sees secrets");
    let policies = call(&agent, &root, "GET", "/v1/acl/policies", None).await.json();
    assert!(
        !names(&policies).as_array().expect("names").contains(&json!("sneaky")),
        "the denied policy was not created"
    );

    // A malformed rule names its line and the rule it is in.
    let rules = "key \"a\" {\n  policy = \"read\"\n}\nkey_prefix \"lb/\" {\n  policy = \"reed\"\n}\n";
    let bad = call(&agent, &root, "PUT", "/v1/acl/policy", Some(&json!({"Name": "bad", "Rules": rules}))).await;
    assert_eq!(
        (bad.status, message(&bad)),
        (400, r#"Failed to parse ACL rules: line 5: key_prefix "lb/": invalid policy "reed""#.to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_token_beats_the_header_which_beats_bearer_and_unknown_tokens_are_not_found() {
    let (agent, root) = dev_acl("acl-sources").await;
    call(&agent, &root, "PUT", "/v1/kv/t", Some(&json!("v"))).await.expect_status(200);
    let reader = token_with_rules(&agent, &root, r#"key "t" { policy = "read" }"#).await;
    let other = token_with_rules(&agent, &root, r#"key "u" { policy = "read" }"#).await;
    let bearer = |token: &Token| format!("Bearer {}", token.secret);
    // Each case: the path, the headers, and the token that must be the one acting.
    type Case<'a> = (String, Vec<(&'a str, String)>, &'a Token);
    let cases: Vec<Case> = vec![
        (format!("/v1/kv/t?token={}", reader.secret), vec![("X-Consul-Token", other.secret.clone())], &reader),
        (format!("/v1/kv/t?token={}", other.secret), vec![("X-Consul-Token", reader.secret.clone())], &other),
        (
            "/v1/kv/t".into(),
            vec![("X-Consul-Token", reader.secret.clone()), ("Authorization", bearer(&other))],
            &reader,
        ),
        ("/v1/kv/t".into(), vec![("X-Consul-Token", other.secret.clone()), ("Authorization", bearer(&reader))], &other),
        ("/v1/kv/t".into(), vec![("Authorization", bearer(&reader))], &reader),
        ("/v1/kv/t".into(), vec![("Authorization", bearer(&other))], &other),
    ];
    for (path, headers, acting) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let res = agent.request_with_headers(Method::GET, &path, &headers, None).await;
        if acting.secret == reader.secret {
            assert_eq!(res.status, 200, "{path} {headers:?}: {}", res.text());
        } else {
            assert_eq!((res.status, message(&res)), (403, denial(&other, "key:read", "t")), "{path} {headers:?}");
        }
    }

    let unknown = "6d3a4a47-0c3c-4f55-9a69-0c0d4c2b9a11";
    for res in [
        agent.get(&format!("/v1/kv/t?token={unknown}")).await,
        call(&agent, unknown, "GET", "/v1/kv/t", None).await,
        call(&agent, unknown, "PUT", "/v1/kv/t", Some(&json!("w"))).await,
        agent
            .request_with_headers(Method::GET, "/v1/kv/t", &[("Authorization", &format!("Bearer {unknown}"))], None)
            .await,
    ] {
        assert_eq!((res.status, message(&res)), (403, "ACL not found".to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiration_is_bounded_like_consuls() {
    let (agent, root) = dev_acl("acl-expiry").await;
    let create = |body: Value| {
        let agent = &agent;
        let root = root.clone();
        async move { call(agent, &root, "PUT", "/v1/acl/token", Some(&body)).await }
    };

    let ten_minutes = create(json!({"ExpirationTTL": "10m"})).await;
    ten_minutes.expect_status(200);
    let token = ten_minutes.json();
    assert!(token["ExpirationTime"].is_string(), "a TTL sets ExpirationTime: {token}");
    let secret = token["SecretID"].as_str().expect("SecretID");
    call(&agent, secret, "GET", "/v1/acl/token/self", None).await.expect_status(200);

    // Consul reads a zero TTL as no TTL at all.
    let zero = create(json!({"ExpirationTTL": "0s"})).await;
    zero.expect_status(200);
    assert_eq!(zero.json().get("ExpirationTime"), None, "{}", zero.text());

    let later = "2100-01-01T00:00:00Z";
    let cases = [
        (json!({"ExpirationTTL": "-1s"}), "Token Expiration TTL '-1s' should be > 0"),
        (json!({"ExpirationTTL": "25h"}), "ExpirationTime cannot be more than 24h0m0s in the future (was 25h0m0s)"),
        (json!({"ExpirationTTL": "30s"}), "ExpirationTime cannot be less than 1m0s in the future (was 30s)"),
        (
            json!({"ExpirationTTL": "10m", "ExpirationTime": later}),
            "Token Expiration TTL and Expiration Time cannot both be set",
        ),
    ];
    // Every case is tried before failing, so a failure lists all the answers that differ from Consul's.
    let mut differing = Vec::new();
    for (body, text) in cases {
        let res = create(body.clone()).await;
        if (res.status, message(&res)) != (400, text.to_owned()) {
            differing.push(format!("{body}: got {} {:?}, Consul answers 400 {text:?}", res.status, message(&res)));
        }
    }
    assert!(differing.is_empty(), "{differing:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_token_acts_for_tokenless_requests_and_a_persisted_one_survives_restarts() {
    let root = "1b2c3d4e-0000-4000-8000-00000000aaaa";
    let first_default = "1b2c3d4e-0000-4000-8000-00000000bbbb";
    let data = tempfile::tempdir().expect("data dir");
    let config = json!({"acl": {
        "enabled": true, "default_policy": "deny", "enable_token_persistence": true,
        "tokens": {"initial_management": root, "default": first_default},
    }});
    let mut agent =
        TestAgent::start_with_config("acl-default", AgentMode::Server { data_dir: data.path().to_path_buf() }, config)
            .await
            .expect("server");
    eventually("the initial management token", Duration::from_secs(10), || async {
        (call(&agent, root, "GET", "/v1/acl/token/self", None).await.status == 200).then_some(())
    })
    .await;
    for key in ["a", "b"] {
        call(&agent, root, "PUT", &format!("/v1/kv/{key}"), Some(&json!(key))).await.expect_status(200);
    }
    let policy = json!({"Name": "read-a", "Rules": r#"key "a" { policy = "read" }"#});
    call(&agent, root, "PUT", "/v1/acl/policy", Some(&policy)).await.expect_status(200);
    let body = json!({"SecretID": first_default, "Policies": [{"Name": "read-a"}]});
    let created = call(&agent, root, "PUT", "/v1/acl/token", Some(&body)).await;
    created.expect_status(200);
    let first = Token { secret: first_default.into(), accessor: created.json()["AccessorID"].as_str().unwrap().into() };
    agent.get("/v1/kv/a").await.expect_status(200);
    let denied = agent.get("/v1/kv/b").await;
    assert_eq!((denied.status, message(&denied)), (403, denial(&first, "key:read", "b")));

    // Changing the default token needs agent:write; the default token itself has none.
    let second = token_with_rules(&agent, root, r#"key "b" { policy = "read" }"#).await;
    let set_default = json!({"Token": second.secret});
    let refused = agent.put_json("/v1/agent/token/default", &set_default).await;
    assert_eq!((refused.status, message(&refused)), (403, denial(&first, "agent:write", "acl-default")));
    agent.get("/v1/kv/a").await.expect_status(200);
    call(&agent, root, "PUT", "/v1/agent/token/default", Some(&set_default)).await.expect_status(200);
    agent.get("/v1/kv/b").await.expect_status(200);
    let denied = agent.get("/v1/kv/a").await;
    assert_eq!((denied.status, message(&denied)), (403, denial(&second, "key:read", "a")));

    let tokens_file = data.path().join("acl-tokens.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&tokens_file).expect("acl-tokens.json").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the persisted tokens file is private");

    // The token set through the API wins over the config's after a restart.
    agent.restart().await;
    agent.get("/v1/kv/b").await.expect_status(200);
    let denied = agent.get("/v1/kv/a").await;
    assert_eq!((denied.status, message(&denied)), (403, denial(&second, "key:read", "a")));
}

/// The A records `dig` finds for `name` at the agent's DNS port.
fn dig_a(agent: &TestAgent, name: &str) -> Vec<String> {
    let addr = agent.dns_addr();
    let output = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=5", "+tries=3", "+nocookie", "+noedns", "+short", name, "A"])
        .output()
        .expect("run dig (apt-get install bind9-dnsutils)");
    assert!(output.status.success(), "dig failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut out: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_only_what_the_dns_token_may_read() {
    let agent = TestAgent::dev_with_dns("acl-dns", acl_config()).await;
    let root = bootstrap(&agent).await;
    let body = json!({"Node": "files-1", "Address": "192.0.2.10", "Service": {"Service": "files", "Port": 80}});
    call(&agent, &root, "PUT", "/v1/catalog/register", Some(&body)).await.expect_status(200);
    assert_eq!(dig_a(&agent, "files.service.consul"), Vec::<String>::new(), "the anonymous token reads nothing");

    let dns_token = call(
        &agent,
        &root,
        "PUT",
        "/v1/acl/token",
        Some(&json!({"TemplatedPolicies": [{"TemplateName": "builtin/dns"}]})),
    )
    .await;
    dns_token.expect_status(200);
    let secret = dns_token.json()["SecretID"].as_str().expect("SecretID").to_owned();
    call(&agent, &root, "PUT", "/v1/agent/token/dns", Some(&json!({"Token": secret}))).await.expect_status(200);
    assert_eq!(dig_a(&agent, "files.service.consul"), vec!["192.0.2.10".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_read_whose_token_was_deleted_answers_acl_not_found() {
    let (agent, root) = dev_acl("acl-blocking").await;
    call(&agent, &root, "PUT", "/v1/kv/lb/web/a", Some(&json!("a"))).await.expect_status(200);
    let reader = token_with_rules(&agent, &root, r#"key_prefix "lb/web/" { policy = "read" }"#).await;
    let first = call(&agent, &reader.secret, "GET", "/v1/kv/lb/web/?recurse", None).await;
    first.expect_status(200);
    let index = first.index();

    let parked = agent
        .client()
        .get(agent.url(&format!("/v1/kv/lb/web/?recurse&index={index}&wait=60s")))
        .header("X-Consul-Token", reader.secret.clone())
        .send();
    let parked = tokio::spawn(parked);
    let deleted = call(&agent, &root, "DELETE", &format!("/v1/acl/token/{}", reader.accessor), None).await;
    deleted.expect_status(200);
    call(&agent, &root, "PUT", "/v1/kv/lb/web/x", Some(&json!("x"))).await.expect_status(200);

    let answer = parked.await.expect("join").expect("blocking request");
    let answer = Resp::read(answer).await.expect("body");
    assert_eq!((answer.status, message(&answer)), (403, "ACL not found".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_tokens_survive_a_kill9_of_a_durable_server() {
    let data = tempfile::tempdir().expect("data dir");
    let mut agent = TestAgent::start_with_config(
        "acl-durable",
        AgentMode::Server { data_dir: data.path().to_path_buf() },
        acl_config(),
    )
    .await
    .expect("server");
    let root = bootstrap(&agent).await;
    let rules = r#"key_prefix "d/" { policy = "write" }"#;
    call(&agent, &root, "PUT", "/v1/acl/policy", Some(&json!({"Name": "durable", "Rules": rules})))
        .await
        .expect_status(200);
    let token = call(&agent, &root, "PUT", "/v1/acl/token", Some(&json!({"Policies": [{"Name": "durable"}]}))).await;
    token.expect_status(200);
    let token = Token {
        secret: token.json()["SecretID"].as_str().expect("SecretID").into(),
        accessor: token.json()["AccessorID"].as_str().expect("AccessorID").into(),
    };
    call(&agent, &token.secret, "PUT", "/v1/kv/d/1", Some(&json!("1"))).await.expect_status(200);

    agent.kill9();
    agent.restart().await;
    call(&agent, &token.secret, "GET", "/v1/kv/d/1", None).await.expect_status(200);
    call(&agent, &token.secret, "PUT", "/v1/kv/d/2", Some(&json!("2"))).await.expect_status(200);
    let denied = call(&agent, &token.secret, "PUT", "/v1/kv/e/1", Some(&json!("1"))).await;
    assert_eq!((denied.status, message(&denied)), (403, denial(&token, "key:write", "e/1")));
    let policy = call(&agent, &root, "GET", "/v1/acl/policy/name/durable", None).await;
    policy.expect_status(200);
    assert_eq!(policy.json()["Rules"], json!(rules));
    let again = agent.put("/v1/acl/bootstrap", "").await;
    assert_eq!(again.status, 403, "still bootstrapped after the restart: {}", again.text());
}
