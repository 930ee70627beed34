//! The Raft operator tools on a real cluster (4 servers, 1 client): `operator raft transfer-leader` to a chosen
//! server and its refusals, a leader's graceful leave handing leadership over first, and `operator raft remove-peer`
//! of a stopped server and its refusals, through a follower and through a client agent.

use std::time::Duration;

use roster_tests::{TestAgent, TestCluster, eventually};
use serde_json::{Value, json};

/// How long the cluster may take to settle after a change (an election, a reconcile pass of 2 s, gossip's failure
/// detection).
const SETTLE: Duration = Duration::from_secs(30);

/// `(ID, Address, Voter)` of every server in the Raft configuration, as `agent` reports it.
async fn raft_servers(agent: &TestAgent) -> Vec<(String, String, bool)> {
    let res = agent.get("/v1/operator/raft/configuration").await;
    if res.status != 200 {
        return Vec::new();
    }
    let config = res.json();
    let mut servers: Vec<(String, String, bool)> = config["Servers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    let field = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                    (field("ID"), field("Address"), s["Voter"].as_bool().unwrap_or(false))
                })
                .collect()
        })
        .unwrap_or_default();
    servers.sort();
    servers
}

/// The Raft ID of `server`, from the configuration `agent` reports.
async fn raft_id_of(agent: &TestAgent, server: &TestAgent) -> String {
    let addr = server.rpc_addr().to_string();
    raft_servers(agent).await.into_iter().find(|(_, a, _)| *a == addr).map(|(id, _, _)| id).expect("in the config")
}

async fn put_kv(agent: &TestAgent, key: &str) {
    let res = agent.put(&format!("/v1/kv/{key}"), "v").await;
    assert_eq!(res.status, 200, "PUT {key} via {}: {}", agent.node_name(), res.text());
    assert_eq!(res.json(), json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_leave_and_remove_peer() {
    let mut cluster = TestCluster::start(4, 1).await;
    let leader = cluster.wait_for_leader(SETTLE).await.expect("a leader");
    let follower = (leader + 1) % 4;
    let client = &cluster.clients[0];
    let target_id = raft_id_of(client, &cluster.servers[follower]).await;

    // 1. transfer-leader to a chosen server, through the client agent: Consul's output, and every server agrees.
    let out = client.cli(&["operator", "raft", "transfer-leader", "-id", &target_id]).await;
    out.expect_success();
    assert_eq!(out.stdout.trim(), "Success");
    let now_leading = cluster.wait_for_leader(SETTLE).await.expect("a leader after the transfer");
    assert_eq!(now_leading, follower, "leadership went to the server asked for");
    let leader = now_leading;

    // Its HTTP answer is Consul's body, here through a follower that forwards it to the leader and back again.
    let other = (leader + 1) % 4;
    let back_id = raft_id_of(client, &cluster.servers[other]).await;
    let res = cluster.servers[leader]
        .request(reqwest::Method::POST, &format!("/v1/operator/raft/transfer-leader?id={back_id}"), None)
        .await;
    assert_eq!((res.status, res.json()), (200, json!({"Success": true})), "{}", res.text());
    let leader = cluster.wait_for_leader(SETTLE).await.expect("a leader after the second transfer");
    assert_eq!(leader, other);

    // 2. Refusals, with nothing changed: an unknown ID, the leader itself, a malformed remove-peer.
    let via = &cluster.servers[(leader + 1) % 4];
    let res = via.request(reqwest::Method::POST, "/v1/operator/raft/transfer-leader?id=nope", None).await;
    assert_eq!(res.status, 500);
    assert_eq!(res.text().trim(), r#"id "nope" was not found in the Raft configuration"#);
    let leader_id = raft_id_of(client, &cluster.servers[leader]).await;
    let res =
        via.request(reqwest::Method::POST, &format!("/v1/operator/raft/transfer-leader?id={leader_id}"), None).await;
    assert_eq!((res.status, res.text().trim()), (500, "cannot transfer leadership to itself"));
    let out = client.cli(&["operator", "raft", "transfer-leader", "-id", "nope"]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains(r#"Error transfering leadership: Failed to transfer leadership Unexpected response code: 500 (id "nope" was not found in the Raft configuration)"#), "{}", out.stderr);
    let res = via.delete("/v1/operator/raft/peer").await;
    assert_eq!(res.status, 400);
    assert!(res.text().starts_with("Must specify either ?id"), "{}", res.text());
    let res = via.delete("/v1/operator/raft/peer?id=1&address=x").await;
    assert_eq!((res.status, res.text().trim()), (400, "Must specify only one of ?id or ?address"));
    let res = client.delete("/v1/operator/raft/peer?address=10.255.255.1:8300").await;
    assert_eq!(res.status, 500);
    assert_eq!(res.text().trim(), r#"address "10.255.255.1:8300" was not found in the Raft configuration"#);
    let out = client.cli(&["operator", "raft", "remove-peer"]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("an address or id is required for the peer to remove"), "{}", out.stderr);
    assert_eq!(raft_servers(client).await.len(), 4, "the refusals changed nothing");
    assert_eq!(cluster.wait_for_leader(SETTLE).await.expect("a leader"), leader);

    // 3. The leader leaves gracefully: it hands leadership to another voter before it goes, then the new leader
    //    removes it from the configuration (it left).
    let leaving_addr = cluster.servers[leader].rpc_addr().to_string();
    let res = cluster.servers[leader].put("/v1/agent/leave", "").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let status = cluster.servers[leader].terminate(SETTLE).await;
    assert!(status.is_some_and(|s| s.success()), "the leaving server exits 0");
    assert!(
        cluster.servers[leader].stderr_tail().contains("leadership handed over before leaving"),
        "the leaving leader transferred leadership: {}",
        cluster.servers[leader].stderr_tail()
    );
    let leader = cluster.wait_for_leader(SETTLE).await.expect("a new leader");
    eventually("the left server to leave the Raft configuration", SETTLE, || async {
        let servers = raft_servers(client).await;
        (servers.len() == 3 && servers.iter().all(|(_, addr, voter)| *addr != leaving_addr && *voter)).then_some(())
    })
    .await;
    put_kv(client, "after-leave").await;

    // 4. A follower dies; remove-peer by address through the client takes it out of the configuration, and the
    //    two that are left accept writes.
    let dead = (0..4).find(|i| *i != leader && cluster.servers[*i].is_running()).expect("a live follower");
    let dead_addr = cluster.servers[dead].rpc_addr().to_string();
    cluster.servers[dead].kill9();
    let out = client.cli(&["operator", "raft", "remove-peer", "-address", &dead_addr]).await;
    out.expect_success();
    assert_eq!(out.stdout.trim(), format!("Removed peer with address {dead_addr:?}"));
    let servers = raft_servers(client).await;
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert!(servers.iter().all(|(_, addr, _)| *addr != dead_addr), "{servers:?}");
    put_kv(client, "after-remove").await;

    // Removing it again names what is not there; removing down to no voter is refused by the unit-tested rule.
    let out = client.cli(&["operator", "raft", "remove-peer", "-address", &dead_addr]).await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(&format!("address {dead_addr:?} was not found in the Raft configuration")),
        "{}",
        out.stderr
    );
    let members: Value = client.get("/v1/agent/members").await.json();
    assert!(members.as_array().is_some_and(|m| !m.is_empty()));
}
