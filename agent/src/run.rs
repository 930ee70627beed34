//! The agent's lifecycle, top to bottom: bind every listener, start the Raft server, register this node, serve HTTP, then drain on SIGINT/SIGTERM.
//!
//! The config arrives validated (`config::load` reports every error before this runs), so anything that fails here is about the machine: a port in use, a data dir that cannot be written.
//! Listeners are bound before anything starts, so a port clash stops the agent before it has touched its data dir.
//!
//! Shutdown order: stop accepting HTTP and cancel the drain token (parked blocking queries answer at once) → let other in-flight requests finish (bounded by `DRAIN_GRACE`) → shut the Raft server down (flushes the log) → exit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use roster_kv::{CheckStatus, Command, CommandResult, HealthCheck, Registration, Service};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checks::Runner;
use crate::config::Config;
use crate::dns_view::ServerView;
use crate::http::{self, AgentInfo, Api};
use crate::local::Local;

/// How long in-flight requests may run after a shutdown signal before they are cut.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long a fresh server may take to elect itself before start-up fails.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the agent until a shutdown signal.
pub async fn run_agent(config: Config) -> anyhow::Result<()> {
    if !config.server {
        anyhow::bail!(
            "client agents join servers through gossip, which this build does not have yet; run with -server or -dev"
        );
    }
    let http_listeners = bind_all(&config.http_addrs(), "HTTP").await?;
    let dns_sockets = bind_dns(&config.dns_addrs())?;
    let rpc_addr = config.rpc_addr().unwrap_or(SocketAddr::new(config.bind_addr, 0));
    let rpc_listener =
        TcpListener::bind(rpc_addr).await.with_context(|| format!("binding server RPC on {rpc_addr}"))?;
    let rpc_local = rpc_listener.local_addr()?;
    let advertise_ip = advertise_ip(&config);
    let rpc_advertise = SocketAddr::new(advertise_ip, rpc_local.port());

    let node_id = node_id(&config)?;
    let shutdown = CancellationToken::new();
    let server_config = roster_server::Config {
        node_id: 1,
        data_dir: if config.dev { None } else { config.data_dir.clone() },
        rpc_listener,
        rpc_advertise,
        bootstrap: config.bootstrap || config.bootstrap_expect == Some(1),
    };
    let server = roster_server::Server::start(server_config, shutdown.child_token())
        .await
        .context("starting the Raft server")?;
    server.wait_for_leader(LEADER_TIMEOUT).await.context("waiting for this server to become leader")?;

    let info = AgentInfo {
        node_name: config.node_name.clone(),
        node_id,
        datacenter: config.datacenter.clone(),
        advertise_addr: advertise_ip,
        serf_port: config.ports.serf_lan.unwrap_or(8301),
        rpc_port: rpc_advertise.port(),
        server: true,
        enable_script_checks: config.enable_script_checks,
        domain: config.domain.clone(),
    };
    register_self(&server, &info, &config).await?;
    let backend = crate::backend::Backend::Local(server.clone());
    let data_dir = if config.dev { None } else { config.data_dir.as_deref() };
    let local = Arc::new(Local::load(backend.clone(), http::agent_node(&info), data_dir)?);
    local.sync_all().await.context("pushing this agent's services and checks to the catalog")?;
    register_config_definitions(&local, &config).await?;
    let runner = Runner::spawn(
        local.clone(),
        backend.clone(),
        config.enable_script_checks || config.enable_local_script_checks,
        docker_exec().await,
        shutdown.child_token(),
    );
    runner.sync().await;

    let http_token = shutdown.child_token();
    let api = Api::new(backend.clone(), info, local.clone(), runner, http_token.clone());
    let mut tasks = JoinSet::new();
    let mut http_addrs = Vec::new();
    for listener in http_listeners {
        http_addrs.push(listener.local_addr()?);
        let (api, token) = (api.clone(), http_token.clone());
        tasks.spawn(async move { http::serve(listener, api, token).await });
    }
    let dns_addrs = dns_sockets.addrs.clone();
    if !dns_addrs.is_empty() {
        let view = Arc::new(ServerView::new(backend.clone()));
        for done in spawn_dns_threads(&dns_config(&config), &view, dns_sockets, &http_token)? {
            tasks.spawn(async move { done.await.unwrap_or_else(|_| Err(std::io::Error::other("a DNS thread died"))) });
        }
    }
    let http_shown = http_addrs.first().map_or_else(|| "off".to_owned(), SocketAddr::to_string);
    let dns_shown = dns_addrs.first().map_or_else(|| "off".to_owned(), SocketAddr::to_string);
    // Tests and scripts wait for exactly this line; it comes only once every listener serves.
    println!("roster: ready http={http_shown} dns={dns_shown} rpc={rpc_local} node={}", config.node_name);
    tracing::info!(http = ?http_addrs, dns = ?dns_addrs, rpc = %rpc_local, node = %config.node_name, "agent ready");

    wait_for_signal().await;
    tracing::info!("shutting down: draining HTTP");
    http_token.cancel();
    if tokio::time::timeout(DRAIN_GRACE, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("HTTP drain exceeded {DRAIN_GRACE:?}; cutting remaining requests");
        tasks.abort_all();
    }
    server.shutdown().await.context("shutting the Raft server down")?;
    shutdown.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// How many threads serve DNS: one per core, at most four.
fn dns_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// DNS sockets: per address, one UDP socket per DNS thread sharing the port through `SO_REUSEPORT` (the kernel spreads clients across them), and one TCP listener on the same port.
/// A port of 0 is chosen by the first UDP bind and reused for the rest, so one number serves both protocols.
struct DnsSockets {
    /// `udp[thread]`: that thread's socket for every address.
    udp: Vec<Vec<std::net::UdpSocket>>,
    tcp: Vec<std::net::TcpListener>,
    addrs: Vec<SocketAddr>,
}

fn bind_dns(addrs: &[SocketAddr]) -> anyhow::Result<DnsSockets> {
    let n_threads = dns_threads();
    let mut sockets =
        DnsSockets { udp: (0..n_threads).map(|_| Vec::new()).collect(), tcp: Vec::new(), addrs: Vec::new() };
    for addr in addrs {
        let mut chosen = *addr;
        for thread_sockets in &mut sockets.udp {
            let socket = reuseport_udp(chosen).with_context(|| format!("binding DNS (UDP) on {chosen}"))?;
            chosen = socket.local_addr()?;
            thread_sockets.push(socket);
        }
        let tcp = std::net::TcpListener::bind(chosen).with_context(|| format!("binding DNS (TCP) on {chosen}"))?;
        tcp.set_nonblocking(true)?;
        sockets.tcp.push(tcp);
        sockets.addrs.push(chosen);
    }
    Ok(sockets)
}

fn reuseport_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Serves DNS on threads of its own, each with a single-threaded runtime and its own UDP sockets.
///
/// hickory spawns a task per UDP query; on the multi-threaded runtime each query then hops between worker threads, and the wake-ups cost more than the answer (measured: about half the throughput).
/// On one thread a query is received, answered and sent without a context switch; `SO_REUSEPORT` lets several such threads share the port.
/// The sockets move over as std sockets, since a tokio socket belongs to the runtime that made it.
fn spawn_dns_threads(
    config: &roster_dns::Config,
    view: &Arc<ServerView>,
    sockets: DnsSockets,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<tokio::sync::oneshot::Receiver<std::io::Result<()>>>> {
    let mut tcp = Some(sockets.tcp);
    let mut done = Vec::new();
    for (idx, udp) in sockets.udp.into_iter().enumerate() {
        let tcp = if idx == 0 { tcp.take().unwrap_or_default() } else { Vec::new() };
        let (config, view, shutdown) = (config.clone(), view.clone(), shutdown.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name(format!("roster-dns-{idx}")).spawn(move || {
            let served = (|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    let udp = udp.into_iter().map(UdpSocket::from_std).collect::<Result<Vec<_>, _>>()?;
                    let tcp = tcp.into_iter().map(TcpListener::from_std).collect::<Result<Vec<_>, _>>()?;
                    roster_dns::serve(config, view, udp, tcp, shutdown).await.map_err(std::io::Error::other)
                })
            })();
            let _ = done_tx.send(served);
        })?;
        done.push(done_rx);
    }
    Ok(done)
}

/// The DNS server's settings from the agent config.
fn dns_config(config: &Config) -> roster_dns::Config {
    roster_dns::Config {
        domain: config.domain.clone(),
        alt_domain: config.alt_domain.clone(),
        datacenter: config.datacenter.clone(),
        node_ttl: config.dns.node_ttl,
        service_ttl: config.dns.service_ttl.clone(),
        only_passing: config.dns.only_passing,
        enable_truncate: config.dns.enable_truncate,
        udp_answer_limit: config.dns.udp_answer_limit,
        recursors: config.recursors.clone(),
        ..roster_dns::Config::default()
    }
}

async fn bind_all(addrs: &[SocketAddr], what: &str) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        out.push(TcpListener::bind(addr).await.with_context(|| format!("binding {what} on {addr}"))?);
    }
    Ok(out)
}

/// The address other nodes should use: the advertise address, else the bind address; an unspecified bind falls back to loopback (with a warning) because picking a LAN interface needs the gossip issue's interface discovery.
fn advertise_ip(config: &Config) -> IpAddr {
    match config.advertise_addr {
        Some(ip) => ip,
        None if !config.bind_addr.is_unspecified() => config.bind_addr,
        None => {
            tracing::warn!("-bind is 0.0.0.0 and no -advertise was given; advertising 127.0.0.1");
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }
}

/// The node ID: configured, else persisted in the data dir (so it survives restarts), else fresh for a `-dev` agent.
fn node_id(config: &Config) -> anyhow::Result<String> {
    if let Some(id) = config.node_id {
        return Ok(id.to_string());
    }
    let Some(dir) = config.data_dir.as_deref().filter(|_| !config.dev) else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    read_or_create_node_id(dir)
}

fn read_or_create_node_id(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("node-id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        uuid::Uuid::parse_str(id).with_context(|| format!("{} does not hold a UUID", path.display()))?;
        return Ok(id.to_owned());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = dir.join("node-id.tmp");
    std::fs::write(&tmp, &id)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// Registers this node in the catalog: the node, the `consul` service (servers) and the `serfHealth` check.
async fn register_self(server: &roster_server::Server, info: &AgentInfo, config: &Config) -> anyhow::Result<()> {
    let mut node = http::agent_node(info);
    node.meta.extend(config.node_meta.clone());
    let consul = Service {
        id: "consul".into(),
        service: "consul".into(),
        port: info.rpc_port,
        weights: roster_kv::Weights::default(),
        ..Service::default()
    };
    let serf = HealthCheck {
        node: info.node_name.clone(),
        check_id: "serfHealth".into(),
        name: "Serf Health Status".into(),
        status: CheckStatus::Passing,
        notes: String::new(),
        output: "Agent alive and reachable".into(),
        service_id: String::new(),
        service_name: String::new(),
        service_tags: Vec::new(),
        check_type: String::new(),
        interval: String::new(),
        timeout: String::new(),
        definition_json: String::new(),
        create_index: 0,
        modify_index: 0,
    };
    let reg = Registration { node, skip_node_update: false, service: Some(consul), checks: vec![serf] };
    match server.write(Command::Register(Box::new(reg))).await.context("registering this node")? {
        CommandResult::Bool(_) => Ok(()),
        CommandResult::Rejected(why) => anyhow::bail!("registering this node was rejected: {why}"),
    }
}

/// Docker exec-in-container checks go through the local Docker Engine when one answers; without one they report why they cannot run.
async fn docker_exec() -> Option<Arc<dyn roster_health::ContainerExec>> {
    let exec = roster_runtime_shim::DockerExec::connect_local().ok()?;
    match tokio::time::timeout(Duration::from_secs(2), exec.ping()).await {
        Ok(Ok(())) => Some(Arc::new(exec)),
        Ok(Err(why)) => {
            tracing::info!("no Docker Engine for docker checks: {why}");
            None
        }
        Err(_) => {
            tracing::info!("no Docker Engine for docker checks: ping timed out");
            None
        }
    }
}

/// Registers the `services` and `checks` given in config files, as Consul does at start; an invalid one stops the agent with its position and reason.
async fn register_config_definitions(local: &Local, config: &Config) -> anyhow::Result<()> {
    // Config files are written by the operator, so local script checks count here.
    let scripts = config.enable_script_checks || config.enable_local_script_checks;
    for (idx, value) in config.services.iter().enumerate() {
        let map = value.as_object().with_context(|| format!("services[{idx}] is not an object"))?;
        let (service, checks) = http::definition::service(http::input::Obj(map), scripts)
            .map_err(|why| anyhow::anyhow!("services[{idx}]: {why}"))?;
        local.add_service(service, checks, false).await.with_context(|| format!("registering services[{idx}]"))?;
    }
    for (idx, value) in config.checks.iter().enumerate() {
        let map = value.as_object().with_context(|| format!("checks[{idx}] is not an object"))?;
        let mut check = http::definition::check(http::input::Obj(map), scripts)
            .map_err(|why| anyhow::anyhow!("checks[{idx}]: {why}"))?;
        if check.check_id.is_empty() {
            check.check_id = check.name.clone();
        }
        anyhow::ensure!(!check.check_id.is_empty(), "checks[{idx}]: a check needs a Name or an ID");
        local.add_check(check).await.with_context(|| format!("registering checks[{idx}]"))?;
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM ({err}); only SIGINT stops the agent");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
