//! Failure-handling times of a real cluster (3 servers + 2 clients as processes on loopback):
//! leader kill → first acknowledged write, and client kill → its services leaving `?passing`.
//!
//! `cargo run --release -p roster-tests --bin cluster_bench -- [--trials 5]`
//!
//! Leader failover: a writer loops `PUT /v1/kv/bench` through a client agent (1 s client timeout
//! per request); the leader is `kill -9`ed and the clock runs until the next 200. Targets: ≤ 2 s.
//! Client loss: a service with a passing TTL check lives on client c1; c2 parks a blocking query
//! on `/v1/health/service/bench?passing`; c1 is `kill -9`ed and the clock runs until the blocking
//! query returns without it. Target: ≤ 3 s at default settings.
//! Each trial restarts the killed process and waits for the cluster to re-form first.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use roster_tests::{TestCluster, http_client};
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Leader failover and failure-detection times of a loopback cluster")]
struct Args {
    /// Trials of each measurement.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    trials: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cluster = TestCluster::try_start(3, 2, json!({})).await?;
    let mut failover = Vec::new();
    for trial in 0..args.trials {
        failover.push(leader_failover(&mut cluster).await.with_context(|| format!("failover trial {trial}"))?);
    }
    let mut detection = Vec::new();
    for trial in 0..args.trials {
        detection.push(client_loss(&mut cluster).await.with_context(|| format!("client-loss trial {trial}"))?);
    }
    println!(
        "{:<34} {:>6} {:>9} {:>9} {:>9} {:>8}",
        "measurement", "trials", "min(ms)", "p50(ms)", "max(ms)", "target"
    );
    row("leader kill -> first write", &mut failover, "2000");
    row("client kill -> gone from ?passing", &mut detection, "3000");
    Ok(())
}

fn row(name: &str, samples: &mut [Duration], target: &str) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (min, p50, max) = (samples[0], samples[samples.len() / 2], samples[samples.len() - 1]);
    println!("{name:<34} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>8}", samples.len(), ms(min), ms(p50), ms(max), target);
}

/// Kills the leader and times until a write through a client succeeds; restarts it afterwards.
async fn leader_failover(cluster: &mut TestCluster) -> anyhow::Result<Duration> {
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let client = http_client(4);
    let url = cluster.clients[0].url("/v1/kv/bench");
    let res = client.put(&url).body("warm").send().await?;
    anyhow::ensure!(res.status() == 200, "warm-up write failed: {}", res.status());
    cluster.servers[leader].kill9();
    let killed = Instant::now();
    let took = loop {
        let attempt = client.put(&url).body("x").timeout(Duration::from_secs(1)).send().await;
        if attempt.is_ok_and(|res| res.status() == 200) {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("no write succeeded within 60 s of the leader's death");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    cluster.servers[leader].restart().await;
    cluster.wait_formed().await?;
    Ok(took)
}

/// Kills client c1 and times until c2's blocking `?passing` query stops listing its service.
async fn client_loss(cluster: &mut TestCluster) -> anyhow::Result<Duration> {
    let reg = json!({"Name": "bench", "ID": "bench-1", "Port": 1, "Check": {"TTL": "1h", "Status": "passing"}});
    let res = cluster.clients[0].put_json("/v1/agent/service/register", &reg).await;
    anyhow::ensure!(res.status == 200, "register: {}", res.text());
    let watcher = cluster.clients[1].url("/v1/health/service/bench?passing");
    let client = http_client(4);
    // Wait until the watcher sees it passing, and take the index to block on.
    let mut index = loop {
        let res = client.get(&watcher).send().await?;
        let index: u64 = res.headers().get("X-Consul-Index").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
        let body: Value = res.json().await?;
        if body.as_array().is_some_and(|l| l.len() == 1) {
            break index;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    cluster.clients[0].kill9();
    let killed = Instant::now();
    let took = loop {
        let res = client.get(format!("{watcher}&index={index}&wait=30s")).send().await?;
        index = res.headers().get("X-Consul-Index").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(index);
        let body: Value = res.json().await?;
        if body.as_array().is_some_and(Vec::is_empty) {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("the killed client's service stayed passing for 60 s");
        }
    };
    cluster.clients[0].restart().await;
    cluster.wait_formed().await?;
    Ok(took)
}
