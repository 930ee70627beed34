//! Logs and fitting in with init systems, black-box: `/v1/agent/monitor` and `roster monitor` stream lines logged after
//! they connect at their own level (a bad level is a 400), `log_json` lines carry Consul's fields, `log_file` rotates
//! by size keeping `log_rotate_max_files`, the `pid_file` lives exactly as long as the agent, systemd hears `READY=1`,
//! `RELOADING=1` and `STOPPING=1`, `/v1/agent/host` describes the machine, and the shipped unit file verifies.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use roster_tests::{AgentMode, TestAgent, roster_bin};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc::UnboundedReceiver;

/// How long anything asked for may take to show; only a hang comes near it.
const DEADLINE: Duration = Duration::from_secs(20);

async fn dev(node: &str, extra: Value) -> TestAgent {
    TestAgent::start_with_config(node, AgentMode::Dev, extra)
        .await
        .unwrap_or_else(|err| panic!("starting {node}: {err:#}"))
}

/// Reloads until `lines` yields one containing `needle`: the client subscribes some time after it connects, so the
/// action is repeated (each reload logs the line again) until the line arrives.
async fn reload_until_seen(agent: &TestAgent, lines: &mut UnboundedReceiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "no {needle:?} streamed within {DEADLINE:?}");
        agent.put("/v1/agent/reload", "").await.expect_status(200);
        let wait_for = async {
            loop {
                match lines.recv().await {
                    Some(line) if line.contains(needle) => return line,
                    Some(_) => {}
                    None => panic!("the stream ended"),
                }
            }
        };
        if let Ok(found) = tokio::time::timeout(Duration::from_millis(500), wait_for).await {
            return found;
        }
    }
}

/// The lines of a streamed HTTP body, as they arrive.
fn body_lines(mut response: reqwest::Response) -> UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut pending = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if tx.send(line.trim_end().to_owned()).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[tokio::test]
async fn roster_monitor_streams_lines_logged_after_it_connects_at_its_own_level() {
    // The agent logs errors only, so the reload's info line reaches the monitor and not the agent's own log.
    let agent = dev("mon1", json!({"log_level": "error"})).await;
    let mut child = tokio::process::Command::new(roster_bin())
        .args(["monitor", "-log-level", "info", &format!("-http-addr={}", agent.http_addr())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning roster monitor");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = reload_until_seen(&agent, &mut lines, "configuration reloaded").await;
    assert!(line.contains(" [INFO]  ") && line.contains("roster_agent::http::agent: configuration reloaded"), "{line}");
    assert!(!agent.stderr_tail().contains("configuration reloaded"), "the agent's own log is at error");
}

#[tokio::test]
async fn the_monitor_streams_json_with_consuls_fields_and_refuses_an_unknown_level() {
    let agent = dev("mon2", json!({})).await;
    let refused = agent.get("/v1/agent/monitor?loglevel=loud").await;
    refused.expect_status(400);
    assert_eq!(refused.text().trim(), "Unknown log level: loud");
    let http_addr = format!("-http-addr={}", agent.http_addr());
    let cli = agent.cli_env(&["monitor", &http_addr, "-log-level", "loud"], &[]).await;
    assert_eq!(cli.code, Some(1));
    assert!(cli.stderr.contains("Unexpected response code: 400 (Unknown log level: loud)"), "{}", cli.stderr);

    let stream =
        agent.client().get(agent.url("/v1/agent/monitor?loglevel=DEBUG&logjson")).send().await.expect("connect");
    assert_eq!(stream.status().as_u16(), 200);
    let mut lines = body_lines(stream);
    let line = reload_until_seen(&agent, &mut lines, "configuration reloaded").await;
    let line: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(line["@level"], "info");
    assert_eq!(line["@module"], "roster_agent::http::agent");
    assert!(line["@message"].as_str().is_some_and(|m| m.starts_with("configuration reloaded over HTTP")), "{line}");
    assert!(line["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
}

#[tokio::test]
async fn a_reloaded_log_level_quiets_the_agents_log_but_not_a_monitor() {
    let agent = dev("lvl1", json!({"log_level": "info"})).await;
    let stream = agent.client().get(agent.url("/v1/agent/monitor?loglevel=info")).send().await.expect("connect");
    let mut lines = body_lines(stream);
    agent.rewrite_config(json!({"log_level": "error"}));
    let line = reload_until_seen(&agent, &mut lines, "configuration reloaded over HTTP").await;
    assert!(line.contains(" [INFO]  "), "{line}");
    // Every reload's line was logged after the first one made the agent's level error.
    assert!(!agent.stderr_tail().contains("configuration reloaded over HTTP"), "{}", agent.stderr_tail());
}

#[tokio::test]
async fn log_json_writes_every_line_of_the_agents_log_with_consuls_fields() {
    let agent = dev("json1", json!({"log_json": true})).await;
    agent.put("/v1/agent/reload", "").await.expect_status(200);
    let deadline = Instant::now() + DEADLINE;
    while !agent.stderr_tail().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload line:\n{}", agent.stderr_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = agent.stderr_tail();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?} is not JSON: {err}")))
        .collect();
    assert!(lines.len() > 3, "{log}");
    for line in &lines {
        for field in ["@level", "@message", "@module", "@timestamp"] {
            assert!(line[field].is_string(), "{field} missing in {line}");
        }
    }
    let ready = lines.iter().find(|line| line["@message"] == "agent ready").expect("the ready line");
    assert_eq!(ready["node"], "json1");
}

#[tokio::test]
async fn log_file_rotates_by_size_and_keeps_log_rotate_max_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let config = json!({
        "log_level": "debug",
        "log_file": format!("{}/", logs.display()),
        "log_rotate_bytes": 1024,
        "log_rotate_max_files": 2,
    });
    let agent = dev("file1", config).await;
    let rotated = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("roster-") && name.ends_with(".log"))
            .collect();
        names.sort();
        names
    };
    // Reload until the first two rotated files have been pruned away, checking the limit all along.
    let deadline = Instant::now() + DEADLINE;
    let mut first_seen: Option<Vec<String>> = None;
    loop {
        agent.put("/v1/agent/reload", "").await.expect_status(200);
        let now = rotated(&logs);
        assert!(now.len() <= 2, "more than log_rotate_max_files rotated files: {now:?}");
        if now.len() == 2 {
            match &first_seen {
                None => first_seen = Some(now.clone()),
                Some(first) if first.iter().all(|name| !now.contains(name)) => break,
                Some(_) => {}
            }
        }
        assert!(Instant::now() < deadline, "the log never rotated twice over: {now:?}");
    }
    let current = logs.join("roster.log");
    let mode = std::fs::metadata(&current).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode & 0o037, 0, "group may read, others nothing: {mode:o}");
    let text = std::fs::read_to_string(&current).expect("read");
    assert!(text.lines().all(|line| line.contains(" [")), "text lines: {text}");
    assert!(agent.is_running());
}

#[tokio::test]
async fn the_pid_file_exists_while_the_agent_runs_and_is_removed_at_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("roster.pid");
    let mut agent = dev("pid1", json!({"pid_file": pid_file.display().to_string()})).await;
    let written = std::fs::read_to_string(&pid_file).expect("the pid file exists");
    assert_eq!(written.trim(), agent.pid().expect("running").to_string());
    let status = agent.terminate(DEADLINE).await.expect("the agent stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!pid_file.exists(), "the pid file outlived the agent");
}

#[tokio::test]
async fn systemd_hears_ready_reloading_and_stopping_on_its_notify_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let path = socket_path.display().to_string();
    let mut agent = TestAgent::start_with_env("sd1", AgentMode::Dev, json!({}), &[("NOTIFY_SOCKET", &path)])
        .await
        .expect("starting the agent");
    let receive = |socket: &UnixDatagram| {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(receive(&socket).starts_with("READY=1\n"));
    // Serving by then: the readiness line came first, and the API answers.
    agent.get("/v1/status/leader").await.expect_status(200);
    agent.put("/v1/agent/reload", "").await.expect_status(200);
    assert!(receive(&socket).starts_with("RELOADING=1\n"));
    assert!(receive(&socket).starts_with("READY=1\n"));
    let pid = agent.pid().expect("running");
    let status = agent.terminate(DEADLINE).await.expect("stops");
    assert!(status.success(), "agent {pid}: {status:?}");
    assert!(receive(&socket).starts_with("STOPPING=1\n"));
}

#[tokio::test]
async fn agent_host_describes_the_machine_in_consuls_shape() {
    let agent = dev("host1", json!({})).await;
    let host = agent.get("/v1/agent/host").await.expect_status(200).json();
    assert!(host["Memory"]["total"].as_u64().is_some_and(|total| total > 0), "{host}");
    assert!(host["CPU"].as_array().is_some_and(|cpus| !cpus.is_empty()), "{host}");
    assert_eq!(host["Host"]["os"], "linux");
    assert!(host["Host"]["kernelVersion"].as_str().is_some_and(|v| !v.is_empty()), "{host}");
    assert!(host["Disk"]["total"].as_u64().is_some_and(|total| total > 0), "{host}");
    assert!(host["CollectionTime"].as_i64().is_some_and(|t| t > 0), "{host}");
    assert!(host["Errors"].is_null(), "{host}");
}

#[tokio::test]
async fn agent_host_and_monitor_need_consuls_permissions() {
    let config =
        json!({"acl": {"enabled": true, "default_policy": "deny", "tokens": {"initial_management": "root-secret"}}});
    let agent = dev("acl-host", config).await;
    agent.get("/v1/agent/host").await.expect_status(403);
    agent.get("/v1/agent/monitor").await.expect_status(403);
    let ok =
        agent.request_with_headers(reqwest::Method::GET, "/v1/agent/host", &[("X-Consul-Token", "root-secret")], None);
    ok.await.expect_status(200);
}

#[test]
fn the_shipped_systemd_unit_verifies() {
    let Ok(version) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        if std::env::var("ROSTER_REQUIRE_EXEC").as_deref() == Ok("1") {
            panic!("ROSTER_REQUIRE_EXEC=1 but systemd-analyze is not installed (.ci/run installs systemd)");
        }
        eprintln!("skipping the_shipped_systemd_unit_verifies: systemd-analyze is not installed");
        return;
    };
    assert!(version.status.success());
    // verify checks that ExecStart's binary exists, so the unit is checked with the binary under test in its place.
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd/roster.service"))
            .expect("the unit file");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("roster.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/roster", &roster_bin().display().to_string())).expect("write");
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}
