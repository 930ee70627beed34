//! Snapshots on a real cluster: `roster snapshot save` while writes go on, `restore` reaching every server and waking a
//! parked watcher with the restored value, saves through a client agent, and damaged or too-new archives refused with
//! nothing changed.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use roster_tests::{TestAgent, TestCluster, eventually};
use serde_json::Value;
use tokio::sync::watch;

/// Every key and value (base64, as the API shows it) a server holds in its own state (`?stale`), sorted by key.
async fn stale_kv(agent: &TestAgent) -> Vec<(String, Value)> {
    let res = agent.get("/v1/kv/?recurse&stale").await;
    if res.status == 404 {
        return Vec::new();
    }
    assert_eq!(res.status, 200, "{}", res.text());
    let entries = res.json();
    entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| (e["Key"].as_str().expect("key").to_owned(), e["Value"].clone()))
        .collect()
}

/// The KV entries of a snapshot file, as `stale_kv` shows them.
fn snapshot_kv(path: &std::path::Path) -> (u64, Vec<(String, Value)>) {
    let archive = roster_snapshot::read(std::fs::File::open(path).expect("opens")).expect("a valid archive");
    let state = archive.decode_state().expect("decodes");
    let (entries, _) = state.kv_list("");
    let kv = entries
        .into_iter()
        .map(|e| {
            let value = if e.value.is_empty() {
                Value::Null
            } else {
                Value::String(base64::engine::general_purpose::STANDARD.encode(&e.value))
            };
            (e.key.clone(), value)
        })
        .collect();
    (archive.meta.index, kv)
}

async fn applied_index(agent: &TestAgent) -> u64 {
    let me = agent.get("/v1/agent/self").await.json();
    me["Stats"]["raft"]["applied_index"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn put(agent: &TestAgent, key: &str, value: &str) {
    let res = agent.put(&format!("/v1/kv/{key}"), value).await;
    assert_eq!(res.status, 200, "PUT {key}: {}", res.text());
}

/// Waits until every server has applied at least what the most advanced one had applied when this was called.
async fn wait_all_applied(cluster: &TestCluster) {
    let mut target = 0;
    for server in &cluster.servers {
        target = target.max(applied_index(server).await);
    }
    for server in &cluster.servers {
        eventually("the server catches up", Duration::from_secs(30), || async {
            (applied_index(server).await >= target).then_some(())
        })
        .await;
    }
}

/// Writes `load/<n>` for n = 0, 1, ... through `agent` until `stop`, publishing how many were acknowledged.
fn write_load(agent: &TestAgent, stop: Arc<AtomicBool>) -> (tokio::task::JoinHandle<u64>, watch::Receiver<u64>) {
    let (client, base) = (agent.client().clone(), agent.url("/v1/kv/load/"));
    let (tx, rx) = watch::channel(0u64);
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let res = client.put(format!("{base}{n:06}")).body(format!("v{n}")).send().await.expect("the load's PUT");
            assert!(res.status().is_success(), "load write {n}: {}", res.status());
            n += 1;
            tx.send_replace(n);
        }
        n
    });
    (task, rx)
}

/// Waits until the load has acknowledged `more` writes past what it had.
async fn load_moves(load: &mut watch::Receiver<u64>, more: u64) {
    let target = *load.borrow_and_update() + more;
    load.wait_for(|n| *n >= target).await.expect("the load task runs");
}

/// The uncompressed tar of a snapshot file, with one byte of `state.bin`'s data flipped, compressed again: every checksum
/// as it was, so only `SHA256SUMS` can tell.
fn flip_state_byte(archive: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(archive).read_to_end(&mut tar).expect("gunzips");
    // meta.json is the first member: a 512-byte header, then its data padded to 512; then state.bin's header.
    let meta_size = usize::from_str_radix(std::str::from_utf8(&tar[124..135]).expect("octal").trim(), 8).expect("size");
    assert_eq!(&tar[0..9], b"meta.json");
    let state_header = 512 + meta_size.div_ceil(512) * 512;
    assert_eq!(&tar[state_header..state_header + 9], b"state.bin");
    tar[state_header + 512 + 20] ^= 0x01;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzips");
    gz.finish().expect("gzips")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_under_load_then_restore_reaches_every_server_and_wakes_a_watcher() {
    let cluster = TestCluster::start(3, 1).await;
    let (s1, s2, client) = (&cluster.servers[0], &cluster.servers[1], &cluster.clients[0]);
    let dir = tempfile::tempdir().expect("tempdir");
    put(s1, "watched", "in-snapshot").await;
    put(s1, "app/config", "{\"a\":1}").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (load_task, mut load) = write_load(s2, stop.clone());
    load_moves(&mut load, 5).await;

    // Save through the CLI while the load goes on: the archive is one applied index.
    let file = dir.path().join("backup.snap");
    let out = s1.cli(&["snapshot", "save", file.to_str().expect("utf-8")]).await;
    out.expect_success();
    let (index, expected) = snapshot_kv(&file);
    assert_eq!(out.stdout.trim(), format!("Saved and verified snapshot to index {index}"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).expect("saved").permissions());
    assert_eq!(mode & 0o777, 0o600);
    let load_keys: Vec<&String> = expected.iter().map(|(k, _)| k).filter(|k| k.starts_with("load/")).collect();
    let contiguous: Vec<String> = (0..load_keys.len()).map(|n| format!("load/{n:06}")).collect();
    assert_eq!(load_keys, contiguous.iter().collect::<Vec<_>>(), "a consistent cut of sequential writes");
    assert!(expected.contains(&("watched".into(), Value::String("aW4tc25hcHNob3Q=".into()))));

    // Offline inspection of the same file.
    let inspect = s1.cli_env(&["snapshot", "inspect", file.to_str().expect("utf-8")], &[]).await;
    inspect.expect_success();
    assert!(inspect.stdout.contains(&format!(" Index        {index}\n")), "{}", inspect.stdout);
    assert!(inspect.stdout.contains(&format!(" KV entries            {}\n", expected.len())), "{}", inspect.stdout);
    assert!(inspect.stdout.contains("Checksums OK"), "{}", inspect.stdout);

    // A save through the client agent: the server streams it over the RPC in chunks.
    let via_client = dir.path().join("client.snap");
    client.cli(&["snapshot", "save", "-stale", via_client.to_str().expect("utf-8")]).await.expect_success();
    assert!(snapshot_kv(&via_client).0 >= index);

    // Keep writing, change the watched key, then stop the load so the restored KV can be compared exactly.
    load_moves(&mut load, 5).await;
    put(s1, "watched", "after").await;
    put(s1, "only-after", "x").await;
    stop.store(true, Ordering::SeqCst);
    load_task.await.expect("the load task");

    // A watcher on the changed key, blocked past its current index, through the client agent.
    let current = client.get("/v1/kv/watched").await;
    let watched_index = current.headers["X-Consul-Index"].to_str().expect("ascii").to_owned();
    let watcher = {
        let (http, url) =
            (client.client().clone(), client.url(&format!("/v1/kv/watched?index={watched_index}&wait=5m")));
        tokio::spawn(async move { http.get(url).send().await.expect("the watch").text().await.expect("a body") })
    };

    let out = client.cli(&["snapshot", "restore", file.to_str().expect("utf-8")]).await;
    out.expect_success();
    assert_eq!(out.stdout.trim(), "Restored snapshot");
    let woke =
        tokio::time::timeout(Duration::from_secs(120), watcher).await.expect("the watcher answers").expect("joins");
    assert!(woke.contains("\"Value\":\"aW4tc25hcHNob3Q=\""), "the watcher woke with the snapshot's value: {woke}");

    // Every server, read in its own state once it has applied the restore, holds exactly the snapshot's KV.
    wait_all_applied(&cluster).await;
    for server in &cluster.servers {
        assert_eq!(stale_kv(server).await, expected, "{}", server.node_name());
    }
    // Writes are taken again at once.
    put(client, "after-restore", "ok").await;
    assert_eq!(s2.get("/v1/kv/after-restore?raw").await.text(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_truncated_and_newer_archives_are_refused_and_change_nothing() {
    let cluster = TestCluster::start(3, 0).await;
    let s1 = &cluster.servers[0];
    let dir = tempfile::tempdir().expect("tempdir");
    put(s1, "k", "before").await;
    let file = dir.path().join("good.snap");
    s1.cli(&["snapshot", "save", file.to_str().expect("utf-8")]).await.expect_success();
    put(s1, "k", "live").await;
    let before = vec![("k".to_owned(), Value::String("bGl2ZQ==".into()))];
    let good = std::fs::read(&file).expect("reads");

    let truncated = dir.path().join("truncated.snap");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("writes");
    let flipped = dir.path().join("flipped.snap");
    std::fs::write(&flipped, flip_state_byte(&good)).expect("writes");
    let newer = dir.path().join("newer.snap");
    let archive = roster_snapshot::read(&good[..]).expect("reads");
    let meta = roster_snapshot::Meta { version: roster_snapshot::FORMAT_VERSION + 1, ..archive.meta };
    std::fs::write(&newer, roster_snapshot::write(Vec::new(), &meta, &archive.state).expect("writes")).expect("writes");

    for (path, why) in [
        (&truncated, "snapshot archive is truncated"),
        (&flipped, "snapshot archive checksum mismatch for state.bin"),
        (&newer, "snapshot archive format version 2 is newer than this build supports (version 1)"),
    ] {
        let out = s1.cli(&["snapshot", "restore", path.to_str().expect("utf-8")]).await;
        assert_eq!(out.code, Some(1), "{}: {out:?}", path.display());
        assert!(out.stderr.contains("Error restoring snapshot: Unexpected response code: 400"), "{}", out.stderr);
        assert!(out.stderr.contains(why), "{} should say {why:?}: {}", path.display(), out.stderr);
        let inspect = s1.cli_env(&["snapshot", "inspect", path.to_str().expect("utf-8")], &[]).await;
        assert_eq!(inspect.code, Some(1));
        assert!(inspect.stderr.contains(why), "{}", inspect.stderr);
    }
    // Nothing was proposed: once each server has applied what the leader has, it still holds the live data.
    wait_all_applied(&cluster).await;
    for server in &cluster.servers {
        assert_eq!(stale_kv(server).await, before, "{}", server.node_name());
    }
    assert_eq!(s1.get("/v1/kv/k?raw").await.text(), "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_needs_acl_write_and_speaks_consuls_headers() {
    let config = serde_json::json!({"acl": {"enabled": true, "default_policy": "deny"}});
    let agent = TestAgent::start_with_config("snap", roster_tests::AgentMode::Dev, config).await.expect("dev agent");
    let res = agent.put("/v1/acl/bootstrap", "").await;
    res.expect_status(200);
    let root = res.json()["SecretID"].as_str().expect("SecretID").to_owned();
    let as_root = [("X-Consul-Token", root.as_str())];
    let res = agent.request_with_headers(reqwest::Method::PUT, "/v1/kv/k", &as_root, Some(b"v1".to_vec())).await;
    res.expect_status(200);

    // Anonymous: denied both ways, and the denied restore changes nothing.
    let res = agent.get("/v1/snapshot").await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert!(res.text().contains("Permission denied"), "{}", res.text());

    let res = agent.request_with_headers(reqwest::Method::GET, "/v1/snapshot", &as_root, None).await;
    res.expect_status(200);
    assert_eq!(res.headers["Content-Type"], "application/x-gzip");
    let index: u64 = res.headers["X-Consul-Index"].to_str().expect("ascii").parse().expect("a number");
    let archive = roster_snapshot::read(&res.body[..]).expect("a valid archive");
    assert_eq!(archive.meta.index, index);
    let saved = res.body.clone();

    let res = agent.request_with_headers(reqwest::Method::PUT, "/v1/kv/k", &as_root, Some(b"v2".to_vec())).await;
    res.expect_status(200);
    let res = agent.request(reqwest::Method::PUT, "/v1/snapshot", Some(saved.clone())).await;
    assert_eq!(res.status, 403, "{}", res.text());
    let raw = agent.request_with_headers(reqwest::Method::GET, "/v1/kv/k?raw", &as_root, None).await;
    assert_eq!(raw.text(), "v2");

    // Bad input is a 400 naming it, before anything is proposed.
    let res = agent.request_with_headers(reqwest::Method::PUT, "/v1/snapshot", &as_root, Some(b"junk".to_vec())).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.text().trim(), "not a snapshot archive: the data is not gzip-compressed");
    // An archive may be larger than other request bodies (4 MiB): this one is read, and refused for what it is.
    let mut big = vec![0x1f, 0x8b];
    big.resize(5 << 20, 0);
    let res = agent.request_with_headers(reqwest::Method::PUT, "/v1/snapshot", &as_root, Some(big)).await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(res.text().starts_with("snapshot archive is corrupt"), "{}", res.text());
    let res = agent.request_with_headers(reqwest::Method::GET, "/v1/snapshot?consistent", &as_root, None).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.text().trim(), "Unsupported query parameter \"consistent\"");

    // The management token restores; the key is back to the snapshot's value.
    let res = agent.request_with_headers(reqwest::Method::PUT, "/v1/snapshot", &as_root, Some(saved)).await;
    res.expect_status(200);
    let raw = agent.request_with_headers(reqwest::Method::GET, "/v1/kv/k?raw", &as_root, None).await;
    assert_eq!(raw.text(), "v1");
}
