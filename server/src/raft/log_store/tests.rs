//! openraft's storage conformance suite, run on the redb log store and our state machine, on disk and in memory.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use roster_kv::State;

use super::LogStore;
use crate::raft::snapshot_store::SnapshotStore;
use crate::raft::state_machine::StateMachine;
use crate::raft::{AppliedMeta, TypeConfig};
use crate::raft::{Entry, LogCommand};
use crate::replica::Replica;

/// Builds fresh stores; `on_disk` puts each in its own temporary data dir (kept alive by the guard).
struct Builder {
    on_disk: bool,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Option<tempfile::TempDir>> for Builder {
    async fn build(&self) -> Result<(Option<tempfile::TempDir>, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = self.on_disk.then(|| tempfile::tempdir().expect("tempdir"));
        let path = dir.as_ref().map(|d| d.path());
        let (log, _closed) = LogStore::open(path).expect("open log");
        let (snapshots, restored) = SnapshotStore::open(path).expect("open snapshots");
        assert!(restored.is_none());
        let replica = Arc::new(Replica::new(State::default(), AppliedMeta::default()));
        Ok((dir, log, StateMachine::new(replica, Arc::new(snapshots))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_suite_passes_on_disk() {
    Suite::test_all(Builder { on_disk: true }).await.expect("suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_suite_passes_in_memory() {
    Suite::test_all(Builder { on_disk: false }).await.expect("suite");
}

/// Format 1's log payload, exactly as roster declared it before envelopes: the command itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Format1Command(roster_kv::Command);

impl std::fmt::Display for Format1Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

type Format1Entry =
    openraft::Entry<crate::raft::CommittedLeaderId, openraft::EntryPayload<Format1Command, u64, openraft::BasicNode>>;

/// Rewrites every entry of the log in `dir` as format 1 wrote it (the redb file is closed).
fn rewrite_as_format_1(dir: &std::path::Path) {
    use redb::ReadableTable;
    let db = redb::Database::open(dir.join(super::LOG_FILE)).expect("open the log");
    let txn = db.begin_write().expect("write txn");
    {
        let mut table = txn.open_table(super::LOGS).expect("logs");
        let mut rewritten = Vec::new();
        for item in table.iter().expect("iter") {
            let (index, value) = item.expect("entry");
            let entry: Entry = super::decode(value.value()).expect("decode");
            let payload = match entry.payload {
                openraft::EntryPayload::Normal(LogCommand::Command(cmd)) => {
                    openraft::EntryPayload::Normal(Format1Command(cmd))
                }
                openraft::EntryPayload::Normal(LogCommand::Unreadable(_)) => panic!("an unreadable entry"),
                openraft::EntryPayload::Blank => openraft::EntryPayload::Blank,
                openraft::EntryPayload::Membership(m) => openraft::EntryPayload::Membership(m),
            };
            let old = Format1Entry { log_id: entry.log_id, payload };
            rewritten.push((index.value(), postcard::to_allocvec(&old).expect("encode")));
        }
        assert!(rewritten.len() > 10, "a log to rewrite");
        for (index, bytes) in rewritten {
            table.insert(index, bytes.as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_by_format_1_is_read_and_extended() {
    use crate::server::tests::{set, start};
    let dir = tempfile::tempdir().unwrap();
    let server = start(1, Some(dir.path()), true).await;
    server.wait_for_leader(std::time::Duration::from_secs(5)).await.unwrap();
    for i in 0..20 {
        server.write(set(&format!("k{i}"), &i.to_string())).await.unwrap();
    }
    server.shutdown().await.unwrap();
    drop(server);
    rewrite_as_format_1(dir.path());

    let read = |server: &crate::Server, key: String| {
        let server = server.clone();
        async move {
            let (value, _) = server
                .read(crate::Consistency::Consistent, move |state| state.kv_get(&key).0.map(|e| e.value.clone()))
                .await
                .unwrap();
            value
        }
    };
    let server = start(1, Some(dir.path()), false).await;
    server.wait_for_leader(std::time::Duration::from_secs(5)).await.unwrap();
    for i in 0..20 {
        assert_eq!(read(&server, format!("k{i}")).await, Some(i.to_string().into_bytes()), "k{i}");
    }
    // New entries (envelopes) follow the old ones in the same log, and both read back after another restart.
    server.write(set("k20", "20")).await.unwrap();
    server.shutdown().await.unwrap();
    drop(server);
    let server = start(1, Some(dir.path()), false).await;
    server.wait_for_leader(std::time::Duration::from_secs(5)).await.unwrap();
    for i in 0..21 {
        assert_eq!(read(&server, format!("k{i}")).await, Some(i.to_string().into_bytes()), "k{i}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_of_a_newer_format_in_the_log_is_refused_naming_the_versions() {
    use openraft::RaftLogReader;
    use openraft::vote::RaftLeaderId;
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _closed) = LogStore::open(Some(dir.path())).expect("open log");
    let newer = crate::raft::envelope::LOG_ENTRY_VERSION + 1;
    let unreadable = crate::raft::Unreadable { version: newer, why: String::new(), body: vec![1, 2, 3] };
    let log_id = crate::raft::LogId { leader_id: crate::raft::CommittedLeaderId::new(1, 1), index: 1 };
    let entry = Entry { log_id, payload: openraft::EntryPayload::Normal(LogCommand::Unreadable(unreadable)) };
    log.append_before_start(entry).await.expect("append");
    let err = log.try_get_log_entries(0..5).await.expect_err("a newer entry must not be read");
    let message = err.to_string();
    assert!(
        message.contains("raft-log.redb: entry 1") && message.contains(&format!("format version {newer}")),
        "{message}"
    );
    assert!(message.contains(&format!("up to {}", crate::raft::envelope::LOG_ENTRY_VERSION)), "{message}");
}

/// The size a scan of the log's table finds: the oracle the running totals are held to.
fn scanned_size(dir: &std::path::Path) -> super::LogSize {
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(dir.join(super::LOG_FILE)).expect("open the log");
    let txn = db.begin_read().expect("read txn");
    let table = txn.open_table(super::LOGS).expect("logs");
    let mut size = super::LogSize::default();
    for item in table.iter().expect("iter") {
        let (index, value) = item.expect("entry");
        size.entries += 1;
        size.bytes += value.value().len() as u64;
        size.last_index = index.value();
    }
    size
}

fn entry_at(index: u64, value: &str) -> Entry {
    use openraft::vote::RaftLeaderId;
    let log_id = crate::raft::LogId { leader_id: crate::raft::CommittedLeaderId::new(1, 1), index };
    let command = roster_kv::Command::KvSet { key: format!("k{index}"), value: value.as_bytes().to_vec(), flags: 0 };
    Entry { log_id, payload: openraft::EntryPayload::Normal(LogCommand::Command(command)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_size_follows_appends_truncations_purges_and_a_restart() {
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    let (mut log, closed) = LogStore::open(Some(dir.path())).expect("open log");
    assert_eq!(log.size(), super::LogSize::default());
    for index in 1..=10 {
        // Values of different lengths, so a byte total that counted entries instead would be caught.
        log.append_before_start(entry_at(index, &"v".repeat(index as usize * 7))).await.expect("append");
    }
    let appended = log.size();
    assert_eq!((appended.entries, appended.last_index), (10, 10));
    // Writing an index again replaces its entry: the old bytes leave the total.
    log.append_before_start(entry_at(10, "short")).await.expect("append");
    log.truncate_after(Some(entry_at(8, "").log_id)).await.expect("truncate");
    assert_eq!((log.size().entries, log.size().last_index), (8, 8));
    log.purge(entry_at(3, "").log_id).await.expect("purge");
    let after = log.size();
    assert_eq!((after.entries, after.last_index), (5, 8));
    assert!(after.bytes < appended.bytes, "{after:?} after {appended:?}");
    drop(log);
    closed.await.expect("closed");
    assert_eq!(scanned_size(dir.path()), after, "the running totals are what the table holds");
    let (log, _closed) = LogStore::open(Some(dir.path())).expect("reopen log");
    assert_eq!(log.size(), after, "the totals survive a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_readable_at_once_flushed_in_order_and_queued_ones_share_one_commit() {
    use openraft::RaftLogReader;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    let dir = tempfile::tempdir().unwrap();
    let (mut log, closed) = LogStore::open(Some(dir.path())).expect("open log");
    // Hold the writer inside a transaction until the test lets go, so every append below queues behind it.
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let held = {
        let log = log.clone();
        tokio::spawn(async move {
            log.write(redb::Durability::Immediate, move |_txn| {
                entered_tx.send(()).expect("the test waits");
                gate.recv().expect("the test releases");
                Ok(())
            })
            .await
        })
    };
    tokio::task::spawn_blocking(move || entered.recv()).await.unwrap().expect("the writer holds");
    let commits_before = log.commits();

    let mut flushed = Vec::new();
    for index in 1..=50 {
        let (tx, rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
        log.append([entry_at(index, "v")], IOFlushed::signal(tx))
            .await
            .expect("append returns while the writer is busy");
        flushed.push(rx);
    }
    // Readable before any of them is on disk, and not one reported durable: the writer is still held.
    let read = log.try_get_log_entries(1..=50).await.expect("read");
    assert_eq!(read.iter().map(|e| e.log_id.index()).collect::<Vec<_>>(), (1..=50).collect::<Vec<_>>());
    assert_eq!(log.get_log_state().await.expect("state").last_log_id.map(|id| id.index()), Some(50));
    for rx in &mut flushed {
        assert!(rx.try_recv().is_err(), "an append was reported durable before its commit");
    }
    assert_eq!(log.commits(), commits_before);

    release.send(()).expect("the writer waits");
    held.await.unwrap().expect("the held write commits");
    for rx in flushed {
        rx.await.expect("reported").expect("durable");
    }
    // The held write, then one transaction for all fifty appends queued behind it.
    assert_eq!(log.commits(), commits_before + 2);
    drop(log);
    closed.await.expect("closed");
    assert_eq!(scanned_size(dir.path()).entries, 50, "every append reached the file");
}
