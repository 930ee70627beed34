//! Real servers over real mutual TLS: a three-server cluster forms and replicates; a peer with a client
//! certificate is refused Raft and served client requests; a `Remote` with a client certificate works, and one that
//! finds no server name on the server's certificate does not; frames over their type's limit are refused by a real
//! server before their body is read.

use std::sync::Arc;
use std::time::Duration;

use roster_kv::{Answer, CommandResult, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::wire::{ReadPolicy, Request, Response, WireError};
use super::{SnapshotMeta, Vote, call_peer};
use crate::rpc::frame::tests::announce;
use crate::rpc::frame::{HEADER_LEN, MAX_FRAME_LEN};
use crate::rpc::{Dialer, Peer};
use crate::server::tests::{set, start_with};
use crate::test_pki::Pki;
use crate::{Consistency, Remote, RpcLimits, Server};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Three servers with server certificates and every `verify_*` on, formed into one cluster.
async fn tls_cluster(pki: &Pki) -> [Server; 3] {
    let mut servers = Vec::new();
    for id in 1..=3 {
        servers.push(start_with(id, None, false, Some(pki.rpc_tls("server.dc1.consul")), RpcLimits::default()).await);
    }
    let members: Vec<_> = servers.iter().map(|s| (s.node_id(), s.rpc_addr())).collect();
    servers[0].initialize(&members).await.expect("initialize");
    for server in &servers {
        server.wait_for_leader(TIMEOUT).await.expect("a leader over TLS");
    }
    servers.try_into().unwrap_or_else(|_| unreachable!("three servers"))
}

/// The value of `key` on `server`, read with `consistency`.
async fn value(server: &Server, consistency: Consistency, key: &str) -> Option<Vec<u8>> {
    let (value, _) =
        server.read(consistency, |state| state.kv_get(key).0.map(|e| e.value.clone())).await.expect("read");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_over_mutual_tls_elect_replicate_and_forward() {
    let pki = Pki::new();
    let servers = tls_cluster(&pki).await;
    let follower = servers.iter().find(|s| !s.is_leader()).expect("a follower");
    // Forwarded by a follower to the leader, committed by a quorum, read back through a quorum round.
    assert_eq!(follower.write(set("over", "tls")).await.expect("write"), CommandResult::Bool(true));
    for server in &servers {
        assert_eq!(value(server, Consistency::Consistent, "over").await.as_deref(), Some(&b"tls"[..]));
        let counters = server.rpc_counters();
        assert_eq!((counters.refused_handshake, counters.refused_not_server), (0, 0), "{counters:?}");
    }
    for server in &servers {
        server.shutdown().await.expect("shutdown");
    }
}

/// A peer dialling `addr` over TLS with a certificate for `name`.
fn peer_with_cert(pki: &Pki, name: &str, addr: std::net::SocketAddr) -> Peer {
    let dialer = Dialer::new(Some(&pki.rpc_tls(name)), |_| true).expect("dialer");
    Peer::new(addr, dialer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_refused_raft_and_served_client_requests() {
    let pki = Pki::new();
    let server = start_with(1, None, true, Some(pki.rpc_tls("server.dc1.consul")), RpcLimits::default()).await;
    server.wait_for_leader(TIMEOUT).await.expect("leader");
    server.write(set("k", "v")).await.expect("write");
    let client = peer_with_cert(&pki, "client.dc1.consul", server.rpc_addr());

    let vote = Vote::new(99, 7);
    let refused = [
        Request::Vote(openraft::raft::VoteRequest::new(vote, None)),
        Request::AppendEntries(openraft::raft::AppendEntriesRequest {
            vote,
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        }),
        Request::FullSnapshot { vote, meta: SnapshotMeta::default(), data: Vec::new() },
        Request::ReadIndex(ReadPolicy::Lease),
    ];
    for request in &refused {
        match call_peer(&client, request, TIMEOUT).await.expect("an answer") {
            Response::Error(WireError::PermissionDenied(why)) => assert!(why.contains(request.name()), "{why}"),
            other => panic!("{} must be refused to a client, got {other:?}", request.name()),
        }
    }
    assert_eq!(server.rpc_counters().refused_not_server, 4);
    // The refused vote changed nothing: the server still leads, at its own term.
    assert!(server.is_leader());

    let query =
        Request::ClientQuery { consistency: Consistency::Default, min_index: 0, wait_ms: 0, query: kv_get("k") };
    match call_peer(&client, &query, TIMEOUT).await.expect("an answer") {
        Response::ClientQuery { answer: Answer::Entry(Some(entry)), .. } => assert_eq!(entry.value, b"v"),
        other => panic!("a client query is served to a client, got {other:?}"),
    }
    assert!(matches!(call_peer(&client, &Request::Status, TIMEOUT).await, Ok(Response::Status(_))));
    server.shutdown().await.expect("shutdown");
}

fn kv_get(key: &str) -> Query {
    Query::KvGet { key: key.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_with_a_client_certificate_writes_and_reads_and_refuses_a_server_without_the_name() {
    let pki = Pki::new();
    let server = start_with(1, None, true, Some(pki.rpc_tls("server.dc1.consul")), RpcLimits::default()).await;
    server.wait_for_leader(TIMEOUT).await.expect("leader");

    let remote = Remote::with_tls(CancellationToken::new(), &pki.rpc_tls("client.dc1.consul")).expect("remote");
    remote.set_servers(vec![server.rpc_addr()]);
    assert_eq!(remote.write(set("from", "client")).await.expect("write"), CommandResult::Bool(true));
    let (answer, _, _) = remote.query(Consistency::Default, 0, Duration::ZERO, &kv_get("from")).await.expect("query");
    assert!(matches!(answer, Answer::Entry(Some(e)) if e.value == b"client"));

    // Without a certificate the same server turns the Remote away.
    let mut anonymous_tls = pki.rpc_tls("client.dc1.consul");
    let fixed = crate::test_pki::Fixed { server: pki.server_config(&pki.leaf("x")), client: pki.client_config(None) };
    anonymous_tls.configs = Arc::new(fixed);
    let anonymous = Remote::with_tls(CancellationToken::new(), &anonymous_tls).expect("remote");
    anonymous.set_servers(vec![server.rpc_addr()]);
    assert!(anonymous.status().await.is_err(), "a certificate-less Remote must be refused");

    // A "server" whose certificate lacks server.dc1.consul is not dialled, with verify_server_hostname.
    let impostor = start_with(2, None, true, Some(pki.rpc_tls("client.dc1.consul")), RpcLimits::default()).await;
    let checking = Remote::with_tls(CancellationToken::new(), &pki.rpc_tls("client.dc1.consul")).expect("remote");
    checking.set_servers(vec![impostor.rpc_addr()]);
    let err = checking.status().await.expect_err("the impostor must not be trusted");
    assert!(matches!(err, crate::Error::Rpc { .. }), "{err:?}");
    server.shutdown().await.expect("shutdown");
    impostor.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_refuses_oversized_frames_before_reading_their_body() {
    // A read timeout far beyond the test: a close can only come from the refusal.
    let limits = RpcLimits { read_timeout: Duration::from_secs(3600), ..RpcLimits::default() };
    let mut plaintext_allowed = Pki::new().rpc_tls("server.dc1.consul");
    plaintext_allowed.verify_incoming = false;
    let server = start_with(1, None, true, Some(plaintext_allowed), limits).await;
    server.wait_for_leader(TIMEOUT).await.expect("leader");
    let client_query_tag = postcard::to_allocvec(&Request::ClientQuery {
        consistency: Consistency::Default,
        min_index: 0,
        wait_ms: 0,
        query: kv_get("k"),
    })
    .expect("encode")[0];
    let append_entries_tag = 0;
    // 512 MiB and 8 MiB of a client query; 512 MiB of AppendEntries from an unauthenticated (plaintext) peer.
    let claims = [
        (MAX_FRAME_LEN - HEADER_LEN, client_query_tag),
        (8 << 20, client_query_tag),
        (MAX_FRAME_LEN - HEADER_LEN, append_entries_tag),
    ];
    for (len, tag) in claims {
        let mut peer = tokio::net::TcpStream::connect(server.rpc_addr()).await.expect("connect");
        peer.write_all(&announce(len, tag)).await.expect("header");
        let mut buf = [0u8; 16];
        let read = peer.read(&mut buf).await;
        assert!(matches!(read, Ok(0) | Err(_)), "a {len}-byte claim of type {tag} must close the connection: {read:?}");
    }
    assert_eq!(server.rpc_counters().refused_frames, 3);
    // The server is unharmed, and serves a plaintext client request (verify_incoming is off).
    let plain = Peer::new(server.rpc_addr(), Dialer::plain());
    assert!(matches!(call_peer(&plain, &Request::Status, TIMEOUT).await, Ok(Response::Status(_))));
    server.shutdown().await.expect("shutdown");
}
