//! [`ScaleCluster`]: many real `roster agent` processes (1 or 3 servers and N clients), and the measurements issue 20
//! asks of them: how long membership takes to converge, how long a `kill -9`ed agent stays in `?passing` and in DNS,
//! and how long one check going critical takes to leave every agent's DNS answers.
//!
//! # Placement
//!
//! - Loopback (the default): every agent binds an address of its own in a random `127.A.B.0/24`, as
//!   [`crate::TestCluster`] does, so gossip, RPC and DNS use fixed ports (8301, 8300, 8600) on distinct addresses.
//!   At most 253 agents fit a /24.
//! - A namespace per agent ([`ScaleOptions::netns_loss`]): `ip netns` + a veth pair into one bridge, addresses in a
//!   `10.X.Y.0/16`, and packet loss on every agent's link: `tc netem` when the kernel has `sch_netem`, otherwise an
//!   iptables `statistic --mode random` drop on each namespace's output ([`ScaleCluster::loss_method`] says which).
//!   It needs root and a working `ip netns`; [`ScaleCluster::start`] returns [`Start::Skipped`] with the reason
//!   otherwise, so callers print it rather than fail.
//!
//! # What every client carries
//!
//! Each client registers one instance of the service `scale` (ID `scale`), tagged with its node name, with a TTL check
//! `scale-ttl` that starts passing. A DNS lookup of `<node>.scale.service.consul` therefore answers with exactly that
//! client's address while it is healthy and with nothing once it is not, which is what the detection and propagation
//! times poll on every agent (a plain `scale.service.consul` answer holds only a few random instances).
//!
//! Agents start small: no UI (off outside `-dev`), no DNS recursors, HTTP on port 0; so 100-200 fit the machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use futures_util::future::join_all;
use serde_json::json;
use tempfile::TempDir;

use crate::cluster::{member_names, random_subnet};
use crate::harness::{AgentMode, TestAgent, member_args};
use crate::http::query_escape;

#[cfg(test)]
mod tests;

/// The service every client registers, and its TTL check.
pub const SERVICE: &str = "scale";
const CHECK_ID: &str = "scale-ttl";
/// Consul's fixed ports, usable because every agent has an address of its own.
const SERF_PORT: u16 = 8301;
const RPC_PORT: u16 = 8300;
const DNS_PORT: u16 = 8600;
/// How many agents start at once: enough to start 200 in seconds, few enough not to starve a 2-core machine.
const START_BATCH: usize = 8;
/// How long the kill watch's blocking query on `?passing` parks before asking again.
const PASSING_WAIT: Duration = Duration::from_secs(2);
/// How long one DNS query waits for its answer before it counts as unanswered.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// The agents' log filter unless the options set `RUST_LOG`: info, plus the debug lines of the gossip view, which say
/// when each agent suspected a member, of the buddy system, which say who confirmed it and whose check went
/// unanswered ([`KillLog`]), and of the probes on hints; a handful of lines per membership change or suspicion.
const LOG_FILTER: &str = "info,roster_agent::gossip::view=debug,roster_agent::gossip::actor::buddy=debug,roster_agent::gossip::actor::hint=debug";

/// Replaces [`LOG_FILTER`] for a run (e.g. adding `foca=debug` to follow one declaration through every agent's log,
/// with the harness's `ROSTER_TEST_LOG_DIR` keeping the logs whole).
const LOG_FILTER_ENV: &str = "ROSTER_SCALE_LOG";

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct ScaleOptions {
    /// Servers (1 or 3), all expected by `-bootstrap-expect`.
    pub n_servers: usize,
    /// Client agents, each with one `scale` instance.
    pub n_clients: usize,
    /// `Some(percent)`: a network namespace per agent with this packet loss on its link; `None`: loopback addresses.
    pub netns_loss: Option<f64>,
    /// Environment variables for every agent (debug-build test knobs).
    pub envs: Vec<(String, String)>,
}

/// The outcome of [`ScaleCluster::start`].
pub enum Start {
    /// Every agent is running and ready.
    Started(Box<ScaleCluster>),
    /// The namespace mode cannot run here (not root, `ip netns` failing); the reason is for the user.
    Skipped(String),
}

/// How packet loss is injected in the namespace mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossMethod {
    /// No loss asked for (or loopback placement).
    None,
    /// `tc qdisc add dev eth0 root netem loss P%` in each namespace.
    Netem,
    /// `iptables -A OUTPUT -m statistic --mode random --probability P -j DROP` in each namespace (no `sch_netem`).
    IptablesStatistic,
}

/// Times of one `kill -9` of a client, each counted from the kill.
#[derive(Debug, Clone)]
pub struct KillTimes {
    /// Until the first server's `/v1/health/service/scale?passing` no longer lists the killed node.
    pub out_of_passing: Duration,
    /// Until no running agent's DNS answers `<killed node>.scale.service.consul`.
    pub out_of_dns: Duration,
    /// Until the first agent's DNS stopped answering it.
    pub dns_first: Duration,
    /// Until half of the running agents' DNS stopped answering it.
    pub dns_median: Duration,
    /// Where the time before `out_of_passing` went, from the agents' logs.
    pub log: KillLog,
}

/// What the agents logged about a killed member, as times from the kill; `None` when no log line says it (a log
/// that rolled past the harness's stderr tail, or an agent started with another `RUST_LOG`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KillLog {
    /// The first agent to suspect it: its prober, one probe period after the failed probe.
    pub first_suspect: Option<Duration>,
    /// The leader's suspicion (the first server's when no server logged a reconcile).
    pub leader_suspect: Option<Duration>,
    /// The first agent to declare it down (failed).
    pub first_failed: Option<Duration>,
    /// The leader declaring it down.
    pub leader_failed: Option<Duration>,
    /// The leader's reconcile starting the `serfHealth` critical write.
    pub leader_marks_critical: Option<Duration>,
    /// The first agent to count a confirmation of its suspicion (another member's failed probe or check).
    pub first_confirmed: Option<Duration>,
    /// Agents asked for a second opinion whose check of it went unanswered (each confirmed the suspicion).
    pub unanswered_checks: usize,
}

/// How a victim fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `kill -9`: the kernel closes its sockets, so the server sees its RPC connection end (a hint gossip acts on).
    Kill,
    /// SIGSTOP: it answers nothing but closes nothing, as a host that lost power or a cut link; gossip alone.
    Freeze,
}

/// A running cluster of many agents; every process is killed and every namespace removed on drop.
pub struct ScaleCluster {
    /// Servers first (`s1`..), then clients (`c1`..); first field, so the processes die before their namespaces go.
    agents: Vec<TestAgent>,
    n_servers: usize,
    /// When the last agent printed its readiness line: convergence is measured from here.
    last_ready: Instant,
    /// Per-agent gossip byte counters (loopback placement, root only).
    counter: Option<GossipCounter>,
    /// Data directories, removed after the agents.
    _data_dirs: Vec<TempDir>,
    /// Where the agents' addresses come from.
    net: Net,
}

impl ScaleCluster {
    /// Starts the servers, then the clients in small concurrent batches; returns once every agent printed its
    /// readiness line (not yet converged: see [`ScaleCluster::wait_converged`]).
    pub async fn start(options: &ScaleOptions) -> anyhow::Result<Start> {
        let n_agents = options.n_servers + options.n_clients;
        let net = match options.netns_loss {
            None => {
                anyhow::ensure!(n_agents <= 253, "{n_agents} agents do not fit one loopback /24 (at most 253)");
                Net::Loopback(random_subnet())
            }
            Some(loss) => match Namespaces::create(n_agents, loss) {
                Ok(namespaces) => Net::Namespaces(namespaces),
                Err(Unavailable(reason)) => return Ok(Start::Skipped(reason)),
            },
        };
        let mut cluster = ScaleCluster {
            net,
            agents: Vec::with_capacity(n_agents),
            n_servers: options.n_servers,
            last_ready: Instant::now(),
            counter: None,
            _data_dirs: Vec::new(),
        };
        let server_addrs: Vec<String> =
            (0..options.n_servers).map(|idx| SocketAddr::new(cluster.ip(idx), SERF_PORT).to_string()).collect();
        let mut envs: Vec<(&str, &str)> = options.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let filter = std::env::var(LOG_FILTER_ENV).ok();
        if !envs.iter().any(|(name, _)| *name == "RUST_LOG") {
            envs.push(("RUST_LOG", filter.as_deref().unwrap_or(LOG_FILTER)));
        }
        let mut pending: Vec<(String, AgentMode)> = Vec::with_capacity(n_agents);
        for idx in 0..n_agents {
            let dir = tempfile::tempdir().context("creating a data dir")?;
            let is_server = idx < options.n_servers;
            let mut args = Vec::new();
            if is_server {
                args.extend(["-server".to_owned(), "-bootstrap-expect".to_owned(), options.n_servers.to_string()]);
            }
            args.extend(["-data-dir".to_owned(), dir.path().display().to_string()]);
            args.extend(member_args(cluster.ip(idx), &server_addrs));
            let name = if is_server { format!("s{}", idx + 1) } else { format!("c{}", idx + 1 - options.n_servers) };
            let mode = match &cluster.net {
                Net::Loopback(_) => AgentMode::Args(args),
                Net::Namespaces(namespaces) => AgentMode::Netns { netns: namespaces.netns_name(idx), args },
            };
            pending.push((name, mode));
            cluster._data_dirs.push(dir);
        }
        let mut config = json!({"ports": {"http": 0, "dns": DNS_PORT, "server": RPC_PORT, "serf_lan": SERF_PORT}});
        if matches!(cluster.net, Net::Loopback(_)) {
            // On loopback every client's RPC connection comes from 127.0.0.1 (the source the kernel picks for a
            // 127/8 destination), so the servers' per-IP limit (100, Consul's) would refuse the 101st client and its
            // registrations would never reach the catalog. On a real network, and in namespaces, each has its own.
            config["limits"] = json!({"rpc_max_conns_per_client": 0});
        }
        for batch in pending.chunks(START_BATCH) {
            let starts =
                batch.iter().map(|(name, mode)| TestAgent::start_with_env(name, mode.clone(), config.clone(), &envs));
            for agent in join_all(starts).await {
                cluster.agents.push(agent?);
            }
        }
        cluster.last_ready = Instant::now();
        if matches!(cluster.net, Net::Loopback(_)) {
            let ips: Vec<IpAddr> = (0..n_agents).map(|idx| cluster.ip(idx)).collect();
            cluster.counter = GossipCounter::install(&ips);
        }
        Ok(Start::Started(Box::new(cluster)))
    }

    /// The address of agent `idx` (servers first).
    pub fn ip(&self, idx: usize) -> IpAddr {
        match &self.net {
            Net::Loopback([a, b, c]) => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, u8::try_from(idx + 2).unwrap_or(u8::MAX))),
            Net::Namespaces(namespaces) => namespaces.ip(idx),
        }
    }

    /// Every agent, servers first.
    pub fn agents(&self) -> &[TestAgent] {
        &self.agents
    }

    /// The index of the first client.
    pub fn first_client(&self) -> usize {
        self.n_servers
    }

    /// How loss is injected (namespace placement), or [`LossMethod::None`].
    pub fn loss_method(&self) -> LossMethod {
        match &self.net {
            Net::Loopback(_) => LossMethod::None,
            Net::Namespaces(namespaces) => namespaces.loss,
        }
    }

    /// Waits until a leader is known and every running agent lists every running agent as alive; returns the time
    /// from the last agent's readiness line to that moment.
    pub async fn wait_converged(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let expect: Vec<String> = self.running().map(|agent| agent.node_name().to_owned()).collect();
        loop {
            let views = join_all(self.running().map(|agent| member_names(agent, 1))).await;
            let lagging = views.iter().filter(|alive| expect.iter().any(|name| !alive.contains(name))).count();
            if lagging == 0 {
                return Ok(self.last_ready.elapsed());
            }
            if self.last_ready.elapsed() > timeout {
                bail!("{lagging} of {} agents still miss members after {timeout:?}", expect.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Registers the `scale` instance (TTL check passing) on every client, then waits until the first server lists
    /// all of them as passing.
    pub async fn register_services(&self, timeout: Duration) -> anyhow::Result<()> {
        let registrations = self.agents[self.n_servers..].iter().map(|agent| async move {
            let body = json!({
                "ID": SERVICE, "Name": SERVICE, "Port": 80, "Tags": [agent.node_name()],
                "Check": {"CheckID": CHECK_ID, "TTL": "30m", "Status": "passing"},
            });
            let res = agent.put_json("/v1/agent/service/register", &body).await;
            (res.status == 200).then_some(()).with_context(|| format!("{}: {}", agent.node_name(), res.text()))
        });
        for registered in join_all(registrations).await {
            registered?;
        }
        let clients: Vec<&str> = self.agents[self.n_servers..].iter().map(TestAgent::node_name).collect();
        let started = Instant::now();
        loop {
            let passing = self.passing_nodes().await;
            if clients.iter().all(|name| passing.iter().any(|p| p == name)) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                let missing: Vec<&str> =
                    clients.iter().copied().filter(|name| !passing.iter().any(|p| p == name)).collect();
                let mut seen = Vec::new();
                for name in missing.iter().take(3) {
                    let checks = self.agents[0].get(&format!("/v1/health/node/{name}")).await.json();
                    let statuses: Vec<String> = checks
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| format!("{}={}", c["CheckID"], c["Status"]))
                        .collect();
                    seen.push(format!("{name}: {statuses:?}"));
                }
                bail!(
                    "only {} of {} instances passing after {timeout:?}; the server's view of some missing: {seen:?}",
                    passing.len(),
                    clients.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running agent's DNS answers `client_idx`'s instance (its tag lookup).
    pub async fn wait_in_dns(&self, client_idx: usize, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if self.n_answering(client_idx).await == self.running().count() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!("{} is not in every agent's DNS after {timeout:?}", self.agents[client_idx].node_name());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills client `victim_idx` with SIGKILL and times its way out of `?passing` on the first server and out of
    /// every other agent's DNS, then reads from the agents' logs where the time went. The instance must be in both
    /// first ([`ScaleCluster::wait_in_dns`]).
    pub async fn kill_detection(&mut self, victim_idx: usize, timeout: Duration) -> anyhow::Result<KillTimes> {
        self.failure_detection(victim_idx, Failure::Kill, timeout).await
    }

    /// [`ScaleCluster::kill_detection`] for a failure of either kind.
    pub async fn failure_detection(
        &mut self,
        victim_idx: usize,
        failure: Failure,
        timeout: Duration,
    ) -> anyhow::Result<KillTimes> {
        anyhow::ensure!(victim_idx >= self.n_servers, "the victim must be a client");
        let name = self.agents[victim_idx].node_name().to_owned();
        let lookup = format!("{name}.{SERVICE}.service.consul");
        let victim_ip = self.ip(victim_idx);
        // The `?passing` watch parks on the index the victim was last seen passing at, so the server answers the
        // moment the service's health changes rather than at the next poll.
        let (listed, mut index) = self.passing_node(&name, None).await?;
        anyhow::ensure!(listed, "{name} is not in ?passing before the kill");
        // Both clocks start at the signal: reaping a process can take a good part of a second on a loaded machine.
        let (killed_at, killed) = (SystemTime::now(), Instant::now());
        match failure {
            Failure::Kill => self.agents[victim_idx].kill9(),
            Failure::Freeze => self.agents[victim_idx].freeze(),
        }
        let cluster = &*self;
        // The two run side by side, so a slow sweep of every agent's DNS does not delay the `?passing` watch.
        let passing = async {
            while killed.elapsed() <= timeout {
                match cluster.passing_node(&name, Some(index)).await {
                    Ok((false, _)) => return Some(killed.elapsed()),
                    Ok((true, next)) => index = next,
                    // A failed read says nothing; ask again shortly rather than spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            None
        };
        // Per running agent, when its DNS first answered without the victim; an agent that is out stays out (its
        // cache is fed by a blocking query), so it is not asked again.
        let dns = async {
            let mut dns_out: Vec<(usize, Option<Duration>)> = (0..cluster.agents.len())
                .filter(|idx| cluster.agents[*idx].is_running())
                .map(|idx| (idx, None))
                .collect();
            while dns_out.iter().any(|(_, out)| out.is_none()) && killed.elapsed() <= timeout {
                let pending = dns_out.iter_mut().filter(|(_, out)| out.is_none());
                let lookups = pending.map(|(idx, out)| {
                    let (addr, lookup) = (cluster.agents[*idx].dns_addr(), lookup.as_str());
                    async move {
                        // No answer says nothing: only an answer without the victim counts as out.
                        if let Ok(ips) = dns_a(addr, lookup).await
                            && !ips.iter().any(|ip| IpAddr::V4(*ip) == victim_ip)
                        {
                            *out = Some(killed.elapsed());
                        }
                    }
                });
                join_all(lookups).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            dns_out
        };
        let (out_of_passing, dns_out) = tokio::join!(passing, dns);
        let still: Vec<&str> =
            dns_out.iter().filter(|(_, out)| out.is_none()).map(|(idx, _)| self.agents[*idx].node_name()).collect();
        if out_of_passing.is_none() || !still.is_empty() {
            bail!("{name} still in passing ({out_of_passing:?}) or in the DNS of {still:?} after {timeout:?}");
        }
        let mut dns_times: Vec<Duration> = dns_out.iter().filter_map(|(_, out)| *out).collect();
        dns_times.sort();
        Ok(KillTimes {
            out_of_passing: out_of_passing.unwrap_or_default(),
            out_of_dns: dns_times.last().copied().unwrap_or_default(),
            dns_first: dns_times.first().copied().unwrap_or_default(),
            dns_median: dns_times.get(dns_times.len() / 2).copied().unwrap_or_default(),
            log: self.kill_log(&name, killed_at),
        })
    }

    /// What the running agents logged about `name` since `killed_at`.
    fn kill_log(&self, name: &str, killed_at: SystemTime) -> KillLog {
        let servers = &self.agents[..self.n_servers];
        let logs: Vec<(bool, String)> = self
            .running()
            .map(|agent| (servers.iter().any(|server| server.node_name() == agent.node_name()), agent.stderr_tail()))
            .collect();
        let marks = |text: &str| first_logged(text, &format!("marking serfHealth critical: node={name}"), killed_at);
        // The leader is the server that wrote the critical check; with one server, that server anyway.
        let leader = logs
            .iter()
            .filter(|(is_server, _)| *is_server)
            .find(|(_, text)| marks(text).is_some())
            .or_else(|| logs.iter().find(|(is_server, _)| *is_server))
            .map(|(_, text)| text.as_str())
            .unwrap_or_default();
        let suspect = format!("gossip: member {name} is suspect:");
        let failed = format!("gossip: member {name} failed:");
        let earliest = |needle: &str| logs.iter().filter_map(|(_, text)| first_logged(text, needle, killed_at)).min();
        KillLog {
            first_suspect: earliest(&suspect),
            leader_suspect: first_logged(leader, &suspect, killed_at),
            first_failed: earliest(&failed),
            leader_failed: first_logged(leader, &failed, killed_at),
            leader_marks_critical: marks(leader),
            first_confirmed: earliest(&format!("gossip: suspicion confirmed: member={name}")),
            unanswered_checks: logs
                .iter()
                .map(|(_, text)| {
                    count_logged(text, &format!("gossip: a suspect did not answer our check: member={name}"), killed_at)
                })
                .sum(),
        }
    }

    /// Fails client `target_idx`'s TTL check and times it until no running agent's DNS answers the instance.
    pub async fn propagation(&self, target_idx: usize, timeout: Duration) -> anyhow::Result<Duration> {
        let target = &self.agents[target_idx];
        let res = target.put(&format!("/v1/agent/check/fail/{CHECK_ID}?note=scale"), "").await;
        anyhow::ensure!(res.status == 200, "failing the check on {}: {}", target.node_name(), res.text());
        let failed = Instant::now();
        loop {
            if self.n_answering(target_idx).await == 0 {
                return Ok(failed.elapsed());
            }
            if failed.elapsed() > timeout {
                let still = self.answering(target_idx).await;
                bail!("{} still answered by the DNS of {still:?} after {timeout:?}", target.node_name());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many (running agent, member) pairs say `failed` although the member runs: false failure detections.
    pub async fn false_failed(&self) -> usize {
        let running: Vec<&str> = self.running().map(TestAgent::node_name).collect();
        let views = join_all(self.running().map(|agent| member_names(agent, 4))).await;
        views.iter().flatten().filter(|name| running.contains(&name.as_str())).count()
    }

    /// The lines holding `needle` that the running agents logged at or after `since`, each after its agent's name
    /// (each agent logs its own view: one member suspected, seen by 199 others, is 199 lines).
    pub fn logged(&self, needle: &str, since: SystemTime) -> Vec<String> {
        let mut found = Vec::new();
        for agent in self.running() {
            let log = agent.stderr_tail();
            let lines =
                log.lines().filter(|line| line.contains(needle) && line_time(line).is_some_and(|at| at >= since));
            found.extend(lines.map(|line| format!("{}: {line}", agent.node_name())));
        }
        found
    }

    /// The resident set size (`VmRSS`, `RssAnon`) of every running agent, in KiB, servers first.
    pub fn memory_kib(&self) -> Vec<(u64, u64)> {
        let pids = self.running().filter_map(|agent| agent.pid());
        pids.filter_map(|pid| Some((rss_kib(pid)?, anon_kib(pid)?))).collect()
    }

    /// Gossip bytes sent per second and agent, averaged over `window` (no other traffic is made meanwhile);
    /// `None` when this placement cannot count them (loopback without root/iptables).
    pub async fn gossip_bytes_per_sec(&self, window: Duration) -> Option<f64> {
        let before = self.gossip_bytes()?;
        tokio::time::sleep(window).await;
        let after = self.gossip_bytes()?;
        let n_running = self.running().count().max(1);
        #[allow(clippy::cast_precision_loss)]
        Some(after.saturating_sub(before) as f64 / window.as_secs_f64() / n_running as f64)
    }

    /// Bytes sent so far by every running agent's gossip, summed.
    fn gossip_bytes(&self) -> Option<u64> {
        match &self.net {
            Net::Loopback(_) => self.counter.as_ref()?.read(),
            // In its own namespace an agent is alone on its link, so its interface counters are its traffic
            // (`ip netns exec` execs the agent, so the pid is the agent's).
            Net::Namespaces(_) => {
                self.running().filter_map(|agent| agent.pid()).map(netns_tx_bytes).sum::<Option<u64>>()
            }
        }
    }

    /// Whether the first server lists `node` in `/v1/health/service/scale?passing`, and the answer's index. With
    /// `after`, a blocking query that returns once the service's health has moved past that index (or after
    /// [`PASSING_WAIT`]); filtered to the one node, so the answer is one entry at most whatever N is.
    async fn passing_node(&self, node: &str, after: Option<u64>) -> anyhow::Result<(bool, u64)> {
        let filter = format!("Node.Node == \"{node}\"");
        let mut path = format!("/v1/health/service/{SERVICE}?passing&filter={}", query_escape(&filter));
        if let Some(index) = after {
            path.push_str(&format!("&index={index}&wait={}ms", PASSING_WAIT.as_millis()));
        }
        let res = self.agents[0].get(&path).await;
        anyhow::ensure!(res.status == 200, "GET {path}: {} {}", res.status, String::from_utf8_lossy(&res.body));
        let entries = res.json().as_array().cloned().unwrap_or_default();
        Ok((entries.iter().any(|entry| entry["Node"]["Node"] == node), res.index()))
    }

    /// Names the first server lists in `/v1/health/service/scale?passing`.
    async fn passing_nodes(&self) -> Vec<String> {
        let res = self.agents[0].get(&format!("/v1/health/service/{SERVICE}?passing")).await;
        let entries = if res.status == 200 { res.json().as_array().cloned().unwrap_or_default() } else { Vec::new() };
        entries.iter().filter_map(|entry| entry["Node"]["Node"].as_str().map(str::to_owned)).collect()
    }

    /// How many running agents' DNS answer `idx`'s instance with its address.
    async fn n_answering(&self, idx: usize) -> usize {
        self.answering(idx).await.len()
    }

    /// The running agents whose DNS answers `idx`'s instance with its address.
    async fn answering(&self, idx: usize) -> Vec<&str> {
        let name = format!("{}.{SERVICE}.service.consul", self.agents[idx].node_name());
        let want = self.ip(idx);
        let lookups = self.running().map(|agent| {
            let name = name.clone();
            async move {
                let ips = dns_a(agent.dns_addr(), &name).await.unwrap_or_default();
                ips.iter().any(|ip| IpAddr::V4(*ip) == want).then_some(agent.node_name())
            }
        });
        join_all(lookups).await.into_iter().flatten().collect()
    }

    fn running(&self) -> impl Iterator<Item = &TestAgent> {
        self.agents.iter().filter(|agent| agent.is_running())
    }
}

/// Where agents live.
enum Net {
    /// `127.A.B.(2+idx)`.
    Loopback([u8; 3]),
    /// A namespace per agent.
    Namespaces(Namespaces),
}

/// Why the namespace mode cannot run here.
struct Unavailable(String);

/// A bridge in the root namespace and one namespace per agent, its veth's peer in the bridge; removed on drop.
struct Namespaces {
    /// Distinguishes this run's names from another run's (the pid, in hex).
    tag: String,
    /// The second and third octet of `10.X.Y.0/16`.
    octets: [u8; 2],
    n_created: usize,
    loss: LossMethod,
    /// The neighbour-table limits found before [`NeighbourLimits::raise`], restored on drop.
    neighbour_limits: Option<NeighbourLimits>,
}

impl Namespaces {
    fn create(n_agents: usize, loss_percent: f64) -> Result<Namespaces, Unavailable> {
        if !is_root() {
            return Err(Unavailable("the namespace mode needs root (ip netns, veth, bridge)".into()));
        }
        let pid = std::process::id();
        let tag = format!("{:04x}", pid & 0xffff);
        let octets = [200 + u8::try_from(pid % 50).unwrap_or(0), 0];
        let mut namespaces = Namespaces { tag, octets, n_created: 0, loss: LossMethod::None, neighbour_limits: None };
        namespaces.neighbour_limits = Some(
            NeighbourLimits::raise(n_agents)
                .map_err(|err| Unavailable(format!("cannot raise the neighbour-table limits: {err:#}")))?,
        );
        let bridge = namespaces.bridge();
        let bridge_ip = format!("{}/16", namespaces.bridge_ip());
        run_ip(&["link", "add", &bridge, "type", "bridge"])
            .and_then(|()| run_ip(&["addr", "add", &bridge_ip, "dev", &bridge]))
            .and_then(|()| run_ip(&["link", "set", &bridge, "up"]))
            .map_err(|err| Unavailable(format!("cannot create the bridge: {err:#}")))?;
        // With br_netfilter loaded (Docker loads it and sets FORWARD to DROP), frames between two ports of the bridge
        // pass iptables' FORWARD chain: let this bridge's own traffic through, and only it.
        run(Command::new("iptables").args(forward_rule("-I", &bridge)))
            .map_err(|err| Unavailable(format!("cannot allow forwarding on the bridge: {err:#}")))?;
        for idx in 0..n_agents {
            namespaces.add(idx).map_err(|err| Unavailable(format!("ip netns failed: {err:#}")))?;
        }
        if loss_percent > 0.0 {
            namespaces.loss = namespaces.inject_loss(loss_percent).map_err(|err| Unavailable(format!("{err:#}")))?;
        }
        Ok(namespaces)
    }

    fn add(&mut self, idx: usize) -> anyhow::Result<()> {
        let (netns, host_end) = (self.netns_name(idx), format!("rsv{}{idx}", self.tag));
        run_ip(&["netns", "add", &netns])?;
        self.n_created = idx + 1;
        let address = format!("{}/16", self.ip(idx));
        run_ip(&["link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &netns])?;
        run_ip(&["link", "set", &host_end, "master", &self.bridge(), "up"])?;
        run_ip(&["-n", &netns, "addr", "add", &address, "dev", "eth0"])?;
        run_ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        run_ip(&["-n", &netns, "link", "set", "lo", "up"])
    }

    /// Loss on every agent's outgoing packets: netem when the kernel has it, else an iptables random drop. Packets to
    /// the bridge address (the harness's own HTTP and DNS polls) are spared by the iptables rule.
    fn inject_loss(&self, percent: f64) -> anyhow::Result<LossMethod> {
        let netem = format!("{percent}%");
        let first = self.netns_name(0);
        let netem_ok = run(Command::new("ip")
            .args(["netns", "exec", &first, "tc", "qdisc", "add", "dev", "eth0"])
            .args(["root", "netem", "loss", &netem]))
        .is_ok();
        let probability = format!("{}", percent / 100.0);
        let bridge_ip = self.bridge_ip().to_string();
        for idx in 0..self.n_created {
            let netns = self.netns_name(idx);
            if netem_ok {
                if idx > 0 {
                    run(Command::new("ip")
                        .args(["netns", "exec", &netns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem"])
                        .args(["loss", &netem]))?;
                }
            } else {
                run(Command::new("ip")
                    .args(["netns", "exec", &netns, "iptables", "-A", "OUTPUT", "!", "-d", &bridge_ip])
                    .args(["-m", "statistic", "--mode", "random", "--probability", &probability, "-j", "DROP"]))
                .context("no sch_netem, and iptables statistic failed too")?;
            }
        }
        Ok(if netem_ok { LossMethod::Netem } else { LossMethod::IptablesStatistic })
    }

    fn netns_name(&self, idx: usize) -> String {
        format!("rscale-{}-{idx}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("rsbr{}", self.tag)
    }

    fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octets[0], self.octets[1], 1)
    }

    fn ip(&self, idx: usize) -> IpAddr {
        let host = idx + 2;
        IpAddr::V4(Ipv4Addr::new(10, self.octets[0], (host / 256) as u8, (host % 256) as u8))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and the peer with it.
        for idx in 0..self.n_created {
            if let Err(err) = run_ip(&["netns", "del", &self.netns_name(idx)]) {
                eprintln!("scale: removing namespace {}: {err:#}", self.netns_name(idx));
            }
        }
        if let Err(err) = run_ip(&["link", "del", &self.bridge()]) {
            eprintln!("scale: removing bridge {}: {err:#}", self.bridge());
        }
        if let Err(err) = run(Command::new("iptables").args(forward_rule("-D", &self.bridge()))) {
            eprintln!("scale: removing the FORWARD rule of {}: {err:#}", self.bridge());
        }
        if let Some(limits) = self.neighbour_limits.take() {
            limits.restore();
        }
    }
}

/// The kernel's ARP table limits (`net.ipv4.neigh.default.gc_thresh1..3`).
///
/// The table is one for the whole kernel, every namespace's entries counted together, and its default hard limit
/// (`gc_thresh3`) is 1024 entries. N agents that all gossip with each other need about N² entries (each namespace
/// resolves every other agent's address), so past about 32 agents new neighbours fail to resolve, and a join or a
/// probe gets "host unreachable" (the N = 50 namespace run that failed after about the fortieth agent).
struct NeighbourLimits {
    /// The values found, `gc_thresh1` to `gc_thresh3`.
    before: [u64; 3],
}

impl NeighbourLimits {
    const PATHS: [&str; 3] = [
        "/proc/sys/net/ipv4/neigh/default/gc_thresh1",
        "/proc/sys/net/ipv4/neigh/default/gc_thresh2",
        "/proc/sys/net/ipv4/neigh/default/gc_thresh3",
    ];

    /// Raises the limits (never lowers them) so that `n_agents` namespaces' entries are neither refused nor garbage
    /// collected while they are in use: below `gc_thresh1` the kernel collects nothing.
    fn raise(n_agents: usize) -> anyhow::Result<NeighbourLimits> {
        let mut before = [0u64; 3];
        for (value, path) in before.iter_mut().zip(Self::PATHS) {
            *value = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?.trim().parse()?;
        }
        let entries = u64::try_from(n_agents * (n_agents + 1))?;
        let wanted = [entries, entries * 2, entries * 4];
        // The hard limit first, so that the three stay in order at every step.
        for idx in (0..3).rev() {
            let value = wanted[idx].max(before[idx]);
            std::fs::write(Self::PATHS[idx], value.to_string())
                .with_context(|| format!("writing {}", Self::PATHS[idx]))?;
        }
        Ok(NeighbourLimits { before })
    }

    fn restore(self) {
        for (value, path) in self.before.iter().zip(Self::PATHS) {
            if let Err(err) = std::fs::write(path, value.to_string()) {
                eprintln!("scale: restoring {path} to {value}: {err}");
            }
        }
    }
}

/// An iptables chain with one counting rule per agent address for gossip (UDP and TCP from port 8301), hooked into
/// OUTPUT; removed on drop. Loopback traffic of all agents shares one interface, so this is what tells them apart.
struct GossipCounter {
    chain: String,
}

impl GossipCounter {
    /// `None` (no gossip figures) when not root or iptables is missing.
    fn install(ips: &[IpAddr]) -> Option<GossipCounter> {
        if !is_root() {
            return None;
        }
        let chain = format!("RSCALE{:x}", std::process::id());
        run(Command::new("iptables").args(["-N", &chain])).ok()?;
        let counter = GossipCounter { chain };
        for ip in ips {
            for proto in ["udp", "tcp"] {
                let ip = ip.to_string();
                let rule = ["-A", &counter.chain, "-s", &ip, "-p", proto, "--sport", "8301"];
                run(Command::new("iptables").args(rule)).ok()?;
            }
        }
        run(Command::new("iptables").args(["-I", "OUTPUT", "-j", &counter.chain])).ok()?;
        Some(counter)
    }

    fn read(&self) -> Option<u64> {
        let output = Command::new("iptables").args(["-L", &self.chain, "-v", "-x", "-n"]).output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        // Rows after the two header lines: pkts bytes target prot opt in out source destination ...
        Some(text.lines().skip(2).filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok()).sum())
    }
}

impl Drop for GossipCounter {
    fn drop(&mut self) {
        let chain = self.chain.as_str();
        for args in [&["-D", "OUTPUT", "-j", chain][..], &["-F", chain], &["-X", chain]] {
            if let Err(err) = run(Command::new("iptables").args(args)) {
                eprintln!("scale: removing iptables chain {chain}: {err:#}");
            }
        }
    }
}

/// The A records of `name` from the DNS server at `addr` (UDP, one query, [`DNS_TIMEOUT`]); an error when it does not
/// answer or answers with an error code.
pub async fn dns_a(addr: SocketAddr, name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    let id = rand_id();
    let mut query = Vec::with_capacity(64);
    query.extend_from_slice(&id.to_be_bytes());
    // Flags: recursion desired; one question.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        query.push(u8::try_from(label.len()).context("label too long")?);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    socket.send_to(&query, addr).await?;
    let mut buf = vec![0u8; 4096];
    let n_read = tokio::time::timeout(DNS_TIMEOUT, socket.recv(&mut buf)).await.context("no DNS answer")??;
    parse_a_records(&buf[..n_read], id)
}

/// The A records of a response's answer section.
fn parse_a_records(msg: &[u8], id: u16) -> anyhow::Result<Vec<Ipv4Addr>> {
    anyhow::ensure!(msg.len() >= 12 && msg[..2] == id.to_be_bytes(), "not the answer to our query");
    let rcode = msg[3] & 0x0f;
    // NXDOMAIN (3) is an answer: no such instance.
    if rcode == 3 {
        return Ok(Vec::new());
    }
    anyhow::ensure!(rcode == 0, "DNS rcode {rcode}");
    let n_questions = u16::from_be_bytes([msg[4], msg[5]]);
    let n_answers = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = 12;
    for _ in 0..n_questions {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut ips = Vec::new();
    for _ in 0..n_answers {
        pos = skip_name(msg, pos)?;
        let header = msg.get(pos..pos + 10).context("truncated record")?;
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let rdlength = usize::from(u16::from_be_bytes([header[8], header[9]]));
        let rdata = msg.get(pos + 10..pos + 10 + rdlength).context("truncated rdata")?;
        if rtype == 1 && rdlength == 4 {
            ips.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        pos += 10 + rdlength;
    }
    Ok(ips)
}

/// The position after a (possibly compressed) name starting at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> anyhow::Result<usize> {
    loop {
        let len = *msg.get(pos).context("truncated name")?;
        match len {
            0 => return Ok(pos + 1),
            // A compression pointer ends the name.
            l if l & 0xc0 == 0xc0 => return Ok(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
}

/// A query ID that differs from query to query (a counter mixed with the clock), so a late answer to an earlier
/// query is not mistaken for this one's.
fn rand_id() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ (nanos as u16)
}

/// The time from `since` to the first line of `log` at or after `since` that holds `needle` as a whole (followed by
/// the end of the line, a space or a colon, so `node=c2` does not match `node=c20`).
fn first_logged(log: &str, needle: &str, since: SystemTime) -> Option<Duration> {
    logged_times(log, needle, since).min()
}

/// How many lines of `log` from `since` on contain `needle` as [`first_logged`] matches it.
fn count_logged(log: &str, needle: &str, since: SystemTime) -> usize {
    logged_times(log, needle, since).count()
}

/// When each line from `since` on that contains `needle` (followed by a space, a colon or the line's end, so that
/// `node=c2` does not match `node=c20`) was logged, as times from `since`.
fn logged_times<'a>(log: &'a str, needle: &'a str, since: SystemTime) -> impl Iterator<Item = Duration> + 'a {
    log.lines()
        .filter(move |line| {
            line.match_indices(needle).any(|(at, _)| {
                matches!(line[at + needle.len()..].chars().next(), None | Some(' ' | ':')) || needle.ends_with(':')
            })
        })
        .filter_map(move |line| line_time(line)?.duration_since(since).ok())
}

/// The timestamp that starts an agent's text log line (hclog's `2006-01-02T15:04:05.000Z`).
fn line_time(line: &str) -> Option<SystemTime> {
    let stamp = line.get(..24)?;
    let number = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<u64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second, millis) = (number(11..13)?, number(14..16)?, number(17..19)?, number(20..23)?);
    if !stamp.ends_with('Z') || !(1..=12).contains(&month) || year < 1970 {
        return None;
    }
    let secs = days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's `days_from_civil`).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// `RssAnon` of a process, in KiB: its own memory, without the binary's file pages that every agent shares.
pub fn anon_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "RssAnon:")
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes sent on `eth0` of the namespace process `pid` is in.
fn netns_tx_bytes(pid: u32) -> Option<u64> {
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let line = dev.lines().find(|line| line.trim_start().starts_with("eth0:"))?;
    // After "eth0:": 8 receive columns, then transmit bytes.
    line.split_once(':')?.1.split_whitespace().nth(8)?.parse().ok()
}

/// `iptables ACTION FORWARD` accepting what enters and leaves through `bridge`.
fn forward_rule<'a>(action: &'a str, bridge: &'a str) -> [&'a str; 8] {
    [action, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn run_ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args))
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    Ok(())
}
