//! The snapshot store under openraft's concurrency: a build finishing beside an install or a read of the current
//! snapshot never loses the newest snapshot nor fails the read.

use std::sync::Arc;

use super::*;
use crate::raft::{CommittedLeaderId, LogId, StoredMembership};

fn meta(index: u64) -> SnapshotMeta {
    let leader = CommittedLeaderId { term: 1, node_id: 1 };
    SnapshotMeta { last_log_id: Some(LogId::new(leader, index)), last_membership: StoredMembership::default() }
}

/// Bytes that name the snapshot they belong to, so a read can tell it got the data of the meta it got.
fn data(index: u64) -> Vec<u8> {
    index.to_be_bytes().repeat(4096)
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir.join("snapshots"))
        .expect("snapshot dir")
        .map(|item| item.expect("entry").file_name().into_string().expect("utf-8 name"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_current_snapshot_while_newer_ones_are_saved_always_gets_a_whole_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = SnapshotStore::open(Some(dir.path())).expect("open");
    let store = Arc::new(store);
    store.save(&meta(1), &data(1)).await.expect("first save");
    let saver = tokio::spawn({
        let store = store.clone();
        async move {
            for index in 2..=300 {
                store.save(&meta(index), &data(index)).await.expect("save");
            }
        }
    });
    let mut reads = 0;
    let mut seen = 0;
    while !saver.is_finished() || reads == 0 {
        let (got, bytes) = store.current().await.expect("the current snapshot is readable").expect("one is current");
        let index = file_index(&got);
        assert_eq!(bytes, data(index), "the data read belongs to the meta read");
        assert!(index >= seen, "the current snapshot never goes back: {index} after {seen}");
        seen = index;
        reads += 1;
    }
    saver.await.expect("saver");
    assert_eq!(store.current_meta().map(|m| file_index(&m)), Some(300));
    assert_eq!(snapshot_files(dir.path()), [file_name(300)]);
}

#[tokio::test]
async fn a_build_that_finishes_after_a_newer_install_does_not_replace_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = SnapshotStore::open(Some(dir.path())).expect("open");
    store.save(&meta(20), &data(20)).await.expect("the install");
    store.save(&meta(10), &data(10)).await.expect("the late build is dropped, not an error");
    let (got, bytes) = store.current().await.expect("read").expect("current");
    assert_eq!((file_index(&got), bytes), (20, data(20)));
    assert_eq!(snapshot_files(dir.path()), [file_name(20)]);
    drop(store);
    let (_, restored) = SnapshotStore::open(Some(dir.path())).expect("reopen");
    let (got, bytes) = restored.expect("a snapshot after restart");
    assert_eq!((file_index(&got), bytes), (20, data(20)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_leave_the_newest_on_disk_and_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = SnapshotStore::open(Some(dir.path())).expect("open");
    let store = Arc::new(store);
    for round in 0..50u64 {
        let (older, newer) = (2 * round + 1, 2 * round + 2);
        let (a, b) = (store.clone(), store.clone());
        let (first, second) = tokio::join!(
            tokio::spawn(async move { a.save(&meta(newer), &data(newer)).await }),
            tokio::spawn(async move { b.save(&meta(older), &data(older)).await }),
        );
        first.expect("task").expect("save");
        second.expect("task").expect("save");
        assert_eq!(store.current_meta().map(|m| file_index(&m)), Some(newer), "round {round}");
        assert_eq!(snapshot_files(dir.path()), [file_name(newer)], "round {round}");
    }
    drop(store);
    let (_, restored) = SnapshotStore::open(Some(dir.path())).expect("reopen");
    assert_eq!(restored.map(|(m, _)| file_index(&m)), Some(100));
}

#[tokio::test]
async fn in_memory_snapshots_follow_the_same_rules() {
    let (store, restored) = SnapshotStore::open(None).expect("open");
    assert!(restored.is_none());
    assert!(store.current().await.expect("read").is_none(), "nothing is current before a save");
    store.save(&meta(7), &data(7)).await.expect("save");
    store.save(&meta(3), &data(3)).await.expect("older dropped");
    let (got, bytes) = store.current().await.expect("read").expect("current");
    assert_eq!((file_index(&got), bytes), (7, data(7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_changes_on_disk_once_close_returns() {
    for round in 0..20u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = SnapshotStore::open(Some(dir.path())).expect("open");
        let store = Arc::new(store);
        store.save(&meta(1), &data(1)).await.expect("first save");
        // A build openraft spawned, still saving when the server shuts down; big enough to be mid-write sometimes.
        let build = tokio::spawn({
            let store = store.clone();
            async move { store.save(&meta(2), &2u64.to_be_bytes().repeat(1 << 20)).await }
        });
        store.close().await;
        let at_close = snapshot_files(dir.path());
        let built = build.await.expect("task");
        assert_eq!(snapshot_files(dir.path()), at_close, "round {round}: a save after close changed the dir");
        match built {
            Ok(()) => assert_eq!(at_close, [file_name(2)], "round {round}"),
            Err(e) => {
                assert!(e.to_string().contains("closed"), "round {round}: {e}");
                assert_eq!(at_close, [file_name(1)], "round {round}");
            }
        }
        let refused = store.save(&meta(3), &data(3)).await.expect_err("a closed store saves nothing");
        assert!(refused.to_string().contains("shutting down"), "{refused}");
        assert_eq!(snapshot_files(dir.path()), at_close);
    }
}
