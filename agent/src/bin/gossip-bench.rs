//! `gossip-bench`: runs many gossip instances in one process on loopback and measures convergence, steady-state
//! traffic per member, and (with `--kill`) how long a killed member takes to be declared failed everywhere.
//!
//! `cargo run --release -p roster-agent --bin gossip-bench -- --members 50 --seconds 20 --kill`

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use roster_agent::gossip::{Gossip, GossipConfig, GossipStats, MemberMeta, MemberStatus, Role};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often convergence and flapping are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Give up waiting for convergence or failure detection after this long.
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(about = "Measures roster's gossip layer with in-process members on loopback")]
struct Args {
    /// How many members to start.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// How long to measure steady-state traffic, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// How long to wait after convergence before measuring, in seconds, so the join's own broadcasts have drained.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Afterwards, kill one member and time its detection.
    #[arg(long)]
    kill: bool,
    /// The IP every member binds (each gets its own port).
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// One member and the token that kills it.
struct Instance {
    gossip: Gossip,
    stop: CancellationToken,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Quiet unless asked: `RUST_LOG=roster_agent::gossip=debug` shows the gossip layer's decisions.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    ensure!(args.members >= 2, "--members must be at least 2");
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build().context("building the runtime")?.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let instances = start_all(&args).await?;
    let seed = vec![instances[0].gossip.local_addr().to_string()];

    let join_started = Instant::now();
    for instance in &instances[1..] {
        instance.gossip.join(&seed).await.with_context(|| format!("{} joining", instance.gossip.node_name()))?;
    }
    let joined_in = join_started.elapsed();
    let converged_in = wait_until(&instances, |instance| count_alive(instance) == args.members).await?;
    println!(
        "joined {} members one by one through the first in {:.2} s; every member saw {} alive {:.2} s after the last join ({:.2} s in all)",
        args.members,
        joined_in.as_secs_f64(),
        args.members,
        converged_in.as_secs_f64(),
        (joined_in + converged_in).as_secs_f64()
    );

    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    steady_state(&instances, &args).await;

    if args.kill {
        time_failure_detection(&instances).await?;
    }
    for instance in &instances {
        instance.stop.cancel();
    }
    Ok(())
}

async fn start_all(args: &Args) -> Result<Vec<Instance>> {
    let mut instances = Vec::with_capacity(args.members);
    for idx in 0..args.members {
        let name = format!("node-{idx:04}");
        let meta = MemberMeta {
            datacenter: "dc1".into(),
            node_id: format!("00000000-0000-4000-8000-{idx:012x}"),
            role: if idx < 3 { Role::Server } else { Role::Client },
            build: "0.1.0".into(),
            protocol: 2,
            http_port: Some(8500),
            tags: [("rack".to_owned(), format!("r{}", idx % 8))].into(),
            ..MemberMeta::default()
        };
        let stop = CancellationToken::new();
        let config = GossipConfig::new(name, SocketAddr::new(args.ip, 0), meta);
        let gossip = Gossip::start(config, stop.clone()).await.context("starting a member")?;
        instances.push(Instance { gossip, stop });
    }
    Ok(instances)
}

/// Measures traffic over `--seconds` and watches for members seen as anything but alive (flapping).
async fn steady_state(instances: &[Instance], args: &Args) {
    let before: Vec<GossipStats> = instances.iter().map(|instance| instance.gossip.stats()).collect();
    let started = Instant::now();
    let window = Duration::from_secs(args.seconds);
    let mut n_not_alive = 0usize;
    let mut max_health = 1;
    while started.elapsed() < window {
        tokio::time::sleep(SAMPLE_EVERY).await;
        for instance in instances {
            n_not_alive +=
                instance.gossip.members().iter().filter(|member| member.status != MemberStatus::Alive).count();
            max_health = max_health.max(instance.gossip.stats().local_health);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after: Vec<GossipStats> = instances.iter().map(|instance| instance.gossip.stats()).collect();
    let rate = |field: Counter| -> Vec<f64> {
        before.iter().zip(&after).map(|(b, a)| (field(a) - field(b)) as f64 / secs).collect()
    };
    println!(
        "\nsteady state over {secs:.1} s (from {} s after convergence), per member per second ({} members):",
        args.settle,
        instances.len()
    );
    println!("{:<22} {:>10} {:>10}", "", "mean", "max");
    let rows: [(&str, Counter); 8] = [
        ("UDP sent bytes", |s| s.udp_sent_bytes),
        ("UDP sent packets", |s| s.udp_sent_packets),
        ("UDP received bytes", |s| s.udp_received_bytes),
        ("UDP received packets", |s| s.udp_received_packets),
        ("TCP sent bytes", |s| s.tcp_sent_bytes),
        ("TCP sent frames", |s| s.tcp_sent_packets),
        ("TCP received bytes", |s| s.tcp_received_bytes),
        ("TCP received frames", |s| s.tcp_received_packets),
    ];
    for (label, field) in rows {
        let values = rate(field);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let max = values.iter().copied().fold(0.0, f64::max);
        println!("{label:<22} {mean:>10.1} {max:>10.1}");
    }
    let failures: u64 = before.iter().zip(&after).map(|(b, a)| a.udp_send_failures - b.udp_send_failures).sum();
    println!(
        "UDP send failures: {failures}; highest local-health multiplier: {max_health}; \
         member views not alive while sampling every {} ms: {n_not_alive}",
        SAMPLE_EVERY.as_millis()
    );
}

/// Kills the last member and times how long the others take to suspect it and to list it as failed.
async fn time_failure_detection(instances: &[Instance]) -> Result<()> {
    let (victim, others) = instances.split_last().context("no members")?;
    let name = victim.gossip.node_name().to_owned();
    victim.stop.cancel();
    let killed = Instant::now();
    let mut first_doubt = None;
    let mut first_failed = None;
    loop {
        let statuses: Vec<Option<MemberStatus>> = others.iter().map(|instance| status(instance, &name)).collect();
        if first_doubt.is_none() && statuses.iter().any(|status| *status != Some(MemberStatus::Alive)) {
            first_doubt = Some(killed.elapsed());
        }
        if first_failed.is_none() && statuses.contains(&Some(MemberStatus::Failed)) {
            first_failed = Some(killed.elapsed());
        }
        if statuses.iter().all(|status| *status == Some(MemberStatus::Failed)) {
            break;
        }
        ensure!(killed.elapsed() < PATIENCE, "{name} was not failed everywhere within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let everywhere = killed.elapsed();
    let secs = |at: Option<Duration>| at.unwrap_or(everywhere).as_secs_f64();
    println!(
        "\nkilled {name}: first suspected after {:.2} s, first failed after {:.2} s, failed at all {} others after {:.2} s",
        secs(first_doubt),
        secs(first_failed),
        others.len(),
        everywhere.as_secs_f64()
    );
    Ok(())
}

fn status(instance: &Instance, name: &str) -> Option<MemberStatus> {
    instance.gossip.members().into_iter().find(|member| member.name == name).map(|member| member.status)
}

fn count_alive(instance: &Instance) -> usize {
    instance.gossip.members().iter().filter(|member| member.status == MemberStatus::Alive).count()
}

/// Reads one counter out of the stats.
type Counter = fn(&GossipStats) -> u64;

/// Polls until `done` holds for every instance; returns how long it took.
async fn wait_until(instances: &[Instance], done: impl Fn(&Instance) -> bool) -> Result<Duration> {
    let started = Instant::now();
    while !instances.iter().all(&done) {
        ensure!(started.elapsed() < PATIENCE, "no convergence within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}
