//! The statsd and DogStatsD sinks: one line per event in go-metrics' formats, buffered into packets of at most
//! 1432 bytes (go-metrics' size, which fits an Ethernet MTU) and sent when a packet fills or every 100 ms.
//!
//! statsd has no labels, so their values join the name (`consul.api.http.GET.v1_kv_:3.2|ms`), as go-metrics'
//! statsd sink does; DogStatsD sends them as tags with `dogstatsd_tags` (`consul.api.http:3.2|ms|#method:GET`).
//! A send that fails (nobody listening, a full socket buffer) drops the packet: metrics never hold up the agent.
//! Each handle renders its name and tags once, when its key is first registered.

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key};

use crate::config::ConfigError;

/// go-metrics' statsd packet size.
const MAX_PACKET: usize = 1432;

/// Which line format a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Plain statsd: `name:value|type`, values as Go's `%f`.
    Statsd,
    /// DogStatsD: `name:value|type|#tag:value,...`.
    DogStatsd,
}

/// One UDP destination and the packet being filled for it.
pub(crate) struct UdpSink {
    flavor: Flavor,
    /// `dogstatsd_tags`, already joined.
    global_tags: String,
    shared: Arc<Shared>,
}

struct Shared {
    socket: UdpSocket,
    packet: Mutex<Vec<u8>>,
}

impl UdpSink {
    pub(crate) fn new(addr: SocketAddr, flavor: Flavor, tags: &[String]) -> Result<UdpSink, ConfigError> {
        let local: SocketAddr =
            if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        let socket = UdpSocket::bind(local)
            .and_then(|s| s.connect(addr).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| ConfigError::new(format!("a UDP socket for {addr}: {e}")))?;
        let shared = Arc::new(Shared { socket, packet: Mutex::new(Vec::with_capacity(MAX_PACKET * 2)) });
        Ok(UdpSink { flavor, global_tags: tags.join(","), shared })
    }

    pub(crate) fn counter(&self, key: &Key) -> Counter {
        Counter::from_arc(Arc::new(self.line(key, "c")))
    }

    pub(crate) fn gauge(&self, key: &Key) -> Gauge {
        Gauge::from_arc(Arc::new(self.line(key, "g")))
    }

    pub(crate) fn histogram(&self, key: &Key) -> Histogram {
        Histogram::from_arc(Arc::new(self.line(key, "ms")))
    }

    /// Sends the packet being filled, if any.
    pub(crate) fn flush(&self) {
        let mut packet = self.shared.packet.lock().unwrap_or_else(PoisonError::into_inner);
        if !packet.is_empty() {
            let _ = self.shared.socket.send(&packet);
            packet.clear();
        }
    }

    fn line(&self, key: &Key, kind: &'static str) -> Line {
        let clean = |s: &str| s.replace([':', ' '], "_");
        let (mut name, mut suffix) = (clean(key.name()), format!("|{kind}"));
        match self.flavor {
            Flavor::Statsd => {
                for label in key.labels() {
                    name.push('.');
                    name.push_str(&clean(label.value()));
                }
            }
            Flavor::DogStatsd => {
                let mut tags: Vec<String> = key.labels().map(|l| format!("{}:{}", clean(l.key()), l.value())).collect();
                if !self.global_tags.is_empty() {
                    tags.push(self.global_tags.clone());
                }
                if !tags.is_empty() {
                    suffix.push_str("|#");
                    suffix.push_str(&tags.join(","));
                }
            }
        }
        name.push(':');
        suffix.push('\n');
        Line { shared: self.shared.clone(), flavor: self.flavor, name, suffix, gauge: AtomicU64::new(0) }
    }
}

/// A registered metric: its rendered name and suffix, and a gauge's value (statsd gauges are sent whole).
struct Line {
    shared: Arc<Shared>,
    flavor: Flavor,
    name: String,
    suffix: String,
    gauge: AtomicU64,
}

impl Line {
    fn send(&self, value: f64, integer: bool) {
        let mut packet = self.shared.packet.lock().unwrap_or_else(PoisonError::into_inner);
        let start = packet.len();
        packet.extend_from_slice(self.name.as_bytes());
        // Writing into a Vec cannot fail.
        let _ = match (self.flavor, integer) {
            (Flavor::Statsd, _) => write!(packet, "{value:.6}"),
            (Flavor::DogStatsd, true) => write!(packet, "{value:.0}"),
            (Flavor::DogStatsd, false) => write!(packet, "{value}"),
        };
        packet.extend_from_slice(self.suffix.as_bytes());
        if packet.len() > MAX_PACKET && start > 0 {
            let _ = self.shared.socket.send(&packet[..start]);
            packet.drain(..start);
        }
    }

    fn update_gauge(&self, f: impl Fn(f64) -> f64) {
        let mut value = 0.0;
        // `fetch_update` only fails when the closure returns `None`, which this one never does.
        let _ = self.gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            value = f(f64::from_bits(bits));
            Some(value.to_bits())
        });
        self.send(value, false);
    }
}

impl CounterFn for Line {
    #[allow(clippy::cast_precision_loss)]
    fn increment(&self, value: u64) {
        self.send(value as f64, true);
    }

    #[allow(clippy::cast_precision_loss)]
    fn absolute(&self, value: u64) {
        self.send(value as f64, true);
    }
}

impl GaugeFn for Line {
    fn increment(&self, value: f64) {
        self.update_gauge(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update_gauge(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update_gauge(|_| value);
    }
}

impl HistogramFn for Line {
    fn record(&self, value: f64) {
        self.send(value, false);
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use metrics::{Key, Label};

    use super::{Flavor, UdpSink};

    fn receive(socket: &UdpSocket) -> String {
        let mut buf = [0u8; 2048];
        let n = socket.recv(&mut buf).expect("a packet");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn lines_are_go_metrics_statsd_and_dogstatsd_formats() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        server.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let addr = server.local_addr().expect("addr");
        let key = Key::from_parts("consul.api.http", vec![Label::new("method", "GET"), Label::new("path", "v1_kv_")]);

        let statsd = UdpSink::new(addr, Flavor::Statsd, &[]).expect("sink");
        statsd.counter(&Key::from_static_name("consul.raft.apply")).increment(2);
        statsd.histogram(&key).record(1.5);
        statsd.flush();
        assert_eq!(receive(&server), "consul.raft.apply:2.000000|c\nconsul.api.http.GET.v1_kv_:1.500000|ms\n");

        let dog = UdpSink::new(addr, Flavor::DogStatsd, &["env:test".to_owned()]).expect("sink");
        dog.counter(&Key::from_static_name("consul.raft.apply")).increment(2);
        let gauge = dog.gauge(&Key::from_static_name("consul.serf.members"));
        gauge.set(3.0);
        gauge.increment(1.0);
        dog.histogram(&key).record(1.5);
        dog.flush();
        assert_eq!(
            receive(&server),
            "consul.raft.apply:2|c|#env:test\nconsul.serf.members:3|g|#env:test\nconsul.serf.members:4|g|#env:test\n\
             consul.api.http:1.5|ms|#method:GET,path:v1_kv_,env:test\n"
        );
    }

    #[test]
    fn a_full_packet_is_sent_before_the_line_that_would_overflow_it() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        server.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let sink = UdpSink::new(server.local_addr().expect("addr"), Flavor::Statsd, &[]).expect("sink");
        let counter = sink.counter(&Key::from_static_name("consul.rpc.request"));
        let line = "consul.rpc.request:1.000000|c\n".len();
        for _ in 0..50 {
            counter.increment(1);
        }
        let first = receive(&server);
        assert!(first.len() <= super::MAX_PACKET, "{} bytes", first.len());
        assert_eq!(first.lines().count(), super::MAX_PACKET / line);
        sink.flush();
        assert_eq!(first.lines().count() + receive(&server).lines().count(), 50);
    }
}
