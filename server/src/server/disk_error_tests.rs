//! A log write that fails (a full disk, an fsync error), injected into the log store: the write is not acknowledged,
//! the server stops serving Raft and says why, and in a cluster another server takes over.

use std::time::{Duration, Instant};

use super::Server;
use super::tests::{set, start, three_node_cluster};
use crate::{Consistency, Error};

async fn get(server: &Server, key: &str) -> Option<Vec<u8>> {
    let key = key.to_owned();
    let (value, _) =
        server.read(Consistency::Consistent, move |state| state.kv_get(&key).0.map(|e| e.value.clone())).await.unwrap();
    value
}

/// Checks that `server`'s Raft stopped on the injected error and reports it.
fn assert_stopped_on_disk_error(server: &Server, file: &str) {
    let stats = server.raft_stats();
    let failure = stats.failure.as_deref().unwrap_or_else(|| panic!("no failure reported: {stats:?}"));
    assert!(failure.contains("No space left on device") && failure.contains(file), "{failure}");
    assert_eq!(stats.state, "Shutdown", "{stats:?}");
    assert!(!stats.leader && !server.is_leader(), "{stats:?}");
    assert_eq!(server.leader_addr(), None, "a stopped server names no leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_whose_log_write_fails_acknowledges_nothing_and_reports_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(1, Some(dir.path()), true).await;
    server.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    server.write(set("before", "1")).await.unwrap();

    server.fail_next_log_append();
    let res = server.write(set("lost", "1")).await;
    assert!(matches!(res, Err(Error::Fatal(_) | Error::Shutdown)), "the write must fail, got {res:?}");
    assert_stopped_on_disk_error(&server, "raft-log.wal");
    let again = server.write(set("later", "1")).await;
    assert!(again.is_err(), "a stopped server takes no writes: {again:?}");
    server.shutdown().await.unwrap();
    drop(server);

    // After a restart (the disk has room again) the acknowledged write is there and the failed one is not.
    let server = start(1, Some(dir.path()), false).await;
    server.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    assert_eq!(get(&server, "before").await.as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&server, "lost").await, None);
    assert_eq!(server.raft_stats().failure, None);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_log_write_fails_stops_and_another_server_takes_over() {
    let (servers, leader_addr) = three_node_cluster().await;
    let leader = servers.iter().position(|s| s.rpc_addr() == leader_addr).unwrap();
    servers[leader].write(set("before", "1")).await.unwrap();

    // The leader hands the entry to its followers while its own write is under way, so the two followers can make
    // it durable on a quorum before the leader's write fails: then the write is committed and may be acknowledged
    // (and must survive), or the leader stops first and the caller hears an error and cannot know. What must never
    // happen is an acknowledged write that the surviving servers do not have.
    servers[leader].fail_next_log_append();
    let res = servers[leader].write(set("unknown", "1")).await;
    // An acknowledged write can come back before the leader's own failed write is reported.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = servers[leader].raft_stats();
        if stats.state == "Shutdown" && stats.failure.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the failed leader did not stop: {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_stopped_on_disk_error(&servers[leader], "in-memory log");

    let others: Vec<&Server> = servers.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, s)| s).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let new_leader = loop {
        if let Some(server) = others.iter().find(|s| s.is_leader()) {
            break *server;
        }
        assert!(Instant::now() < deadline, "no other server became leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    new_leader.write(set("after", "1")).await.unwrap();
    for server in &others {
        assert_eq!(get(server, "before").await.as_deref(), Some(&b"1"[..]));
        assert_eq!(get(server, "after").await.as_deref(), Some(&b"1"[..]));
        if res.is_ok() {
            assert_eq!(get(server, "unknown").await.as_deref(), Some(&b"1"[..]), "an acknowledged write was lost");
        }
    }
    // The failed server still says why.
    assert_stopped_on_disk_error(&servers[leader], "in-memory log");
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}
