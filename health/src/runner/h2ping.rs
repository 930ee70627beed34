//! The H2 ping probe: an HTTP/2 connection and a PING frame, as Consul's `CheckH2PING` does.
//!
//! The probe dials `addr`, speaks HTTP/2 over the connection (cleartext with prior knowledge, or TLS with ALPN h2),
//! sends one PING and waits for the PONG; dial, handshakes and ping all share the check's timeout.
//! A PONG is passing ("HTTP2 ping was successful"); anything else is critical with the reason.
//!
//! Over TLS the client offers only ALPN `h2` and insists the server picks it: a server that answers without ALPN or
//! with another protocol is critical at once, where Go's client would go on to fail the ping less clearly.
//! The server name sent as SNI and checked against the certificate is the host part of `addr` (an IP address is
//! checked against the certificate's IP names).
//! Certificates are checked against the system roots with the same verifier reqwest uses for HTTP and gRPC checks,
//! so all TLS checks trust the same servers; `TLSSkipVerify` accepts any certificate, but the handshake signatures are
//! still checked, so the peer must hold the key of the certificate it shows.
//! The TLS configs name ring as their crypto provider, so nothing here depends on a process-wide default provider.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::runner::{error_chain, format_duration};
use crate::status::Status;

/// The ALPN protocol ID of HTTP/2 over TLS.
const ALPN_H2: &[u8] = b"h2";

/// Pings `addr` over HTTP/2.
pub(crate) async fn probe(addr: &str, use_tls: bool, tls_skip_verify: bool, timeout: Duration) -> (Status, String) {
    let ping = async {
        if use_tls {
            ping(tls_connect(addr, tls_skip_verify).await?).await
        } else {
            ping(tcp_connect(addr).await?).await
        }
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => (Status::Passing, "HTTP2 ping was successful".to_string()),
        Ok(Err(err)) => (Status::Critical, format!("HTTP2 ping failed: {err}")),
        Err(_) => (Status::Critical, format!("HTTP2 ping failed: timed out after {}", format_duration(timeout))),
    }
}

/// A server certificate verifier for `TLSSkipVerify`: any certificate chain and name are accepted, but the handshake
/// signatures are checked with the provider's algorithms, as Go does with `InsecureSkipVerify`.
#[derive(Debug)]
struct AcceptAnyCertificate {
    /// The provider whose signature algorithms check the handshake.
    provider: Arc<CryptoProvider>,
}

async fn tcp_connect(addr: &str) -> Result<TcpStream, String> {
    TcpStream::connect(addr).await.map_err(|err| format!("dial tcp {addr}: {err}"))
}

/// Dials `addr` and completes a TLS handshake that must settle on ALPN h2.
async fn tls_connect(addr: &str, tls_skip_verify: bool) -> Result<TlsStream<TcpStream>, String> {
    let server_name = server_name(addr)?;
    let connector = TlsConnector::from(client_config(tls_skip_verify)?);
    let stream = tcp_connect(addr).await?;
    let tls_stream = connector
        .connect(server_name, stream)
        .await
        .map_err(|err| format!("TLS handshake with {addr}: {}", error_chain(&err)))?;
    match tls_stream.get_ref().1.alpn_protocol() {
        Some(ALPN_H2) => Ok(tls_stream),
        Some(other) => Err(format!(
            "{addr} chose ALPN protocol {:?}, not h2: the server does not speak HTTP/2 over TLS",
            String::from_utf8_lossy(other)
        )),
        None => Err(format!("{addr} chose no ALPN protocol, not h2: the server does not speak HTTP/2 over TLS")),
    }
}

/// Sends one PING over an HTTP/2 connection on `stream` and waits for the PONG.
async fn ping<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<(), String> {
    let (_send_request, mut connection) = h2::client::handshake(stream).await.map_err(|err| error_chain(&err))?;
    let mut ping_pong = connection.ping_pong().ok_or("the connection gave no ping handle")?;
    // The connection future drives all I/O, the PONG included, so poll it alongside the ping.
    tokio::select! {
        res = &mut connection => Err(match res {
            Ok(()) => "connection closed before the PONG".to_string(),
            Err(err) => error_chain(&err),
        }),
        pong = ping_pong.ping(h2::Ping::opaque()) => pong.map(|_| ()).map_err(|err| error_chain(&err)),
    }
}

/// The name to send as SNI and check the certificate against: the host part of `addr` (`host:port`, `[v6]:port`).
fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    if let Ok(socket_addr) = addr.parse::<SocketAddr>() {
        return Ok(ServerName::IpAddress(socket_addr.ip().into()));
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    let host = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(host)
        .map(|name| name.to_owned())
        .map_err(|err| format!("{host:?} is not a valid TLS server name: {err}"))
}

/// The client config for `tls_skip_verify`, built on first use and then shared.
///
/// Both configs are kept for the life of the process: neither depends on agent settings, and the verifying one reads
/// and parses the whole system root store, too costly to repeat on every probe.
/// A build that fails (no system roots) is not kept, so a later probe tries again.
fn client_config(tls_skip_verify: bool) -> Result<Arc<ClientConfig>, String> {
    static CONFIGS: Mutex<[Option<Arc<ClientConfig>>; 2]> = Mutex::new([None, None]);
    // Building under the lock means a burst of first probes loads the roots once, not once each.
    let mut configs = CONFIGS.lock().unwrap_or_else(PoisonError::into_inner);
    let slot = &mut configs[usize::from(tls_skip_verify)];
    if let Some(config) = slot {
        return Ok(config.clone());
    }
    let config = Arc::new(
        build_client_config(tls_skip_verify).map_err(|err| format!("cannot set up TLS: {}", error_chain(&err)))?,
    );
    *slot = Some(config.clone());
    Ok(config)
}

fn build_client_config(tls_skip_verify: bool) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if tls_skip_verify {
        Arc::new(AcceptAnyCertificate { provider: provider.clone() })
    } else {
        Arc::new(rustls_platform_verifier::Verifier::new(provider.clone())?)
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
