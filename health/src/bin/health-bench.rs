//! Measures what HTTP checks cost: runs N checks (interval 10 s) against an in-process HTTP server and prints probes
//! per second, CPU and memory.
//!
//! Usage: `health-bench [SECONDS] [N...]` (defaults: 30 s, 1000 and 10000 checks).
//! CPU is this process's utime+stime from `/proc/self/stat` over the measured window (server included, so it is an
//! upper bound for the checks alone), as a percentage of one core; RSS is `VmRSS` from `/proc/self/status` at the end.
//! The first interval is skipped so start-up (the staggered first probes) does not count.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use roster_health::{AliasSource, CheckKind, CheckSpec, Checks, Config, Event, Status, Thresholds};
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_secs(10);

/// No alias checks run here.
struct NoAlias;

#[async_trait::async_trait]
impl AliasSource for NoAlias {
    async fn wait_status(&self, _node: &str, _service_id: Option<&str>, after_index: u64) -> (Status, String, u64) {
        std::future::pending::<()>().await;
        (Status::Critical, String::new(), after_index)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|text| text.parse()).transpose()?.unwrap_or(30);
    let mut sizes: Vec<usize> = args.map(|text| text.parse()).collect::<Result<_, _>>()?;
    if sizes.is_empty() {
        sizes = vec![1000, 10_000];
    }
    let requests = Arc::new(AtomicU64::new(0));
    let addr = serve(requests.clone()).await?;
    println!("{:>8} {:>10} {:>8} {:>8} {:>8}", "checks", "probes/s", "CPU %", "RSS MiB", "events");
    for n_checks in sizes {
        let row = run(n_checks, Duration::from_secs(seconds), addr, &requests).await?;
        println!("{:>8} {:>10.1} {:>8.1} {:>8.1} {:>8}", n_checks, row.0, row.1, row.2, row.3);
    }
    Ok(())
}

/// Runs `n_checks` for one interval of warm-up plus `window`; returns probes/s, CPU %, RSS MiB, events.
async fn run(
    n_checks: usize,
    window: Duration,
    addr: std::net::SocketAddr,
    requests: &AtomicU64,
) -> anyhow::Result<(f64, f64, f64, u64)> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let shutdown = CancellationToken::new();
    let events = Arc::new(AtomicU64::new(0));
    let counted = events.clone();
    let drain = tokio::spawn(async move {
        while let Some(Event::Status { .. } | Event::CriticalTooLong { .. }) = receiver.recv().await {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let config = Config { enable_script_checks: false, max_concurrent: 512 };
    let checks = Checks::spawn(config, Arc::new(NoAlias), None, sender, shutdown.clone());
    for idx in 0..n_checks {
        checks.upsert(spec(idx, addr));
    }
    tokio::time::sleep(INTERVAL).await;
    let (cpu_start, requests_start, started) = (cpu_ticks()?, requests.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_seconds = (cpu_ticks()? - cpu_start) as f64 / 100.0;
    let probes = (requests.load(Ordering::Relaxed) - requests_start) as f64;
    let rss = rss_mib()?;
    shutdown.cancel();
    drop(checks);
    let _ = drain.await;
    Ok((probes / elapsed, 100.0 * cpu_seconds / elapsed, rss, events.load(Ordering::Relaxed)))
}

fn spec(idx: usize, addr: std::net::SocketAddr) -> CheckSpec {
    CheckSpec {
        check_id: format!("service:web-{idx}"),
        kind: CheckKind::Http {
            url: format!("http://{addr}/health/{idx}"),
            method: "GET".to_string(),
            headers: Vec::new(),
            body: String::new(),
            tls_server_name: None,
            tls_skip_verify: false,
            disable_redirects: false,
        },
        interval: INTERVAL,
        timeout: Duration::from_secs(5),
        thresholds: Thresholds::default(),
        initial_status: Status::Critical,
        output_max_size: 4096,
        start_period: Duration::ZERO,
        deregister_critical_after: None,
    }
}

/// A minimal HTTP/1.1 server that answers `200 ok` and counts requests.
async fn serve(requests: Arc<AtomicU64>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let requests = requests.clone();
            let service = hyper::service::service_fn(move |_request| {
                requests.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok")))) }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(addr)
}

/// utime + stime of this process, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11).ok_or_else(|| anyhow::anyhow!("no utime"))?.parse()?;
    let stime: u64 = fields.get(12).ok_or_else(|| anyhow::anyhow!("no stime"))?.parse()?;
    Ok(utime + stime)
}

fn rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    let kib: f64 = line.split_whitespace().nth(1).ok_or_else(|| anyhow::anyhow!("bad VmRSS"))?.parse()?;
    Ok(kib / 1024.0)
}
