//! Configuration reload of a running agent started with `-config-dir`: SIGHUP, `PUT /v1/agent/reload` and
//! `roster reload` apply the config files' services and checks (leaving API registrations and parked blocking
//! queries alone), refuse a broken file or a restart-only key having changed nothing, and change the log level
//! and `limits.http_max_conns_per_client`.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use roster_tests::{AgentMode, TestAgent};
use serde_json::{Value, json};

/// How long an applied reload may take to show; only a hang comes near it.
const DEADLINE: Duration = Duration::from_secs(20);

fn write(dir: &Path, name: &str, text: &str) {
    // Written whole under another name, then renamed, so a reload never reads half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("writing a config file");
    std::fs::rename(&tmp, dir.join(name)).expect("renaming a config file");
}

fn hangup(agent: &TestAgent) {
    let pid = agent.pid().expect("the agent runs").to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
}

/// The IDs `/v1/agent/services` lists.
async fn service_ids(agent: &TestAgent) -> Vec<String> {
    let services = agent.get("/v1/agent/services").await.expect_status(200).json();
    services.as_object().expect("an object").keys().cloned().collect()
}

/// How many instances of `name` the catalog holds.
async fn catalog_count(agent: &TestAgent, name: &str) -> usize {
    agent.get(&format!("/v1/catalog/service/{name}")).await.expect_status(200).json().as_array().map_or(0, Vec::len)
}

/// Polls until the agent's stderr contains `needle`; stderr is read by another thread, so it may trail a little.
async fn wait_for_log(agent: &TestAgent, needle: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !agent.stderr_tail().contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in the log:\n{}", agent.stderr_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sighup_and_reload_apply_the_config_dir_and_leave_parked_watchers_alone() {
    let dir = tempfile::tempdir().expect("config dir");
    write(dir.path(), "00-base.json", r#"{"log_level": "info"}"#);
    let dir_flag = dir.path().display().to_string();
    let mode = AgentMode::Args(vec!["-dev".into(), "-config-dir".into(), dir_flag]);
    let agent = TestAgent::start_with_config("reloader", mode, json!({})).await.expect("agent starts");
    agent.wait_for_leader().await.expect("leader");

    // A blocking query parked on a key, on a client of its own that never times out while it waits.
    agent.put("/v1/kv/parked", "before").await.expect_status(200);
    let parked_at = agent.get("/v1/kv/parked").await.expect_status(200).index();
    let parked_url = agent.url(&format!("/v1/kv/parked?index={parked_at}&wait=10m"));
    let parked = tokio::spawn(async move {
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let response = client.get(parked_url).send().await.expect("the parked query answers");
        let index = response.headers().get("X-Consul-Index").expect("an index").to_str().expect("text").to_owned();
        (response.status().as_u16(), index.parse::<u64>().expect("a number"))
    });
    // An API registration, which no reload may touch.
    agent.put_json("/v1/agent/service/register", &json!({"Name": "by-api", "Port": 1})).await.expect_status(200);

    // A new service file and SIGHUP: it appears in the agent and in the catalog.
    write(
        dir.path(),
        "web.json",
        r#"{"service": {"name": "web", "port": 80, "check": {"check_id": "web-ttl", "ttl": "10m"}}}"#,
    );
    hangup(&agent);
    let deadline = Instant::now() + DEADLINE;
    while !service_ids(&agent).await.contains(&"web".to_owned()) || catalog_count(&agent, "web").await != 1 {
        assert!(Instant::now() < deadline, "web did not appear:\n{}", agent.stderr_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(agent.is_running());
    wait_for_log(&agent, "SIGHUP: configuration reloaded").await;
    // The check's state survives a reload that does not change its definition.
    agent.put("/v1/agent/check/pass/web-ttl?note=held", "").await.expect_status(200);
    agent.put("/v1/agent/reload", "").await.expect_status(200);
    let checks = agent.get("/v1/agent/checks").await.expect_status(200).json();
    assert_eq!(checks["web-ttl"]["Status"], "passing", "{checks}");
    assert_eq!(checks["web-ttl"]["Output"], "held", "{checks}");

    // A broken file: SIGHUP logs the error and changes nothing; HTTP and the CLI report it.
    let before = service_ids(&agent).await;
    assert_eq!(before, ["by-api", "web"]);
    write(dir.path(), "zz-broken.json", "{\"service\": {\"name\": \"db\", ");
    hangup(&agent);
    wait_for_log(&agent, "SIGHUP: configuration reload failed").await;
    wait_for_log(&agent, "zz-broken.json: invalid JSON").await;
    assert!(agent.is_running());
    assert_eq!(service_ids(&agent).await, before);
    let refused = agent.put("/v1/agent/reload", "").await;
    refused.expect_status(500);
    assert!(refused.text().contains("zz-broken.json: invalid JSON"), "{}", refused.text());
    let cli = agent.cli(&["reload"]).await;
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(cli.stderr.contains("Error reloading") && cli.stderr.contains("zz-broken.json"), "{cli:?}");

    // An unknown key and a key that needs a restart are refused by name, also changing nothing.
    write(dir.path(), "zz-broken.json", r#"{"service": {"name": "db"}, "no_such_key": 1}"#);
    let refused = agent.put("/v1/agent/reload", "").await;
    refused.expect_status(500);
    assert!(refused.text().contains(r#"unknown key "no_such_key""#), "{}", refused.text());
    write(dir.path(), "zz-broken.json", r#"{"service": {"name": "db"}, "datacenter": "dc9"}"#);
    let refused = agent.put("/v1/agent/reload", "").await;
    refused.expect_status(500);
    assert!(refused.text().contains("changing datacenter requires a restart"), "{}", refused.text());
    assert_eq!(service_ids(&agent).await, before);
    std::fs::remove_file(dir.path().join("zz-broken.json")).expect("remove");

    // None of this woke the parked query: it answers the next write to its key, with that write's index.
    assert!(!parked.is_finished(), "a reload woke a query parked on a key it never touched");
    agent.put("/v1/kv/parked", "after").await.expect_status(200);
    let written_at = agent.get("/v1/kv/parked").await.expect_status(200).index();
    let (status, woke_at) = tokio::time::timeout(DEADLINE, parked).await.expect("woken by the write").expect("join");
    assert_eq!((status, woke_at), (200, written_at));
    assert!(written_at > parked_at);

    // Removing the file and reloading through the CLI removes the service, and only it.
    std::fs::remove_file(dir.path().join("web.json")).expect("remove");
    let cli = agent.cli(&["reload"]).await;
    cli.expect_success();
    assert_eq!(cli.stdout.trim(), "Configuration reload triggered");
    assert_eq!(service_ids(&agent).await, ["by-api"]);
    assert_eq!(catalog_count(&agent, "web").await, 0);
    let checks: Value = agent.get("/v1/agent/checks").await.expect_status(200).json();
    assert!(checks.get("web-ttl").is_none(), "{checks}");

    // The log level and the per-client connection limit change: a connection past the new limit of one is
    // refused, which is logged at debug, a level the agent did not log at before.
    assert!(!agent.stderr_tail().contains("DEBUG"), "logging at debug before the reload");
    write(dir.path(), "00-base.json", r#"{"log_level": "debug", "limits": {"http_max_conns_per_client": 1}}"#);
    agent.put("/v1/agent/reload", "").await.expect_status(200);
    let http = agent.http_addr();
    let _first = std::net::TcpStream::connect(http).expect("connect");
    let mut second = std::net::TcpStream::connect(http).expect("connect");
    second.set_read_timeout(Some(DEADLINE)).expect("timeout");
    second.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut answer = String::new();
    let _ = second.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    wait_for_log(&agent, "refusing a connection over limits.http_max_conns_per_client").await;
    assert!(agent.is_running());
}

/// The TTL of the first answer to an A question for `name` over UDP, `None` when there is no answer.
async fn first_ttl(dns: std::net::SocketAddr, name: &str) -> Option<u32> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).expect("short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(&query, dns).await.expect("send");
    let mut reply = vec![0u8; 4096];
    let len = tokio::time::timeout(DEADLINE, socket.recv(&mut reply)).await.expect("an answer").expect("recv");
    let reply = &reply[..len];
    if u16::from_be_bytes([reply[6], reply[7]]) == 0 {
        return None;
    }
    // The question is ours, echoed; the answer's owner name is a compression pointer or labels.
    let mut at = query.len();
    if reply[at] & 0xC0 == 0xC0 {
        at += 2;
    } else {
        while reply[at] != 0 {
            at += usize::from(reply[at]) + 1;
        }
        at += 1;
    }
    at += 4;
    Some(u32::from_be_bytes(reply[at..at + 4].try_into().expect("four bytes")))
}

#[tokio::test]
async fn a_reload_hands_new_dns_settings_to_the_dns_threads() {
    let dir = tempfile::tempdir().expect("config dir");
    let dir_flag = dir.path().display().to_string();
    let mode = AgentMode::Args(vec!["-dev".into(), "-config-dir".into(), dir_flag]);
    let agent = TestAgent::start_with_config("dns-reload", mode, json!({"ports": {"dns": 0}})).await.expect("starts");
    agent.wait_for_leader().await.expect("leader");
    let service = json!({"Name": "web", "Port": 80, "Address": "10.1.2.3"});
    agent.put_json("/v1/agent/service/register", &service).await.expect_status(200);
    // Asked twice, so the second answer can come from the DNS answer cache.
    for _ in 0..2 {
        assert_eq!(first_ttl(agent.dns_addr(), "web.service.consul").await, Some(0));
    }

    write(dir.path(), "dns.json", r#"{"dns_config": {"service_ttl": {"*": "7s"}, "node_ttl": "30s"}}"#);
    agent.put("/v1/agent/reload", "").await.expect_status(200);
    assert_eq!(first_ttl(agent.dns_addr(), "web.service.consul").await, Some(7));
    assert_eq!(first_ttl(agent.dns_addr(), &format!("{}.node.consul", agent.node_name())).await, Some(30));

    // Whether a client caches lookups shapes the DNS view built at start: a change needs a restart and changes nothing.
    write(dir.path(), "dns.json", r#"{"dns_config": {"service_ttl": {"*": "9s"}, "use_cache": false}}"#);
    let refused = agent.put("/v1/agent/reload", "").await;
    refused.expect_status(500);
    assert!(refused.text().contains("changing dns_config.use_cache requires a restart"), "{}", refused.text());
    assert_eq!(first_ttl(agent.dns_addr(), "web.service.consul").await, Some(7));
    // The recursors are read per question, so they reload with the rest, as in Consul.
    write(dir.path(), "dns.json", r#"{"dns_config": {"service_ttl": {"*": "9s"}}, "recursors": ["127.0.0.1"]}"#);
    agent.put("/v1/agent/reload", "").await.expect_status(200);
    assert_eq!(first_ttl(agent.dns_addr(), "web.service.consul").await, Some(9));
}

#[tokio::test]
async fn a_config_file_service_removed_while_the_agent_was_down_is_gone_after_a_restart() {
    let data = tempfile::tempdir().expect("data dir");
    let dir = tempfile::tempdir().expect("config dir");
    write(dir.path(), "web.json", r#"{"service": {"name": "web", "port": 80}}"#);
    let args = [
        "-server",
        "-bootstrap-expect",
        "1",
        "-bind",
        "127.0.0.1",
        "-client",
        "127.0.0.1",
        "-data-dir",
        &data.path().display().to_string(),
        "-config-dir",
        &dir.path().display().to_string(),
    ]
    .map(str::to_owned);
    let mut agent =
        TestAgent::start_with_config("remembers", AgentMode::Args(args.to_vec()), json!({})).await.expect("starts");
    agent.wait_for_leader().await.expect("leader");
    agent.put_json("/v1/agent/service/register", &json!({"Name": "by-api", "Port": 1})).await.expect_status(200);
    assert_eq!(service_ids(&agent).await, ["by-api", "web"]);

    // The agent remembers in its data dir which registrations came from config files, so one whose file went
    // away while it was down is removed at start, and the API's stays.
    std::fs::remove_file(dir.path().join("web.json")).expect("remove");
    agent.restart().await;
    agent.wait_for_leader().await.expect("leader");
    assert_eq!(service_ids(&agent).await, ["by-api"]);
    assert_eq!(catalog_count(&agent, "web").await, 0);
    assert_eq!(catalog_count(&agent, "by-api").await, 1);
}

#[tokio::test]
async fn sighup_during_shutdown_does_not_kill_the_agent() {
    let mut agent = TestAgent::dev("hup-at-exit").await;
    let pid = agent.pid().expect("running").to_string();
    // SIGHUPs right behind the SIGTERM land while the agent drains and stops (or on the exited, unreaped process).
    let script = format!("kill -TERM {pid}; kill -HUP {pid}; kill -HUP {pid}");
    assert!(Command::new("sh").args(["-c", &script]).status().expect("sh").success());
    let status = agent.terminate(DEADLINE).await.expect("the agent stops on its own");
    assert!(status.success(), "exited with {status}:\n{}", agent.stderr_tail());
    assert!(agent.stderr_tail().contains("stopped"), "{}", agent.stderr_tail());
}
