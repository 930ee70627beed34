//! Tests for `Remote` against real servers on loopback: writes, reads of every consistency and
//! blocking queries through a follower, status, failover when servers go away, and which failures
//! are retried.

use std::net::SocketAddr;
use std::time::Duration;

use roster_kv::{Answer, CommandResult, Query};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::tests::{set, start, three_node_cluster};

/// The value of `key` as the remote reads it with `consistency`, and the index covering it.
async fn get(remote: &Remote, consistency: Consistency, key: &str) -> (Option<String>, u64, ReadMeta) {
    let query = Query::KvGet { key: key.into() };
    let (answer, index, meta) = remote.query(consistency, 0, Duration::ZERO, &query).await.unwrap();
    let Answer::Entry(entry) = answer else { panic!("a KvGet answers an Entry, not {answer:?}") };
    (entry.map(|e| String::from_utf8_lossy(&e.value).into_owned()), index, meta)
}

/// An address where nothing listens.
async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_on_a_follower_writes_reads_blocks_and_reports_status() {
    let (servers, leader) = three_node_cluster().await;
    let follower = servers.iter().find(|s| s.rpc_addr() != leader).unwrap();
    let remote = Remote::new(CancellationToken::new());
    remote.set_servers(vec![follower.rpc_addr()]);
    assert_eq!(remote.servers(), vec![follower.rpc_addr()]);

    assert_eq!(remote.write(set("k", "1")).await.unwrap(), CommandResult::Bool(true));
    let cas = roster_kv::Command::KvCas { key: "k".into(), value: b"x".to_vec(), flags: 0, index: 999 };
    assert_eq!(remote.write(cas).await.unwrap(), CommandResult::Bool(false));
    for consistency in [Consistency::Default, Consistency::Consistent, Consistency::Stale] {
        let (value, _, meta) = get(&remote, consistency, "k").await;
        assert_eq!(value.as_deref(), Some("1"), "{consistency:?}");
        assert!(meta.known_leader && meta.last_contact_ms < 1000, "the follower's facts: {meta:?}");
    }

    // A blocking query parks on the follower and wakes on a write sent over the same connection.
    let (_, index, _) = get(&remote, Consistency::Default, "k").await;
    let parked = {
        let remote = remote.clone();
        tokio::spawn(async move {
            let query = Query::KvGet { key: "k".into() };
            remote.query(Consistency::Default, index, Duration::from_secs(20), &query).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    remote.write(set("other", "x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!parked.is_finished(), "a write to another key must not wake the query");
    let woken_at = Instant::now();
    remote.write(set("k", "2")).await.unwrap();
    let (answer, new_index, _) = parked.await.unwrap().unwrap();
    assert!(woken_at.elapsed() < Duration::from_secs(2));
    assert!(new_index > index);
    let Answer::Entry(Some(entry)) = answer else { panic!("k exists: {answer:?}") };
    assert_eq!(entry.value, b"2");

    let status = remote.status().await.unwrap();
    assert_eq!((status.id, status.leader), (follower.node_id(), Some(leader)));
    assert!(status.initialized);
    let mut ids: Vec<(u64, bool)> = status.servers.iter().map(|s| (s.id, s.voter)).collect();
    ids.sort();
    assert_eq!(ids, [(1, true), (2, true), (3, true)]);
    let leader_status = remote.status_of(leader).await.unwrap();
    assert_eq!(leader_status.addr, leader);
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_moves_to_another_server_when_its_server_shuts_down() {
    let (servers, _) = three_node_cluster().await;
    let remote = Remote::new(CancellationToken::new());
    remote.set_servers(servers.iter().map(|s| s.rpc_addr()).collect());
    remote.write(set("k", "1")).await.unwrap();
    let (_, index, _) = get(&remote, Consistency::Default, "k").await;
    let used = remote.status().await.unwrap().id;

    // A query parked on the server that goes away finishes its wait on another one.
    let parked = {
        let remote = remote.clone();
        tokio::spawn(async move {
            let query = Query::KvGet { key: "k".into() };
            remote.query(Consistency::Default, index, Duration::from_secs(30), &query).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gone = servers.iter().find(|s| s.node_id() == used).unwrap();
    gone.shutdown().await.unwrap();

    // Reads fail over at once; the write then goes to whichever server the remote moved to.
    let (value, _, _) = get(&remote, Consistency::Default, "k").await;
    assert_eq!(value.as_deref(), Some("1"));
    assert_ne!(remote.status().await.unwrap().id, used);
    assert_eq!(remote.write(set("k", "2")).await.unwrap(), CommandResult::Bool(true));
    let (answer, new_index, _) = parked.await.unwrap().unwrap();
    assert!(new_index > index);
    assert!(matches!(answer, Answer::Entry(Some(entry)) if entry.value == b"2"));
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_moves_on_from_a_server_that_cannot_be_reached() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    let dead = dead_addr().await;
    let remote = Remote::new(CancellationToken::new());
    // The server in use stays in use when the list grows, so the dead one is tried first.
    remote.set_servers(vec![dead]);
    remote.set_servers(vec![dead, server.rpc_addr()]);
    assert_eq!(remote.write(set("k", "1")).await.unwrap(), CommandResult::Bool(true));
    assert_eq!(remote.status().await.unwrap().id, 1, "the remote stays on the server that answered");
    assert!(matches!(remote.status_of(dead).await, Err(Error::Rpc { addr, .. }) if addr == dead));
    server.shutdown().await.unwrap();
}

/// A server that stopped answering: connections are accepted and held open, and nothing is ever read or written.
async fn silent_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<tokio::net::TcpStream>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held, accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if held.send(stream).is_err() {
                break;
            }
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_on_a_server_dropped_from_the_list_move_on_at_once() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    let (silent, mut accepted) = silent_server().await;
    let remote = Remote::new(CancellationToken::new());
    remote.set_servers(vec![silent]);

    // A read and a blocking query go to the silent server and wait there: its connection stays open.
    let read = {
        let remote = remote.clone();
        tokio::spawn(async move { get(&remote, Consistency::Stale, "k").await })
    };
    let parked = {
        let remote = remote.clone();
        let query = Query::KvGet { key: "k".into() };
        tokio::spawn(async move { remote.query(Consistency::Default, 1, Duration::from_secs(60), &query).await })
    };
    let held = accepted.recv().await.expect("the remote dials the silent server");
    // Both requests are on the wire: more bytes than the first frame (`len: u32 BE`, then `len` bytes) holds.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        held.readable().await.unwrap();
        let seen = held.peek(&mut buf).await.unwrap();
        let first = 4 + buf[..4].iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
        if seen >= 4 && seen > first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Gossip finds the silent server dead and names the live one: both calls finish there, well before the read's
    // 30 s call timeout or the query's 60 s wait.
    remote.set_servers(vec![server.rpc_addr()]);
    let (value, index, _) =
        tokio::time::timeout(Duration::from_secs(10), read).await.expect("the read moved on").unwrap();
    assert_eq!(value, None);
    assert!(index >= 1);
    remote.write(set("k", "1")).await.unwrap();
    let (answer, _, _) =
        tokio::time::timeout(Duration::from_secs(10), parked).await.expect("the query moved on").unwrap().unwrap();
    assert!(matches!(answer, Answer::Entry(Some(entry)) if entry.value == b"1"), "the parked query saw the write");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_peer_dials_and_sends_nothing_more() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    let peer = Peer::new(server.rpc_addr(), Dialer::plain());
    client::status(&peer, STATUS_TIMEOUT).await.expect("a status through the open peer");
    peer.close();
    // Refused before anything is sent, so even a write may go to another server.
    let failure = client::status(&peer, STATUS_TIMEOUT).await.expect_err("a closed peer");
    assert!(matches!(failure, Failure::Unreachable(_)), "{failure:?}");
    assert!(retryable(Kind::Write, &failure));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_servers_every_call_fails_with_consuls_message() {
    let remote = Remote::new(CancellationToken::new());
    let err = remote.write(set("k", "1")).await.unwrap_err();
    assert!(matches!(err, Error::NoServers));
    assert_eq!(err.to_string(), "No known Consul servers");
    let query = remote.query(Consistency::Stale, 0, Duration::ZERO, &Query::Nodes).await;
    assert!(matches!(query, Err(Error::NoServers)));
    assert!(matches!(remote.status().await, Err(Error::NoServers)));
}

#[tokio::test]
async fn calls_end_when_the_agent_shuts_down() {
    let shutdown = CancellationToken::new();
    let remote = Remote::new(shutdown.clone());
    remote.set_servers(vec![dead_addr().await]);
    let pending = {
        let remote = remote.clone();
        tokio::spawn(async move { remote.status().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    let res = tokio::time::timeout(Duration::from_secs(2), pending).await.expect("ends promptly").unwrap();
    assert!(matches!(res, Err(Error::Shutdown)), "{res:?}");
}

#[test]
fn only_failures_that_certainly_applied_nothing_retry_a_write() {
    let lost = || Failure::Lost { message: "closed".into(), timeout: None };
    let cases = [
        (Failure::Unreachable("refused".into()), true, true),
        (Failure::NoLeader, true, true),
        (lost(), true, false),
        (Failure::Unavailable("stopping".into()), true, false),
        (Failure::Rejected("no".into()), false, false),
        (Failure::Indeterminate("displaced".into()), false, false),
        (Failure::Protocol("garbage".into()), false, false),
    ];
    for (failure, read, write) in cases {
        assert_eq!((retryable(Kind::Read, &failure), retryable(Kind::Write, &failure)), (read, write), "{failure:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_straight_to_the_leader_once_a_status_names_it_and_fall_back_when_it_fails() {
    let (servers, leader) = three_node_cluster().await;
    let follower = servers.iter().find(|s| s.rpc_addr() != leader).unwrap();
    let remote = Remote::new(CancellationToken::new());
    // The follower is the server in use: it stays so when the list grows.
    remote.set_servers(vec![follower.rpc_addr()]);
    remote.set_servers(servers.iter().map(|s| s.rpc_addr()).collect());
    assert_eq!(remote.write(set("k", "1")).await.unwrap(), CommandResult::Bool(true));
    assert_eq!(remote.dialled(), vec![follower.rpc_addr()], "the first write goes through the server in use");
    // That write asked the follower, in the background, which server leads.
    let asked = Instant::now();
    while remote.known_leader() != Some(leader) {
        assert!(asked.elapsed() < Duration::from_secs(5), "the leader was never learned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(remote.write(set("k", "2")).await.unwrap(), CommandResult::Bool(true));
    let mut dialled = remote.dialled();
    dialled.sort();
    let mut expected = vec![follower.rpc_addr(), leader];
    expected.sort();
    assert_eq!(dialled, expected, "the second write went to the leader");
    // Reads and status stay on the server in use.
    assert_eq!(remote.status().await.unwrap().id, follower.node_id());
    assert_eq!(get(&remote, Consistency::Default, "k").await.0.as_deref(), Some("2"));

    // The leader goes away: the next write fails there and forgets it. When the connection was known dead before
    // anything was sent, the write is retried on the server in use at once; when it went out on the dying
    // connection, it is reported lost (it may have been applied) and only the next write moves on. Either way the
    // server in use forwards to whichever server the remaining two elect.
    let old_leader = servers.iter().find(|s| s.rpc_addr() == leader).unwrap();
    old_leader.shutdown().await.unwrap();
    match remote.write(set("k", "3")).await {
        Ok(result) => assert_eq!(result, CommandResult::Bool(true)),
        Err(Error::Rpc { addr, .. }) => assert_eq!(addr, leader, "only a write sent to the old leader is lost"),
        Err(error) => panic!("a write lost with the old leader: {error:?}"),
    }
    assert_ne!(remote.known_leader(), Some(leader));
    assert_eq!(remote.write(set("k", "3")).await.unwrap(), CommandResult::Bool(true));
    assert_eq!(get(&remote, Consistency::Consistent, "k").await.0.as_deref(), Some("3"));
    for server in servers.iter().filter(|s| s.rpc_addr() != leader) {
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_from_a_source_address_connects_from_it_and_the_server_hears_when_it_closes() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    let mut closed = server.closed_connections();
    let shutdown = CancellationToken::new();
    let remote = Remote::new(shutdown.clone()).from_source(std::net::IpAddr::from([127, 0, 0, 9]));
    remote.set_servers(vec![server.rpc_addr()]);
    assert_eq!(remote.write(set("k", "1")).await.unwrap(), CommandResult::Bool(true));
    // The agent goes away: its connections close, and the server names the address it connected from.
    shutdown.cancel();
    drop(remote);
    let ip = tokio::time::timeout(Duration::from_secs(10), closed.recv()).await.expect("in time").expect("open");
    assert_eq!(ip, std::net::IpAddr::from([127, 0, 0, 9]));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dialled_for_a_caller_on_another_runtime_outlives_that_runtime() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    let remote = Remote::new(CancellationToken::new());
    remote.set_servers(vec![server.rpc_addr()]);
    // A DNS thread's runtime makes the first call, which dials the connection, and then ends. A read, because a first
    // write also asks for the leader's address from this runtime, and that call could be the one to dial.
    let caller = remote.clone();
    let first = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { get(&caller, Consistency::Stale, "k").await.0 })
    })
    .join()
    .unwrap();
    assert_eq!(first, None);
    // The connection runs on the runtime the remote was made on, where this write runs in the caller's own task:
    // a connection that had died with the other runtime would fail it (a write that may have been sent is not retried).
    assert_eq!(remote.write(set("k", "2")).await.unwrap(), CommandResult::Bool(true));
    assert_eq!(get(&remote, Consistency::Default, "k").await.0.as_deref(), Some("2"));
    server.shutdown().await.unwrap();
}

/// The type of what `make` returns, sized without calling it.
fn returned_size<F, G: FnOnce() -> F>(_make: &G) -> usize {
    std::mem::size_of::<F>()
}

/// A blocking query on a client agent holds this future for its whole wait, so the call inside it is awaited through
/// one box rather than sized in two and three times over (`spawn` moves it into a select and that into
/// `catch_unwind`): 4 992 B before.
#[test]
fn a_remote_querys_future_holds_its_call_once() {
    // Never called: only the type of what it would return is asked for.
    let (remote, query): (Option<&Remote>, Option<&Query>) = (None, None);
    let make = move || remote.unwrap().query_as("", Consistency::Default, 1, Duration::ZERO, query.unwrap());
    let size = returned_size(&make);
    assert!(size <= 512, "Remote::query_as's future is {size} bytes");
}
