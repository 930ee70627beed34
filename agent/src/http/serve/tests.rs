//! The accept loop over real sockets: the header-read bound, the per-client connection cap, `ConnectInfo`, drain.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{HandshakeFailures, ServeOptions, serve_router};

/// A router whose one route answers the peer address it was given.
fn echo_peer() -> Router {
    Router::new().route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }))
}

struct Served {
    addr: SocketAddr,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(max_conns_per_client: u32, header_read_timeout: Duration) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let options = ServeOptions {
        tls: None,
        max_conns_per_client: std::sync::Arc::new(max_conns_per_client.into()),
        handshake_timeout: Duration::from_secs(5),
        header_read_timeout,
    };
    let done = tokio::spawn(serve_router(listener, echo_peer(), shutdown.clone(), options));
    Served { addr, shutdown, done }
}

/// Sends one `GET /peer` on `stream` and reads until the connection closes.
async fn get_peer(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    read_all(stream).await
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let served = serve(0, Duration::from_secs(10)).await;
    let mut stream = TcpStream::connect(served.addr).await.expect("connect");
    let local = stream.local_addr().expect("local addr");
    let answer = get_peer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with(&local.to_string()), "{answer}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let served = serve(0, Duration::from_millis(200)).await;
    let mut slow = TcpStream::connect(served.addr).await.expect("connect");
    slow.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n").await.expect("partial headers");
    // The server closes the connection by itself; without the bound this read would wait forever, so a generous
    // outer bound turns that hang into a failure.
    let answer = tokio::time::timeout(Duration::from_secs(30), read_all(&mut slow))
        .await
        .expect("the server never closed the slow connection");
    assert!(!answer.contains("200 OK"), "{answer}");
    let mut prompt = TcpStream::connect(served.addr).await.expect("connect");
    assert!(get_peer(&mut prompt).await.starts_with("HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn the_connection_past_the_per_client_cap_gets_consuls_429_and_a_freed_slot_serves_again() {
    let served = serve(2, Duration::from_secs(10)).await;
    let mut first = TcpStream::connect(served.addr).await.expect("first");
    let mut second = TcpStream::connect(served.addr).await.expect("second");
    // A request on each proves both are accepted (and counted) before the third arrives.
    for stream in [&mut first, &mut second] {
        stream.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).await.expect("answer");
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let mut third = TcpStream::connect(served.addr).await.expect("third");
    let refused = read_all(&mut third).await;
    assert!(refused.starts_with("HTTP/1.1 429 Too Many Requests"), "{refused}");
    assert!(refused.ends_with("Your IP is issuing too many concurrent connections, please rate limit your calls\n"));

    drop(first);
    // The slot frees once the server has seen the close; retry until it has.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(served.addr).await.expect("again");
        let answer = get_peer(&mut again).await;
        if answer.starts_with("HTTP/1.1 200 OK") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(tokio::time::Instant::now() < deadline, "the closed connection's slot was never freed");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let served = serve(0, Duration::from_secs(10)).await;
    let mut idle = TcpStream::connect(served.addr).await.expect("connect");
    idle.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 12];
    idle.read_exact(&mut buf).await.expect("answer");
    served.shutdown.cancel();
    served.done.await.expect("task").expect("serve returns Ok");
    let rest = read_all(&mut idle).await;
    assert!(!rest.contains("HTTP/1.1"), "nothing more is sent: {rest}");
}

/// A CA-signed certificate for localhost in `dir`, loaded as HTTPS material, and a client config trusting the CA.
fn tls_pair(dir: &std::path::Path) -> (std::sync::Arc<roster_tls::Tls>, std::sync::Arc<rustls::ClientConfig>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key")).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
    let settings = roster_tls::Settings {
        cert_file: Some(dir.join("cert.pem")),
        key_file: Some(dir.join("key.pem")),
        ..roster_tls::Settings::default()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let client = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    (std::sync::Arc::new(roster_tls::Tls::load(settings).expect("TLS")), std::sync::Arc::new(client))
}

async fn serve_tls(
    tls: std::sync::Arc<roster_tls::Tls>,
    max_conns_per_client: u32,
    handshake_timeout: Duration,
) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let options = ServeOptions {
        tls: Some(tls),
        max_conns_per_client: std::sync::Arc::new(max_conns_per_client.into()),
        handshake_timeout,
        header_read_timeout: Duration::from_secs(10),
    };
    let done = tokio::spawn(serve_router(listener, echo_peer(), shutdown.clone(), options));
    Served { addr, shutdown, done }
}

#[tokio::test]
async fn a_client_that_never_starts_the_tls_handshake_is_cut_off_and_frees_its_slot() {
    let dir = tempfile::tempdir().expect("dir");
    let (tls, client) = tls_pair(dir.path());
    let served = serve_tls(tls, 1, Duration::from_millis(200)).await;
    let mut silent = TcpStream::connect(served.addr).await.expect("connect");
    let closed = tokio::time::timeout(Duration::from_secs(30), read_all(&mut silent)).await;
    assert_eq!(closed.expect("the server never closed the silent connection"), "");
    // The only slot of this client was the silent connection's; a real client gets served once it is gone.
    let connector = tokio_rustls::TlsConnector::from(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tcp = TcpStream::connect(served.addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut stream = connector.connect(name, tcp).await.expect("handshake");
        stream.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        if answer.starts_with(b"HTTP/1.1 200 OK") {
            break;
        }
        assert!(answer.starts_with(b"HTTP/1.1 429"), "{}", String::from_utf8_lossy(&answer));
        assert!(tokio::time::Instant::now() < deadline, "the silent connection's slot was never freed");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn over_https_the_connection_past_the_cap_gets_the_429_through_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let (tls, client) = tls_pair(dir.path());
    let served = serve_tls(tls, 1, Duration::from_millis(200)).await;
    let connector = tokio_rustls::TlsConnector::from(client);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tcp = TcpStream::connect(served.addr).await.expect("connect");
    let mut first = connector.connect(name.clone(), tcp).await.expect("handshake");
    first.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut status = [0u8; 12];
    first.read_exact(&mut status).await.expect("answer");
    assert_eq!(&status, b"HTTP/1.1 200");
    let tcp = TcpStream::connect(served.addr).await.expect("connect");
    let mut second = connector.connect(name, tcp).await.expect("the handshake still completes");
    let mut answer = Vec::new();
    let _ = second.read_to_end(&mut answer).await;
    assert!(answer.starts_with(b"HTTP/1.1 429 Too Many Requests"), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn a_handshake_under_way_does_not_hold_up_the_drain() {
    let dir = tempfile::tempdir().expect("dir");
    let (tls, client) = tls_pair(dir.path());
    let served = serve_tls(tls, 0, Duration::from_secs(3600)).await;
    let silent = TcpStream::connect(served.addr).await.expect("connect");
    // The loop accepts in order, so once a later connection is answered the silent one is in its handshake.
    let tcp = TcpStream::connect(served.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut later = tokio_rustls::TlsConnector::from(client).connect(name, tcp).await.expect("handshake");
    later.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = Vec::new();
    let _ = later.read_to_end(&mut answer).await;
    assert!(answer.starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&answer));
    served.shutdown.cancel();
    // Without the drain's own exit the stalled handshake would hold it for its hour-long timeout.
    let drained = tokio::time::timeout(Duration::from_secs(30), served.done).await;
    drained.expect("the drain waited for the stalled handshake").expect("task").expect("serve returns Ok");
    drop(silent);
}

#[test]
fn a_failed_handshake_is_logged_at_warn_once_per_client_ip() {
    let failures = HandshakeFailures::default();
    let a: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
    let a_again: SocketAddr = "192.0.2.1:40001".parse().expect("addr");
    let b: SocketAddr = "192.0.2.2:40000".parse().expect("addr");
    assert!(failures.report(a, "no client certificate"), "the first failure from an IP is a warning");
    assert!(!failures.report(a_again, "no client certificate"), "the same IP on another port is not warned again");
    assert!(failures.report(b, "timed out"), "another IP is warned on its own");
}

/// A plain connection's task lives as long as a watcher stays parked on it, so it must not carry what only HTTPS
/// uses: the TLS handshake and session once made every plain connection's future five times its HTTP/1.1 part.
#[tokio::test]
async fn a_plain_connections_future_carries_nothing_of_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_a, _b) = (TcpStream::connect(addr).await.expect("connect"), TcpStream::connect(addr).await.expect("connect"));
    let ((first, remote), (second, _)) =
        (listener.accept().await.expect("accept"), listener.accept().await.expect("accept"));
    let options = ServeOptions {
        tls: None,
        max_conns_per_client: std::sync::Arc::new(0.into()),
        handshake_timeout: Duration::from_secs(5),
        header_read_timeout: Duration::from_secs(5),
    };
    let failures = std::sync::Arc::new(HandshakeFailures::default());
    let shutdown = CancellationToken::new();
    let whole = super::connection(first, remote, None, echo_peer(), options.clone(), shutdown.clone(), failures);
    let http = super::http1(second, remote, None, echo_peer(), &options, shutdown);
    let (whole, http) = (std::mem::size_of_val(&whole), std::mem::size_of_val(&http));
    assert!(whole <= http + 512, "a plain connection's future is {whole} bytes, its HTTP/1.1 part {http}");
}
