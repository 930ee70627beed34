//! `PUT /v1/txn` over HTTP: results and value encoding, 409 rollback with nothing applied, read-only transactions, the operation limit, unknown verbs, and atomicity under concurrent CAS writers.

use futures_util::future::join_all;
use roster_tests::{TestAgent, b64, unb64};
use serde_json::{Value, json};

fn kv(verb: &str, key: &str, value: Option<&str>, index: Option<u64>) -> Value {
    let mut op = json!({"Verb": verb, "Key": key});
    if let Some(value) = value {
        op["Value"] = json!(b64(value));
    }
    if let Some(index) = index {
        op["Index"] = json!(index);
    }
    json!({ "KV": op })
}

async fn value_of(agent: &TestAgent, key: &str) -> Option<Vec<u8>> {
    let res = agent.get(&format!("/v1/kv/{key}")).await;
    (res.status == 200).then(|| unb64(res.json()[0]["Value"].as_str().unwrap_or_default()))
}

#[tokio::test]
async fn a_successful_txn_applies_every_op_and_shows_values_only_for_gets() {
    let agent = TestAgent::dev("txn-ok").await;
    let ops = json!([kv("set", "a", Some("1"), None), kv("set", "b", Some("2"), None), kv("get", "a", None, None)]);
    let res = agent.put_json("/v1/txn", &ops).await;
    res.expect_status(200);
    let body = res.json();
    assert_eq!(body["Errors"], Value::Null);
    let results = body["Results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["KV"]["Value"], Value::Null, "writes do not echo values");
    assert_eq!(results[2]["KV"]["Value"], json!(b64("1")));
    assert_eq!(results[0]["KV"]["ModifyIndex"], results[1]["KV"]["ModifyIndex"], "one Raft entry");
    assert_eq!(value_of(&agent, "b").await, Some(b"2".to_vec()));
}

#[tokio::test]
async fn a_failing_op_answers_409_and_applies_nothing() {
    let agent = TestAgent::dev("txn-409").await;
    agent.put("/v1/kv/x", "old").await.expect_status(200);
    let ops = json!([
        kv("set", "x", Some("new"), None),
        kv("delete", "other", None, None),
        kv("cas", "y", Some("v"), Some(999)),
        kv("check-not-exists", "x", None, None),
    ]);
    let res = agent.put_json("/v1/txn", &ops).await;
    res.expect_status(409);
    let body = res.json();
    assert_eq!(body["Results"], Value::Null);
    assert_eq!(
        body["Errors"],
        json!([
            {"OpIndex": 2, "What": "failed to set key \"y\", index is stale"},
            {"OpIndex": 3, "What": "key \"x\" exists"},
        ])
    );
    assert_eq!(value_of(&agent, "x").await, Some(b"old".to_vec()));
    assert_eq!(value_of(&agent, "y").await, None);
}

#[tokio::test]
async fn a_read_only_txn_is_served_as_a_read() {
    let agent = TestAgent::dev("txn-read").await;
    agent.put("/v1/kv/r/1", "one").await.expect_status(200);
    agent.put("/v1/kv/r/2", "two").await.expect_status(200);
    let res = agent.put_json("/v1/txn?stale", &json!([kv("get-tree", "r/", None, None)])).await;
    res.expect_status(200);
    assert!(res.header("X-Consul-KnownLeader").is_some() && res.header("X-Consul-LastContact").is_some());
    let values: Vec<Value> =
        res.json()["Results"].as_array().expect("results").iter().map(|r| r["KV"]["Value"].clone()).collect();
    assert_eq!(values, [json!(b64("one")), json!(b64("two"))]);
    let missing = agent.put_json("/v1/txn", &json!([kv("get", "nope", None, None)])).await;
    missing.expect_status(409);
    assert_eq!(missing.json()["Errors"][0]["What"], "key \"nope\" doesn't exist");
}

#[tokio::test]
async fn too_many_ops_and_unknown_verbs_are_refused_before_anything_applies() {
    let agent = TestAgent::dev("txn-limits").await;
    let ops: Vec<Value> = (0..65).map(|i| kv("set", &format!("k{i}"), Some("v"), None)).collect();
    let res = agent.put_json("/v1/txn", &Value::Array(ops)).await;
    res.expect_status(413);
    assert_eq!(res.text().trim(), "Transaction contains too many operations (65 > 64)");

    let res =
        agent.put_json("/v1/txn", &json!([kv("set", "k", Some("v"), None), kv("frobnicate", "k", None, None)])).await;
    res.expect_status(400);
    assert_eq!(res.text().trim(), "unknown KV verb \"frobnicate\"");
    assert_eq!(value_of(&agent, "k").await, None);
    assert_eq!(value_of(&agent, "k0").await, None);
}

#[tokio::test]
async fn concurrent_cas_transactions_never_lose_an_increment() {
    let agent = TestAgent::dev("txn-cas").await;
    agent.put("/v1/kv/counter", "0").await.expect_status(200);
    agent.put("/v1/kv/mirror", "0").await.expect_status(200);
    // Each writer increments the counter and its mirror in one transaction, guarded by the counter's index, retrying on 409.
    let writer = |_: usize| async {
        for _ in 0..5 {
            loop {
                let res = agent.get("/v1/kv/counter").await;
                let entry = &res.json()[0];
                let index = entry["ModifyIndex"].as_u64().expect("index");
                let n: u64 = String::from_utf8(unb64(entry["Value"].as_str().expect("value")))
                    .expect("utf8")
                    .parse()
                    .expect("number");
                let next = (n + 1).to_string();
                let ops =
                    json!([kv("cas", "counter", Some(&next), Some(index)), kv("set", "mirror", Some(&next), None),]);
                let res = agent.put_json("/v1/txn", &ops).await;
                match res.status {
                    200 => break,
                    409 => continue,
                    other => panic!("unexpected {other}: {}", res.text()),
                }
            }
        }
    };
    join_all((0..4).map(writer)).await;
    assert_eq!(value_of(&agent, "counter").await, Some(b"20".to_vec()));
    assert_eq!(
        value_of(&agent, "mirror").await,
        Some(b"20".to_vec()),
        "the mirror moved with every increment and only then"
    );
}

#[tokio::test]
async fn lock_ops_and_catalog_ops_in_a_txn() {
    let agent = TestAgent::dev("txn-lock").await;
    let session = agent.put_json("/v1/session/create", &json!({})).await.json()["ID"].as_str().expect("id").to_owned();
    let lock = json!([{"KV": {"Verb": "lock", "Key": "l", "Value": b64("me"), "Session": session}}]);
    let res = agent.put_json("/v1/txn", &lock).await;
    res.expect_status(200);
    assert_eq!(res.json()["Results"][0]["KV"]["Session"], session.as_str());
    assert_eq!(res.json()["Results"][0]["KV"]["LockIndex"], 1);

    let node = json!([
        {"Node": {"Verb": "set", "Node": {"Node": "ext", "Address": "10.9.9.9"}}},
        {"Service": {"Verb": "set", "Node": "ext", "Service": {"ID": "db-1", "Service": "db", "Port": 5432}}},
        {"Node": {"Verb": "get", "Node": {"Node": "ext"}}},
    ]);
    let res = agent.put_json("/v1/txn", &node).await;
    res.expect_status(200);
    let results = res.json()["Results"].clone();
    assert_eq!(results[0]["Node"]["Address"], "10.9.9.9");
    assert_eq!(results[1]["Service"]["Port"], 5432);
    assert_eq!(results[2]["Node"]["Node"], "ext");
    let catalog = agent.get("/v1/catalog/service/db").await.json();
    assert_eq!(catalog[0]["Node"], "ext");
}
