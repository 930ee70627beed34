//! KV tombstones are reaped by the leader once they are older than the tombstone TTL (issue 20, "Flat under churn"),
//! here shortened to 2 s through `ROSTER_TEST_TOMBSTONE_TTL`: the state's snapshot grows with the deletions and
//! shrinks back once they are reaped, and a blocking query on the emptied prefix neither sees its index go back
//! nor wakes for the reap, and still wakes for the next write under it.

use std::time::{Duration, Instant};

use roster_tests::{AgentMode, TestAgent};
use serde_json::json;

/// The tombstone TTL the agent runs with; its reap granularity is a quarter of it.
const TTL: &str = "2s";
/// Keys written and deleted: enough that their tombstones dwarf the snapshot's other changes.
const N_KEYS: usize = 400;

async fn snapshot_len(agent: &TestAgent) -> usize {
    let res = agent.get("/v1/snapshot").await;
    res.expect_status(200);
    res.body.len()
}

/// A key name that does not compress away in the gzipped archive: a counter and a scrambled copy of it.
fn churn_key(i: usize) -> String {
    format!("churn/{i:05}-{:016x}", (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn for_each_key(agent: &TestAgent, delete: bool) {
    for chunk in (0..N_KEYS).collect::<Vec<_>>().chunks(32) {
        let requests = chunk.iter().map(|i| {
            let path = format!("/v1/kv/{}", churn_key(*i));
            async move {
                let res = if delete { agent.delete(&path).await } else { agent.put(&path, "value").await };
                res.expect_status(200);
            }
        });
        futures_util::future::join_all(requests).await;
    }
}

#[tokio::test]
async fn tombstones_are_reaped_after_the_ttl_and_a_blocking_query_on_the_prefix_still_behaves() {
    let envs = [("ROSTER_TEST_TOMBSTONE_TTL", TTL)];
    let agent = TestAgent::start_with_env("tombstones", AgentMode::Dev, json!({}), &envs)
        .await
        .unwrap_or_else(|err| panic!("starting the agent: {err:#}"));
    let start_len = snapshot_len(&agent).await;

    for_each_key(&agent, false).await;
    for_each_key(&agent, true).await;
    let deleted = agent.get("/v1/kv/churn/?recurse").await;
    deleted.expect_status(404);
    let deleted_index = deleted.index();
    // One key's own index, its deletion's: what it must never fall below once its tombstone is reaped. (Not the
    // prefix's: a reap takes the tombstones older than its cut-off, so a key deleted early may be reaped while later
    // ones stay, and then answers the highest index reaped so far, which can be below the prefix's last deletion.)
    let one_key_path = format!("/v1/kv/{}", churn_key(7));
    let one_key_deleted = agent.get(&one_key_path).await;
    one_key_deleted.expect_status(404);
    let one_key_index = one_key_deleted.index();
    let with_tombstones = snapshot_len(&agent).await;
    assert!(
        with_tombstones > start_len + N_KEYS * 8,
        "{N_KEYS} tombstones grow the snapshot: {start_len} → {with_tombstones} bytes"
    );

    // Parked on the prefix at the deletion's index: the reap must not wake it, nor hand it an older index.
    let parked_agent = agent.client().clone();
    let parked_url = agent.url(&format!("/v1/kv/churn/?recurse&index={deleted_index}&wait=60s"));
    let parked = tokio::spawn(async move {
        // Longer than the client's usual 30 s: the query waits out the reap, however slow a loaded machine makes it.
        let request = parked_agent.get(parked_url).timeout(Duration::from_secs(120));
        let res = request.send().await.expect("the parked query is answered");
        roster_tests::Resp::read(res).await.expect("read")
    });

    // Reaped one TTL (plus a granularity step) after the deletions; the deadline allows for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let reaped_len = loop {
        let len = snapshot_len(&agent).await;
        // Back near the start: other state (the agent's own node, table indexes) may have moved a little.
        if len < start_len + (with_tombstones - start_len) / 10 {
            break len;
        }
        assert!(Instant::now() < deadline, "tombstones never reaped: {start_len} → {with_tombstones} → {len} bytes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("snapshot bytes: start {start_len}, with {N_KEYS} tombstones {with_tombstones}, reaped {reaped_len}");

    let after = agent.get("/v1/kv/churn/?recurse").await;
    after.expect_status(404);
    assert!(after.index() >= deleted_index, "the prefix's index went back: {deleted_index} → {}", after.index());
    let one_key = agent.get(&one_key_path).await;
    one_key.expect_status(404);
    assert!(one_key.index() >= one_key_index, "a reaped key's index went back: {one_key_index} → {}", one_key.index());
    assert!(!parked.is_finished(), "the reap woke the parked query");

    // The next write under the prefix wakes it, with the new key and a higher index.
    agent.put("/v1/kv/churn/after-reap", "v").await.expect_status(200);
    let woken = tokio::time::timeout(Duration::from_secs(30), parked).await.expect("woken by the write").expect("task");
    woken.expect_status(200);
    assert!(woken.index() > deleted_index, "{} after {deleted_index}", woken.index());
    let keys: Vec<String> =
        woken.json().as_array().expect("entries").iter().map(|e| e["Key"].as_str().expect("key").to_owned()).collect();
    assert_eq!(keys, ["churn/after-reap"]);
}
