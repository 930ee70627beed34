//! End-to-end tests of `Server`: single node in memory and on disk, a three-node cluster over the
//! real TCP RPC on loopback, and blocking-query wakeups.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use roster_kv::{Command, CommandResult, WatchKey};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Server;
use crate::{Config, Consistency, Error};

mod catch_up;
mod lease_reads;

pub(crate) async fn start(node_id: u64, data_dir: Option<&Path>, bootstrap: bool) -> Server {
    start_with(node_id, data_dir, bootstrap, None, crate::RpcLimits::default()).await
}

/// `start`, with TLS and limits on the RPC port.
pub(crate) async fn start_with(
    node_id: u64,
    data_dir: Option<&Path>,
    bootstrap: bool,
    tls: Option<crate::RpcTls>,
    limits: crate::RpcLimits,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rpc_advertise = listener.local_addr().unwrap();
    let config = Config {
        node_id,
        data_dir: data_dir.map(Path::to_path_buf),
        rpc_listener: listener,
        rpc_advertise,
        bootstrap,
        acl: None,
        tls,
        limits,
        raft_multiplier: 5,
    };
    Server::start(config, CancellationToken::new()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_multiplier_scales_the_running_rafts_timings() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rpc_advertise = listener.local_addr().unwrap();
    let config = Config {
        node_id: 1,
        data_dir: None,
        rpc_listener: listener,
        rpc_advertise,
        bootstrap: true,
        acl: None,
        tls: None,
        limits: crate::RpcLimits::default(),
        raft_multiplier: 10,
    };
    let server = Server::start(config, CancellationToken::new()).await.unwrap();
    let ms = Duration::from_millis;
    // Twice the timings tuned for the default of 5, as Consul scales its own linearly.
    assert_eq!(server.raft_timing(), crate::RaftTiming { heartbeat: ms(200), election_timeout: ms(600)..=ms(1200) });
    server.wait_for_leader(Duration::from_secs(30)).await.unwrap();
    server.write(set("k", "v")).await.unwrap();
    assert_eq!(get(&server, Consistency::Default, "k").await.as_deref(), Some("v"));
    server.shutdown().await.unwrap();
}

pub(crate) fn set(key: &str, value: &str) -> Command {
    Command::KvSet { key: key.to_owned(), value: value.as_bytes().to_vec(), flags: 0 }
}

/// The value of `key` as a string, read with `consistency`.
async fn get(server: &Server, consistency: Consistency, key: &str) -> Option<String> {
    let (value, _meta) = server
        .read(consistency, |state| state.kv_get(key).0.map(|e| String::from_utf8_lossy(&e.value).into_owned()))
        .await
        .unwrap();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_node_is_leader_quickly_and_reads_its_writes() {
    let started = Instant::now();
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(900), "ready after {:?}", started.elapsed());
    assert!(server.is_leader());
    assert_eq!(server.leader_addr(), server.peers().first().copied());

    assert_eq!(server.write(set("a", "1")).await.unwrap(), CommandResult::Bool(true));
    let cas = Command::KvCas { key: "a".into(), value: b"2".to_vec(), flags: 0, index: 999 };
    assert_eq!(server.write(cas).await.unwrap(), CommandResult::Bool(false));
    for consistency in [Consistency::Default, Consistency::Consistent, Consistency::Stale] {
        assert_eq!(get(&server, consistency, "a").await.as_deref(), Some("1"));
    }
    let (_, meta) = server.read(Consistency::Stale, |_| ()).await.unwrap();
    assert!(meta.known_leader);
    assert_eq!(meta.last_contact_ms, 0);
    server.shutdown().await.unwrap();
    assert!(matches!(server.write(set("b", "1")).await, Err(Error::Shutdown)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_data_dir_keeps_every_write_with_and_without_snapshot() {
    let dir = tempfile::tempdir().unwrap();

    let server = start(1, Some(dir.path()), true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    for i in 0..100 {
        server.write(set(&format!("k{i}"), &i.to_string())).await.unwrap();
    }
    server.shutdown().await.unwrap();
    drop(server);

    // Restart: log replay only (no snapshot yet). `bootstrap` again must be harmless.
    let server = start(1, Some(dir.path()), true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    for i in 0..100 {
        assert_eq!(get(&server, Consistency::Default, &format!("k{i}")).await, Some(i.to_string()));
    }
    // Snapshot, purge the log it covers, then write a tail that only the log holds.
    let snapshot_index = server.snapshot().await.unwrap();
    assert!(snapshot_index >= 100);
    server.purge_log(snapshot_index).await.unwrap();
    for i in 100..110 {
        server.write(set(&format!("k{i}"), &i.to_string())).await.unwrap();
    }
    server.shutdown().await.unwrap();
    drop(server);

    // Restart: snapshot file + log tail.
    let server = start(1, Some(dir.path()), false).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    for i in 0..110 {
        assert_eq!(get(&server, Consistency::Consistent, &format!("k{i}")).await, Some(i.to_string()));
    }
    server.shutdown().await.unwrap();
}

/// Three in-memory servers on loopback forming one cluster, returned once all agree on a leader.
pub(crate) async fn three_node_cluster() -> ([Server; 3], std::net::SocketAddr) {
    let servers = [start(1, None, false).await, start(2, None, false).await, start(3, None, false).await];
    let members: Vec<_> = servers.iter().map(|s| (s.node_id(), s.rpc_addr())).collect();
    servers[0].initialize(&members).await.unwrap();
    for server in &servers {
        server.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    }
    // Under load a second election may still be settling when each has seen *a* leader; wait until all agree.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let leader = loop {
        let seen: Vec<_> = servers.iter().map(|s| s.leader_addr()).collect();
        if let Some(first) = seen[0].filter(|_| seen.iter().all(|l| *l == seen[0])) {
            break first;
        }
        assert!(std::time::Instant::now() < deadline, "servers never agreed on a leader: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (servers, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_and_apply_a_write_forwarded_by_a_follower() {
    let (servers, leader) = three_node_cluster().await;
    assert!(servers.iter().any(|s| s.rpc_addr() == leader), "the agreed leader is one of the three");
    assert_eq!(servers[0].peers().len(), 3);

    let follower = servers.iter().find(|s| !s.is_leader()).unwrap();
    assert_eq!(follower.write(set("fwd", "yes")).await.unwrap(), CommandResult::Bool(true));
    // A default read on each server goes through the leader's read index, then the local replica.
    for server in &servers {
        assert_eq!(get(server, Consistency::Default, "fwd").await.as_deref(), Some("yes"));
    }
    // Stale reads see it too once applied locally (already, after the barrier above).
    for server in &servers {
        assert_eq!(get(server, Consistency::Stale, "fwd").await.as_deref(), Some("yes"));
        let (_, meta) = server.read(Consistency::Stale, |_| ()).await.unwrap();
        assert!(meta.known_leader);
        assert!(meta.last_contact_ms < 1000, "last contact {}ms", meta.last_contact_ms);
    }
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}

/// Spawns a blocking read of `query` on the key `watched` from `first_index` (10 s wait), and returns once it is parked.
async fn park_on_watched<T: Send + 'static>(
    server: &Server,
    first_index: u64,
    query: impl Fn(&roster_kv::State) -> (T, u64) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<crate::Result<(T, u64, crate::ReadMeta)>> {
    let parked = {
        let server = server.clone();
        tokio::spawn(async move {
            let keys = vec![WatchKey::Key("watched".into())];
            server.blocking_read(Consistency::Default, first_index, Duration::from_secs(10), keys, query).await
        })
    };
    while server.parked_queries() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    parked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_read_wakes_only_for_its_key_and_times_out_at_the_same_index() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    server.write(set("watched", "1")).await.unwrap();
    let query = |state: &roster_kv::State| {
        let (entry, index) = state.kv_get("watched");
        (entry.map(|e| e.value.clone()), index)
    };
    let (_, first_index, _) =
        server.blocking_read(Consistency::Default, 0, Duration::ZERO, vec![], query).await.unwrap();

    let parked = park_on_watched(&server, first_index, query).await;
    // A write to another key must not wake the query.
    server.write(set("other", "x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!parked.is_finished());
    assert_eq!(server.parked_queries(), 1);

    // A write to the watched key wakes it at once with the new index.
    let woken_at = Instant::now();
    server.write(set("watched", "2")).await.unwrap();
    let (value, index, _) = parked.await.unwrap().unwrap();
    assert!(woken_at.elapsed() < Duration::from_secs(1));
    assert_eq!(value.as_deref(), Some(&b"2"[..]));
    assert!(index > first_index);
    assert_eq!(server.parked_queries(), 0);

    // Nothing changes: the query times out with the same index and leaves no waiter behind.
    let started = Instant::now();
    let keys = vec![WatchKey::Key("watched".into())];
    let (_, same_index, _) =
        server.blocking_read(Consistency::Default, index, Duration::from_millis(300), keys, query).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(same_index, index);
    assert_eq!(server.parked_queries(), 0);
    server.shutdown().await.unwrap();
}

/// A write to a watched key whose answer keeps its index (here the query only moves for one value) wakes the query,
/// which parks again, registered before it evaluates, and still wakes for the next write that moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_query_whose_answer_did_not_move_parks_again() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    server.write(set("watched", "start")).await.unwrap();
    let (_, first_index, _) = server
        .blocking_read(Consistency::Default, 0, Duration::ZERO, vec![], |state| ((), state.kv_get("watched").1))
        .await
        .unwrap();
    let evaluations = Arc::new(AtomicUsize::new(0));
    let query = {
        let evaluations = evaluations.clone();
        move |state: &roster_kv::State| {
            evaluations.fetch_add(1, Ordering::SeqCst);
            let (entry, index) = state.kv_get("watched");
            let value = entry.map(|e| e.value.clone());
            let index = if value.as_deref() == Some(&b"move"[..]) { index } else { first_index };
            (value, index)
        }
    };
    let parked = park_on_watched(&server, first_index, query).await;
    let before = evaluations.load(Ordering::SeqCst);

    // Woken, the answer still at the caller's index: evaluated again, and parked again.
    server.write(set("watched", "still")).await.unwrap();
    while evaluations.load(Ordering::SeqCst) == before || server.parked_queries() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!parked.is_finished());

    server.write(set("watched", "move")).await.unwrap();
    let (value, index, _) = tokio::time::timeout(Duration::from_secs(5), parked).await.unwrap().unwrap().unwrap();
    assert_eq!(value.as_deref(), Some(&b"move"[..]));
    assert!(index > first_index);
    assert_eq!(server.parked_queries(), 0, "the query that returned left no waiter");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_answers_like_the_state_and_blocks_on_its_watch_keys() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    server.write(set("q", "1")).await.unwrap();
    let query = roster_kv::Query::KvGet { key: "q".into() };
    let (answer, index, meta) = server.query(Consistency::Default, 0, Duration::ZERO, &query).await.unwrap();
    let expected = server.read_local(|state| query.eval(state));
    assert_eq!((answer, index), expected);
    assert!(meta.known_leader);

    let parked = {
        let (server, query) = (server.clone(), query.clone());
        tokio::spawn(async move { server.query(Consistency::Stale, index, Duration::from_secs(10), &query).await })
    };
    while server.parked_queries() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.write(set("unrelated", "x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!parked.is_finished(), "a write to another key must not wake the query");
    server.write(set("q", "2")).await.unwrap();
    let (answer, new_index, _) = parked.await.unwrap().unwrap();
    assert!(new_index > index);
    let roster_kv::Answer::Entry(Some(entry)) = answer else { panic!("q exists: {answer:?}") };
    assert_eq!(entry.value, b"2");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_a_pristine_server_from_a_cluster_member() {
    let pristine = start(7, None, false).await;
    let status = pristine.status().await.unwrap();
    assert_eq!((status.id, status.addr), (7, pristine.rpc_addr()));
    assert!(!status.initialized && status.servers.is_empty() && status.leader.is_none());
    pristine.shutdown().await.unwrap();
    assert!(matches!(pristine.status().await, Err(Error::Shutdown)));

    let member = start(1, None, true).await;
    member.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    member.write(set("a", "1")).await.unwrap();
    // Raft publishes its metrics after it answers, so the status may not show the write's entry at once: wait for
    // it there, no longer than the write itself could take.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = member.status().await.unwrap();
        if status.last_log_index >= 2 || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::task::yield_now().await;
    };
    assert!(status.initialized);
    assert_eq!(status.leader, Some(member.rpc_addr()));
    assert_eq!(status.servers, vec![crate::RaftServer { id: 1, addr: member.rpc_addr(), voter: true }]);
    // The applied index may trail the log's in the same metrics, never lead it.
    assert!(status.last_log_index >= 2 && status.applied_index <= status.last_log_index, "{status:?}");
    member.shutdown().await.unwrap();
}

/// `Server::add_voter`, retried while the previous membership change is still being committed (openraft refuses
/// a change until then; the leader's reconcile simply tries again on its next tick).
async fn add_voter(leader: &Server, node_id: u64, addr: std::net::SocketAddr) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match leader.add_voter(node_id, addr).await {
            Ok(voter) => return voter,
            Err(Error::Membership(why)) if std::time::Instant::now() < deadline => {
                tracing::debug!("membership change refused, retrying: {why}");
            }
            Err(err) => panic!("adding server {node_id}: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_becomes_a_voter_only_once_the_leader_has_replicated_to_it() {
    let leader = start(1, None, true).await;
    leader.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    // A port nobody listens on any more: a server the leader can never reach, as one whose certificate it refuses.
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert!(!add_voter(&leader, 99, unreachable).await, "an unreached server is not made a voter");

    let follower = start(2, None, false).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !add_voter(&leader, 2, follower.rpc_addr()).await {
        assert!(std::time::Instant::now() < deadline, "the reachable server was never promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The leader has since replicated to server 2 and sent 99 the same entries; 99 is still only a learner.
    assert!(!add_voter(&leader, 99, unreachable).await);
    let mut servers = leader.status().await.unwrap().servers;
    servers.sort_by_key(|s| s.id);
    let expected = [(1, leader.rpc_addr(), true), (2, follower.rpc_addr(), true), (99, unreachable, false)];
    assert_eq!(servers.iter().map(|s| (s.id, s.addr, s.voter)).collect::<Vec<_>>(), expected);
    assert_eq!(leader.write(set("quorum", "two of two")).await.unwrap(), CommandResult::Bool(true));

    leader.remove_voter(99).await.unwrap();
    let ids: Vec<u64> = leader.status().await.unwrap().servers.iter().map(|s| s.id).collect();
    assert!(!ids.contains(&99), "the learner is gone: {ids:?}");
    follower.shutdown().await.unwrap();
    leader.shutdown().await.unwrap();
}

/// Registers node `n1` and creates session `id` on it with `ttl`, through `server`.
async fn node_and_session(server: &Server, id: &str, ttl: &str) {
    let node = roster_kv::Node { node: "n1".into(), address: "10.0.0.1".into(), ..roster_kv::Node::default() };
    let reg = roster_kv::Registration { node, ..roster_kv::Registration::default() };
    server.write(Command::Register(Box::new(reg))).await.unwrap();
    let session = roster_kv::Session { id: id.into(), node: "n1".into(), ttl: ttl.into(), ..Default::default() };
    assert_eq!(server.write(Command::SessionCreate(Box::new(session))).await.unwrap(), CommandResult::Bool(true));
}

fn session_ids(server: &Server) -> Vec<String> {
    server.read_local(|state| state.sessions().0.iter().map(|s| s.id.clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_ttl_session_expires_on_the_leader_and_frees_its_lock() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    // 10 s TTL, waited twice over, shortened 100 times: expiry 200 ms after the timer is armed.
    server.session_timers().set_divisor(100);
    node_and_session(&server, "ttl", "10s").await;
    node_and_session(&server, "forever", "").await;
    let lock = Command::KvLock { key: "k".into(), value: vec![], flags: 0, session: "ttl".into(), now_ms: 0 };
    assert_eq!(server.write(lock).await.unwrap(), CommandResult::Bool(true));

    let deadline = Instant::now() + Duration::from_secs(5);
    while session_ids(&server).contains(&"ttl".to_string()) {
        assert!(Instant::now() < deadline, "the TTL session was never destroyed");
        // Renewing the other session keeps nothing alive here: it has no TTL, and renew just returns it.
        assert!(server.renew_session("forever").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(session_ids(&server), ["forever"]);
    let holder = server.read_local(|state| state.kv_get("k").0.map(|e| e.session.clone()));
    assert_eq!(holder, Some(None), "the expired session's lock was released");
    assert_eq!(server.session_timers().len(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_keep_a_session_alive_and_unknown_sessions_renew_to_none() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    // 10 s × 2 / 20: a one-second grace, renewed every 200 ms for three seconds.
    server.session_timers().set_divisor(20);
    node_and_session(&server, "kept", "10s").await;
    assert!(server.renew_session("nope").await.unwrap().is_none());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let renewed = server.renew_session("kept").await.unwrap().expect("still there");
        assert_eq!(renewed.ttl, "10s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(session_ids(&server), ["kept"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_and_a_client_forward_renewals_and_transactions_to_the_leader() {
    let (servers, _leader) = three_node_cluster().await;
    let follower = servers.iter().find(|s| !s.is_leader()).unwrap();
    node_and_session(follower, "s", "30s").await;
    let renewed = follower.renew_session("s").await.unwrap().expect("the leader knows it");
    assert_eq!(renewed.id, "s");
    assert!(follower.renew_session("missing").await.unwrap().is_none());

    let remote = crate::Remote::new(CancellationToken::new());
    remote.set_servers(vec![follower.rpc_addr()]);
    assert_eq!(remote.renew_session("s").await.unwrap().map(|s| s.node), Some("n1".into()));

    let op = |verb, index| roster_kv::TxnOp::Kv {
        verb,
        key: "t".into(),
        value: b"1".to_vec(),
        flags: 0,
        index,
        session: String::new(),
    };
    let applied = follower.txn(vec![op(roster_kv::KvVerb::Set, 0)], 0).await.unwrap();
    assert!(matches!(&applied, roster_kv::TxnOutcome::Applied(results) if results.len() == 1), "{applied:?}");
    let stale = remote.txn(vec![op(roster_kv::KvVerb::Cas, 999)], 0).await.unwrap();
    assert!(matches!(&stale, roster_kv::TxnOutcome::RolledBack(errors) if errors[0].op_index == 0), "{stale:?}");
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_of_one_prefix_wake_on_one_write_and_share_one_evaluation() {
    let server = start(1, None, true).await;
    server.wait_for_leader(Duration::from_secs(2)).await.unwrap();
    server.write(set("lb/web/1", "a")).await.unwrap();
    let query = roster_kv::Query::KvList { prefix: "lb/web/".to_owned() };
    let (_, index, _) = server.query(Consistency::Default, 0, Duration::ZERO, &query).await.unwrap();

    let watchers: Vec<_> = (0..1000)
        .map(|_| {
            let (server, query) = (server.clone(), query.clone());
            tokio::spawn(async move {
                server.query(Consistency::Default, index, Duration::from_secs(30), &query).await.unwrap()
            })
        })
        .collect();
    while server.parked_queries() < 1000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A write elsewhere wakes none of them.
    server.write(set("other/x", "1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.parked_queries(), 1000);

    let before = server.shared_evaluations();
    server.write(set("lb/web/2", "b")).await.unwrap();
    for watcher in watchers {
        let (answer, new_index, _) = watcher.await.unwrap();
        assert!(new_index > index);
        let roster_kv::Answer::Entries(entries) = answer else { panic!("entries expected, got {answer:?}") };
        assert_eq!(entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["lb/web/1", "lb/web/2"]);
    }
    assert_eq!(server.parked_queries(), 0);
    // One evaluation served all thousand: the state did not move between their wake-ups.
    assert_eq!(server.shared_evaluations() - before, 1);
    server.shutdown().await.unwrap();
}
