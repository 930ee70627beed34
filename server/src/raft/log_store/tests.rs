//! openraft's storage conformance suite, run on the redb log store and our state machine, on disk and in memory.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use roster_kv::State;

use super::LogStore;
use crate::raft::snapshot_store::SnapshotStore;
use crate::raft::state_machine::StateMachine;
use crate::raft::{AppliedMeta, TypeConfig};
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
