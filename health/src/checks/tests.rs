//! Tests of the check tasks through the public handle: TTL timing, event emission, thresholds end to end,
//! replacement, deregistration, alias, the concurrency bound and the first-run stagger.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::{AliasSource, Checks, Config, Event};
use crate::error::Error;
use crate::spec::{CheckKind, CheckSpec};
use crate::status::{Status, Thresholds};
use crate::test_servers::http_server;

/// An alias source fed by a watch channel of (status, output, index).
struct WatchAlias(watch::Receiver<(Status, String, u64)>);

#[async_trait::async_trait]
impl AliasSource for WatchAlias {
    async fn wait_status(&self, _node: &str, _service_id: Option<&str>, after_index: u64) -> (Status, String, u64) {
        let mut receiver = self.0.clone();
        let current = receiver.wait_for(|(_, _, index)| *index > after_index).await;
        current.map(|value| value.clone()).unwrap_or((Status::Critical, "alias source gone".to_string(), after_index))
    }
}

struct Harness {
    checks: Checks,
    events: mpsc::Receiver<Event>,
    alias: watch::Sender<(Status, String, u64)>,
    shutdown: CancellationToken,
}

fn start(max_concurrent: usize) -> Harness {
    let (events_sender, events) = mpsc::channel(64);
    let (alias, alias_receiver) = watch::channel((Status::Passing, "All checks passing.".to_string(), 1));
    let shutdown = CancellationToken::new();
    let config = Config { enable_script_checks: true, max_concurrent };
    let checks = Checks::spawn(config, Arc::new(WatchAlias(alias_receiver)), None, events_sender, shutdown.clone());
    Harness { checks, events, alias, shutdown }
}

fn spec(check_id: &str, kind: CheckKind, interval: Duration, initial_status: Status) -> CheckSpec {
    CheckSpec {
        check_id: check_id.to_string(),
        kind,
        interval,
        timeout: Duration::from_secs(2),
        thresholds: Thresholds::default(),
        initial_status,
        output_max_size: 4096,
        start_period: Duration::ZERO,
        deregister_critical_after: None,
    }
}

fn ttl(check_id: &str, ttl: Duration, initial_status: Status) -> CheckSpec {
    spec(check_id, CheckKind::Ttl { ttl }, Duration::ZERO, initial_status)
}

fn http_kind(url: String) -> CheckKind {
    CheckKind::Http {
        url,
        method: "GET".to_string(),
        headers: Vec::new(),
        body: String::new(),
        tls_server_name: None,
        tls_skip_verify: false,
        disable_redirects: false,
    }
}

fn status_event(check_id: &str, status: Status, output: &str) -> Event {
    Event::Status { check_id: check_id.to_string(), status, output: output.to_string() }
}

impl Harness {
    async fn next_event(&mut self, within: Duration) -> Option<Event> {
        tokio::time::timeout(within, self.events.recv()).await.ok().flatten()
    }

    /// Every event that arrives within `window`.
    async fn events_within(&mut self, window: Duration) -> Vec<Event> {
        let deadline = Instant::now() + window;
        let mut events = Vec::new();
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            events.push(event);
        }
        events
    }
}

#[tokio::test]
async fn ttl_of_100ms_is_critical_120ms_after_the_last_update() {
    let mut harness = start(8);
    harness.checks.upsert(ttl("t1", Duration::from_millis(100), Status::Critical));
    harness.checks.ttl_update("t1", Status::Passing, "ok".to_string()).expect("ttl check");
    let updated = Instant::now();
    assert_eq!(harness.checks.status("t1"), Some((Status::Passing, "ok".to_string())));
    assert_eq!(harness.next_event(Duration::from_secs(1)).await, Some(status_event("t1", Status::Passing, "ok")));
    tokio::time::sleep_until(updated + Duration::from_millis(80)).await;
    assert_eq!(harness.checks.status("t1").map(|(status, _)| status), Some(Status::Passing));
    tokio::time::sleep_until(updated + Duration::from_millis(120)).await;
    let expired = "TTL expired (last output before timeout follows): ok";
    assert_eq!(harness.checks.status("t1"), Some((Status::Critical, expired.to_string())));
    assert_eq!(harness.next_event(Duration::ZERO).await, Some(status_event("t1", Status::Critical, expired)));
}

#[tokio::test]
async fn ttl_updates_restart_the_ttl_and_unchanged_updates_send_nothing() {
    let mut harness = start(8);
    harness.checks.upsert(ttl("t1", Duration::from_millis(150), Status::Critical));
    for _ in 0..4 {
        harness.checks.ttl_update("t1", Status::Warning, "busy".to_string()).expect("ttl check");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // Four updates 60 ms apart kept a 150 ms TTL alive, and only the first changed anything.
    assert_eq!(harness.events_within(Duration::from_millis(50)).await, [status_event("t1", Status::Warning, "busy")]);
    let expired = harness.next_event(Duration::from_millis(200)).await;
    assert_eq!(
        expired,
        Some(status_event("t1", Status::Critical, "TTL expired (last output before timeout follows): busy"))
    );
}

#[tokio::test]
async fn ttl_update_refuses_unknown_and_non_ttl_checks() {
    let harness = start(8);
    harness.checks.upsert(spec(
        "tcp",
        CheckKind::Tcp { addr: "127.0.0.1:1".into() },
        Duration::from_secs(60),
        Status::Critical,
    ));
    let unknown = harness.checks.ttl_update("nope", Status::Passing, String::new());
    assert_eq!(unknown, Err(Error::UnknownCheck("nope".to_string())));
    let not_ttl = harness.checks.ttl_update("tcp", Status::Passing, String::new());
    assert_eq!(not_ttl, Err(Error::NotTtl("tcp".to_string())));
    assert_eq!(
        not_ttl.expect_err("not ttl").to_string(),
        "Check \"tcp\" is not a TTL check and cannot be updated through the agent"
    );
}

#[tokio::test]
async fn ttl_update_output_is_cut_to_output_max_size() {
    let harness = start(8);
    let mut small = ttl("t1", Duration::from_secs(60), Status::Critical);
    small.output_max_size = 4;
    harness.checks.upsert(small);
    harness.checks.ttl_update("t1", Status::Passing, "abcdefgh".to_string()).expect("ttl check");
    let output = harness.checks.status("t1").map(|(_, output)| output);
    assert_eq!(output.as_deref(), Some("abcd ... (captured 4 of 8 bytes)"));
}

#[tokio::test]
async fn unchanged_probe_results_send_no_events() {
    let (addr, log) = http_server(|_| (200, vec![], "same".to_string())).await;
    let mut harness = start(8);
    harness.checks.upsert(spec(
        "h1",
        http_kind(format!("http://{addr}/")),
        Duration::from_millis(40),
        Status::Critical,
    ));
    let output = format!("HTTP GET http://{addr}/: 200 OK Output: same");
    let first = harness.next_event(Duration::from_secs(30)).await;
    assert_eq!(first, Some(status_event("h1", Status::Passing, &output)));
    // Wait for the server to have answered five probes (the signal), however slow the machine, then look at what
    // arrived meanwhile: the four unchanged results sent nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().expect("log").len() < 5 {
        assert!(Instant::now() < deadline, "the check stopped probing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut later = Vec::new();
    while let Ok(event) = harness.events.try_recv() {
        later.push(event);
    }
    assert_eq!(later, [], "unchanged results sent events");
}

#[tokio::test]
async fn flapping_server_is_smoothed_by_failure_threshold() {
    // Requests get 200, 500, 200, 500, 500, then 200 for ever.
    let codes = [200u16, 500, 200, 500, 500];
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let (addr, _log) = http_server(move |_| {
        let idx = counter.fetch_add(1, Ordering::SeqCst);
        let code = codes.get(idx).copied().unwrap_or(200);
        (code, vec![], if code == 200 { "up" } else { "down" }.to_string())
    })
    .await;
    let mut harness = start(8);
    let mut check = spec("h1", http_kind(format!("http://{addr}/")), Duration::from_millis(30), Status::Critical);
    check.thresholds.failures_before_critical = 2;
    harness.checks.upsert(check);
    let mut events = Vec::new();
    while events.len() < 3 {
        let Some(event) = harness.next_event(Duration::from_secs(2)).await else { break };
        events.push(event);
    }
    let up = format!("HTTP GET http://{addr}/: 200 OK Output: up");
    let down = format!("HTTP GET http://{addr}/: 500 Internal Server Error Output: down");
    assert_eq!(
        events,
        [
            status_event("h1", Status::Passing, &up),
            status_event("h1", Status::Critical, &down),
            status_event("h1", Status::Passing, &up)
        ]
    );
}

#[tokio::test]
async fn replaced_check_restarts_from_its_new_initial_status() {
    let mut harness = start(8);
    harness.checks.upsert(ttl("t1", Duration::from_secs(60), Status::Passing));
    harness.checks.ttl_update("t1", Status::Warning, "slow".to_string()).expect("ttl check");
    assert_eq!(harness.next_event(Duration::from_secs(1)).await, Some(status_event("t1", Status::Warning, "slow")));
    harness.checks.upsert(ttl("t1", Duration::from_millis(50), Status::Passing));
    assert_eq!(harness.checks.status("t1"), Some((Status::Passing, String::new())));
    assert_eq!(harness.checks.len(), 1);
    // The new registration's own TTL runs, and nothing from the old one arrives.
    let events = harness.events_within(Duration::from_millis(150)).await;
    assert_eq!(events, [status_event("t1", Status::Critical, "TTL expired")]);
}

#[tokio::test]
async fn removed_check_stops_and_sends_nothing_more() {
    let (addr, log) = http_server(|_| (200, vec![], String::new())).await;
    let mut harness = start(8);
    harness.checks.upsert(spec(
        "h1",
        http_kind(format!("http://{addr}/")),
        Duration::from_millis(20),
        Status::Critical,
    ));
    assert!(harness.next_event(Duration::from_secs(1)).await.is_some());
    harness.checks.remove("h1");
    assert_eq!((harness.checks.len(), harness.checks.status("h1")), (0, None));
    let probes_at_removal = log.lock().expect("log").len();
    assert_eq!(harness.events_within(Duration::from_millis(100)).await, []);
    assert!(log.lock().expect("log").len() <= probes_at_removal + 1, "at most the probe in flight finished");
}

#[tokio::test]
async fn critical_too_long_is_sent_once_per_critical_stretch() {
    let mut harness = start(8);
    let mut check = ttl("t1", Duration::from_secs(60), Status::Critical);
    check.deregister_critical_after = Some(Duration::from_millis(100));
    harness.checks.upsert(check);
    let too_long = Event::CriticalTooLong { check_id: "t1".to_string() };
    let started = Instant::now();
    assert_eq!(harness.next_event(Duration::from_secs(1)).await, Some(too_long.clone()));
    assert!(started.elapsed() >= Duration::from_millis(95));
    assert_eq!(harness.events_within(Duration::from_millis(150)).await, []);
    // Passing breaks the stretch; the next critical stretch counts afresh.
    harness.checks.ttl_update("t1", Status::Passing, String::new()).expect("ttl");
    harness.checks.ttl_update("t1", Status::Critical, "down".to_string()).expect("ttl");
    let events = harness.events_within(Duration::from_millis(200)).await;
    assert_eq!(events.last(), Some(&too_long));
}

#[tokio::test]
async fn alias_mirrors_its_source_as_it_changes() {
    let mut harness = start(8);
    let alias = CheckKind::Alias { node: "n1".to_string(), service_id: Some("web-1".to_string()) };
    harness.checks.upsert(spec("a1", alias, Duration::ZERO, Status::Critical));
    let first = harness.next_event(Duration::from_secs(1)).await;
    assert_eq!(first, Some(status_event("a1", Status::Passing, "All checks passing.")));
    harness.alias.send_replace((Status::Critical, "web-1 is down".to_string(), 7));
    let second = harness.next_event(Duration::from_secs(1)).await;
    assert_eq!(second, Some(status_event("a1", Status::Critical, "web-1 is down")));
}

#[tokio::test]
async fn probes_in_flight_never_exceed_max_concurrent() {
    // A raw HTTP server that holds each connection 50 ms and records how many it held at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (server_in_flight, server_most) = (in_flight.clone(), most.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (in_flight, most) = (server_in_flight.clone(), server_most.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    let mut harness = start(2);
    for idx in 0..10 {
        let check =
            spec(&format!("h{idx}"), http_kind(format!("http://{addr}/")), Duration::from_millis(20), Status::Critical);
        harness.checks.upsert(check);
    }
    let events = harness.events_within(Duration::from_millis(600)).await;
    assert_eq!(events.len(), 10, "every check got through: {events:?}");
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn first_probes_are_spread_over_the_interval() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let started = Instant::now();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let server_accepted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            server_accepted.lock().expect("times").push(started.elapsed());
        }
    });
    let mut harness = start(64);
    for idx in 0..200 {
        let kind = CheckKind::Tcp { addr: addr.to_string() };
        harness.checks.upsert(spec(&format!("c{idx}"), kind, Duration::from_millis(500), Status::Passing));
    }
    let _ = harness.events_within(Duration::from_millis(550)).await;
    let times = accepted.lock().expect("times").clone();
    let first_fifth = times.iter().filter(|at| **at < Duration::from_millis(100)).count();
    assert!(times.len() >= 200, "every check probed within one interval: {}", times.len());
    assert!(first_fifth < 80, "first probes bunch up: {first_fifth} of 200 in the first 100 ms");
    harness.shutdown.cancel();
}

#[tokio::test]
async fn shutdown_stops_every_check() {
    let (addr, log) = http_server(|_| (200, vec![], String::new())).await;
    let mut harness = start(8);
    harness.checks.upsert(spec(
        "h1",
        http_kind(format!("http://{addr}/")),
        Duration::from_millis(20),
        Status::Critical,
    ));
    assert!(harness.next_event(Duration::from_secs(1)).await.is_some());
    harness.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let probes_at_shutdown = log.lock().expect("log").len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.lock().expect("log").len(), probes_at_shutdown);
}
