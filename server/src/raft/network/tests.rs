//! The AppendEntries splitter: batches around the byte bound, an entry larger than the bound alone, and the answers
//! openraft gets for a cut batch.

use openraft::EntryPayload;
use roster_kv::Command;

use super::*;
use crate::raft::{CommittedLeaderId, Entry, LogCommand};

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId { term: 2, node_id: 1 }, index)
}

/// An entry at `index` whose value has `len` bytes.
fn entry(index: u64, len: usize) -> Entry {
    let cmd = Command::KvSet { key: format!("k{index}"), value: vec![7; len], flags: 0 };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(LogCommand::Command(cmd)) }
}

fn size(entry: &Entry) -> usize {
    postcard::experimental::serialized_size(entry).expect("encodes")
}

fn request(entries: Vec<Entry>, leader_commit: Option<u64>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(10)),
        entries,
        leader_commit: leader_commit.map(log_id),
    }
}

fn indexes(rpc: &AppendEntriesRequest<TypeConfig>) -> Vec<u64> {
    rpc.entries.iter().map(|e| e.log_id.index()).collect()
}

#[test]
fn a_batch_at_the_bound_goes_whole_and_one_byte_over_it_is_cut_before_the_entry_that_crosses_it() {
    let entries: Vec<Entry> = (11..=14).map(|i| entry(i, 512 << 10)).collect();
    let each = size(&entries[0]);
    assert!(entries.iter().all(|e| size(e) == each), "same-sized entries");
    let bound = 4 * each;

    let (rpc, bytes, cut) = split_batch(request(entries.clone(), Some(14)), bound);
    assert_eq!((indexes(&rpc), bytes, cut), (vec![11, 12, 13, 14], 4 * each, None));
    assert_eq!(rpc.leader_commit, Some(log_id(14)), "an uncut request keeps its commit");

    let (rpc, bytes, cut) = split_batch(request(entries.clone(), Some(14)), bound - 1);
    assert_eq!((indexes(&rpc), bytes, cut), (vec![11, 12, 13], 3 * each, Some(log_id(13))));
    assert_eq!(rpc.prev_log_id, Some(log_id(10)), "the prefix starts where the batch did");
    assert_eq!(rpc.leader_commit, Some(log_id(13)), "commit never passes what the prefix proves");

    // The leader's commit below the cut stays as it is, and so does none.
    let (rpc, _, _) = split_batch(request(entries.clone(), Some(12)), bound - 1);
    assert_eq!(rpc.leader_commit, Some(log_id(12)));
    let (rpc, _, _) = split_batch(request(entries, None), bound - 1);
    assert_eq!(rpc.leader_commit, None);
}

#[test]
fn an_entry_larger_than_the_bound_goes_alone() {
    let small = 100;
    let entries = vec![entry(11, 4 << 20), entry(12, small), entry(13, small)];
    let bound = 1 << 20;
    let (rpc, bytes, cut) = split_batch(request(entries.clone(), Some(13)), bound);
    assert_eq!((indexes(&rpc), bytes, cut), (vec![11], size(&entries[0]), Some(log_id(11))));

    // Behind small entries it waits for the next request, which it then has to itself.
    let entries = vec![entry(11, small), entry(12, 4 << 20), entry(13, small)];
    let (rpc, _, cut) = split_batch(request(entries.clone(), None), bound);
    assert_eq!((indexes(&rpc), cut), (vec![11], Some(log_id(11))));
    let rest = AppendEntriesRequest { prev_log_id: cut, ..request(entries[1..].to_vec(), None) };
    let (rpc, _, cut) = split_batch(rest, bound);
    assert_eq!((indexes(&rpc), cut), (vec![12], Some(log_id(12))));
}

#[test]
fn a_heartbeat_and_a_full_batch_of_small_entries_are_never_cut() {
    let (rpc, bytes, cut) = split_batch(request(Vec::new(), Some(10)), APPEND_BATCH_BYTES);
    assert_eq!((indexes(&rpc), bytes, cut), (vec![], 0, None));
    let entries: Vec<Entry> = (11..11 + 1024).map(|i| entry(i, 7 << 10)).collect();
    let (rpc, _, cut) = split_batch(request(entries, None), APPEND_BATCH_BYTES);
    assert_eq!((rpc.entries.len(), cut), (1024, None));
}

#[test]
fn a_cut_batch_whose_prefix_was_taken_is_partial_success_and_every_other_answer_passes_through() {
    let cut = Some(log_id(13));
    assert_eq!(prefix_answer(AppendEntriesResponse::Success, cut), AppendEntriesResponse::PartialSuccess(cut));
    assert_eq!(prefix_answer(AppendEntriesResponse::Success, None), AppendEntriesResponse::Success);
    assert_eq!(prefix_answer(AppendEntriesResponse::Conflict, cut), AppendEntriesResponse::Conflict);
    let higher = Vote::new_committed(3, 2);
    assert_eq!(
        prefix_answer(AppendEntriesResponse::HigherVote(higher), cut),
        AppendEntriesResponse::HigherVote(higher)
    );
    let partial = AppendEntriesResponse::PartialSuccess(Some(log_id(12)));
    assert_eq!(prefix_answer(partial.clone(), cut), partial);
}

#[test]
fn a_full_batch_has_about_four_seconds_more_than_the_heartbeat_deadline() {
    let ttl = Duration::from_millis(100);
    assert_eq!(append_timeout(ttl, 0), ttl);
    assert_eq!(append_timeout(ttl, APPEND_BATCH_BYTES), ttl + Duration::from_millis(4096));
}
