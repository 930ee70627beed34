//! Blocking queries (`?index=N&wait=D`): they wake on a change to the data under the query, ignore
//! writes elsewhere, and time out at `wait` (plus at most wait/16 jitter) with the same index.
//!
//! Waits are kept at 1-2 s so the suite stays fast; timing bounds allow for a loaded CI machine.

use std::time::{Duration, Instant};

use roster_tests::shape::pluck;
use roster_tests::{AgentMode, Resp, TestAgent, unb64};
use serde_json::json;

/// Slack for scheduling on a busy 2-core machine: how much later than `wait + wait/16` a
/// timed-out query may return, and how much earlier than the trigger a woken one may not.
const SLACK: Duration = Duration::from_millis(700);

/// Issues `GET path` and returns the response with the time it took.
async fn timed_get(agent: &TestAgent, path: &str) -> (Resp, Duration) {
    let started = Instant::now();
    let res = agent.get(path).await;
    (res, started.elapsed())
}

async fn put_ok(agent: &TestAgent, key: &str, value: &str) {
    let res = agent.put(&format!("/v1/kv/{key}"), value).await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true));
}

/// Sleeps `after`, then writes; used as the concurrent half of a blocking query test.
async fn put_after(agent: &TestAgent, after: Duration, key: &str, value: &str) {
    tokio::time::sleep(after).await;
    put_ok(agent, key, value).await;
}

#[track_caller]
fn assert_timed_out(elapsed: Duration, wait: Duration) {
    assert!(elapsed >= wait, "returned after {elapsed:?}, before the {wait:?} wait ran out");
    assert!(elapsed <= wait + wait / 16 + SLACK, "returned after {elapsed:?}, far past the {wait:?} wait");
}

#[tokio::test]
async fn blocking_get_on_a_key_wakes_when_that_key_is_written() {
    let agent = TestAgent::dev("block-key").await;
    put_ok(&agent, "cfg/limit", "1").await;
    let index = agent.get("/v1/kv/cfg/limit").await.index();

    let path = format!("/v1/kv/cfg/limit?index={index}&wait=2s");
    let ((res, elapsed), ()) =
        tokio::join!(timed_get(&agent, &path), put_after(&agent, Duration::from_millis(300), "cfg/limit", "2"));
    res.expect_status(200);
    assert!(elapsed < Duration::from_millis(1500), "the write at 300 ms must wake the query, took {elapsed:?}");
    assert!(res.index() > index, "the woken query reports the new index");
    assert_eq!(unb64(res.json()[0]["Value"].as_str().unwrap_or_default()), b"2");
}

#[tokio::test]
async fn prefix_watch_wakes_on_a_write_under_the_prefix_but_not_on_one_to_other() {
    let agent = TestAgent::dev("block-prefix-wake").await;
    put_ok(&agent, "lb/web/a", "10.0.0.1").await;
    let index = agent.get("/v1/kv/lb/web/?recurse").await.index();

    let trigger = Duration::from_millis(800);
    let path = format!("/v1/kv/lb/web/?recurse&index={index}&wait=2s");
    let writes = async {
        // The unrelated write comes first: if it woke the query, it would return around 200 ms.
        put_after(&agent, Duration::from_millis(200), "other/x", "noise").await;
        put_after(&agent, trigger - Duration::from_millis(200), "lb/web/b", "10.0.0.2").await;
    };
    let ((res, elapsed), ()) = tokio::join!(timed_get(&agent, &path), writes);
    res.expect_status(200);
    assert!(elapsed >= trigger - Duration::from_millis(100), "woke after {elapsed:?}, i.e. on the write to other/");
    assert!(elapsed < Duration::from_millis(1900), "the write under lb/web/ must wake the query, took {elapsed:?}");
    assert!(res.index() > index);
    assert_eq!(pluck(&res.json(), "Key"), ["lb/web/a", "lb/web/b"]);
}

#[tokio::test]
async fn prefix_watch_ignores_writes_elsewhere_and_times_out_with_the_same_index() {
    let agent = TestAgent::dev("block-prefix-quiet").await;
    put_ok(&agent, "lb/web/a", "10.0.0.1").await;
    let before = agent.get("/v1/kv/lb/web/?recurse").await;
    let index = before.index();

    let wait = Duration::from_millis(900);
    let path = format!("/v1/kv/lb/web/?recurse&index={index}&wait=900ms");
    let ((res, elapsed), ()) =
        tokio::join!(timed_get(&agent, &path), put_after(&agent, Duration::from_millis(200), "other/x", "noise"));
    res.expect_status(200);
    assert_timed_out(elapsed, wait);
    assert_eq!(res.index(), index, "nothing under lb/web/ changed, so the index is the same");
    assert_eq!(res.json(), before.json());
}

#[tokio::test]
async fn wait_times_out_with_the_same_index_when_nothing_changes() {
    let agent = TestAgent::dev("block-timeout").await;
    put_ok(&agent, "quiet/key", "v").await;
    let index = agent.get("/v1/kv/quiet/key").await.index();

    let wait = Duration::from_secs(1);
    let (res, elapsed) = timed_get(&agent, &format!("/v1/kv/quiet/key?index={index}&wait=1s")).await;
    res.expect_status(200);
    assert_timed_out(elapsed, wait);
    assert_eq!(res.index(), index);
}

#[tokio::test]
async fn watch_on_a_missing_key_wakes_only_when_that_key_is_written() {
    // Consul issue #9449 (any KV write wakes a watch on a missing key) is a defect not copied.
    let agent = TestAgent::dev("block-missing").await;
    let missing = agent.get("/v1/kv/later/key").await;
    missing.expect_status(404);
    let index = missing.index();

    let trigger = Duration::from_millis(800);
    let path = format!("/v1/kv/later/key?index={index}&wait=2s");
    let writes = async {
        put_after(&agent, Duration::from_millis(200), "unrelated/key", "noise").await;
        put_after(&agent, trigger - Duration::from_millis(200), "later/key", "here").await;
    };
    let ((res, elapsed), ()) = tokio::join!(timed_get(&agent, &path), writes);
    assert!(elapsed >= trigger - Duration::from_millis(100), "woke after {elapsed:?}, i.e. on an unrelated write");
    res.expect_status(200);
    assert!(res.index() > index);
    assert_eq!(unb64(res.json()[0]["Value"].as_str().unwrap_or_default()), b"here");
}

#[tokio::test]
async fn watch_on_a_key_wakes_when_it_is_deleted() {
    let agent = TestAgent::dev("block-delete").await;
    put_ok(&agent, "doomed", "v").await;
    let index = agent.get("/v1/kv/doomed").await.index();

    let delete_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        agent.delete("/v1/kv/doomed").await.expect_status(200);
    };
    let path = format!("/v1/kv/doomed?index={index}&wait=2s");
    let ((res, elapsed), ()) = tokio::join!(timed_get(&agent, &path), delete_later);
    assert!(elapsed < Duration::from_millis(1500), "the delete must wake the query, took {elapsed:?}");
    res.expect_status(404);
    assert!(res.index() > index, "a deletion moves the index forward");
}

#[tokio::test]
async fn health_service_watch_wakes_when_an_instance_registers() {
    // consul-template and Traefik discover instances with exactly this long poll.
    let agent = TestAgent::dev("block-health").await;
    let empty = agent.get("/v1/health/service/web").await;
    empty.expect_status(200);
    assert_eq!(empty.json(), json!([]));
    let index = empty.index();

    let register_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        agent.put_json("/v1/agent/service/register", &json!({"Name": "web", "Port": 80})).await.expect_status(200);
    };
    let path = format!("/v1/health/service/web?index={index}&wait=2s");
    let ((res, elapsed), ()) = tokio::join!(timed_get(&agent, &path), register_later);
    res.expect_status(200);
    assert!(elapsed < Duration::from_millis(1500), "the registration must wake the query, took {elapsed:?}");
    assert!(res.index() > index);
    assert_eq!(res.json().as_array().map(Vec::len), Some(1), "{}", res.text());
}

#[tokio::test]
async fn a_thousand_http_watchers_of_one_prefix_all_wake_on_one_write() {
    // Every watcher comes from 127.0.0.1, so the per-client connection cap (Consul's 200) is lifted, as an operator
    // fronting many clients with one address would.
    let unlimited = json!({"limits": {"http_max_conns_per_client": 0}});
    let agent = TestAgent::start_with_config("block-thousand", AgentMode::Dev, unlimited).await.expect("dev agent");
    put_ok(&agent, "lb/web/a", "10.0.0.1").await;
    let index = agent.get("/v1/kv/lb/web/?recurse").await.index();
    // Each watcher holds its own connection, as a thousand separate clients would.
    let client = roster_tests::http_client(0);
    let url = agent.url(&format!("/v1/kv/lb/web/?recurse&index={index}&wait=30s"));
    let watchers: Vec<_> = (0..1000)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let res = client.get(&url).send().await.expect("watcher request");
                let index: u64 = res.headers()["x-consul-index"].to_str().expect("ascii").parse().expect("number");
                let body: serde_json::Value = res.json().await.expect("json body");
                (index, body)
            })
        })
        .collect();
    // A write elsewhere first: none of them may answer for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    put_ok(&agent, "other/key", "x").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(watchers.iter().all(|watcher| !watcher.is_finished()), "a write elsewhere woke a watcher");

    let written = Instant::now();
    put_ok(&agent, "lb/web/b", "10.0.0.2").await;
    for watcher in watchers {
        let (new_index, body) = watcher.await.expect("watcher task");
        assert!(new_index > index);
        assert_eq!(pluck(&body, "Key"), ["lb/web/a", "lb/web/b"]);
    }
    assert!(written.elapsed() < Duration::from_secs(10), "all woken within {:?}", written.elapsed());
}
