//! KV throughput and latency of durable roster servers, side by side with etcd's native gRPC API and its JSON gateway.
//!
//! `cargo run --release -p roster-tests --bin bench -- [--clients 64] [--seconds 10] [--servers 1|3] [--etcd-bin PATH]`
//!
//! With `--servers 1` (the default) it starts `roster agent -server -bootstrap-expect 1 -data-dir TMP` itself (so
//! writes pay for fsync, as in production); with `--servers N` it starts N durable servers and one client agent, each
//! on its own loopback address, and measures at the leader and through the client agent. Every system is started and
//! pre-filled with `--keys` keys first; then each operation runs `--clients` concurrent keep-alive clients for
//! `--seconds` per target, split into `--rounds` slices that visit the targets in turn (so a machine whose load moves
//! loads each side alike), and prints ops/s, p50 and p99 over all rounds, and each ratio with its per-round values.
//! It also prints CPU per operation: the whole system's (every process of that side, all servers and the client agent
//! or all etcd members, user + system time from `/proc`) and the bench's own. On a machine the bench shares with the
//! servers, throughput also depends on what each side's client costs; the CPU columns separate the two.
//! Operations: `put` (`PUT /v1/kv/bench/<n>`), `get` (default consistency: a lease read at the leader) and
//! `get-consistent` (`?consistent`: a ReadIndex round).
//!
//! When an `etcd` binary is given or found on PATH, it starts etcd with as many members (each on its own loopback
//! address, temp data dirs) and drives it the same way, at its leader, twice: through its native gRPC API (the
//! `etcd-client` crate; one connection per bench client, as roster gets one keep-alive connection per client) and
//! through its JSON gateway. `put` is `Put` (`POST /v3/kv/put`), and both gets are `Range` with etcd's default
//! `serializable = false`, which is linearizable — etcd has no lease-read mode, and Consul's default mode also
//! promises a read from the leader. Every put on either side is durable (fsynced before it is acknowledged).
//! With `--acl`, a second durable roster server runs with ACLs on (`default_policy = "deny"`) and every request carries
//! a token whose policy is `key_prefix "bench/" { policy = "write" }`, so the table shows what enforcement costs.
//! Everything listens on loopback only, the run is bounded by `--seconds` per operation, and every
//! process it started is killed when it ends, on error, or on Ctrl-C.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use etcd_client::{Client as EtcdClient, KvClient};
use futures_util::future::join_all;
use roster_tests::etcd::{EtcdCluster, EtcdProcess, find_etcd};
use roster_tests::procfs::cpu_time;
use roster_tests::{AgentMode, TestAgent, TestCluster, b64, http_client};
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Benchmark roster's HTTP KV API against etcd's gRPC API and JSON gateway")]
struct Args {
    /// Concurrent keep-alive clients per operation.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    clients: u64,
    /// Seconds each operation runs against each target (at most 300, to keep runs bounded).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    seconds: u64,
    /// Servers on each side: roster servers (plus one client agent when more than one) and etcd members.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    servers: u64,
    /// The etcd binary; by default `etcd` on PATH, and the etcd half is skipped when there is none.
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// Number of distinct keys written and read.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    keys: u64,
    /// Also run roster with ACLs enforced (default deny, a token with write on `bench/`), in the same run.
    #[arg(long)]
    acl: bool,
    /// Rounds per operation: `--seconds` is split into this many slices, and the targets take turns slice by slice.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Size of each written value in bytes.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(0..=524_288))]
    value_size: u64,
}

/// Which server a request goes to, and through which API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    /// roster's HTTP API at the (only or leading) server.
    Roster,
    /// roster with ACLs enforced; requests carry a token.
    RosterAcl,
    /// roster's HTTP API at a client agent, which forwards to the leader over server RPC.
    RosterClient,
    /// etcd's native gRPC API at its leader.
    EtcdGrpc,
    /// etcd's JSON gateway (gRPC-gateway over HTTP/1.1) at its leader.
    EtcdJson,
}

/// One benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
    GetConsistent,
}

const OPS: [Op; 3] = [Op::Put, Op::Get, Op::GetConsistent];

/// How requests reach a target.
enum Api {
    /// A pooled keep-alive HTTP client (roster, and etcd's gateway).
    Http {
        client: reqwest::Client,
        base_url: String,
        /// Sent as `X-Consul-Token` on every request.
        token: Option<String>,
    },
    /// One gRPC connection per bench client: a tonic channel multiplexes its callers over one HTTP/2 connection,
    /// so sharing one would measure that connection, not the server.
    Grpc { connections: Vec<KvClient> },
}

/// A server under test: its kind, how to reach it, and what to write.
struct Target {
    kind: TargetKind,
    api: Api,
    /// Every process of the system behind it, whose CPU time counts against its operations.
    pids: Vec<u32>,
    value: String,
    n_keys: u64,
}

/// The outcome of one operation run against one target.
struct Outcome {
    kind: TargetKind,
    op: Op,
    clients: u64,
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
    n_errors: u64,
    /// Throughput of each round, in the order run.
    per_round: Vec<f64>,
    /// The system's CPU time per operation (all its processes), and the bench's own.
    system_cpu_per_op: Duration,
    bench_cpu_per_op: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Dropping `run` on Ctrl-C drops the agent and etcd guards, which kill their processes.
    tokio::select! {
        res = run(&args) => res,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; stopping everything the bench started");
            Ok(())
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let value = "v".repeat(usize::try_from(args.value_size)?);
    // Every system is started and pre-filled first, then each operation runs in `--rounds` short rounds that visit
    // the targets in turn: on a machine whose load moves, each side sees the same mix of quiet and busy moments, so
    // the ratios compare the systems rather than the minutes they happened to run in.
    let mut guards: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut targets = if args.servers == 1 {
        start_roster_single(args, &value, &mut guards).await?
    } else {
        start_roster_cluster(args, &value, &mut guards).await?
    };
    if args.acl {
        targets.push(start_roster_with_acl(args, &value, &mut guards).await?);
    }
    match find_etcd(args.etcd_bin.as_deref()) {
        Some(etcd_bin) => match start_etcd(&etcd_bin, args, &value, &mut guards).await {
            Ok(etcd_targets) => targets.extend(etcd_targets),
            // roster's side still runs: an etcd that will not start must not throw it away.
            Err(err) => eprintln!("etcd: {err:#}; roster only"),
        },
        None => eprintln!("no etcd binary (install Debian's etcd-server or pass --etcd-bin); roster only"),
    }
    for target in &targets {
        prefill(target).await.with_context(|| format!("pre-filling {}", target.kind.name()))?;
    }
    let rounds = u32::try_from(args.rounds)?;
    let slice = Duration::from_secs(args.seconds) / rounds;
    let mut outcomes = Vec::new();
    for op in OPS {
        let mut samples: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
        for round in 0..rounds {
            for (target, samples) in targets.iter().zip(&mut samples) {
                eprintln!(
                    "{} {} round {}/{rounds}: {} clients for {slice:?}",
                    target.kind.name(),
                    op.name(),
                    round + 1,
                    args.clients
                );
                samples.add(drive(target, op, args.clients, slice).await);
            }
        }
        outcomes.extend(
            targets.iter().zip(samples).map(|(target, samples)| samples.outcome(target.kind, op, args.clients)),
        );
    }
    print_table(&outcomes);
    drop(targets);
    drop(guards);
    Ok(())
}

/// Every client connects from one loopback address: lift the per-client connection cap (Consul's 200).
fn unlimited_conns() -> Value {
    json!({"limits": {"http_max_conns_per_client": 0}})
}

/// One durable server.
async fn start_roster_single(
    args: &Args,
    value: &str,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> anyhow::Result<Vec<Arc<Target>>> {
    let data_dir = tempfile::tempdir().context("creating roster's data dir")?;
    eprintln!("starting roster (durable single server) ...");
    let mode = AgentMode::Server { data_dir: data_dir.path().to_path_buf() };
    let agent = TestAgent::start_with_config("bench", mode, unlimited_conns()).await?;
    let pids = agent.pid().into_iter().collect();
    let roster = Arc::new(Target::http(TargetKind::Roster, format!("http://{}", agent.http_addr()), pids, args, value));
    // The agent goes before its data dir.
    guards.push(Box::new(agent));
    guards.push(Box::new(data_dir));
    Ok(vec![roster])
}

/// `--servers` durable servers and one client agent, measured at the leader and through the client.
async fn start_roster_cluster(
    args: &Args,
    value: &str,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> anyhow::Result<Vec<Arc<Target>>> {
    let n_servers = usize::try_from(args.servers)?;
    eprintln!("starting roster ({n_servers} durable servers and a client agent) ...");
    let cluster = TestCluster::try_start(n_servers, 1, unlimited_conns()).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let at_leader = format!("http://{}", cluster.servers[leader].http_addr());
    let via_client = format!("http://{}", cluster.clients[0].http_addr());
    let pids: Vec<u32> = cluster.servers.iter().chain(&cluster.clients).filter_map(TestAgent::pid).collect();
    guards.push(Box::new(cluster));
    Ok(vec![
        Arc::new(Target::http(TargetKind::Roster, at_leader, pids.clone(), args, value)),
        Arc::new(Target::http(TargetKind::RosterClient, via_client, pids, args, value)),
    ])
}

/// etcd with `--servers` members, at its leader: the gRPC API and the JSON gateway.
async fn start_etcd(
    etcd_bin: &Path,
    args: &Args,
    value: &str,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> anyhow::Result<Vec<Arc<Target>>> {
    eprintln!("starting etcd ({} member(s)) from {} ...", args.servers, etcd_bin.display());
    let (client_urls, pids) = if args.servers == 1 {
        let (etcd, url) = EtcdProcess::start(etcd_bin).await?;
        let pid = etcd.pid();
        guards.push(Box::new(etcd));
        (vec![url], vec![pid])
    } else {
        let cluster = EtcdCluster::start(etcd_bin, usize::try_from(args.servers)?).await?;
        let urls = cluster.client_urls.clone();
        let pids = cluster.members.iter().map(EtcdProcess::pid).collect();
        guards.push(Box::new(cluster));
        (urls, pids)
    };
    let leader_url = etcd_leader(&client_urls).await?;
    let grpc = Arc::new(Target::grpc(&leader_url, pids.clone(), args, value).await?);
    let json_gateway = Arc::new(Target::http(TargetKind::EtcdJson, leader_url, pids, args, value));
    Ok(vec![grpc, json_gateway])
}

/// The client URL of the member every member names as leader.
async fn etcd_leader(client_urls: &[String]) -> anyhow::Result<String> {
    for url in client_urls {
        let mut client =
            EtcdClient::connect([url.as_str()], None).await.with_context(|| format!("connecting {url}"))?;
        let status = client.status().await.with_context(|| format!("status of {url}"))?;
        let member_id = status.header().context("a status header")?.member_id();
        if status.leader() == member_id {
            return Ok(url.clone());
        }
    }
    anyhow::bail!("no etcd member reports itself leader")
}

/// The same operations against a server that enforces ACLs, with a token allowed exactly the bench's keys.
async fn start_roster_with_acl(
    args: &Args,
    value: &str,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> anyhow::Result<Arc<Target>> {
    const MANAGEMENT: &str = "3c1f6d2e-8b4a-4e7f-9a1b-2d5c7e9f0a13";
    let data_dir = tempfile::tempdir().context("creating roster's data dir")?;
    eprintln!("starting roster with ACLs (durable single server, default deny) ...");
    let extra =
        json!({"acl": {"enabled": true, "default_policy": "deny", "tokens": {"initial_management": MANAGEMENT}}});
    let mode = AgentMode::Server { data_dir: data_dir.path().to_path_buf() };
    let agent = TestAgent::start_with_config("bench-acl", mode, extra).await?;
    let admin = http_client(1);
    let url = |path: &str| format!("http://{}{path}", agent.http_addr());
    // The leader creates the management token from the config within its first duty pass.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = admin.get(url("/v1/acl/token/self")).header("X-Consul-Token", MANAGEMENT).send().await?;
        if res.status().is_success() {
            break;
        }
        ensure!(Instant::now() < deadline, "the initial management token never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let policy = json!({"Name": "bench", "Rules": "key_prefix \"bench/\" { policy = \"write\" }"});
    let res =
        admin.put(url("/v1/acl/policy")).header("X-Consul-Token", MANAGEMENT).body(policy.to_string()).send().await?;
    ensure!(res.status().is_success(), "creating the bench policy: {}", res.status());
    let token = json!({"Policies": [{"Name": "bench"}]});
    let res =
        admin.put(url("/v1/acl/token")).header("X-Consul-Token", MANAGEMENT).body(token.to_string()).send().await?;
    ensure!(res.status().is_success(), "creating the bench token: {}", res.status());
    let body: serde_json::Value = res.json().await?;
    let secret = body["SecretID"].as_str().context("the token has a SecretID")?.to_owned();
    let pids = agent.pid().into_iter().collect();
    let mut target = Target::http(TargetKind::RosterAcl, format!("http://{}", agent.http_addr()), pids, args, value);
    if let Api::Http { token, .. } = &mut target.api {
        *token = Some(secret);
    }
    guards.push(Box::new(agent));
    guards.push(Box::new(data_dir));
    Ok(Arc::new(target))
}

/// Writes every key once so reads hit existing entries (a 404 would measure a different path).
async fn prefill(target: &Arc<Target>) -> anyhow::Result<()> {
    let batch_size = 64;
    for batch_start in (0..target.n_keys).step_by(batch_size) {
        let batch_end = (batch_start + batch_size as u64).min(target.n_keys);
        let results = join_all((batch_start..batch_end).map(|key_idx| target.request(Op::Put, key_idx, key_idx))).await;
        for res in results {
            res.context("pre-filling keys")?;
        }
    }
    Ok(())
}

/// Runs `n_clients` loops of `op` until `duration` passes and summarises their latencies.
async fn drive(target: &Arc<Target>, op: Op, n_clients: u64, duration: Duration) -> Samples {
    let cpu_before = target.system_cpu();
    let bench_before = cpu_time(std::process::id()).unwrap_or_default();
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..n_clients).map(|worker| {
        let target = Arc::clone(target);
        tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut n_errors = 0u64;
            let mut seq = worker;
            while Instant::now() < deadline {
                // A multiplicative hash spreads consecutive requests over the key space.
                let key_idx = seq.wrapping_mul(2_654_435_761) % target.n_keys;
                seq += n_clients;
                let sent_at = Instant::now();
                match target.request(op, key_idx, worker).await {
                    Ok(()) => latencies_us.push(u32::try_from(sent_at.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(_) => n_errors += 1,
                }
            }
            (latencies_us, n_errors)
        })
    });
    let mut latencies_us = Vec::new();
    let mut n_errors = 0;
    for joined in join_all(workers).await {
        match joined {
            Ok((worker_latencies, worker_errors)) => {
                latencies_us.extend(worker_latencies);
                n_errors += worker_errors;
            }
            Err(_panicked) => n_errors += 1,
        }
    }
    let elapsed = started.elapsed();
    let system_cpu = target.system_cpu().saturating_sub(cpu_before);
    let bench_cpu = cpu_time(std::process::id()).unwrap_or_default().saturating_sub(bench_before);
    Samples { latencies_us, n_errors, elapsed, ratios: Vec::new(), system_cpu, bench_cpu }
}

/// Every round of one operation against one target, added up.
#[derive(Default)]
struct Samples {
    latencies_us: Vec<u32>,
    n_errors: u64,
    elapsed: Duration,
    /// Each round's throughput, to show how much the machine moved between rounds.
    ratios: Vec<f64>,
    /// CPU time of the system's processes, and of the bench, over the rounds.
    system_cpu: Duration,
    bench_cpu: Duration,
}

impl Samples {
    fn add(&mut self, round: Samples) {
        self.ratios.push(round.latencies_us.len() as f64 / round.elapsed.as_secs_f64().max(f64::EPSILON));
        self.latencies_us.extend(round.latencies_us);
        self.n_errors += round.n_errors;
        self.elapsed += round.elapsed;
        self.system_cpu += round.system_cpu;
        self.bench_cpu += round.bench_cpu;
    }

    fn outcome(mut self, kind: TargetKind, op: Op, clients: u64) -> Outcome {
        self.latencies_us.sort_unstable();
        let ops = u32::try_from(self.latencies_us.len()).unwrap_or(u32::MAX).max(1);
        Outcome {
            kind,
            op,
            clients,
            ops_per_sec: self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON),
            p50: percentile(&self.latencies_us, 50),
            p99: percentile(&self.latencies_us, 99),
            n_errors: self.n_errors,
            per_round: self.ratios,
            system_cpu_per_op: self.system_cpu / ops,
            bench_cpu_per_op: self.bench_cpu / ops,
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn percentile(sorted_us: &[u32], pct: usize) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let idx = (sorted_us.len() * pct / 100).min(sorted_us.len() - 1);
    Duration::from_micros(u64::from(sorted_us[idx]))
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<18} {:<15} {:>7} {:>12} {:>10} {:>10} {:>8} {:>13} {:>12}",
        "target", "op", "clients", "ops/s", "p50(ms)", "p99(ms)", "errors", "system_us/op", "bench_us/op"
    );
    for outcome in outcomes {
        println!(
            "{:<18} {:<15} {:>7} {:>12.1} {:>10.3} {:>10.3} {:>8} {:>13.1} {:>12.1}",
            outcome.kind.name(),
            outcome.op.name(),
            outcome.clients,
            outcome.ops_per_sec,
            outcome.p50.as_secs_f64() * 1000.0,
            outcome.p99.as_secs_f64() * 1000.0,
            outcome.n_errors,
            micros(outcome.system_cpu_per_op),
            micros(outcome.bench_cpu_per_op),
        );
    }
    // Each roster row against each peer row of the same operation, as throughput ratios.
    let pairs = [
        (TargetKind::Roster, TargetKind::EtcdGrpc),
        (TargetKind::RosterClient, TargetKind::EtcdGrpc),
        (TargetKind::Roster, TargetKind::EtcdJson),
        (TargetKind::RosterAcl, TargetKind::Roster),
    ];
    for op in OPS {
        let find = |kind| outcomes.iter().find(|outcome| outcome.kind == kind && outcome.op == op);
        for (ours, theirs) in pairs {
            if let (Some(ours), Some(theirs)) = (find(ours), find(theirs))
                && theirs.ops_per_sec > 0.0
            {
                let label = format!("{}/{}", ours.kind.name(), theirs.kind.name());
                // The same round of each side ran back to back, so their ratio is the least disturbed by load.
                let rounds: Vec<String> = ours
                    .per_round
                    .iter()
                    .zip(&theirs.per_round)
                    .map(|(a, b)| format!("{:.2}", a / b.max(f64::EPSILON)))
                    .collect();
                println!(
                    "{label:<30} {:<15} {:.2}x throughput (per round: {}); {:.2}x less system CPU per op",
                    op.name(),
                    ours.ops_per_sec / theirs.ops_per_sec,
                    rounds.join(" "),
                    micros(theirs.system_cpu_per_op) / micros(ours.system_cpu_per_op).max(f64::EPSILON),
                );
            }
        }
    }
}

impl Target {
    /// The CPU time of the system's processes so far; a process that is gone counts nothing.
    fn system_cpu(&self) -> Duration {
        self.pids.iter().filter_map(|pid| cpu_time(*pid).ok()).sum()
    }

    fn http(kind: TargetKind, base_url: String, pids: Vec<u32>, args: &Args, value: &str) -> Target {
        let pool_size = usize::try_from(args.clients).unwrap_or(usize::MAX);
        let api = Api::Http { client: http_client(pool_size), base_url, token: None };
        Target { kind, api, pids, value: value.to_owned(), n_keys: args.keys }
    }

    /// etcd's gRPC API at `url`, one connection per bench client.
    async fn grpc(url: &str, pids: Vec<u32>, args: &Args, value: &str) -> anyhow::Result<Target> {
        let mut connections = Vec::new();
        for _ in 0..args.clients {
            let client = EtcdClient::connect([url], None).await.with_context(|| format!("connecting to {url}"))?;
            connections.push(client.kv_client());
        }
        Ok(Target {
            kind: TargetKind::EtcdGrpc,
            api: Api::Grpc { connections },
            pids,
            value: value.to_owned(),
            n_keys: args.keys,
        })
    }

    /// Sends one request as bench client `worker` and checks the answer means success for that API.
    async fn request(&self, op: Op, key_idx: u64, worker: u64) -> anyhow::Result<()> {
        let key = format!("bench/{key_idx}");
        match &self.api {
            Api::Http { client, base_url, token } => {
                self.request_http(client, base_url, token.as_deref(), op, &key).await
            }
            Api::Grpc { connections } => {
                let slot = usize::try_from(worker).unwrap_or(0) % connections.len();
                let mut kv = connections[slot].clone();
                match op {
                    Op::Put => {
                        kv.put(key, self.value.as_bytes(), None).await?;
                    }
                    Op::Get | Op::GetConsistent => {
                        let res = kv.get(key, None).await?;
                        ensure!(res.kvs().len() == 1, "etcd get found {} keys", res.kvs().len());
                    }
                }
                Ok(())
            }
        }
    }

    async fn request_http(
        &self,
        client: &reqwest::Client,
        base_url: &str,
        token: Option<&str>,
        op: Op,
        key: &str,
    ) -> anyhow::Result<()> {
        let etcd = self.kind == TargetKind::EtcdJson;
        let builder = match (etcd, op) {
            (false, Op::Put) => client.put(format!("{base_url}/v1/kv/{key}")).body(self.value.clone()),
            (false, Op::Get) => client.get(format!("{base_url}/v1/kv/{key}")),
            (false, Op::GetConsistent) => client.get(format!("{base_url}/v1/kv/{key}?consistent")),
            (true, Op::Put) => client
                .post(format!("{base_url}/v3/kv/put"))
                .header("Content-Type", "application/json")
                .body(json!({"key": b64(key), "value": b64(&self.value)}).to_string()),
            (true, Op::Get | Op::GetConsistent) => client
                .post(format!("{base_url}/v3/kv/range"))
                .header("Content-Type", "application/json")
                .body(json!({"key": b64(key)}).to_string()),
        };
        let builder = match token {
            Some(token) => builder.header("X-Consul-Token", token),
            None => builder,
        };
        let res = builder.send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        ensure!(status.is_success(), "{:?} {} answered {status}", self.kind, op.name());
        if !etcd && op == Op::Put {
            ensure!(body.as_ref() == b"true", "roster PUT answered {:?}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

impl TargetKind {
    fn name(self) -> &'static str {
        match self {
            TargetKind::Roster => "roster",
            TargetKind::RosterAcl => "roster+acl",
            TargetKind::RosterClient => "roster-via-client",
            TargetKind::EtcdGrpc => "etcd-grpc",
            TargetKind::EtcdJson => "etcd-json",
        }
    }
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::GetConsistent => "get-consistent",
        }
    }
}
