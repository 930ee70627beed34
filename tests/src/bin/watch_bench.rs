//! Write → watcher woken latency and memory per parked watcher, roster's blocking queries against etcd's watch API, in one run.
//!
//! `cargo run --release -p roster-tests --bin watch_bench -- [--watchers 1,100,10000] [--rounds 10] [--on kv|health]
//! [--etcd-bin PATH]`
//!
//! For each watcher count N it parks N watchers on one key (or one service's health), then, `--rounds` times,
//! changes it and records when each watcher hears of it; the table gives p50/p99 of those delays over all watchers
//! and rounds, the growth of the server's resident memory while the N watchers were parked, per watcher, and the
//! server's CPU time (user and system, all threads) from each write to its last watcher's answer, per watcher woken.
//!
//! - roster: a `roster agent -server -bootstrap-expect 1` with a data dir (writes are fsynced, as in
//!   production); each watcher is its own keep-alive HTTP/1.1 connection holding
//!   `GET /v1/kv/<key>?index=N&wait=5m` (`--on kv`) or `GET /v1/health/service/web?passing&index=N&wait=5m`
//!   (`--on health`: three instances of `web`, each round flips one instance's check between passing and critical
//!   through `PUT /v1/catalog/register`), which is how Consul clients watch. A watcher is woken when
//!   the first byte of its answer arrives, and re-parks on the same connection with the new index.
//! - etcd: one `POST /v3/watch` stream per watcher on the JSON gateway (a separate client per
//!   watcher, like roster's), woken when the event arrives on its stream. etcd has no service health, so with
//!   `--on health` its rows are still a key's watch.
//!
//! Both are written through their HTTP APIs, and the clock starts just before the write is sent, so
//! the numbers include the write's own commit. Before every write both sit idle for the same settle time
//! (`park_time`), which roster's watchers need to re-park; an idle process pays for waking its threads, so
//! measuring one system hot and the other after a pause would compare the pause, not the systems. Everything listens on 127.0.0.1; every process the
//! bench starts is killed when it ends. N is bounded by the open-file limit (two sockets per watcher
//! on this host: the bench's and the server's).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use futures_util::future::join_all;
use roster_tests::etcd::{EtcdProcess, find_etcd};
use roster_tests::procfs::cpu_time;
use roster_tests::watcher::{find, get_request, read_answer};
use roster_tests::{AgentMode, TestAgent, b64};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Blocking-query wake-up latency and memory per watcher: roster vs etcd")]
struct Args {
    /// Watcher counts to measure, comma-separated (each at most 15000).
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
    watchers: Vec<usize>,
    /// Writes per watcher count.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rounds: u64,
    /// What roster's watchers block on: a KV key, or a service's passing instances.
    #[arg(long, value_enum, default_value_t = On::Kv)]
    on: On,
    /// The etcd binary; by default `etcd` on PATH, and the etcd half is skipped when there is none.
    #[arg(long)]
    etcd_bin: Option<std::path::PathBuf>,
}

/// What roster's watchers block on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum On {
    /// `GET /v1/kv/<key>`.
    Kv,
    /// `GET /v1/health/service/web?passing`.
    Health,
}

/// The most watchers one run may park: each costs a socket here and one in the server.
const MAX_WATCHERS: usize = 15_000;

/// One row of the table.
struct Row {
    system: &'static str,
    watchers: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    bytes_per_watcher: Option<i64>,
    /// The server's CPU time from each write to its last watcher's answer, per watcher woken.
    cpu_per_wake: Duration,
    /// The bench's own CPU time over the same spans, per watcher woken: the watchers' reads share the server's cores.
    client_cpu_per_wake: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.watchers.iter().all(|n| (1..=MAX_WATCHERS).contains(n)), "--watchers must be 1..={MAX_WATCHERS}");
    let mut rows = Vec::new();

    let data = tempfile::tempdir()?;
    // Every watcher connects from 127.0.0.1: lift the per-client connection cap (Consul's 200).
    let unlimited = json!({"limits": {"http_max_conns_per_client": 0}});
    let mode = AgentMode::Server { data_dir: data.path().to_path_buf() };
    let roster = TestAgent::start_with_config("watch-bench", mode, unlimited).await?;
    let roster_pid = roster.pid().context("roster is running")?;
    for &n in &args.watchers {
        eprintln!("roster: {n} watchers ...");
        rows.push(bench_roster(roster.http_addr(), roster_pid, n, args.rounds, args.on).await?);
    }
    drop(roster);

    match find_etcd(args.etcd_bin.as_deref()) {
        Some(bin) => {
            let (etcd, url) = EtcdProcess::start(&bin).await?;
            let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
            for &n in &args.watchers {
                eprintln!("etcd: {n} watchers ...");
                rows.push(bench_etcd(addr, etcd.pid(), n, args.rounds).await?);
            }
        }
        None => eprintln!("no etcd binary (install Debian's etcd-server or pass --etcd-bin); roster only"),
    }
    print_table(&rows);
    Ok(())
}

/// Parks `n` roster watchers on one key (or one service's health) and measures `rounds` changes.
async fn bench_roster(http: SocketAddr, pid: u32, n: usize, rounds: u64, on: On) -> anyhow::Result<Row> {
    let key = format!("bench/watch-{n}");
    let writer = Writer::connect(http).await?;
    let change = |round: u64| {
        let (writer, key) = (&writer, &key);
        async move {
            match on {
                On::Kv => writer.roster_put(key, &round.to_string()).await,
                // Odd rounds take web-1 out of the passing answer, even rounds put it back.
                On::Health => writer.roster_web_check(if round % 2 == 1 { "critical" } else { "passing" }).await,
            }
        }
    };
    if on == On::Health {
        for instance in 2..=3 {
            writer.roster_register_web(instance, "passing").await?;
        }
    }
    let path = match on {
        On::Kv => format!("/v1/kv/{key}?"),
        On::Health => "/v1/health/service/web?passing&".to_owned(),
    };
    let mut index = change(0).await?;
    let rss_before = rss_bytes(pid)?;
    let mut watchers = Vec::with_capacity(n);
    for _ in 0..n {
        watchers.push(TcpStream::connect(http).await?);
    }
    let mut delays = Vec::with_capacity(n * rounds as usize);
    let mut bytes_per_watcher = None;
    let (mut cpu, mut own) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=rounds {
        let barrier = Arc::new(Barrier::new(n + 1));
        let started = Arc::new(std::sync::OnceLock::<Instant>::new());
        let tasks: Vec<_> = watchers
            .drain(..)
            .map(|mut stream| {
                let (barrier, started, path) =
                    (barrier.clone(), started.clone(), format!("{path}index={index}&wait=5m"));
                tokio::spawn(async move {
                    stream.write_all(get_request(&path).as_bytes()).await?;
                    barrier.wait().await;
                    let mut first = [0u8; 1];
                    stream.read_exact(&mut first).await?;
                    let woke = Instant::now();
                    read_answer(&mut stream, first[0]).await?;
                    let delay = woke.duration_since(*started.get().context("write started")?);
                    anyhow::Ok((stream, delay))
                })
            })
            .collect();
        barrier.wait().await;
        // Every request is written; give the server time to read and park each of them.
        tokio::time::sleep(park_time(n)).await;
        if round == 1 {
            bytes_per_watcher = Some((rss_bytes(pid)? as i64 - rss_before as i64) / n as i64);
        }
        let (cpu_before, own_before) = (cpu_time(pid)?, cpu_time(std::process::id())?);
        started.set(Instant::now()).ok();
        index = change(round).await?;
        for task in join_all(tasks).await {
            let (stream, delay) = task??;
            watchers.push(stream);
            delays.push(delay);
        }
        cpu += cpu_time(pid)?.saturating_sub(cpu_before);
        own += cpu_time(std::process::id())?.saturating_sub(own_before);
    }
    Ok(row("roster", n, delays, bytes_per_watcher, cpu, own))
}

/// Opens `n` etcd watch streams on one key and measures `rounds` writes.
async fn bench_etcd(addr: SocketAddr, pid: u32, n: usize, rounds: u64) -> anyhow::Result<Row> {
    let key = format!("bench/watch-{n}");
    let writer = Writer::connect(addr).await?;
    writer.etcd_put(&key, "0").await?;
    let rss_before = rss_bytes(pid)?;
    let body = json!({"create_request": {"key": b64(&key)}}).to_string();
    let request = format!(
        "POST /v3/watch HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        streams.push(stream);
    }
    // A watch exists once etcd confirmed it with a `created` message.
    let confirmed = join_all(streams.into_iter().map(|mut stream| async move {
        read_until_contains(&mut stream, b"\"created\":true").await?;
        anyhow::Ok(stream)
    }))
    .await;
    let mut streams = confirmed.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    tokio::time::sleep(park_time(n)).await;
    let bytes_per_watcher = Some((rss_bytes(pid)? as i64 - rss_before as i64) / n as i64);
    let mut delays = Vec::with_capacity(n * rounds as usize);
    let (mut cpu, mut own) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=rounds {
        let barrier = Arc::new(Barrier::new(n + 1));
        let started = Arc::new(std::sync::OnceLock::<Instant>::new());
        let tasks: Vec<_> = streams
            .drain(..)
            .map(|mut stream| {
                let (barrier, started) = (barrier.clone(), started.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    read_until_contains(&mut stream, b"\"events\"").await?;
                    let delay = Instant::now().duration_since(*started.get().context("write started")?);
                    anyhow::Ok((stream, delay))
                })
            })
            .collect();
        barrier.wait().await;
        // The same quiet spell before each write as roster's watchers get to re-park: a write into a process that
        // has idled for a while pays for waking its threads, and both systems must be measured alike.
        tokio::time::sleep(park_time(n)).await;
        let (cpu_before, own_before) = (cpu_time(pid)?, cpu_time(std::process::id())?);
        started.set(Instant::now()).ok();
        writer.etcd_put(&key, &round.to_string()).await?;
        for task in join_all(tasks).await {
            let (stream, delay) = task??;
            streams.push(stream);
            delays.push(delay);
        }
        cpu += cpu_time(pid)?.saturating_sub(cpu_before);
        own += cpu_time(std::process::id())?.saturating_sub(own_before);
    }
    Ok(row("etcd", n, delays, bytes_per_watcher, cpu, own))
}

/// How long to let the server settle after N requests were sent, before writing.
fn park_time(n: usize) -> Duration {
    Duration::from_millis(200 + (n as u64) / 5)
}

/// Reads from a streaming response until `needle` has arrived (etcd's watch messages).
async fn read_until_contains(stream: &mut TcpStream, needle: &[u8]) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await?;
        ensure!(read > 0, "watch stream closed");
        buf.extend_from_slice(&chunk[..read]);
        if find(&buf, needle).is_some() {
            return Ok(());
        }
    }
}

/// The writer: one keep-alive client of the system under test.
struct Writer {
    client: reqwest::Client,
    base: String,
}

impl Writer {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Writer> {
        Ok(Writer { client: roster_tests::http_client(1), base: format!("http://{addr}") })
    }

    /// Writes a roster key and returns the index watchers must block past.
    async fn roster_put(&self, key: &str, value: &str) -> anyhow::Result<u64> {
        let url = format!("{}/v1/kv/{key}", self.base);
        let put = self.client.put(&url).body(value.to_owned()).send().await?;
        ensure!(put.status().is_success(), "roster PUT: {}", put.status());
        let get = self.client.get(&url).send().await?;
        let index = get.headers().get("x-consul-index").context("X-Consul-Index")?.to_str()?.parse()?;
        Ok(index)
    }

    /// Registers instance `web-<instance>` of service `web` on its own node, with one check in `status`, and returns
    /// the index watchers of the service's health block past.
    async fn roster_register_web(&self, instance: u16, status: &str) -> anyhow::Result<u64> {
        let node = format!("bench-node-{instance}");
        let id = format!("web-{instance}");
        let body = json!({
            "Node": node,
            "Address": format!("10.0.0.{instance}"),
            "Service": {"ID": id, "Service": "web", "Port": 8000 + instance, "Tags": ["bench"]},
            "Check": {"CheckID": format!("check-{id}"), "Name": "bench check", "Status": status, "ServiceID": id},
        });
        let put = self.client.put(format!("{}/v1/catalog/register", self.base)).json(&body).send().await?;
        ensure!(put.status().is_success(), "roster catalog register: {}", put.status());
        let get = self.client.get(format!("{}/v1/health/service/web?passing", self.base)).send().await?;
        let index = get.headers().get("x-consul-index").context("X-Consul-Index")?.to_str()?.parse()?;
        Ok(index)
    }

    /// Sets `web-1`'s check to `status`.
    async fn roster_web_check(&self, status: &str) -> anyhow::Result<u64> {
        self.roster_register_web(1, status).await
    }

    async fn etcd_put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let body = json!({"key": b64(key), "value": b64(value)}).to_string();
        let put = self.client.post(format!("{}/v3/kv/put", self.base)).body(body).send().await?;
        if !put.status().is_success() {
            bail!("etcd put: {}", put.status());
        }
        Ok(())
    }
}

/// Resident set size of a process, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("VmRSS in /proc status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

fn row(
    system: &'static str,
    watchers: usize,
    mut delays: Vec<Duration>,
    bytes_per_watcher: Option<i64>,
    cpu: Duration,
    client_cpu: Duration,
) -> Row {
    let wakes = delays.len().max(1) as u32;
    delays.sort();
    let pct = |p: usize| delays[(delays.len() * p / 100).min(delays.len() - 1)];
    Row {
        system,
        watchers,
        p50: pct(50),
        p99: pct(99),
        max: *delays.last().unwrap_or(&Duration::ZERO),
        bytes_per_watcher,
        cpu_per_wake: cpu / wakes,
        client_cpu_per_wake: client_cpu / wakes,
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<8} {:>9} {:>10} {:>10} {:>10} {:>14} {:>16} {:>16}",
        "system", "watchers", "p50(ms)", "p99(ms)", "max(ms)", "bytes/watcher", "server_us/wake", "client_us/wake"
    );
    for row in rows {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let bytes = row.bytes_per_watcher.map_or("-".to_owned(), |b| b.to_string());
        println!(
            "{:<8} {:>9} {:>10.3} {:>10.3} {:>10.3} {:>14} {:>16.1} {:>16.1}",
            row.system,
            row.watchers,
            ms(row.p50),
            ms(row.p99),
            ms(row.max),
            bytes,
            row.cpu_per_wake.as_secs_f64() * 1e6,
            row.client_cpu_per_wake.as_secs_f64() * 1e6
        );
    }
}
