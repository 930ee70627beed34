//! The size limit by message type reads the right byte: postcard's variant index of each `Request`.

use super::*;

// The small limit must refuse an 8 MiB client request; AppendEntries must hold a full batch and one more max entry,
// and a chunk must hold its data and a snapshot's meta.
const _: () = assert!(SMALL_BODY < 8 << 20);
const _: () = assert!(APPEND_ENTRIES_BODY > APPEND_BATCH_BYTES + MAX_ENTRY_BYTES);
const _: () = assert!(SNAPSHOT_CHUNK_BODY > SNAPSHOT_CHUNK && SNAPSHOT_CHUNK_BODY < 8 << 20);

fn first_byte(request: &Request) -> u8 {
    postcard::to_allocvec(request).expect("encodes")[0]
}

fn chunk(data: Vec<u8>) -> Request {
    Request::SnapshotChunk(SnapshotChunk {
        vote: Vote::new(1, 1),
        meta: super::super::SnapshotMeta::default(),
        id: 7,
        offset: 0,
        data,
        done: true,
    })
}

#[test]
fn each_large_message_has_its_own_limit_and_append_entries_is_large_from_servers_only() {
    let vote = Vote::new(1, 1);
    let append = Request::AppendEntries(openraft::raft::AppendEntriesRequest {
        vote,
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    });
    assert_eq!(body_limit(first_byte(&append), true), APPEND_ENTRIES_BODY);
    assert_eq!(body_limit(first_byte(&append), false), SMALL_BODY, "from a non-server");
    let snapshot = Request::FullSnapshot { vote, meta: super::super::SnapshotMeta::default(), data: vec![1; 10] };
    for whole_or_chunk in [&snapshot, &chunk(vec![1; 10])] {
        for from_server in [true, false] {
            assert_eq!(body_limit(first_byte(whole_or_chunk), from_server), SNAPSHOT_CHUNK_BODY);
        }
    }
    assert_eq!(first_byte(&chunk(Vec::new())), SNAPSHOT_CHUNK_TAG);
    let small = [
        Request::Status,
        Request::ReadIndex(ReadPolicy::Lease),
        Request::SessionRenew("s".into()),
        Request::ClientSessionRenewAs { token: String::new(), id: "s".into() },
        Request::ClientWrite(roster_kv::Command::KvDelete { key: "k".into() }),
    ];
    for request in &small {
        assert_eq!(body_limit(first_byte(request), true), SMALL_BODY, "{}", request.name());
    }
}

#[test]
fn a_full_chunk_with_a_seven_server_membership_fits_its_limit() {
    use openraft::{BasicNode, Membership};
    let nodes: std::collections::BTreeMap<u64, BasicNode> =
        (1..=7).map(|id| (id, BasicNode::new(format!("[fd00:1234:5678::{id}]:8300")))).collect();
    let voters = std::collections::BTreeSet::from_iter(1..=7);
    let membership = Membership::new(vec![voters], nodes).expect("a valid membership");
    let meta = super::super::SnapshotMeta {
        last_log_id: None,
        last_membership: super::super::StoredMembership::new(None, membership),
    };
    let request = Request::SnapshotChunk(SnapshotChunk {
        vote: Vote::new(u64::MAX, u64::MAX),
        meta,
        id: u64::MAX,
        offset: u64::MAX,
        data: vec![0xff; SNAPSHOT_CHUNK],
        done: true,
    });
    let body = postcard::to_allocvec(&request).expect("encodes");
    assert!(body.len() <= body_limit(body[0], true), "{} bytes", body.len());
}
