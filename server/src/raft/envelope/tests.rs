//! Tests of the log payload's format: envelopes round-trip, unversioned entries of format 1 still decode, and a
//! newer version decodes to something that names both versions.

use roster_kv::Command;

use super::{ENVELOPE_TAG, LOG_ENTRY_VERSION};
use crate::raft::LogCommand;

fn commands() -> Vec<Command> {
    vec![
        Command::KvSet { key: "a/b".into(), value: vec![0, 1, 2, 255], flags: 7 },
        Command::KvDeleteTree { prefix: "a/".into() },
        Command::AclRoleDelete { id: "r".into() },
    ]
}

/// An envelope of `version` around `body`, byte by byte as the format describes it: the tag, the version and the
/// body's length as varints, then the body.
fn envelope(version: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = postcard::to_allocvec(&ENVELOPE_TAG).unwrap();
    bytes.extend(postcard::to_allocvec(&version).unwrap());
    bytes.extend(postcard::to_allocvec(&body.len()).unwrap());
    bytes.extend(body);
    bytes
}

#[test]
fn envelopes_round_trip_and_carry_the_version() {
    for cmd in commands() {
        let bytes = postcard::to_allocvec(&LogCommand::Command(cmd.clone())).unwrap();
        assert_eq!(bytes, envelope(LOG_ENTRY_VERSION, &postcard::to_allocvec(&cmd).unwrap()));
        assert_eq!(postcard::from_bytes::<LogCommand>(&bytes).unwrap(), LogCommand::Command(cmd));
    }
}

#[test]
fn unversioned_entries_of_format_1_still_decode() {
    for cmd in commands() {
        // Format 1 wrote the command itself (the old transparent newtype), in the log and on the wire.
        let legacy = postcard::to_allocvec(&cmd).unwrap();
        assert_eq!(postcard::from_bytes::<LogCommand>(&legacy).unwrap(), LogCommand::Command(cmd));
    }
}

#[test]
fn a_newer_version_decodes_to_unreadable_naming_both_versions_and_keeps_what_follows() {
    let body = postcard::to_allocvec(&commands()[0]).unwrap();
    let mut bytes = envelope(LOG_ENTRY_VERSION + 1, &body);
    // Something after the entry (the next field of the message) must still be readable.
    bytes.extend(postcard::to_allocvec(&42u64).unwrap());
    let (decoded, rest) = postcard::take_from_bytes::<LogCommand>(&bytes).unwrap();
    assert_eq!(postcard::from_bytes::<u64>(rest).unwrap(), 42);
    let LogCommand::Unreadable(unreadable) = &decoded else { panic!("decoded {decoded:?}") };
    assert_eq!(unreadable.version, LOG_ENTRY_VERSION + 1);
    let expected =
        format!("format version {} is newer than this server reads (up to {LOG_ENTRY_VERSION})", LOG_ENTRY_VERSION + 1);
    assert!(unreadable.why.contains(&expected), "{}", unreadable.why);
    // Re-encoding keeps the newer server's bytes.
    assert_eq!(postcard::to_allocvec(&decoded).unwrap()[..bytes.len() - rest.len()], bytes[..bytes.len() - rest.len()]);

    // A command this build does not know under a known version is named too, not an opaque failure.
    let garbage = envelope(LOG_ENTRY_VERSION, &[200, 1]);
    let LogCommand::Unreadable(unreadable) = postcard::from_bytes::<LogCommand>(&garbage).unwrap() else {
        panic!("an unknown command decoded")
    };
    assert!(unreadable.why.contains("unknown to this server"), "{}", unreadable.why);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_append_entries_of_a_newer_format_naming_the_versions() {
    use openraft::vote::RaftLeaderId;

    use crate::raft::wire::{Request, Response, WireError};
    use crate::raft::{CommittedLeaderId, Entry, LogId, Unreadable, Vote, call_peer};
    use crate::rpc::{Dialer, Peer};

    let server = crate::server::tests::start(1, None, false).await;
    let peer = Peer::new(server.rpc_addr(), Dialer::plain());
    let newer = LOG_ENTRY_VERSION + 1;
    let unreadable = Unreadable { version: newer, why: String::new(), body: vec![9, 9] };
    let entry = Entry {
        log_id: LogId { leader_id: CommittedLeaderId::new(1, 2), index: 1 },
        payload: openraft::EntryPayload::Normal(LogCommand::Unreadable(unreadable)),
    };
    let request = Request::AppendEntries(openraft::raft::AppendEntriesRequest {
        vote: Vote::new(1, 2),
        prev_log_id: None,
        entries: vec![entry],
        leader_commit: None,
    });
    let timeout = std::time::Duration::from_secs(10);
    for _ in 0..2 {
        match call_peer(&peer, &request, timeout).await.expect("an answer") {
            Response::Error(WireError::BadRequest(why)) => {
                let expected = format!(
                    "entry 1: log entry format version {newer} is newer than this server reads (up to {LOG_ENTRY_VERSION})"
                );
                assert!(why.contains(&expected), "{why}");
            }
            other => panic!("a newer entry must be refused, got {other:?}"),
        }
    }
    // Nothing reached the log.
    assert_eq!(server.status().await.unwrap().last_log_index, 0);
    server.shutdown().await.unwrap();
}

/// `entry_len`, which sizes the log's and AppendEntries' buffers and bounds a batch without encoding a command, is
/// exactly what postcard writes, for every kind of entry and for log ids and bodies whose varints take more bytes.
#[test]
fn entry_len_is_the_encoded_length_of_every_kind_of_entry() {
    use openraft::vote::RaftLeaderId;
    use openraft::{EntryPayload, Membership};

    use crate::raft::{CommittedLeaderId, Entry, LogId, Unreadable};

    let log_ids = [
        LogId { leader_id: CommittedLeaderId::new(1, 1), index: 1 },
        LogId { leader_id: CommittedLeaderId::new(u64::MAX, 300), index: u64::MAX / 3 },
    ];
    let mut payloads = vec![EntryPayload::Blank];
    payloads.push(EntryPayload::Membership(Membership::new_with_defaults(
        vec![[1u64, 2, 3].into_iter().collect()],
        [] as [u64; 0],
    )));
    for value_len in [0, 100, 200, 20_000, 300 << 10] {
        let cmd = Command::KvSet { key: "k".into(), value: vec![7; value_len], flags: 1 << 40 };
        payloads.push(EntryPayload::Normal(LogCommand::Command(cmd)));
    }
    payloads.extend(commands().into_iter().map(|cmd| EntryPayload::Normal(LogCommand::Command(cmd))));
    for body_len in [2, 127, 128, 70_000] {
        let unreadable = Unreadable { version: LOG_ENTRY_VERSION + 200, why: String::new(), body: vec![9; body_len] };
        payloads.push(EntryPayload::Normal(LogCommand::Unreadable(unreadable)));
    }
    for log_id in log_ids {
        for payload in &payloads {
            let entry = Entry { log_id, payload: payload.clone() };
            let encoded = postcard::to_allocvec(&entry).unwrap();
            assert_eq!(super::entry_len(&entry).unwrap(), encoded.len(), "{:?}", entry.log_id);
        }
    }
}
