//! Latency from a backend going down to `GET /v1/health/service/<name>?passing` dropping it, and from coming back to reappearing.
//!
//! `cargo run --release -p roster-tests --bin health_latency -- [--trials 20] [--interval 1s,5s]`
//!
//! It starts a dev agent, a local HTTP backend on 127.0.0.1 whose answer flips between 200 and 503, and registers a service with an HTTP check at each interval.
//! A watcher holds a blocking query on `?passing`; each trial waits a random part of the interval, flips the backend, and times until the watcher sees the change.
//! Two numbers per direction: `detect`, from the flip (up to one interval, as the next probe has to run), and `pipeline`, from the backend answering the first probe that saw the new state to the watcher's answer: the agent's own cost (status machine, catalog write through Raft, watcher wake-up, HTTP).

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
    /// Down and up flips per interval (each trial is one of each).
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
        "{:<9} {:>6} {:>16} {:>16} {:>18} {:>18}",
        "interval", "trials", "detect p50(ms)", "detect p99(ms)", "pipeline p50(ms)", "pipeline p99(ms)"
    );
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.subsec_nanos()) | 1;
    for (idx, interval) in args.interval.split(',').map(str::trim).enumerate() {
        let name = format!("latency{idx}");
        let check = json!({"HTTP": format!("http://{}/health", backend.addr()), "Interval": interval, "Timeout": "1s"});
        let body = json!({"Name": name, "Port": backend.addr().port(), "Check": check});
        agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
        backend.set_healthy(true);
        wait_until(&agent, &name, true, Duration::from_secs(30)).await.context("the service never became passing")?;
        let period = parse_interval(interval)?;
        let (mut detect, mut pipeline) = (Vec::new(), Vec::new());
        for trial in 0..args.trials * 2 {
            // A random phase against the probe schedule; xorshift is plenty for spreading flips.
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            tokio::time::sleep(period.mul_f64(f64::from(seed % 1000) / 1000.0)).await;
            let healthy = trial % 2 == 1;
            backend.set_healthy(healthy);
            detect.push(wait_until(&agent, &name, healthy, Duration::from_secs(30)).await?);
            let seen = Instant::now();
            let probe = backend.first_probe_since_flip().context("no probe reached the backend")?;
            pipeline.push(seen.duration_since(probe).as_secs_f64() * 1000.0);
        }
        println!(
            "{:<9} {:>6} {:>16.1} {:>16.1} {:>18.2} {:>18.2}",
            interval,
            args.trials * 2,
            percentile(&mut detect, 50),
            percentile(&mut detect, 99),
            percentile(&mut pipeline, 50),
            percentile(&mut pipeline, 99)
        );
        // The next row's probes must be the only ones reaching the backend.
        agent.put(&format!("/v1/agent/service/deregister/{name}"), "").await.expect_status(200);
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

/// `"1s"`, `"500ms"`, `"2.5s"`.
fn parse_interval(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = match text.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (text.strip_suffix('s').context("interval must end in s or ms")?, 1.0),
    };
    let value: f64 = number.parse().context("interval number")?;
    Ok(Duration::from_secs_f64(value * unit))
}

fn percentile(samples: &mut [f64], pct: usize) -> f64 {
    samples.sort_by(f64::total_cmp);
    let idx = (samples.len() * pct).div_ceil(100).saturating_sub(1).min(samples.len().saturating_sub(1));
    samples.get(idx).copied().unwrap_or(f64::NAN)
}
