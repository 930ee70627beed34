//! The TCP and UDP probes.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};

use crate::runner::format_duration;
use crate::status::Status;

/// Connects to `addr`: connected is passing, anything else critical.
pub(crate) async fn tcp(addr: &str, timeout: Duration) -> (Status, String) {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => (Status::Passing, format!("TCP connect {addr}: Success")),
        Ok(Err(err)) => (Status::Critical, format!("dial tcp {addr}: {err}")),
        Err(_) => (Status::Critical, format!("dial tcp {addr}: i/o timeout after {}", format_duration(timeout))),
    }
}

/// Sends an empty datagram to `addr` and waits up to `timeout` for anything back.
///
/// UDP has no handshake, so, as in Consul, silence counts as passing: only an error (the ICMP port unreachable
/// that a closed port answers with, surfacing as a refused read) is critical.
pub(crate) async fn udp(addr: &str, timeout: Duration) -> (Status, String) {
    let success = || (Status::Passing, format!("UDP connect {addr}: Success"));
    let exchange = async {
        let target = resolve(addr).await?;
        let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(target).await?;
        socket.send(&[]).await?;
        let mut reply = [0u8; 1];
        socket.recv(&mut reply).await.map(|_| ())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) | Ok(Ok(())) => success(),
        Ok(Err(err)) => (Status::Critical, format!("read udp {addr}: {err}")),
    }
}

async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("lookup {addr}: no addresses")))
}
