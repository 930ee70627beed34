//! The UDP listener: threads of their own take datagrams in batches, answer repeat questions from the answer
//! cache and send those answers in one batch; everything else goes to the full handler in a task on the runtime.
//!
//! hickory's server parses every datagram into its message model and spawns a task per request that sends
//! its reply through a channel to the socket's task; for the common case, a name asked a moment ago, that
//! machinery costs several times what the answer itself does. A first loop of our own answered a cache hit in
//! the receiving task with one `recvfrom` and one `sendto`; profiled under dnsperf, 83% of its time was then the
//! kernel's: two system calls per query, and the task's sleep and wake-up (epoll, a context switch) between
//! datagrams. So the receivers are OS threads blocked in `recvmmsg`, which hands over every datagram that is
//! waiting (up to [`BATCH`]) in one call, as nsd does; each hit's answer is a strict header-and-question scan,
//! a map lookup and a copy of pre-encoded records, and one `sendmmsg` sends the batch's answers.
//! A miss, or anything the scan declines, goes the full way (hickory's request parser and our [`DnsHandler`])
//! in a task spawned on the runtime that called [`crate::serve`], so a slow lookup never holds up the socket.
//!
//! The socket is blocking (the threads own its receive side); the handler's replies are sent without waiting
//! (`MSG_DONTWAIT`), so a full send buffer drops one reply, as any UDP loss would, instead of stalling a worker.
//! A thread wakes every [`STOP_POLL`] to see whether the server is stopping; [`Receivers::stop`] joins them.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd as _, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncoder, NameEncoding};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendto};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::handler::{DnsHandler, advertised_payload};
use crate::wire;

/// RFC 1035's UDP limit without EDNS0.
const UDP_MIN_PAYLOAD: usize = 512;
/// Room beyond the client's size for the encoder while it writes one name (RFC 1035: at most 255 octets).
const NAME_SLACK: u16 = 256;
/// The largest datagram we read; a query is far smaller, a bigger one is not DNS.
const RECEIVE_BUFFER: usize = 4096;
/// Datagrams one `recvmmsg` takes at most. Under load the socket's queue holds as many as the clients keep
/// outstanding (dnsperf: 100 per client); a batch of 64 amortises the calls over most of that and keeps a
/// thread's buffers at 256 KiB.
const BATCH: usize = 64;
/// How long a receiving thread blocks in `recvmmsg` before it looks at the stop flag, which bounds how long
/// [`Receivers::stop`] waits: a blocked receive is woken by nothing else we can send it safely (a wake-up
/// datagram to our own port could land on another `SO_REUSEPORT` socket of the group).
pub(crate) const STOP_POLL: Duration = Duration::from_millis(100);

/// The receiving threads of every UDP socket, stopped and joined by [`Receivers::stop`] (or told to stop on drop).
#[derive(Default)]
pub(crate) struct Receivers {
    /// Set once; each thread checks it after every receive and every [`STOP_POLL`].
    stop: Arc<AtomicBool>,
    /// Each thread with the receiver that completes when its closure has returned (its sender is dropped then).
    threads: Vec<(JoinHandle<()>, oneshot::Receiver<()>)>,
}

impl Receivers {
    /// Starts `n_threads` threads receiving on `socket`; misses become tasks on `runtime`, tracked by `misses`.
    pub(crate) fn start(
        &mut self,
        socket: tokio::net::UdpSocket,
        handler: &DnsHandler,
        n_threads: usize,
        misses: &TaskTracker,
        runtime: &Handle,
    ) -> std::io::Result<()> {
        let socket = socket.into_std()?;
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(STOP_POLL))?;
        let socket = Arc::new(socket);
        for _ in 0..n_threads.max(1) {
            let receiver = Receiver {
                socket: socket.clone(),
                handler: handler.clone(),
                misses: misses.clone(),
                runtime: runtime.clone(),
                stop: self.stop.clone(),
                cache_hits: metrics::counter!("roster.dns.cache_hits_total"),
                domain_query: metrics::histogram!("consul.dns.domain_query"),
            };
            let (done, ended) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new().name("roster-dns-udp".to_owned()).spawn(move || {
                let _done = done;
                receiver.run();
            })?;
            self.threads.push((thread, ended));
        }
        Ok(())
    }

    /// Stops the threads and joins them, returning how many ended normally; a panic is logged, not propagated.
    pub(crate) async fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let mut n_joined = 0;
        for (thread, ended) in std::mem::take(&mut self.threads) {
            // The sender goes when the thread's closure returns, so this waits without blocking the runtime and the
            // join after it only waits for the thread's exit.
            let _ = ended.await;
            match thread.join() {
                Ok(()) => n_joined += 1,
                Err(_) => warn!("a dns udp receiver panicked"),
            }
        }
        n_joined
    }
}

impl Drop for Receivers {
    /// A `serve` future dropped before its shutdown still stops its threads (within [`STOP_POLL`]).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One receiving thread's state.
struct Receiver {
    socket: Arc<UdpSocket>,
    handler: DnsHandler,
    misses: TaskTracker,
    /// The runtime `serve` runs on, where misses are answered.
    runtime: Handle,
    stop: Arc<AtomicBool>,
    /// Handles taken once: the `counter!` and `histogram!` macros look the name up in the recorder's registry (a
    /// hash, a shard lock and a reference count) on every call.
    cache_hits: metrics::Counter,
    domain_query: metrics::Histogram,
}

impl Receiver {
    fn run(self) {
        let mut batch = Batch::new();
        let mut key = Vec::with_capacity(64);
        let fd = self.socket.as_raw_fd();
        while !self.stop.load(Ordering::Relaxed) {
            match batch.receive(fd) {
                Ok(()) => {}
                // The receive timeout, which is there to look at the stop flag.
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on Linux; the socket itself is fine.
                    debug!(%error, "udp receive failed");
                    continue;
                }
            }
            for idx in 0..batch.received.len() {
                self.answer(&mut batch, idx, &mut key);
            }
            batch.send(fd);
        }
    }

    /// Answers datagram `idx` of `batch` into the batch's replies if the cache has it, or hands it to a task.
    fn answer(&self, batch: &mut Batch, idx: usize, key: &mut Vec<u8>) {
        let (len, src) = batch.received[idx];
        // A reply to port 0 goes nowhere; hickory drops these too.
        let Some(src) = src.filter(|src| src.port() != 0 && !src.ip().is_unspecified()) else { return };
        let bytes = &batch.packets[idx][..len];
        let start = Instant::now();
        let reply = &mut batch.replies[batch.n_replies];
        if self.answer_from_cache(bytes, key, reply) {
            // Only local answers are cached, so this is a query of the domain, answered in full.
            self.cache_hits.increment(1);
            self.domain_query.record(start.elapsed().as_secs_f64() * 1000.0);
            batch.destinations[batch.n_replies] = Some(SockaddrStorage::from(src));
            batch.n_replies += 1;
            return;
        }
        let (socket, handler) = (self.socket.clone(), self.handler.clone());
        self.misses.spawn_on(answer_in_full(socket, handler, bytes.to_vec(), src), &self.runtime);
    }

    /// Writes the cached response to `bytes` into `out`, if there is one that fits.
    fn answer_from_cache(&self, bytes: &[u8], key: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
        let Some(generation) = self.handler.view.generation() else { return false };
        let Some(query) = wire::parse_query(bytes, key) else { return false };
        let settings = self.handler.config.version();
        let Some(entry) = self.handler.cache.get(key, generation, settings) else { return false };
        let max_len = query.edns_payload.map_or(UDP_MIN_PAYLOAD, |payload| usize::from(advertised_payload(payload)));
        entry.respond(bytes, &query, max_len, out)
    }
}

/// One thread's buffers: the datagrams of the last receive and the answers to send back.
struct Batch {
    packets: Vec<Vec<u8>>,
    /// Length and sender of each datagram the last receive took, in `packets` order.
    received: Vec<(usize, Option<SocketAddr>)>,
    receive_headers: MultiHeaders<SockaddrStorage>,
    /// `replies[..n_replies]` go to `destinations[..n_replies]`.
    replies: Vec<Vec<u8>>,
    destinations: Vec<Option<SockaddrStorage>>,
    n_replies: usize,
    /// Separate from `receive_headers`: `sendmmsg` points its headers' addresses at `destinations`, which a
    /// receive must never write through.
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            packets: (0..BATCH).map(|_| vec![0u8; RECEIVE_BUFFER]).collect(),
            received: Vec::with_capacity(BATCH),
            receive_headers: MultiHeaders::preallocate(BATCH, None),
            replies: (0..BATCH).map(|_| Vec::with_capacity(UDP_MIN_PAYLOAD)).collect(),
            destinations: vec![None; BATCH],
            n_replies: 0,
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Blocks (up to the socket's read timeout) for one datagram, then takes every other one already waiting.
    fn receive(&mut self, fd: RawFd) -> nix::Result<()> {
        self.received.clear();
        self.n_replies = 0;
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            self.packets.iter_mut().map(|packet| [IoSliceMut::new(packet)]).collect();
        let results = recvmmsg(fd, &mut self.receive_headers, slices.iter_mut(), MsgFlags::MSG_WAITFORONE, None)?;
        for message in results {
            self.received.push((message.bytes, message.address.and_then(|address| socket_addr(&address))));
        }
        Ok(())
    }

    /// Sends `replies[..n_replies]`; a reply the kernel refuses is skipped, as one `sendto` failing would be.
    fn send(&mut self, fd: RawFd) {
        let mut next = 0;
        while next < self.n_replies {
            let slices: Vec<[IoSlice<'_>; 1]> =
                self.replies[next..self.n_replies].iter().map(|reply| [IoSlice::new(reply)]).collect();
            let destinations = &self.destinations[next..self.n_replies];
            let no_control: [ControlMessage<'_>; 0] = [];
            match sendmmsg(fd, &mut self.send_headers, &slices, destinations, no_control, MsgFlags::empty()) {
                // `sendmmsg` stops at the first message that fails and reports how many went before it; the next
                // call starts at the failing one, which then reports its error.
                Ok(results) => next += results.count(),
                Err(Errno::EINTR) => {}
                Err(error) => {
                    debug!(%error, "udp send failed");
                    next += 1;
                }
            }
        }
    }
}

/// A received sender address as a std address (`None` for anything but IPv4 and IPv6).
fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Sends one datagram without blocking: the socket is in blocking mode for the receiving threads.
fn send_now(socket: &UdpSocket, bytes: &[u8], dst: SocketAddr) -> std::io::Result<()> {
    sendto(socket.as_raw_fd(), bytes, &SockaddrStorage::from(dst), MsgFlags::MSG_DONTWAIT)
        .map(drop)
        .map_err(std::io::Error::from)
}

/// The full path for one datagram: hickory's parser, then the handler, replying on `socket`.
async fn answer_in_full(socket: Arc<UdpSocket>, handler: DnsHandler, bytes: Vec<u8>, src: SocketAddr) {
    let request = match Request::from_bytes(bytes.clone(), src, Protocol::Udp) {
        Ok(request) => request,
        Err(error) => {
            debug!(%error, %src, "unparseable udp request");
            if let Some(reply) = wire::format_error(&bytes)
                && let Err(error) = send_now(&socket, &reply, src)
            {
                debug!(%error, %src, "udp send failed");
            }
            return;
        }
    };
    // Answering a response would make us a reflector.
    if request.metadata.message_type == hickory_proto::op::MessageType::Response {
        return;
    }
    let compress = !handler.config.current().disable_compression;
    handler.handle_request::<_, TokioTime>(&request, UdpReply { socket, dst: src, compress }).await;
}

/// Sends a hickory response as one datagram, within the client's advertised size.
#[derive(Clone)]
struct UdpReply {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    /// Compress names (`dns_config.disable_compression` off); the handler trims with the same setting.
    compress: bool,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpReply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let max_len = response.edns().map_or(UDP_MIN_PAYLOAD as u16, |edns| edns.max_payload().max(512));
        let mut bytes = Vec::with_capacity(UDP_MIN_PAYLOAD);
        let mut encoder = BinEncoder::new(&mut bytes);
        // With its limit at exactly `max_len`, hickory's encoder dropped the last additional record of answers the
        // handler had trimmed to exactly `max_len` bytes (seen with SRV answers of 512 bytes). The handler's trim is
        // exact (the same encoder, unbounded), so give the encoder room for one name and check the result instead.
        encoder.set_max_size(max_len.saturating_add(NAME_SLACK));
        if !self.compress {
            encoder.set_name_encoding(NameEncoding::Uncompressed);
        }
        let emitted = response.destructive_emit(&mut encoder).map_err(|error| error.to_string()).and_then(|info| {
            if bytes.len() > usize::from(max_len) {
                return Err(format!("{} bytes exceed the client's {max_len}", bytes.len()));
            }
            Ok(info)
        });
        let info = match emitted {
            Ok(info) => info,
            Err(error) => {
                // The handler trims to fit, so this is a bug; still answer, so the client does not wait.
                warn!(%error, id, "encoding a udp response failed");
                let mut metadata =
                    Metadata::new(id, hickory_proto::op::MessageType::Response, hickory_proto::op::OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                bytes = servfail(id);
                ResponseInfo::from(hickory_proto::op::Header { metadata, counts: Default::default() })
            }
        };
        send_now(&self.socket, &bytes, self.dst).map_err(NetError::from)?;
        Ok(info)
    }
}

/// A bare SERVFAIL header for `id`.
fn servfail(id: u16) -> Vec<u8> {
    let flags: u16 = 0x8000 | u16::from(ResponseCode::ServFail.low());
    let mut bytes = Vec::with_capacity(wire::HEADER_LEN);
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.resize(wire::HEADER_LEN, 0);
    bytes
}

#[cfg(test)]
mod tests;
