//! HTTP read throughput of roster against nginx serving the same bytes as a static file, in one run.
//!
//! `cargo run --release -p roster-tests --bin read_bench -- [--seconds 9] [--rounds 3] [--connections 64] [--threads 2]`
//!
//! A dev agent holds one service, `web`, with `--instances` passing instances, and one KV key. For each read — the
//! health of `web` with `?passing` (what consul-template, Prometheus and load-balancer helpers ask), the catalog's
//! `web`, and the KV key — the bench first fetches roster's body once and gives nginx the same bytes as a static file;
//! with both servers up, `wrk` (Debian's) drives each over keep-alive connections on 127.0.0.1 for `--seconds` in all,
//! split into `--rounds` slices that visit roster and nginx in turn, so a machine whose load moves loads both alike.
//! It prints requests/s over all rounds, p50 and p99 from wrk's latency histograms merged over the rounds, and
//! roster's share of nginx's requests/s with its per-round values. nginx runs one worker per core with logging off,
//! as it is deployed for throughput. Everything listens on loopback only and every process is stopped at the end.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use roster_tests::{AgentMode, TestAgent};
use serde_json::json;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "wrk against roster's HTTP reads and nginx serving the same bytes")]
struct Args {
    /// Seconds per read and server, over all rounds; a multiple of `--rounds`, as wrk runs whole seconds.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u64).range(1..=120))]
    seconds: u64,
    /// Rounds per read: `--seconds` is split into this many slices, and roster and nginx take turns slice by slice.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Keep-alive connections wrk holds open.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    threads: u32,
    /// Passing instances of `web`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    instances: u32,
}

/// What wrk reported for one round against one server.
struct Run {
    n_requests: u64,
    duration: Duration,
    n_errors: u64,
    /// Latency in microseconds → how many requests took it.
    latency_counts: BTreeMap<u64, u64>,
}

/// Every round of one read against one server, added up.
#[derive(Default)]
struct Samples {
    n_requests: u64,
    duration: Duration,
    n_errors: u64,
    latency_counts: BTreeMap<u64, u64>,
    /// Each round's requests per second, to show how much the machine moved between rounds.
    per_round: Vec<f64>,
}

/// The reads compared, as (label, path on roster).
const READS: [(&str, &str); 3] = [
    ("health ?passing", "/v1/health/service/web?passing"),
    ("catalog service", "/v1/catalog/service/web"),
    ("kv get", "/v1/kv/bench/key"),
];

/// The servers each read visits in a round, roster first.
const SERVERS: [&str; 2] = ["roster", "nginx"];

/// A wrk script that prints, after wrk's own report, the run's totals and every distinct latency with its count, so
/// the rounds' latencies can be merged rather than their percentiles averaged.
const WRK_REPORT: &str = r#"done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("bench-totals %d %d %d\n", summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout))
  for idx = 1, #latency do
    local micros, count = latency(idx)
    io.write(string.format("bench-latency %d %d\n", micros, count))
  end
end
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed: apt-get install wrk");
    }
    ensure!(
        args.seconds % u64::from(args.rounds) == 0,
        "--seconds ({}) must be a multiple of --rounds ({}): wrk runs whole seconds",
        args.seconds,
        args.rounds
    );
    let work = tempfile::tempdir()?;
    let script = work.path().join("report.lua");
    std::fs::write(&script, WRK_REPORT)?;
    let agent = TestAgent::start("read-bench", AgentMode::Dev).await?;
    for idx in 0..args.instances {
        let body = json!({
            "Node": format!("node{idx}"), "Address": format!("10.0.{}.{}", idx / 250, idx % 250 + 1),
            "Service": {"ID": format!("web-{idx}"), "Service": "web", "Port": 8080, "Tags": ["v1"]},
            "Checks": [{"CheckID": format!("web-{idx}-up"), "Name": "up", "ServiceID": format!("web-{idx}"),
                        "Status": "passing"}],
        });
        agent.put_json("/v1/catalog/register", &body).await.expect_status(200);
    }
    agent.put("/v1/kv/bench/key", "a value of some thirty bytes..").await.expect_status(200);

    let docroot = work.path().join("www");
    std::fs::create_dir_all(&docroot)?;
    let mut files = Vec::new();
    for (idx, (_, path)) in READS.iter().enumerate() {
        let res = agent.get(path).await;
        res.expect_status(200);
        let file = format!("r{idx}.json");
        std::fs::write(docroot.join(&file), &res.body)?;
        files.push((res.body.len(), file));
    }
    // Both servers are up before any read is timed; then each read's rounds visit roster and nginx in turn, so each
    // sees the same mix of quiet and busy moments and the ratio compares the servers rather than the minutes.
    let nginx = Nginx::start(work.path(), &docroot)?;
    let slice = Duration::from_secs(args.seconds / u64::from(args.rounds));
    let mut outcomes = Vec::new();
    for ((label, path), (bytes, file)) in READS.iter().zip(&files) {
        let urls = [format!("http://{}{path}", agent.http_addr()), format!("http://127.0.0.1:{}/{file}", nginx.port)];
        let mut samples: [Samples; 2] = Default::default();
        for round in 0..args.rounds {
            for ((server, url), samples) in SERVERS.iter().zip(&urls).zip(&mut samples) {
                eprintln!("{label} {server} round {}/{}: wrk for {slice:?}", round + 1, args.rounds);
                samples.add(wrk(&args, &script, url, slice)?);
            }
        }
        for (server, samples) in SERVERS.iter().zip(&samples) {
            ensure!(samples.n_errors == 0, "{label}: {server} answered {} errors or non-2xx", samples.n_errors);
        }
        outcomes.push((*label, *bytes, samples));
    }
    print_table(&outcomes);
    drop(nginx);
    drop(agent);
    Ok(())
}

impl Samples {
    fn add(&mut self, round: Run) {
        self.per_round.push(round.n_requests as f64 / round.duration.as_secs_f64().max(f64::EPSILON));
        self.n_requests += round.n_requests;
        self.duration += round.duration;
        self.n_errors += round.n_errors;
        for (micros, count) in round.latency_counts {
            *self.latency_counts.entry(micros).or_default() += count;
        }
    }

    fn rps(&self) -> f64 {
        self.n_requests as f64 / self.duration.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency below which `pct` per cent of the requests completed, in milliseconds.
    fn percentile_ms(&self, pct: u64) -> f64 {
        let n_total: u64 = self.latency_counts.values().sum();
        let wanted = n_total * pct / 100;
        let mut n_seen = 0;
        for (micros, count) in &self.latency_counts {
            n_seen += count;
            if n_seen > wanted {
                return *micros as f64 / 1000.0;
            }
        }
        self.latency_counts.keys().next_back().map_or(f64::NAN, |micros| *micros as f64 / 1000.0)
    }
}

fn print_table(outcomes: &[(&str, usize, [Samples; 2])]) {
    println!(
        "{:<16} {:<7} {:>6} {:>12} {:>9} {:>9} {:>7}",
        "read", "server", "bytes", "requests/s", "p50(ms)", "p99(ms)", "errors"
    );
    for (label, bytes, samples) in outcomes {
        for (server, samples) in SERVERS.iter().zip(samples) {
            println!(
                "{:<16} {:<7} {:>6} {:>12.0} {:>9.3} {:>9.3} {:>7}",
                label,
                server,
                bytes,
                samples.rps(),
                samples.percentile_ms(50),
                samples.percentile_ms(99),
                samples.n_errors
            );
        }
    }
    for (label, _, [roster, nginx]) in outcomes {
        // The same round of each server ran back to back, so their ratio is the least disturbed by load.
        let rounds: Vec<String> = roster
            .per_round
            .iter()
            .zip(&nginx.per_round)
            .map(|(a, b)| format!("{:.2}", a / b.max(f64::EPSILON)))
            .collect();
        println!(
            "roster/nginx {label:<16} {:.2}x requests/s (per round: {})",
            roster.rps() / nginx.rps().max(f64::EPSILON),
            rounds.join(" ")
        );
    }
}

/// nginx serving a folder on a loopback port; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(work: &Path, docroot: &Path) -> anyhow::Result<Nginx> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = work.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes auto; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{ access_log off; keepalive_requests 1000000; default_type application/json;\n\
                   client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;\n\
                   uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
                   server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
                dir = work.display(),
                root = docroot.display(),
            ),
        )?;
        let child = Command::new("nginx")
            .args(["-e", &work.join("error.log").display().to_string(), "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting nginx (apt-get install nginx-light)")?;
        let nginx = Nginx { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(nginx);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("nginx did not listen on {port}: {}", std::fs::read_to_string(work.join("error.log")).unwrap_or_default())
    }
}

impl Drop for Nginx {
    /// SIGTERM first: nginx's master stops its workers on TERM, while a master killed outright leaves them running.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        if Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|status| status.success()) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs wrk against a URL for `duration` and reads its totals and latency histogram from the report script's lines.
fn wrk(args: &Args, script: &Path, url: &str, duration: Duration) -> anyhow::Result<Run> {
    let out = Command::new("wrk")
        .args(["-t", &args.threads.to_string(), "-c", &args.connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs()), "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed on {url}: {text}{}", String::from_utf8_lossy(&out.stderr));
    let mut totals = None;
    let mut latency_counts = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let tag = words.next();
        let numbers: Vec<u64> = words.map(str::parse).collect::<Result<_, _>>().unwrap_or_default();
        match (tag, numbers.as_slice()) {
            (Some("bench-totals"), [n_requests, duration_us, n_errors]) => {
                totals = Some((*n_requests, Duration::from_micros(*duration_us), *n_errors));
            }
            (Some("bench-latency"), [micros, count]) => {
                *latency_counts.entry(*micros).or_default() += count;
            }
            _ => {}
        }
    }
    let (n_requests, duration, n_errors) = totals.with_context(|| format!("no totals in wrk's report: {text}"))?;
    Ok(Run { n_requests, duration, n_errors, latency_counts })
}
