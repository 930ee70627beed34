//! The size limit by message type reads the right byte: postcard's variant index of each `Request`.

use super::*;

// The small limit must refuse an 8 MiB client request; the large one must hold a snapshot of tens of MiB.
const _: () = assert!(SMALL_BODY < 8 << 20 && LARGE_BODY >= 64 << 20);

fn first_byte(request: &Request) -> u8 {
    postcard::to_allocvec(request).expect("encodes")[0]
}

#[test]
fn the_large_limit_applies_to_append_entries_and_full_snapshot_from_servers_only() {
    let vote = Vote::new(1, 1);
    let append = Request::AppendEntries(openraft::raft::AppendEntriesRequest {
        vote,
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    });
    let snapshot = Request::FullSnapshot { vote, meta: super::super::SnapshotMeta::default(), data: vec![1; 10] };
    for large in [&append, &snapshot] {
        let tag = first_byte(large);
        assert_eq!(body_limit(tag, true), LARGE_BODY, "{}", large.name());
        assert_eq!(body_limit(tag, false), SMALL_BODY, "{} from a non-server", large.name());
    }
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
