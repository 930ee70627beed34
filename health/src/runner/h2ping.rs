//! The H2 ping probe: an HTTP/2 connection and a PING frame.
//!
//! Cleartext (prior knowledge) sends a real PING through the `h2` crate and waits for the PONG, exactly Consul's check.
//! Over TLS the workspace has no async TLS stream for `h2` (no tokio-rustls), so the probe opens an HTTP/2-only TLS
//! connection with reqwest and makes one request: any answer proves the peer speaks HTTP/2 over TLS, which is what
//! the check exists to show. This is the one knowing difference from Consul; it needs tokio-rustls to close.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::runner::http::{ClientKey, HttpClients};
use crate::runner::{error_chain, format_duration};
use crate::status::Status;

/// Pings `addr` over HTTP/2.
pub(crate) async fn probe(
    clients: &HttpClients,
    addr: &str,
    use_tls: bool,
    tls_skip_verify: bool,
    timeout: Duration,
) -> (Status, String) {
    let ping =
        async { if use_tls { tls_request(clients, addr, tls_skip_verify).await } else { cleartext_ping(addr).await } };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => (Status::Passing, "HTTP2 ping was successful".to_string()),
        Ok(Err(err)) => (Status::Critical, format!("HTTP2 ping failed: {err}")),
        Err(_) => (Status::Critical, format!("HTTP2 ping failed: timed out after {}", format_duration(timeout))),
    }
}

async fn cleartext_ping(addr: &str) -> Result<(), String> {
    let stream = TcpStream::connect(addr).await.map_err(|err| format!("dial tcp {addr}: {err}"))?;
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

async fn tls_request(clients: &HttpClients, addr: &str, tls_skip_verify: bool) -> Result<(), String> {
    let client = clients.client(ClientKey { tls_skip_verify, disable_redirects: true, http2_only: true })?;
    client.get(format!("https://{addr}/")).send().await.map(|_| ()).map_err(|err| error_chain(&err))
}
