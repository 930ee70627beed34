//! Autopilot on a real cluster (3 servers, 1 client, `server_stabilization_time` 3s): the configuration seeded from
//! the agents' `autopilot` block and changed with a CAS, server health, a killed follower cleaned out of the Raft
//! configuration while writes go on, and a new server that stays a non-voter until it has been stable.

use std::time::Duration;

use roster_tests::{TestAgent, TestCluster, eventually};
use serde_json::{Value, json};

/// How long the cluster may take to settle after a change (gossip's failure detection, reconcile passes of 2 s).
const SETTLE: Duration = Duration::from_secs(45);

/// `(Address, Voter)` of every server in the Raft configuration, as `agent` reports it.
async fn raft_servers(agent: &TestAgent) -> Vec<(String, bool)> {
    let res = agent.get("/v1/operator/raft/configuration").await;
    let mut servers: Vec<(String, bool)> = res.json()["Servers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| (s["Address"].as_str().unwrap_or_default().to_owned(), s["Voter"] == json!(true)))
                .collect()
        })
        .unwrap_or_default();
    servers.sort();
    servers
}

/// The health entry of the server at `addr`, with the whole reply's status.
async fn health_of(agent: &TestAgent, addr: &str) -> Option<(u16, Value)> {
    let res = agent.get("/v1/operator/autopilot/health").await;
    let body = res.json();
    let server = body["Servers"].as_array()?.iter().find(|s| s["Address"] == json!(addr))?.clone();
    Some((res.status, server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_servers_are_cleaned_up_and_new_ones_promoted_after_stabilization() {
    let extra = json!({"autopilot": {"server_stabilization_time": "3s", "last_contact_threshold": "1s"}});
    let mut cluster = TestCluster::try_start(3, 1, extra.clone()).await.expect("the cluster starts");
    let leader = cluster.wait_for_leader(SETTLE).await.expect("a leader");
    let client = &cluster.clients[0];

    // The leader seeds the replicated configuration from its `autopilot` block; every agent reads the same one.
    let config = eventually("the autopilot configuration to be seeded", SETTLE, || async {
        let res = client.get("/v1/operator/autopilot/configuration").await;
        (res.status == 200 && res.json()["ModifyIndex"].as_u64() > Some(0)).then(|| res.json())
    })
    .await;
    assert_eq!(config["ServerStabilizationTime"], "3s");
    assert_eq!(config["LastContactThreshold"], "1s");
    assert_eq!((config["CleanupDeadServers"].clone(), config["MaxTrailingLogs"].clone()), (json!(true), json!(250)));
    let index = config["ModifyIndex"].as_u64().expect("an index");

    // A CAS on a stale index is refused with `false`; the CLI reads, changes one field and writes with a CAS.
    let mut changed = config.clone();
    changed["MaxTrailingLogs"] = json!(300);
    let stale = cluster.servers[0]
        .put_json(&format!("/v1/operator/autopilot/configuration?cas={}", index + 1000), &changed)
        .await;
    assert_eq!((stale.status, stale.json()), (200, json!(false)), "{}", stale.text());
    let out = client.cli(&["operator", "autopilot", "set-config", "-max-trailing-logs=300"]).await;
    out.expect_success();
    assert_eq!(out.stdout.trim(), "Configuration updated!");
    let out = client.cli(&["operator", "autopilot", "get-config"]).await;
    out.expect_success();
    assert!(out.stdout.contains("MaxTrailingLogs = 300\n"), "{}", out.stdout);
    assert!(out.stdout.contains("ServerStabilizationTime = 3s\n"), "{}", out.stdout);
    let res = client.put_json("/v1/operator/autopilot/configuration", &json!({"RedundancyZoneTag": "zone"})).await;
    assert_eq!(res.status, 400, "an Enterprise key is refused: {}", res.text());

    // Every server healthy: 200, one failure tolerated.
    let health = eventually("every server to be healthy", SETTLE, || async {
        let res = client.get("/v1/operator/autopilot/health").await;
        (res.status == 200 && res.json()["Healthy"] == json!(true)).then(|| res.json())
    })
    .await;
    assert_eq!(health["FailureTolerance"], 1);
    let servers = health["Servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 3);
    for s in servers {
        assert_eq!((s["SerfStatus"].clone(), s["Voter"].clone()), (json!("alive"), json!(true)), "{s}");
        assert!(s["StableSince"].as_str().is_some_and(|t| t.ends_with('Z')), "{s}");
    }
    let out = client.cli(&["operator", "autopilot", "state"]).await;
    out.expect_success();
    assert!(out.stdout.starts_with("Healthy:                      true\n"), "{}", out.stdout);

    // A follower dies: health turns 429 while it is a voter, then autopilot removes it and writes go on.
    let dead = (leader + 1) % 3;
    let dead_addr = cluster.servers[dead].rpc_addr().to_string();
    cluster.servers[dead].kill9();
    eventually("the dead server to leave the Raft configuration", SETTLE, || async {
        let servers = raft_servers(client).await;
        (servers.len() == 2 && servers.iter().all(|(addr, voter)| *addr != dead_addr && *voter)).then_some(())
    })
    .await;
    let res = client.put("/v1/kv/after-cleanup", "v").await;
    assert_eq!((res.status, res.json()), (200, json!(true)), "{}", res.text());
    assert!(
        cluster.servers[leader].stderr_tail().contains("autopilot: removing a dead server"),
        "the leader's autopilot removed it"
    );

    // A new server joins as a non-voter, is seen healthy and still a non-voter, then becomes a voter.
    let dir = tempfile::tempdir().expect("dir");
    let newcomer =
        cluster.start_outsider(4, "s4", vec!["-server".to_owned()], dir.path(), &extra).await.expect("s4 starts");
    let new_addr = newcomer.rpc_addr().to_string();
    let stable_non_voter = eventually("s4 to be healthy and still a non-voter", SETTLE, || async {
        let (status, server) = health_of(client, &new_addr).await?;
        (server["Healthy"] == json!(true) && server["Voter"] == json!(false)).then_some((status, server))
    })
    .await;
    assert_eq!(stable_non_voter.1["Name"], "s4");
    eventually("s4 to become a voter after its stabilization time", SETTLE, || async {
        let (_, server) = health_of(client, &new_addr).await?;
        (server["Voter"] == json!(true)).then_some(())
    })
    .await;
    let servers = raft_servers(client).await;
    assert_eq!(servers.len(), 3, "{servers:?}");
    assert!(servers.iter().all(|(_, voter)| *voter), "{servers:?}");
    let res = client.put("/v1/kv/after-promotion", "v").await;
    assert_eq!((res.status, res.json()), (200, json!(true)), "{}", res.text());
    drop(newcomer);
}
