//! Blocking queries (`?index=N&wait=D`): they wake on a change to the data under the query, ignore
//! writes elsewhere, and time out at `wait` (plus at most wait/16 jitter) with the same index.
//!
//! A test that wakes a query parks it first (the agent's parked-query gauge says when) and asks for a 10-minute wait, so
//! an answer within the test's minute can only be a wake-up; no test sleeps to let a query park. Only the tests of
//! the timeout itself measure time, and their bounds allow for a loaded CI machine.

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

/// Parks a blocking `GET path` (whose `wait` is long, so only a wake-up answers it within the minute this allows),
/// makes `writes` once it is parked, and returns the query's answer.
async fn woken_by(agent: &TestAgent, path: &str, writes: impl Future<Output = ()>) -> Resp {
    let parked = agent.parked_queries().await;
    let query = agent.spawn_get(path);
    agent.wait_parked(parked + 1.0).await;
    writes.await;
    tokio::time::timeout(Duration::from_secs(60), query)
        .await
        .unwrap_or_else(|_| panic!("GET {path} was not woken within a minute"))
        .expect("query task")
}

/// Parks a blocking `GET path` whose `wait` runs out in the test, makes `writes` once it is parked, and returns the
/// answer with the time the query took.
async fn timed_out_by(agent: &TestAgent, path: &str, writes: impl Future<Output = ()>) -> (Resp, Duration) {
    let parked = agent.parked_queries().await;
    let started = Instant::now();
    let query = agent.spawn_get(path);
    agent.wait_parked(parked + 1.0).await;
    writes.await;
    let res = query.await.expect("query task");
    (res, started.elapsed())
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

    let path = format!("/v1/kv/cfg/limit?index={index}&wait=10m");
    let res = woken_by(&agent, &path, put_ok(&agent, "cfg/limit", "2")).await;
    res.expect_status(200);
    assert!(res.index() > index, "the woken query reports the new index");
    assert_eq!(unb64(res.json()[0]["Value"].as_str().unwrap_or_default()), b"2");
}

#[tokio::test]
async fn prefix_watch_wakes_on_a_write_under_the_prefix_but_not_on_one_to_other() {
    let agent = TestAgent::dev("block-prefix-wake").await;
    put_ok(&agent, "lb/web/a", "10.0.0.1").await;
    let index = agent.get("/v1/kv/lb/web/?recurse").await.index();

    let path = format!("/v1/kv/lb/web/?recurse&index={index}&wait=10m");
    let writes = async {
        // The unrelated write comes first: had it answered the query, the answer would hold lb/web/a alone. (That
        // it does not even end the wait early is the timeout test's below.)
        put_ok(&agent, "other/x", "noise").await;
        put_ok(&agent, "lb/web/b", "10.0.0.2").await;
    };
    let res = woken_by(&agent, &path, writes).await;
    res.expect_status(200);
    assert!(res.index() > index);
    assert_eq!(pluck(&res.json(), "Key"), ["lb/web/a", "lb/web/b"]);
}

#[tokio::test]
async fn prefix_watch_ignores_writes_elsewhere_and_times_out_with_the_same_index() {
    let agent = TestAgent::dev("block-prefix-quiet").await;
    put_ok(&agent, "lb/web/a", "10.0.0.1").await;
    let before = agent.get("/v1/kv/lb/web/?recurse").await;
    let index = before.index();

    let wait = Duration::from_secs(2);
    let path = format!("/v1/kv/lb/web/?recurse&index={index}&wait=2s");
    let (res, elapsed) = timed_out_by(&agent, &path, put_ok(&agent, "other/x", "noise")).await;
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

    // An unrelated write while the watch is parked: it waits out its 2 s, answering the same 404 and index.
    let wait = Duration::from_secs(2);
    let path = format!("/v1/kv/later/key?index={index}&wait=2s");
    let (quiet, elapsed) = timed_out_by(&agent, &path, put_ok(&agent, "unrelated/key", "noise")).await;
    quiet.expect_status(404);
    assert_timed_out(elapsed, wait);
    assert_eq!(quiet.index(), index, "nothing was written to later/key, so its index is the same");

    let path = format!("/v1/kv/later/key?index={index}&wait=10m");
    let res = woken_by(&agent, &path, put_ok(&agent, "later/key", "here")).await;
    res.expect_status(200);
    assert!(res.index() > index);
    assert_eq!(unb64(res.json()[0]["Value"].as_str().unwrap_or_default()), b"here");
}

#[tokio::test]
async fn watch_on_a_key_wakes_when_it_is_deleted() {
    let agent = TestAgent::dev("block-delete").await;
    put_ok(&agent, "doomed", "v").await;
    let index = agent.get("/v1/kv/doomed").await.index();

    let delete = async {
        agent.delete("/v1/kv/doomed").await.expect_status(200);
    };
    let res = woken_by(&agent, &format!("/v1/kv/doomed?index={index}&wait=10m"), delete).await;
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

    let register = async {
        agent.put_json("/v1/agent/service/register", &json!({"Name": "web", "Port": 80})).await.expect_status(200);
    };
    let res = woken_by(&agent, &format!("/v1/health/service/web?index={index}&wait=10m"), register).await;
    res.expect_status(200);
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
    // Each watcher holds its own connection, as a thousand separate clients would; the wait is long, so only the
    // write wakes them.
    let parked = agent.parked_queries().await;
    let path = format!("/v1/kv/lb/web/?recurse&index={index}&wait=10m");
    let watchers: Vec<_> = (0..1000).map(|_| agent.spawn_get(&path)).collect();
    agent.wait_parked(parked + 1000.0).await;
    // A write elsewhere first, while all of them are parked: an answer for it would hold lb/web/a alone.
    put_ok(&agent, "other/key", "x").await;
    put_ok(&agent, "lb/web/b", "10.0.0.2").await;
    let answers = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(watchers))
        .await
        .expect("every watcher woken within a minute");
    for answer in answers {
        let res = answer.expect("watcher task");
        res.expect_status(200);
        assert!(res.index() > index);
        assert_eq!(pluck(&res.json(), "Key"), ["lb/web/a", "lb/web/b"]);
    }
}
