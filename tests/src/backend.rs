//! A tiny HTTP backend on loopback whose health the test flips: 200 while healthy, 503 while not. Health checks and the latency bench probe it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running backend; it stops when dropped.
pub struct FlipBackend {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicU64>,
    /// When the first request after the last flip was answered: the probe that saw the new state.
    first_since_flip: Arc<Mutex<Option<Instant>>>,
    task: JoinHandle<()>,
}

impl FlipBackend {
    /// Starts a healthy backend on 127.0.0.1 and an OS-chosen port.
    pub async fn start() -> std::io::Result<FlipBackend> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let healthy = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicU64::new(0));
        let first_since_flip = Arc::new(Mutex::new(None));
        let (flag, counter, first) = (healthy.clone(), hits.clone(), first_since_flip.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let flag = flag.clone();
                let first = first.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = stream.read(&mut buf).await;
                    let reply: &[u8] = if flag.load(Ordering::SeqCst) {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown"
                    };
                    let _ = stream.write_all(reply).await;
                    let mut first = first.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    first.get_or_insert_with(Instant::now);
                });
            }
        });
        Ok(FlipBackend { addr, healthy, hits, first_since_flip, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it has accepted (one per probe).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Makes it answer 200 (true) or 503 (false) from the next request on.
    pub fn set_healthy(&self, healthy: bool) {
        *self.first_since_flip.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// When the first probe after the last flip got its answer, if one has come.
    pub fn first_probe_since_flip(&self) -> Option<Instant> {
        *self.first_since_flip.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FlipBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
