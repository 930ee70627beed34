//! Coordinate updates batched as Consul's `Coordinate.Update` endpoint batches them: an update is checked and queued
//! (the newest per node wins), and every 5 s the queue goes into the log as `CoordinateBatchUpdate`s of at most 128
//! updates, at most 5 of them; what is left beyond is dropped with a warning, the next round brings newer ones.
//! Every agent sends its coordinate every 15 s or more, so this turns one Raft entry per agent and round into a
//! handful per period.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use roster_kv::{Command, CommandResult, MAX_COORDINATE_BATCH, NodeCoordinate};
use tokio_util::sync::CancellationToken;

use crate::server::Inner;

/// How often the queue is flushed (Consul's `CoordinateUpdatePeriod`).
pub(crate) const UPDATE_PERIOD: Duration = Duration::from_secs(5);
/// Batches per flush (Consul's `CoordinateUpdateMaxBatches`).
const MAX_BATCHES: usize = 5;

/// The updates waiting for the next flush, by (node, segment).
#[derive(Default)]
pub(crate) struct CoordinateQueue(Mutex<BTreeMap<(String, String), NodeCoordinate>>);

impl CoordinateQueue {
    /// Checks `updates` as apply will and queues them; a bad one refuses all, with nothing queued.
    pub(crate) fn push(&self, updates: &[NodeCoordinate]) -> CommandResult {
        if updates.len() > MAX_COORDINATE_BATCH {
            return CommandResult::Rejected(format!(
                "coordinate batch of {} updates is over the limit of {MAX_COORDINATE_BATCH}",
                updates.len()
            ));
        }
        if let Some(why) = updates.iter().find_map(|u| roster_kv::check_coordinate_update(u).err()) {
            return CommandResult::Rejected(why);
        }
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for update in updates {
            queue.insert((update.node.clone(), update.segment.clone()), update.clone());
        }
        CommandResult::Bool(true)
    }

    /// Empties the queue into at most `MAX_BATCHES` batches; returns them and how many updates were dropped.
    fn take(&self) -> (Vec<Vec<NodeCoordinate>>, usize) {
        let queued = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        let total = queued.len();
        let mut batches: Vec<Vec<NodeCoordinate>> = Vec::new();
        for update in queued.into_values().take(MAX_BATCHES * MAX_COORDINATE_BATCH) {
            match batches.last_mut() {
                Some(batch) if batch.len() < MAX_COORDINATE_BATCH => batch.push(update),
                _ => batches.push(vec![update]),
            }
        }
        let kept: usize = batches.iter().map(Vec::len).sum();
        (batches, total - kept)
    }
}

impl Inner {
    /// Flushes the coordinate queue every `UPDATE_PERIOD` until `cancel`.
    pub(crate) async fn run_coordinate_batches(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(UPDATE_PERIOD) => {}
            }
            let (batches, dropped) = self.coordinates.take();
            if dropped > 0 {
                tracing::warn!(dropped, "coordinate updates over the batch limit were discarded");
            }
            for updates in batches {
                let cmd = Command::CoordinateBatchUpdate { updates };
                if let Err(error) = self.write_now(cmd).await {
                    // No leader right now: the agents send newer coordinates next round.
                    tracing::debug!(%error, "coordinate batch not written");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The queue's checks, de-duplication and limits.
    use super::*;
    use roster_kv::{COORDINATE_DIMENSIONS, Coordinate};

    fn update(node: &str) -> NodeCoordinate {
        let coord = Coordinate { vec: vec![0.0; COORDINATE_DIMENSIONS], error: 1.0, adjustment: 0.0, height: 1e-5 };
        NodeCoordinate { node: node.into(), segment: String::new(), coord }
    }

    #[test]
    fn the_newest_update_per_node_is_flushed_in_batches_of_128_and_at_most_five() {
        let queue = CoordinateQueue::default();
        let mut newer = update("n0");
        newer.coord.error = 0.5;
        assert_eq!(queue.push(&[update("n0"), newer]), CommandResult::Bool(true));
        let (batches, dropped) = queue.take();
        assert_eq!((batches.len(), dropped), (1, 0));
        assert_eq!(batches[0].len(), 1);
        assert_eq!(batches[0][0].coord.error, 0.5);
        assert!(queue.take().0.is_empty(), "taken means gone");

        for chunk in 0..6 {
            let updates: Vec<_> = (0..128).map(|i| update(&format!("n{chunk}-{i}"))).collect();
            queue.push(&updates);
        }
        let (batches, dropped) = queue.take();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [128; 5]);
        assert_eq!(dropped, 128);
    }

    #[test]
    fn a_bad_update_refuses_the_whole_push() {
        let queue = CoordinateQueue::default();
        let mut bad = update("b");
        bad.coord.vec.pop();
        assert!(matches!(queue.push(&[update("a"), bad]), CommandResult::Rejected(_)));
        let too_many: Vec<_> = (0..129).map(|i| update(&format!("n{i}"))).collect();
        assert!(matches!(queue.push(&too_many), CommandResult::Rejected(_)));
        assert!(queue.take().0.is_empty(), "nothing queued");
    }
}
