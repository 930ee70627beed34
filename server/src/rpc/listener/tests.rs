//! The listener against a raw TCP peer that announces a huge frame and stalls: its connection is closed after the stall timeout, and other peers are served meanwhile.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::rpc::frame::{MAX_FRAME_LEN, WIRE_VERSION};

/// Answers every request with its own body.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, body: Vec<u8>) -> Vec<u8> {
        body
    }
}

/// One well-formed request and its echoed response over a fresh connection.
async fn echo_round_trip(addr: std::net::SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    write_frame(&mut stream, 42, body).await.expect("write");
    stream.flush().await.expect("flush");
    let (id, response) = read_frame(&mut stream, Duration::from_secs(5)).await.expect("read").expect("a frame");
    assert_eq!(id, 42);
    response
}

#[tokio::test]
async fn a_peer_announcing_512_mib_and_stalling_is_dropped_while_others_are_served() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let stall = Duration::from_millis(500);
    let server = tokio::spawn(serve_with_stall(listener, Arc::new(Echo), shutdown.clone(), stall));

    // The length prefix claims the largest frame; the header and a few body bytes follow, then nothing.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    let len = u32::try_from(MAX_FRAME_LEN).expect("fits u32");
    let mut claim = len.to_be_bytes().to_vec();
    claim.push(WIRE_VERSION);
    claim.extend_from_slice(&1u64.to_be_bytes());
    claim.extend_from_slice(b"just a few bytes");
    stalled.write_all(&claim).await.expect("write the claim");
    let started = Instant::now();

    // While that frame is pending, other peers get their answers.
    assert_eq!(echo_round_trip(addr, b"ping").await, b"ping");

    // The stalled connection is closed by the server (EOF or a reset), after the stall timeout and well before 512 MiB could arrive.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "the stalled connection must be closed, got {closed:?}");
    let waited = started.elapsed();
    assert!(waited >= stall / 2 && waited < Duration::from_secs(10), "closed after {waited:?}");

    // And the server still serves.
    assert_eq!(echo_round_trip(addr, b"still here").await, b"still here");
    shutdown.cancel();
    server.await.expect("the server task ends on shutdown");
}
