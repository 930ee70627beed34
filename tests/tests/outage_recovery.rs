//! Outage recovery as an operator runs it: a cluster loses two of its three servers for good, the survivor is given
//! `raft/peers.json` naming only itself, and after a restart it leads alone and serves every acknowledged write.
//! A `peers.json` that is wrong stops the agent with the problem named and leaves its data dir as it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use roster_tests::{RPC_PORT, TestAgent, TestCluster, eventually, kv_value, put_kv};
use serde_json::json;

const N_KEYS: usize = 30;

fn write_peers(data_dir: &Path, text: &str) {
    std::fs::create_dir_all(data_dir.join("raft")).expect("creating raft/");
    std::fs::write(data_dir.join("raft").join("peers.json"), text).expect("writing peers.json");
}

fn node_id(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("node-id")).expect("the agent persists its node ID").trim().to_owned()
}

/// Every file under `dir` with its contents.
fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("listing the data dir") {
            let path = entry.expect("a dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).expect("under the dir").display().to_string();
                files.insert(name, std::fs::read(&path).expect("reading a data file"));
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_is_recovered_with_peers_json_on_the_survivor() {
    let mut cluster = TestCluster::start(3, 0).await;
    for i in 0..N_KEYS {
        put_kv(&cluster.servers[i % 3], &format!("k{i}"), &i.to_string()).await;
    }
    // A write is acknowledged once a quorum holds it; the operator recovers from the most up-to-date survivor, so
    // let it catch up (the log applies in order: the last key means every key).
    let survivor = 2;
    let last = format!("k{}?stale", N_KEYS - 1);
    eventually("the survivor applied the last write", Duration::from_secs(10), || async {
        kv_value(&cluster.servers[survivor], &last).await
    })
    .await;

    cluster.servers[0].kill9();
    cluster.servers[1].kill9();
    // The survivor cannot elect a leader now; the operator stops it, writes peers.json and starts it again.
    cluster.servers[survivor].terminate(Duration::from_secs(10)).await;
    let data_dir = cluster.data_dir(survivor).to_path_buf();
    let rpc = format!("{}:{RPC_PORT}", cluster.ip(survivor));
    write_peers(&data_dir, &format!(r#"[{{"id": "{}", "address": "{rpc}", "non_voter": false}}]"#, node_id(&data_dir)));
    cluster.servers[survivor].try_restart().await.expect("the survivor starts with peers.json");
    let agent = &cluster.servers[survivor];
    assert!(!data_dir.join("raft").join("peers.json").exists(), "peers.json is deleted once applied");
    assert!(agent.stderr_tail().contains("OUTAGE RECOVERY"), "the recovery is logged loudly:\n{}", agent.stderr_tail());

    eventually("the survivor leads", Duration::from_secs(15), || async {
        let res = agent.get("/v1/status/leader").await;
        (res.json() == json!(rpc)).then_some(())
    })
    .await;
    assert_eq!(agent.get("/v1/status/peers").await.json(), json!([rpc]));
    let peers = agent.cli(&["operator", "raft", "list-peers"]).await;
    peers.expect_success();
    let rows: Vec<&str> = peers.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", peers.stdout);
    assert!(rows[0].contains(&rpc) && rows[0].contains("leader"), "{}", peers.stdout);

    for i in 0..N_KEYS {
        assert_eq!(kv_value(agent, &format!("k{i}?consistent")).await, Some(i.to_string()), "k{i}");
    }
    put_kv(agent, "after-recovery", "yes").await;
    assert_eq!(kv_value(agent, "after-recovery?consistent").await.as_deref(), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_peers_json_refuses_to_start_and_leaves_the_data_dir_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::server("s1", dir.path()).await;
    put_kv(&agent, "kept", "1").await;
    agent.terminate(Duration::from_secs(10)).await;
    let id = node_id(dir.path());

    for (text, problem) in [
        ("[{".to_owned(), "not valid peers.json"),
        (format!(r#"[{{"id": "{id}", "address": "127.0.0.1:8300", "non_voter": true}}]"#), "names no voter"),
        (format!(r#"[{{"id": "{id}", "address": "localhost:8300"}}]"#), "is not ip:port"),
        (
            format!(
                r#"[{{"id": "{id}", "address": "127.0.0.1:8300"}}, {{"id": "{id}", "address": "127.0.0.2:8300"}}]"#
            ),
            "is listed twice",
        ),
    ] {
        write_peers(dir.path(), &text);
        let before = dir_contents(dir.path());
        let err = agent.try_restart().await.expect_err("a bad peers.json must stop the start");
        let message = format!("{err:#}");
        assert!(message.contains("peers.json") && message.contains(problem), "{text}: {message}");
        assert!(before == dir_contents(dir.path()), "{text}: the data dir changed");
    }

    // Without the file it starts as before, with its data.
    std::fs::remove_file(dir.path().join("raft").join("peers.json")).expect("removing peers.json");
    agent.restart().await;
    assert_eq!(kv_value(&agent, "kept?consistent").await.as_deref(), Some("1"));
}
