//! Footprint of an idle agent: start time and memory of a `-dev` server, and memory of a client agent holding
//! `--services` services with one check each, beside the binary's own size (issue 20, "Footprint" and "Start").
//!
//! `cargo run --release -p roster-tests --bin footprint_bench -- [--services 100] [--idle-secs 15] [--runs 3]`
//! (`ROSTER_BIN` names the roster binary to measure; a release build is what the targets are judged on.)
//!
//! - start: from spawning `roster agent -dev` until its HTTP API names a leader, polled every 2 ms;
//! - a `-dev` server after `--idle-secs` with nothing registered;
//! - a client agent joined to a durable server (each on its own loopback address), with `--services` services
//!   registered from its config file, each with one check: a TTL check (reported passing once), a TCP check of the
//!   server's HTTP port, or an HTTP check of the server's `/v1/status/leader`, all every 10 s; measured after every
//!   check has passed at least once and then `--idle-secs` more. The time from spawning the client to its readiness
//!   line, and to every check passing in the server's catalog, is printed too (polled every 200 ms).
//!
//! Memory is read from `/proc/<pid>/status`: `VmRSS` (what `ps` shows), `RssAnon` (the process's own memory) and
//! `RssFile` (pages of the binary and shared libraries that it touched, shared by every roster process on the host
//! and reclaimable by the kernel). Everything listens on loopback; every process is killed when the bench ends.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use roster_tests::{AgentMode, RPC_PORT, SERF_PORT, TestAgent, http_client, roster_bin};
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Start time and idle memory of a -dev server and of a client agent with N services and checks")]
struct Args {
    /// Services (one check each) on the client agent.
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// How long each agent idles before its memory is read, in seconds.
    #[arg(long, default_value_t = 15)]
    idle_secs: u64,
    /// Which check kinds to measure, one client agent each: `ttl`, `tcp`, `http`.
    #[arg(long, value_delimiter = ',', default_value = "ttl,tcp,http")]
    checks: Vec<String>,
    /// How many `-dev` start times to take.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// The memory lines of one process, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory { rss: field("VmRSS:")?, anon: field("RssAnon:")?, file: field("RssFile:")? })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = roster_bin();
    let bin_size = std::fs::metadata(&bin).with_context(|| format!("reading {}", bin.display()))?.len();
    println!("binary: {} ({:.1} MiB)", bin.display(), bin_size as f64 / 1048576.0);

    let mut starts = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        starts.push(dev_start_time(&bin, run).await?);
    }
    let dev = TestAgent::start("footprint-dev", AgentMode::Dev).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let dev_memory = Memory::of(dev.pid().context("the -dev agent's pid")?)?;
    drop(dev);

    println!();
    println!("| agent | checks | VmRSS (MiB) | RssAnon (MiB) | RssFile (MiB) |");
    println!("|---|---|---:|---:|---:|");
    print_row("-dev server, idle", "-", dev_memory);
    for kind in &args.checks {
        ensure!(["ttl", "tcp", "http"].contains(&kind.as_str()), "unknown check kind {kind:?} (ttl, tcp, http)");
        let (client, server) = client_footprint(&args, kind).await?;
        print_row(&format!("client, {} services", args.services), kind, client);
        print_row("its server", kind, server);
    }
    let ms: Vec<String> = starts.iter().map(|took| format!("{:.1}", took.as_secs_f64() * 1000.0)).collect();
    println!();
    println!("-dev start (spawn → leader over HTTP), ms: {}", ms.join(", "));
    Ok(())
}

fn print_row(agent: &str, checks: &str, memory: Memory) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("| {agent} | {checks} | {:.1} | {:.1} | {:.1} |", mib(memory.rss), mib(memory.anon), mib(memory.file));
}

/// Spawns `roster agent -dev` and polls its HTTP API until it names a leader.
///
/// Each run gets a loopback address of its own (`127.89.<pid>.<run>`) with the default ports: the bench is the only
/// user of those addresses, so no port can be taken between choosing and binding it, as with "bind port 0, release,
/// pass the number on".
async fn dev_start_time(bin: &std::path::Path, run: usize) -> anyhow::Result<Duration> {
    let ip = Ipv4Addr::new(127, 89, 1 + (std::process::id() % 200) as u8, 1 + (run % 250) as u8).to_string();
    let config_dir = tempfile::tempdir()?;
    let config = config_dir.path().join("dev.json");
    std::fs::write(&config, json!({"ports": {"dns": -1}}).to_string())?;
    let client = http_client(1);
    let url = format!("http://{ip}:8500/v1/status/leader");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .args(["agent", "-dev", "-bind", &ip, "-client", &ip, "-config-file"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawning roster agent -dev")?;
    loop {
        if let Ok(resp) = client.get(&url).send().await
            && let Ok(leader) = resp.text().await
            && leader.len() > 2
        {
            let took = started.elapsed();
            child.kill().await.ok();
            return Ok(took);
        }
        if let Some(status) = child.try_wait()? {
            bail!("roster agent -dev exited with {status} before naming a leader");
        }
        ensure!(started.elapsed() < Duration::from_secs(30), "no leader within 30 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A durable server and a client agent with `args.services` services checked by `kind`, idle: their memory.
async fn client_footprint(args: &Args, kind: &str) -> anyhow::Result<(Memory, Memory)> {
    let subnet = [127, 88, 1 + (std::process::id() % 200) as u8];
    let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(subnet[0], subnet[1], subnet[2], last));
    let (server_ip, client_ip) = (ip(2), ip(3));
    let server_serf = SocketAddr::new(server_ip, SERF_PORT).to_string();
    let member = |ip: IpAddr| -> Vec<String> {
        let ip = ip.to_string();
        ["-bind", &ip, "-client", &ip, "-retry-interval", "1s", "-retry-join", &server_serf].map(str::to_owned).to_vec()
    };
    let ports = json!({"ports": {"http": 0, "dns": -1, "server": RPC_PORT, "serf_lan": SERF_PORT}});
    let data_dir = tempfile::tempdir()?;
    let mut server_args = vec!["-server".to_owned(), "-bootstrap-expect".to_owned(), "1".to_owned()];
    server_args.extend(["-data-dir".to_owned(), data_dir.path().display().to_string()]);
    server_args.extend(member(server_ip));
    let server = TestAgent::start_with_config("fp-server", AgentMode::Args(server_args), ports.clone()).await?;

    let server_http = server.http_addr();
    let services: Vec<Value> = (0..args.services)
        .map(|idx| {
            let check = match kind {
                "ttl" => json!({"ttl": "10m", "status": "passing"}),
                "tcp" => json!({"tcp": server_http.to_string(), "interval": "10s"}),
                _ => json!({"http": format!("http://{server_http}/v1/status/leader"), "interval": "10s"}),
            };
            json!({"name": format!("svc-{idx}"), "port": 10_000 + idx, "check": check})
        })
        .collect();
    let mut config = ports;
    config["services"] = Value::Array(services);
    let client_dir = tempfile::tempdir()?;
    let mut client_args = vec!["-data-dir".to_owned(), client_dir.path().display().to_string()];
    client_args.extend(member(client_ip));
    let spawned = Instant::now();
    let client = TestAgent::start_with_config("fp-client", AgentMode::Args(client_args), config).await?;
    let ready = spawned.elapsed();

    // Every check has run and passed: the client's own view says so, and the server's catalog holds them all.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let local: Value = client.get("/v1/agent/checks").await.json();
        let passing =
            local.as_object().map_or(0, |checks| checks.values().filter(|check| check["Status"] == "passing").count());
        let catalog: Value = server.get("/v1/health/state/passing").await.json();
        let in_catalog =
            catalog.as_array().map_or(0, |checks| checks.iter().filter(|check| check["Node"] == "fp-client").count());
        if passing == args.services && in_catalog >= args.services {
            println!(
                "{kind}: client ready {:.2} s after spawn, every check passing in the catalog {:.2} s after spawn",
                ready.as_secs_f64(),
                spawned.elapsed().as_secs_f64()
            );
            break;
        }
        ensure!(Instant::now() < deadline, "{kind}: {passing} checks passing locally, {in_catalog} in the catalog");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let memory = Memory::of(client.pid().context("the client's pid")?)?;
    let server_memory = Memory::of(server.pid().context("the server's pid")?)?;
    Ok((memory, server_memory))
}
