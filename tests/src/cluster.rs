//! [`TestCluster`]: several real `roster agent` processes forming one cluster over loopback addresses.
//!
//! Each cluster gets its own random `127.A.B.0/24` (all of 127/8 is loopback on Linux), and agent
//! `i` binds `127.A.B.(2+i)`. Because every agent has an address of its own, gossip and server RPC
//! use Consul's fixed ports (8301, 8300), which is what makes restarts realistic: a restarted
//! server comes back at the address the Raft configuration and the other members remember.
//! HTTP is on port 0, read from the readiness line as for a single agent. Clusters of tests that run
//! in parallel never meet: they live on different /24s.
//!
//! Servers start with `-server -bootstrap-expect N -retry-join <every server>` and clients with
//! `-retry-join <every server>`, so the cluster forms itself the way an operator's would, through
//! gossip and bootstrap-expect, with no test-only shortcuts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::{AgentMode, TestAgent, member_args, merge};

/// Consul's LAN gossip port, used by every agent of a test cluster on its own address.
pub const SERF_PORT: u16 = 8301;
/// Consul's server RPC port.
pub const RPC_PORT: u16 = 8300;
/// How long a whole cluster may take to form (elect, and see every member alive).
const FORM_DEADLINE: Duration = Duration::from_secs(30);

/// A running cluster of servers and clients owned by a test; every process is killed on drop.
pub struct TestCluster {
    /// The first three octets of every agent's address.
    subnet: [u8; 3],
    /// Server agents, in start order (`s1`, `s2`, ...).
    pub servers: Vec<TestAgent>,
    /// Client agents, in start order (`c1`, `c2`, ...).
    pub clients: Vec<TestAgent>,
    /// Data directories; they outlive restarts of their agents.
    _data_dirs: Vec<TempDir>,
}

impl TestCluster {
    /// Starts `n_servers` servers (expecting all of them) and `n_clients` clients, and waits until a
    /// leader is elected and every agent sees every member alive.
    pub async fn start(n_servers: usize, n_clients: usize) -> TestCluster {
        TestCluster::try_start(n_servers, n_clients, json!({}))
            .await
            .unwrap_or_else(|err| panic!("starting a {n_servers}+{n_clients} cluster: {err:#}"))
    }

    /// Like [`TestCluster::start`], with `extra` merged into every agent's config file.
    pub async fn try_start(n_servers: usize, n_clients: usize, extra: Value) -> anyhow::Result<TestCluster> {
        TestCluster::try_start_roles(n_servers, n_clients, extra.clone(), extra).await
    }

    /// Like [`TestCluster::try_start`], with `server_extra` merged into the servers' config files and
    /// `client_extra` into the clients' (a secured cluster gives each role its own certificate).
    pub async fn try_start_roles(
        n_servers: usize,
        n_clients: usize,
        server_extra: Value,
        client_extra: Value,
    ) -> anyhow::Result<TestCluster> {
        let subnet = random_subnet();
        let mut cluster = TestCluster { subnet, servers: Vec::new(), clients: Vec::new(), _data_dirs: Vec::new() };
        let server_addrs: Vec<String> =
            (0..n_servers).map(|idx| SocketAddr::new(cluster.ip(idx), SERF_PORT).to_string()).collect();
        for idx in 0..n_servers {
            let dir = tempfile::tempdir().context("creating a data dir")?;
            let mut args = vec![
                "-server".to_owned(),
                "-bootstrap-expect".to_owned(),
                n_servers.to_string(),
                "-data-dir".to_owned(),
                dir.path().display().to_string(),
            ];
            args.extend(cluster.common_args(idx, &server_addrs));
            let agent = cluster.spawn(&format!("s{}", idx + 1), args, &server_extra).await?;
            cluster.servers.push(agent);
            cluster._data_dirs.push(dir);
        }
        for client_idx in 0..n_clients {
            let dir = tempfile::tempdir().context("creating a data dir")?;
            let mut args = vec!["-data-dir".to_owned(), dir.path().display().to_string()];
            args.extend(cluster.common_args(n_servers + client_idx, &server_addrs));
            let agent = cluster.spawn(&format!("c{}", client_idx + 1), args, &client_extra).await?;
            cluster.clients.push(agent);
            cluster._data_dirs.push(dir);
        }
        cluster.wait_formed().await?;
        Ok(cluster)
    }

    /// Starts one more agent named `name` at address `idx` (past the cluster's own), joining the servers with
    /// `args` before the shared flags and `extra` merged into its config; the caller owns it and `data_dir`.
    /// Nothing waits for it to join: what a newcomer is allowed to do is what such tests check.
    pub async fn start_outsider(
        &self,
        idx: usize,
        name: &str,
        mut args: Vec<String>,
        data_dir: &std::path::Path,
        extra: &Value,
    ) -> anyhow::Result<TestAgent> {
        let server_addrs: Vec<String> =
            (0..self.servers.len()).map(|idx| SocketAddr::new(self.ip(idx), SERF_PORT).to_string()).collect();
        args.extend(["-data-dir".to_owned(), data_dir.display().to_string()]);
        args.extend(self.common_args(idx, &server_addrs));
        self.spawn(name, args, extra).await
    }

    /// The address of agent `idx` (servers first, then clients).
    pub fn ip(&self, idx: usize) -> IpAddr {
        let [a, b, c] = self.subnet;
        let last = u8::try_from(idx + 2).unwrap_or(u8::MAX);
        IpAddr::V4(Ipv4Addr::new(a, b, c, last))
    }

    /// The data directory of agent `idx` (servers first, then clients).
    pub fn data_dir(&self, idx: usize) -> &std::path::Path {
        self._data_dirs[idx].path()
    }

    /// Every agent, servers first.
    pub fn agents(&self) -> impl Iterator<Item = &TestAgent> {
        self.servers.iter().chain(self.clients.iter())
    }

    /// The index of the server that every running server names as leader, once they agree.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let started = Instant::now();
        loop {
            if let Some(idx) = self.agreed_leader().await {
                return Ok(idx);
            }
            if started.elapsed() > timeout {
                let views = self.leader_views().await;
                bail!("servers did not agree on a leader within {timeout:?}: {views:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running agent lists every running agent as alive, and the down ones as not alive.
    pub async fn wait_formed(&self) -> anyhow::Result<()> {
        self.wait_for_leader(FORM_DEADLINE).await?;
        let started = Instant::now();
        let expect: Vec<String> = self.agents().filter(|a| a.is_running()).map(|a| a.node_name().to_owned()).collect();
        loop {
            let mut all_agree = true;
            for agent in self.agents().filter(|a| a.is_running()) {
                let alive = alive_members(agent).await;
                if expect.iter().any(|name| !alive.contains(name)) {
                    all_agree = false;
                    break;
                }
            }
            if all_agree {
                return Ok(());
            }
            if started.elapsed() > FORM_DEADLINE {
                bail!("members did not converge within {FORM_DEADLINE:?}; expected {expect:?} alive everywhere");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The flags every member shares: its address, ports, and the servers to join.
    fn common_args(&self, idx: usize, server_addrs: &[String]) -> Vec<String> {
        member_args(self.ip(idx), server_addrs)
    }

    async fn spawn(&self, name: &str, args: Vec<String>, extra: &Value) -> anyhow::Result<TestAgent> {
        let mut config = json!({"ports": {"http": 0, "dns": -1, "server": RPC_PORT, "serf_lan": SERF_PORT}});
        merge(&mut config, extra.clone());
        TestAgent::start_with_config(name, AgentMode::Args(args), config).await
    }

    /// The server every running server names as leader, if they all name the same one.
    async fn agreed_leader(&self) -> Option<usize> {
        let views = self.leader_views().await;
        let first = views.first()?.clone()?;
        if views.iter().any(|view| view.as_deref() != Some(first.as_str())) {
            return None;
        }
        self.servers.iter().position(|s| s.is_running() && s.rpc_addr().to_string() == first)
    }

    async fn leader_views(&self) -> Vec<Option<String>> {
        let mut views = Vec::new();
        for server in self.servers.iter().filter(|s| s.is_running()) {
            let res = server.get("/v1/status/leader").await;
            let leader = res.json().as_str().map(str::to_owned).filter(|l| res.status == 200 && !l.is_empty());
            views.push(leader);
        }
        views
    }
}

/// Writes `key` through `agent` and checks that it was acknowledged (200, `true`).
pub async fn put_kv(agent: &TestAgent, key: &str, value: &str) {
    let res = agent.put(&format!("/v1/kv/{key}"), value).await;
    assert_eq!(res.status, 200, "PUT {key} via {}: {}", agent.node_name(), res.text());
    assert_eq!(res.json(), serde_json::json!(true));
}

/// The raw value of a key read through `agent`; `key_and_query` carries the query (`k?stale`), `&raw` is added.
pub async fn kv_value(agent: &TestAgent, key_and_query: &str) -> Option<String> {
    let res = agent.get(&format!("/v1/kv/{key_and_query}&raw")).await;
    (res.status == 200).then(|| res.text())
}

/// The names `agent` lists as alive (`Status` 1) in `/v1/agent/members`.
pub async fn alive_members(agent: &TestAgent) -> Vec<String> {
    member_names(agent, 1).await
}

/// The names `agent` lists with Serf status `status` (1 alive, 3 left, 4 failed).
pub async fn member_names(agent: &TestAgent, status: u64) -> Vec<String> {
    let res = agent.get("/v1/agent/members").await;
    // A refusal (ACLs deny the caller) or an error page is "nothing known yet", not a reason to panic.
    if res.status != 200 {
        return Vec::new();
    }
    let Some(members) = res.json().as_array().cloned() else {
        return Vec::new();
    };
    members
        .iter()
        .filter(|m| m["Status"].as_u64() == Some(status))
        .filter_map(|m| m["Name"].as_str().map(str::to_owned))
        .collect()
}

/// A /24 of loopback no other cluster of this test run is likely to use: 127.A.B.0 with random A, B.
pub(crate) fn random_subnet() -> [u8; 3] {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let nth = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mixed = nanos ^ std::process::id().rotate_left(16) ^ nth.wrapping_mul(0x9E37_79B9);
    let a = 10 + (mixed % 240) as u8;
    let b = 1 + ((mixed / 240) % 250) as u8;
    [127, a, b]
}

/// Polls `probe` until it returns `Some`, panicking with `what` once `timeout` has passed.
/// For conditions a cluster reaches by itself (a failure detected, a leader elected, data replicated).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
