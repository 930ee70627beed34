//! Forwarding names outside our domain to the recursors, as Consul's agent does: the question goes to one recursor
//! at a time, over the client's transport, each given `recursor_timeout`; the first reply that is NOERROR or NXDOMAIN
//! is the answer, and when every recursor failed (no reply in time, an error, or any other response code) the client
//! gets SERVFAIL.
//!
//! The order is the configured one (`recursor_strategy = "sequential"`, Consul's default) or a fresh random one per
//! question (`"random"`). The upstream's reply is relayed as it came (header flags, sections, EDNS); only the
//! message ID is the client's, which it already is since the client's message is sent unchanged. Nothing is cached:
//! clients cache by TTL themselves, and every setting is read per question, so a reload may change the recursors.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Message, ResponseCode};
use rand::seq::SliceRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::debug;

use crate::config::{Config, RecursorStrategy};

/// The largest reply read from a recursor over UDP; a larger one is not a DNS message.
const UDP_REPLY_BUFFER: usize = 65_535;

/// How a question reaches the recursors: as the client asked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// One datagram each way.
    Udp,
    /// A length-prefixed message on a new connection.
    Tcp,
}

/// Asks the recursors in `config`'s order for `query` (the client's message as received) and returns the first
/// acceptable reply, decoded, or `None` when none gave one.
pub(crate) async fn forward(config: &Config, query: &[u8], transport: Transport) -> Option<Message> {
    let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
    let mut order = config.recursors.clone();
    if config.recursor_strategy == RecursorStrategy::Random {
        order.shuffle(&mut rand::rng());
    }
    for recursor in order {
        let asked = tokio::time::timeout(config.recursor_timeout, exchange(recursor, query, id, transport)).await;
        let reply = match asked {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => {
                debug!(%recursor, %error, "recursor failed");
                continue;
            }
            Err(_) => {
                debug!(%recursor, timeout = ?config.recursor_timeout, "recursor did not answer in time");
                continue;
            }
        };
        match Message::from_vec(&reply) {
            Ok(message) if matches!(message.metadata.response_code, ResponseCode::NoError | ResponseCode::NXDomain) => {
                return Some(message);
            }
            Ok(message) => debug!(%recursor, rcode = %message.metadata.response_code, "recursor could not answer"),
            Err(error) => debug!(%recursor, %error, "recursor sent an unreadable reply"),
        }
    }
    None
}

/// One question to one recursor; the reply's bytes.
async fn exchange(recursor: SocketAddr, query: &[u8], id: u16, transport: Transport) -> std::io::Result<Vec<u8>> {
    match transport {
        Transport::Udp => exchange_udp(recursor, query, id).await,
        Transport::Tcp => exchange_tcp(recursor, query).await,
    }
}

async fn exchange_udp(recursor: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match recursor {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // A connected socket takes datagrams from the recursor only.
    socket.connect(recursor).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; UDP_REPLY_BUFFER];
    loop {
        let len = socket.recv(&mut buffer).await?;
        // A late reply to an earlier question, or anything that is not a response to this one, is skipped.
        if len >= 3 && u16::from_be_bytes([buffer[0], buffer[1]]) == id && buffer[2] & 0x80 != 0 {
            buffer.truncate(len);
            return Ok(buffer);
        }
    }
}

async fn exchange_tcp(recursor: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query too long for TCP"))?;
    let mut stream = TcpStream::connect(recursor).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let reply_len = stream.read_u16().await?;
    let mut reply = vec![0u8; usize::from(reply_len)];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}
