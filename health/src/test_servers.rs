//! Real servers for the tests, on loopback port 0: HTTP/1.1, HTTP/2 (h2c and TLS) and gRPC health, UDP echo, and a
//! TCP port that never says a word.
//!
//! Each runs on the test's runtime and dies with it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

/// The requests a server has seen, in order.
pub(crate) type Log = Arc<Mutex<Vec<Seen>>>;

/// The SNI names a TLS server saw, one per handshake (`None` when the client sent none, as for an IP address).
pub(crate) type SniLog = Arc<Mutex<Vec<Option<String>>>>;

type Respond = Arc<dyn Fn(&Seen) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// An HTTP/1.1 server answering each request with `respond(request)` = (status, headers, body).
pub(crate) async fn http_server(
    respond: impl Fn(&Seen) -> (u16, Vec<(String, String)>, String) + Send + Sync + 'static,
) -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log: Log = Arc::default();
    let respond: Respond = Arc::new(respond);
    let server_log = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, respond) = (server_log.clone(), respond.clone());
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let (log, respond) = (log.clone(), respond.clone());
                async move {
                    let seen = seen(request).await;
                    log.lock().expect("log").push(seen.clone());
                    let (status, headers, body) = respond(&seen);
                    let mut response = http::Response::builder().status(status);
                    for (name, value) in headers {
                        response = response.header(name, value);
                    }
                    Ok::<_, Infallible>(response.body(Full::new(Bytes::from(body))).expect("response"))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, log)
}

/// An h2c server that implements `grpc.health.v1.Health/Check`: `status_of(service)` gives the serving status
/// (1 SERVING, 2 NOT_SERVING), or `None` for a NOT_FOUND error in the trailers.
pub(crate) async fn grpc_server(status_of: impl Fn(&str) -> Option<u64> + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let status_of = Arc::new(status_of);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let status_of = status_of.clone();
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let status_of = status_of.clone();
                async move {
                    let seen = seen(request).await;
                    let service = decode_service(&seen.body);
                    let mut trailers = http::HeaderMap::new();
                    let mut frames = Vec::new();
                    match status_of(&service) {
                        Some(status) => {
                            frames.push(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status as u8])));
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        }
                        None => {
                            trailers.insert("grpc-status", http::HeaderValue::from_static("5"));
                            trailers.insert("grpc-message", http::HeaderValue::from_static("unknown service"));
                        }
                    }
                    frames.push(Frame::trailers(trailers));
                    let body = StreamBody::new(futures_util::stream::iter(frames.into_iter().map(Ok::<_, Infallible>)));
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .expect("response");
                    Ok::<_, Infallible>(response)
                }
            });
            let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            tokio::spawn(async move { builder.serve_connection(TokioIo::new(stream), service).await });
        }
    });
    addr
}

/// A TLS server with a fresh self-signed certificate (for `localhost` and 127.0.0.1) that offers the ALPN protocols
/// `alpn` and then speaks HTTP/2 on every connection, answering PINGs and leaving requests unanswered.
pub(crate) async fn h2_tls_server(alpn: &[&[u8]]) -> (SocketAddr, SniLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(Arc::new(self_signed_server_config(alpn)));
    let sni_log: SniLog = Arc::default();
    let server_sni_log = sni_log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, sni_log) = (acceptor.clone(), server_sni_log.clone());
            tokio::spawn(async move {
                let Ok(tls_stream) = acceptor.accept(stream).await else { return };
                let sni = tls_stream.get_ref().1.server_name().map(str::to_string);
                sni_log.lock().expect("sni log").push(sni);
                let Ok(mut connection) = h2::server::handshake(tls_stream).await else { return };
                // Polling for requests drives the connection, and with it the PONGs.
                while let Some(Ok(_request)) = connection.accept().await {}
            });
        }
    });
    (addr, sni_log)
}

/// A TCP server that accepts connections and holds them open without ever sending a byte.
pub(crate) async fn silent_tcp_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A UDP server that echoes every datagram it gets (an empty one as one byte).
pub(crate) async fn udp_echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            let reply = if len == 0 { &b"!"[..] } else { &buffer[..len] };
            let _ = socket.send_to(reply, peer).await;
        }
    });
    addr
}

/// A loopback address where nothing listens (bound, then released).
pub(crate) async fn closed_tcp_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

fn self_signed_server_config(alpn: &[&[u8]]) -> rustls::ServerConfig {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config
}

async fn seen(request: http::Request<Incoming>) -> Seen {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    Seen { method: parts.method.to_string(), path: parts.uri.path().to_string(), headers: parts.headers, body }
}

/// The service name of a framed `HealthCheckRequest` (empty when absent).
fn decode_service(body: &[u8]) -> String {
    match body.get(5..) {
        Some([0x0a, len, rest @ ..]) => {
            String::from_utf8_lossy(&rest[..usize::from(*len).min(rest.len())]).into_owned()
        }
        _ => String::new(),
    }
}
