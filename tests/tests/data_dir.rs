//! The data dir's format marker, black-box: a data dir of an older format starts, keeps its data and is marked with
//! the current one; a data dir of a newer format and a directory roster never wrote are refused with the reason.

use std::time::Duration;

use roster_tests::{AgentMode, TestAgent, kv_value};
use serde_json::json;

const MARKER: &str = "roster-data-format";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_data_dir_starts_keeps_its_data_and_a_newer_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::server("s1", dir.path()).await;
    assert_eq!(std::fs::read_to_string(dir.path().join(MARKER)).expect("marker written at init"), "3\n");
    let res = agent.put("/v1/kv/kept", "1").await;
    assert_eq!(res.json(), json!(true));
    agent.terminate(Duration::from_secs(10)).await;

    // Marked as the format before (its layout, but for the log's file, is this one's; the server unit tests move a
    // redb log of formats 1 and 2 into the new file).
    std::fs::write(dir.path().join(MARKER), "2\n").expect("writing an older marker");
    agent.restart().await;
    assert_eq!(kv_value(&agent, "kept?consistent").await.as_deref(), Some("1"));
    assert_eq!(std::fs::read_to_string(dir.path().join(MARKER)).expect("marker upgraded"), "3\n");
    agent.terminate(Duration::from_secs(10)).await;

    std::fs::write(dir.path().join(MARKER), "4\n").expect("writing a newer marker");
    let err = format!("{:#}", agent.try_restart().await.expect_err("a newer data dir must be refused"));
    assert!(err.contains("has format 4, written by a newer roster; this roster reads formats up to 3"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join(MARKER)).expect("marker"), "4\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_roster_never_wrote_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A Consul data dir.
    std::fs::create_dir(dir.path().join("raft")).expect("raft/");
    std::fs::write(dir.path().join("raft").join("raft.db"), "bolt").expect("raft.db");
    std::fs::write(dir.path().join("checkpoint-signature"), "x").expect("checkpoint-signature");
    let mode = AgentMode::Server { data_dir: dir.path().to_path_buf() };
    let err = match TestAgent::start("s1", mode).await {
        Ok(_) => panic!("a foreign data dir must be refused"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("has no roster-data-format and holds \"checkpoint-signature\""), "{err}");
    assert!(!dir.path().join(MARKER).exists());
    assert!(!dir.path().join("node-id").exists());
}
