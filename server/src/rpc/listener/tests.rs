//! The listener against raw peers over real TCP and real TLS: stalled and oversized frames, the connection caps,
//! the in-flight cap, the idle timeout, and the TLS handshake rules (plaintext and certificate-less peers under
//! `verify_incoming`, a handshake that never starts, how each kind of peer is classed).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::rpc::frame::tests::announce;
use crate::rpc::frame::{HEADER_LEN, MAX_FRAME_LEN, write_frame};
use crate::test_pki::Pki;

/// Answers a request with the peer's class and the body; a body of `park` waits for a permit of `release` first.
struct Echo {
    release: Semaphore,
}

impl Handler for Echo {
    fn body_limit(&self, _peer: &PeerInfo, tag: u8) -> usize {
        if tag == 0 { MAX_FRAME_LEN - HEADER_LEN } else { 1024 }
    }

    fn overloaded(&self, _limit: usize) -> Vec<u8> {
        b"overloaded".to_vec()
    }

    async fn handle(&self, peer: PeerInfo, body: Vec<u8>) -> Vec<u8> {
        if body == b"park" {
            let _ = self.release.acquire().await.map(|permit| permit.forget());
        }
        [format!("{:?}:", peer.class).into_bytes(), body].concat()
    }
}

/// A listener on loopback port 0 with `limits` and `tls`; returns its address, the handler and the counters.
async fn listen(limits: RpcLimits, tls: Option<RpcTls>) -> (SocketAddr, Arc<Echo>, Arc<Counters>, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counters = Arc::new(Counters::default());
    let settings = Settings { tls, limits, counters: counters.clone(), closed: broadcast::channel(1).0 };
    let shutdown = CancellationToken::new();
    let echo = Arc::new(Echo { release: Semaphore::new(0) });
    tokio::spawn(serve(listener, echo.clone(), settings, shutdown.clone()));
    (addr, echo, counters, shutdown)
}

/// A frame's bytes.
async fn frame(id: u64, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_frame(&mut bytes, id, body).await.expect("encode");
    bytes
}

/// Sends one request on `stream` and reads one response (id and body).
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, id: u64, body: &[u8]) -> (u64, Vec<u8>) {
    stream.write_all(&frame(id, body).await).await.expect("write");
    stream.flush().await.expect("flush");
    read_response(stream).await.expect("a response")
}

/// Reads one response frame, or `None` when the server closed the connection. Reads exactly one frame's bytes,
/// so the next call finds the next frame.
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(u64, Vec<u8>)> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut rest).await.ok()?;
    let bytes = [len.to_vec(), rest].concat();
    let mut decoder = Decoder::new(|_| MAX_FRAME_LEN);
    read_frame(&mut bytes.as_slice(), &mut decoder, Duration::from_secs(30)).await.ok().flatten()
}

/// Waits until `c` reaches `want`: a refusal is counted just after its connection is closed.
async fn counted(c: &AtomicU64, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counter(c) < want {
        assert!(tokio::time::Instant::now() < deadline, "counter stuck at {} (want {want})", counter(c));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(counter(c), want);
}

/// Waits until the server closes `stream`: EOF or a reset, and nothing else arriving first.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("expected the connection closed, got {n} bytes"),
    }
}

fn counter(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_peer_announcing_512_mib_and_stalling_is_dropped_while_others_are_served() {
    let limits = RpcLimits { read_timeout: Duration::from_millis(300), ..RpcLimits::default() };
    let (addr, _, _, shutdown) = listen(limits, None).await;

    // Type 0 may be that large; the header and a few body bytes follow, then nothing.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled.write_all(&announce(MAX_FRAME_LEN - HEADER_LEN, 0)).await.expect("write the claim");
    stalled.write_all(b"just a few bytes").await.expect("write");

    // While that frame is pending, other peers get their answers.
    let mut other = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(round_trip(&mut other, 42, b"ping").await, (42, b"Server:ping".to_vec()));

    // The stalled connection is closed by the server, by the read timeout (512 MiB never arrived).
    closed_by_server(&mut stalled).await;
    assert_eq!(round_trip(&mut other, 43, b"still here").await, (43, b"Server:still here".to_vec()));
    shutdown.cancel();
}

#[tokio::test]
async fn frames_over_their_types_limit_close_the_connection_before_the_body_is_read() {
    // A read timeout far beyond the test: a close can only come from the refusal.
    let limits = RpcLimits { read_timeout: Duration::from_secs(3600), ..RpcLimits::default() };
    let (addr, _, counters, shutdown) = listen(limits, None).await;
    for (len, tag) in [(MAX_FRAME_LEN - HEADER_LEN, 7), (8 << 20, 7), (2000, 9), (MAX_FRAME_LEN, 0)] {
        let mut peer = TcpStream::connect(addr).await.expect("connect");
        peer.write_all(&announce(len, tag)).await.expect("write the header");
        closed_by_server(&mut peer).await;
    }
    assert_eq!(counter(&counters.refused_frames), 4);
    // Within its type's limit a body is read and served.
    let mut peer = TcpStream::connect(addr).await.expect("connect");
    let body = [vec![7u8], vec![b'x'; 1023]].concat();
    assert_eq!(round_trip(&mut peer, 5, &body).await.1.len(), "Server:".len() + 1024);
    shutdown.cancel();
}

#[tokio::test]
async fn connections_past_the_per_client_cap_are_closed_at_once_and_the_slot_comes_back() {
    let limits = RpcLimits { max_conns_per_client: 3, ..RpcLimits::default() };
    let (addr, _, counters, shutdown) = listen(limits, None).await;
    let mut held = Vec::new();
    for id in 0..3 {
        let mut peer = TcpStream::connect(addr).await.expect("connect");
        round_trip(&mut peer, id, b"hi").await;
        held.push(peer);
    }
    let mut fourth = TcpStream::connect(addr).await.expect("connect");
    closed_by_server(&mut fourth).await;
    assert_eq!(counter(&counters.refused_per_client), 1);
    // The three still serve.
    assert_eq!(round_trip(&mut held[0], 9, b"hi").await.1, b"Server:hi");

    // Closing one gives its slot back once the server has seen the close.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut peer = TcpStream::connect(addr).await.expect("connect");
        peer.write_all(&frame(1, b"again").await).await.expect("write");
        if read_response(&mut peer).await.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slot never came back");
        tokio::task::yield_now().await;
    }
    shutdown.cancel();
}

#[tokio::test]
async fn connections_past_the_global_cap_are_closed_at_once() {
    let limits = RpcLimits { max_conns: 2, ..RpcLimits::default() };
    let (addr, _, counters, shutdown) = listen(limits, None).await;
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    round_trip(&mut first, 1, b"a").await;
    round_trip(&mut second, 2, b"b").await;
    let mut third = TcpStream::connect(addr).await.expect("connect");
    closed_by_server(&mut third).await;
    assert_eq!(counter(&counters.refused_over_max), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_get_an_error_and_the_connection_keeps_serving() {
    let limits = RpcLimits { max_in_flight_per_conn: 2, ..RpcLimits::default() };
    let (addr, echo, counters, shutdown) = listen(limits, None).await;
    let mut peer = TcpStream::connect(addr).await.expect("connect");
    peer.write_all(&[frame(1, b"park").await, frame(2, b"park").await].concat()).await.expect("write");
    assert_eq!(round_trip(&mut peer, 3, b"one too many").await, (3, b"overloaded".to_vec()));
    assert_eq!(counter(&counters.refused_in_flight), 1);

    echo.release.add_permits(2);
    let mut answered = vec![read_response(&mut peer).await.expect("1"), read_response(&mut peer).await.expect("2")];
    answered.sort();
    assert_eq!(answered, vec![(1, b"Server:park".to_vec()), (2, b"Server:park".to_vec())]);
    assert_eq!(round_trip(&mut peer, 4, b"after").await, (4, b"Server:after".to_vec()));
    shutdown.cancel();
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_one_with_a_parked_request_is_not() {
    let limits = RpcLimits { idle_timeout: Duration::from_millis(300), ..RpcLimits::default() };
    let (addr, echo, counters, shutdown) = listen(limits, None).await;
    let mut parked = TcpStream::connect(addr).await.expect("connect");
    parked.write_all(&frame(1, b"park").await).await.expect("write");
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    round_trip(&mut idle, 1, b"once").await;

    // The idle one is closed; the parked one, opened before it, has been as quiet for as long.
    closed_by_server(&mut idle).await;
    assert_eq!(counter(&counters.closed_idle), 1);
    echo.release.add_permits(1);
    assert_eq!(read_response(&mut parked).await, Some((1, b"Server:park".to_vec())));
    assert_eq!(round_trip(&mut parked, 2, b"more").await, (2, b"Server:more".to_vec()));
    shutdown.cancel();
}

/// A TLS client over `config`, connected to `addr`, expecting `server.dc1.consul`.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("server.dc1.consul").expect("name");
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

#[tokio::test]
async fn with_verify_incoming_plaintext_and_certificate_less_peers_are_refused() {
    let pki = Pki::new();
    let (addr, _, counters, shutdown) = listen(RpcLimits::default(), Some(pki.rpc_tls("server.dc1.consul"))).await;

    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain.write_all(&frame(1, b"hello").await).await.expect("write");
    closed_by_server(&mut plain).await;
    counted(&counters.refused_handshake, 1).await;

    // The handshake itself may complete (the configuration lets certificate-less clients through); the RPC refuses.
    if let Ok(mut anonymous) = tls_connect(addr, pki.client_config(None)).await {
        let _ = anonymous.write_all(&frame(2, b"hello").await).await;
        let _ = anonymous.flush().await;
        assert_eq!(read_response(&mut anonymous).await, None, "no answer without a client certificate");
    }
    counted(&counters.refused_handshake, 2).await;

    let mut client = tls_connect(addr, pki.client_config(Some(&pki.leaf("client.dc1.consul")))).await.expect("tls");
    assert_eq!(round_trip(&mut client, 3, b"hi").await, (3, b"Client:hi".to_vec()));
    let mut server = tls_connect(addr, pki.client_config(Some(&pki.leaf("server.dc1.consul")))).await.expect("tls");
    assert_eq!(round_trip(&mut server, 4, b"hi").await, (4, b"Server:hi".to_vec()));

    // A certificate from another CA fails the handshake.
    let stranger = Pki::new();
    let foreign = stranger.client_config(Some(&stranger.leaf("server.dc1.consul")));
    if let Ok(mut foreign) = tls_connect(addr, foreign).await {
        let _ = foreign.write_all(&frame(5, b"hello").await).await;
        assert_eq!(read_response(&mut foreign).await, None);
    }
    counted(&counters.refused_handshake, 3).await;
    shutdown.cancel();
}

#[tokio::test]
async fn without_verify_incoming_plaintext_is_served_unauthenticated_and_a_silent_peer_times_out() {
    let pki = Pki::new();
    let mut tls = pki.rpc_tls("server.dc1.consul");
    tls.verify_incoming = false;
    tls.verify_server_hostname = false;
    let limits = RpcLimits { handshake_timeout: Duration::from_millis(300), ..RpcLimits::default() };
    let (addr, _, counters, shutdown) = listen(limits, Some(tls)).await;

    let mut plain = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(round_trip(&mut plain, 1, b"hi").await, (1, b"Unauthenticated:hi".to_vec()));
    let mut anonymous = tls_connect(addr, pki.client_config(None)).await.expect("tls");
    assert_eq!(round_trip(&mut anonymous, 2, b"hi").await, (2, b"Unauthenticated:hi".to_vec()));
    // Without verify_server_hostname any certificate of the CA is a server's, as Consul trusts it.
    let mut client = tls_connect(addr, pki.client_config(Some(&pki.leaf("client.dc1.consul")))).await.expect("tls");
    assert_eq!(round_trip(&mut client, 3, b"hi").await, (3, b"Server:hi".to_vec()));

    let mut silent = TcpStream::connect(addr).await.expect("connect");
    closed_by_server(&mut silent).await;
    counted(&counters.refused_handshake, 1).await;
    shutdown.cancel();
}

/// A plaintext connection to `addr` from the loopback address `from`.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind(SocketAddr::from((from, 0))).expect("bind a loopback source");
    socket.connect(addr).await.expect("connect")
}

#[tokio::test]
async fn a_connection_its_peer_closes_is_reported_and_one_the_server_closes_is_not() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = RpcLimits { idle_timeout: Duration::from_millis(200), ..RpcLimits::default() };
    let counters = Arc::new(Counters::default());
    let (closed, mut hints) = broadcast::channel(8);
    let settings = Settings { tls: None, limits, counters: counters.clone(), closed };
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(Echo { release: Semaphore::new(0) }), settings, shutdown.clone()));
    let hint = async |hints: &mut broadcast::Receiver<IpAddr>| {
        tokio::time::timeout(Duration::from_secs(10), hints.recv()).await.expect("a hint in time").expect("open")
    };

    // A peer that made a call and went away (a killed agent's kernel closes its sockets).
    let mut gone = connect_from([127, 0, 0, 2], addr).await;
    assert_eq!(round_trip(&mut gone, 1, b"ping").await, (1, b"Server:ping".to_vec()));
    drop(gone);
    assert_eq!(hint(&mut hints).await, IpAddr::from([127, 0, 0, 2]));

    // A peer the server closes for idling is not reported: the next hint is the next peer that leaves.
    let mut idle = connect_from([127, 0, 0, 3], addr).await;
    closed_by_server(&mut idle).await;
    counted(&counters.closed_idle, 1).await;
    drop(idle);
    let leaving = connect_from([127, 0, 0, 4], addr).await;
    drop(leaving);
    assert_eq!(hint(&mut hints).await, IpAddr::from([127, 0, 0, 4]));
    shutdown.cancel();
}
