//! TLS on the RPC port: what a server does with a new connection before the first frame (peek, handshake,
//! classify), how a caller dials, and the bookkeeping both sides share (refusal counters, log-once).

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use crate::config::{RpcCounters, RpcTls};

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Who is at the other end of a connection, as far as its certificate tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerClass {
    /// An authenticated server; also every peer when TLS is not configured (nothing can be checked, so
    /// everything is trusted, as it is in Consul without TLS).
    Server,
    /// A verified certificate without the server name: a client agent.
    Client,
    /// Plaintext, or TLS without a client certificate.
    Unauthenticated,
}

/// A connection's peer, as the handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerInfo {
    /// The remote address.
    pub(crate) addr: SocketAddr,
    /// What it proved.
    pub(crate) class: PeerClass,
}

/// Whether the leaf certificate `leaf` is valid for the DNS name `name` (its SANs, as rustls would check them).
pub(crate) fn carries_name(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    webpki::EndEntityCert::try_from(leaf).is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}

/// `RpcTls::server_name` as a rustls name; `None` when the datacenter or domain do not make a DNS name.
pub(crate) fn server_name(tls: &RpcTls) -> Option<ServerName<'static>> {
    ServerName::try_from(tls.server_name()).ok()
}

/// The class of a TLS peer from the certificates rustls verified.
fn classify(certs: Option<&[CertificateDer<'static>]>, required: Option<&ServerName<'_>>) -> PeerClass {
    match (certs.and_then(<[_]>::first), required) {
        (None, _) => PeerClass::Unauthenticated,
        (Some(_), None) => PeerClass::Server,
        (Some(leaf), Some(name)) if carries_name(leaf, name) => PeerClass::Server,
        (Some(_), Some(_)) => PeerClass::Client,
    }
}

/// An accepted connection after its handshake.
pub(crate) enum Accepted {
    /// TLS was configured, but the peer spoke plaintext and `verify_incoming` is off.
    Plain(TcpStream),
    /// A TLS connection.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Why an accepted connection was closed before its first frame.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("plaintext connection refused: verify_incoming is set")]
    Plaintext,
    #[error("TLS connection without a client certificate refused: verify_incoming is set")]
    NoCertificate,
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
    #[error("closed before sending anything")]
    Closed,
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
}

/// Peeks at the first byte and runs the TLS handshake when it starts one, within the handshake timeout.
pub(crate) async fn accept(
    stream: TcpStream,
    tls: &RpcTls,
    timeout: Duration,
) -> Result<(Accepted, PeerClass), Refusal> {
    let handshake = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await.map_err(Refusal::Handshake)? == 0 {
            return Err(Refusal::Closed);
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            return if tls.verify_incoming {
                Err(Refusal::Plaintext)
            } else {
                Ok((Accepted::Plain(stream), PeerClass::Unauthenticated))
            };
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.configs.server_config());
        let stream = acceptor.accept(stream).await.map_err(Refusal::Handshake)?;
        let required = if tls.verify_server_hostname { server_name(tls) } else { None };
        let class = classify(stream.get_ref().1.peer_certificates(), required.as_ref());
        if class == PeerClass::Unauthenticated && tls.verify_incoming {
            return Err(Refusal::NoCertificate);
        }
        Ok((Accepted::Tls(Box::new(stream)), class))
    };
    tokio::time::timeout(timeout, handshake).await.unwrap_or(Err(Refusal::Timeout(timeout)))
}

/// How a caller dials: plaintext, or TLS to a server named `server.<dc>.<domain>`.
pub(crate) struct Dialer {
    tls: Option<DialTls>,
    /// The local address outgoing connections are bound to; `None` lets the kernel choose.
    source: Option<std::net::IpAddr>,
}

struct DialTls {
    configs: Arc<dyn crate::config::TlsConfigs>,
    name: ServerName<'static>,
    check_name: bool,
}

/// A dialled stream.
pub(crate) enum Dialed {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Dialer {
    /// Plaintext.
    pub(crate) fn plain() -> Arc<Dialer> {
        Arc::new(Dialer { tls: None, source: None })
    }

    /// This dialer with its connections bound to the local address `source`.
    pub(crate) fn from(dialer: &Dialer, source: Option<std::net::IpAddr>) -> Arc<Dialer> {
        let tls = dialer.tls.as_ref().map(|tls| DialTls {
            configs: tls.configs.clone(),
            name: tls.name.clone(),
            check_name: tls.check_name,
        });
        Arc::new(Dialer { tls, source })
    }

    /// Connects to `addr`, from the source address when one is set and of `addr`'s family.
    pub(crate) async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<TcpStream> {
        let Some(source) = self.source.filter(|source| source.is_ipv4() == addr.is_ipv4()) else {
            return TcpStream::connect(addr).await;
        };
        let socket = if source.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        socket.connect(addr).await
    }

    /// TLS with `tls`'s client configuration when `use_tls`, else plaintext.
    /// A name that cannot be a DNS name is refused here, so a misconfiguration fails at start, not per dial.
    pub(crate) fn new(tls: Option<&RpcTls>, use_tls: impl Fn(&RpcTls) -> bool) -> crate::Result<Arc<Dialer>> {
        let Some(tls) = tls.filter(|tls| use_tls(tls)) else { return Ok(Dialer::plain()) };
        let name = server_name(tls)
            .ok_or_else(|| crate::Error::Fatal(format!("{:?} is not a valid TLS server name", tls.server_name())))?;
        let tls = DialTls { configs: tls.configs.clone(), name, check_name: tls.verify_server_hostname };
        Ok(Arc::new(Dialer { tls: Some(tls), source: None }))
    }

    /// Runs the TLS handshake on `stream` if this dialer uses TLS.
    pub(crate) async fn wrap(&self, stream: TcpStream) -> io::Result<Dialed> {
        let Some(tls) = &self.tls else { return Ok(Dialed::Plain(stream)) };
        let connector = tokio_rustls::TlsConnector::from(tls.configs.client_config());
        let stream = connector.connect(tls.name.clone(), stream).await?;
        if tls.check_name {
            // The configuration's verifier may have skipped the name; verify_server_hostname must not depend on it.
            let leaf = stream.get_ref().1.peer_certificates().and_then(<[_]>::first);
            if !leaf.is_some_and(|leaf| carries_name(leaf, &tls.name)) {
                let name = tls.name.to_str();
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("the server's certificate is not valid for {name}"),
                ));
            }
        }
        Ok(Dialed::Tls(Box::new(stream)))
    }
}

/// What the RPC port refused, as atomics shared by the listener and the service.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) refused_per_client: AtomicU64,
    pub(crate) refused_over_max: AtomicU64,
    pub(crate) refused_handshake: AtomicU64,
    pub(crate) refused_frames: AtomicU64,
    pub(crate) refused_in_flight: AtomicU64,
    pub(crate) refused_not_server: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> RpcCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RpcCounters {
            refused_per_client: get(&self.refused_per_client),
            refused_over_max: get(&self.refused_over_max),
            refused_handshake: get(&self.refused_handshake),
            refused_frames: get(&self.refused_frames),
            refused_in_flight: get(&self.refused_in_flight),
            refused_not_server: get(&self.refused_not_server),
            closed_idle: get(&self.closed_idle),
        }
    }
}

/// Remembers which (peer IP, reason) pairs were logged, so a peer retrying in a loop is logged once, not per connection.
/// Bounded: when `LOG_ONCE_MAX` pairs are held it starts over, so a flood of addresses costs memory once and logs again.
#[derive(Default)]
pub(crate) struct LogOnce {
    seen: Mutex<HashSet<(IpAddr, &'static str)>>,
}

/// The most (peer, reason) pairs `LogOnce` holds.
const LOG_ONCE_MAX: usize = 4096;

impl LogOnce {
    /// Whether this is the first time `reason` is reported for `ip` (then the caller logs it).
    pub(crate) fn first(&self, ip: IpAddr, reason: &'static str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= LOG_ONCE_MAX {
            seen.clear();
        }
        seen.insert((ip, reason))
    }
}
