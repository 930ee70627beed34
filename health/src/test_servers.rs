//! Real servers for the tests, on loopback port 0: HTTP/1.1, HTTP/2 (h2c) and gRPC health, UDP echo.
//!
//! Each runs on the test's runtime and dies with it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, UdpSocket};

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
