//! The Raft state machine: applies committed entries to the shared `Replica`, builds and installs snapshots.

use std::io;
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use roster_kv::State;

use super::snapshot_store::SnapshotStore;
use super::{AppliedMeta, LogCommand, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::replica::Replica;

/// The state machine openraft drives. Clones share the replica and the snapshot store.
#[derive(Clone)]
pub(crate) struct StateMachine {
    /// The applied state, shared with readers.
    replica: Arc<Replica>,
    /// The current snapshot.
    snapshots: Arc<SnapshotStore>,
}

impl StateMachine {
    /// A state machine over `replica`, snapshotting into `snapshots`.
    pub(crate) fn new(replica: Arc<Replica>, snapshots: Arc<SnapshotStore>) -> StateMachine {
        StateMachine { replica, snapshots }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // State and meta are read under one lock, so the snapshot is exactly "applied up to last_applied".
        let create_start = std::time::Instant::now();
        let (meta, data) = self.replica.read_applied(|applied| {
            let meta = SnapshotMeta {
                last_log_id: applied.meta.last_applied,
                last_membership: applied.meta.last_membership.clone(),
            };
            (meta, applied.state.encode_snapshot())
        });
        let persist_start = std::time::Instant::now();
        self.snapshots.save(&meta, &data).await?;
        crate::telemetry::snapshot_built(create_start, persist_start);
        tracing::info!(last_log_id = ?meta.last_log_id, n_bytes = data.len(), "snapshot built");
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok(self.replica.read_applied(|applied| (applied.meta.last_applied, applied.meta.last_membership.clone())))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // Gather the batch first: the state lock is synchronous and must not be held across an await.
        let batch: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        let Some((last, _)) = batch.last() else { return Ok(()) };
        // An entry this server cannot read must stop it (a storage error is fatal to openraft) rather than be
        // skipped, or this replica would diverge from the servers that applied it.
        if let Some(unreadable) = batch.iter().find_map(|(entry, _)| LogCommand::unreadable(entry)) {
            let why = format!("cannot apply log entry: {}", unreadable.why);
            tracing::error!("{why}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        let last_index = last.log_id.index();
        let mut responses = Vec::with_capacity(batch.len());
        let mut changes = Vec::new();
        let mut restored = false;
        self.replica.write(|applied| {
            for (entry, responder) in batch {
                let index = entry.log_id.index();
                let result = match &entry.payload {
                    EntryPayload::Normal(LogCommand::Command(command)) => {
                        let (result, changed) = applied.state.apply_command(index, command);
                        restored |= changed.restored;
                        if !changed.is_empty() {
                            changes.push(changed);
                        }
                        result
                    }
                    // Refused before the lock was taken; an arm only because the match must be exhaustive.
                    EntryPayload::Normal(LogCommand::Unreadable(unreadable)) => {
                        roster_kv::Outcome::Result(roster_kv::CommandResult::Rejected(unreadable.why.clone()))
                    }
                    EntryPayload::Blank => {
                        applied.state.apply_noop(index);
                        roster_kv::Outcome::Result(roster_kv::CommandResult::Bool(true))
                    }
                    EntryPayload::Membership(membership) => {
                        applied.state.apply_noop(index);
                        applied.meta.last_membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                        roster_kv::Outcome::Result(roster_kv::CommandResult::Bool(true))
                    }
                };
                applied.meta.last_applied = Some(entry.log_id);
                if let Some(responder) = responder {
                    responses.push((responder, result));
                }
            }
        });
        // Answer clients and wake watchers only after the lock is released and the state is visible.
        for (responder, result) in responses {
            responder.send(result);
        }
        if restored {
            // Bump the reset generation before waking anyone, so every woken query sees the state was replaced and
            // answers at once, whatever its index says.
            self.replica.publish_reset(last_index);
        }
        self.replica.publish(&changes, last_index);
        crate::telemetry::applied_index(last_index);
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> Result<(), io::Error> {
        let state = State::decode_snapshot(&snapshot).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Persist before adopting: the log before this snapshot may be purged once openraft sees it installed.
        self.snapshots.save(meta, &snapshot).await?;
        let index = meta.last_log_id.as_ref().map_or(0, |id| id.index());
        self.replica.write(|applied| {
            applied.state = state;
            applied.meta =
                AppliedMeta { last_applied: meta.last_log_id, last_membership: meta.last_membership.clone() };
        });
        self.replica.publish_reset(index);
        crate::telemetry::applied_index(index);
        tracing::info!(last_log_id = ?meta.last_log_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.snapshots.current().await?.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
