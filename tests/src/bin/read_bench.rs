//! HTTP read throughput of roster against nginx serving the same bytes as a static file, in one run.
//!
//! `cargo run --release -p roster-tests --bin read_bench -- [--seconds 10] [--connections 64] [--threads 2]`
//!
//! A dev agent holds one service, `web`, with `--instances` passing instances, and one KV key. For each read — the
//! health of `web` with `?passing` (what consul-template, Prometheus and load-balancer helpers ask), the catalog's
//! `web`, and the KV key — the bench first fetches roster's body once, gives nginx the same bytes as a static file, and
//! drives both with `wrk` (Debian's) over keep-alive connections on 127.0.0.1. It prints requests/s, p50 and p99 and
//! roster's share of nginx's requests/s. nginx runs one worker per core with logging off, as it is deployed for
//! throughput. Everything listens on loopback only and every process is stopped at the end.

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use roster_tests::{AgentMode, TestAgent};
use serde_json::json;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "wrk against roster's HTTP reads and nginx serving the same bytes")]
struct Args {
    /// Seconds per read and server.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    seconds: u64,
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

/// What wrk reported for one target.
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// The reads compared, as (label, path on roster).
const READS: [(&str, &str); 3] = [
    ("health ?passing", "/v1/health/service/web?passing"),
    ("catalog service", "/v1/catalog/service/web"),
    ("kv get", "/v1/kv/bench/key"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed: apt-get install wrk");
    }
    let work = tempfile::tempdir()?;
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
    let mut rows = Vec::new();
    for (idx, (label, path)) in READS.iter().enumerate() {
        let res = agent.get(path).await;
        res.expect_status(200);
        let file = format!("r{idx}.json");
        std::fs::write(docroot.join(&file), &res.body)?;
        rows.push((*label, res.body.len(), format!("http://{}{path}", agent.http_addr()), file));
    }
    let nginx = Nginx::start(work.path(), &docroot)?;

    println!(
        "{:<16} {:>6} {:>12} {:>9} {:>9} {:>12} {:>9} {:>9} {:>8}",
        "read", "bytes", "roster r/s", "p50(ms)", "p99(ms)", "nginx r/s", "p50(ms)", "p99(ms)", "ratio"
    );
    for (label, bytes, roster_url, file) in &rows {
        let roster = wrk(&args, roster_url)?;
        let peer = wrk(&args, &format!("http://127.0.0.1:{}/{file}", nginx.port))?;
        ensure!(
            roster.errors == 0 && peer.errors == 0,
            "{label}: non-2xx answers (roster {}, nginx {})",
            roster.errors,
            peer.errors
        );
        println!(
            "{:<16} {:>6} {:>12.0} {:>9.3} {:>9.3} {:>12.0} {:>9.3} {:>9.3} {:>7.2}x",
            label,
            bytes,
            roster.rps,
            roster.p50_ms,
            roster.p99_ms,
            peer.rps,
            peer.p50_ms,
            peer.p99_ms,
            roster.rps / peer.rps
        );
    }
    Ok(())
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
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs wrk against a URL and reads requests/s, the latency percentiles and non-2xx answers from its report.
fn wrk(args: &Args, url: &str) -> anyhow::Result<Run> {
    let out = Command::new("wrk")
        .args(["--latency", "-t", &args.threads.to_string(), "-c", &args.connections.to_string()])
        .args(["-d", &format!("{}s", args.seconds), url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed on {url}: {text}{}", String::from_utf8_lossy(&out.stderr));
    let field = |prefix: &str| text.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(str::trim);
    let rps = field("Requests/sec:").context("no Requests/sec in wrk's report")?.parse()?;
    let p50_ms = latency_ms(field("50%").context("no 50% latency")?)?;
    let p99_ms = latency_ms(field("99%").context("no 99% latency")?)?;
    let errors = field("Non-2xx or 3xx responses:").map_or(Ok(0), str::parse)?;
    Ok(Run { rps, p50_ms, p99_ms, errors })
}

/// wrk prints latencies as `123.45us`, `1.23ms` or `1.02s`.
fn latency_ms(text: &str) -> anyhow::Result<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).context("latency without a unit")?;
    let value: f64 = text[..split].parse()?;
    Ok(match &text[split..] {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        unit => bail!("unknown latency unit {unit}"),
    })
}
