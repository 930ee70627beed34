//! Blocking-query watchers spoken by hand over their own keep-alive HTTP/1.1 connection, for the benchmarks that
//! park thousands of them (`watch_bench`, `soak_bench watch`).
//!
//! A pooled HTTP client would hide which connection carries which watcher and when the first byte of an answer
//! arrives; writing the request and reading the answer off a `TcpStream` keeps one watcher to one socket, as a
//! Consul client watching a key holds it.

use anyhow::{Context as _, ensure};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The request line and headers of a keep-alive `GET path`, as a watcher sends it.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")
}

/// Reads one HTTP/1.1 answer whose first byte was already read, up to the end of its body (Content-Length), so
/// the connection can carry the next request. Fails unless it is a 200; returns its `X-Consul-Index`, the index
/// the watcher blocks past next.
pub async fn read_answer(stream: &mut TcpStream, first: u8) -> anyhow::Result<u64> {
    let mut buf = vec![first];
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        let read = stream.read(&mut chunk).await?;
        ensure!(read > 0, "connection closed inside a response head");
        buf.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    ensure!(head.starts_with("http/1.1 200"), "unexpected response: {}", head.lines().next().unwrap_or(""));
    let header = |name: &str| -> anyhow::Result<u64> {
        let value = head.lines().find_map(|line| line.strip_prefix(name)).with_context(|| format!("no {name}"))?;
        Ok(value.trim().parse()?)
    };
    let length = usize::try_from(header("content-length:")?)?;
    let index = header("x-consul-index:")?;
    let mut have = buf.len() - header_end;
    while have < length {
        let read = stream.read(&mut chunk).await?;
        ensure!(read > 0, "connection closed inside a response body");
        have += read;
    }
    Ok(index)
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}
