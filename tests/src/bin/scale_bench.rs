//! Issue 20's scale figures, each row from real agents started by the scale harness (`roster_tests::scale`).
//!
//! `cargo run -p roster-tests --bin scale_bench -- gossip --n 50,100 [--servers 1]`: per N (servers included), the time
//! to converge, a `kill -9`ed client's time out of `?passing` and out of every agent's DNS, one failed check's time out
//! of every agent's DNS, gossip bytes/s per agent, and RSS per agent; then, per N, where the kill's seconds went
//! (first suspicion, the leader's suspicion and failure and its `serfHealth` write, from the agents' logs; `?passing`;
//! the first, median and last agent's DNS). `--kills K` kills K clients one after another in the same cluster (each
//! once the previous one is out of every agent's DNS), for K detection samples per start: the table row shows the
//! first, the breakdown one row per kill. `--freeze` stops the victims with SIGSTOP instead: nothing they hold
//! closes, so no server sees their connection end and detection is the failure detector's alone.
//!
//! `... -- gossip --n 50 --netns --loss 5 --duration 600`: a network namespace per agent with 5 % loss on every link
//! (netem, or iptables when the kernel lacks `sch_netem`; the table says which), then a count of false `failed`
//! members seen over the duration (every agent's view, every 10 s), and from the agents' logs every `failed` and
//! every agent told it was declared down, which a sample misses once a rejoin undid it. Needs root; prints why it
//! skipped otherwise.
//!
//! `... -- catalog --services 2000 --instances 10 --nodes 200`: one durable server; DNS p99 for a 10-instance service
//! on an otherwise empty catalog, then S × I instances registered on M nodes through `/v1/txn` (64 operations per
//! transaction, or `--ops-per-txn`), then the server's RSS per instance and the same DNS p99 again; with `--restart`,
//! the server is stopped and started on its data dir, and the time until it lists the catalog again is printed.
//!
//! The agents are the debug or release build next to this binary (`ROSTER_BIN` overrides), as the tests use.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use roster_tests::scale::{Failure, LossMethod, ScaleCluster, ScaleOptions, Start, dns_a, rss_kib};
use roster_tests::{AgentMode, TestAgent};
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Scale figures of issue 20: gossip at N agents, and the catalog at many instances")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Convergence, failure detection, propagation, gossip traffic and memory at N agents.
    Gossip {
        /// Agent counts to run, servers included (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [50usize])]
        n: Vec<usize>,
        /// Servers per cluster (1 or 3).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3))]
        servers: u64,
        /// A network namespace per agent instead of loopback addresses (root only).
        #[arg(long)]
        netns: bool,
        /// Packet loss in percent on every agent's link (with --netns).
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// With --netns: how long to watch for false `failed` members, in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Clients to kill one after another per cluster (loopback mode), each a detection sample.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=20))]
        kills: u64,
        /// Stop the victims with SIGSTOP instead of killing them: nothing closes, so no server sees a connection
        /// end and detection is gossip's alone (a host that lost power, a cut link).
        #[arg(long)]
        freeze: bool,
    },
    /// Server memory per instance and DNS p99 against catalog size.
    Catalog {
        /// Service names.
        #[arg(long, default_value_t = 2000)]
        services: usize,
        /// Instances per service.
        #[arg(long, default_value_t = 10)]
        instances: usize,
        /// Nodes the instances are spread over.
        #[arg(long, default_value_t = 200)]
        nodes: usize,
        /// DNS queries per p99 measurement.
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// Operations per `/v1/txn` (at most 64): fewer make more Raft entries, so a snapshot covers the catalog.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=64))]
        ops_per_txn: u64,
        /// Then stop the server (SIGTERM), start it again on its data dir, and time it until it serves the catalog.
        #[arg(long)]
        restart: bool,
    },
}

/// How long any one phase of a gossip run may take before the run is declared failed.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match args.mode {
        Mode::Gossip { n, servers, netns, loss, duration, kills, freeze } => {
            let n_servers = usize::try_from(servers)?;
            if netns {
                for n_agents in n {
                    netns_run(n_agents, n_servers, loss, Duration::from_secs(duration)).await?;
                }
                return Ok(());
            }
            println!(
                "{:>4} {:>8} {:>12} {:>12} {:>12} {:>14} {:>20} {:>20}",
                "N",
                "conv(s)",
                "kill→pass(s)",
                "kill→dns(s)",
                "chg→dns(s)",
                "gossip(B/s/ag)",
                "client RSS/anon MiB",
                "server RSS/anon MiB"
            );
            let mut breakdowns = Vec::new();
            for n_agents in n {
                let failure = if freeze { Failure::Freeze } else { Failure::Kill };
                let (row, breakdown) = gossip_run(n_agents, n_servers, usize::try_from(kills)?, failure)
                    .await
                    .with_context(|| format!("N = {n_agents}"))?;
                println!("{row}");
                breakdowns.extend(breakdown);
            }
            println!("\nwhere a kill's seconds went (from the kill; '-' when no agent logged it):");
            println!(
                "{:>4} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "N",
                "1st susp",
                "1st conf",
                "checks",
                "ldr susp",
                "1st fail",
                "ldr fail",
                "ldr crit",
                "!passing",
                "dns 1st",
                "dns med",
                "dns last"
            );
            for breakdown in breakdowns {
                println!("{breakdown}");
            }
        }
        Mode::Catalog { services, instances, nodes, queries, ops_per_txn, restart } => {
            let load = CatalogLoad { services, instances, nodes, ops_per_txn: usize::try_from(ops_per_txn)? };
            catalog_run(&load, queries, restart).await?
        }
    }
    Ok(())
}

/// One loopback cluster of `n_agents`: every figure of a table row (the first kill's), and one breakdown row per kill.
async fn gossip_run(
    n_agents: usize,
    n_servers: usize,
    kills: usize,
    failure: Failure,
) -> anyhow::Result<(String, Vec<String>)> {
    anyhow::ensure!(n_agents > n_servers + kills + 2, "N must leave at least 2 clients besides the victims");
    let options = ScaleOptions { n_servers, n_clients: n_agents - n_servers, ..ScaleOptions::default() };
    let Start::Started(mut cluster) = ScaleCluster::start(&options).await? else { bail!("loopback never skips") };
    let converged = cluster.wait_converged(PHASE_TIMEOUT).await?;
    cluster.register_services(PHASE_TIMEOUT).await?;
    let first_client = cluster.first_client();
    // The target of the check change first, then the victims, none of them the first client.
    let target = first_client + 1;
    let victims: Vec<usize> = (first_client + 2..first_client + 2 + kills).collect();
    for idx in std::iter::once(target).chain(victims.iter().copied()) {
        cluster.wait_in_dns(idx, PHASE_TIMEOUT).await?;
    }
    // Quiet traffic: no polling while the counters run.
    let gossip = cluster.gossip_bytes_per_sec(Duration::from_secs(10)).await;
    let memory = cluster.memory_kib();
    let mut killed = Vec::new();
    for victim in victims {
        killed.push(cluster.failure_detection(victim, failure, PHASE_TIMEOUT).await?);
    }
    let change = cluster.propagation(target, PHASE_TIMEOUT).await?;
    let (server_memory, client_memory) = memory.split_at(n_servers.min(memory.len()));
    let gossip = gossip.map_or_else(|| "n/a".to_owned(), |bytes| format!("{bytes:.0}"));
    let secs =
        |time: Option<Duration>| time.map_or_else(|| "-".to_owned(), |time| format!("{:.2}", time.as_secs_f64()));
    let breakdown = killed
        .iter()
        .map(|kill| {
            let log = &kill.log;
            format!(
                "{:>4} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                n_agents,
                secs(log.first_suspect),
                secs(log.first_confirmed),
                log.unanswered_checks,
                secs(log.leader_suspect),
                secs(log.first_failed),
                secs(log.leader_failed),
                secs(log.leader_marks_critical),
                secs(Some(kill.out_of_passing)),
                secs(Some(kill.dns_first)),
                secs(Some(kill.dns_median)),
                secs(Some(kill.out_of_dns)),
            )
        })
        .collect();
    let kill = killed.first().context("at least one kill")?;
    let row = format!(
        "{:>4} {:>8.2} {:>12.2} {:>12.2} {:>12.2} {:>14} {:>20} {:>20}",
        n_agents,
        converged.as_secs_f64(),
        kill.out_of_passing.as_secs_f64(),
        kill.out_of_dns.as_secs_f64(),
        change.as_secs_f64(),
        gossip,
        mean_mib(client_memory),
        mean_mib(server_memory),
    );
    Ok((row, breakdown))
}

/// A namespace-per-agent cluster with loss: convergence, then false `failed` members over `duration`.
async fn netns_run(n_agents: usize, n_servers: usize, loss: f64, duration: Duration) -> anyhow::Result<()> {
    let options =
        ScaleOptions { n_servers, n_clients: n_agents - n_servers, netns_loss: Some(loss), ..ScaleOptions::default() };
    let cluster = match ScaleCluster::start(&options).await? {
        Start::Started(cluster) => cluster,
        Start::Skipped(reason) => {
            println!("skipped: {reason}");
            return Ok(());
        }
    };
    let method = match cluster.loss_method() {
        LossMethod::None => "none",
        LossMethod::Netem => "tc netem",
        LossMethod::IptablesStatistic => "iptables statistic (no sch_netem)",
    };
    let converged = cluster.wait_converged(PHASE_TIMEOUT).await?;
    let gossip = cluster.gossip_bytes_per_sec(Duration::from_secs(10)).await;
    let started = Instant::now();
    let started_at = SystemTime::now();
    let (mut n_samples, mut n_false, mut worst) = (0usize, 0usize, 0usize);
    while started.elapsed() < duration {
        let seen = cluster.false_failed().await;
        n_samples += 1;
        n_false += seen;
        worst = worst.max(seen);
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // Every agent runs throughout, so every `failed` an agent logged is a false one, and so is every time an agent
    // heard that the cluster had declared it down; suspicions are counted as each agent saw them.
    // The view's transition line only: with `ROSTER_SCALE_LOG` raising the actor's level, "probe failed: member=" too.
    let mut logged_failed = cluster.logged("failed: member=", started_at);
    logged_failed.retain(|line| line.contains("gossip::view"));
    let declared_down = cluster.logged("the cluster declared this node down", started_at);
    let suspected = cluster.logged("is suspect: member=", started_at).len();
    // The first few, so a false failure can be followed into the agents' logs.
    for line in logged_failed.iter().chain(&declared_down).take(10) {
        eprintln!("{line}");
    }
    let (logged_failed, declared_down) = (logged_failed.len(), declared_down.len());
    println!(
        "{:>4} {:>6} {:>36} {:>8} {:>9} {:>8} {:>12} {:>13} {:>13} {:>15} {:>14}",
        "N",
        "loss%",
        "loss method",
        "conv(s)",
        "watch(s)",
        "samples",
        "false failed",
        "failed (log)",
        "declared down",
        "suspect (views)",
        "gossip(B/s/ag)"
    );
    let gossip = gossip.map_or_else(|| "n/a".to_owned(), |bytes| format!("{bytes:.0}"));
    println!(
        "{:>4} {:>6.1} {:>36} {:>8.2} {:>9} {:>8} {:>12} {:>13} {:>13} {:>15} {:>14}",
        n_agents,
        loss,
        method,
        converged.as_secs_f64(),
        duration.as_secs(),
        n_samples,
        format!("{n_false} (max {worst})"),
        logged_failed,
        declared_down,
        suspected,
        gossip
    );
    Ok(())
}

/// The catalog a `catalog` run registers.
struct CatalogLoad {
    /// Service names.
    services: usize,
    /// Instances per name.
    instances: usize,
    /// Nodes the instances are spread over.
    nodes: usize,
    /// Operations per transaction.
    ops_per_txn: usize,
}

/// One server: DNS p99 and RSS before and after `services × instances` instances on `nodes` nodes; with `restart`,
/// the time a restarted server takes to serve that catalog again, and its RSS then.
async fn catalog_run(load: &CatalogLoad, queries: usize, restart: bool) -> anyhow::Result<()> {
    let CatalogLoad { services, instances, nodes, ops_per_txn } = *load;
    let dir = tempfile::tempdir()?;
    let mode = AgentMode::Server { data_dir: dir.path().to_path_buf() };
    let mut server = TestAgent::start_with_config("catalog-server", mode, json!({"ports": {"dns": 0}})).await?;
    let pid = server.pid().context("server pid")?;
    // The probe service: 10 instances on 10 nodes, present in both measurements.
    let mut probe_ops = Vec::new();
    for idx in 0..10 {
        let node = format!("probe-{idx}");
        probe_ops
            .push(json!({"Node": {"Verb": "set", "Node": {"Node": node, "Address": format!("10.9.0.{}", idx + 1)}}}));
        probe_ops.push(json!({"Service": {"Verb": "set", "Node": node, "Service": {"ID": "probe", "Service": "probe", "Port": 80}}}));
    }
    txn(&server, probe_ops).await?;
    let empty_p99 = dns_p99(&server, queries).await?;
    let rss_before = rss_kib(pid).context("server RSS")?;

    let started = Instant::now();
    let mut batches: Vec<Vec<Value>> = Vec::new();
    let node_ops: Vec<Value> = (0..nodes)
        .map(|idx| {
            let address = format!("10.{}.{}.{}", 10 + idx / 65536, (idx / 256) % 256, idx % 256);
            json!({"Node": {"Verb": "set", "Node": {"Node": format!("node-{idx}"), "Address": address}}})
        })
        .collect();
    batches.extend(node_ops.chunks(ops_per_txn).map(<[Value]>::to_vec));
    let mut service_ops = Vec::with_capacity(services * instances);
    for svc in 0..services {
        for inst in 0..instances {
            let node = format!("node-{}", (svc * instances + inst) % nodes);
            let id = format!("svc-{svc}-{inst}");
            service_ops.push(json!({"Service": {"Verb": "set", "Node": node,
                "Service": {"ID": id, "Service": format!("svc-{svc}"), "Port": 1000 + inst}}}));
        }
    }
    let n_nodes_batches = batches.len();
    batches.extend(service_ops.chunks(ops_per_txn).map(<[Value]>::to_vec));
    // Nodes first (a service needs its node), then services 16 transactions at a time.
    for batch in batches.drain(..n_nodes_batches) {
        txn(&server, batch).await?;
    }
    for group in batches.chunks(16) {
        for done in join_all(group.iter().map(|batch| txn(&server, batch.clone()))).await {
            done?;
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    let n_instances = services * instances;
    let rss_after = rss_kib(pid).context("server RSS")?;
    let loaded_p99 = dns_p99(&server, queries).await?;
    #[allow(clippy::cast_precision_loss)]
    let per_instance = (rss_after.saturating_sub(rss_before) * 1024) as f64 / n_instances as f64;
    println!(
        "{:>10} {:>6} {:>10} {:>14} {:>14} {:>16} {:>15} {:>15} {:>6}",
        "instances",
        "nodes",
        "load(s)",
        "RSS before(MiB)",
        "RSS after(MiB)",
        "RSS/instance(B)",
        "DNS p99 empty",
        "DNS p99 loaded",
        "ratio"
    );
    #[allow(clippy::cast_precision_loss)]
    let (before_mib, after_mib) = (rss_before as f64 / 1024.0, rss_after as f64 / 1024.0);
    println!(
        "{:>10} {:>6} {:>10.1} {:>14.1} {:>14.1} {:>16.0} {:>13.0}µs {:>13.0}µs {:>6.2}",
        n_instances,
        nodes,
        load_secs,
        before_mib,
        after_mib,
        per_instance,
        empty_p99.as_secs_f64() * 1e6,
        loaded_p99.as_secs_f64() * 1e6,
        loaded_p99.as_secs_f64() / empty_p99.as_secs_f64()
    );
    if restart {
        restart_row(&mut server).await?;
    }
    Ok(())
}

/// Stops the server gracefully, starts it on the same data dir, and prints how long it took to have a leader and to
/// list every service name it listed before, and its RSS then.
async fn restart_row(server: &mut TestAgent) -> anyhow::Result<()> {
    let n_services = service_count(server).await;
    server.terminate(Duration::from_secs(30)).await.context("the server did not stop within 30 s")?;
    let started = Instant::now();
    // The harness waits 10 s for the readiness line, which a server prints once its state is rebuilt.
    server.try_restart().await.context("restarting the server")?;
    server.wait_for_leader().await?;
    let leader_secs = started.elapsed().as_secs_f64();
    let served_secs = loop {
        let listed = service_count(server).await;
        if listed == n_services {
            break started.elapsed().as_secs_f64();
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "{listed} of {n_services} services after 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pid = server.pid().context("server pid")?;
    #[allow(clippy::cast_precision_loss)]
    let rss_mib = rss_kib(pid).context("server RSS")? as f64 / 1024.0;
    println!(
        "restart: leader after {leader_secs:.2} s, all {n_services} services listed after {served_secs:.2} s, RSS {rss_mib:.1} MiB"
    );
    Ok(())
}

/// How many service names `/v1/catalog/services` lists (0 while it does not answer).
async fn service_count(server: &TestAgent) -> usize {
    let res = server.get("/v1/catalog/services").await;
    if res.status != 200 {
        return 0;
    }
    res.json().as_object().map_or(0, serde_json::Map::len)
}

/// One `/v1/txn` that must commit.
async fn txn(server: &TestAgent, ops: Vec<Value>) -> anyhow::Result<()> {
    let res = server.put_json("/v1/txn", &Value::Array(ops)).await;
    anyhow::ensure!(res.status == 200, "txn refused: {} {}", res.status, res.text());
    Ok(())
}

/// The 99th percentile of `queries` sequential lookups of the 10-instance `probe` service, after a warm-up; the
/// median of three such rounds, since one burst of another process on a shared machine moves a single p99.
async fn dns_p99(server: &TestAgent, queries: usize) -> anyhow::Result<Duration> {
    let addr = server.dns_addr();
    for _ in 0..100 {
        dns_a(addr, "probe.service.consul").await?;
    }
    let mut rounds = Vec::with_capacity(3);
    for _ in 0..3 {
        let mut samples = Vec::with_capacity(queries);
        for _ in 0..queries {
            let started = Instant::now();
            let ips = dns_a(addr, "probe.service.consul").await?;
            samples.push(started.elapsed());
            anyhow::ensure!(!ips.is_empty(), "probe.service.consul answered no address");
        }
        samples.sort();
        rounds.push(samples[(samples.len() * 99 / 100).min(samples.len() - 1)]);
    }
    rounds.sort();
    Ok(rounds[1])
}

/// "RSS/anon" means in MiB of `(VmRSS, RssAnon)` pairs in KiB.
#[allow(clippy::cast_precision_loss)]
fn mean_mib(memory: &[(u64, u64)]) -> String {
    if memory.is_empty() {
        return "n/a".to_owned();
    }
    let n_agents = memory.len() as f64;
    let rss = memory.iter().map(|(rss, _)| *rss).sum::<u64>() as f64 / n_agents / 1024.0;
    let anon = memory.iter().map(|(_, anon)| *anon).sum::<u64>() as f64 / n_agents / 1024.0;
    format!("{rss:.1}/{anon:.1}")
}
