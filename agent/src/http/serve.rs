//! The HTTP(S) accept loop: per-client connection caps, a TLS handshake bound, a header-read bound, and the
//! graceful drain `run.rs` relies on.
//!
//! A connection past `limits.http_max_conns_per_client` from one IP is answered Consul's 429 and closed (after the
//! TLS handshake on HTTPS, as Go's server writes it through the TLS connection). On shutdown the loop stops
//! accepting and asks every connection to finish its request in flight and close; the drain token has already made
//! parked blocking queries answer.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// How long a client may take to send a request's headers, so a slow-header client cannot hold a connection slot
/// forever. Consul has no key for it, so it is a constant. hyper starts this clock whenever it waits for the next
/// request on a connection, so it is also how long a keep-alive connection may sit idle before it is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Consul's answer to a connection over the per-client cap.
const TOO_MANY_CONNS: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 82\r\n\
Connection: close\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n";

/// How one listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS material for HTTPS; `None` serves plain HTTP.
    pub tls: Option<Arc<roster_tls::Tls>>,
    /// Open connections one client IP may hold; 0 means no limit. Shared and read per new connection, so a config
    /// reload changes it for the connections that come next (open ones stay).
    pub max_conns_per_client: Arc<std::sync::atomic::AtomicU32>,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a request's headers may take to arrive.
    pub header_read_timeout: Duration,
}

/// Serves `router` on an already-bound listener until `shutdown` fires, then drains every connection.
pub(crate) async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> std::io::Result<()> {
    let counts = Arc::new(PerClient::default());
    let failures = Arc::new(HandshakeFailures::default());
    let connections = TaskTracker::new();
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off briefly rather than spin, as axum::serve does.
                    tracing::warn!("accepting an HTTP connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let limit = options.max_conns_per_client.load(std::sync::atomic::Ordering::Relaxed);
        let slot = PerClient::acquire(&counts, remote.ip(), limit);
        let (router, options, shutdown, failures) =
            (router.clone(), options.clone(), shutdown.clone(), failures.clone());
        connections.spawn(connection(stream, remote, slot, router, options, shutdown, failures));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One accepted connection: TLS if configured, then either the 429 refusal or HTTP/1.1 until it closes.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    slot: Option<Slot>,
    router: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
    failures: Arc<HandshakeFailures>,
) {
    let _ = stream.set_nodelay(true);
    if options.tls.is_none() {
        return http1(stream, remote, slot, router, &options, shutdown).await;
    }
    // Boxed: a TLS session and its handshake are several kilobytes of future that a plain connection's task, held
    // for as long as a watcher stays parked on it, would otherwise carry inline without using.
    Box::pin(https(stream, remote, slot, router, &options, shutdown, &failures)).await;
}

/// An HTTPS connection: the TLS handshake, bounded, then HTTP/1.1 over it.
async fn https(
    stream: TcpStream,
    remote: SocketAddr,
    slot: Option<Slot>,
    router: Router,
    options: &ServeOptions,
    shutdown: CancellationToken,
    failures: &HandshakeFailures,
) {
    let Some(config) = options.tls.as_ref().and_then(|tls| tls.server_config()) else {
        tracing::warn!("HTTPS listener has no certificate; closing the connection");
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    // A handshake still under way at shutdown has no request to finish, so it does not hold up the drain.
    let handshake = tokio::select! {
        res = tokio::time::timeout(options.handshake_timeout, acceptor.accept(stream)) => res,
        () = shutdown.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => http1(stream, remote, slot, router, options, shutdown).await,
        Ok(Err(err)) => {
            failures.report(remote, &err.to_string());
        }
        Err(_) => {
            failures.report(remote, "timed out");
        }
    }
}

/// Failed HTTPS handshakes are logged at warn once per client IP with the reason (a misconfigured client retries
/// without end), then at debug; the set is bounded and starts over when full.
#[derive(Default)]
struct HandshakeFailures {
    seen: Mutex<HashSet<IpAddr>>,
}

/// The most client IPs `HandshakeFailures` remembers.
const HANDSHAKE_FAILURES_MAX: usize = 4096;

impl HandshakeFailures {
    /// Logs one failure; true when it was the first from that IP (logged at warn).
    fn report(&self, remote: SocketAddr, reason: &str) -> bool {
        let first = {
            let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.len() >= HANDSHAKE_FAILURES_MAX {
                seen.clear();
            }
            seen.insert(remote.ip())
        };
        if first {
            tracing::warn!(%remote, "HTTPS: TLS handshake failed: {reason} (further failures from this address are logged at debug)");
        } else {
            tracing::debug!(%remote, "HTTPS: TLS handshake failed: {reason}");
        }
        first
    }
}

async fn http1<S>(
    mut io: S,
    remote: SocketAddr,
    slot: Option<Slot>,
    router: Router,
    options: &ServeOptions,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(_slot) = slot else {
        tracing::debug!(%remote, "refusing a connection over limits.http_max_conns_per_client");
        let _ = io.write_all(TOO_MANY_CONNS).await;
        let _ = io.shutdown().await;
        return;
    };
    // Handlers read the peer address through axum's `ConnectInfo`, as with `into_make_service_with_connect_info`.
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let res = tokio::select! {
        res = conn.as_mut() => res,
        () = shutdown.cancelled() => {
            // Finish the request in flight (blocking queries answer at once on drain), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = res {
        tracing::debug!(%remote, "HTTP connection ended: {err}");
    }
}

/// Open connections per client IP.
#[derive(Default)]
struct PerClient {
    counts: Mutex<HashMap<IpAddr, u32>>,
}

/// One counted connection; dropping it frees the slot.
struct Slot {
    counts: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// Counts a new connection from `ip`, or `None` when it already holds `max` (0: no limit).
    fn acquire(counts: &Arc<PerClient>, ip: IpAddr, max: u32) -> Option<Slot> {
        let mut map = counts.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let open = map.entry(ip).or_insert(0);
        if max != 0 && *open >= max {
            return None;
        }
        *open += 1;
        Some(Slot { counts: counts.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.counts.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(open) = map.get_mut(&self.ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;
