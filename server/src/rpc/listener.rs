//! The serving side: accept connections within the limits, run the TLS handshake, read request frames,
//! run each request, write its response.
//!
//! Every limit refuses rather than queues: past `max_conns` or `max_conns_per_client` a new connection is closed at
//! once; a frame over its type's size limit closes its connection before the body is read; past
//! `max_in_flight_per_conn` a request is answered with an error and the connection goes on.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::frame::{BODY_CHUNK, Decoder, read_frame, write_batch};
use super::tls::{self, Accepted, Counters, LogOnce, PeerClass, PeerInfo};
use crate::config::{RpcLimits, RpcTls};

/// Responses queued for one connection's writer.
const RESPONSE_QUEUE: usize = 256;

/// Turns one request body into one response body.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The largest body `peer` may send in a frame whose body starts with `tag`; checked before the body is read.
    fn body_limit(&self, peer: &PeerInfo, tag: u8) -> usize;
    /// The response sent, without running the request, when its connection has too many requests in flight.
    fn overloaded(&self, limit: usize) -> Vec<u8>;
    /// Handles one request from `peer`. Requests on one connection run concurrently.
    fn handle(&self, peer: PeerInfo, body: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send;
}

/// How a listener serves: TLS, limits, and where it counts refusals.
pub(crate) struct Settings {
    pub(crate) tls: Option<RpcTls>,
    pub(crate) limits: RpcLimits,
    pub(crate) counters: Arc<Counters>,
    /// Where the source IP of each connection its peer closed goes (see `Server::closed_connections`).
    pub(crate) closed: broadcast::Sender<IpAddr>,
}

/// Shared by the accept loop and the connection tasks.
struct Shared<H> {
    handler: Arc<H>,
    settings: Settings,
    logged: LogOnce,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// Serves `listener` until `shutdown` is cancelled; every connection task ends with it.
pub(crate) async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(settings.limits.max_conns));
    let shared = Arc::new(Shared { handler, settings, logged: LogOnce::default(), per_client: Mutex::default() });
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set does not grow with churn.
        while connections.try_join_next().is_some() {}
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually EMFILE or a reset during the handshake: pause briefly rather than spin.
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let counters = &shared.settings.counters;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            Counters::bump(&counters.refused_over_max);
            shared.refuse(
                remote,
                "connection limit",
                &format!("{} connections open", shared.settings.limits.max_conns),
            );
            continue;
        };
        let Some(client_slot) = ClientSlot::take(&shared, remote.ip()) else {
            Counters::bump(&counters.refused_per_client);
            let why = format!(
                "{} connections from this address (rpc_max_conns_per_client)",
                shared.settings.limits.max_conns_per_client
            );
            shared.refuse(remote, "per-client connection limit", &why);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tracing::trace!(%remote, "rpc connection accepted");
            shared.serve_stream(stream, remote, shutdown).await;
            drop(client_slot);
            drop(permit);
        });
    }
    connections.shutdown().await;
}

impl<H: Handler> Shared<H> {
    /// Logs a refused peer, once per peer IP and kind of refusal.
    fn refuse(&self, remote: SocketAddr, kind: &'static str, why: &str) {
        if self.logged.first(remote.ip(), kind) {
            tracing::warn!(%remote, reason = why, "rpc connection refused ({kind}); further refusals of this peer are logged at debug");
        } else {
            tracing::debug!(%remote, reason = why, "rpc connection refused ({kind})");
        }
    }

    /// Runs the handshake TLS asks for, then serves the connection's frames.
    async fn serve_stream(self: Arc<Self>, stream: TcpStream, remote: SocketAddr, shutdown: CancellationToken) {
        let Some(tls) = &self.settings.tls else {
            return self.serve_connection(stream, PeerInfo { addr: remote, class: PeerClass::Server }, shutdown).await;
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = tls::accept(stream, tls, self.settings.limits.handshake_timeout) => accepted,
        };
        match accepted {
            Ok((Accepted::Plain(stream), class)) => {
                self.serve_connection(stream, PeerInfo { addr: remote, class }, shutdown).await;
            }
            Ok((Accepted::Tls(stream), class)) => {
                self.serve_connection(*stream, PeerInfo { addr: remote, class }, shutdown).await;
            }
            Err(refusal) => {
                Counters::bump(&self.settings.counters.refused_handshake);
                self.refuse(remote, "handshake", &refusal.to_string());
            }
        }
    }

    /// Serves one established connection until the peer closes it, a frame is refused, it idles out, or shutdown.
    async fn serve_connection<S>(self: Arc<Self>, stream: S, peer: PeerInfo, shutdown: CancellationToken)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let limits = self.settings.limits;
        let (reader, mut writer) = tokio::io::split(stream);
        let mut reader = BufReader::with_capacity(BODY_CHUNK, reader);
        let (responses, mut responses_rx) = mpsc::channel::<(u64, Vec<u8>)>(RESPONSE_QUEUE);
        let writer_task = async move {
            while let Some(first) = responses_rx.recv().await {
                write_batch(&mut writer, first, &mut responses_rx).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let handler = self.handler.clone();
        let mut decoder = Decoder::new(move |tag| handler.body_limit(&peer, tag));
        // Requests in flight; dropped (aborted) with the connection.
        let mut requests = JoinSet::new();
        // Whether the peer closed the connection (end of stream or an error reading it), rather than this side.
        let reader_task = async {
            loop {
                // Between frames: wait for the next bytes, reaping finished requests, and close the connection
                // once nothing has been in flight for the idle timeout (the timer restarts on every event).
                tokio::select! {
                    _ = shutdown.cancelled() => break false,
                    ready = reader.fill_buf() => if ready.is_err() { break true },
                    Some(_) = requests.join_next(), if !requests.is_empty() => continue,
                    () = tokio::time::sleep(limits.idle_timeout), if requests.is_empty() => {
                        Counters::bump(&self.settings.counters.closed_idle);
                        tracing::debug!(remote = %peer.addr, "rpc connection idle; closing it");
                        break false;
                    }
                }
                let frame = tokio::select! {
                    _ = shutdown.cancelled() => break false,
                    frame = read_frame(&mut reader, &mut decoder, limits.read_timeout) => frame,
                };
                let (id, body) = match frame {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break true,
                    Err(e) => {
                        if e.kind() == std::io::ErrorKind::InvalidData {
                            Counters::bump(&self.settings.counters.refused_frames);
                            self.refuse(peer.addr, "frame", &e.to_string());
                            break false;
                        }
                        tracing::debug!(remote = %peer.addr, error = %e, "rpc connection closed inside a frame");
                        break true;
                    }
                };
                while requests.try_join_next().is_some() {}
                if requests.len() >= limits.max_in_flight_per_conn {
                    Counters::bump(&self.settings.counters.refused_in_flight);
                    let refusal = self.handler.overloaded(limits.max_in_flight_per_conn);
                    if responses.send((id, refusal)).await.is_err() {
                        break false;
                    }
                    continue;
                }
                let handler = self.handler.clone();
                let responses = responses.clone();
                requests.spawn(async move {
                    let response = handler.handle(peer, body).await;
                    let _ = responses.send((id, response)).await;
                });
            }
        };
        let closed_by_peer = tokio::select! {
            closed = reader_task => closed,
            res = writer_task => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "rpc connection write failed");
                }
                false
            }
        };
        if closed_by_peer {
            // Nobody listening is fine: the hint is only worth something to an agent that wants it.
            let _ = self.settings.closed.send(peer.addr.ip());
        }
    }
}

/// One connection's place in its source IP's count; given back on drop.
struct ClientSlot<H: Handler> {
    shared: Arc<Shared<H>>,
    ip: IpAddr,
}

impl<H: Handler> ClientSlot<H> {
    /// A slot for `ip`, or `None` when it holds `max_conns_per_client` already (0: no limit).
    fn take(shared: &Arc<Shared<H>>, ip: IpAddr) -> Option<ClientSlot<H>> {
        let max = shared.settings.limits.max_conns_per_client;
        let mut counts = shared.per_client.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if max != 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot { shared: shared.clone(), ip })
    }
}

impl<H: Handler> Drop for ClientSlot<H> {
    fn drop(&mut self) {
        let mut counts = self.shared.per_client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;
