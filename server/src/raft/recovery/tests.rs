//! Tests of outage recovery: the file's checks as a table, and a three-server cluster on disk that loses two servers
//! and is recovered from `peers.json` on the survivor.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{PEERS_FILE, RAFT_DIR, parse};
use crate::server::tests::set;
use crate::{Config, Consistency, Error, Server, raft_id};

const A: &str = "0b3e4a36-8d3c-4b7e-9a59-9c1f0a6e2b11";
const B: &str = "7f0c2d6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
const C: &str = "5d1c9e4a-3b2f-4a6e-8c7d-1e0f2a3b4c5d";

/// Parses `text` as server `A` would; `Ok` lists `(node ID, address, voter)`.
fn check(text: &str) -> Result<Vec<(String, String, bool)>, String> {
    let servers = parse(text, raft_id(A))?;
    Ok(servers.into_values().map(|s| (s.node_id, s.addr.to_string(), s.voter)).collect())
}

fn expect_refused(text: &str, needle: &str) {
    match check(text) {
        Err(why) => assert!(why.contains(needle), "{text}: {why:?} does not mention {needle:?}"),
        Ok(servers) => panic!("{text} was accepted: {servers:?}"),
    }
}

#[test]
fn consuls_format_parses_with_non_voters_and_the_default_suffrage() {
    let text = format!(
        r#"[{{"id": "{A}", "address": "10.1.0.1:8300", "non_voter": false}},
            {{"id": "{B}", "address": "10.1.0.2:8300"}},
            {{"id": "{C}", "address": "[::1]:8300", "non_voter": true}}]"#
    );
    let mut servers = check(&text).unwrap();
    servers.sort();
    let mut expected = vec![
        (A.to_owned(), "10.1.0.1:8300".to_owned(), true),
        (B.to_owned(), "10.1.0.2:8300".to_owned(), true),
        (C.to_owned(), "[::1]:8300".to_owned(), false),
    ];
    expected.sort();
    assert_eq!(servers, expected);
}

#[test]
fn bad_files_are_refused_with_the_problem_named() {
    let a = |addr: &str| format!(r#"{{"id": "{A}", "address": "{addr}"}}"#);
    expect_refused("[{", "not valid peers.json");
    expect_refused("{}", "not valid peers.json");
    expect_refused("[]", "names no voter");
    expect_refused(r#"["10.1.0.1:8300"]"#, "address-only form of Raft protocol 2");
    expect_refused(&format!(r#"[{{"id": "{A}", "address": "10.1.0.1:8300", "non_voter": true}}]"#), "names no voter");
    expect_refused(&format!("[{}]", a("10.1.0.1")), "is not ip:port");
    expect_refused(&format!("[{}]", a("server-1:8300")), "is not ip:port");
    expect_refused(&format!("[{}]", a("")), "is not ip:port");
    expect_refused(&format!("[{}, {}]", a("10.1.0.1:8300"), a("10.1.0.2:8300")), "is listed twice");
    let upper = A.to_uppercase();
    expect_refused(
        &format!(r#"[{}, {{"id": "{upper}", "address": "10.1.0.2:8300"}}]"#, a("10.1.0.1:8300")),
        "is listed twice",
    );
    expect_refused(
        &format!(r#"[{}, {{"id": "{B}", "address": "10.1.0.1:8300"}}]"#, a("10.1.0.1:8300")),
        "address 10.1.0.1:8300 is listed twice",
    );
    expect_refused(r#"[{"id": "", "address": "10.1.0.1:8300"}]"#, "empty id");
    expect_refused(r#"[{"id": "node-1", "address": "10.1.0.1:8300"}]"#, "is not a node ID");
    expect_refused(&format!(r#"[{{"id": "{B}", "address": "10.1.0.2:8300"}}]"#), "does not list this server");
    // A misspelt key must not silently leave a server a voter.
    expect_refused(&format!(r#"[{{"id": "{A}", "address": "10.1.0.1:8300", "nonvoter": true}}]"#), "nonvoter");
}

/// Starts a server on disk, at `listener`.
async fn start_at(node_id: &str, dir: &Path, listener: TcpListener, bootstrap: bool) -> crate::Result<Server> {
    let rpc_advertise = listener.local_addr()?;
    let config = Config {
        node_id: raft_id(node_id),
        data_dir: Some(dir.to_path_buf()),
        rpc_listener: listener,
        rpc_advertise,
        bootstrap,
        acl: None,
        tls: None,
        limits: crate::RpcLimits::default(),
        raft_multiplier: 5,
    };
    Server::start(config, CancellationToken::new()).await
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn write_peers(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir.join(RAFT_DIR)).unwrap();
    std::fs::write(dir.join(RAFT_DIR).join(PEERS_FILE), text).unwrap();
}

/// Every file under `dir` with its contents, to show that a refused start changed nothing.
fn snapshot_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

async fn wait_until_leader(server: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.is_leader() {
        assert!(std::time::Instant::now() < deadline, "the survivor never became leader: {:?}", server.status().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Forms a three-server cluster on disk (in `dirs`), writes `n_keys` keys, and shuts every server down.
async fn cluster_with_keys(dirs: &[tempfile::TempDir; 3], n_keys: usize) {
    let ids = [A, B, C];
    let mut servers = Vec::new();
    for (id, dir) in ids.iter().zip(dirs) {
        servers.push(start_at(id, dir.path(), listener().await, false).await.unwrap());
    }
    let members: Vec<_> = servers.iter().map(|s| (s.node_id(), s.rpc_addr())).collect();
    servers[0].initialize(&members).await.unwrap();
    servers[0].wait_for_leader(Duration::from_secs(5)).await.unwrap();
    for i in 0..n_keys {
        // Any server forwards to the leader; every write is acknowledged (committed by a quorum) before the next.
        servers[i % 3].write(set(&format!("k{i}"), &i.to_string())).await.unwrap();
    }
    // A write is acknowledged once a quorum holds it, which C may not be part of; the operator recovers from the
    // most up-to-date survivor, so let C catch up first (the log applies in order: the last key means every key).
    let last = format!("k{}", n_keys - 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while servers[2].read(Consistency::Stale, |state| state.kv_get(&last).0.is_none()).await.unwrap().0 {
        assert!(std::time::Instant::now() < deadline, "C never applied {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for server in &servers {
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_given_peers_json_leads_alone_and_serves_every_acknowledged_write() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    cluster_with_keys(&dirs, 40).await;

    // B and C are gone for good. C survives, at a new address.
    let survivor_dir = dirs[2].path();
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    write_peers(survivor_dir, &format!(r#"[{{"id": "{C}", "address": "{addr}", "non_voter": false}}]"#));
    let server = start_at(C, survivor_dir, listener, false).await.unwrap();
    assert!(!survivor_dir.join(RAFT_DIR).join(PEERS_FILE).exists(), "peers.json is deleted once applied");

    // Until its election timer fires it may still name the dead leader its vote remembers.
    wait_until_leader(&server).await;
    let status = server.status().await.unwrap();
    assert_eq!(status.servers.len(), 1, "{status:?}");
    assert_eq!((status.servers[0].id, status.servers[0].addr, status.servers[0].voter), (raft_id(C), addr, true));
    for i in 0..40 {
        let (value, _) = server
            .read(Consistency::Consistent, |state| state.kv_get(&format!("k{i}")).0.map(|e| e.value.clone()))
            .await
            .unwrap();
        assert_eq!(value, Some(i.to_string().into_bytes()), "k{i}");
    }
    server.write(set("after", "recovery")).await.unwrap();
    server.shutdown().await.unwrap();
    drop(server);

    // A second start finds no file and keeps the recovered configuration.
    let server = start_at(C, survivor_dir, TcpListener::bind(addr).await.unwrap(), false).await.unwrap();
    wait_until_leader(&server).await;
    assert_eq!(server.status().await.unwrap().servers.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_peers_json_stops_the_start_and_changes_nothing() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    cluster_with_keys(&dirs, 3).await;
    let dir = dirs[0].path();
    let peers = dir.join(RAFT_DIR).join(PEERS_FILE);
    for (text, problem) in [
        ("not json".to_owned(), "not valid peers.json"),
        (format!(r#"[{{"id": "{A}", "address": "10.1.0.1:8300", "non_voter": true}}]"#), "names no voter"),
        (format!(r#"[{{"id": "{A}", "address": "10.1.0.1"}}]"#), "not ip:port"),
        (
            format!(r#"[{{"id": "{A}", "address": "10.1.0.1:8300"}}, {{"id": "{A}", "address": "10.1.0.2:8300"}}]"#),
            "listed twice",
        ),
    ] {
        write_peers(dir, &text);
        let before = snapshot_dir(dir);
        match start_at(A, dir, listener().await, false).await {
            Err(Error::DataDir(why)) => {
                assert!(why.contains(&peers.display().to_string()) && why.contains(problem), "{why}")
            }
            Err(other) => panic!("{text}: unexpected error {other}"),
            Ok(_) => panic!("{text}: started"),
        }
        assert!(before == snapshot_dir(dir), "{text}: the data dir changed");
    }

    // A fresh data dir has nothing to recover: refused too, and no log is created.
    let fresh = tempfile::tempdir().unwrap();
    write_peers(fresh.path(), &format!(r#"[{{"id": "{A}", "address": "10.1.0.1:8300"}}]"#));
    match start_at(A, fresh.path(), listener().await, false).await {
        Err(Error::DataDir(why)) => assert!(why.contains("no Raft log"), "{why}"),
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
    assert_eq!(snapshot_dir(fresh.path()).len(), 1, "only peers.json is there");
}
