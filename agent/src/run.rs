//! The agent's lifecycle, top to bottom: bind every listener, start the Raft server, register this node, serve HTTP, reload the configuration on SIGHUP, then drain on SIGINT/SIGTERM.
//!
//! The config arrives validated (`config::load` reports every error before this runs), so anything that fails here is about the machine: a port in use, a data dir that cannot be written.
//! Listeners are bound before anything starts, so a port clash stops the agent before it has touched its data dir.
//!
//! Shutdown order: stop accepting HTTP and cancel the drain token (parked blocking queries answer at once) → let other in-flight requests finish (bounded by `DRAIN_GRACE`) → shut the Raft server down (flushes the log) → exit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use anyhow::Context;
use roster_kv::{CheckStatus, Command, CommandResult, Registration, Service};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::acl::Acl;
use crate::backend::Backend;
use crate::checks::Runner;
use crate::cli::AgentArgs;
use crate::cluster;
use crate::config::{Config, ProcessEnv};
use crate::dns_view::ServerView;
use crate::gossip::{Encryption, Gossip, GossipConfig, Keyring, MemberMeta, Role};
use crate::http::{self, AgentInfo, Api};
use crate::local::{Local, LocalError};
use crate::reload::Reloader;

/// How long in-flight requests may run after a shutdown signal before they are cut.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long a fresh server may take to elect itself before start-up fails.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// SIGHUP, listened for from the moment the process knows it runs an agent: its default action terminates the
/// process, and an operator's reload must never do that, even while the agent is starting or shutting down
/// (tokio keeps its handler installed for the life of the process). A SIGHUP that arrives during start-up is kept
/// and acted on once the agent serves.
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Starts listening; must run inside the runtime.
    pub fn listen() -> Hangup {
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Hangup { signal: Some(signal) },
                Err(err) => {
                    // Logging is not set up yet; this is the only way to say it.
                    eprintln!("roster: cannot listen for SIGHUP ({err}); reload through `roster reload` instead");
                    Hangup { signal: None }
                }
            }
        }
        #[cfg(not(unix))]
        Hangup {}
    }
}

/// Runs the agent until a shutdown signal, `/v1/agent/leave`, or a fatal join failure. `args` are the flags
/// `config` was loaded from, read again with the config files and the environment on every reload.
pub async fn run_agent(config: Config, args: AgentArgs, hangup: Hangup) -> anyhow::Result<()> {
    // First, so that everything the agent starts records into it.
    let metrics = roster_metrics::Metrics::install(&config.telemetry)?;
    // Removed again when this returns, however it returns.
    let _pid_file = match &config.logging.pid_file {
        Some(path) => Some(
            crate::init_system::PidFile::create(path)
                .with_context(|| format!("writing the pid file {}", path.display()))?,
        ),
        None => None,
    };
    let notifier = crate::init_system::Notifier::from_env();
    let https_tls = match config.https_addrs().is_empty() {
        true => None,
        // The files were checked when the config loaded; they are read again here for the listener itself.
        false => Some(Arc::new(roster_tls::Tls::load(config.tls.https.clone()).context("loading tls.https")?)),
    };
    let rpc_tls = crate::rpc_tls::rpc_tls(&config)?;
    let http_listeners = bind_all(&config.http_addrs(), "HTTP").await?;
    let https_listeners = bind_all(&config.https_addrs(), "HTTPS").await?;
    let dns_sockets = bind_dns(&config.dns_addrs())?;
    let advertise_ip = advertise_ip(&config);
    let rpc_listener = if config.server {
        let rpc_addr = config.rpc_addr().unwrap_or(SocketAddr::new(config.bind_addr, 0));
        Some(TcpListener::bind(rpc_addr).await.with_context(|| format!("binding server RPC on {rpc_addr}"))?)
    } else {
        None
    };
    let rpc_local = rpc_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    let rpc_advertise = rpc_local.map(|local| SocketAddr::new(advertise_ip, local.port()));

    // Before anything reads or writes the data dir: a newer or foreign layout must not be touched.
    if let Some(dir) = config.data_dir.as_deref().filter(|_| !config.dev) {
        crate::data_dir::prepare(dir)?;
    }
    let node_id = node_id(&config)?;
    let raft_id = cluster::raft_id(&node_id);
    let shutdown = CancellationToken::new();
    tokio::spawn(metrics.clone().run(shutdown.child_token()));
    let gossip = start_gossip(&config, advertise_ip, &node_id, raft_id, rpc_advertise, &shutdown).await?;
    let acl_data_dir = if config.dev { None } else { config.data_dir.as_deref() };
    let acl = Arc::new(Acl::new(&config.acl, &config.datacenter, &config.node_name, acl_data_dir));

    let backend = match (rpc_listener, rpc_advertise) {
        (Some(rpc_listener), Some(rpc_advertise)) => {
            let server_config = roster_server::Config {
                node_id: raft_id,
                data_dir: if config.dev { None } else { config.data_dir.clone() },
                rpc_listener,
                rpc_advertise,
                bootstrap: config.bootstrap,
                acl: acl.server_settings(),
                tls: rpc_tls.as_ref().map(|(rpc, _)| rpc.clone()),
                limits: crate::rpc_tls::rpc_limits(&config),
                raft_multiplier: config.raft_multiplier,
            };
            let server = roster_server::Server::start(server_config, shutdown.child_token())
                .await
                .context("starting the Raft server")?;
            if config.bootstrap {
                server.wait_for_leader(LEADER_TIMEOUT).await.context("waiting for this server to become leader")?;
            }
            cluster::tombstone_gc::spawn(server.clone(), shutdown.child_token());
            if acl.enabled() {
                crate::acl::spawn_leader_duties(acl.clone(), server.clone(), shutdown.child_token());
            }
            if let Some(gossip) = &gossip {
                gossip.probe_on_hints(server.closed_connections());
                let duties = cluster::LeaderDuties {
                    gossip: gossip.clone(),
                    server: server.clone(),
                    datacenter: config.datacenter.clone(),
                    token: shutdown.child_token(),
                    autopilot: config.autopilot.clone(),
                };
                duties.spawn();
                if let Some(expect) = config.bootstrap_expect.filter(|n| *n > 1) {
                    let probe = remote(&rpc_tls, config.bind_addr, &shutdown)?;
                    let (gossip, server, dc) = (gossip.clone(), server.clone(), config.datacenter.clone());
                    cluster::spawn_bootstrap(gossip, server, probe, expect, dc, shutdown.child_token());
                }
            }
            Backend::Local(server)
        }
        _ => {
            let remote = remote(&rpc_tls, config.bind_addr, &shutdown)?;
            remote.set_token(&acl.agent_secret());
            if let Some(gossip) = &gossip {
                let dc = config.datacenter.clone();
                cluster::spawn_server_tracker(gossip.clone(), remote.clone(), dc, shutdown.child_token());
            }
            Backend::Remote(remote)
        }
    };
    let retry_joined = match &gossip {
        Some(gossip) => join_at_start(gossip, &config, &shutdown).await?,
        None => None,
    };

    let info = AgentInfo {
        node_name: config.node_name.clone(),
        node_id,
        datacenter: config.datacenter.clone(),
        advertise_addr: advertise_ip,
        serf_port: gossip.as_ref().map_or(config.ports.serf_lan.unwrap_or(8301), |g| g.local_addr().port()),
        rpc_port: rpc_advertise.map_or(0, |a| a.port()),
        server: config.server,
        enable_script_checks: config.enable_script_checks,
        domain: config.domain.clone(),
    };
    if let Backend::Local(server) = &backend
        && config.bootstrap
    {
        // A bootstrapped server is usable the moment it is ready: register it now rather than at the
        // leader's first reconcile, so the catalog is complete when the readiness line goes out.
        until_leader_settles(server, || register_self(server, &info, &config)).await?;
    }
    let data_dir = if config.dev { None } else { config.data_dir.as_deref() };
    let mut node = http::agent_node(&info);
    node.meta.extend(config.node_meta.clone());
    let local = Arc::new(Local::load(backend.clone(), node, data_dir)?);
    if let Backend::Local(server) = &backend
        && config.bootstrap
    {
        until_leader_settles(server, || async { Ok(local.sync_full().await?) })
            .await
            .context("pushing this agent's services and checks to the catalog")?;
    }
    local.set_config_acl(&acl);
    let definitions = crate::reload::config_definitions(&config)?;
    local.apply_config(definitions).await.context("registering the services and checks of the config files")?;
    {
        let (local, gossip, token) = (local.clone(), gossip.clone(), shutdown.child_token());
        let cluster_size = move || gossip.as_ref().map_or(1, |g| g.members().len());
        tokio::spawn(async move { local.run_anti_entropy(cluster_size, token).await });
    }
    if let Some(gossip) = &gossip {
        let (node, settings) = (config.node_name.clone(), config.coordinate_sync.clone());
        tokio::spawn(crate::coordinate_sync::run(
            backend.clone(),
            gossip.clone(),
            node,
            settings,
            shutdown.child_token(),
        ));
    }
    let runner = Runner::spawn(
        local.clone(),
        backend.clone(),
        config.enable_script_checks || config.enable_local_script_checks,
        docker_exec().await,
        config.check_update_interval,
        shutdown.child_token(),
    );
    runner.sync().await;

    let http_max_conns_per_client = Arc::new(AtomicU32::new(config.limits.http_max_conns_per_client));
    let reloadable = [("HTTPS", https_tls.clone()), ("RPC", rpc_tls.as_ref().map(|(_, tls)| tls.clone()))];
    let reloadable: Vec<_> = reloadable.into_iter().filter_map(|(name, tls)| Some((name, tls?))).collect();
    let dns_addrs = dns_sockets.addrs.clone();
    let dns = (!dns_addrs.is_empty()).then(|| {
        let view = Arc::new(ServerView::new(backend.clone(), acl.clone(), &config.dns).with_node(&config.node_name));
        (roster_dns::SharedConfig::new(dns_config(&config)), view)
    });
    let parts = crate::reload::Parts {
        local: local.clone(),
        runner: runner.clone(),
        tls: reloadable.clone(),
        http_max_conns_per_client: http_max_conns_per_client.clone(),
        dns: dns.clone(),
        notifier: notifier.clone(),
    };
    let reloader = Arc::new(Reloader::new(args, Box::new(ProcessEnv), config.clone(), parts));

    let http_token = shutdown.child_token();
    let stop = CancellationToken::new();
    let jobs_config = crate::jobs::JobsConfig {
        node: config.node_name.clone(),
        advertise: advertise_ip,
        data_dir: data_dir.map(Path::to_path_buf),
        dns: crate::jobs::container_dns(&dns_sockets.addrs, &config.domain),
        exec_bridge: config.exec_bridge.clone(),
        enable_script_checks: config.enable_script_checks,
        host_access: config.host_access.clone(),
    };
    let jobs = crate::jobs::JobManager::start(jobs_config, local.clone(), runner.clone(), shutdown.child_token()).await;
    tokio::spawn(crate::jobs::alloc::run(
        jobs.clone(),
        backend.clone(),
        local.clone(),
        config.node_name.clone(),
        shutdown.child_token(),
    ));
    if config.watch_docker {
        let (node, local, runner, token) =
            (config.node_name.clone(), local.clone(), runner.clone(), shutdown.child_token());
        tokio::spawn(crate::registrator::run(node, advertise_ip, local, runner, token));
    }
    let api = Api::new(backend.clone(), info, local.clone(), runner, http_token.clone(), gossip.clone(), stop.clone())
        .with_acl(acl.clone())
        .with_reload(reloader.clone())
        .with_data_dir(acl_data_dir)
        .with_jobs(jobs)
        .with_ui(&config.ui)
        .with_metrics(metrics)
        .with_events(crate::events::EventStore::start(
            config.node_name.clone(),
            local.clone(),
            gossip.clone(),
            shutdown.child_token(),
        ));
    let mut tasks = JoinSet::new();
    let serve_options = http::ServeOptions {
        tls: None,
        max_conns_per_client: http_max_conns_per_client,
        handshake_timeout: config.limits.https_handshake_timeout,
        header_read_timeout: http::HEADER_READ_TIMEOUT,
    };
    let mut http_addrs = Vec::new();
    for listener in http_listeners {
        http_addrs.push(listener.local_addr()?);
        let (api, token, options) = (api.clone(), http_token.clone(), serve_options.clone());
        tasks.spawn(async move { http::serve(listener, api, token, options).await });
    }
    let mut https_addrs = Vec::new();
    for listener in https_listeners {
        https_addrs.push(listener.local_addr()?);
        let options = http::ServeOptions { tls: https_tls.clone(), ..serve_options.clone() };
        let (api, token) = (api.clone(), http_token.clone());
        tasks.spawn(async move { http::serve(listener, api, token, options).await });
    }
    crate::tls_reload::spawn(reloadable, shutdown.child_token());
    // Reloads stop when the drain starts: the catalog writes a reload makes would race the Raft shutdown. A later
    // SIGHUP is still caught (tokio's handler stays installed), and does nothing.
    #[cfg(unix)]
    if let Some(signal) = hangup.signal {
        reloader.clone().spawn_on_hangup(signal, http_token.clone());
    }
    if let Some((dns_config, view)) = &dns {
        for done in spawn_dns_threads(dns_config, view, dns_sockets, &http_token)? {
            tasks.spawn(async move { done.await.unwrap_or_else(|_| Err(std::io::Error::other("a DNS thread died"))) });
        }
    }
    let shown = |addr: Option<SocketAddr>| addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let (http_shown, dns_shown) = (shown(http_addrs.first().copied()), shown(dns_addrs.first().copied()));
    let https_shown = shown(https_addrs.first().copied());
    let (rpc_shown, serf_shown) = (shown(rpc_local), shown(gossip.as_ref().map(Gossip::local_addr)));
    // Tests and scripts wait for exactly this line; it comes only once every listener serves.
    println!(
        "roster: ready http={http_shown} https={https_shown} dns={dns_shown} rpc={rpc_shown} serf={serf_shown} node={}",
        config.node_name
    );
    tracing::info!(http = ?http_addrs, https = ?https_addrs, dns = ?dns_addrs, rpc = %rpc_shown, serf = %serf_shown, node = %config.node_name, "agent ready");
    // Consul tells systemd it is ready once it has joined the cluster: with -retry-join, that is the first join.
    match retry_joined {
        None => notifier.ready(),
        Some(joined) => {
            let notifier = notifier.clone();
            tokio::spawn(async move {
                if joined.await.is_ok() {
                    notifier.ready();
                }
            });
        }
    }

    let leave = tokio::select! {
        // Read at the signal, so a reload that changed them counts, as in Consul.
        signal = wait_for_signal() => match signal {
            Signal::Interrupt => !reloader.current().skip_leave_on_interrupt,
            Signal::Terminate => reloader.current().leave_on_terminate,
        },
        // `/v1/agent/leave` has already left the pool; the process only has to stop.
        () = stop.cancelled() => false,
        () = shutdown.cancelled() => false,
    };
    notifier.stopping();
    if leave && let Some(server) = backend.server() {
        crate::cluster::hand_over_leadership(server).await;
    }
    if leave && let Some(gossip) = &gossip {
        tracing::info!("leaving the cluster gracefully");
        if let Err(err) = gossip.leave().await {
            tracing::warn!("graceful leave failed: {err}");
        }
    }
    tracing::info!("shutting down: draining HTTP");
    http_token.cancel();
    if tokio::time::timeout(DRAIN_GRACE, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("HTTP drain exceeded {DRAIN_GRACE:?}; cutting remaining requests");
        tasks.abort_all();
    }
    if let Some(server) = backend.server() {
        server.shutdown().await.context("shutting the Raft server down")?;
    }
    shutdown.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// A client of the servers' RPC, over TLS when `tls.internal_rpc` asks for it.
/// The handle on the servers, connecting from `bind_addr` unless that is unspecified (Consul's RPC source address):
/// a server then sees this agent's connections come from the address it gossips on, and probes it at once when one
/// closes (`Gossip::probe_on_hints`).
fn remote(
    rpc_tls: &Option<(roster_server::RpcTls, Arc<roster_tls::Tls>)>,
    bind_addr: IpAddr,
    shutdown: &CancellationToken,
) -> anyhow::Result<roster_server::Remote> {
    let remote = match rpc_tls {
        Some((rpc, _)) => {
            roster_server::Remote::with_tls(shutdown.child_token(), rpc).context("the RPC client's TLS")?
        }
        None => roster_server::Remote::new(shutdown.child_token()),
    };
    Ok(if bind_addr.is_unspecified() { remote } else { remote.from_source(bind_addr) })
}

/// Starts LAN gossip on `bind_addr:ports.serf_lan`; `None` when it is disabled (allowed only with `-dev`).
async fn start_gossip(
    config: &Config,
    advertise_ip: IpAddr,
    node_id: &str,
    raft_id: u64,
    rpc_advertise: Option<SocketAddr>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Gossip>> {
    let Some(bind) = config.serf_lan_addr() else {
        return Ok(None);
    };
    let meta = MemberMeta {
        datacenter: config.datacenter.clone(),
        role: if config.server { Role::Server } else { Role::Client },
        rpc_addr: rpc_advertise,
        raft_id: config.server.then_some(raft_id),
        bootstrap_expect: config.server.then(|| config.bootstrap_expect.unwrap_or(u32::from(config.bootstrap))),
        build: crate::http::REVISION.to_owned(),
        protocol: 2,
        http_port: config.ports.http,
        node_id: node_id.to_owned(),
        tags: config.node_meta.clone(),
    };
    let mut gossip_config = GossipConfig::new(config.node_name.clone(), bind, meta);
    gossip_config.advertise = Some(advertise_ip);
    gossip_config.reconnect_timeout = config.reconnect_timeout;
    // The keyring file in the data dir wins over `encrypt`, which only seeds an empty one (as Consul does).
    let keyring =
        Keyring::load_or_seed(config.data_dir.as_deref(), config.encrypt.clone()).map_err(anyhow::Error::msg)?;
    gossip_config.encryption = keyring.map(|keyring| Encryption {
        keyring,
        verify_incoming: config.encrypt_verify_incoming,
        verify_outgoing: config.encrypt_verify_outgoing,
    });
    if gossip_config.encryption.is_some() {
        tracing::info!(
            verify_incoming = config.encrypt_verify_incoming,
            verify_outgoing = config.encrypt_verify_outgoing,
            "gossip: encryption enabled"
        );
    }
    let gossip = Gossip::start(gossip_config, shutdown.child_token())
        .await
        .with_context(|| format!("starting gossip on {bind}"))?;
    Ok(Some(gossip))
}

/// `-join` must succeed before the agent serves (as Consul's `start_join`); `-retry-join` runs in the
/// background every `retry_interval` until one address answers, and stops the agent after `retry_max` failed rounds.
/// With `-retry-join`, the receiver returned hears of its first successful join.
async fn join_at_start(
    gossip: &Gossip,
    config: &Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<tokio::sync::oneshot::Receiver<()>>> {
    if !config.start_join.is_empty() {
        let joined = gossip.join(&config.start_join).await.context("joining the cluster (-join)")?;
        tracing::info!(joined, "joined the cluster");
    }
    if config.retry_join.is_empty() {
        return Ok(None);
    }
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
    let (gossip, addrs, interval, max, token) =
        (gossip.clone(), config.retry_join.clone(), config.retry_interval, config.retry_max, shutdown.clone());
    tokio::spawn(async move {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match gossip.join(&addrs).await {
                Ok(joined) => {
                    tracing::info!(joined, attempt, "joined the cluster (-retry-join)");
                    let _ = joined_tx.send(());
                    return;
                }
                Err(err) if max != 0 && attempt >= max => {
                    tracing::error!("giving up -retry-join after {attempt} attempts: {err}");
                    token.cancel();
                    return;
                }
                Err(err) => tracing::warn!("-retry-join attempt {attempt} failed, retrying in {interval:?}: {err}"),
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
    Ok(Some(joined_rx))
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

/// How many port numbers `ports.dns = 0` tries before giving up on finding one free for both UDP and TCP.
const DNS_PORT_ATTEMPTS: usize = 64;

fn bind_dns(addrs: &[SocketAddr]) -> anyhow::Result<DnsSockets> {
    let n_threads = dns_threads();
    let mut sockets =
        DnsSockets { udp: (0..n_threads).map(|_| Vec::new()).collect(), tcp: Vec::new(), addrs: Vec::new() };
    for addr in addrs {
        let (udp, tcp) = bind_dns_addr(*addr, n_threads, std::iter::repeat(0))?;
        for (thread_sockets, socket) in sockets.udp.iter_mut().zip(udp) {
            thread_sockets.push(socket);
        }
        sockets.addrs.push(tcp.local_addr()?);
        sockets.tcp.push(tcp);
    }
    Ok(sockets)
}

/// Binds `n_threads` UDP sockets and one TCP listener on one port of `addr`.
///
/// A fixed port either binds or fails naming the protocol. For port 0 the OS picks a number free for UDP, but the
/// same number may be taken for TCP by someone else, so each attempt binds UDP on the next of `candidates` (0: the
/// OS chooses) and then TCP on that number, and an address in use on either side releases everything and tries the
/// next, up to [`DNS_PORT_ATTEMPTS`]. UDP goes first because an OS-chosen UDP port has no other socket on it, so no
/// foreign `SO_REUSEPORT` socket can end up sharing our UDP traffic. `candidates` is `repeat(0)` outside tests,
/// which inject a first number they know to be taken.
fn bind_dns_addr(
    addr: SocketAddr,
    n_threads: usize,
    candidates: impl IntoIterator<Item = u16>,
) -> anyhow::Result<(Vec<std::net::UdpSocket>, std::net::TcpListener)> {
    if addr.port() != 0 {
        return bind_dns_pair(addr, n_threads)
            .map_err(|(protocol, err)| anyhow::Error::new(err).context(format!("binding DNS ({protocol}) on {addr}")));
    }
    for candidate in candidates.into_iter().take(DNS_PORT_ATTEMPTS) {
        match bind_dns_pair(SocketAddr::new(addr.ip(), candidate), n_threads) {
            Ok(pair) => return Ok(pair),
            Err((protocol, err)) if err.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::debug!(port = candidate, protocol, "DNS port taken for one protocol; trying another");
            }
            Err((protocol, err)) => {
                return Err(anyhow::Error::new(err).context(format!("binding DNS ({protocol}) on {addr}")));
            }
        }
    }
    anyhow::bail!(
        "binding DNS on {addr}: no port found free for both UDP and TCP in {DNS_PORT_ATTEMPTS} attempts; \
         set ports.dns to a free port"
    )
}

/// One attempt at `addr`: the UDP sockets (the first fixes the port when it is 0), then TCP on the same number.
/// On failure, names the protocol that failed; everything bound so far is dropped, so released.
fn bind_dns_pair(
    addr: SocketAddr,
    n_threads: usize,
) -> Result<(Vec<std::net::UdpSocket>, std::net::TcpListener), (&'static str, std::io::Error)> {
    let mut chosen = addr;
    let mut udp = Vec::with_capacity(n_threads);
    for _ in 0..n_threads.max(1) {
        let socket = reuseport_udp(chosen).map_err(|err| ("UDP", err))?;
        chosen = socket.local_addr().map_err(|err| ("UDP", err))?;
        udp.push(socket);
    }
    let tcp = std::net::TcpListener::bind(chosen).map_err(|err| ("TCP", err))?;
    tcp.set_nonblocking(true).map_err(|err| ("TCP", err))?;
    Ok((udp, tcp))
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
/// A cache hit is received, answered and sent in batches (`recvmmsg`/`sendmmsg`) on the DNS crate's own receiving threads, with no task per query; a miss becomes a task on this thread's runtime. `SO_REUSEPORT` lets several such threads share the port.
/// The sockets move over as std sockets, since a tokio socket belongs to the runtime that made it.
fn spawn_dns_threads(
    config: &roster_dns::SharedConfig,
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
pub(crate) fn dns_config(config: &Config) -> roster_dns::Config {
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
        recursor_timeout: config.dns.settings.recursor_timeout,
        recursor_strategy: config.dns.settings.recursor_strategy,
        a_record_limit: config.dns.settings.a_record_limit,
        node_meta_txt: config.dns.settings.node_meta_txt,
        disable_compression: config.dns.settings.disable_compression,
        soa: config.dns.settings.soa,
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

/// The address other nodes should use: the advertise address, else the bind address; an unspecified bind
/// advertises the source address of the default route (the host's LAN address, a container's network address),
/// and loopback only when there is no route at all.
fn advertise_ip(config: &Config) -> IpAddr {
    match config.advertise_addr {
        Some(ip) => ip,
        None if !config.bind_addr.is_unspecified() => config.bind_addr,
        None => cluster::default_route_ip().unwrap_or_else(|| {
            tracing::warn!(
                "-bind is 0.0.0.0, no -advertise was given and there is no default route; advertising 127.0.0.1"
            );
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
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

/// Runs a bootstrapped server's start-up write, again while the error is "no leader", for up to `LEADER_TIMEOUT`.
///
/// `wait_for_leader` has seen a leader, but on a starved machine (CI running many agents at once) a lone
/// server's leadership can lapse and be re-won between that wait and the write; the agent must not exit for it.
async fn until_leader_settles<F, Fut>(server: &roster_server::Server, mut write: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let deadline = tokio::time::Instant::now() + LEADER_TIMEOUT;
    loop {
        let err = match write().await {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        let leaderless = |e: &roster_server::Error| {
            matches!(e, roster_server::Error::NoLeader | roster_server::Error::NotLeader { leader: None })
        };
        let no_leader = err.chain().any(|cause| {
            cause.downcast_ref::<roster_server::Error>().is_some_and(leaderless)
                || matches!(cause.downcast_ref::<LocalError>(), Some(LocalError::Server(e)) if leaderless(e))
        });
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !no_leader || left.is_zero() {
            return Err(err);
        }
        tracing::info!("start-up write found no leader ({err:#}); waiting for one");
        server.wait_for_leader(left).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let serf = cluster::serf_check(&info.node_name, CheckStatus::Passing, "Agent alive and reachable");
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

/// Which signal asked the agent to stop: Consul leaves the cluster on one and not the other, by config.
enum Signal {
    Interrupt,
    Terminate,
}

async fn wait_for_signal() -> Signal {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM ({err}); only SIGINT stops the agent");
                let _ = ctrl_c.await;
                return Signal::Interrupt;
            }
        };
        tokio::select! {
            _ = ctrl_c => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        Signal::Interrupt
    }
}

#[cfg(test)]
mod tests;
