//! Churn soak: writes and deletes N unique KV keys through HTTP against one roster server, then waits for the
//! leader to reap the tombstones, and prints the server's memory and the state snapshot's size at each step
//! (issue 20, "Flat under churn": memory and snapshot size back where they started once tombstones are reaped).
//!
//! `cargo run --release -p roster-tests --bin soak_bench -- [--keys 1000000] [--ttl-secs 10] [--concurrency 64] [--dev]`
//!
//! The server is a `roster agent -server -bootstrap-expect 1` with a data dir (writes are fsynced, as in
//! production), or `-dev` with `--dev`. Its tombstone TTL is shortened with `ROSTER_TEST_TOMBSTONE_TTL` so the
//! reap comes within the run. Memory is the server process's resident set (`VmRSS`) and its peak (`VmHWM`) from
//! `/proc/<pid>/status`; the snapshot is the size of the archive `GET /v1/snapshot` returns. Freed memory may stay
//! in the allocator rather than go back to the kernel, so RSS after the reap shows what the process still holds,
//! not what the state needs. Everything listens on 127.0.0.1; the server is killed when the bench ends.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures_util::StreamExt as _;
use roster_tests::{AgentMode, TestAgent};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Write and delete N unique keys, wait for the tombstone reap, report memory and snapshot size")]
struct Args {
    /// Unique keys to write and then delete.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// The tombstone TTL the server runs with, in seconds.
    #[arg(long, default_value_t = 10)]
    ttl_secs: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Run a `-dev` (in-memory) server instead of a durable one.
    #[arg(long)]
    dev: bool,
    /// How long to wait for the reap after the last delete, beyond the TTL.
    #[arg(long, default_value_t = 300)]
    reap_timeout_secs: u64,
}

/// What one step leaves behind.
struct Step {
    name: &'static str,
    rss: u64,
    peak_rss: u64,
    snapshot: usize,
    took: Duration,
    ops: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data_dir = tempfile::tempdir().context("creating the data dir")?;
    let mode = match args.dev {
        true => AgentMode::Dev,
        false => AgentMode::Server { data_dir: data_dir.path().to_path_buf() },
    };
    let ttl = Duration::from_secs(args.ttl_secs);
    let ttl_env = format!("{}s", args.ttl_secs);
    let envs = [("ROSTER_TEST_TOMBSTONE_TTL", ttl_env.as_str())];
    let agent = TestAgent::start_with_env("soak", mode, serde_json::json!({}), &envs).await?;
    let pid = agent.pid().context("the server's pid")?;

    let mut steps = vec![step(&agent, pid, "start", Duration::ZERO, 0).await?];
    let started = Instant::now();
    churn(&agent, &args, false).await?;
    steps.push(step(&agent, pid, "written", started.elapsed(), args.keys).await?);
    let started = Instant::now();
    churn(&agent, &args, true).await?;
    steps.push(step(&agent, pid, "deleted", started.elapsed(), args.keys).await?);

    // Reaped once the snapshot is back within a tenth of what the tombstones added and then stays put for one
    // reap step (the leader reaps in steps of the granularity, a quarter of the TTL up to 30 s, so a burst of
    // deletes spread over more than one step is reaped in several).
    let (start_len, deleted_len) = (steps[0].snapshot, steps[2].snapshot);
    let target = start_len + deleted_len.saturating_sub(start_len) / 10;
    let granularity = (ttl / 4).min(Duration::from_secs(30));
    let deadline = Instant::now() + ttl + Duration::from_secs(args.reap_timeout_secs);
    let started = Instant::now();
    let mut last = snapshot_len(&agent).await?;
    while last > target {
        if Instant::now() > deadline {
            bail!("tombstones not reaped within the TTL and {} s", args.reap_timeout_secs);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = snapshot_len(&agent).await?;
    }
    let reaped_after = started.elapsed();
    loop {
        tokio::time::sleep(granularity + Duration::from_secs(1)).await;
        let now = snapshot_len(&agent).await?;
        if now >= last {
            break;
        }
        last = now;
    }
    steps.push(step(&agent, pid, "reaped", reaped_after, 0).await?);
    print_table(&args, &steps);
    Ok(())
}

/// Writes (or deletes) every key, `concurrency` requests at a time.
async fn churn(agent: &TestAgent, args: &Args, delete: bool) -> anyhow::Result<()> {
    let mut requests = futures_util::stream::iter(0..args.keys)
        .map(|i| async move {
            let path = format!("/v1/kv/soak/{i:08}");
            let res = if delete { agent.delete(&path).await } else { agent.put(&path, "soak-value").await };
            (i, res.status)
        })
        .buffer_unordered(args.concurrency);
    while let Some((i, status)) = requests.next().await {
        if status != 200 {
            bail!("{} of soak/{i:08}: HTTP {status}", if delete { "DELETE" } else { "PUT" });
        }
    }
    Ok(())
}

async fn step(agent: &TestAgent, pid: u32, name: &'static str, took: Duration, ops: usize) -> anyhow::Result<Step> {
    let snapshot = snapshot_len(agent).await?;
    let (rss, peak_rss) = memory(pid)?;
    Ok(Step { name, rss, peak_rss, snapshot, took, ops })
}

async fn snapshot_len(agent: &TestAgent) -> anyhow::Result<usize> {
    let res = agent.get("/v1/snapshot").await;
    if res.status != 200 {
        bail!("GET /v1/snapshot: HTTP {}: {}", res.status, res.text());
    }
    Ok(res.body.len())
}

/// The process's resident set and its peak, in bytes (`VmRSS` and `VmHWM` of `/proc/<pid>/status`).
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line =
            status.lines().find_map(|line| line.strip_prefix(name)).with_context(|| format!("{name} missing"))?;
        Ok(line.trim().trim_end_matches("kB").trim().parse::<u64>()? * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn print_table(args: &Args, steps: &[Step]) {
    let server = if args.dev { "-dev" } else { "durable server" };
    println!("soak_bench: {} unique keys written then deleted, {server}, tombstone TTL {} s", args.keys, args.ttl_secs);
    println!(
        "{:<8} {:>10} {:>10} {:>14} {:>10} {:>10}",
        "step", "RSS MiB", "peak MiB", "snapshot B", "took s", "ops/s"
    );
    for s in steps {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let rate = if s.ops > 0 { format!("{:.0}", s.ops as f64 / s.took.as_secs_f64()) } else { "-".into() };
        println!(
            "{:<8} {:>10.1} {:>10.1} {:>14} {:>10.1} {:>10}",
            s.name,
            mib(s.rss),
            mib(s.peak_rss),
            s.snapshot,
            s.took.as_secs_f64(),
            rate
        );
    }
}
