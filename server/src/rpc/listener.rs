//! The serving side: accept connections, read request frames, run each request, write its response.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::frame::{FRAME_STALL_TIMEOUT, read_frame, write_frame};

/// At most this many peer connections are served at once; further accepts wait for a slot.
const MAX_CONNECTIONS: usize = 512;

/// Responses queued for one connection's writer.
const RESPONSE_QUEUE: usize = 256;

/// Turns one request body into one response body.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles one request. Requests on one connection run concurrently.
    fn handle(&self, body: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send;
}

/// Serves `listener` until `shutdown` is cancelled; every connection task ends with it.
pub(crate) async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, shutdown: CancellationToken) {
    serve_with_stall(listener, handler, shutdown, FRAME_STALL_TIMEOUT).await;
}

/// `serve`, dropping a connection whose frame stalls for `stall` (tests shorten it).
async fn serve_with_stall<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: CancellationToken,
    stall: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit,
        };
        // The semaphore is never closed, so this only fails if that invariant breaks.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set does not grow with churn.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    tracing::trace!(%remote, "rpc connection accepted");
                    serve_connection(stream, handler, shutdown, stall).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Usually EMFILE or a reset during the handshake: pause briefly rather than spin.
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    connections.shutdown().await;
}

/// Serves one connection. A TLS server handshake would wrap `stream` before this is called.
async fn serve_connection<S, H>(stream: S, handler: Arc<H>, shutdown: CancellationToken, stall: Duration)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: Handler,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (responses, mut responses_rx) = mpsc::channel::<(u64, Vec<u8>)>(RESPONSE_QUEUE);
    let writer_task = async move {
        while let Some((id, body)) = responses_rx.recv().await {
            write_frame(&mut writer, id, &body).await?;
            // Flush only when no other response is ready, so bursts share a syscall.
            if responses_rx.is_empty() {
                writer.flush().await?;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    // Requests in flight; dropped (aborted) with the connection.
    let mut requests = JoinSet::new();
    let reader_task = async {
        loop {
            let frame = tokio::select! {
                _ = shutdown.cancelled() => break,
                frame = read_frame(&mut reader, stall) => frame,
            };
            let (id, body) = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "rpc connection closed on a bad frame");
                    break;
                }
            };
            while requests.try_join_next().is_some() {}
            let handler = handler.clone();
            let responses = responses.clone();
            requests.spawn(async move {
                let response = handler.handle(body).await;
                let _ = responses.send((id, response)).await;
            });
        }
    };
    tokio::select! {
        _ = reader_task => {}
        res = writer_task => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "rpc connection write failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
