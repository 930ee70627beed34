//! Latency from a backend going down to `GET /v1/health/service/<name>?passing` dropping it, and from coming back to reappearing.
//!
//! `cargo run --release -p roster-tests --bin health_latency -- [--trials 20] [--interval 1s,5s]`
//!
//! It starts a dev agent, a local HTTP backend on 127.0.0.1 whose answer flips between 200 and 503, and registers a service with an HTTP check at each interval.
//! A watcher holds a blocking query on `?passing`; each trial flips the backend and times until the watcher sees the change.
//! Detection is bounded below by the check interval (the probe has to run), so the table prints the interval beside the numbers.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use roster_tests::{AgentMode, FlipBackend, TestAgent};
use serde_json::json;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Time from a backend failing to the catalog's ?passing dropping it")]
struct Args {
    /// Down/up flips per interval.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    trials: u32,
    /// Check intervals to measure, comma-separated Go durations.
    #[arg(long, default_value = "1s,5s")]
    interval: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let agent = TestAgent::start("health-latency", AgentMode::Dev).await?;
    let backend = FlipBackend::start().await?;
    println!(
        "{:<10} {:>7} {:>14} {:>14} {:>14} {:>14}",
        "interval", "trials", "down p50(ms)", "down p99(ms)", "up p50(ms)", "up p99(ms)"
    );
    for (idx, interval) in args.interval.split(',').map(str::trim).enumerate() {
        let name = format!("latency{idx}");
        let check = json!({"HTTP": format!("http://{}/health", backend.addr()), "Interval": interval, "Timeout": "1s"});
        let body = json!({"Name": name, "Port": backend.addr().port(), "Check": check});
        agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
        backend.set_healthy(true);
        wait_until(&agent, &name, true, Duration::from_secs(30)).await.context("the service never became passing")?;
        let (mut down, mut up) = (Vec::new(), Vec::new());
        for _ in 0..args.trials {
            backend.set_healthy(false);
            down.push(wait_until(&agent, &name, false, Duration::from_secs(30)).await?);
            backend.set_healthy(true);
            up.push(wait_until(&agent, &name, true, Duration::from_secs(30)).await?);
        }
        println!(
            "{:<10} {:>7} {:>14.1} {:>14.1} {:>14.1} {:>14.1}",
            interval,
            args.trials,
            percentile(&mut down, 50),
            percentile(&mut down, 99),
            percentile(&mut up, 50),
            percentile(&mut up, 99)
        );
    }
    Ok(())
}

/// Blocks on `?passing` until the service is (or is not) listed; returns the time it took in milliseconds.
async fn wait_until(agent: &TestAgent, name: &str, listed: bool, limit: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut index = 0;
    while started.elapsed() < limit {
        let res = agent.get(&format!("/v1/health/service/{name}?passing&index={index}&wait=10s")).await;
        res.expect_status(200);
        let count = res.json().as_array().map_or(0, Vec::len);
        if (count > 0) == listed {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        index = res.index();
    }
    bail!("{name} did not become {} within {limit:?}", if listed { "passing" } else { "not passing" })
}

fn percentile(samples: &mut [f64], pct: usize) -> f64 {
    samples.sort_by(f64::total_cmp);
    let idx = (samples.len() * pct).div_ceil(100).saturating_sub(1).min(samples.len().saturating_sub(1));
    samples.get(idx).copied().unwrap_or(f64::NAN)
}
