//! The assembler's rules: contiguous offsets, one stream at a time, a newer stream or vote replacing an unfinished one.

use super::*;
use crate::raft::{CommittedLeaderId, LogId, StoredMembership};

fn meta(index: u64) -> SnapshotMeta {
    let leader = CommittedLeaderId { term: 1, node_id: 1 };
    SnapshotMeta { last_log_id: Some(LogId::new(leader, index)), last_membership: StoredMembership::default() }
}

fn chunk(vote: Vote, id: u64, offset: u64, data: &[u8], done: bool) -> SnapshotChunk {
    SnapshotChunk { vote, meta: meta(100), id, offset, data: data.to_vec(), done }
}

fn done(result: Result<Assembled, ChunkError>) -> (Vote, Snapshot) {
    match result {
        Ok(Assembled::Done(vote, snapshot)) => (vote, snapshot),
        other => panic!("expected a whole snapshot, got {other:?}"),
    }
}

fn more(result: Result<Assembled, ChunkError>) {
    assert!(matches!(result, Ok(Assembled::More)), "expected more, got {result:?}");
}

#[test]
fn contiguous_chunks_assemble_into_the_snapshot_with_its_vote_and_meta() {
    let vote = Vote::new_committed(3, 1);
    let mut assembler = Assembler::default();
    more(assembler.accept(chunk(vote, 7, 0, b"abc", false)));
    more(assembler.accept(chunk(vote, 7, 3, b"", false)));
    more(assembler.accept(chunk(vote, 7, 3, b"de", false)));
    let (got_vote, snapshot) = done(assembler.accept(chunk(vote, 7, 5, b"f", true)));
    assert_eq!(got_vote, vote);
    assert_eq!(snapshot.snapshot, b"abcdef");
    assert_eq!(snapshot.meta, meta(100));
    assert_eq!(assembler.held(), 0, "nothing is kept once handed over");
    // A one-chunk stream, and an empty snapshot.
    assert_eq!(done(assembler.accept(chunk(vote, 8, 0, b"whole", true))).1.snapshot, b"whole");
    assert_eq!(done(assembler.accept(chunk(vote, 9, 0, b"", true))).1.snapshot, b"");
}

#[test]
fn an_out_of_order_offset_ends_the_stream_and_the_sender_must_start_over() {
    let vote = Vote::new_committed(3, 1);
    let mut assembler = Assembler::default();
    more(assembler.accept(chunk(vote, 7, 0, b"abc", false)));
    // A gap, then a repeat: each refused, and the stream is gone after the first.
    let gap = assembler.accept(chunk(vote, 7, 4, b"e", false));
    assert!(matches!(gap, Err(ChunkError::OutOfOrder { offset: 4, .. })), "{gap:?}");
    assert_eq!(assembler.held(), 0);
    let after = assembler.accept(chunk(vote, 7, 3, b"d", true));
    assert!(matches!(after, Err(ChunkError::OutOfOrder { offset: 3, .. })), "{after:?}");
    // Overlap, and a restart of the same stream at 0, are refused too.
    more(assembler.accept(chunk(vote, 8, 0, b"abc", false)));
    assert!(assembler.accept(chunk(vote, 8, 2, b"cd", false)).is_err());
    more(assembler.accept(chunk(vote, 9, 0, b"abc", false)));
    assert!(assembler.accept(chunk(vote, 9, 0, b"abc", false)).is_err());
    // The new attempt, under a new id, goes through.
    more(assembler.accept(chunk(vote, 10, 0, b"abc", false)));
    assert_eq!(done(assembler.accept(chunk(vote, 10, 3, b"d", true))).1.snapshot, b"abcd");
}

#[test]
fn a_chunk_with_other_meta_ends_the_stream() {
    let vote = Vote::new_committed(3, 1);
    let mut assembler = Assembler::default();
    more(assembler.accept(chunk(vote, 7, 0, b"abc", false)));
    let other = SnapshotChunk { meta: meta(200), ..chunk(vote, 7, 3, b"d", true) };
    assert_eq!(assembler.accept(other).unwrap_err(), ChunkError::MetaChanged(7));
    assert_eq!(assembler.held(), 0);
}

#[test]
fn an_abandoned_stream_is_replaced_by_a_new_one_and_its_late_chunks_do_not_disturb_it() {
    let vote = Vote::new_committed(3, 1);
    let mut assembler = Assembler::default();
    more(assembler.accept(chunk(vote, 7, 0, b"old-", false)));
    more(assembler.accept(chunk(vote, 7, 4, b"bytes", false)));
    // The sender gave up (cancelled, or an error) and starts again under a new id.
    more(assembler.accept(chunk(vote, 8, 0, b"new", false)));
    assert_eq!(assembler.held(), 3, "the abandoned bytes are gone");
    // A late chunk of the abandoned stream is refused and leaves the new one alone.
    assert!(assembler.accept(chunk(vote, 7, 9, b"late", true)).is_err());
    assert_eq!(done(assembler.accept(chunk(vote, 8, 3, b"-bytes", true))).1.snapshot, b"new-bytes");
}

#[test]
fn a_new_leaders_stream_replaces_the_old_leaders_and_a_higher_vote_drops_it() {
    let old = Vote::new_committed(3, 1);
    let new = Vote::new_committed(4, 2);
    let mut assembler = Assembler::default();
    more(assembler.accept(chunk(old, 7, 0, b"old", false)));
    // The same id from another leader is another stream.
    more(assembler.accept(chunk(new, 7, 0, b"new", false)));
    assert!(assembler.accept(chunk(old, 7, 3, b"!", true)).is_err(), "the old leader's chunk is not the new stream");
    // This node's vote moving past the stream's leader drops it; a vote it does not pass keeps it.
    assembler.discard_older_than(&new);
    assert_eq!(assembler.held(), 3);
    assembler.discard_older_than(&Vote::new_committed(5, 3));
    assert_eq!(assembler.held(), 0);
    assert!(assembler.accept(chunk(new, 7, 3, b"!", true)).is_err(), "the dropped stream cannot be finished");
}
