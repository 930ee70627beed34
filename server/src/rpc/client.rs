//! The calling side: one lazily dialled, multiplexed connection per peer, redialled after an error.
//!
//! A connection with no call in flight for `IDLE_CLOSE` is closed by this side, well before the server's idle
//! timeout (5 minutes by default), so a call never races the server closing an idle connection under it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::frame::{BODY_CHUNK, Decoder, FRAME_STALL_TIMEOUT, HEADER_LEN, MAX_FRAME_LEN, read_frame, write_batch};
use super::tls::{Dialed, Dialer};

/// How long dialling a peer may take before the call fails as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Requests queued for a connection's writer; callers wait (backpressure) when it is full.
const OUTBOUND_QUEUE: usize = 256;

/// How long a connection with nothing in flight stays open: Consul's pool reaps idle connections after 2 minutes too.
const IDLE_CLOSE: Duration = Duration::from_secs(120);

/// Why a call failed. The variants map onto openraft's Unreachable / Timeout / Network errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RpcError {
    /// The peer could not be dialled: back off before retrying.
    #[error("cannot connect to {addr}: {source}")]
    Unreachable {
        /// The peer.
        addr: SocketAddr,
        /// The dial error.
        source: io::Error,
    },
    /// No response within the deadline; the request may or may not have been handled.
    #[error("no response from {addr} within {timeout:?}")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The connection broke while the request was in flight; it may or may not have been handled.
    #[error("connection to {addr} closed")]
    Closed {
        /// The peer.
        addr: SocketAddr,
    },
}

/// A handle on one remote server's RPC endpoint. Cheap to share; calls may run concurrently.
pub(crate) struct Peer {
    /// Where the peer listens.
    addr: SocketAddr,
    /// Plaintext or TLS.
    dialer: Arc<Dialer>,
    /// The live connection, if any; replaced on the next call after it breaks.
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// Set by `close`: no connection is made or used from then on.
    retired: std::sync::atomic::AtomicBool,
    /// The `closed` token of the connection last made, which `close` cancels without waiting for `conn`'s lock.
    current: Mutex<Option<CancellationToken>>,
}

/// Responses awaited on one connection, by request id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// One established connection: a writer task and a reader task, cancelled when this is dropped.
struct Conn {
    /// Queue of frames for the writer task.
    outbound: mpsc::Sender<(u64, Vec<u8>)>,
    /// Callers waiting for a response.
    pending: Pending,
    /// Source of request ids.
    next_id: AtomicU64,
    /// Cancelled by either task when the stream fails, so the next call redials.
    closed: CancellationToken,
    /// Stops both tasks when the last handle on this connection goes away.
    _tasks: DropGuard,
}

impl Peer {
    /// A peer at `addr`, dialled through `dialer`; nothing is dialled until the first call.
    pub(crate) fn new(addr: SocketAddr, dialer: Arc<Dialer>) -> Peer {
        Peer {
            addr,
            dialer,
            conn: tokio::sync::Mutex::new(None),
            retired: std::sync::atomic::AtomicBool::new(false),
            current: Mutex::default(),
        }
    }

    /// The peer's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the open connection, if any, as if it had broken: every call waiting on it fails at once (`Closed`), and
    /// a call still dialling or about to fails as `Unreachable` (nothing was sent). For a peer its user has given up
    /// on: a server that stopped answering closes nothing, so without this its calls would each wait for their own
    /// deadline.
    pub(crate) fn close(&self) {
        self.retired.store(true, Ordering::SeqCst);
        if let Some(closed) = self.current.lock().unwrap_or_else(PoisonError::into_inner).take() {
            closed.cancel();
        }
    }

    /// Sends `body` and waits up to `timeout` for the response body.
    pub(crate) async fn call(&self, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, RpcError> {
        let (mut tx, rx) = oneshot::channel();
        // A connection closed for idleness between `connection` and `register` is dialled again.
        let (conn, id) = loop {
            let conn = self.connection().await?;
            let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
            match conn.register(id, tx) {
                Ok(()) => break (conn, id),
                Err(back) => tx = back,
            }
        };
        // On success the reader already removed the entry; on failure, or when the caller drops this
        // future (a client gave up on a blocking query), nobody else will.
        let _forget = Forget { pending: &conn.pending, id };
        let exchange = async {
            conn.outbound.send((id, body)).await.map_err(|_| RpcError::Closed { addr: self.addr })?;
            // A request queued just as the connection broke would otherwise wait for its deadline.
            tokio::select! {
                biased;
                res = rx => res.map_err(|_| RpcError::Closed { addr: self.addr }),
                _ = conn.closed.cancelled() => Err(RpcError::Closed { addr: self.addr }),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(res) => res,
            Err(_) => Err(RpcError::Timeout { addr: self.addr, timeout }),
        }
    }

    /// The current connection, dialling a new one if there is none or the last one broke.
    async fn connection(&self) -> Result<Arc<Conn>, RpcError> {
        let retired = || RpcError::Unreachable { addr: self.addr, source: io::Error::other("the server was dropped") };
        let mut slot = self.conn.lock().await;
        if self.retired.load(Ordering::SeqCst) {
            return Err(retired());
        }
        if let Some(conn) = slot.as_ref().filter(|c| !c.closed.is_cancelled()) {
            return Ok(conn.clone());
        }
        let stream = self.dial().await?;
        let conn = Arc::new(match stream {
            Dialed::Plain(stream) => Conn::spawn(stream),
            Dialed::Tls(stream) => Conn::spawn(*stream),
        });
        // Published before `retired` is read again, as `close` sets `retired` before it takes this: one of the two
        // sees the other, so a `close` that came while this dialled never leaves the new connection open.
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.closed.clone());
        if self.retired.load(Ordering::SeqCst) {
            conn.closed.cancel();
            return Err(retired());
        }
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Opens the byte stream to the peer, running the TLS handshake when the dialer asks for it.
    async fn dial(&self) -> Result<Dialed, RpcError> {
        let unreachable = |source| RpcError::Unreachable { addr: self.addr, source };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, self.dialer.connect(self.addr))
            .await
            .map_err(|_| unreachable(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(unreachable)?;
        // Raft messages are small and latency-bound: do not let Nagle hold them back.
        stream.set_nodelay(true).map_err(unreachable)?;
        let handshake = self.dialer.wrap(stream);
        tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| unreachable(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")))?
            .map_err(unreachable)
    }
}

/// Removes a call's response slot when the call ends, however it ends.
struct Forget<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl Conn {
    /// Records a call's response slot, unless the connection closed (then the sender comes back).
    /// Under the lock the reader takes to close an idle connection, so no call is lost to that close.
    fn register(&self, id: u64, tx: oneshot::Sender<Vec<u8>>) -> Result<(), oneshot::Sender<Vec<u8>>> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.is_cancelled() {
            return Err(tx);
        }
        pending.insert(id, tx);
        Ok(())
    }

    /// Starts the reader and writer tasks for an established stream.
    fn spawn<S>(stream: S) -> Conn
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let pending: Pending = Arc::default();
        let tasks = CancellationToken::new();
        let closed = tasks.child_token();
        tokio::spawn(write_loop(writer, outbound_rx, closed.clone()));
        tokio::spawn(read_loop(reader, pending.clone(), closed.clone()));
        Conn { outbound, pending, next_id: AtomicU64::new(1), closed, _tasks: tasks.drop_guard() }
    }
}

/// Writes queued requests until the queue closes, the stream fails, or the connection is dropped.
async fn write_loop<W>(mut writer: W, mut outbound: mpsc::Receiver<(u64, Vec<u8>)>, closed: CancellationToken)
where
    W: AsyncWrite + Unpin,
{
    loop {
        let next = tokio::select! {
            _ = closed.cancelled() => break,
            next = outbound.recv() => next,
        };
        let Some(first) = next else { break };
        if let Err(e) = write_batch(&mut writer, first, &mut outbound).await {
            tracing::debug!(error = %e, "rpc write failed; dropping connection");
            break;
        }
    }
    closed.cancel();
}

/// Routes responses to their callers; on any error fails every pending call by dropping its sender.
/// Closes the connection when nothing was in flight for `IDLE_CLOSE`.
async fn read_loop<R>(reader: R, pending: Pending, closed: CancellationToken)
where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::with_capacity(BODY_CHUNK, reader);
    // Responses come from the server this side chose to dial (and, with TLS, verified): any size a frame may have.
    let mut decoder = Decoder::new(|_| MAX_FRAME_LEN - HEADER_LEN);
    loop {
        tokio::select! {
            _ = closed.cancelled() => break,
            ready = reader.fill_buf() => if ready.is_err() { break },
            () = tokio::time::sleep(IDLE_CLOSE) => {
                let pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
                if pending.is_empty() {
                    closed.cancel();
                    break;
                }
                continue;
            }
        }
        let frame = tokio::select! {
            _ = closed.cancelled() => break,
            frame = read_frame(&mut reader, &mut decoder, FRAME_STALL_TIMEOUT) => frame,
        };
        match frame {
            Ok(Some((id, body))) => {
                let waiter = pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                // A missing waiter timed out already; its late response is dropped.
                if let Some(waiter) = waiter {
                    let _ = waiter.send(body);
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "rpc read failed; dropping connection");
                break;
            }
        }
    }
    closed.cancel();
    pending.lock().unwrap_or_else(PoisonError::into_inner).clear();
}
