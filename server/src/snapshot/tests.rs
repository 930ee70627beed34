//! Tests of snapshot save and restore on real servers: an archive through a client's chunked reads, a restore that
//! every server applies and that wakes a parked query at once, and the handles' bounds.

use std::time::Duration;

use roster_kv::{Answer, CommandResult, Query, State};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::tests::{set, three_node_cluster};
use crate::{Consistency, Remote};

/// `n` bytes that do not compress, from a fixed seed (xorshift), so an archive of a few values spans many reads.
fn incompressible(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn kv(state: &State) -> Vec<(String, Vec<u8>)> {
    state.kv_list("").0.into_iter().map(|e| (e.key.clone(), e.value.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_saves_in_chunks_and_a_restore_reaches_every_server_and_wakes_a_parked_query() {
    let (servers, leader) = three_node_cluster().await;
    let follower = servers.iter().find(|s| s.rpc_addr() != leader).unwrap();
    let remote = Remote::new(CancellationToken::new());
    remote.set_servers(vec![follower.rpc_addr()]);
    // Reads of 1 KiB: the archive of a few tens of KiB comes in many pieces.
    follower.snapshot_handles().set_read_chunk(1024);
    follower.write(set("watched", "in-snapshot")).await.unwrap();
    for i in 0..12u64 {
        let value = incompressible(i, 4 << 10);
        let cmd = roster_kv::Command::KvSet { key: format!("big/{i}"), value, flags: i };
        assert_eq!(follower.write(cmd).await.unwrap(), CommandResult::Bool(true));
    }

    let (archive_bytes, index) = remote.save_snapshot_as("", Consistency::Default).await.unwrap();
    assert!(archive_bytes.len() > 10 * 1024, "the archive spans many reads ({} bytes)", archive_bytes.len());
    let archive = roster_snapshot::read(&archive_bytes[..]).unwrap();
    assert_eq!(archive.meta.index, index);
    assert_eq!(archive.meta.servers.len(), 3);
    let saved = archive.decode_state().unwrap();
    assert_eq!(saved.last_index(), index);
    let expected = kv(&saved);
    assert_eq!(expected.len(), 13);

    // Writes go on after the save: a changed value, a new key, a deleted one.
    follower.write(set("watched", "after")).await.unwrap();
    follower.write(set("new", "x")).await.unwrap();
    follower.write(roster_kv::Command::KvDelete { key: "big/0".into() }).await.unwrap();

    // A query parked on the changed key, past the index the restore will bring back.
    let query = Query::KvGet { key: "watched".into() };
    let (_, watched_index, _) = follower.query(Consistency::Default, 0, Duration::ZERO, &query).await.unwrap();
    let parked = {
        let (follower, query) = (follower.clone(), query.clone());
        tokio::spawn(async move {
            follower.query(Consistency::Default, watched_index, Duration::from_secs(60), &query).await
        })
    };
    while follower.parked_queries() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    remote.restore_snapshot_as("", &archive.state).await.unwrap();
    let started = Instant::now();
    let (answer, _, _) = parked.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let Answer::Entry(Some(entry)) = answer else { panic!("the restored key exists: {answer:?}") };
    assert_eq!(entry.value, b"in-snapshot");

    for server in &servers {
        let (restored, _) = server.read(Consistency::Default, kv).await.unwrap();
        assert_eq!(restored, expected, "server {}", server.node_id());
    }
    assert_eq!(follower.write(set("later", "ok")).await.unwrap(), CommandResult::Bool(true));
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_of_bytes_that_are_no_snapshot_is_rejected_and_changes_nothing() {
    let (servers, _) = three_node_cluster().await;
    servers[0].write(set("k", "v")).await.unwrap();
    let err = servers[0].restore_snapshot_as("", b"garbage").await.expect_err("refused");
    assert!(err.to_string().contains("snapshot format not recognised"), "{err}");
    let (value, _) = servers[0].read(Consistency::Default, |s| s.kv_get("k").0.map(|e| e.value.clone())).await.unwrap();
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}

#[test]
fn handles_are_bounded_expire_when_idle_and_go_once_read_to_the_end() {
    {
        let handles = Handles::default();
        let now = Instant::now();
        let archive = vec![7u8; READ_CHUNK + 10];
        let first = handles.insert(archive.clone(), now).unwrap();
        for _ in 1..MAX_HANDLES {
            handles.insert(vec![1], now).unwrap();
        }
        let full = handles.insert(vec![1], now).expect_err("full");
        assert!(full.to_string().contains("too many snapshots"), "{full}");

        // Read to the end: the handle goes, and the others expire when idle.
        assert_eq!(handles.read(&first, 0, now).unwrap().len(), READ_CHUNK);
        assert_eq!(handles.read(&first, READ_CHUNK as u64, now).unwrap().len(), 10);
        assert_eq!(handles.len(), MAX_HANDLES - 1);
        assert!(handles.read(&first, 0, now).is_err());
        let later = now + HANDLE_IDLE;
        assert!(handles.insert(vec![1], later).is_ok());
        assert_eq!(handles.len(), 1);
    }
}
