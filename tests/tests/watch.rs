//! `roster watch` against a dev agent: a `key` watch fires at start and on changes of its key
//! only, with the JSON on stdin and `CONSUL_INDEX` set; a `service` watch fires when an instance's
//! check goes critical.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use roster_tests::{TestAgent, b64, eventually, roster_bin};
use serde_json::{Value, json};

/// A `roster watch` process, killed and reaped on drop.
struct Watch {
    child: Child,
}

impl Watch {
    /// Starts `roster watch -http-addr=<agent> ARGS...` with a handler appending one line per fire to `out`.
    fn start(agent: &TestAgent, args: &[&str], out: &Path) -> Watch {
        let handler = format!("(cat; echo \" index=$CONSUL_INDEX\") >> {}", out.display());
        let child = Command::new(roster_bin())
            .arg("watch")
            .arg(format!("-http-addr={}", agent.http_addr()))
            .args(args)
            .args(["-handler", &handler])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning roster watch");
        Watch { child }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The handler's output so far: one `(result JSON, CONSUL_INDEX)` per fire.
fn fires(out: &Path) -> Vec<(Value, u64)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .map(|line| {
            let (json_text, index) = line.rsplit_once(" index=").unwrap_or_else(|| panic!("odd handler line {line:?}"));
            let value = serde_json::from_str(json_text).unwrap_or_else(|err| panic!("{json_text:?}: {err}"));
            (value, index.parse().unwrap_or_else(|err| panic!("CONSUL_INDEX {index:?}: {err}")))
        })
        .collect()
}

/// Waits until the handler ran `n` times and returns its fires.
async fn wait_fires(out: &Path, n: usize) -> Vec<(Value, u64)> {
    let what = format!("{n} handler runs in {}", out.display());
    eventually(&what, Duration::from_secs(15), || async {
        let fired = fires(out);
        (fired.len() >= n).then_some(fired)
    })
    .await
}

/// Runs `roster watch -http-addr=<agent> ARGS...` to completion (the harness's `cli` puts the
/// address after two command words, which would split `-type key`).
async fn watch_once(agent: &TestAgent, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(roster_bin())
        .arg("watch")
        .arg(format!("-http-addr={}", agent.http_addr()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running roster watch")
}

/// A fresh output file path in `dir`.
fn out_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("fires.txt")
}

#[tokio::test]
async fn key_watch_fires_at_start_and_on_changes_of_its_key_only() {
    let agent = TestAgent::dev("watch-key").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = out_file(&dir);
    let parked = agent.parked_queries().await;
    let _watch = Watch::start(&agent, &["-type", "key", "-key", "app/k"], &out);

    let fired = wait_fires(&out, 1).await;
    assert_eq!(fired[0].0, Value::Null, "a missing key fires once with null");

    agent.put("/v1/kv/app/k", "v1").await.expect_status(200);
    let fired = wait_fires(&out, 2).await;
    assert_eq!(fired[1].0["Key"], "app/k");
    assert_eq!(fired[1].0["Value"], b64("v1"));
    assert_eq!(fired[1].1, fired[1].0["ModifyIndex"].as_u64().expect("ModifyIndex"), "CONSUL_INDEX is the key's index");

    // The watch waits on its next change (its blocking query is parked) while other keys are written. A fire for any
    // of those writes would come before the next change's, repeating v1; so the next fire being v2 shows there was
    // none, without sleeping to see that nothing happens.
    agent.wait_parked(parked + 1.0).await;
    for n in 0..5 {
        agent.put(&format!("/v1/kv/app/other{n}"), "x").await.expect_status(200);
        agent.put("/v1/kv/app/kk", "prefix of nothing").await.expect_status(200);
    }
    agent.put("/v1/kv/app/k", "v2").await.expect_status(200);
    let fired = wait_fires(&out, 3).await;
    assert_eq!(fired[2].0["Value"], b64("v2"), "writes to other keys must not fire: {fired:?}");
    // One change, one fire: a second fire for v2 would come before v3's.
    agent.put("/v1/kv/app/k", "v3").await.expect_status(200);
    let fired = wait_fires(&out, 4).await;
    assert_eq!(fired[3].0["Value"], b64("v3"), "one change, one fire: {fired:?}");
}

#[tokio::test]
async fn service_watch_fires_when_an_instance_goes_critical() {
    let agent = TestAgent::dev("watch-service").await;
    let service = json!({"Name": "web", "ID": "web1", "Port": 8080, "Check": {"TTL": "60s"}});
    agent.put_json("/v1/agent/service/register", &service).await.expect_status(200);
    agent.put("/v1/agent/check/pass/service:web1", "").await.expect_status(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = out_file(&dir);
    let _watch = Watch::start(&agent, &["-type", "service", "-service", "web"], &out);

    let fired = wait_fires(&out, 1).await;
    let status = |fire: &(Value, u64)| fire.0[0]["Checks"][0]["Status"].as_str().map(str::to_owned);
    assert_eq!(fired[0].0.as_array().map(Vec::len), Some(1), "{:?}", fired[0]);
    assert_eq!(fired[0].0[0]["Service"]["ID"], "web1");
    assert_eq!(status(&fired[0]).as_deref(), Some("passing"));

    agent.put("/v1/agent/check/fail/service:web1?note=down", "").await.expect_status(200);
    let fired = wait_fires(&out, 2).await;
    let checks = fired[1].0[0]["Checks"].as_array().cloned().unwrap_or_default();
    let web_check = checks.iter().find(|check| check["CheckID"] == "service:web1").expect("the service check");
    assert_eq!(web_check["Status"], "critical", "{web_check}");
}

#[tokio::test]
async fn watch_without_a_handler_prints_the_current_result_and_exits() {
    let agent = TestAgent::dev("watch-print").await;
    agent.put("/v1/kv/cfg/a", "1").await.expect_status(200);
    agent.put("/v1/kv/cfg/b", "2").await.expect_status(200);
    let printed = watch_once(&agent, &["-type", "keyprefix", "-prefix", "cfg/"]).await;
    assert!(printed.status.success(), "{printed:?}");
    let stdout = String::from_utf8_lossy(&printed.stdout);
    let entries: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let keys: Vec<&str> = entries.as_array().into_iter().flatten().filter_map(|e| e["Key"].as_str()).collect();
    assert_eq!(keys, ["cfg/a", "cfg/b"]);
    assert!(stdout.contains("\n    {"), "indented like Consul's: {stdout}");
}

#[tokio::test]
async fn watch_refuses_missing_and_foreign_parameters() {
    let agent = TestAgent::dev("watch-params").await;
    let missing = watch_once(&agent, &["-type", "key"]).await;
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && stderr.contains("Must specify a single key to watch"), "{missing:?}");
    let foreign = watch_once(&agent, &["-type", "nodes", "-key", "k"]).await;
    let stderr = String::from_utf8_lossy(&foreign.stderr);
    assert!(!foreign.status.success() && stderr.contains("Invalid parameters: [key]"), "{foreign:?}");
}
