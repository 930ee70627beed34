//! KV throughput and latency of a durable roster server, optionally side by side with etcd.
//!
//! `cargo run --release -p roster-tests --bin bench -- [--clients 64] [--seconds 10] [--etcd-bin PATH]`
//!
//! It starts `roster agent -server -bootstrap-expect 1 -data-dir TMP` itself (so writes pay for
//! fsync, as in production), pre-fills `--keys` keys, then for each operation runs `--clients`
//! concurrent keep-alive clients for `--seconds` and prints ops/s, p50 and p99.
//! Operations: `put` (`PUT /v1/kv/bench/<n>`), `get` (default consistency) and `get-consistent`
//! (`?consistent`). When an `etcd` binary is given or found on PATH, it starts one on loopback
//! ephemeral ports with a temp data dir and drives its JSON gateway the same way: `put` is
//! `POST /v3/kv/put`, and both gets are `POST /v3/kv/range`, which is linearizable by default —
//! etcd has no lease-read mode, and Consul's default mode also promises a read from the leader.
//! With `--acl`, a second durable roster server runs with ACLs on (`default_policy = "deny"`) and every request carries
//! a token whose policy is `key_prefix "bench/" { policy = "write" }`, so the table shows what enforcement costs.
//! Everything listens on 127.0.0.1 only, the run is bounded by `--seconds` per operation, and every
//! process it started is killed when it ends, on error, or on Ctrl-C.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use futures_util::future::join_all;
use roster_tests::etcd::{EtcdProcess, find_etcd};
use roster_tests::{AgentMode, TestAgent, b64, http_client};
use serde_json::json;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Benchmark roster's HTTP KV API (and etcd's, when available)")]
struct Args {
    /// Concurrent keep-alive clients per operation.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    clients: u64,
    /// Seconds each operation runs against each target (at most 300, to keep runs bounded).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    seconds: u64,
    /// The etcd binary; by default `etcd` on PATH, and the etcd half is skipped when there is none.
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// Number of distinct keys written and read.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    keys: u64,
    /// Also run roster with ACLs enforced (default deny, a token with write on `bench/`), in the same run.
    #[arg(long)]
    acl: bool,
    /// Size of each written value in bytes.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(0..=524_288))]
    value_size: u64,
}

/// Which server a request goes to, and how its API spells the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    Roster,
    /// roster with ACLs enforced; requests carry a token.
    RosterAcl,
    Etcd,
}

/// One benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
    GetConsistent,
}

const OPS: [Op; 3] = [Op::Put, Op::Get, Op::GetConsistent];

/// A server under test: its kind, base URL and a pooled client.
struct Target {
    kind: TargetKind,
    base_url: String,
    client: reqwest::Client,
    value: String,
    n_keys: u64,
    /// Sent as `X-Consul-Token` on every request.
    token: Option<String>,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
    let data_dir = tempfile::tempdir().context("creating roster's data dir")?;
    eprintln!("starting roster (durable single server) ...");
    // Every client connects from 127.0.0.1: lift the per-client connection cap (Consul's 200) for any --clients.
    let unlimited = json!({"limits": {"http_max_conns_per_client": 0}});
    let mode = AgentMode::Server { data_dir: data_dir.path().to_path_buf() };
    let agent = TestAgent::start_with_config("bench", mode, unlimited).await?;
    let roster = Arc::new(Target::new(TargetKind::Roster, format!("http://{}", agent.http_addr()), args, &value));
    let mut outcomes = bench_target(&roster, args).await?;
    drop(roster);
    drop(agent);
    if args.acl {
        outcomes.extend(bench_roster_with_acl(args, &value).await?);
    }

    let _etcd_guard = match find_etcd(args.etcd_bin.as_deref()) {
        Some(etcd_bin) => {
            eprintln!("starting etcd from {} ...", etcd_bin.display());
            // roster's numbers are measured already; an etcd that will not start must not throw them away.
            match EtcdProcess::start(&etcd_bin).await {
                Ok((etcd, base_url)) => {
                    let target = Arc::new(Target::new(TargetKind::Etcd, base_url, args, &value));
                    outcomes.extend(bench_target(&target, args).await?);
                    Some(etcd)
                }
                Err(err) => {
                    eprintln!("etcd did not start ({err:#}); roster only");
                    None
                }
            }
        }
        None => {
            eprintln!("no etcd binary (install Debian's etcd-server or pass --etcd-bin); roster only");
            None
        }
    };
    print_table(&outcomes);
    Ok(())
}

/// The same operations against a server that enforces ACLs, with a token allowed exactly the bench's keys.
async fn bench_roster_with_acl(args: &Args, value: &str) -> anyhow::Result<Vec<Outcome>> {
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
    let mut target = Target::new(TargetKind::RosterAcl, format!("http://{}", agent.http_addr()), args, value);
    target.token = Some(secret);
    let outcomes = bench_target(&Arc::new(target), args).await?;
    drop(agent);
    Ok(outcomes)
}

/// Pre-fills the key space, then runs every operation for the configured time.
async fn bench_target(target: &Arc<Target>, args: &Args) -> anyhow::Result<Vec<Outcome>> {
    prefill(target).await?;
    let mut outcomes = Vec::new();
    for op in OPS {
        eprintln!("{} {}: {} clients for {} s", target.kind.name(), op.name(), args.clients, args.seconds);
        outcomes.push(drive(target, op, args.clients, Duration::from_secs(args.seconds)).await);
    }
    Ok(outcomes)
}

/// Writes every key once so reads hit existing entries (a 404 would measure a different path).
async fn prefill(target: &Arc<Target>) -> anyhow::Result<()> {
    let batch_size = 64;
    for batch_start in (0..target.n_keys).step_by(batch_size) {
        let batch_end = (batch_start + batch_size as u64).min(target.n_keys);
        let results = join_all((batch_start..batch_end).map(|key_idx| target.request(Op::Put, key_idx))).await;
        for res in results {
            res.context("pre-filling keys")?;
        }
    }
    Ok(())
}

/// Runs `n_clients` loops of `op` until `duration` passes and summarises their latencies.
async fn drive(target: &Arc<Target>, op: Op, n_clients: u64, duration: Duration) -> Outcome {
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
                match target.request(op, key_idx).await {
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
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Outcome {
        kind: target.kind,
        op,
        clients: n_clients,
        ops_per_sec: latencies_us.len() as f64 / elapsed,
        p50: percentile(&latencies_us, 50),
        p99: percentile(&latencies_us, 99),
        n_errors,
    }
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
        "{:<10} {:<15} {:>7} {:>12} {:>10} {:>10} {:>8}",
        "target", "op", "clients", "ops/s", "p50(ms)", "p99(ms)", "errors"
    );
    for outcome in outcomes {
        println!(
            "{:<10} {:<15} {:>7} {:>12.1} {:>10.3} {:>10.3} {:>8}",
            outcome.kind.name(),
            outcome.op.name(),
            outcome.clients,
            outcome.ops_per_sec,
            outcome.p50.as_secs_f64() * 1000.0,
            outcome.p99.as_secs_f64() * 1000.0,
            outcome.n_errors
        );
    }
    for op in OPS {
        let find = |kind| outcomes.iter().find(|outcome| outcome.kind == kind && outcome.op == op);
        if let (Some(roster), Some(etcd)) = (find(TargetKind::Roster), find(TargetKind::Etcd))
            && etcd.ops_per_sec > 0.0
        {
            println!("roster/etcd {:<15} {:.2}x throughput", op.name(), roster.ops_per_sec / etcd.ops_per_sec);
        }
        if let (Some(roster), Some(acl)) = (find(TargetKind::Roster), find(TargetKind::RosterAcl))
            && roster.ops_per_sec > 0.0
        {
            println!("acl/no-acl  {:<15} {:.2}x throughput", op.name(), acl.ops_per_sec / roster.ops_per_sec);
        }
    }
}

impl Target {
    fn new(kind: TargetKind, base_url: String, args: &Args, value: &str) -> Target {
        let pool_size = usize::try_from(args.clients).unwrap_or(usize::MAX);
        let client = http_client(pool_size);
        Target { kind, base_url, client, value: value.to_owned(), n_keys: args.keys, token: None }
    }

    /// Sends one request and checks the answer means success for that API.
    async fn request(&self, op: Op, key_idx: u64) -> anyhow::Result<()> {
        let key = format!("bench/{key_idx}");
        let builder = match (self.kind, op) {
            (TargetKind::Roster | TargetKind::RosterAcl, Op::Put) => {
                self.client.put(format!("{}/v1/kv/{key}", self.base_url)).body(self.value.clone())
            }
            (TargetKind::Roster | TargetKind::RosterAcl, Op::Get) => {
                self.client.get(format!("{}/v1/kv/{key}", self.base_url))
            }
            (TargetKind::Roster | TargetKind::RosterAcl, Op::GetConsistent) => {
                self.client.get(format!("{}/v1/kv/{key}?consistent", self.base_url))
            }
            (TargetKind::Etcd, Op::Put) => self
                .client
                .post(format!("{}/v3/kv/put", self.base_url))
                .header("Content-Type", "application/json")
                .body(json!({"key": b64(&key), "value": b64(&self.value)}).to_string()),
            (TargetKind::Etcd, Op::Get | Op::GetConsistent) => self
                .client
                .post(format!("{}/v3/kv/range", self.base_url))
                .header("Content-Type", "application/json")
                .body(json!({"key": b64(&key)}).to_string()),
        };
        let builder = match &self.token {
            Some(token) => builder.header("X-Consul-Token", token),
            None => builder,
        };
        let res = builder.send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        ensure!(status.is_success(), "{:?} {} answered {status}", self.kind, op.name());
        if self.kind != TargetKind::Etcd && op == Op::Put {
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
            TargetKind::Etcd => "etcd",
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
