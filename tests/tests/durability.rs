//! Durability of `roster agent -server -bootstrap-expect 1 -data-dir DIR`: every write that was
//! acknowledged before a `kill -9` is there after a restart on the same data dir.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use roster_tests::shape::pluck;
use roster_tests::{Resp, TestAgent, http_client, unb64};
use serde_json::{Value, json};

async fn put_ok(agent: &TestAgent, key_and_query: &str, value: &str) {
    let res = agent.put(&format!("/v1/kv/{key_and_query}"), value).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true), "PUT {key_and_query}");
}

async fn entry(agent: &TestAgent, key: &str) -> Value {
    let res = agent.get(&format!("/v1/kv/{key}")).await;
    res.expect_status(200);
    res.json()[0].clone()
}

#[tokio::test]
async fn acknowledged_kv_writes_survive_kill_9_and_restart() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let mut agent = TestAgent::server("durable-kv", data_dir.path()).await;
    for idx in 0..100 {
        put_ok(&agent, &format!("app/key{idx:03}"), &format!("value-{idx}")).await;
    }
    put_ok(&agent, "app/flagged?flags=7", "f").await;
    put_ok(&agent, "app/gone", "to be deleted").await;
    agent.delete("/v1/kv/app/gone").await.expect_status(200);
    let index = entry(&agent, "app/key050").await["ModifyIndex"].clone();
    put_ok(&agent, &format!("app/key050?cas={index}"), "cas-updated").await;
    let before = agent.get("/v1/kv/app/?recurse").await;
    before.expect_status(200);

    agent.kill9();
    agent.restart().await;

    let after = agent.get("/v1/kv/app/?recurse").await;
    after.expect_status(200);
    assert_eq!(after.json(), before.json(), "every entry, with its flags and indexes, must come back unchanged");
    assert!(after.index() >= before.index(), "the index must not go backwards across a restart");
    agent.get("/v1/kv/app/gone").await.expect_status(404);

    // The log continues after the restart: a new write gets a later index than anything before.
    put_ok(&agent, "app/after-restart", "new").await;
    let new_index = entry(&agent, "app/after-restart").await["ModifyIndex"].as_u64().unwrap_or_default();
    assert!(new_index > before.index(), "index {new_index} must be past the pre-crash index {}", before.index());
}

#[tokio::test]
async fn writes_acknowledged_during_a_burst_survive_kill_9() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let mut agent = TestAgent::server("durable-burst", data_dir.path()).await;
    let base_url = agent.url("/v1/kv/burst");
    let acknowledged: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();

    // Writers run on their own tasks until the agent dies under them; only a `true` answer counts.
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let client = http_client(1);
            let base_url = base_url.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for idx in 0.. {
                    let key = format!("w{writer}/{idx}");
                    let value = format!("{writer}-{idx}");
                    let sent = client.put(format!("{base_url}/{key}")).body(value.clone()).send().await;
                    let Ok(res) = sent else { break };
                    let Ok(read) = Resp::read(res).await else { break };
                    if read.status == 200
                        && read.body == b"true"
                        && let Ok(mut map) = acknowledged.lock()
                    {
                        map.insert(format!("burst/{key}"), value);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.kill9();
    for writer in join_all(writers).await {
        writer.expect("writer task");
    }
    let acknowledged = acknowledged.lock().map(|map| map.clone()).unwrap_or_default();
    assert!(
        acknowledged.len() >= 8,
        "the burst must get some writes through before the kill, got {}",
        acknowledged.len()
    );

    agent.restart().await;
    let res = agent.get("/v1/kv/burst/?recurse").await;
    res.expect_status(200);
    let stored: BTreeMap<String, Vec<u8>> = res
        .json()
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| {
                    let key = entry["Key"].as_str().unwrap_or_default().to_owned();
                    (key, unb64(entry["Value"].as_str().unwrap_or_default()))
                })
                .collect()
        })
        .unwrap_or_default();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|(key, value)| stored.get(*key).map(Vec::as_slice) != Some(value.as_bytes()))
        .map(|(key, _)| key)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after kill -9: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}

#[tokio::test]
async fn registrations_and_node_identity_survive_kill_9() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let mut agent = TestAgent::server("durable-cat", data_dir.path()).await;
    let service = json!({"ID": "web-1", "Name": "web", "Tags": ["v1"], "Port": 8080, "Check": {"TTL": "10m", "Status": "passing"}});
    agent.put_json("/v1/agent/service/register", &service).await.expect_status(200);
    let external =
        json!({"Node": "ext-db", "Address": "10.1.2.3", "Service": {"ID": "db-1", "Service": "db", "Port": 5432}});
    let res = agent.put_json("/v1/catalog/register", &external).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true));
    let node_before = agent.get("/v1/catalog/node/durable-cat").await.json()["Node"]["ID"].clone();
    let services_before = agent.get("/v1/agent/services").await.json();

    agent.kill9();
    agent.restart().await;

    // Consul persists agent-registered services in the data dir and re-registers them on start.
    assert_eq!(agent.get("/v1/agent/services").await.json(), services_before);
    let node_after = agent.get("/v1/catalog/node/durable-cat").await.json()["Node"]["ID"].clone();
    assert_eq!(node_after, node_before, "the node ID is kept in the data dir, so it is stable across restarts");
    let db = agent.get("/v1/catalog/service/db").await;
    db.expect_status(200);
    assert_eq!(pluck(&db.json(), "Node"), ["ext-db"]);
    let web = agent.get("/v1/health/service/web").await;
    web.expect_status(200);
    let entries = web.json();
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    assert_eq!(entries[0]["Service"]["ID"], "web-1");
}
