//! Checks the agent runs itself: an HTTP check follows a real backend into and out of `?passing` and DNS-visible health, a TTL check expires, and a TCP check sees a closed port.
//! Consul's minimum check interval is 1 s, so these tests wait on blocking queries for a few seconds at most.

use std::time::{Duration, Instant};

use roster_tests::{FlipBackend, TestAgent};
use serde_json::{Value, json};

/// Blocks on `?passing` until `service` has `want` instances there, or panics after `limit`.
async fn wait_passing(agent: &TestAgent, service: &str, want: usize, limit: Duration) -> Value {
    let started = Instant::now();
    let mut index = 0;
    loop {
        let res = agent.get(&format!("/v1/health/service/{service}?passing&index={index}&wait=2s")).await;
        res.expect_status(200);
        let body = res.json();
        if body.as_array().map_or(0, Vec::len) == want {
            return body;
        }
        assert!(started.elapsed() < limit, "{service}: never {want} passing within {limit:?}: {body}");
        index = res.index();
    }
}

async fn check_of(agent: &TestAgent, id: &str) -> Value {
    agent.get("/v1/agent/checks").await.json()[id].clone()
}

#[tokio::test]
async fn http_check_follows_the_backend_in_and_out_of_passing() {
    let agent = TestAgent::dev("http-check").await;
    let backend = FlipBackend::start().await.expect("backend");
    let check = json!({"HTTP": format!("http://{}/health", backend.addr()), "Interval": "1s", "Timeout": "1s"});
    let body = json!({"Name": "files", "Port": backend.addr().port(), "Check": check});
    agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);

    let entries = wait_passing(&agent, "files", 1, Duration::from_secs(5)).await;
    let output = entries[0]["Checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["CheckID"] == "service:files")
        .expect("check")["Output"]
        .clone();
    assert!(output.as_str().is_some_and(|o| o.contains("200 OK")), "output says what the probe saw: {output}");

    backend.set_healthy(false);
    wait_passing(&agent, "files", 0, Duration::from_secs(5)).await;
    assert_eq!(check_of(&agent, "service:files").await["Status"], "critical");
    let summary = agent.get("/v1/agent/health/service/name/files?format=text").await;
    assert_eq!((summary.status, summary.text()), (503, "critical".to_owned()));

    backend.set_healthy(true);
    wait_passing(&agent, "files", 1, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn ttl_check_expires_to_critical_without_updates() {
    let agent = TestAgent::dev("ttl-expiry").await;
    let body = json!({"Name": "worker", "Check": {"TTL": "300ms"}});
    agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
    agent.put("/v1/agent/check/pass/service:worker", "").await.expect_status(200);
    assert_eq!(check_of(&agent, "service:worker").await["Status"], "passing");
    wait_passing(&agent, "worker", 0, Duration::from_secs(3)).await;
    let check = check_of(&agent, "service:worker").await;
    assert_eq!(check["Status"], "critical");
    assert!(check["Output"].as_str().is_some_and(|o| o.contains("TTL expired")), "{check}");
    // A heartbeat brings it back.
    agent.put("/v1/agent/check/pass/service:worker", "").await.expect_status(200);
    assert_eq!(wait_passing(&agent, "worker", 1, Duration::from_secs(2)).await[0]["Service"]["ID"], "worker");
}

#[tokio::test]
async fn tcp_check_against_a_closed_port_turns_critical_and_an_open_one_passing() {
    let agent = TestAgent::dev("tcp-check").await;
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    for (name, addr) in [("open-svc", open.local_addr().expect("addr")), ("closed-svc", closed)] {
        let body = json!({"Name": name, "Check": {"TCP": addr.to_string(), "Interval": "1s", "Status": "warning"}});
        agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
    }
    wait_passing(&agent, "open-svc", 1, Duration::from_secs(5)).await;
    let started = Instant::now();
    loop {
        let check = check_of(&agent, "service:closed-svc").await;
        if check["Status"] == "critical" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "closed port never critical: {check}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn deregistering_a_service_stops_its_check() {
    let agent = TestAgent::dev("check-stop").await;
    let backend = FlipBackend::start().await.expect("backend");
    let check = json!({"HTTP": format!("http://{}/", backend.addr()), "Interval": "1s"});
    agent.put_json("/v1/agent/service/register", &json!({"Name": "gone", "Check": check})).await.expect_status(200);
    wait_passing(&agent, "gone", 1, Duration::from_secs(5)).await;
    assert!(backend.hits() >= 1);
    agent.put("/v1/agent/service/deregister/gone", "").await.expect_status(200);
    let at_deregistration = backend.hits();
    // The witness: a 1 s check registered after the deregistration, on a backend of its own. Once it has probed four
    // times, the agent's check timers have run for at least three intervals since, in which a 1 s check left running
    // would have probed three times.
    let witness = FlipBackend::start().await.expect("witness backend");
    let check = json!({"HTTP": format!("http://{}/", witness.addr()), "Interval": "1s"});
    agent.put_json("/v1/agent/service/register", &json!({"Name": "witness", "Check": check})).await.expect_status(200);
    let started = Instant::now();
    while witness.hits() < 4 {
        assert!(started.elapsed() < Duration::from_secs(30), "the witness check probed {} times", witness.hits());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One probe may have been on its way at the deregistration; after that the backend hears nothing.
    let after = backend.hits();
    assert!(
        after <= at_deregistration + 1,
        "a 1 s check still probed after its service was deregistered: {at_deregistration} hits then, {after} now"
    );
    assert_eq!(check_of(&agent, "service:gone").await, Value::Null);
    assert_eq!(agent.get("/v1/health/checks/gone").await.json(), json!([]));
}

/// Consul's smallest `DeregisterCriticalServiceAfter` is one minute, so this test takes one: a service
/// whose check stays critical is deregistered by the agent itself, from the agent and the catalog,
/// while a sibling whose check passes stays.
#[tokio::test]
async fn a_service_critical_past_deregister_critical_service_after_is_removed() {
    let agent = TestAgent::dev("reaper").await;
    let doomed = json!({"Name": "doomed", "Port": 1,
        "Check": {"TTL": "10m", "DeregisterCriticalServiceAfter": "1m"}});
    agent.put_json("/v1/agent/service/register", &doomed).await.expect_status(200);
    let kept = json!({"Name": "kept", "Port": 2,
        "Check": {"TTL": "10m", "Status": "passing", "DeregisterCriticalServiceAfter": "1m"}});
    agent.put_json("/v1/agent/service/register", &kept).await.expect_status(200);
    let registered = Instant::now();
    assert_eq!(check_of(&agent, "service:doomed").await["Status"], "critical");

    let limit = Duration::from_secs(90);
    loop {
        let gone = agent.get("/v1/catalog/service/doomed").await.json() == json!([]);
        if gone {
            break;
        }
        assert!(registered.elapsed() < limit, "doomed still registered after {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        registered.elapsed() >= Duration::from_secs(59),
        "deregistered before the minute: {:?}",
        registered.elapsed()
    );
    agent.get("/v1/agent/service/doomed").await.expect_status(404);
    assert_eq!(agent.get("/v1/agent/checks").await.json().get("service:doomed"), None);
    assert_eq!(agent.get("/v1/catalog/service/kept").await.json().as_array().map(Vec::len), Some(1));
}

/// The catalog's output of check `id` on `node`.
async fn catalog_output(agent: &TestAgent, node: &str, id: &str) -> String {
    let checks = agent.get(&format!("/v1/health/node/{node}")).await.json();
    let check = checks.as_array().and_then(|list| list.iter().find(|c| c["CheckID"] == id).cloned());
    check.map(|c| c["Output"].as_str().unwrap_or_default().to_owned()).unwrap_or_default()
}

/// `check_update_interval`: a check whose output changes on every probe (here, a counter) with an
/// unchanged status reaches the catalog at most once per interval; with the interval at 0 every
/// change goes through.
#[tokio::test]
async fn output_only_changes_reach_the_catalog_once_per_check_update_interval() {
    for (interval, expect_catalog_moves) in [("1h", false), ("0s", true)] {
        let config = json!({"enable_script_checks": true, "check_update_interval": interval});
        let node = format!("output-{}", interval.trim_end_matches(char::is_alphabetic));
        let agent = TestAgent::start_with_config(&node, roster_tests::AgentMode::Dev, config).await.expect("agent");
        let counter = tempfile::NamedTempFile::new().expect("counter file");
        let script = format!(
            "n=$(($(cat {0} 2>/dev/null || echo 0)+1)); echo $n > {0}; echo probe-$n",
            counter.path().display()
        );
        let check =
            json!({"Name": "counter", "Args": ["/bin/sh", "-c", script], "Interval": "1s", "Status": "passing"});
        agent.put_json("/v1/agent/check/register", &check).await.expect_status(200);

        // Wait for the first probe's output to reach the catalog, then for the agent to hold the output of three
        // later probes: each a change of output alone, which the 0 s interval sends on and the 1 h one keeps back.
        let started = Instant::now();
        let first = loop {
            let output = catalog_output(&agent, &node, "counter").await;
            if output.starts_with("probe-") {
                break output;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no probe output in the catalog");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let probe_of = |output: &str| output.trim().strip_prefix("probe-").and_then(|n| n.parse::<u32>().ok());
        let first_probe = probe_of(&first).expect("a probe's output");
        let started = Instant::now();
        loop {
            let local = check_of(&agent, "counter").await;
            if probe_of(local["Output"].as_str().unwrap_or_default()).is_some_and(|n| n >= first_probe + 3) {
                assert_eq!(local["Status"], "passing");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the check stopped probing: {local}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let catalog = if expect_catalog_moves {
            // Sent on as each output came: the catalog moves (it may trail the agent by one write).
            let started = Instant::now();
            loop {
                let catalog = catalog_output(&agent, &node, "counter").await;
                if catalog != first {
                    break catalog;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "interval {interval}: catalog stayed {first:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            // Kept back: three changes the agent holds, none in the catalog.
            catalog_output(&agent, &node, "counter").await
        };
        assert_eq!(catalog != first, expect_catalog_moves, "interval {interval}: catalog {catalog:?}, first {first:?}");
    }
}
