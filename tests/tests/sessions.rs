//! Sessions and KV locks over HTTP: create/info/list/node/renew/destroy shapes and errors, `?acquire`/`?release`, lock hand-over when the holder's session is destroyed, and a blocking session list.

use std::time::Duration;

use roster_tests::shape::{array, assert_keys};
use roster_tests::{TestAgent, eventually};
use serde_json::{Value, json};

const SESSION_KEYS: &[&str] = &[
    "ID",
    "Name",
    "Node",
    "LockDelay",
    "Behavior",
    "TTL",
    "NodeChecks",
    "ServiceChecks",
    "CreateIndex",
    "ModifyIndex",
];

/// Creates a session from `body` and returns its ID.
async fn create(agent: &TestAgent, body: &Value) -> String {
    let res = agent.put_json("/v1/session/create", body).await;
    res.expect_status(200);
    res.json()["ID"].as_str().unwrap_or_else(|| panic!("no ID in {}", res.text())).to_owned()
}

/// `PUT /v1/kv/<path>` and its `true`/`false` body.
async fn put_bool(agent: &TestAgent, path: &str, body: &str) -> bool {
    let res = agent.put(&format!("/v1/kv/{path}"), body).await;
    res.expect_status(200);
    res.json().as_bool().unwrap_or_else(|| panic!("not a bool: {}", res.text()))
}

async fn entry(agent: &TestAgent, key: &str) -> Value {
    let res = agent.get(&format!("/v1/kv/{key}")).await;
    res.expect_status(200);
    res.json()[0].clone()
}

#[tokio::test]
async fn create_defaults_to_this_node_serf_health_and_release_and_reads_back_in_consuls_shape() {
    let agent = TestAgent::dev("sess-shape").await;
    let id = create(&agent, &json!({"Name": "web-lock", "TTL": "15s"})).await;
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let res = agent.get(&format!("/v1/session/info/{id}")).await;
    res.expect_status(200);
    let info = res.json();
    let session = &array(&info)[0];
    assert_keys(session, SESSION_KEYS, "session");
    assert_eq!(session["Node"], "sess-shape");
    assert_eq!(session["NodeChecks"], json!(["serfHealth"]));
    assert_eq!(session["ServiceChecks"], Value::Null);
    assert_eq!(session["LockDelay"], 15_000_000_000u64);
    assert_eq!(session["Behavior"], "release");
    assert_eq!(session["TTL"], "15s");
    assert!(res.index() >= session["ModifyIndex"].as_u64().unwrap_or(u64::MAX));

    let list = agent.get("/v1/session/list").await.json();
    assert_eq!(array(&list).len(), 1);
    assert_eq!(array(&agent.get("/v1/session/node/sess-shape").await.json()).len(), 1);
    assert_eq!(agent.get("/v1/session/node/other").await.json(), json!([]));
    assert_eq!(agent.get("/v1/session/info/00000000-0000-0000-0000-000000000000").await.json(), json!([]));

    let renewed = agent.put(&format!("/v1/session/renew/{id}"), "").await;
    renewed.expect_status(200);
    assert_eq!(renewed.json()[0]["ID"], id.as_str());
}

#[tokio::test]
async fn create_and_renew_refusals_carry_consuls_status_and_text() {
    let agent = TestAgent::dev("sess-errors").await;
    let res = agent.put_json("/v1/session/create", &json!({"Node": "ghost"})).await;
    res.expect_status(500);
    assert_eq!(res.text().trim(), "Missing node registration");
    let res = agent.put_json("/v1/session/create", &json!({"NodeChecks": ["nope"]})).await;
    res.expect_status(500);
    assert_eq!(res.text().trim(), "Missing check 'nope' registration");
    let res = agent.put_json("/v1/session/create", &json!({"TTL": "5s"})).await;
    res.expect_status(500);
    assert_eq!(res.text().trim(), "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]");
    let res = agent.put_json("/v1/session/create", &json!({"Behavior": "explode"})).await;
    res.expect_status(500);
    assert_eq!(res.text().trim(), "Invalid Behavior setting 'explode'");

    let res = agent.put("/v1/session/renew/abc", "").await;
    res.expect_status(404);
    assert_eq!(res.text().trim(), "Session id 'abc' not found");
    let res = agent.put("/v1/kv/k?acquire=not-a-session", "v").await;
    res.expect_status(500);
    assert_eq!(res.text().trim(), "invalid session \"not-a-session\"");
    assert_eq!(agent.get("/v1/session/list").await.json(), json!([]), "refused creations wrote nothing");
}

#[tokio::test]
async fn lock_hands_over_when_the_holders_session_is_destroyed() {
    let agent = TestAgent::dev("sess-lock").await;
    // No lock-delay, so the second session can take the lock at once after the first is gone.
    let first = create(&agent, &json!({"Name": "first", "LockDelay": "0s"})).await;
    let second = create(&agent, &json!({"Name": "second"})).await;

    assert!(put_bool(&agent, &format!("leader?acquire={first}"), "first").await);
    assert!(!put_bool(&agent, &format!("leader?acquire={second}"), "second").await, "the lock is held");
    let held = entry(&agent, "leader").await;
    assert_eq!((held["Session"].as_str(), held["LockIndex"].as_u64()), (Some(first.as_str()), Some(1)));
    assert!(!put_bool(&agent, &format!("leader?release={second}"), "").await, "only the holder releases");

    // A watcher parked on the key wakes when the holder's session dies and its lock is released.
    let index = agent.get("/v1/kv/leader").await.index();
    let watcher = {
        let url = agent.url(&format!("/v1/kv/leader?index={index}&wait=30s"));
        let client = agent.client().clone();
        tokio::spawn(async move { client.get(url).send().await })
    };
    let destroyed = agent.put(&format!("/v1/session/destroy/{first}"), "").await;
    destroyed.expect_status(200);
    assert_eq!(destroyed.json(), json!(true));
    let woke = tokio::time::timeout(Duration::from_secs(10), watcher).await.expect("watcher woke").expect("joined");
    let body: Value = woke.expect("response").json().await.expect("json");
    assert!(body[0].get("Session").is_none(), "released: {body}");

    assert!(put_bool(&agent, &format!("leader?acquire={second}"), "second").await);
    let taken = entry(&agent, "leader").await;
    assert_eq!((taken["Session"].as_str(), taken["LockIndex"].as_u64()), (Some(second.as_str()), Some(2)));
    assert!(put_bool(&agent, &format!("leader?release={second}"), "done").await);
    assert!(entry(&agent, "leader").await.get("Session").is_none());
}

#[tokio::test]
async fn the_default_lock_delay_keeps_a_released_key_unlockable_for_a_while() {
    let agent = TestAgent::dev("sess-delay").await;
    let first = create(&agent, &json!({})).await;
    let second = create(&agent, &json!({})).await;
    assert!(put_bool(&agent, &format!("k?acquire={first}"), "").await);
    agent.put(&format!("/v1/session/destroy/{first}"), "").await.expect_status(200);
    assert!(!put_bool(&agent, &format!("k?acquire={second}"), "").await, "inside the 15 s lock-delay");
}

#[tokio::test]
async fn a_blocking_session_list_wakes_on_create_and_destroy() {
    let agent = TestAgent::dev("sess-block").await;
    let index = agent.get("/v1/session/list").await.index();
    let parked = agent.parked_queries().await;
    // The wait is long, so an answer within the test's minute is the wake-up.
    let blocked = agent.spawn_get(&format!("/v1/session/list?index={index}&wait=10m"));
    agent.wait_parked(parked + 1.0).await;
    let id = create(&agent, &json!({})).await;
    let res = tokio::time::timeout(Duration::from_secs(60), blocked).await.expect("woke").expect("joined");
    assert!(res.index() > index);
    assert_eq!(res.json()[0]["ID"], id.as_str());

    agent.put(&format!("/v1/session/destroy/{id}"), "").await.expect_status(200);
    eventually("the list is empty again", Duration::from_secs(5), || async {
        (agent.get("/v1/session/list").await.json() == json!([])).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_named_check_going_critical_destroys_the_session_and_releases_its_lock() {
    let agent = TestAgent::dev("sess-critical").await;
    let check = json!({"ID": "guard", "Name": "guard", "TTL": "10m", "Status": "passing"});
    agent.put_json("/v1/agent/check/register", &check).await.expect_status(200);
    let id = create(&agent, &json!({"NodeChecks": ["serfHealth", "guard"], "LockDelay": "0s"})).await;
    assert!(put_bool(&agent, &format!("held?acquire={id}"), "x").await);

    agent.put("/v1/agent/check/fail/guard", "").await.expect_status(200);
    eventually("the session is destroyed", Duration::from_secs(10), || async {
        (agent.get("/v1/session/list").await.json() == json!([])).then_some(())
    })
    .await;
    assert!(entry(&agent, "held").await.get("Session").is_none(), "its lock was released");
    let res = agent.put_json("/v1/session/create", &json!({"NodeChecks": ["guard"]})).await;
    res.expect_status(500);
    assert_eq!(res.text().trim(), "Check 'guard' is in critical state");
}

#[tokio::test]
async fn ttls_the_server_cannot_read_are_refused_at_the_edge_and_nothing_is_created() {
    let agent = TestAgent::dev("sess-bad-ttl").await;
    // "15s " was accepted here (the config parser trims) and then never expired on the server, whose parser refused it.
    let res = agent.put_json("/v1/session/create", &json!({"TTL": "15s "})).await;
    res.expect_status(500);
    assert!(res.text().starts_with("Session TTL '15s ' invalid"), "{:?}", res.text());
    let res = agent.put_json("/v1/session/create", &json!({"TTL": "9999999999999999999999h"})).await;
    res.expect_status(500);
    assert!(res.text().contains("too large"), "{:?}", res.text());
    let res = agent.put_json("/v1/session/create", &json!({"TTL": "24h0m1s"})).await;
    res.expect_status(500);
    assert!(res.text().contains("must be between [10s=24h0m0s]"), "{:?}", res.text());
    assert_eq!(agent.get("/v1/session/list").await.json(), json!([]), "refused creations wrote nothing");
}
