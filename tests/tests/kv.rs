//! The KV store over HTTP: entry shape, base64 values, `raw`, `flags`, `recurse`, `keys` with
//! `separator`, `cas` on PUT and DELETE, and the `true`/`false` write bodies of Consul.

use futures_util::future::join_all;
use roster_tests::shape::{KV_ENTRY_KEYS, array, assert_keys, assert_read_headers, pluck, strings};
use roster_tests::{Resp, TestAgent, b64, unb64};
use serde_json::{Value, json};

/// `PUT /v1/kv/<key_and_query>` and asserts Consul's `true` body.
async fn put_ok(agent: &TestAgent, key_and_query: &str, body: &str) {
    let res = agent.put(&format!("/v1/kv/{key_and_query}"), body).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true), "PUT {key_and_query} must answer true");
}

/// The single entry of `GET /v1/kv/<key>`.
async fn entry(agent: &TestAgent, key: &str) -> Value {
    let res = agent.get(&format!("/v1/kv/{key}")).await;
    res.expect_status(200);
    let entries = res.json();
    assert_eq!(array(&entries).len(), 1, "a plain GET returns a one-element array: {entries}");
    entries[0].clone()
}

fn modify_index(entry: &Value) -> u64 {
    entry["ModifyIndex"].as_u64().unwrap_or_else(|| panic!("ModifyIndex is not a u64 in {entry}"))
}

#[tokio::test]
async fn put_then_get_returns_one_entry_with_base64_value_and_exact_fields() {
    let agent = TestAgent::dev("kv-put-get").await;
    put_ok(&agent, "app/config", "hello world").await;

    let res = agent.get("/v1/kv/app/config").await;
    res.expect_status(200);
    assert_read_headers(&res, "GET existing key");
    let entries = res.json();
    let entry = &entries[0];
    assert_keys(entry, KV_ENTRY_KEYS, "KV entry without a session");
    assert_eq!(entry["Key"], "app/config");
    assert_eq!(entry["Flags"], 0);
    assert_eq!(entry["LockIndex"], 0);
    assert_eq!(entry["Value"], b64("hello world"));
    assert_eq!(entry["CreateIndex"], entry["ModifyIndex"], "a fresh key is created and modified at once");
    assert!(res.index() >= modify_index(entry), "X-Consul-Index must cover the entry's ModifyIndex");
}

#[tokio::test]
async fn update_moves_modify_index_forward_and_keeps_create_index() {
    let agent = TestAgent::dev("kv-update").await;
    put_ok(&agent, "svc/limit", "10").await;
    let first = entry(&agent, "svc/limit").await;
    put_ok(&agent, "svc/limit", "20").await;
    let second = entry(&agent, "svc/limit").await;

    assert_eq!(second["CreateIndex"], first["CreateIndex"]);
    assert!(modify_index(&second) > modify_index(&first), "an update must get a later index: {first} then {second}");
    assert_eq!(unb64(second["Value"].as_str().unwrap_or_default()), b"20");
}

#[tokio::test]
async fn empty_put_stores_an_empty_value_that_reads_back_as_null() {
    let agent = TestAgent::dev("kv-empty").await;
    put_ok(&agent, "feature/enabled", "").await;

    let entry = entry(&agent, "feature/enabled").await;
    assert_eq!(entry["Value"], Value::Null, "an empty value is JSON null, not \"\": {entry}");
    let raw = agent.get("/v1/kv/feature/enabled?raw").await;
    raw.expect_status(200);
    assert!(raw.body.is_empty(), "raw read of an empty value has an empty body");
}

#[tokio::test]
async fn missing_key_is_404_with_empty_body_and_index_headers() {
    let agent = TestAgent::dev("kv-missing").await;
    let res = agent.get("/v1/kv/does/not/exist").await;
    res.expect_status(404);
    assert!(res.body.is_empty(), "Consul answers a missing key with an empty 404 body, got {:?}", res.text());
    // Blocking clients start their watch from this index, so it must be there and >= 1.
    assert_read_headers(&res, "KV 404");
}

#[tokio::test]
async fn raw_returns_the_stored_bytes_exactly() {
    let agent = TestAgent::dev("kv-raw").await;
    let binary: Vec<u8> = (0u8..=255).chain(0u8..=255).collect();
    let res = agent.put("/v1/kv/blob/bin", binary.clone()).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true));

    let raw = agent.get("/v1/kv/blob/bin?raw").await;
    raw.expect_status(200);
    assert_eq!(raw.body, binary, "?raw must return the bytes, not JSON or base64");
    let entry = entry(&agent, "blob/bin").await;
    assert_eq!(unb64(entry["Value"].as_str().unwrap_or_default()), binary);
}

#[tokio::test]
async fn flags_round_trip_up_to_u64_max() {
    let agent = TestAgent::dev("kv-flags").await;
    put_ok(&agent, "flagged/small?flags=42", "x").await;
    put_ok(&agent, "flagged/max?flags=18446744073709551615", "y").await;

    assert_eq!(entry(&agent, "flagged/small").await["Flags"], json!(42u64));
    assert_eq!(entry(&agent, "flagged/max").await["Flags"], json!(u64::MAX), "flags are an unsigned 64-bit value");
}

#[tokio::test]
async fn url_encoded_key_is_stored_decoded_and_keeps_its_slashes() {
    let agent = TestAgent::dev("kv-encoded").await;
    put_ok(&agent, "dir/with%20space/leaf", "v").await;
    let entry = entry(&agent, "dir/with%20space/leaf").await;
    assert_eq!(entry["Key"], "dir/with space/leaf");
}

#[tokio::test]
async fn recurse_lists_only_the_prefix_sorted_by_key_with_its_max_index() {
    let agent = TestAgent::dev("kv-recurse").await;
    for key in ["web/b", "web/a", "web/c/d"] {
        put_ok(&agent, key, key).await;
    }
    // Written after the prefix: they must neither appear nor raise the prefix's index.
    put_ok(&agent, "webserver", "not under web/").await;
    put_ok(&agent, "other/x", "elsewhere").await;

    let res = agent.get("/v1/kv/web/?recurse").await;
    res.expect_status(200);
    assert_read_headers(&res, "recurse");
    let entries = res.json();
    assert_eq!(pluck(&entries, "Key"), ["web/a", "web/b", "web/c/d"]);
    for entry in array(&entries) {
        assert_keys(entry, KV_ENTRY_KEYS, "recursed entry");
        assert_eq!(
            unb64(entry["Value"].as_str().unwrap_or_default()),
            entry["Key"].as_str().unwrap_or_default().as_bytes()
        );
    }
    let max_modify = array(&entries).iter().map(modify_index).max().unwrap_or_default();
    assert_eq!(res.index(), max_modify, "with recurse, X-Consul-Index is the max ModifyIndex under the prefix");
}

#[tokio::test]
async fn recurse_on_an_empty_prefix_is_404() {
    let agent = TestAgent::dev("kv-recurse-empty").await;
    put_ok(&agent, "present/a", "1").await;
    let res = agent.get("/v1/kv/absent/?recurse").await;
    res.expect_status(404);
    assert_read_headers(&res, "recurse 404");
}

#[tokio::test]
async fn boolean_query_flags_count_by_presence() {
    let agent = TestAgent::dev("kv-bool-flags").await;
    put_ok(&agent, "presence/a", "1").await;
    put_ok(&agent, "presence/b", "2").await;

    for query in ["recurse", "recurse=", "recurse=1", "recurse=true"] {
        let res = agent.get(&format!("/v1/kv/presence/?{query}")).await;
        res.expect_status(200);
        assert_eq!(pluck(&res.json(), "Key"), ["presence/a", "presence/b"], "?{query} means recurse");
    }
    let keys = agent.get("/v1/kv/presence/?keys=True").await;
    keys.expect_status(200);
    assert_eq!(strings(&keys.json()), ["presence/a", "presence/b"], "?keys=True means keys");
}

#[tokio::test]
async fn keys_lists_all_keys_and_separator_folds_subfolders() {
    let agent = TestAgent::dev("kv-keys").await;
    for key in ["base/foo", "base/base/a", "base/base/b", "basement"] {
        put_ok(&agent, key, "v").await;
    }

    let all = agent.get("/v1/kv/base/?keys").await;
    all.expect_status(200);
    assert_read_headers(&all, "keys");
    assert_eq!(strings(&all.json()), ["base/base/a", "base/base/b", "base/foo"]);

    let folded = agent.get("/v1/kv/base/?keys&separator=/").await;
    folded.expect_status(200);
    assert_eq!(strings(&folded.json()), ["base/base/", "base/foo"], "separator stops at the next / and dedups");
}

#[tokio::test]
async fn cas_zero_creates_only_when_the_key_is_absent() {
    let agent = TestAgent::dev("kv-cas-zero").await;
    put_ok(&agent, "lock/owner?cas=0", "first").await;

    let second = agent.put("/v1/kv/lock/owner?cas=0", "second").await;
    second.expect_status(200);
    assert_eq!(second.json(), json!(false), "cas=0 on an existing key must fail");
    assert_eq!(unb64(entry(&agent, "lock/owner").await["Value"].as_str().unwrap_or_default()), b"first");
}

#[tokio::test]
async fn cas_with_the_current_modify_index_succeeds_once() {
    let agent = TestAgent::dev("kv-cas-index").await;
    put_ok(&agent, "counter", "1").await;
    let index = modify_index(&entry(&agent, "counter").await);

    put_ok(&agent, &format!("counter?cas={index}"), "2").await;
    let stale = agent.put(&format!("/v1/kv/counter?cas={index}"), "3").await;
    stale.expect_status(200);
    assert_eq!(stale.json(), json!(false), "a CAS with a stale index must be refused");
    assert_eq!(unb64(entry(&agent, "counter").await["Value"].as_str().unwrap_or_default()), b"2");
}

#[tokio::test]
async fn concurrent_cas_writers_race_and_exactly_one_wins_each_round() {
    let agent = TestAgent::dev("kv-cas-race").await;
    put_ok(&agent, "race/leader", "nobody").await;
    let n_writers = 6;

    for round in 0..8 {
        let index = modify_index(&entry(&agent, "race/leader").await);
        let attempts = (0..n_writers).map(|writer| {
            let path = format!("/v1/kv/race/leader?cas={index}");
            let value = format!("round{round}-writer{writer}");
            let agent = &agent;
            async move { (value.clone(), agent.put(&path, value).await) }
        });
        let results: Vec<(String, Resp)> = join_all(attempts).await;

        let winners: Vec<&String> = results
            .iter()
            .filter(|(_, res)| res.status == 200 && res.json() == json!(true))
            .map(|(value, _)| value)
            .collect();
        for (value, res) in &results {
            assert_eq!(res.status, 200, "{value}: a CAS loss is 200 false, not an error: {:?}", res.text());
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one CAS writer must win, got {winners:?}");
        let stored = entry(&agent, "race/leader").await;
        assert_eq!(
            unb64(stored["Value"].as_str().unwrap_or_default()),
            winners[0].as_bytes(),
            "the stored value is the winner's"
        );
    }
}

#[tokio::test]
async fn delete_removes_exactly_that_key_and_answers_true() {
    let agent = TestAgent::dev("kv-delete").await;
    put_ok(&agent, "del/a", "1").await;
    put_ok(&agent, "del/ab", "2").await;

    let res = agent.delete("/v1/kv/del/a").await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true));
    agent.get("/v1/kv/del/a").await.expect_status(404);
    agent.get("/v1/kv/del/ab").await.expect_status(200);
}

#[tokio::test]
async fn delete_recurse_removes_the_whole_prefix_only() {
    let agent = TestAgent::dev("kv-delete-tree").await;
    for key in ["tree/a", "tree/b/c", "treetop"] {
        put_ok(&agent, key, "v").await;
    }
    let res = agent.delete("/v1/kv/tree/?recurse").await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true));
    agent.get("/v1/kv/tree/?recurse").await.expect_status(404);
    agent.get("/v1/kv/treetop").await.expect_status(200);
}

#[tokio::test]
async fn delete_with_cas_only_removes_at_the_matching_index() {
    let agent = TestAgent::dev("kv-delete-cas").await;
    put_ok(&agent, "guarded", "v").await;
    let index = modify_index(&entry(&agent, "guarded").await);

    let wrong = agent.delete(&format!("/v1/kv/guarded?cas={}", index + 1000)).await;
    wrong.expect_status(200);
    assert_eq!(wrong.json(), json!(false), "a DELETE with a wrong CAS index must be refused");
    agent.get("/v1/kv/guarded").await.expect_status(200);

    let right = agent.delete(&format!("/v1/kv/guarded?cas={index}")).await;
    right.expect_status(200);
    assert_eq!(right.json(), json!(true));
    agent.get("/v1/kv/guarded").await.expect_status(404);
}

/// A prefix asked for again and again (a load balancer's helper) answers the same bytes until a write under it, and
/// the write's list right after: the server agent keeps the encoded list only while its state has not moved.
#[tokio::test]
async fn a_repeated_list_answers_what_the_last_write_left() {
    let agent = TestAgent::dev("kv-repeat").await;
    put_ok(&agent, "lb/web/a", "10.0.0.1").await;
    for path in ["/v1/kv/lb/web/?recurse", "/v1/kv/lb/?keys&separator=/", "/v1/kv/lb/web/?keys"] {
        let first = agent.get(path).await;
        let again = agent.get(path).await;
        again.expect_status(200);
        assert_eq!((&again.body, again.index()), (&first.body, first.index()), "{path}");
    }
    put_ok(&agent, "lb/web/b", "10.0.0.2").await;
    let listed = agent.get("/v1/kv/lb/web/?recurse").await;
    assert_eq!(pluck(&listed.json(), "Key"), ["lb/web/a", "lb/web/b"]);
    assert_eq!(strings(&agent.get("/v1/kv/lb/web/?keys").await.json()), ["lb/web/a", "lb/web/b"]);
    agent.delete("/v1/kv/lb/web/?recurse").await.expect_status(200);
    let gone = agent.get("/v1/kv/lb/web/?recurse").await;
    assert_eq!(gone.status, 404, "an emptied prefix is Consul's 404, not the list kept from before");
}
