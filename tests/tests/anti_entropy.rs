//! What an anti-entropy pass costs in Raft writes (issue 20: "a full pass of a 200-service agent costs no more than a
//! few writes when nothing changed"): with 200 services in sync, idle passes write nothing; a service removed from
//! the catalog behind the agent's back, or a stray one added, costs exactly the one write that repairs it.
//!
//! Passes are counted by the agent (`roster_agent_anti_entropy_syncs_total`) and run every 200 ms under the
//! debug-build knob `ROSTER_TEST_ANTI_ENTROPY_MS`, so the test waits on the counter, not on a clock; writes are
//! the leader's `consul_raft_apply`. Without anti-entropy reading first, each idle pass here wrote 202 entries.

use std::time::{Duration, Instant};

use roster_tests::prometheus::{sample, scrape};
use roster_tests::{AgentMode, TestAgent};
use serde_json::json;

const N_SERVICES: usize = 200;
const SYNCS: &str = "roster_agent_anti_entropy_syncs_total";
const AE_WRITES: &str = "roster_agent_anti_entropy_writes_total";
const RAFT_APPLY: &str = "consul_raft_apply";

/// Waits until `n_passes` passes have completed after this call, and returns the exposition then. A pass already
/// running when this is called may have read the catalog before the caller's last change, so one extra pass is
/// waited for.
async fn after_passes(agent: &TestAgent, n_passes: u32) -> String {
    let start = sample(&scrape(agent).await, SYNCS);
    let started = Instant::now();
    loop {
        let exposition = scrape(agent).await;
        if sample(&exposition, SYNCS) >= start + f64::from(n_passes) + 1.0 {
            return exposition;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "fewer than {n_passes} anti-entropy passes in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes between two expositions: the leader's Raft applies, and the writes anti-entropy reports for itself.
fn writes(before: &str, after: &str) -> (f64, f64) {
    (sample(after, RAFT_APPLY) - sample(before, RAFT_APPLY), sample(after, AE_WRITES) - sample(before, AE_WRITES))
}

async fn agent_with_200_services(name: &str, data_dir: &std::path::Path) -> TestAgent {
    // Coordinate updates are the one other periodic writer of an idle single server (one every 15-30 s); off, so
    // every Raft write the test sees is one it caused or anti-entropy made.
    let config = json!({
        "telemetry": {"prometheus_retention_time": "1h", "disable_hostname": true},
        "disable_coordinates": true,
    });
    let mode = AgentMode::Server { data_dir: data_dir.to_path_buf() };
    let agent = TestAgent::start_with_env(name, mode, config, &[("ROSTER_TEST_ANTI_ENTROPY_MS", "200")])
        .await
        .expect("starting the agent");
    for idx in 0..N_SERVICES {
        let service = json!({
            "ID": format!("svc-{idx}"), "Name": format!("svc-{}", idx % 20), "Port": 1000 + idx, "Tags": ["t"],
            "Meta": {"idx": idx.to_string()},
            "Check": {"CheckID": format!("ttl-{idx}"), "TTL": "30m", "Status": "passing"},
        });
        agent.put_json("/v1/agent/service/register", &service).await.expect_status(200);
    }
    agent
}

#[tokio::test]
async fn idle_passes_of_a_200_service_agent_write_nothing() {
    let dir = tempfile::tempdir().expect("data dir");
    let agent = agent_with_200_services("ae-idle", dir.path()).await;
    // The first pass after the registrations finds the catalog already in step (each registration wrote itself).
    let before = after_passes(&agent, 1).await;
    let after = after_passes(&agent, 5).await;
    assert_eq!(writes(&before, &after), (0.0, 0.0), "idle passes wrote");
    let services = agent.get(&format!("/v1/catalog/node/{}", agent.node_name())).await.json();
    let n_held = services["Services"].as_object().map_or(0, serde_json::Map::len);
    // The agent's 200 and the server's own `consul` service.
    assert_eq!(n_held, N_SERVICES + 1);
}

#[tokio::test]
async fn a_change_behind_the_agents_back_costs_exactly_its_repair() {
    let dir = tempfile::tempdir().expect("data dir");
    let agent = agent_with_200_services("ae-change", dir.path()).await;
    let node = agent.node_name().to_owned();
    let before = after_passes(&agent, 1).await;

    // Removed from the catalog, not from the agent: one write to remove, one to put it back.
    let removal = json!({"Node": node, "ServiceID": "svc-7"});
    agent.put_json("/v1/catalog/deregister", &removal).await.expect_status(200);
    let after = after_passes(&agent, 2).await;
    assert_eq!(writes(&before, &after), (2.0, 1.0), "the deregistration and its single repair");
    // `svc-7` is an instance of the service `svc-7` (IDs 7, 27, 47, ...).
    let restored = agent.get("/v1/health/service/svc-7?passing").await.json();
    let ids: Vec<&str> =
        restored.as_array().expect("a list").iter().filter_map(|e| e["Service"]["ID"].as_str()).collect();
    assert!(ids.contains(&"svc-7"), "svc-7 is back, with its check passing: {ids:?}");

    // Registered in the catalog for this node, unknown to the agent: one write to add, one to remove.
    let stray = json!({"Node": node, "Address": "127.0.0.1", "SkipNodeUpdate": true,
        "Service": {"ID": "stray", "Service": "stray", "Port": 1}});
    agent.put_json("/v1/catalog/register", &stray).await.expect_status(200);
    let after_stray = after_passes(&agent, 2).await;
    assert_eq!(writes(&after, &after_stray), (2.0, 1.0), "the stray registration and its single removal");
    let gone = agent.get("/v1/catalog/service/stray").await.json();
    assert_eq!(gone, json!([]));
}
