//! A real cluster on loopback: 3 servers and 2 clients as separate processes, each on its own
//! 127.A.B.x address, forming through gossip (`-retry-join`) and `-bootstrap-expect 3`.
//! What a user does: join, list members, write through any agent, lose the leader, lose a client,
//! restart, leave. What they get back: Consul's answers.

use std::time::Duration;

use roster_tests::{TestAgent, TestCluster, alive_members, eventually, kv_value, member_names, put_kv};
use serde_json::{Value, json};

/// The status of `node`'s serfHealth check as `agent` sees it in the catalog.
async fn serf_health(agent: &TestAgent, node: &str) -> Option<String> {
    let res = agent.get(&format!("/v1/health/node/{node}")).await;
    let checks = res.json();
    let check = checks.as_array()?.iter().find(|c| c["CheckID"] == "serfHealth")?.clone();
    check["Status"].as_str().map(str::to_owned)
}

fn names(entries: &Value) -> Vec<String> {
    let mut names: Vec<String> = entries
        .as_array()
        .map(|list| list.iter().filter_map(|e| e["Node"]["Node"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_and_two_clients_form_one_cluster() {
    let cluster = TestCluster::start(3, 2).await;
    let everyone = ["c1", "c2", "s1", "s2", "s3"];

    // Every agent lists every member, with Consul's role tags and the gossip address it bound.
    for agent in cluster.agents() {
        let res = agent.get("/v1/agent/members").await;
        res.expect_status(200);
        let members = res.json();
        let mut listed: Vec<&str> =
            members.as_array().expect("list").iter().filter_map(|m| m["Name"].as_str()).collect();
        listed.sort();
        assert_eq!(listed, everyone, "members seen by {}", agent.node_name());
        for member in members.as_array().expect("list") {
            let name = member["Name"].as_str().expect("name");
            let role = if name.starts_with('s') { "consul" } else { "node" };
            assert_eq!(member["Tags"]["role"], role, "{name}: {member}");
            assert_eq!(member["Tags"]["dc"], "dc1");
            assert_eq!(member["Status"], 1);
            assert_eq!(member["Port"], roster_tests::SERF_PORT);
        }
    }

    // The Raft configuration: three voters, one leader, everyone agrees on the peers.
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await.expect("leader");
    for agent in cluster.agents() {
        let mut peers: Vec<String> = agent
            .get("/v1/status/peers")
            .await
            .json()
            .as_array()
            .expect("peers")
            .iter()
            .map(|p| p.to_string())
            .collect();
        peers.sort();
        let mut expect: Vec<String> = cluster.servers.iter().map(|s| format!("\"{}\"", s.rpc_addr())).collect();
        expect.sort();
        assert_eq!(peers, expect, "peers seen by {}", agent.node_name());
    }
    let config = cluster.clients[0].get("/v1/operator/raft/configuration").await;
    config.expect_status(200);
    let servers = config.json()["Servers"].as_array().expect("Servers").clone();
    assert_eq!(servers.len(), 3);
    let leaders: Vec<&Value> = servers.iter().filter(|s| s["Leader"] == true).collect();
    assert_eq!(leaders.len(), 1, "{servers:?}");
    assert_eq!(leaders[0]["Address"], cluster.servers[leader].rpc_addr().to_string());
    assert!(servers.iter().all(|s| s["Voter"] == true));
    let table = cluster.clients[1].cli(&["operator", "raft", "list-peers"]).await;
    table.expect_success();
    assert!(table.stdout.contains("leader") && table.stdout.lines().count() == 4, "{}", table.stdout);

    // A write through one client is read back through the other and on every server.
    put_kv(&cluster.clients[0], "cluster/greeting", "hello").await;
    assert_eq!(kv_value(&cluster.clients[1], "cluster/greeting?consistent").await.as_deref(), Some("hello"));
    for server in &cluster.servers {
        let value = eventually("the write reaches every server", Duration::from_secs(5), || async {
            kv_value(server, "cluster/greeting?stale").await
        })
        .await;
        assert_eq!(value, "hello");
    }

    // Every member is a catalog node with a passing serfHealth, servers carry the consul service.
    for node in everyone {
        let status = eventually("serfHealth registered", Duration::from_secs(10), || async {
            serf_health(&cluster.clients[1], node).await
        })
        .await;
        assert_eq!(status, "passing", "{node}");
    }
    let consul = cluster.clients[0].get("/v1/catalog/service/consul").await.json();
    let mut consul_nodes: Vec<&str> =
        consul.as_array().expect("list").iter().filter_map(|e| e["Node"].as_str()).collect();
    consul_nodes.sort();
    assert_eq!(consul_nodes, ["s1", "s2", "s3"]);

    // A service registered on a client is visible, healthy, from every other agent.
    let reg = json!({"Name": "web", "ID": "web-1", "Port": 8080, "Check": {"TTL": "30s", "Status": "passing"}});
    cluster.clients[0].put_json("/v1/agent/service/register", &reg).await.expect_status(200);
    for agent in cluster.agents() {
        let res = agent.get("/v1/health/service/web?passing").await;
        res.expect_status(200);
        assert_eq!(names(&res.json()), ["c1"], "seen by {}", agent.node_name());
    }

    // A check failing on c1 takes the instance out of ?passing everywhere, and back in when it passes.
    cluster.clients[0].put("/v1/agent/check/fail/service:web-1", "").await.expect_status(200);
    for agent in cluster.agents() {
        eventually("web leaves ?passing on every agent", Duration::from_secs(5), || async {
            names(&agent.get("/v1/health/service/web?passing").await.json()).is_empty().then_some(())
        })
        .await;
    }
    cluster.clients[0].put("/v1/agent/check/pass/service:web-1", "").await.expect_status(200);
    let c2 = &cluster.clients[1];
    eventually("web is passing again", Duration::from_secs(5), || async {
        (names(&c2.get("/v1/health/service/web?passing").await.json()) == ["c1"]).then_some(())
    })
    .await;

    // The CLI shows the same pool.
    let out = cluster.servers[0].cli(&["members"]).await;
    out.expect_success();
    for node in everyone {
        assert!(out.stdout.lines().any(|l| l.starts_with(node) && l.contains("alive")), "{}", out.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_and_writes_resume() {
    let mut cluster = TestCluster::start(3, 1).await;
    let client = 0;
    put_kv(&cluster.clients[client], "before", "1").await;
    let old = cluster.wait_for_leader(Duration::from_secs(10)).await.expect("leader");
    cluster.servers[old].kill9();

    let new = cluster.wait_for_leader(Duration::from_secs(15)).await.expect("a new leader");
    assert_ne!(new, old);
    // The client fails over to a live server by itself; the write that follows is acknowledged.
    eventually("a write through the client succeeds", Duration::from_secs(15), || async {
        let res = cluster.clients[client].put("/v1/kv/after", "2").await;
        (res.status == 200).then_some(())
    })
    .await;
    assert_eq!(kv_value(&cluster.clients[client], "before?consistent").await.as_deref(), Some("1"));

    // The old leader restarts on its data dir, rejoins as a follower and catches up.
    cluster.servers[old].restart().await;
    cluster.wait_formed().await.expect("the cluster heals");
    let value = eventually("the restarted server catches up", Duration::from_secs(10), || async {
        kv_value(&cluster.servers[old], "after?stale").await
    })
    .await;
    assert_eq!(value, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_goes_critical_and_comes_back_after_restart() {
    let mut cluster = TestCluster::start(3, 2).await;
    let reg = json!({"Name": "files", "ID": "files-1", "Port": 80, "Check": {"TTL": "10m", "Status": "passing"}});
    cluster.clients[0].put_json("/v1/agent/service/register", &reg).await.expect_status(200);
    let watcher = &cluster.clients[1];
    assert_eq!(names(&watcher.get("/v1/health/service/files?passing").await.json()), ["c1"]);

    cluster.clients[0].kill9();
    let watcher = &cluster.clients[1];
    eventually("c1 is failed in members", Duration::from_secs(15), || async {
        member_names(watcher, 4).await.contains(&"c1".to_owned()).then_some(())
    })
    .await;
    eventually("c1's serfHealth is critical", Duration::from_secs(5), || async {
        (serf_health(watcher, "c1").await.as_deref() == Some("critical")).then_some(())
    })
    .await;
    let passing = watcher.get("/v1/health/service/files?passing").await;
    assert_eq!(names(&passing.json()), Vec::<String>::new(), "a failed node's services are not passing");
    // Without ?passing the instance is still listed: a failed node is kept until reaped.
    assert_eq!(names(&watcher.get("/v1/health/service/files").await.json()), ["c1"]);

    // Restarted on its data dir, the client rejoins with a new incarnation and re-syncs its services.
    cluster.clients[0].restart().await;
    let watcher = &cluster.clients[1];
    eventually("c1 alive again", Duration::from_secs(15), || async {
        alive_members(watcher).await.contains(&"c1".to_owned()).then_some(())
    })
    .await;
    eventually("files passing again", Duration::from_secs(10), || async {
        (names(&watcher.get("/v1/health/service/files?passing").await.json()) == ["c1"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_force_leave() {
    let mut cluster = TestCluster::start(3, 2).await;
    // A graceful leave: the agent answers, exits, and its node leaves the catalog.
    let out = cluster.clients[1].cli(&["leave"]).await;
    out.expect_success();
    assert!(out.stdout.contains("Graceful leave complete"), "{}", out.stdout);
    let s1 = &cluster.servers[0];
    eventually("c2 shows as left", Duration::from_secs(10), || async {
        member_names(s1, 3).await.contains(&"c2".to_owned()).then_some(())
    })
    .await;
    eventually("c2 deregistered from the catalog", Duration::from_secs(10), || async {
        (s1.get("/v1/catalog/node/c2").await.json() == Value::Null).then_some(())
    })
    .await;

    // force-leave turns a failed member into a left one, and the leader deregisters it.
    cluster.clients[0].kill9();
    let s1 = &cluster.servers[0];
    eventually("c1 failed", Duration::from_secs(15), || async {
        member_names(s1, 4).await.contains(&"c1".to_owned()).then_some(())
    })
    .await;
    s1.put("/v1/agent/force-leave/c1", "").await.expect_status(200);
    eventually("c1 left after force-leave", Duration::from_secs(10), || async {
        member_names(s1, 3).await.contains(&"c1".to_owned()).then_some(())
    })
    .await;
    eventually("c1 deregistered", Duration::from_secs(10), || async {
        (s1.get("/v1/catalog/node/c1").await.json() == Value::Null).then_some(())
    })
    .await;
    let unknown = s1.put("/v1/agent/force-leave/nobody", "").await;
    assert!(unknown.status >= 400, "force-leave of an unknown node: {}", unknown.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_bad_addresses_and_other_datacenters_is_refused_with_a_reason() {
    let cluster = TestCluster::start(1, 0).await;
    let s1 = &cluster.servers[0];
    let unreachable = format!("{}:9", cluster.ip(40));
    let res = s1.put(&format!("/v1/agent/join/{unreachable}"), "").await;
    assert_eq!(res.status, 500, "{}", res.text());
    assert!(res.text().contains(&unreachable), "the error names the address: {}", res.text());

    // An agent of another datacenter is refused, and says why.
    let dir = tempfile::tempdir().expect("dir");
    let args = vec![
        "-datacenter".to_owned(),
        "dc2".to_owned(),
        "-data-dir".to_owned(),
        dir.path().display().to_string(),
        "-bind".to_owned(),
        cluster.ip(5).to_string(),
        "-client".to_owned(),
        cluster.ip(5).to_string(),
    ];
    let config = json!({"ports": {"http": 0, "dns": -1, "serf_lan": roster_tests::SERF_PORT}});
    let other = TestAgent::start_with_config("dc2-agent", roster_tests::AgentMode::Args(args), config)
        .await
        .expect("a lone dc2 client starts");
    let res = other.put(&format!("/v1/agent/join/{}", s1.serf_addr()), "").await;
    assert_eq!(res.status, 500);
    assert!(res.text().contains("dc1") && res.text().contains("dc2"), "{}", res.text());
    assert!(!alive_members(s1).await.contains(&"dc2-agent".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_server_cannot_write_and_the_cluster_heals_when_peers_return() {
    let mut cluster = TestCluster::start(3, 0).await;
    put_kv(&cluster.servers[0], "acked", "yes").await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await.expect("leader");
    let survivor = (leader + 1) % 3;
    for idx in 0..3 {
        if idx != survivor {
            cluster.servers[idx].kill9();
        }
    }
    // A minority has no leader: writes fail with Consul's message instead of hanging. Until the survivor notices the
    // leader is gone it may still forward to it and fail on the dead connection (also a 500); wait for the settled answer.
    let res = eventually("the minority refuses writes for want of a leader", Duration::from_secs(20), || async {
        let res = cluster.servers[survivor].put("/v1/kv/lost", "no").await;
        (res.status == 500 && res.text().contains("No cluster leader")).then_some(res)
    })
    .await;
    assert_eq!(res.status, 500);

    for idx in 0..3 {
        if idx != survivor {
            cluster.servers[idx].restart().await;
        }
    }
    cluster.wait_formed().await.expect("the cluster heals by itself");
    assert_eq!(kv_value(&cluster.servers[survivor], "acked?consistent").await.as_deref(), Some("yes"));
    put_kv(&cluster.servers[survivor], "healed", "yes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_removes_catalog_entries_for_its_node_that_it_does_not_know() {
    let mut cluster = TestCluster::start(1, 1).await;
    let c1 = &cluster.clients[0];
    c1.put_json("/v1/agent/service/register", &json!({"Name": "real", "Port": 1})).await.expect_status(200);
    // Someone registers a service for c1 straight into the catalog, behind the agent's back.
    let ghost = json!({"Node": "c1", "Address": cluster.ip(1).to_string(), "Service": {"Service": "ghost", "Port": 2}});
    cluster.servers[0].put_json("/v1/catalog/register", &ghost).await.expect_status(200);
    assert_eq!(cluster.servers[0].get("/v1/catalog/service/ghost").await.json().as_array().map(Vec::len), Some(1));

    // The agent is authoritative for its node: its next full sync (here: at restart) removes the ghost.
    cluster.clients[0].restart().await;
    let s1 = &cluster.servers[0];
    eventually("the ghost is removed", Duration::from_secs(15), || async {
        (s1.get("/v1/catalog/service/ghost").await.json() == json!([])).then_some(())
    })
    .await;
    assert_eq!(s1.get("/v1/catalog/service/real").await.json().as_array().map(Vec::len), Some(1));
}

/// `dig +short NAME A` against `agent`'s DNS: the addresses answered.
fn dig_a(agent: &TestAgent, name: &str) -> Vec<String> {
    let addr = agent.dns_addr();
    let output = std::process::Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+short", "+time=3", "+tries=2", name, "A"])
        .output()
        .expect("dig is installed (apt-get install bind9-dnsutils; .ci/run does)");
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).filter(|l| !l.starts_with(';')).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_answers_dns_from_its_watch_fed_cache_even_with_every_server_down() {
    let mut cluster = TestCluster::try_start(3, 1, json!({"ports": {"dns": 0}})).await.expect("cluster with DNS");
    let c1 = &cluster.clients[0];
    let reg = json!({"Name": "files", "ID": "files-1", "Port": 80, "Check": {"TTL": "10m", "Status": "passing"}});
    c1.put_json("/v1/agent/service/register", &reg).await.expect_status(200);
    let c1_ip = cluster.ip(3).to_string();
    assert_eq!(dig_a(c1, "files.service.consul"), vec![c1_ip.clone()]);

    // The cached answer follows the catalog: the watch wakes on the check's change.
    c1.put("/v1/agent/check/fail/service:files-1", "").await.expect_status(200);
    eventually("the critical instance leaves the client's DNS answer", Duration::from_secs(5), || async {
        dig_a(c1, "files.service.consul").is_empty().then_some(())
    })
    .await;
    c1.put("/v1/agent/check/pass/service:files-1", "").await.expect_status(200);
    eventually("the instance is back in the answer", Duration::from_secs(5), || async {
        (dig_a(c1, "files.service.consul") == [c1_ip.clone()]).then_some(())
    })
    .await;

    // No servers at all: the client keeps answering from its cache instead of failing.
    for server in &mut cluster.servers {
        server.kill9();
    }
    let c1 = &cluster.clients[0];
    assert_eq!(dig_a(c1, "files.service.consul"), vec![c1_ip.clone()], "a stale answer beats no answer");
    assert_eq!(dig_a(c1, "files.service"), [c1_ip], "the domain-less form is the same cached lookup");
}

/// Consul's agent answers its own view (members, self, its services and checks) without a server. A client whose
/// only server stops answering (frozen: its sockets stay open, so a call to it waits out its 30 s timeout) still
/// answers those, with an index no lower than before and no known leader: an index read gives up after 250 ms, and
/// a call in flight to the frozen server (an anti-entropy pass holding the local state) fails once gossip finds the
/// server dead and the client drops it. Once the server is back, each index goes on from where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_answers_its_own_view_when_its_server_stops_answering() {
    let mut cluster = TestCluster::start(1, 1).await;
    let c1 = &cluster.clients[0];
    let reg = json!({"Name": "web", "ID": "web-1", "Port": 80, "Check": {"TTL": "10m", "Status": "passing"}});
    c1.put_json("/v1/agent/service/register", &reg).await.expect_status(200);
    // A later write elsewhere: the state's latest index is now above this node's services' and checks'.
    c1.put("/v1/kv/elsewhere", "x").await.expect_status(200);
    let paths =
        ["/v1/agent/members", "/v1/agent/self", "/v1/agent/services", "/v1/agent/checks", "/v1/agent/service/web-1"];
    let mut before = Vec::new();
    for path in paths {
        let res = c1.get(path).await;
        res.expect_status(200);
        assert_eq!(res.header("X-Consul-KnownLeader").as_deref(), Some("true"), "{path} with its server answering");
        before.push(res.index());
    }

    cluster.servers[0].freeze();
    let c1 = &cluster.clients[0];
    let mut during = Vec::new();
    for (path, before) in paths.into_iter().zip(before) {
        // Inside the 30 s a call to the frozen server waits, which is what these answers could wait before.
        let res = tokio::time::timeout(Duration::from_secs(20), c1.get(path))
            .await
            .unwrap_or_else(|_| panic!("{path} waited on the frozen server"));
        res.expect_status(200);
        assert_eq!(res.header("X-Consul-KnownLeader").as_deref(), Some("false"), "{path} without a server");
        assert!(res.index() >= before, "{path}: index {} went back from {before}", res.index());
        during.push(res.index());
        if path == "/v1/agent/services" {
            assert_eq!(res.json()["web-1"]["Service"], "web", "the agent's own service, from its local state");
        }
        if path == "/v1/agent/members" {
            let body = res.json();
            let names: Vec<&str> = body.as_array().into_iter().flatten().filter_map(|m| m["Name"].as_str()).collect();
            assert!(names.contains(&"s1") && names.contains(&"c1"), "members from the client's gossip: {names:?}");
        }
    }

    // The server comes back: the client knows a leader again, and no index is below what the outage showed.
    cluster.servers[0].thaw();
    let c1 = &cluster.clients[0];
    eventually("the client knows a leader again", Duration::from_secs(30), || async {
        let res = c1.get("/v1/agent/self").await;
        (res.header("X-Consul-KnownLeader").as_deref() == Some("true")).then_some(())
    })
    .await;
    for (path, during) in paths.into_iter().zip(during) {
        let res = c1.get(path).await;
        res.expect_status(200);
        assert!(
            res.index() >= during,
            "{path}: index {} went back from {during} once the server answered",
            res.index()
        );
    }
}
