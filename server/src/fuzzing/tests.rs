//! The RPC fuzz targets' seed corpora, built here from real requests: each seed must reach the stage it was made for,
//! and the committed seeds must be exactly these, so a change of the wire schema cannot leave the fuzzers starting
//! from inputs that no longer decode. `UPDATE_SEEDS=1` rewrites them. Also property tests over the same entry points.

use std::path::PathBuf;

use proptest::prelude::*;
use roster_kv::{Command, Query};

use super::*;
use crate::config::Consistency;
use crate::raft::Vote;
use crate::raft::wire::ReadPolicy;
use crate::rpc::frame::tests::announce;
use crate::rpc::frame::{HEADER_LEN, WIRE_VERSION};

fn requests() -> Vec<(&'static str, Request)> {
    let vote = Vote::new(3, 1);
    vec![
        ("status", Request::Status),
        ("vote", Request::Vote(openraft::raft::VoteRequest::new(vote, None))),
        (
            "append-entries",
            Request::AppendEntries(openraft::raft::AppendEntriesRequest {
                vote,
                prev_log_id: None,
                entries: Vec::new(),
                leader_commit: None,
            }),
        ),
        ("read-index", Request::ReadIndex(ReadPolicy::Quorum)),
        (
            "client-write-as",
            Request::ClientWriteAs {
                token: "secret".into(),
                cmd: Command::KvSet { key: "a/b".into(), value: b"v".to_vec(), flags: 7 },
            },
        ),
        (
            "client-query",
            Request::ClientQuery {
                consistency: Consistency::Default,
                min_index: 4,
                wait_ms: 1000,
                query: Query::KvList { prefix: "a/".into() },
            },
        ),
        (
            "snapshot-chunk",
            Request::SnapshotChunk(crate::raft::wire::SnapshotChunk {
                vote,
                meta: crate::raft::SnapshotMeta::default(),
                id: 0x5eed,
                offset: 0,
                data: b"snapshot".to_vec(),
                done: false,
            }),
        ),
        ("session-renew-as", Request::ClientSessionRenewAs { token: String::new(), id: "s1".into() }),
    ]
}

fn encode(request: &Request) -> Vec<u8> {
    postcard::to_allocvec(request).expect("encodes")
}

/// A frame carrying `body` for request id `id`.
fn framed(id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(HEADER_LEN + body.len()).expect("small").to_be_bytes().to_vec();
    out.push(WIRE_VERSION);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn request_seeds() -> Vec<(String, Vec<u8>, &'static str)> {
    requests().into_iter().map(|(file, request)| (file.to_owned(), encode(&request), request.name())).collect()
}

fn stream_seeds() -> Vec<(String, Vec<u8>, &'static str)> {
    let mut stream = Vec::new();
    for (idx, (_, request)) in requests().iter().enumerate() {
        stream.extend(framed(idx as u64, &encode(request)));
    }
    let status = encode(&Request::Status);
    let mut too_large = announce(6 << 20, 9);
    too_large.extend_from_slice(&[0; 16]);
    vec![
        // Whole, from a server, in pieces of 128 bytes: the last frame decoded is the session renewal.
        ("server-stream".to_owned(), [&[0xff][..], &stream].concat(), "ClientSessionRenewAs"),
        // Byte by byte, from a client.
        ("client-stream-bytewise".to_owned(), [&[0x00][..], &stream].concat(), "ClientSessionRenewAs"),
        ("status".to_owned(), [&[0x10][..], &framed(1, &status)].concat(), "Status"),
        ("over-limit".to_owned(), [&[0x10][..], &too_large].concat(), "frame-refused"),
    ]
}

fn check_seeds(target: &str, seeds: Vec<(String, Vec<u8>, &'static str)>, run: fn(&[u8]) -> &'static str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target);
    let update = std::env::var_os("UPDATE_SEEDS").is_some();
    for (name, input, stage) in seeds {
        assert_eq!(run(&input), stage, "seed {name}");
        let path = dir.join(&name);
        if update {
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(&path, &input).expect("seed written");
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(committed == input, "{} is stale: run with UPDATE_SEEDS=1", path.display());
    }
}

#[test]
fn request_seeds_decode_to_their_request_and_are_committed() {
    check_seeds("rpc_request", request_seeds(), rpc_request);
}

#[test]
fn stream_seeds_reach_the_request_decoder_and_are_committed() {
    check_seeds("rpc_stream", stream_seeds(), rpc_stream);
}

#[test]
fn append_entries_over_the_small_limit_is_taken_from_a_server_only() {
    let value = vec![5; crate::raft::wire::SMALL_BODY];
    let entry = openraft::Entry {
        log_id: openraft::LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 1 }, 1),
        payload: openraft::EntryPayload::Normal(crate::raft::LogCommand::Command(Command::KvSet {
            key: "k".into(),
            value,
            flags: 0,
        })),
    };
    let append = Request::AppendEntries(openraft::raft::AppendEntriesRequest {
        vote: Vote::new(1, 1),
        prev_log_id: None,
        entries: vec![entry],
        leader_commit: None,
    });
    let stream = framed(1, &encode(&append));
    assert_eq!(rpc_stream(&[&[0xff][..], &stream].concat()), "AppendEntries");
    assert_eq!(rpc_stream(&[&[0xfe][..], &stream].concat()), "frame-refused");
}

#[test]
fn a_snapshot_chunk_or_whole_snapshot_over_the_chunk_limit_is_refused_from_anyone() {
    let data = vec![5; crate::raft::wire::SNAPSHOT_CHUNK_BODY];
    let meta = crate::raft::SnapshotMeta::default();
    let vote = Vote::new(1, 1);
    let chunk =
        crate::raft::wire::SnapshotChunk { vote, meta: meta.clone(), id: 1, offset: 0, data: data.clone(), done: true };
    for request in [Request::SnapshotChunk(chunk), Request::FullSnapshot { vote, meta, data }] {
        let stream = framed(1, &encode(&request));
        assert_eq!(rpc_stream(&[&[0xff][..], &stream].concat()), "frame-refused", "{}", request.name());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Any bytes as a request body: a request or a decode error, and what decodes survives a round trip.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = rpc_request(&body);
    }

    /// Real requests with bytes changed still decode or fail cleanly, and round-trip when they decode.
    #[test]
    fn mutated_requests_never_panic(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let requests = requests();
        let mut body = encode(&requests[pick.index(requests.len())].1);
        for (idx, byte) in flips {
            let at = idx.index(body.len());
            body[at] ^= byte;
        }
        let _ = rpc_request(&body);
    }

    /// A valid frame header followed by arbitrary bytes, in any piece size, from a server or not.
    #[test]
    fn arbitrary_frame_bodies_in_any_pieces_never_panic(
        mode in any::<u8>(),
        id in any::<u64>(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let stream = framed(id, &body);
        let stage = rpc_stream(&[&[mode][..], &stream].concat());
        prop_assert_ne!(stage, "no-frame", "a whole frame is always decoded or refused");
    }
}
