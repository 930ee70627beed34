//! The receiving side of a streamed snapshot: assembles the `SnapshotChunk`s of one stream into a whole snapshot.
//!
//! Sans-IO, so its rules are unit-tested: one stream at a time (a new stream at offset 0 replaces an unfinished one),
//! offsets contiguous, the meta the same on every chunk. Memory is one snapshot's bytes at most: the one being
//! assembled, which is dropped when a newer stream starts, when a chunk breaks it, or when this node's vote passes the
//! stream's (`discard_older_than`). A stream whose leader vanished mid-way is held until one of those happens; it is
//! never larger than the snapshot this node will next install.

use super::wire::SnapshotChunk;
use super::{Snapshot, SnapshotMeta, Vote};

/// A stream being assembled.
struct Partial {
    vote: Vote,
    id: u64,
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// Holds the unfinished stream, if any.
#[derive(Default)]
pub(crate) struct Assembler {
    partial: Option<Partial>,
}

/// Why a chunk was refused. The sender starts its stream over.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChunkError {
    /// The chunk does not continue the stream being assembled (none is, or another one is).
    #[error("snapshot chunk of stream {id:x} at offset {offset}, but {expected}")]
    OutOfOrder {
        /// The chunk's stream.
        id: u64,
        /// The chunk's offset.
        offset: u64,
        /// What was expected instead.
        expected: String,
    },
    /// A chunk of the stream carried other meta than its first chunk.
    #[error("snapshot chunk of stream {0:x} describes another snapshot than the stream's first chunk")]
    MetaChanged(u64),
}

/// What an accepted chunk completed.
#[derive(Debug)]
pub(crate) enum Assembled {
    /// More chunks are expected.
    More,
    /// The last chunk arrived: the leader's vote and the whole snapshot, to install.
    Done(Vote, Snapshot),
}

impl Assembler {
    /// Takes `chunk` into its stream. A chunk at offset 0 starts a stream (replacing an unfinished one); any other must
    /// continue the current stream exactly. A refused chunk that belonged to the current stream ends it.
    pub(crate) fn accept(&mut self, chunk: SnapshotChunk) -> Result<Assembled, ChunkError> {
        let SnapshotChunk { vote, meta, id, offset, data, done } = chunk;
        let ours = self.partial.as_ref().is_some_and(|p| p.vote == vote && p.id == id);
        if offset == 0 {
            if ours {
                // The same stream restarted at 0 would leave its bytes twice: a sender bug, refused.
                self.partial = None;
                return Err(ChunkError::OutOfOrder { id, offset, expected: "the stream had begun".into() });
            }
            self.partial = Some(Partial { vote, id, meta: meta.clone(), data: Vec::new() });
        } else if !ours {
            let expected = match &self.partial {
                Some(p) => format!("stream {:x} is being assembled", p.id),
                None => "no stream is being assembled".to_owned(),
            };
            // Not ours to end: a late chunk of an abandoned stream must not disturb the current one.
            return Err(ChunkError::OutOfOrder { id, offset, expected });
        }
        let Some(partial) = self.partial.as_mut() else { unreachable!("a stream was found or started above") };
        let have = partial.data.len() as u64;
        if offset != have {
            self.partial = None;
            return Err(ChunkError::OutOfOrder { id, offset, expected: format!("the stream has {have} bytes") });
        }
        if partial.meta != meta {
            self.partial = None;
            return Err(ChunkError::MetaChanged(id));
        }
        partial.data.extend_from_slice(&data);
        if !done {
            return Ok(Assembled::More);
        }
        let Some(Partial { vote, meta, data, .. }) = self.partial.take() else {
            unreachable!("the stream was just extended")
        };
        Ok(Assembled::Done(vote, Snapshot { meta, snapshot: data }))
    }

    /// Drops the unfinished stream if its leader's vote is below `vote`: that leader can no longer finish it.
    pub(crate) fn discard_older_than(&mut self, vote: &Vote) {
        if self.partial.as_ref().is_some_and(|p| p.vote < *vote) {
            self.partial = None;
        }
    }

    /// The bytes held for the unfinished stream.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.len())
    }
}

#[cfg(test)]
mod tests;
