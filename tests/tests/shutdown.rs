//! Graceful shutdown: SIGTERM makes the agent stop serving, shut Raft down and exit 0 on its own, and a durable server comes back with its data.

use std::time::Duration;

use roster_tests::TestAgent;
use serde_json::json;

#[tokio::test]
async fn sigterm_stops_a_durable_server_cleanly_and_keeps_its_data() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let mut agent = TestAgent::server("graceful", data_dir.path()).await;
    let put = agent.put("/v1/kv/kept/after/term", "yes").await;
    put.expect_status(200);
    let old_addr = agent.http_addr();

    let status = agent.terminate(Duration::from_secs(10)).await;
    let status = status.unwrap_or_else(|| panic!("agent ignored SIGTERM for 10 s:\n{}", agent.stderr_tail()));
    assert!(status.success(), "agent exited with {status}:\n{}", agent.stderr_tail());
    assert!(agent.stderr_tail().contains("stopped"), "the log says the shutdown finished:\n{}", agent.stderr_tail());
    assert!(std::net::TcpStream::connect(old_addr).is_err(), "nothing listens on the old HTTP port after exit");

    agent.restart().await;
    let get = agent.get("/v1/kv/kept/after/term?raw").await;
    get.expect_status(200);
    assert_eq!(get.body, b"yes");
    assert_eq!(agent.put("/v1/kv/kept/again", "x").await.json(), json!(true), "the restarted server takes writes");
}

#[tokio::test]
async fn sigterm_answers_a_parked_blocking_query_at_once_and_exits_promptly() {
    let mut agent = TestAgent::dev("graceful-blocked").await;
    let index = agent.get("/v1/kv/watched?recurse").await.index();
    let client = agent.client().clone();
    let url = agent.url(&format!("/v1/kv/watched?recurse&index={index}&wait=5m"));
    let watcher = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let status = agent.terminate(Duration::from_secs(15)).await;
    assert!(status.is_some_and(|s| s.success()), "agent did not exit cleanly:\n{}", agent.stderr_tail());
    // A 5-minute watcher must not hold the agent for its wait, nor even for the drain grace.
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown took {:?}", started.elapsed());
    let answer = tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .expect("the watcher is answered, not left hanging")
        .expect("watcher task")
        .expect("the watcher gets an HTTP answer before the agent exits");
    assert_eq!(answer.status(), 404, "the key still does not exist");
    let returned: u64 = answer.headers()["X-Consul-Index"].to_str().expect("ascii").parse().expect("number");
    assert_eq!(returned, index, "like a wait timeout, the answer carries the unchanged index");
}
