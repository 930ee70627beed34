//! The multi-host tier: roster agents in containers on Docker networks, each container a host.
//! The seed flow (a server and a client on two hosts), and a 3-server cluster whose leader is cut
//! off with `docker network disconnect`: the majority elects and serves, the old leader stops
//! accepting writes, the partition heals by itself, and no write that got a 200 is lost.
//!
//! Each container sits on two networks: `cluster`, which carries gossip and Raft and is the one
//! partitioned, and `ctl`, through which the test reaches every HTTP API even while a node is cut off.
//! Skipped (with the reason) when no Docker engine answers, except under `ROSTER_REQUIRE_DOCKER=1`.

use std::net::IpAddr;
use std::time::Duration;

use roster_tests::docker::{Container, Network, docker_or_skip};
use roster_tests::{eventually, http_client};
use serde_json::{Value, json};

/// One agent container and the address the test reaches its HTTP API at.
struct Host {
    container: Container,
    /// Address on the `cluster` network (gossip, RPC).
    cluster_ip: IpAddr,
    /// The `ctl` network, inspected for the current address (a restarted container may get a new one).
    ctl: String,
}

impl Host {
    fn start(name: &str, cluster: &Network, ctl: &Network, args: &[&str]) -> Host {
        let mut full = vec!["/bin/roster", "agent", "-node", name, "-data-dir", "/data", "-client", "0.0.0.0"];
        full.extend_from_slice(args);
        let container = Container::run(name, cluster, &full).expect("docker run");
        container.connect(ctl).expect("connect ctl");
        let cluster_ip = container.ip(cluster).expect("cluster ip");
        Host { container, cluster_ip, ctl: ctl.name.clone() }
    }

    fn url(&self, path: &str) -> String {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", self.ctl);
        let ip =
            roster_tests::docker::docker(&["inspect", "--format", &format, &self.container.name]).unwrap_or_default();
        format!("http://{ip}:8500{path}")
    }
}

async fn get(host: &Host, path: &str) -> Option<(u16, Value)> {
    let res = http_client(4).get(host.url(path)).timeout(Duration::from_secs(5)).send().await.ok()?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Some((status, body))
}

async fn put(host: &Host, path: &str, body: &str) -> Option<(u16, String)> {
    let res =
        http_client(4).put(host.url(path)).body(body.to_owned()).timeout(Duration::from_secs(15)).send().await.ok()?;
    let status = res.status().as_u16();
    Some((status, res.text().await.unwrap_or_default()))
}

/// The leader every host in `hosts` names, once they agree.
async fn agreed_leader(hosts: &[&Host]) -> Option<String> {
    let mut seen = None;
    for host in hosts {
        let (_, leader) = get(host, "/v1/status/leader").await?;
        let leader = leader.as_str().filter(|l| !l.is_empty())?.to_owned();
        if seen.get_or_insert_with(|| leader.clone()) != &leader {
            return None;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_flow_a_server_and_a_client_on_two_hosts() {
    if !docker_or_skip("seed_flow_a_server_and_a_client_on_two_hosts") {
        return;
    }
    let cluster = Network::create("seed").expect("network");
    let ctl = Network::create("seed-ctl").expect("network");
    let host1 = Host::start("host1", &cluster, &ctl, &["-server", "-bootstrap-expect", "1"]);
    let alone = [&host1];
    eventually("host1 elects itself", Duration::from_secs(30), || agreed_leader(&alone)).await;
    let join = host1.cluster_ip.to_string();
    let host2 = Host::start("host2", &cluster, &ctl, &["-join", &join]);

    let members = eventually("both nodes listed by host2", Duration::from_secs(30), || async {
        let (_, members) = get(&host2, "/v1/agent/members").await?;
        let alive = members.as_array()?.iter().filter(|m| m["Status"] == 1).count();
        (alive == 2).then_some(members)
    })
    .await;
    let host1_entry = members.as_array().expect("list").iter().find(|m| m["Name"] == "host1").cloned().expect("host1");
    assert_eq!(host1_entry["Addr"], host1.cluster_ip.to_string(), "advertises its address on the cluster network");
    assert_eq!(host1_entry["Tags"]["role"], "consul");

    // A service registered on the client host is found, healthy, through the server host.
    let reg = json!({"Name": "files", "Port": 80, "Check": {"TTL": "10m", "Status": "passing"}}).to_string();
    assert_eq!(put(&host2, "/v1/agent/service/register", &reg).await.map(|r| r.0), Some(200));
    let (_, healthy) = get(&host1, "/v1/health/service/files?passing").await.expect("health");
    assert_eq!(healthy[0]["Node"]["Node"], "host2");
    assert_eq!(healthy[0]["Node"]["Address"], host2.cluster_ip.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_steps_aside_and_no_acknowledged_write_is_lost() {
    if !docker_or_skip("a_partitioned_leader_steps_aside_and_no_acknowledged_write_is_lost") {
        return;
    }
    let cluster = Network::create("raft").expect("network");
    let ctl = Network::create("raft-ctl").expect("network");
    let s1 = Host::start("s1", &cluster, &ctl, &["-server", "-bootstrap-expect", "3"]);
    let seed = s1.cluster_ip.to_string();
    let s2 = Host::start("s2", &cluster, &ctl, &["-server", "-bootstrap-expect", "3", "-retry-join", &seed]);
    let s3 = Host::start("s3", &cluster, &ctl, &["-server", "-bootstrap-expect", "3", "-retry-join", &seed]);
    let hosts = [&s1, &s2, &s3];
    let leader_addr =
        eventually("three servers elect a leader", Duration::from_secs(45), || agreed_leader(&hosts)).await;

    let mut acked: Vec<(String, String)> = Vec::new();
    for idx in 0..20 {
        let (key, value) = (format!("w/{idx:03}"), format!("before-{idx}"));
        let res = put(hosts[idx % 3], &format!("/v1/kv/{key}"), &value).await;
        if res.as_ref().map(|r| r.0) == Some(200) {
            acked.push((key, value));
        }
    }
    assert_eq!(acked.len(), 20, "a healthy cluster acknowledges every write");

    // Cut the leader off the cluster network.
    let old = *hosts.iter().find(|h| leader_addr.starts_with(&h.cluster_ip.to_string())).expect("leader host");
    old.container.disconnect(&cluster).expect("disconnect");
    let majority: Vec<&Host> = hosts.iter().copied().filter(|h| h.cluster_ip != old.cluster_ip).collect();
    let new_leader = eventually("the majority elects a new leader", Duration::from_secs(30), || async {
        agreed_leader(&majority).await.filter(|l| *l != leader_addr)
    })
    .await;
    assert_ne!(new_leader, leader_addr);
    for idx in 20..40 {
        let (key, value) = (format!("w/{idx:03}"), format!("during-{idx}"));
        let res = put(majority[idx % 2], &format!("/v1/kv/{key}"), &value).await;
        if res.as_ref().map(|r| r.0) == Some(200) {
            acked.push((key, value));
        }
    }
    assert!(acked.len() >= 39, "the majority keeps serving writes: {} acknowledged", acked.len());
    // The isolated old leader cannot commit anything: its writes fail instead of succeeding on a minority.
    let refused = put(old, "/v1/kv/minority-write", "x").await;
    assert_ne!(refused.as_ref().map(|r| r.0), Some(200), "a write on the cut-off leader must not be acknowledged");

    // Heal: the old leader rejoins as a follower and catches up with no manual step.
    old.container.connect(&cluster).expect("reconnect");
    eventually("everyone agrees on one leader again", Duration::from_secs(45), || agreed_leader(&hosts)).await;
    for host in hosts {
        eventually("every acknowledged write is on every server", Duration::from_secs(30), || async {
            let (status, entries) = get(host, "/v1/kv/w/?recurse&stale").await?;
            let got: Vec<(String, String)> = entries
                .as_array()?
                .iter()
                .filter_map(|e| {
                    let value = roster_tests::unb64(e["Value"].as_str()?);
                    Some((e["Key"].as_str()?.to_owned(), String::from_utf8(value).ok()?))
                })
                .collect();
            (status == 200 && acked.iter().all(|a| got.contains(a))).then_some(())
        })
        .await;
    }
    let (_, minority) = get(&s1, "/v1/kv/minority-write?consistent").await.expect("read");
    assert_eq!(minority, Value::Null, "the refused write was not applied later either");

    // Autopilot removed the cut-off leader from the voters while it was gone (`cleanup_dead_servers`); since the heal
    // it is a non-voter again, promoted after `server_stabilization_time` (10 s). Until then two voters hold the
    // quorum, so losing a follower now would stop writes: wait for three voters, as an operator would.
    eventually("the old leader is a voter again", Duration::from_secs(60), || async {
        let (status, config) = get(&s1, "/v1/operator/raft/configuration").await?;
        let voters = config["Servers"].as_array()?.iter().filter(|s| s["Voter"] == Value::Bool(true)).count();
        (status == 200 && voters == 3).then_some(())
    })
    .await;

    // Lose a follower to `docker kill`, restart it: it rejoins and catches up from its data dir.
    let follower = *hosts.iter().find(|h| !new_leader.starts_with(&h.cluster_ip.to_string())).expect("follower");
    follower.container.kill().expect("kill");
    let (status, _) =
        put(hosts.iter().find(|h| h.cluster_ip != follower.cluster_ip).expect("other"), "/v1/kv/after-kill", "1")
            .await
            .expect("write");
    assert_eq!(status, 200, "two of three servers still commit");
    follower.container.start().expect("restart");
    eventually("the restarted follower catches up", Duration::from_secs(45), || async {
        let (status, _) = get(follower, "/v1/kv/after-kill?stale").await?;
        (status == 200).then_some(())
    })
    .await;
}
