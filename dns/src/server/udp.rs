//! roster's own UDP loop: receive, answer and send in the receiving task, spawning only queries that must wait.
//!
//! hickory's `Server` spawns a task per UDP datagram and hands each response to a channel that the
//! receiving task drains, so every query costs a spawn, two wake-ups, a copy of its question list and a
//! channel hop. Nearly every query roster gets is answered from memory without awaiting anything, so
//! here the handler's future is polled once in place and the response is encoded and sent straight
//! from it; only a future that is still pending (a recursor forward, a client cache miss) becomes a
//! task. TCP stays on hickory's `Server`, where a connection already amortises that cost.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable as _, BinDecoder, BinEncodable as _, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The largest datagram read; EDNS0 clients may send up to this and nothing legitimate is larger.
const MAX_DATAGRAM: usize = 4096;

/// Queries waiting on something (recursors, a cache fill) at once per socket; beyond this a query
/// that cannot be answered at once is dropped, so a flood of slow names cannot exhaust memory.
/// The client retries, as it would after any lost datagram.
const MAX_PENDING: usize = 4096;

/// Sends the encoded response straight to the querier on the shared socket.
#[derive(Clone)]
struct DirectResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for DirectResponder {
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
        // RFC 1035 4.2.1: 512 octets unless the querier advertised more with EDNS0.
        let max_size = response.edns().map_or(512, |edns| edns.max_payload());
        let mut buffer = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buffer);
        encoder.set_max_size(max_size);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                // The handler trims answers to fit, so this is a bug; the querier still gets an answer.
                warn!(%error, "dns response did not encode; sending SERVFAIL");
                servfail(id, &mut buffer)?
            }
        };
        // A full send buffer is the one case that waits; a datagram socket never sends partially.
        self.socket.send_to(&buffer, self.dst).await.map_err(NetError::from)?;
        Ok(info)
    }
}

/// Serves one UDP socket until `shutdown` is cancelled; queries still waiting are then dropped.
pub(crate) async fn serve_udp<H: RequestHandler>(
    socket: UdpSocket,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let socket = Arc::new(socket);
    let mut pending: JoinSet<()> = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, src) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(error) if is_transient(&error) => {
                    debug!(%error, "udp receive error");
                    continue;
                }
                Err(error) => return Err(error),
            },
            () = shutdown.cancelled() => return Ok(()),
        };
        while pending.try_join_next().is_some() {}
        if !can_answer(src) {
            continue;
        }
        let datagram = &buf[..len];
        let Ok(header) = Header::read(&mut BinDecoder::new(datagram)) else {
            // Shorter than a header: nothing to answer to.
            continue;
        };
        if header.metadata.message_type == MessageType::Response {
            // Answering responses would let anyone bounce traffic off us.
            continue;
        }
        let responder = DirectResponder { socket: socket.clone(), dst: src };
        let request = match Request::from_bytes(datagram.to_vec(), src, Protocol::Udp) {
            Ok(request) => request,
            Err(error) => {
                debug!(%src, %error, "malformed dns query");
                form_error(header, responder).await;
                continue;
            }
        };
        let handler = handler.clone();
        let mut answering: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            handler.handle_request::<_, TokioTime>(&request, responder).await;
        });
        let first = poll_fn(|cx| Poll::Ready(answering.as_mut().poll(cx))).await;
        if first.is_pending() {
            if pending.len() >= MAX_PENDING {
                warn!(%src, "too many dns queries waiting; dropping one");
                continue;
            }
            pending.spawn(answering);
        }
    }
}

/// Answers a query that does not parse with FORMERR, echoing its id, as resolvers expect.
async fn form_error(header: Header, mut responder: DirectResponder) {
    let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
        return;
    };
    let response = MessageResponseBuilder::new(&queries, None).error_msg(&header, ResponseCode::FormErr);
    if let Err(error) = responder.send_response(response).await {
        debug!(%error, "failed to send FORMERR");
    }
}

/// A bare SERVFAIL header for `id`, written over whatever `buffer` held.
fn servfail(id: u16, buffer: &mut Vec<u8>) -> Result<ResponseInfo, NetError> {
    buffer.clear();
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header { metadata, counts: HeaderCounts::default() };
    header.emit(&mut BinEncoder::new(buffer)).map_err(NetError::from)?;
    Ok(ResponseInfo::from(header))
}

/// hickory refuses these sources too: a reply to them goes nowhere or everywhere.
fn can_answer(src: SocketAddr) -> bool {
    if src.port() == 0 {
        return false;
    }
    match src {
        SocketAddr::V4(v4) => !v4.ip().is_unspecified() && !v4.ip().is_broadcast(),
        SocketAddr::V6(v6) => !v6.ip().is_unspecified(),
    }
}

/// Errors a UDP socket reports for one bad exchange (an ICMP unreachable from an earlier reply, an
/// interrupted call) rather than for the socket itself.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock | HostUnreachable | NetworkUnreachable
    )
}
