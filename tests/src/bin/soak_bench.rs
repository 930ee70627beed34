//! Issue 20's "Flat under churn" soaks against one roster server, printing the server's memory and the state
//! snapshot's size:
//!
//! - churn (the default): writes and deletes N unique KV keys through HTTP, then waits for the leader to reap the
//!   tombstones (memory and snapshot size back where they started once tombstones are reaped);
//! - `watch`: parked watchers and paced writes for minutes (server memory flat after warm-up).
//!
//! `cargo run --release -p roster-tests --bin soak_bench -- [--keys 1000000] [--ttl-secs 10] [--concurrency 64] [--dev]`
//!
//! `cargo run --release -p roster-tests --bin soak_bench -- watch [--watchers 10000] [--watch-keys 1000]
//! [--writes-per-sec 1000] [--minutes 10] [--ttl-secs 10] [--dev]`
//!
//! The server is a `roster agent -server -bootstrap-expect 1` with a data dir (writes are fsynced, as in
//! production), or `-dev` with `--dev`. Its tombstone TTL is shortened with `ROSTER_TEST_TOMBSTONE_TTL` so the
//! reap comes within the run. Memory is the server process's resident set (`VmRSS`), its peak (`VmHWM`) and its
//! anonymous part (`RssAnon`, the heap and stacks without mapped files) from `/proc/<pid>/status`; the snapshot is
//! the size of the archive `GET /v1/snapshot` returns. Freed memory may stay in the allocator rather than go back to
//! the kernel, so RSS after the reap shows what the process still holds, not what the state needs. Everything
//! listens on 127.0.0.1; the server is killed when the bench ends.
//!
//! The watch soak parks `--watchers` watchers spread evenly over `--watch-keys` keys, each its own keep-alive
//! HTTP/1.1 connection looping on `GET /v1/kv/soak-watch/<k>?index=<last X-Consul-Index>&wait=5m` and re-parking
//! with the new index after every answer, as consul-template does. Writes are paced (write n is due n / rate
//! seconds after the start) and cycle through four kinds: a PUT to the next watched key (round robin), a PUT of a
//! new unique key `soak-churn/<i>`, another watched PUT, and the DELETE of that unique key once its PUT has
//! answered. Half the writes wake watchers, a quarter make keys and a quarter make tombstones, which the leader reaps
//! during the run. RSS is sampled every 10 s and printed per minute; the first minute is warm-up, and the drift is
//! the RSS after it against the RSS at its end. The run fails (non-zero exit) on any watcher or write error, when a
//! watcher has not seen the last write to its key 30 s after the writes stop, or when fewer than 90 % of the asked
//! writes were answered.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};
use futures_util::StreamExt as _;
use roster_tests::watcher::{get_request, read_answer};
use roster_tests::{AgentMode, TestAgent};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// Command-line options: the churn soak's, or the `watch` subcommand.
#[derive(Debug, Parser)]
#[command(
    about = "Write and delete N unique keys, wait for the tombstone reap, report memory and snapshot size; \
             or, with `watch`, parked watchers under paced writes for minutes",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    soak: Option<Soak>,
    #[command(flatten)]
    churn: ChurnArgs,
}

/// The soaks besides the default churn.
#[derive(Debug, Subcommand)]
enum Soak {
    /// Park watchers on blocking queries, write at a paced rate for minutes, report memory per minute.
    Watch(WatchArgs),
}

/// Options of the churn soak.
#[derive(Debug, clap::Args)]
struct ChurnArgs {
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

/// Options of the watch soak.
#[derive(Debug, clap::Args)]
struct WatchArgs {
    /// Watchers to park, each on its own connection.
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// Keys the watchers are spread over, evenly.
    #[arg(long, default_value_t = 1_000)]
    watch_keys: usize,
    /// Writes per second, paced.
    #[arg(long, default_value_t = 1_000)]
    writes_per_sec: u64,
    /// How long to write, in minutes; the first is warm-up.
    #[arg(long, default_value_t = 10)]
    minutes: u32,
    /// The tombstone TTL the server runs with, in seconds.
    #[arg(long, default_value_t = 10)]
    ttl_secs: u64,
    /// Run a `-dev` (in-memory) server instead of a durable one.
    #[arg(long)]
    dev: bool,
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
    match &args.soak {
        None => churn_soak(&args.churn).await,
        Some(Soak::Watch(watch)) => watch_soak(watch).await,
    }
}

/// The server under test; the data dir outlives the process (fields drop in order).
struct Server {
    agent: TestAgent,
    pid: u32,
    _data_dir: tempfile::TempDir,
}

impl Server {
    async fn start(name: &str, dev: bool, ttl_secs: u64, extra: Value) -> anyhow::Result<Server> {
        let data_dir = tempfile::tempdir().context("creating the data dir")?;
        let mode = match dev {
            true => AgentMode::Dev,
            false => AgentMode::Server { data_dir: data_dir.path().to_path_buf() },
        };
        let ttl_env = format!("{ttl_secs}s");
        let envs = [("ROSTER_TEST_TOMBSTONE_TTL", ttl_env.as_str())];
        let agent = TestAgent::start_with_env(name, mode, extra, &envs).await?;
        let pid = agent.pid().context("the server's pid")?;
        Ok(Server { agent, pid, _data_dir: data_dir })
    }
}

async fn churn_soak(args: &ChurnArgs) -> anyhow::Result<()> {
    let server = Server::start("soak", args.dev, args.ttl_secs, json!({})).await?;
    let (agent, pid) = (&server.agent, server.pid);
    let ttl = Duration::from_secs(args.ttl_secs);

    let mut steps = vec![step(agent, pid, "start", Duration::ZERO, 0).await?];
    let started = Instant::now();
    churn(agent, args, false).await?;
    steps.push(step(agent, pid, "written", started.elapsed(), args.keys).await?);
    let started = Instant::now();
    churn(agent, args, true).await?;
    steps.push(step(agent, pid, "deleted", started.elapsed(), args.keys).await?);

    // Reaped once the snapshot is back within a tenth of what the tombstones added and then stays put for one
    // reap step (a burst of deletes spread over more than one step is reaped in several).
    let (start_len, deleted_len) = (steps[0].snapshot, steps[2].snapshot);
    let target = start_len + deleted_len.saturating_sub(start_len) / 10;
    let deadline = Instant::now() + ttl + Duration::from_secs(args.reap_timeout_secs);
    let started = Instant::now();
    let mut last = snapshot_len(agent).await?;
    while last > target {
        if Instant::now() > deadline {
            bail!("tombstones not reaped within the TTL and {} s", args.reap_timeout_secs);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = snapshot_len(agent).await?;
    }
    let reaped_after = started.elapsed();
    until_steady(agent, ttl, last).await?;
    steps.push(step(agent, pid, "reaped", reaped_after, 0).await?);
    print_table(args, &steps);
    Ok(())
}

/// Writes (or deletes) every key, `concurrency` requests at a time.
async fn churn(agent: &TestAgent, args: &ChurnArgs, delete: bool) -> anyhow::Result<()> {
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

/// Polls the snapshot once per reap step until it stops shrinking, and returns its size then. The leader reaps
/// in steps of the granularity (a quarter of the TTL, at most 30 s), so one poll a step sees every reap.
async fn until_steady(agent: &TestAgent, ttl: Duration, mut last: usize) -> anyhow::Result<usize> {
    let granularity = (ttl / 4).min(Duration::from_secs(30));
    loop {
        tokio::time::sleep(granularity + Duration::from_secs(1)).await;
        let now = snapshot_len(agent).await?;
        if now >= last {
            return Ok(now);
        }
        last = now;
    }
}

async fn step(agent: &TestAgent, pid: u32, name: &'static str, took: Duration, ops: usize) -> anyhow::Result<Step> {
    let snapshot = snapshot_len(agent).await?;
    let memory = memory(pid)?;
    Ok(Step { name, rss: memory.rss, peak_rss: memory.peak, snapshot, took, ops })
}

async fn snapshot_len(agent: &TestAgent) -> anyhow::Result<usize> {
    let res = agent.get("/v1/snapshot").await;
    if res.status != 200 {
        bail!("GET /v1/snapshot: HTTP {}: {}", res.status, res.text());
    }
    Ok(res.body.len())
}

/// A process's memory, in bytes, from `/proc/<pid>/status`.
struct Memory {
    /// `VmRSS`: the resident set.
    rss: u64,
    /// `VmHWM`: the resident set's peak.
    peak: u64,
    /// `RssAnon`: the resident anonymous memory (heap, stacks), without mapped files such as the binary.
    anon: u64,
}

fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line =
            status.lines().find_map(|line| line.strip_prefix(name)).with_context(|| format!("{name} missing"))?;
        Ok(line.trim().trim_end_matches("kB").trim().parse::<u64>()? * 1024)
    };
    Ok(Memory { rss: field("VmRSS:")?, peak: field("VmHWM:")?, anon: field("RssAnon:")? })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_table(args: &ChurnArgs, steps: &[Step]) {
    let server = if args.dev { "-dev" } else { "durable server" };
    println!("soak_bench: {} unique keys written then deleted, {server}, tombstone TTL {} s", args.keys, args.ttl_secs);
    println!(
        "{:<8} {:>10} {:>10} {:>14} {:>10} {:>10}",
        "step", "RSS MiB", "peak MiB", "snapshot B", "took s", "ops/s"
    );
    for s in steps {
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

// ---- the watch soak ----

/// How often the server's memory is sampled; a minute of the table is `SAMPLES_PER_MINUTE` samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SAMPLES_PER_MINUTE: usize = 6;
/// Writes in flight at most: a server slower than the asked rate makes the pacer wait here, and the shortfall
/// shows in the achieved rate instead of as an ever-growing pile of requests.
const MAX_IN_FLIGHT: usize = 256;
/// How long the watchers get to answer their first GET, and after the writes stop, to see the last write to their
/// key; far beyond any wake-up the watch bench measures, so only a lost or stuck watcher trips it.
const WATCHER_GRACE: Duration = Duration::from_secs(30);
/// The least share of the asked writes that must be answered for the run to count.
const MIN_RATE_SHARE: f64 = 0.9;

fn watched_key(k: usize) -> String {
    format!("soak-watch/{k:05}")
}

fn churn_key(i: u64) -> String {
    format!("soak-churn/{i:09}")
}

/// Counters the watchers and writers share with the sampler.
#[derive(Default)]
struct Stats {
    /// Writes answered with 200 `true`.
    writes: AtomicU64,
    /// Of those, PUTs to watched keys.
    watched_writes: AtomicU64,
    /// Watcher answers with a higher index than the one it blocked on.
    wakes: AtomicU64,
    /// Watcher answers with the same index (a blocking query that returned without news).
    stale: AtomicU64,
    /// Watchers that have had their first answer and parked.
    parked: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn fail(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(what);
        }
    }

    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Fails with the first error seen, if there was one.
    fn check(&self) -> anyhow::Result<()> {
        if self.errors() == 0 {
            return Ok(());
        }
        let first = self.first_error.lock().ok().and_then(|first| first.clone()).unwrap_or_default();
        bail!("{} errors; the first: {first}", self.errors())
    }
}

async fn watch_soak(args: &WatchArgs) -> anyhow::Result<()> {
    ensure!(args.watchers > 0 && args.watch_keys > 0 && args.writes_per_sec > 0, "counts must be positive");
    ensure!(args.minutes >= 2, "--minutes must be at least 2: the first is warm-up");
    // Every watcher connects from 127.0.0.1: lift the per-client connection cap (Consul's 200).
    let unlimited = json!({"limits": {"http_max_conns_per_client": 0}});
    let server = Server::start("soak-watch", args.dev, args.ttl_secs, unlimited).await?;
    let (agent, pid) = (&server.agent, server.pid);
    let stats = Arc::new(Stats::default());
    let writer = Arc::new(Writer {
        client: roster_tests::http_client(MAX_IN_FLIGHT),
        base: format!("http://{}", agent.http_addr()),
        stats: stats.clone(),
    });
    print_watch_setup(args);

    // The watched keys exist before anyone watches them, so every answer is a 200 with the key.
    let mut puts = futures_util::stream::iter(0..args.watch_keys)
        .map(|k| async move { agent.put(&format!("/v1/kv/{}", watched_key(k)), "0").await })
        .buffer_unordered(64);
    while let Some(res) = puts.next().await {
        ensure!(res.status == 200, "creating a watched key: HTTP {}", res.status);
    }
    let snapshot_start = snapshot_len(agent).await?;
    let idle = memory(pid)?;

    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..args.watchers).map(|_| AtomicU64::new(0)).collect());
    let mut watchers = JoinSet::new();
    for id in 0..args.watchers {
        let stream = TcpStream::connect(agent.http_addr()).await.with_context(|| format!("connecting watcher {id}"))?;
        let key = watched_key(id % args.watch_keys);
        watchers.spawn(watch(stream, id, key, stats.clone(), seen.clone()));
    }
    let parking = Instant::now();
    while stats.parked.load(Ordering::Relaxed) < args.watchers as u64 {
        stats.check()?;
        ensure!(parking.elapsed() < WATCHER_GRACE, "watchers not all answered within {WATCHER_GRACE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let parked = memory(pid)?;
    println!(
        "before the writes: RSS {:.1} MiB with the watched keys, {:.1} MiB with the watchers parked \
         (RssAnon {:.1} → {:.1}); snapshot {snapshot_start} B",
        mib(idle.rss),
        mib(parked.rss),
        mib(idle.anon),
        mib(parked.anon)
    );

    let run = Duration::from_secs(u64::from(args.minutes) * 60);
    let run_start = Instant::now();
    let dispatcher = tokio::spawn(write_paced(writer.clone(), args.writes_per_sec, args.watch_keys, run));
    let mut samples = vec![sample(pid, &stats)?];
    let mut every = tokio::time::interval_at((run_start + SAMPLE_EVERY).into(), SAMPLE_EVERY);
    eprintln!("{}", MinuteRow::HEADER);
    for taken in 1..=args.minutes as usize * SAMPLES_PER_MINUTE {
        every.tick().await;
        samples.push(sample(pid, &stats)?);
        if taken % SAMPLES_PER_MINUTE == 0 {
            let rows = minute_rows(&samples);
            if let Some(row) = rows.last() {
                eprintln!("{row}");
            }
        }
        if stats.errors() > 0 {
            break;
        }
    }
    if stats.errors() > 0 {
        dispatcher.abort();
        print_minutes(&samples);
        stats.check()?;
    }
    let (sent, dropped) = dispatcher.await.context("the write dispatcher")??;
    stats.check()?;
    let snapshot_last_write = snapshot_len(agent).await?;
    let caught_up = all_saw_last_write(agent, args, &seen, &stats).await?;

    // Every tombstone of the run has expired one TTL after the last delete; then the leader reaps them in steps.
    tokio::time::sleep(Duration::from_secs(args.ttl_secs)).await;
    let snapshot_reaped = until_steady(agent, Duration::from_secs(args.ttl_secs), snapshot_last_write).await?;
    let reaped = memory(pid)?;
    watchers.shutdown().await;

    print_minutes(&samples);
    let drift = drift(&samples).context("no samples after the warm-up minute")?;
    println!("{drift}");
    println!(
        "snapshot: {snapshot_start} B at the start, {snapshot_last_write} B at the last write, {snapshot_reaped} B \
         once the run's tombstones were reaped (RSS then {:.1} MiB, RssAnon {:.1})",
        mib(reaped.rss),
        mib(reaped.anon)
    );
    let answered = stats.writes.load(Ordering::Relaxed);
    let asked = args.writes_per_sec * run.as_secs();
    let share = answered as f64 / asked as f64;
    println!(
        "writes: {answered} answered of {asked} asked ({:.1} %), {:.0}/s; sent {sent}, slots the pacer dropped \
         {dropped}",
        share * 100.0,
        answered as f64 / run.as_secs_f64()
    );
    let (wakes, watched) = (stats.wakes.load(Ordering::Relaxed), stats.watched_writes.load(Ordering::Relaxed));
    println!(
        "wakes: {wakes} ({:.2} per watched PUT, {:.1} watchers a key), answers without news: {}; every watcher had \
         seen its key's last write when checked after the writes stopped (the check took {} ms)",
        wakes as f64 / watched.max(1) as f64,
        args.watchers as f64 / args.watch_keys as f64,
        stats.stale.load(Ordering::Relaxed),
        caught_up.as_millis()
    );
    ensure!(
        share >= MIN_RATE_SHARE,
        "achieved write rate {:.0}/s is below {:.0} % of the asked {}/s",
        answered as f64 / run.as_secs_f64(),
        MIN_RATE_SHARE * 100.0,
        args.writes_per_sec
    );
    Ok(())
}

fn print_watch_setup(args: &WatchArgs) {
    let server = if args.dev { "-dev" } else { "durable server" };
    let rate = args.writes_per_sec as f64;
    println!(
        "soak_bench watch: {} watchers on {} keys, {} writes/s for {} min, {server}, tombstone TTL {} s",
        args.watchers, args.watch_keys, args.writes_per_sec, args.minutes, args.ttl_secs
    );
    println!(
        "write mix, repeating: PUT watched key (round robin), PUT new unique key, PUT watched key, DELETE that \
         unique key = {:.0} watched PUTs/s (each key every {:.1} s), {:.0} unique PUTs/s, {:.0} DELETEs/s",
        rate / 2.0,
        2.0 * args.watch_keys as f64 / rate,
        rate / 4.0,
        rate / 4.0
    );
}

/// One watcher: a GET of its key, then blocking GETs past the last answer's index, re-parked after every answer,
/// until the task is aborted. The index it last saw goes to `seen[id]`; an error ends it and fails the run.
async fn watch(mut stream: TcpStream, id: usize, key: String, stats: Arc<Stats>, seen: Arc<Vec<AtomicU64>>) {
    if let Err(error) = watch_loop(&mut stream, &key, &stats, &seen[id]).await {
        stats.fail(format!("watcher {id} on {key}: {error:#}"));
    }
}

async fn watch_loop(stream: &mut TcpStream, key: &str, stats: &Stats, seen: &AtomicU64) -> anyhow::Result<()> {
    let mut index = ask(stream, &format!("/v1/kv/{key}")).await?;
    seen.store(index, Ordering::Relaxed);
    stats.parked.fetch_add(1, Ordering::Relaxed);
    loop {
        let next = ask(stream, &format!("/v1/kv/{key}?index={index}&wait=5m")).await?;
        ensure!(next >= index, "X-Consul-Index went back from {index} to {next}");
        let counter = if next > index { &stats.wakes } else { &stats.stale };
        counter.fetch_add(1, Ordering::Relaxed);
        index = next;
        seen.store(index, Ordering::Relaxed);
    }
}

/// Sends one GET on the watcher's connection and returns the answer's index.
async fn ask(stream: &mut TcpStream, path: &str) -> anyhow::Result<u64> {
    stream.write_all(get_request(path).as_bytes()).await?;
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).await?;
    read_answer(stream, first[0]).await
}

/// Waits until every watcher has seen the last write to its key (the key's `ModifyIndex` once the writes have
/// stopped), and returns how long the check took, reading the indexes included.
async fn all_saw_last_write(
    agent: &TestAgent,
    args: &WatchArgs,
    seen: &[AtomicU64],
    stats: &Stats,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last_write = Vec::with_capacity(args.watch_keys);
    for k in 0..args.watch_keys {
        let res = agent.get(&format!("/v1/kv/{}", watched_key(k))).await;
        ensure!(res.status == 200, "GET {}: HTTP {}", watched_key(k), res.status);
        last_write.push(res.json()[0]["ModifyIndex"].as_u64().context("ModifyIndex of a watched key")?);
    }
    loop {
        stats.check()?;
        let behind = seen
            .iter()
            .enumerate()
            .filter(|(id, index)| index.load(Ordering::Relaxed) < last_write[id % args.watch_keys])
            .count();
        if behind == 0 {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < WATCHER_GRACE,
            "{behind} of {} watchers had not seen the last write to their key {WATCHER_GRACE:?} after the writes stopped",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The writes' HTTP client.
struct Writer {
    client: reqwest::Client,
    base: String,
    stats: Arc<Stats>,
}

/// What a write of the watch soak does.
#[derive(Debug, PartialEq, Eq)]
enum Write {
    /// PUT the k-th watched key.
    Watched(usize),
    /// PUT the i-th unique key.
    ChurnPut(u64),
    /// DELETE the i-th unique key.
    ChurnDelete(u64),
}

/// The n-th write of the mix: watched PUT, unique PUT, watched PUT, DELETE of that unique key, repeating; the
/// watched PUTs go round robin over the keys.
fn write_for(n: u64, watch_keys: usize) -> Write {
    match n % 4 {
        0 | 2 => Write::Watched(((n / 2) % watch_keys as u64) as usize),
        1 => Write::ChurnPut(n / 4),
        _ => Write::ChurnDelete(n / 4),
    }
}

/// Paces writes to a fixed rate: write n is due n / rate seconds after the start. A dispatcher that fell behind
/// sends the writes it owes back to back, but at most `catch_up` of them: older slots are dropped and counted, so
/// a stall shows as a lower rate rather than as a burst.
struct Pacer {
    rate: u64,
    catch_up: u64,
    next: u64,
    dropped: u64,
}

impl Pacer {
    fn new(rate: u64, catch_up: u64) -> Pacer {
        Pacer { rate, catch_up: catch_up.max(1), next: 0, dropped: 0 }
    }

    /// `Ok` when a write is due `elapsed` after the start (it then counts as sent), or how long until one is.
    fn poll(&mut self, elapsed: Duration) -> Result<(), Duration> {
        let due_by = (elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64 + 1;
        if self.next >= due_by {
            let due = Duration::from_nanos((u128::from(self.next) * 1_000_000_000 / u128::from(self.rate)) as u64);
            return Err(due.saturating_sub(elapsed).max(Duration::from_nanos(1)));
        }
        let behind = due_by - self.next;
        if behind > self.catch_up {
            self.dropped += behind - self.catch_up;
            self.next += behind - self.catch_up;
        }
        self.next += 1;
        Ok(())
    }
}

/// Sends the paced writes for `run`, then waits for the last answers; returns the writes sent and the slots the
/// pacer dropped.
async fn write_paced(writer: Arc<Writer>, rate: u64, watch_keys: usize, run: Duration) -> anyhow::Result<(u64, u64)> {
    // Up to 100 ms of writes may go back to back after the bench itself was kept off the CPU (on a shared two-core
    // host the scheduler does that for tens of ms at a time); a longer stall drops slots and shows in the rate.
    let mut pacer = Pacer::new(rate, rate / 10);
    // Every write task holds a permit until it has answered, so taking all of them at the end waits for the last.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut unique_puts: VecDeque<JoinHandle<()>> = VecDeque::new();
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= run {
            break;
        }
        if let Err(wait) = pacer.poll(elapsed) {
            tokio::time::sleep(wait.min(run - elapsed)).await;
            continue;
        }
        let permit = in_flight.clone().acquire_owned().await?;
        let write = write_for(sent, watch_keys);
        let writer = writer.clone();
        match write {
            Write::ChurnPut(_) => unique_puts.push_back(tokio::spawn(async move {
                writer.send(write).await;
                drop(permit);
            })),
            Write::ChurnDelete(_) => {
                let put = unique_puts.pop_front().context("a DELETE before its PUT")?;
                tokio::spawn(async move {
                    // The key's PUT has answered before it is deleted, so every DELETE leaves a tombstone.
                    let _ = put.await;
                    writer.send(write).await;
                    drop(permit);
                });
            }
            Write::Watched(_) => {
                tokio::spawn(async move {
                    writer.send(write).await;
                    drop(permit);
                });
            }
        }
        sent += 1;
    }
    let _all = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await?;
    Ok((sent, pacer.dropped))
}

impl Writer {
    /// Sends one write; a failure (transport, status, or an answer other than `true`) fails the run.
    async fn send(&self, write: Write) {
        let (method, key) = match write {
            Write::Watched(k) => (reqwest::Method::PUT, watched_key(k)),
            Write::ChurnPut(i) => (reqwest::Method::PUT, churn_key(i)),
            Write::ChurnDelete(i) => (reqwest::Method::DELETE, churn_key(i)),
        };
        let request = self.client.request(method.clone(), format!("{}/v1/kv/{key}", self.base));
        let request = if method == reqwest::Method::PUT { request.body("soak-value") } else { request };
        let res = async {
            let res = request.send().await?;
            let status = res.status();
            let body = res.text().await?;
            ensure!(status == 200 && body.trim() == "true", "HTTP {status}: {body}");
            anyhow::Ok(())
        };
        match res.await {
            Ok(()) => {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                if matches!(write, Write::Watched(_)) {
                    self.stats.watched_writes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => self.stats.fail(format!("{method} {key}: {error:#}")),
        }
    }
}

/// One memory sample with the counters at that moment.
#[derive(Debug)]
struct Sample {
    at: Instant,
    rss: u64,
    anon: u64,
    writes: u64,
    wakes: u64,
    errors: u64,
}

fn sample(pid: u32, stats: &Stats) -> anyhow::Result<Sample> {
    let memory = memory(pid)?;
    Ok(Sample {
        at: Instant::now(),
        rss: memory.rss,
        anon: memory.anon,
        writes: stats.writes.load(Ordering::Relaxed),
        wakes: stats.wakes.load(Ordering::Relaxed),
        errors: stats.errors(),
    })
}

/// One minute of the run: memory at its end and its peak sample, what was done in it.
#[derive(Debug, PartialEq)]
struct MinuteRow {
    minute: usize,
    rss: u64,
    rss_max: u64,
    anon: u64,
    writes: u64,
    wakes: u64,
    errors: u64,
    writes_per_sec: f64,
}

impl MinuteRow {
    const HEADER: &'static str = "minute    RSS MiB    max MiB  RssAnon MiB     writes      wakes   errors  writes/s";
}

impl std::fmt::Display for MinuteRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>6} {:>10.1} {:>10.1} {:>12.1} {:>10} {:>10} {:>8} {:>9.0}",
            self.minute,
            mib(self.rss),
            mib(self.rss_max),
            mib(self.anon),
            self.writes,
            self.wakes,
            self.errors,
            self.writes_per_sec
        )
    }
}

/// The complete minutes of a run whose first sample was taken at its start and then one every `SAMPLE_EVERY`.
fn minute_rows(samples: &[Sample]) -> Vec<MinuteRow> {
    let minutes = samples.len().saturating_sub(1) / SAMPLES_PER_MINUTE;
    (1..=minutes)
        .map(|minute| {
            let (first, last) = (&samples[(minute - 1) * SAMPLES_PER_MINUTE], &samples[minute * SAMPLES_PER_MINUTE]);
            let window = &samples[(minute - 1) * SAMPLES_PER_MINUTE + 1..=minute * SAMPLES_PER_MINUTE];
            let writes = last.writes - first.writes;
            MinuteRow {
                minute,
                rss: last.rss,
                rss_max: window.iter().map(|s| s.rss).max().unwrap_or(last.rss),
                anon: last.anon,
                writes,
                wakes: last.wakes - first.wakes,
                errors: last.errors - first.errors,
                writes_per_sec: writes as f64 / last.at.duration_since(first.at).as_secs_f64(),
            }
        })
        .collect()
}

fn print_minutes(samples: &[Sample]) {
    println!("{}", MinuteRow::HEADER);
    for row in minute_rows(samples) {
        println!("{row}");
    }
}

/// RSS at the end of the warm-up minute against the samples after it.
#[derive(Debug, PartialEq)]
struct Drift {
    warm: u64,
    max: u64,
    last: u64,
}

/// The drift of a run sampled as `minute_rows` expects; `None` until a sample after the warm-up minute exists.
fn drift(samples: &[Sample]) -> Option<Drift> {
    let warm = samples.get(SAMPLES_PER_MINUTE)?.rss;
    let after = samples.get(SAMPLES_PER_MINUTE + 1..).filter(|after| !after.is_empty())?;
    Some(Drift { warm, max: after.iter().map(|s| s.rss).max()?, last: after.last()?.rss })
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let change = |to: u64| {
            let delta = to as f64 - self.warm as f64;
            format!("{:+.1} MiB, {:+.1} %", delta / (1024.0 * 1024.0), delta * 100.0 / self.warm as f64)
        };
        write!(
            f,
            "RSS after warm-up (end of minute 1): {:.1} MiB; after it, max {:.1} MiB ({}), last {:.1} MiB ({})",
            mib(self.warm),
            mib(self.max),
            change(self.max),
            mib(self.last),
            change(self.last)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_half_watched_puts_round_robin_and_a_delete_after_each_unique_put() {
        let writes: Vec<Write> = (0..12).map(|n| write_for(n, 3)).collect();
        use Write::{ChurnDelete as Delete, ChurnPut as Put, Watched};
        assert_eq!(
            writes,
            [
                Watched(0),
                Put(0),
                Watched(1),
                Delete(0),
                Watched(2),
                Put(1),
                Watched(0),
                Delete(1),
                Watched(1),
                Put(2),
                Watched(2),
                Delete(2)
            ]
        );
    }

    #[test]
    fn the_pacer_sends_on_schedule_and_waits_in_between() {
        let mut pacer = Pacer::new(1000, 10);
        assert_eq!(pacer.poll(Duration::ZERO), Ok(()));
        assert_eq!(pacer.poll(Duration::from_micros(200)), Err(Duration::from_micros(800)));
        assert_eq!(pacer.poll(Duration::from_micros(1000)), Ok(()));
        assert_eq!(pacer.poll(Duration::from_micros(1500)), Err(Duration::from_micros(500)));
        assert_eq!(pacer.dropped, 0);
    }

    #[test]
    fn the_pacer_catches_up_a_short_lag_back_to_back() {
        let mut pacer = Pacer::new(1000, 10);
        let at = Duration::from_micros(4500);
        // Slots 0 to 4 are due by 4.5 ms: all five go at once, none is dropped.
        for _ in 0..5 {
            assert_eq!(pacer.poll(at), Ok(()));
        }
        assert_eq!(pacer.poll(at), Err(Duration::from_micros(500)));
        assert_eq!(pacer.dropped, 0);
    }

    #[test]
    fn the_pacer_drops_what_a_stall_owes_beyond_the_catch_up() {
        let mut pacer = Pacer::new(1000, 10);
        let at = Duration::from_millis(100);
        // 101 slots are due by 100 ms; ten go back to back, the other 91 are dropped.
        let sent = std::iter::from_fn(|| pacer.poll(at).ok()).take(1000).count();
        assert_eq!(sent, 10);
        assert_eq!(pacer.dropped, 91);
        assert_eq!(pacer.poll(Duration::from_micros(100_500)), Err(Duration::from_micros(500)));
    }

    /// Samples every 10 s from `start`: (RSS MiB, writes, wakes, errors) each.
    fn samples(values: &[(u64, u64, u64, u64)]) -> Vec<Sample> {
        let start = Instant::now();
        values
            .iter()
            .enumerate()
            .map(|(i, &(rss, writes, wakes, errors))| Sample {
                at: start + SAMPLE_EVERY * i as u32,
                rss: rss << 20,
                anon: (rss - 10) << 20,
                writes,
                wakes,
                errors,
            })
            .collect()
    }

    #[test]
    fn a_minute_row_takes_the_counters_difference_and_the_memory_at_its_end() {
        let mut values = vec![(100, 0, 0, 0)];
        values.extend((1..=6).map(|i| (if i == 3 { 130 } else { 110 + i }, i * 10_000, i * 50_000, 0)));
        values.extend((7..=12).map(|i| (120, i * 9_000, i * 40_000, u64::from(i == 12))));
        values.push((500, 999_999, 999_999, 9)); // the start of a minute that did not finish
        let rows = minute_rows(&samples(&values));
        assert_eq!(rows.len(), 2);
        let expected = MinuteRow {
            minute: 1,
            rss: 116 << 20,
            rss_max: 130 << 20,
            anon: 106 << 20,
            writes: 60_000,
            wakes: 300_000,
            errors: 0,
            writes_per_sec: 1000.0,
        };
        assert_eq!(rows[0], expected);
        assert_eq!((rows[1].writes, rows[1].wakes, rows[1].errors), (108_000 - 60_000, 480_000 - 300_000, 1));
        assert_eq!(rows[1].writes_per_sec, 800.0);
    }

    #[test]
    fn the_drift_compares_the_warm_up_minutes_end_with_what_follows() {
        let mut values = vec![(30, 0, 0, 0)];
        values.extend([200, 250, 240, 230, 220, 210].map(|rss| (rss, 0, 0, 0)));
        assert_eq!(drift(&samples(&values)), None);
        values.extend([215, 212, 211].map(|rss| (rss, 0, 0, 0)));
        let drift = drift(&samples(&values)).expect("samples after the warm-up");
        assert_eq!(drift, Drift { warm: 210 << 20, max: 215 << 20, last: 211 << 20 });
        assert_eq!(
            drift.to_string(),
            "RSS after warm-up (end of minute 1): 210.0 MiB; after it, max 215.0 MiB (+5.0 MiB, +2.4 %), last 211.0 MiB \
             (+1.0 MiB, +0.5 %)"
        );
    }
}
