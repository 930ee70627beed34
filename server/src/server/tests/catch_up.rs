//! A follower that fell a snapshot behind catches up over the streamed snapshot and AppendEntries of one bounded batch
//! each while the leader keeps taking 512 KiB values; prints how long it took.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use roster_kv::{Command, CommandResult};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::Server;
use crate::Config;

/// How long any one wait of this test may take before it fails (it finishes in well under a minute).
const PATIENCE: Duration = Duration::from_secs(120);

/// A server on disk at `dir`, listening on `addr` (port 0 for any): a restarted server must come back at the
/// address the membership holds.
async fn start_at(node_id: u64, dir: &Path, addr: std::net::SocketAddr) -> Server {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let rpc_advertise = listener.local_addr().expect("bound address");
    let config = Config {
        node_id,
        data_dir: Some(dir.to_path_buf()),
        rpc_listener: listener,
        rpc_advertise,
        bootstrap: false,
        acl: None,
        tls: None,
        limits: crate::RpcLimits::default(),
        raft_multiplier: 5,
    };
    Server::start(config, CancellationToken::new()).await.expect("server starts")
}

/// Sets `key` to `len` bytes of `fill` through `server`, again when leadership moved under the write: with three
/// servers in one debug-built process on a loaded machine, heartbeats can miss their 100 ms deadline and an election
/// follow. Writing the same value again is harmless here, so an outcome left unknown by that is retried too; the test
/// compares the servers with each other, not with a model. Returns how many attempts were retried.
async fn write_value(server: &Server, key: String, len: usize, fill: u8) -> usize {
    let mut retried = 0;
    loop {
        match server.write(Command::KvSet { key: key.clone(), value: vec![fill; len], flags: 0 }).await {
            Ok(result) => {
                assert_eq!(result, CommandResult::Bool(true), "{key}");
                return retried;
            }
            Err(
                crate::Error::NoLeader
                | crate::Error::NotLeader { .. }
                | crate::Error::Indeterminate(_)
                | crate::Error::Timeout(_)
                | crate::Error::Rpc { .. },
            ) if retried < 100 => retried += 1,
            Err(e) => panic!("writing {key}: {e}"),
        }
        server.wait_for_leader(PATIENCE).await.expect("a leader again");
    }
}

/// Waits until every server has applied the same last index and returns it, with each server's state encoding read
/// at exactly that index.
async fn converged(servers: &[&Server]) -> (u64, Vec<Vec<u8>>) {
    loop {
        let last = servers.iter().map(|s| s.raft_stats().applied_index).max().expect("servers");
        for server in servers {
            server.wait_applied(last, PATIENCE).await.expect("every server applies the last index");
        }
        let read: Vec<_> = servers
            .iter()
            .map(|s| (s.raft_stats().applied_index, state_bytes(s), s.raft_stats().applied_index))
            .collect();
        // A new leader's first (blank) entry may land between the reads: then read again.
        if read.iter().all(|(before, _, after)| *before == last && *after == last) {
            return (last, read.into_iter().map(|(_, bytes, _)| bytes).collect());
        }
    }
}

/// The server all of `servers` take for leader, once they agree.
async fn agreed_leader(servers: &[Server]) -> Server {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        for server in servers {
            server.wait_for_leader(PATIENCE).await.expect("a leader");
        }
        let seen: Vec<_> = servers.iter().map(Server::leader_addr).collect();
        if let Some(first) = seen[0].filter(|_| seen.iter().all(|l| *l == seen[0])) {
            return servers.iter().find(|s| s.rpc_addr() == first).expect("the leader is one of them").clone();
        }
        assert!(std::time::Instant::now() < deadline, "servers never agreed on a leader: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The state's snapshot encoding: equal on two servers exactly when they hold the same state.
fn state_bytes(server: &Server) -> Vec<u8> {
    server.read_local(|state| state.encode_snapshot())
}

// Three servers share this runtime: four workers keep one server's large decode from delaying another's heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_a_snapshot_behind_catches_up_while_512_kib_values_are_written() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let any = "127.0.0.1:0".parse().expect("address");
    let mut servers = Vec::new();
    for (id, dir) in (1..=3).zip(&dirs) {
        servers.push(start_at(id, dir.path(), any).await);
    }
    let members: Vec<_> = servers.iter().map(|s| (s.node_id(), s.rpc_addr())).collect();
    servers[0].initialize(&members).await.expect("initialize");
    let leader = agreed_leader(&servers).await;
    let lagging = servers.iter().position(|s| s.rpc_addr() != leader.rpc_addr()).expect("a follower");
    let (lagging_id, lagging_addr) = (servers[lagging].node_id(), servers[lagging].rpc_addr());
    servers[lagging].shutdown().await.expect("follower stops");
    drop(servers.remove(lagging));

    // 10 000 entries of 1 KiB under distinct keys: a snapshot of about 10 MiB, three chunks.
    let small = futures_util::stream::iter(0..10_000)
        .map(|i| write_value(&leader, format!("small/{i:05}"), 1024, (i % 251) as u8))
        .buffer_unordered(64);
    let mut elections: usize = small.collect::<Vec<_>>().await.into_iter().sum();
    // Both running servers snapshot and purge, so whichever leads when the follower returns has only a snapshot
    // for it.
    let mut snapshot_index = u64::MAX;
    for server in &servers {
        let index = server.snapshot().await.expect("snapshot");
        assert!(index >= 10_000, "the snapshot covers the small writes: {index}");
        server.purge_log(index).await.expect("purge");
        snapshot_index = snapshot_index.min(index);
    }
    let leader = agreed_leader(&servers).await;

    // A writer of 512 KiB values over 16 keys, four in flight, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (written_tx, mut written) = tokio::sync::watch::channel(0u64);
    let writer = tokio::spawn({
        let (leader, stop) = (leader.clone(), stop.clone());
        async move {
            let big = futures_util::stream::iter(0u64..)
                .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
                .map(|i| write_value(&leader, format!("big/{}", i % 16), 512 << 10, (i % 256) as u8))
                .buffer_unordered(4);
            let mut big = std::pin::pin!(big);
            let mut elections = 0;
            while let Some(retried) = big.next().await {
                elections += retried;
                written_tx.send_modify(|n| *n += 1);
            }
            elections
        }
    });
    // More than a batch's worth of big entries waits for the follower behind the snapshot: 24 × 512 KiB = 12 MiB.
    written.wait_for(|n| *n >= 24).await.expect("writer runs");

    let dir = &dirs[usize::try_from(lagging_id - 1).expect("small id")];
    let started = Instant::now();
    let follower = start_at(lagging_id, dir.path(), lagging_addr).await;
    let target = servers.iter().map(|s| s.raft_stats().applied_index).max().expect("servers");
    follower.wait_applied(target, PATIENCE).await.expect("the follower reaches the leader's index at its restart");
    let caught_up = started.elapsed();
    let during = *written.borrow();

    stop.store(true, Ordering::Relaxed);
    elections += writer.await.expect("writer ends");
    let everyone: Vec<&Server> = servers.iter().chain([&follower]).collect();
    let (last, states) = converged(&everyone).await;
    let fully = started.elapsed();
    assert!(states.iter().all(|state| *state == states[0]), "every server holds the same state at index {last}");

    let received = follower.stream_stats();
    assert_eq!(follower.node_id(), lagging_id);
    let sent = servers
        .iter()
        .map(Server::stream_stats)
        .fold((0, 0), |(chunks, splits), s| (chunks + s.chunks_sent, splits + s.appends_split));
    assert!(received.chunks_received >= 3, "a 10 MiB snapshot arrives in chunks: {received:?}");
    // Not `sent >= received`: a chunk the follower took may have had its answer lost to a leader change or a timeout.
    assert!(sent.0 >= 1, "a leader streamed the snapshot: chunks sent {} and received {received:?}", sent.0);
    // The log reader hands replication one AppendEntries' worth at a time (`limited_get_log_entries`), so the
    // network layer, which would cut a larger batch, never has to: read whole, the 12 MiB backlog would be cut.
    assert_eq!(sent.1, 0, "a batch of big entries reached the network layer over its bound");
    println!(
        "catch-up: snapshot at index {snapshot_index} in {} chunks; follower reached index {target} in {:.2?} \
         ({during} big values written by then), the last index {last} in {:.2?}; {} AppendEntries split; \
         {elections} writes retried across an election",
        received.chunks_received, caught_up, fully, sent.1
    );

    follower.shutdown().await.expect("shutdown");
    for server in &servers {
        server.shutdown().await.expect("shutdown");
    }
}
