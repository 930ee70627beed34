//! `/v1/agent/metrics` as Prometheus and Consul's JSON see it: the exposition passes `promtool check metrics`, a KV
//! write, a DNS query, an HTTP request and a check flap each move their metric by exactly what was done, the JSON
//! summary has Consul's field names, a statsd sink receives lines on a socket the test binds, and `prefix_filter`
//! hides a metric.

use std::io::Write as _;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roster_tests::prometheus::{sample, scrape};
use roster_tests::{FlipBackend, TestAgent};
use serde_json::{Value, json};

/// What the Prometheus tests configure: the exposition on, gauge names without the hostname.
fn prometheus_on() -> Value {
    json!({"telemetry": {"prometheus_retention_time": "1h", "disable_hostname": true}})
}

/// One DNS query for `name` (type A) over UDP, answered once: no retries that would count twice.
fn dns_query(agent: &TestAgent, name: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).expect("short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    socket.send_to(&query, agent.dns_addr()).expect("send");
    let mut reply = [0u8; 512];
    let (len, _) = socket.recv_from(&mut reply).expect("a DNS reply");
    assert!(len >= 12 && reply[..2] == [0x12, 0x34], "a reply to our query");
}

/// The check's status as the agent shows it, polled until it is `want`.
async fn wait_check(agent: &TestAgent, check_id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let checks = agent.get("/v1/agent/checks").await.json();
        if checks[check_id]["Status"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "{check_id} never became {want}: {checks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lints `promtool check metrics` raises against Consul's own names, which roster keeps so that dashboards and
/// alerts written for Consul work: counters without `_total` (`consul_raft_apply`) and camelCase
/// (`consul_raft_commitTime`). Anything else it reports (a missing HELP, a malformed line) fails the test.
const CONSUL_NAMING_LINTS: [&str; 2] =
    ["counter metrics should have \"_total\" suffix", "metric names should be written in 'snake_case' not 'camelCase'"];

fn promtool_check(exposition: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => panic!("promtool is needed: apt-get install prometheus (.ci/run does): {err}"),
    };
    child.stdin.take().expect("stdin").write_all(exposition.as_bytes()).expect("write the exposition");
    let output = child.wait_with_output().expect("promtool ran");
    let problems = String::from_utf8_lossy(&output.stderr).into_owned();
    // promtool exits 1 on text it cannot parse and 3 when it only has lints to report.
    match output.status.code() {
        Some(0) => {}
        Some(3) => {
            for problem in problems.lines() {
                assert!(
                    CONSUL_NAMING_LINTS.iter().any(|lint| problem.ends_with(lint)),
                    "promtool: {problem}\n(all of it: {problems})"
                );
            }
        }
        other => panic!("promtool check metrics exited {other:?}: {problems}\n{exposition}"),
    }
}

#[tokio::test]
async fn prometheus_exposition_passes_promtool_and_moves_by_exactly_what_was_done() {
    let agent = TestAgent::dev_with_dns("metrics-prom", prometheus_on()).await;

    let before = scrape(&agent).await;
    agent.put("/v1/kv/metrics/one", "1").await.expect_status(200);
    let after = scrape(&agent).await;
    assert_eq!(sample(&after, "consul_kvs_apply_count") - sample(&before, "consul_kvs_apply_count"), 1.0);
    assert!(sample(&after, "consul_raft_apply") > sample(&before, "consul_raft_apply"), "{after}");

    let self_series = r#"consul_api_http_count{method="GET",path="v1_agent_self"}"#;
    let before = scrape(&agent).await;
    agent.get("/v1/agent/self").await.expect_status(200);
    let after = scrape(&agent).await;
    assert_eq!(sample(&after, self_series) - sample(&before, self_series), 1.0, "{after}");

    let before = scrape(&agent).await;
    dns_query(&agent, "consul.service.consul");
    let after = scrape(&agent).await;
    let queries = "consul_dns_domain_query_count";
    assert_eq!(sample(&after, queries) - sample(&before, queries), 1.0, "{after}");

    let backend = FlipBackend::start().await.expect("backend");
    let check = json!({"HTTP": format!("http://{}/", backend.addr()), "Interval": "1s"});
    agent.put_json("/v1/agent/service/register", &json!({"Name": "flappy", "Check": check})).await.expect_status(200);
    wait_check(&agent, "service:flappy", "passing").await;
    let critical = r#"roster_checks_status_changes_total{type="http",status="critical"}"#;
    let passing = r#"roster_checks_status_changes_total{type="http",status="passing"}"#;
    let before = scrape(&agent).await;
    backend.set_healthy(false);
    wait_check(&agent, "service:flappy", "critical").await;
    backend.set_healthy(true);
    wait_check(&agent, "service:flappy", "passing").await;
    let after = scrape(&agent).await;
    assert_eq!(sample(&after, critical) - sample(&before, critical), 1.0, "{after}");
    assert_eq!(sample(&after, passing) - sample(&before, passing), 1.0, "{after}");

    for series in ["consul_raft_commitTime_count", "consul_server_isLeader", "roster_process_resident_memory_bytes"] {
        assert!(after.lines().any(|line| line.starts_with(series)), "{series} missing:\n{after}");
    }
    promtool_check(&after);
}

#[tokio::test]
async fn the_json_summary_has_consuls_shape_and_other_formats_are_refused() {
    let agent = TestAgent::dev("metrics-json").await;
    // The summary shows the last finished 10 s interval; whichever it is, requests keep landing in it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let summary = loop {
        agent.get("/v1/agent/self").await.expect_status(200);
        let res = agent.get("/v1/agent/metrics").await;
        res.expect_status(200);
        let summary = res.json();
        if summary["Counters"].as_array().is_some_and(|c| !c.is_empty()) {
            break summary;
        }
        assert!(Instant::now() < deadline, "no counters in any interval: {summary}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&summary), ["Counters", "Gauges", "Points", "Samples", "Timestamp"]);
    let timestamp = summary["Timestamp"].as_str().expect("a timestamp");
    assert!(timestamp.ends_with(" +0000 UTC") && timestamp.len() == 29, "Go's UTC time format: {timestamp}");
    let sampled = ["Count", "Labels", "Max", "Mean", "Min", "Name", "Rate", "Stddev", "Sum"];
    for counter in summary["Counters"].as_array().expect("counters") {
        assert_eq!(keys(counter), sampled, "{counter}");
    }
    for timer in summary["Samples"].as_array().expect("samples") {
        assert_eq!(keys(timer), sampled, "{timer}");
    }
    let gauges = summary["Gauges"].as_array().expect("gauges");
    assert!(!gauges.is_empty(), "the process gauges: {summary}");
    for gauge in gauges {
        assert_eq!(keys(gauge), ["Labels", "Name", "Value"], "{gauge}");
    }

    // Without a retention time Consul has no Prometheus registry, and says so with a 415.
    let res = agent.get("/v1/agent/metrics?format=prometheus").await;
    res.expect_status(415);
    assert!(
        res.text().contains("Prometheus is not enabled since its retention time is not positive"),
        "{}",
        res.text()
    );
    let res = agent.get("/v1/agent/metrics?format=json").await;
    res.expect_status(400);
    assert!(res.text().contains("\"json\""), "{}", res.text());
}

#[tokio::test]
async fn a_statsd_sink_receives_lines_on_the_socket_the_test_binds() {
    let statsd = UdpSocket::bind("127.0.0.1:0").expect("bind");
    statsd.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let addr = statsd.local_addr().expect("addr").to_string();
    let agent = TestAgent::dev_with_dns("metrics-statsd", json!({"telemetry": {"statsd_address": addr}})).await;
    agent.put("/v1/kv/metrics/statsd", "1").await.expect_status(200);
    // Packets carry whatever was recorded in the last 100 ms; read until the write's timer shows up.
    let mut buf = [0u8; 2048];
    let mut seen = String::new();
    let line = loop {
        let len = statsd.recv(&mut buf).unwrap_or_else(|err| panic!("no consul.kvs.apply line ({err}); saw:\n{seen}"));
        let packet = String::from_utf8_lossy(&buf[..len]).into_owned();
        if let Some(line) = packet.lines().find(|line| line.starts_with("consul.kvs.apply:")) {
            break line.to_owned();
        }
        seen.push_str(&packet);
    };
    assert!(line.ends_with("|ms"), "a timer in go-metrics' statsd format: {line}");
}

#[tokio::test]
async fn prefix_filter_hides_a_metric() {
    let mut config = prometheus_on();
    config["telemetry"]["prefix_filter"] = json!(["-consul.kvs"]);
    let agent = TestAgent::dev_with_dns("metrics-filter", config).await;
    agent.put("/v1/kv/metrics/hidden", "1").await.expect_status(200);
    let exposition = scrape(&agent).await;
    assert!(!exposition.contains("consul_kvs_apply"), "{exposition}");
    // The same request's HTTP timer is not filtered.
    assert!(exposition.contains(r#"consul_api_http_count{method="PUT",path="v1_kv_"} 1"#), "{exposition}");
}

/// Scrapes until `series` reads `want` (the task gauge is recounted just after each change the job manager makes).
async fn wait_sample(agent: &TestAgent, series: &str, want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exposition = scrape(agent).await;
        if sample(&exposition, series) == want {
            return exposition;
        }
        assert!(Instant::now() < deadline, "{series} never read {want}:\n{exposition}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_start_and_a_restart_move_the_runtime_metrics_by_exactly_one() {
    if !roster_tests::exec::exec_or_skip("the runtime-shim metrics test") {
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let rootfs = tempfile::tempdir().expect("rootfs");
    roster_tests::exec::busybox_rootfs(rootfs.path(), &["sleep"]);
    let mode = roster_tests::AgentMode::Server { data_dir: data.path().to_path_buf() };
    let agent = TestAgent::start_with_config("metrics-tasks", mode, prometheus_on()).await.expect("agent");
    let running = r#"roster_runtime_tasks{state="running"}"#;
    let restarting = r#"roster_runtime_tasks{state="restarting"}"#;
    let restarts = r#"roster_runtime_task_restarts_total{driver="exec"}"#;
    let before = wait_sample(&agent, running, 0.0).await;

    let spec = json!({"name": "ticker", "tasks": [{
        "name": "main", "driver": "exec", "rootfs": rootfs.path(), "command": "/bin/sleep", "args": ["3600"],
        "restart": {"policy": "on-failure", "delay": "500ms"}, "stop_timeout": "1s",
    }]});
    agent.put_json("/v1/agent/job", &spec).await.expect_status(200);
    let started = wait_sample(&agent, running, 1.0).await;
    assert_eq!(sample(&started, restarting), 0.0, "{started}");
    assert_eq!(sample(&started, restarts), sample(&before, restarts), "a first start is not a restart");

    // Killed: restarted once by its policy, and running again.
    let state = data.path().join("exec/ticker.main/state.json");
    let pid =
        serde_json::from_slice::<Value>(&std::fs::read(&state).expect("the task's state")).expect("state json")["pid"]
            .as_i64()
            .expect("a pid");
    let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let after = wait_sample(&agent, restarts, sample(&before, restarts) + 1.0).await;
    let after = if sample(&after, running) == 1.0 { after } else { wait_sample(&agent, running, 1.0).await };
    assert_eq!(sample(&after, restarts) - sample(&before, restarts), 1.0, "{after}");
    assert_eq!(sample(&after, restarting), 0.0, "{after}");

    agent.delete("/v1/agent/job/ticker").await.expect_status(200);
    wait_sample(&agent, running, 0.0).await;
}

/// The Raft log and snapshot gauges (issue 19's "log/snapshot sizes"): writes grow the log and move
/// `consul_raft_last_index` and `consul_raft_applied_index` with them; the snapshot openraft takes after
/// `SNAPSHOT_EVERY` (8192) entries sets the snapshot gauges, times `consul_raft_snapshot_create` and `_persist`,
/// and the purge that follows shrinks the log.
#[tokio::test]
async fn raft_log_and_snapshot_gauges_follow_writes_and_a_snapshot() {
    let agent = TestAgent::dev_with_dns("metrics-raft", prometheus_on()).await;
    let before = scrape(&agent).await;
    assert!(sample(&before, "roster_raft_log_entries") > 0.0, "the log holds the writes of start-up:\n{before}");
    assert_eq!(sample(&before, "roster_raft_snapshot_index"), 0.0, "no snapshot yet:\n{before}");

    let n_writes = 20;
    for i in 0..n_writes {
        agent.put(&format!("/v1/kv/raft-gauges/{i}"), "v").await.expect_status(200);
    }
    let after = scrape(&agent).await;
    for gauge in ["roster_raft_log_entries", "consul_raft_last_index", "consul_raft_applied_index"] {
        // At least: the agent's own writes (anti-entropy, coordinates) may land in between.
        assert!(sample(&after, gauge) - sample(&before, gauge) >= f64::from(n_writes), "{gauge}:\n{after}");
    }
    assert!(sample(&after, "roster_raft_log_bytes") > sample(&before, "roster_raft_log_bytes"), "{after}");
    assert!(sample(&after, "consul_raft_applied_index") <= sample(&after, "consul_raft_last_index"), "{after}");

    // Enough writes for openraft's snapshot policy, sent a few at a time.
    let peak_entries = fill_until_snapshot(&agent).await;
    let snapshotted = scrape(&agent).await;
    assert!(sample(&snapshotted, "roster_raft_snapshot_bytes") > 0.0, "{snapshotted}");
    assert!(sample(&snapshotted, "consul_raft_snapshot_create_count") >= 1.0, "{snapshotted}");
    assert!(sample(&snapshotted, "consul_raft_snapshot_persist_count") >= 1.0, "{snapshotted}");
    // The purge after the snapshot keeps only openraft's tail (1024 entries) and what came since.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = scrape(&agent).await;
        let entries = sample(&now, "roster_raft_log_entries");
        if entries < peak_entries / 2.0 {
            assert!(sample(&now, "roster_raft_log_bytes") < sample(&snapshotted, "roster_raft_log_bytes") + 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "the log was never purged after the snapshot ({entries} entries):\n{now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes keys until `roster_raft_snapshot_index` moves off 0; returns the most log entries seen on the way.
async fn fill_until_snapshot(agent: &TestAgent) -> f64 {
    let mut peak: f64 = 0.0;
    for round in 0..200 {
        let writes = (0..64).map(|i| {
            let path = format!("/v1/kv/raft-fill/{round}-{i}");
            async move { agent.put(&path, "v").await }
        });
        for res in futures_util::future::join_all(writes).await {
            res.expect_status(200);
        }
        let exposition = scrape(agent).await;
        peak = peak.max(sample(&exposition, "roster_raft_log_entries"));
        if sample(&exposition, "roster_raft_snapshot_index") > 0.0 {
            return peak;
        }
    }
    panic!("no snapshot after 12 800 writes:\n{}", scrape(agent).await);
}
