//! The entry point: builds the handler, then serves sockets the agent already
//! bound, UDP with our own receiving threads (`udp.rs`) and TCP with hickory's `Server`, until the shutdown token is
//! cancelled.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::answer::Zones;
use crate::cache::AnswerCache;
use crate::config::SharedConfig;
use crate::error::{Error, Result};
use crate::handler::DnsHandler;
use crate::udp::Receivers;
use crate::view::CatalogView;

/// A TCP connection that sends no request for this long is closed, so idle clients cannot pin connections.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses queued per TCP connection before the writer pushes back (pipelined queries).
const TCP_RESPONSE_BUFFER: usize = 32;

/// Serves DNS on already-bound sockets until `shutdown` is cancelled, then drains in-flight queries.
///
/// Returns early with [`Error::Listener`] if every listener fails, and before serving at all if
/// `domain` or `alt_domain` is unusable.
pub async fn serve(
    config: impl Into<SharedConfig>,
    view: Arc<dyn CatalogView>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    shutdown: CancellationToken,
) -> Result<()> {
    let shared = config.into();
    let config = shared.current();
    let zones = Zones { primary: apex(&config.domain)?, alt: config.alt_domain.as_deref().map(apex).transpose()? };
    let handler = DnsHandler { config: shared, zones, view, cache: Arc::new(AnswerCache::default()) };
    // One receiving thread per worker thread, so hits on one socket use every core; on a current-thread runtime
    // (the agent runs one per core, each with its own SO_REUSEPORT socket) one thread per socket.
    let runtime = tokio::runtime::Handle::current();
    let n_threads = match runtime.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => 1,
        _ => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let misses = TaskTracker::new();
    let mut receivers = Receivers::default();
    let serving_udp = !udp.is_empty();
    for socket in udp {
        // On an error, the threads already started stop when `receivers` drops.
        receivers
            .start(socket, &handler, n_threads, &misses, &runtime)
            .map_err(|error| Error::Listener(format!("starting the udp receivers: {error}")))?;
    }
    let tcp_result = serve_tcp(handler, tcp, &shutdown).await;
    // TCP may have ended on its own (every listener failed); UDP still serves until shutdown.
    if serving_udp {
        shutdown.cancelled().await;
    }
    receivers.stop().await;
    // Every miss is bounded by query_timeout or recursor_timeout, so this drain ends.
    misses.close();
    misses.wait().await;
    tcp_result
}

/// Serves TCP with hickory's server until `shutdown`, then drains it.
async fn serve_tcp(handler: DnsHandler, tcp: Vec<TcpListener>, shutdown: &CancellationToken) -> Result<()> {
    if tcp.is_empty() {
        // hickory's `block_until_done` returns at once with no listeners; keep the documented contract instead.
        shutdown.cancelled().await;
        return Ok(());
    }
    let mut server = Server::new(handler);
    for listener in tcp {
        server.register_listener(listener, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    }
    let finished = tokio::select! {
        () = shutdown.cancelled() => None,
        res = server.block_until_done() => Some(res),
    };
    let res = match finished {
        Some(res) => res,
        None => server.shutdown_gracefully().await,
    };
    res.map_err(|error| Error::Listener(error.to_string()))
}

/// The fully qualified apex name of a configured domain.
fn apex(domain: &str) -> Result<Name> {
    let trimmed = domain.trim_matches('.');
    let invalid = |reason: String| Error::Domain { domain: domain.to_owned(), reason };
    if trimmed.is_empty() {
        return Err(invalid("empty".to_owned()));
    }
    Name::from_ascii(format!("{trimmed}.")).map_err(|error| invalid(error.to_string()))
}
