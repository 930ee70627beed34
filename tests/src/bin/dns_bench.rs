//! DNS throughput and latency of roster against nsd and dnsmasq serving the same answer, in one run.
//!
//! `cargo run --release -p roster-tests --bin dns_bench -- [--seconds 10] [--rounds 3] [--clients 4] [--outstanding 100]`
//!
//! All three answer `files.service.consul A` with the same three addresses: roster from a dev agent's catalog (three
//! passing instances, health-filtered and shuffled per query), nsd from a static zone, dnsmasq from a hosts file.
//! Every server is started and checked to answer first; then `dnsperf` (Debian's) drives each over UDP on 127.0.0.1
//! for `--seconds` in all, split into `--rounds` slices that visit the servers in turn, so a machine whose load moves
//! loads each server alike. Queries per second come from dnsperf's completed queries and run time summed over the
//! rounds, p50/p99 from the per-query latencies it prints with `-v`, and each ratio to roster is printed with its
//! per-round values. A server whose binary is not installed is skipped (`apt-get install dnsperf nsd dnsmasq-base`).
//! Everything listens on loopback only and every process is stopped at the end.
//! nsd runs with one server process per core, which is how it is deployed for throughput.

#![forbid(unsafe_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use roster_tests::{AgentMode, TestAgent};
use serde_json::json;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "dnsperf against roster, nsd and dnsmasq serving the same A record set")]
struct Args {
    /// Seconds per server, over all rounds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    seconds: u64,
    /// Rounds: `--seconds` is split into this many slices, and the servers take turns slice by slice.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// dnsperf clients (sockets).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    clients: u32,
    /// Queries kept outstanding by dnsperf.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    outstanding: u32,
}

/// A server that answers the bench's query, and what it answered before it was timed.
struct Server {
    name: &'static str,
    port: u16,
    answers: String,
    /// Stops the server when dropped; `None` for roster, whose agent is held by `run`.
    _process: Option<Guard>,
}

/// What one dnsperf run measured.
struct Run {
    n_completed: u64,
    run_time_secs: f64,
    n_lost: u64,
    latencies_ms: Vec<f64>,
}

/// Every round of one server, added up.
#[derive(Default)]
struct Samples {
    n_completed: u64,
    run_time_secs: f64,
    n_lost: u64,
    latencies_ms: Vec<f64>,
    /// Each round's queries per second, to show how much the machine moved between rounds.
    per_round: Vec<f64>,
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

    // Every server is started first, then the rounds visit them in turn: on a machine whose load moves, each server
    // sees the same mix of quiet and busy moments, so the ratios compare the servers rather than the minutes they
    // happened to run in.
    let agent = TestAgent::start_with_config("dns-bench", AgentMode::Dev, json!({"ports": {"dns": 0}})).await?;
    for (idx, address) in ADDRESSES.iter().enumerate() {
        let body = json!({
            "Node": format!("node{idx}"), "Address": address,
            "Service": {"ID": format!("files-{idx}"), "Service": "files", "Port": 80},
            "Checks": [{"CheckID": format!("c{idx}"), "Name": "up", "ServiceID": format!("files-{idx}"), "Status": "passing"}],
        });
        agent.put_json("/v1/catalog/register", &body).await.expect_status(200);
    }
    let roster_port = agent.dns_addr().port();
    let mut servers = vec![Server { name: "roster", port: roster_port, answers: answers(roster_port), _process: None }];
    for (name, started) in [("nsd", start_nsd(work.path())), ("dnsmasq", start_dnsmasq(work.path()))] {
        match started {
            Ok((guard, port)) => servers.push(Server { name, port, answers: answers(port), _process: Some(guard) }),
            Err(why) => eprintln!("skipping {name}: {why:#}"),
        }
    }
    let expected = ADDRESSES.join(",");
    for server in &servers {
        ensure!(server.answers == expected, "{} answered {:?}, not {expected}", server.name, server.answers);
    }

    let slice = Duration::from_secs(args.seconds) / args.rounds;
    let mut samples: Vec<Samples> = servers.iter().map(|_| Samples::default()).collect();
    for round in 0..args.rounds {
        for (server, samples) in servers.iter().zip(&mut samples) {
            eprintln!("{} round {}/{}: dnsperf for {slice:?}", server.name, round + 1, args.rounds);
            samples.add(dnsperf(&args, &queries, server.port, slice)?);
        }
    }
    print_table(&servers, &mut samples);
    drop(servers);
    drop(agent);
    Ok(())
}

impl Samples {
    fn add(&mut self, round: Run) {
        self.per_round.push(round.n_completed as f64 / round.run_time_secs.max(f64::EPSILON));
        self.n_completed += round.n_completed;
        self.run_time_secs += round.run_time_secs;
        self.n_lost += round.n_lost;
        self.latencies_ms.extend(round.latencies_ms);
    }

    fn qps(&self) -> f64 {
        self.n_completed as f64 / self.run_time_secs.max(f64::EPSILON)
    }

    /// The latency below which `pct` per cent of the queries completed; NaN when dnsperf printed none.
    fn percentile_ms(&mut self, pct: usize) -> f64 {
        self.latencies_ms.sort_by(f64::total_cmp);
        let idx = (self.latencies_ms.len() * pct / 100).min(self.latencies_ms.len().saturating_sub(1));
        self.latencies_ms.get(idx).copied().unwrap_or(f64::NAN)
    }
}

fn print_table(servers: &[Server], samples: &mut [Samples]) {
    println!("{:<9} {:>12} {:>9} {:>9} {:>8}  answer", "server", "queries/s", "p50(ms)", "p99(ms)", "lost");
    for (server, samples) in servers.iter().zip(samples.iter_mut()) {
        let (p50, p99) = (samples.percentile_ms(50), samples.percentile_ms(99));
        println!(
            "{:<9} {:>12.0} {:>9.3} {:>9.3} {:>8}  {}",
            server.name,
            samples.qps(),
            p50,
            p99,
            samples.n_lost,
            server.answers
        );
    }
    // roster is always first; each peer's ratio with the rounds that ran back to back.
    let Some((roster, peers)) = samples.split_first() else { return };
    for (server, peer) in servers.iter().skip(1).zip(peers) {
        let rounds: Vec<String> = roster
            .per_round
            .iter()
            .zip(&peer.per_round)
            .map(|(a, b)| format!("{:.2}", a / b.max(f64::EPSILON)))
            .collect();
        println!(
            "roster/{:<8} {:.2}x queries/s (per round: {})",
            server.name,
            roster.qps() / peer.qps().max(f64::EPSILON),
            rounds.join(" ")
        );
    }
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

/// The addresses a server answers for the bench's name, sorted and joined with commas.
fn answers(port: u16) -> String {
    let check = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=2", "+tries=2", QNAME, "A"])
        .output();
    let mut answers: Vec<String> =
        check.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect()).unwrap_or_default();
    answers.sort();
    answers.join(",")
}

/// One dnsperf run of `duration` against the server on `port`.
fn dnsperf(args: &Args, queries: &Path, port: u16, duration: Duration) -> anyhow::Result<Run> {
    let mut child = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-l", &format!("{:.3}", duration.as_secs_f64())])
        .args(["-c", &args.clients.to_string(), "-q", &args.outstanding.to_string(), "-v", "-d"])
        .arg(queries)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsperf")?;
    let stdout = child.stdout.take().context("dnsperf stdout")?;
    let mut run = Run { n_completed: 0, run_time_secs: 0.0, n_lost: 0, latencies_ms: Vec::new() };
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let first_number = |text: &str| text.split_whitespace().next().map(str::to_owned);
        if let Some(rest) = line.strip_prefix("> ") {
            if let Some(secs) = rest.split_whitespace().last().and_then(|v| v.parse::<f64>().ok()) {
                run.latencies_ms.push(secs * 1000.0);
            }
        } else if let Some(v) = line.trim().strip_prefix("Queries completed:").and_then(first_number) {
            run.n_completed = v.parse().context("dnsperf's completed queries")?;
        } else if let Some(v) = line.trim().strip_prefix("Queries lost:").and_then(first_number) {
            run.n_lost = v.parse().context("dnsperf's lost queries")?;
        } else if let Some(v) = line.trim().strip_prefix("Run time (s):").and_then(first_number) {
            run.run_time_secs = v.parse().context("dnsperf's run time")?;
        }
    }
    let status = child.wait()?;
    ensure!(status.success() && run.run_time_secs > 0.0, "dnsperf on port {port} failed ({status})");
    Ok(run)
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
