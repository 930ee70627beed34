//! DNS throughput and latency of roster against nsd and dnsmasq serving the same answer, in one run.
//!
//! `cargo run --release -p roster-tests --bin dns_bench -- [--seconds 10] [--clients 4] [--outstanding 100]`
//!
//! All three answer `files.service.consul A` with the same three addresses: roster from a dev agent's catalog (three passing instances, health-filtered and shuffled per query), nsd from a static zone, dnsmasq from a hosts file.
//! `dnsperf` (Debian's) drives each for `--seconds` over UDP on 127.0.0.1; queries per second come from its summary, and p50/p99 from the per-query latencies it prints with `-v`.
//! A server whose binary is not installed is skipped (`apt-get install dnsperf nsd dnsmasq-base`). Everything listens on loopback only and every process is stopped at the end.
//! nsd runs with one server process per core, which is how it is deployed for throughput.

#![forbid(unsafe_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use roster_tests::{AgentMode, TestAgent};
use serde_json::json;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "dnsperf against roster, nsd and dnsmasq serving the same A record set")]
struct Args {
    /// Seconds per server.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    seconds: u64,
    /// dnsperf clients (sockets).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    clients: u32,
    /// Queries kept outstanding by dnsperf.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    outstanding: u32,
}

/// What one dnsperf run measured.
struct Run {
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: u64,
    answers: String,
}

const ADDRESSES: [&str; 3] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
const QNAME: &str = "files.service.consul";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if Command::new("dnsperf").arg("-h").output().is_err() {
        bail!("dnsperf is not installed: apt-get install dnsperf");
    }
    let work = tempfile::tempdir()?;
    let queries = work.path().join("queries.txt");
    std::fs::write(&queries, format!("{QNAME} A\n"))?;
    let mut rows = Vec::new();

    let agent = TestAgent::start_with_config("dns-bench", AgentMode::Dev, json!({"ports": {"dns": 0}})).await?;
    for (idx, address) in ADDRESSES.iter().enumerate() {
        let body = json!({
            "Node": format!("node{idx}"), "Address": address,
            "Service": {"ID": format!("files-{idx}"), "Service": "files", "Port": 80},
            "Checks": [{"CheckID": format!("c{idx}"), "Name": "up", "ServiceID": format!("files-{idx}"), "Status": "passing"}],
        });
        agent.put_json("/v1/catalog/register", &body).await.expect_status(200);
    }
    rows.push(("roster", dnsperf(&args, &queries, agent.dns_addr().port())?));
    drop(agent);

    match start_nsd(work.path()) {
        Ok((_guard, port)) => {
            rows.push(("nsd", dnsperf(&args, &queries, port)?));
        }
        Err(why) => eprintln!("skipping nsd: {why:#}"),
    }
    match start_dnsmasq(work.path()) {
        Ok((_guard, port)) => {
            rows.push(("dnsmasq", dnsperf(&args, &queries, port)?));
        }
        Err(why) => eprintln!("skipping dnsmasq: {why:#}"),
    }

    println!("{:<9} {:>12} {:>9} {:>9} {:>8}  answer", "server", "queries/s", "p50(ms)", "p99(ms)", "lost");
    for (name, run) in &rows {
        println!(
            "{:<9} {:>12.0} {:>9.3} {:>9.3} {:>8}  {}",
            name, run.qps, run.p50_ms, run.p99_ms, run.lost, run.answers
        );
    }
    let roster = rows.iter().find(|(n, _)| *n == "roster").map(|(_, r)| r.qps).unwrap_or(0.0);
    for (name, run) in rows.iter().filter(|(n, _)| *n != "roster") {
        println!("roster/{name}: {:.2}x queries/s", roster / run.qps);
    }
    Ok(())
}

/// Kills a child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    // Both UDP and TCP must be free for the DNS servers; ask for a UDP port and check TCP too.
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port pair")
}

fn dnsperf(args: &Args, queries: &Path, port: u16) -> anyhow::Result<Run> {
    // A short check that the server answers with the three addresses before timing it.
    let check = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=2", "+tries=2", QNAME, "A"])
        .output();
    let mut answers: Vec<String> =
        check.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect()).unwrap_or_default();
    answers.sort();
    let mut child = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-l", &args.seconds.to_string()])
        .args(["-c", &args.clients.to_string(), "-q", &args.outstanding.to_string(), "-v", "-d"])
        .arg(queries)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsperf")?;
    let stdout = child.stdout.take().context("dnsperf stdout")?;
    let mut latencies: Vec<f64> = Vec::new();
    let (mut qps, mut lost) = (0.0, 0);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("> ") {
            if let Some(secs) = rest.split_whitespace().last().and_then(|v| v.parse::<f64>().ok()) {
                latencies.push(secs * 1000.0);
            }
        } else if let Some(v) = line.trim().strip_prefix("Queries per second:") {
            qps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.trim().strip_prefix("Queries lost:") {
            lost = v.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    child.wait()?;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: usize| latencies.get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1))).copied();
    Ok(Run {
        qps,
        p50_ms: pct(50).unwrap_or(f64::NAN),
        p99_ms: pct(99).unwrap_or(f64::NAN),
        lost,
        answers: answers.join(","),
    })
}

fn wait_answering(port: u16) -> anyhow::Result<()> {
    for _ in 0..50 {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=1", "+tries=1", QNAME])
            .output();
        if out.is_ok_and(|o| !o.stdout.is_empty()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the server on port {port} never answered")
}

fn start_nsd(dir: &Path) -> anyhow::Result<(Guard, u16)> {
    let port = free_port()?;
    let nsd_dir = dir.join("nsd");
    std::fs::create_dir_all(&nsd_dir)?;
    let mut zone = String::from(
        "$ORIGIN consul.\n$TTL 0\n@ IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 0\n@ IN NS ns.consul.\nns IN A 127.0.0.1\n",
    );
    for address in ADDRESSES {
        zone.push_str(&format!("files.service IN A {address}\n"));
    }
    std::fs::write(nsd_dir.join("consul.zone"), zone)?;
    let d = nsd_dir.display();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  zonesdir: \"{d}\"\n  username: \"\"\n  chroot: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/nsd.log\"\n  server-count: {cores}\n  verbosity: 0\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\nzone:\n  name: consul\n  zonefile: consul.zone\n"
    );
    let conf_path = nsd_dir.join("nsd.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new("nsd")
        .arg("-d")
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nsd (apt-get install nsd)")?;
    let guard = Guard(child);
    wait_answering(port)?;
    Ok((guard, port))
}

fn start_dnsmasq(dir: &Path) -> anyhow::Result<(Guard, u16)> {
    let port = free_port()?;
    let hosts = dir.join("dnsmasq.hosts");
    std::fs::write(&hosts, ADDRESSES.iter().map(|a| format!("{a} {QNAME}\n")).collect::<String>())?;
    let child = Command::new("dnsmasq")
        .args(["-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"])
        .args(["--listen-address=127.0.0.1", "--user=root", "--local-ttl=0"])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsmasq (apt-get install dnsmasq-base)")?;
    let guard = Guard(child);
    wait_answering(port)?;
    Ok((guard, port))
}
