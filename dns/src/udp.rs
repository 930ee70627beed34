//! The UDP listener: answers repeat questions from the answer cache inline, and hands everything else to the
//! full handler in a task of its own.
//!
//! hickory's server parses every datagram into its message model and spawns a task per request that sends
//! its reply through a channel to the socket's task; for the common case, a name asked a moment ago, that
//! machinery costs several times what the answer itself does. Here a cache hit is one receive, a strict
//! header-and-question scan, a map lookup, a copy of pre-encoded records and one send, all in the receiving
//! task. A miss, or anything the scan declines, goes the full way (hickory's request parser and our
//! [`DnsHandler`]), in a spawned task so a slow lookup never holds up the socket.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncoder, NameEncoding};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
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

/// Serves `socket` with `loops` receiving tasks until `shutdown`; misses run in tasks on `tracker`.
pub(crate) async fn serve(
    socket: Arc<UdpSocket>,
    handler: DnsHandler,
    loops: usize,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut receivers = tokio::task::JoinSet::new();
    for _ in 0..loops.max(1) {
        let receiver = Receiver {
            socket: socket.clone(),
            handler: handler.clone(),
            tracker: tracker.clone(),
            cache_hits: metrics::counter!("roster.dns.cache_hits_total"),
            domain_query: metrics::histogram!("consul.dns.domain_query"),
        };
        receivers.spawn(receiver.run());
    }
    // The receivers watch only their socket: a `select!` on the token per datagram registered a waiter under the
    // token's lock and removed it again for every query. They are aborted at their next await.
    shutdown.cancelled().await;
    receivers.shutdown().await;
}

struct Receiver {
    socket: Arc<UdpSocket>,
    handler: DnsHandler,
    tracker: TaskTracker,
    /// Handles taken once: the `counter!` and `histogram!` macros look the name up in the recorder's registry (a
    /// hash, a shard lock and a reference count) on every call.
    cache_hits: metrics::Counter,
    domain_query: metrics::Histogram,
}

impl Receiver {
    async fn run(self) {
        let mut packet = vec![0u8; RECEIVE_BUFFER];
        let mut key = Vec::with_capacity(64);
        let mut out = Vec::with_capacity(UDP_MIN_PAYLOAD);
        loop {
            let (len, src) = match self.socket.recv_from(&mut packet).await {
                Ok(received) => received,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on Linux; the socket itself is fine.
                    debug!(%error, "udp receive failed");
                    continue;
                }
            };
            // A reply to port 0 goes nowhere; hickory drops these too.
            if src.port() == 0 || src.ip().is_unspecified() {
                continue;
            }
            let bytes = &packet[..len];
            let start = std::time::Instant::now();
            if self.answer_from_cache(bytes, &mut key, &mut out) {
                // Only local answers are cached, so this is a query of the domain, answered in full.
                self.cache_hits.increment(1);
                self.domain_query.record(start.elapsed().as_secs_f64() * 1000.0);
                if let Err(error) = self.socket.send_to(&out, src).await {
                    debug!(%error, %src, "udp send failed");
                }
                continue;
            }
            let (socket, handler, bytes) = (self.socket.clone(), self.handler.clone(), bytes.to_vec());
            self.tracker.spawn(answer_in_full(socket, handler, bytes, src));
        }
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

/// The full path for one datagram: hickory's parser, then the handler, replying on `socket`.
async fn answer_in_full(socket: Arc<UdpSocket>, handler: DnsHandler, bytes: Vec<u8>, src: SocketAddr) {
    let request = match Request::from_bytes(bytes.clone(), src, Protocol::Udp) {
        Ok(request) => request,
        Err(error) => {
            debug!(%error, %src, "unparseable udp request");
            if let Some(reply) = wire::format_error(&bytes)
                && let Err(error) = socket.send_to(&reply, src).await
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
        self.socket.send_to(&bytes, self.dst).await.map_err(NetError::from)?;
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
