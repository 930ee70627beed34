//! openraft's storage conformance suite, run on the log store and our state machine, on disk and in memory; the
//! log file's crash, upgrade, compaction and locking behaviour.

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

/// The log file in `dir` as a replay finds it (the file is closed).
fn replayed(dir: &std::path::Path) -> (std::fs::File, super::wal::Replayed) {
    let file = std::fs::File::open(dir.join(super::LOG_FILE)).expect("open the log");
    let replayed =
        super::wal::replay(&file, "test", |bytes| super::decode::<crate::raft::LogId>(bytes).map(|id| id.index()))
            .expect("replay");
    (file, replayed)
}

/// Turns the log in `dir` into the redb log an older roster wrote, every entry as format 1 encoded it, and removes
/// the new file: a data dir as that roster left it (the log is closed).
fn rewrite_as_format_1_redb(dir: &std::path::Path) {
    let (file, log) = replayed(dir);
    let db = redb::Database::create(dir.join(super::legacy::LEGACY_LOG_FILE)).expect("create the redb log");
    let txn = db.begin_write().expect("write txn");
    {
        let mut table = txn.open_table(super::legacy::LOGS).expect("logs");
        for (index, loc) in log.entries.map() {
            let entry: Entry = super::decode(&super::wal::read_at(&file, *loc).expect("read")).expect("decode");
            let payload = match entry.payload {
                openraft::EntryPayload::Normal(LogCommand::Command(cmd)) => {
                    openraft::EntryPayload::Normal(Format1Command(cmd))
                }
                openraft::EntryPayload::Normal(LogCommand::Unreadable(_)) => panic!("an unreadable entry"),
                openraft::EntryPayload::Blank => openraft::EntryPayload::Blank,
                openraft::EntryPayload::Membership(m) => openraft::EntryPayload::Membership(m),
            };
            let old = Format1Entry { log_id: entry.log_id, payload };
            table.insert(*index, postcard::to_allocvec(&old).expect("encode").as_slice()).expect("insert");
        }
        assert!(log.entries.map().len() > 10, "a log to rewrite");
        let mut meta = txn.open_table(super::legacy::META).expect("meta");
        for (key, value) in [("vote", &log.vote), ("committed", &log.committed), ("last_purged", &log.purged)] {
            if let Some(value) = value {
                meta.insert(key, value.as_slice()).expect("meta insert");
            }
        }
    }
    txn.commit().expect("commit");
    drop(db);
    std::fs::remove_file(dir.join(super::LOG_FILE)).expect("remove the new log");
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
    rewrite_as_format_1_redb(dir.path());

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
    // The redb log was moved into the new file and is gone.
    assert!(!dir.path().join(super::legacy::LEGACY_LOG_FILE).exists(), "the redb log is removed once moved");
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
        message.contains("raft-log.wal: entry 1") && message.contains(&format!("format version {newer}")),
        "{message}"
    );
    assert!(message.contains(&format!("up to {}", crate::raft::envelope::LOG_ENTRY_VERSION)), "{message}");
}

/// The size a replay of the log's file finds: the oracle the running totals are held to.
fn scanned_size(dir: &std::path::Path) -> super::LogSize {
    let (_, log) = replayed(dir);
    let entries = log.entries.map();
    let last_index = entries.last_key_value().map_or(0, |(index, _)| *index);
    super::LogSize { entries: entries.len() as u64, bytes: log.entries.bytes(), last_index }
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
    // Hold the writer until the test lets go, so every append below queues behind it.
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let held = {
        let log = log.clone();
        tokio::spawn(async move {
            log.hold_writer(move || {
                entered_tx.send(()).expect("the test waits");
                gate.recv().expect("the test releases");
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
    // The held write, then one write for all fifty appends queued behind it.
    assert_eq!(log.commits(), commits_before + 2);
    drop(log);
    closed.await.expect("closed");
    assert_eq!(scanned_size(dir.path()).entries, 50, "every append reached the file");
}

/// Opens the log in `dir`, appends entries `indexes` (each valued `value`), and closes it.
async fn append_closed(dir: &std::path::Path, indexes: std::ops::RangeInclusive<u64>, value: &str) {
    let (log, closed) = LogStore::open(Some(dir)).expect("open log");
    for index in indexes {
        log.append_before_start(entry_at(index, value)).await.expect("append");
    }
    drop(log);
    closed.await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_a_crash_cut_short_is_dropped_and_the_log_goes_on() {
    use openraft::RaftLogReader;
    let dir = tempfile::tempdir().unwrap();
    append_closed(dir.path(), 1..=5, "value").await;
    let path = dir.path().join(super::LOG_FILE);
    let whole = std::fs::metadata(&path).unwrap().len();
    // The last record's last bytes never reached the disk.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(whole - 3).unwrap();
    let (mut log, closed) = LogStore::open(Some(dir.path())).expect("open a cut log");
    assert_eq!(
        log.try_get_log_entries(1..=10).await.unwrap(),
        (1..=4).map(|i| entry_at(i, "value")).collect::<Vec<_>>()
    );
    assert_eq!(log.size().last_index, 4);
    log.append_before_start(entry_at(5, "again")).await.expect("append after the cut");
    drop(log);
    closed.await.expect("closed");
    // A write the crash left as blocks the file grew by, some never written (zeros), some written: cut the same way.
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, &[0; 50]).unwrap();
    std::io::Write::write_all(&mut file, &[0xab; 50]).unwrap();
    drop(file);
    let (mut log, closed) = LogStore::open(Some(dir.path())).expect("open a log with a torn write at its end");
    let mut expected: Vec<Entry> = (1..=4).map(|i| entry_at(i, "value")).collect();
    expected.push(entry_at(5, "again"));
    assert_eq!(log.try_get_log_entries(1..=10).await.unwrap(), expected);
    // And a last record whose bytes were not all written (its check fails), zeros after it.
    log.append_before_start(entry_at(6, "torn")).await.expect("append");
    let size = log.size();
    drop(log);
    closed.await.expect("closed");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0; 4], len - 6).unwrap();
    file.set_len(len + 4096).unwrap();
    drop(file);
    let (mut log, closed) = LogStore::open(Some(dir.path())).expect("open a log with a torn last record");
    assert_eq!(log.try_get_log_entries(1..=10).await.unwrap(), expected);
    assert_eq!(log.size().last_index, 5);
    assert!(log.size().bytes < size.bytes);
    let size = log.size();
    drop(log);
    closed.await.expect("closed");
    assert_eq!(scanned_size(dir.path()), size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_a_crash_does_not_leave_is_refused_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    append_closed(dir.path(), 1..=3, "value").await;
    let path = dir.path().join(super::LOG_FILE);
    let before = std::fs::read(&path).unwrap();
    // A flipped byte in the first record's body: the records after it are whole.
    let mut damaged = before.clone();
    let at = usize::try_from(super::wal::HEADER_LEN).unwrap() + 14;
    damaged[at] ^= 0xff;
    std::fs::write(&path, &damaged).unwrap();
    let err = LogStore::open(Some(dir.path())).err().expect("damage in the middle must not be cut");
    let message = err.to_string();
    assert!(
        message.contains("raft-log.wal") && message.contains("is damaged, and a whole record follows it"),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing was cut");
    // A damaged length (the head's own check catches it) is refused the same way, not read as the file's end.
    let mut damaged = before;
    damaged[usize::try_from(super::wal::HEADER_LEN).unwrap() + 2] ^= 0x10;
    std::fs::write(&path, &damaged).unwrap();
    let err = LogStore::open(Some(dir.path())).err().expect("a damaged length must not be cut");
    assert!(err.to_string().contains("is damaged, and a whole record follows it"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing was cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_a_kind_this_build_does_not_know_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    append_closed(dir.path(), 1..=2, "value").await;
    let path = dir.path().join(super::LOG_FILE);
    let record = super::wal::framed(super::wal::salt_of(&std::fs::read(&path).unwrap()), &[99u8, 1, 2, 3]);
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, &record).unwrap();
    drop(file);
    let len = std::fs::metadata(&path).unwrap().len();
    let err = LogStore::open(Some(dir.path())).err().expect("a newer record must not be read past");
    assert!(err.to_string().contains("written by a newer roster"), "{err}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "nothing was cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redb_log_is_moved_with_its_vote_committed_pointer_and_purge_point() {
    use openraft::storage::RaftLogStorage;
    use openraft::{RaftLogReader, Vote};
    let dir = tempfile::tempdir().unwrap();
    let vote: crate::raft::Vote = Vote::new(7, 3);
    let purged = entry_at(2, "").log_id;
    let committed = Some(entry_at(5, "").log_id);
    {
        let db = redb::Database::create(dir.path().join(super::legacy::LEGACY_LOG_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut logs = txn.open_table(super::legacy::LOGS).unwrap();
            for index in 3..=6 {
                logs.insert(index, super::encode(&entry_at(index, "old")).unwrap().as_slice()).unwrap();
            }
            let mut meta = txn.open_table(super::legacy::META).unwrap();
            meta.insert("vote", super::encode(&vote).unwrap().as_slice()).unwrap();
            meta.insert("committed", super::encode(&committed).unwrap().as_slice()).unwrap();
            meta.insert("last_purged", super::encode(&purged).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let (mut log, _closed) = LogStore::open(Some(dir.path())).expect("open a data dir with a redb log");
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), committed);
    let state = log.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(purged), Some(entry_at(6, "").log_id)));
    let entries = log.try_get_log_entries(0..=10).await.unwrap();
    assert_eq!(entries, (3..=6).map(|i| entry_at(i, "old")).collect::<Vec<_>>());
    assert!(!dir.path().join(super::legacy::LEGACY_LOG_FILE).exists(), "the redb log is removed once moved");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join(super::LOG_FILE)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the log holds every value written: owner only");
}

/// A log opened in `dir` holding entries 1 to 400 of a 1 KiB value each (past `COMPACT_AT` twice over), and the value.
async fn log_of_400_kib(dir: &std::path::Path) -> (LogStore, tokio::sync::oneshot::Receiver<()>, String) {
    let (log, closed) = LogStore::open(Some(dir)).expect("open log");
    let value = "v".repeat(1024);
    for index in 1..=400 {
        log.append_before_start(entry_at(index, &value)).await.expect("append");
    }
    (log, closed, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mostly_purged_log_is_rewritten_smaller_and_reads_the_same() {
    use openraft::RaftLogReader;
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::LOG_FILE);
    let (mut log, closed, value) = log_of_400_kib(dir.path()).await;
    let full = std::fs::metadata(&path).unwrap().len();
    assert!(full > 2 * super::writer::COMPACT_AT, "a log past the compaction size: {full}");
    log.purge(entry_at(390, "").log_id).await.expect("purge");
    // The writer compacts after answering the purge; the next job it takes waits for that.
    log.hold_writer(|| ()).await.expect("the writer is free again");
    let compacted = std::fs::metadata(&path).unwrap().len();
    assert!(compacted < full / 10, "{compacted} bytes left of {full}");
    let expected: Vec<Entry> = (391..=400).map(|i| entry_at(i, &value)).collect();
    assert_eq!(log.try_get_log_entries(0..=400).await.unwrap(), expected);
    // The log goes on in the new file, and all of it reads back after a restart.
    log.append_before_start(entry_at(401, "after")).await.expect("append after compacting");
    let size = log.size();
    drop(log);
    closed.await.expect("closed");
    assert_eq!(scanned_size(dir.path()), size);
    let (mut log, _closed) = LogStore::open(Some(dir.path())).expect("reopen log");
    let mut expected = expected;
    expected.push(entry_at(401, "after"));
    assert_eq!(log.try_get_log_entries(0..=500).await.unwrap(), expected);
    assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, Some(entry_at(390, "").log_id));
    assert!(!dir.path().join("raft-log.wal.tmp").exists(), "no temporary file is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_a_log_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, _closed) = LogStore::open(Some(dir.path())).expect("open log");
    let err = LogStore::open(Some(dir.path())).err().expect("a log is written by one store at a time");
    assert!(err.to_string().contains("is in use by another roster process"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_log_a_crash_interrupted_is_made_again_and_another_file_is_refused() {
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    // A new log is written beside where it goes and renamed into place: a crash leaves only its unfinished file.
    std::fs::write(dir.path().join("raft-log.wal.tmp"), &super::wal::header(7)[..5]).unwrap();
    let (mut log, closed) = LogStore::open(Some(dir.path())).expect("open a dir with an unfinished new log");
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, None);
    log.append_before_start(entry_at(1, "v")).await.expect("append");
    drop(log);
    closed.await.expect("closed");
    assert_eq!(scanned_size(dir.path()).entries, 1);
    assert!(!dir.path().join("raft-log.wal.tmp").exists());

    for not_a_log in [&b"SQLite format 3\0 and more, more than a header's length"[..], &super::wal::header(7)[..5]] {
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(super::LOG_FILE), not_a_log).unwrap();
        let err = LogStore::open(Some(other.path())).err().expect("not a log");
        assert!(err.to_string().contains("is not a roster Raft log"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_append_is_written_as_records_each_synced_and_a_torn_last_one_loses_only_itself() {
    use openraft::RaftLogReader;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::LOG_FILE);
    let (mut log, closed) = LogStore::open(Some(dir.path())).expect("open log");
    let value = "v".repeat(1024);
    let (tx, rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
    // 200 KiB of entries in one append: more than one record's worth in tests (64 KiB).
    log.append((1..=200).map(|i| entry_at(i, &value)), IOFlushed::signal(tx)).await.expect("append");
    rx.await.expect("reported").expect("durable");
    let expected: Vec<Entry> = (1..=200).map(|i| entry_at(i, &value)).collect();
    assert_eq!(log.try_get_log_entries(1..=200).await.unwrap(), expected);
    drop(log);
    closed.await.expect("closed");
    // A crash in the last record's write: the records before it were synced and stay.
    let whole = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(whole - 3).unwrap();
    let (mut log, _closed) = LogStore::open(Some(dir.path())).expect("open a log with a torn last record");
    let kept = log.try_get_log_entries(1..=200).await.unwrap();
    assert!(kept.len() >= 100 && kept.len() < 200, "kept {} entries", kept.len());
    assert_eq!(kept, expected[..kept.len()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_to_while_it_is_compacted_reads_the_same_after_and_after_a_restart() {
    use openraft::RaftLogReader;
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::LOG_FILE);
    let (mut log, closed, value) = log_of_400_kib(dir.path()).await;
    let salt_before = super::wal::salt_of(&std::fs::read(&path).unwrap());
    // A vote and a committed pointer (carried by the next append) before the compaction starts, in its fresh header.
    log.save_vote(&crate::raft::Vote::new(5, 1)).await.expect("vote");
    log.save_committed(Some(entry_at(300, "").log_id)).await.expect("committed");
    log.append_before_start(entry_at(400, &value)).await.expect("append carrying the pointer");
    // The compaction's thread copies the live entries, then waits here while the log goes on being written.
    let (release, gate) = std::sync::mpsc::channel();
    *log.shared.compaction_gate.lock().unwrap() = Some(gate);
    log.purge(entry_at(380, "").log_id).await.expect("purge, which starts the compaction");
    // Appends (more than the writer is left to copy, so the compaction's thread copies some), a truncation into
    // them and entries written again over it, a vote, and a purge past entries the compaction already copied.
    for index in 401..=700 {
        log.append_before_start(entry_at(index, &value)).await.expect("append during the compaction");
    }
    log.truncate_after(Some(entry_at(650, "").log_id)).await.expect("truncate");
    for index in 651..=660 {
        log.append_before_start(entry_at(index, "again")).await.expect("append after the truncation");
    }
    let vote = crate::raft::Vote::new(7, 2);
    log.save_vote(&vote).await.expect("vote");
    let committed = Some(entry_at(640, "").log_id);
    log.save_committed(committed).await.expect("committed");
    log.append_before_start(entry_at(660, "again")).await.expect("an append carrying the pointer");
    log.purge(entry_at(390, "").log_id).await.expect("purge during the compaction");
    let old_len = std::fs::metadata(&path).unwrap().len();
    release.send(()).expect("the compaction waits");
    // Racing the compaction's last rounds: these land in its thread's copy or in the writer's, either is right.
    for index in 661..=670 {
        log.append_before_start(entry_at(index, "late")).await.expect("append");
    }
    log.hold_writer(|| ()).await.expect("the compaction is installed");

    let compacted = std::fs::metadata(&path).unwrap().len();
    assert_ne!(super::wal::salt_of(&std::fs::read(&path).unwrap()), salt_before, "a new file is the log");
    assert!(compacted < old_len * 7 / 10, "{compacted} bytes left of {old_len}");
    let runs = log.shared.compaction_thread_runs.load(std::sync::atomic::Ordering::SeqCst);
    assert!(runs >= 1, "the compaction's own thread copied records written during it");
    let mut expected: Vec<Entry> = (391..=650).map(|i| entry_at(i, &value)).collect();
    expected.extend((651..=660).map(|i| entry_at(i, "again")));
    expected.extend((661..=670).map(|i| entry_at(i, "late")));
    assert_eq!(log.try_get_log_entries(0..=1000).await.unwrap(), expected);
    log.append_before_start(entry_at(671, "after")).await.expect("append after the compaction");
    expected.push(entry_at(671, "after"));
    let size = log.size();
    drop(log);
    closed.await.expect("closed");
    assert_eq!(scanned_size(dir.path()), size);
    let (mut log, _closed) = LogStore::open(Some(dir.path())).expect("reopen log");
    assert_eq!(log.try_get_log_entries(0..=1000).await.unwrap(), expected);
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), committed);
    assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, Some(entry_at(390, "").log_id));
    assert!(!dir.path().join("raft-log.wal.tmp").exists(), "no temporary file is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_log_during_a_compaction_leaves_the_old_file_and_no_temporary_one() {
    use openraft::RaftLogReader;
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    let (mut log, closed, value) = log_of_400_kib(dir.path()).await;
    // The compaction's thread copies the live entries and is held there, never let go.
    let (_held, gate) = std::sync::mpsc::channel::<()>();
    *log.shared.compaction_gate.lock().unwrap() = Some(gate);
    log.purge(entry_at(380, "").log_id).await.expect("purge, which starts the compaction");
    // The writer hands the gate to the compaction's thread as it starts it, just after answering the purge.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while log.shared.compaction_gate.lock().unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "the compaction never started");
        tokio::task::yield_now().await;
    }
    let size = log.size();
    drop(log);
    // The writer cancels the compaction and waits for its thread before the log counts as closed.
    closed.await.expect("closed once the compaction's thread is done");
    assert!(!dir.path().join("raft-log.wal.tmp").exists(), "the unfinished file is removed");
    assert_eq!(scanned_size(dir.path()), size);
    let (mut log, _closed) = LogStore::open(Some(dir.path())).expect("reopen log");
    let expected: Vec<Entry> = (381..=400).map(|i| entry_at(i, &value)).collect();
    assert_eq!(log.try_get_log_entries(0..=500).await.unwrap(), expected);
}

/// The run `limited_get_log_entries` may return: bytes up to the limit, and always the first entry.
#[test]
fn a_limited_read_keeps_the_longest_run_within_the_limit_and_at_least_one_entry() {
    use super::writer::Stored;
    let bytes = |n: usize| -> Arc<[u8]> { Arc::from(vec![0u8; n]) };
    let stored: Vec<(u64, Stored)> = (1..=3).map(|index| (index, Stored::Memory(bytes(10)))).collect();
    // A pending entry stands for the stored one at its index, as it does when read.
    let pending = vec![(2, bytes(30))];
    assert_eq!(super::last_within(&pending, &stored, 25), Some(1));
    assert_eq!(super::last_within(&pending, &stored, 40), Some(2));
    assert_eq!(super::last_within(&pending, &stored, 49), Some(2));
    assert_eq!(super::last_within(&pending, &stored, 50), Some(3));
    assert_eq!(super::last_within(&[], &stored, 5), Some(1), "the first entry even when it alone is over");
    assert_eq!(super::last_within(&[], &[], 5), None);
}

/// What replication reads for a follower that is behind: one AppendEntries' worth of large entries, not the 1 024
/// openraft asks for; small entries all; and a plain read is never cut. On disk and in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_reads_one_batch_of_large_entries_and_every_small_one() {
    use openraft::RaftLogReader;
    for on_disk in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _closed) = LogStore::open(on_disk.then(|| dir.path())).expect("open log");
        let large = "x".repeat(1 << 20);
        for index in 1..=30 {
            log.append_before_start(entry_at(index, &large)).await.expect("append");
        }
        let size = postcard::experimental::serialized_size(&entry_at(1, &large)).expect("size");
        let limit = crate::raft::wire::APPEND_BATCH_BYTES;
        let fit = limit / size;
        assert!((1..30).contains(&fit), "the test needs a limit inside the range: {fit} entries of {size} bytes");

        let read = log.limited_get_log_entries(1, 31).await.expect("limited read");
        let indexes: Vec<u64> = read.iter().map(|entry| entry.log_id.index()).collect();
        assert_eq!(indexes, (1..=fit as u64).collect::<Vec<_>>(), "on disk: {on_disk}");
        assert_eq!(read[0], entry_at(1, &large), "the entries read are the ones written");
        let read = log.limited_get_log_entries(29, 31).await.expect("limited read at the end");
        assert_eq!(read.iter().map(|entry| entry.log_id.index()).collect::<Vec<_>>(), vec![29, 30]);
        assert_eq!(log.try_get_log_entries(1..=30).await.expect("read").len(), 30, "a plain read is whole");

        for index in 31..=31 + 1023 {
            log.append_before_start(entry_at(index, "small")).await.expect("append");
        }
        let read = log.limited_get_log_entries(31, 31 + 1024).await.expect("limited read of small entries");
        assert_eq!(read.len(), 1024, "on disk: {on_disk}");
    }
}
