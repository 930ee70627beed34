//! Tests of the probes against real servers and processes started here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checks::ContainerExec;
use crate::runner::{HttpClients, OutputBuffer, Runners};
use crate::spec::{CheckKind, CheckSpec};
use crate::status::{Status, Thresholds};
use crate::test_servers::{
    closed_tcp_addr, grpc_server, h2_tls_server, http_server, silent_tcp_server, udp_echo_server,
};

fn runners(enable_script_checks: bool, exec: Option<Arc<dyn ContainerExec>>) -> Runners {
    Runners { http: HttpClients::new(), exec, enable_script_checks }
}

fn spec(kind: CheckKind, timeout: Duration, output_max_size: usize) -> CheckSpec {
    CheckSpec {
        check_id: "c1".to_string(),
        kind,
        interval: Duration::from_secs(10),
        timeout,
        thresholds: Thresholds::default(),
        initial_status: Status::Critical,
        output_max_size,
        start_period: Duration::ZERO,
        deregister_critical_after: None,
    }
}

fn http(url: String) -> CheckKind {
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

async fn probe(kind: CheckKind) -> (Status, String) {
    runners(true, None).probe(&spec(kind, Duration::from_secs(5), 4096)).await
}

#[tokio::test]
async fn http_status_codes_map_to_passing_warning_critical() {
    let (addr, _log) = http_server(|seen| match seen.path.as_str() {
        "/ok" => (200, vec![], "all good".to_string()),
        "/created" => (201, vec![], String::new()),
        "/busy" => (429, vec![], "slow down".to_string()),
        _ => (503, vec![], "down".to_string()),
    })
    .await;
    let url = |path: &str| format!("http://{addr}{path}");
    assert_eq!(
        probe(http(url("/ok"))).await,
        (Status::Passing, format!("HTTP GET http://{addr}/ok: 200 OK Output: all good"))
    );
    assert_eq!(probe(http(url("/created"))).await.0, Status::Passing);
    assert_eq!(
        probe(http(url("/busy"))).await,
        (Status::Warning, format!("HTTP GET http://{addr}/busy: 429 Too Many Requests Output: slow down"))
    );
    assert_eq!(
        probe(http(url("/down"))).await,
        (Status::Critical, format!("HTTP GET http://{addr}/down: 503 Service Unavailable Output: down"))
    );
}

#[tokio::test]
async fn http_sends_method_headers_and_body() {
    let (addr, log) = http_server(|_| (200, vec![], String::new())).await;
    let kind = CheckKind::Http {
        url: format!("http://{addr}/submit"),
        method: "PUT".to_string(),
        headers: vec![("X-Token".to_string(), vec!["a".to_string(), "b".to_string()])],
        body: "{\"k\":1}".to_string(),
        tls_server_name: None,
        tls_skip_verify: false,
        disable_redirects: false,
    };
    let (status, output) = probe(kind).await;
    assert_eq!(status, Status::Passing, "{output}");
    let seen = log.lock().expect("log")[0].clone();
    assert_eq!(seen.method, "PUT");
    let tokens: Vec<_> = seen.headers.get_all("x-token").iter().map(|value| value.to_str().unwrap_or("")).collect();
    assert_eq!(tokens, ["a", "b"]);
    assert_eq!(seen.headers["user-agent"], "Consul Health Check");
    assert_eq!(seen.headers["accept"], "text/plain, text/*, */*");
    assert_eq!(&seen.body[..], b"{\"k\":1}");
}

#[tokio::test]
async fn http_output_keeps_the_tail_up_to_output_max_size() {
    let body: String = (0..5000).map(|idx| char::from(b'a' + (idx % 26) as u8)).collect();
    let expected_tail = body[body.len() - 100..].to_string();
    let (addr, _log) = http_server(move |_| (200, vec![], body.clone())).await;
    let url = format!("http://{addr}/");
    let (status, output) = runners(false, None).probe(&spec(http(url.clone()), Duration::from_secs(5), 100)).await;
    assert_eq!(status, Status::Passing);
    assert_eq!(output, format!("HTTP GET {url}: 200 OK Output: {expected_tail}"));
}

#[tokio::test]
async fn http_follows_redirects_unless_disabled() {
    let (addr, _log) = http_server(|seen| match seen.path.as_str() {
        "/old" => (302, vec![("Location".to_string(), "/new".to_string())], String::new()),
        _ => (200, vec![], "moved here".to_string()),
    })
    .await;
    let url = format!("http://{addr}/old");
    assert_eq!(probe(http(url.clone())).await.0, Status::Passing);
    let mut kind = http(url.clone());
    if let CheckKind::Http { disable_redirects, .. } = &mut kind {
        *disable_redirects = true;
    }
    assert_eq!(probe(kind).await, (Status::Critical, format!("HTTP GET {url}: 302 Found Output: ")));
}

#[tokio::test]
async fn http_times_out_and_reports_refused_connections() {
    // A listener that accepts but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let started = Instant::now();
    let kind = http(format!("http://{silent_addr}/"));
    let (status, output) = runners(false, None).probe(&spec(kind, Duration::from_millis(200), 4096)).await;
    assert_eq!(status, Status::Critical);
    assert!(output.contains("timed out") || output.contains("timeout"), "{output}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let closed = closed_tcp_addr().await;
    let (status, output) = probe(http(format!("http://{closed}/"))).await;
    assert_eq!(status, Status::Critical);
    assert!(output.starts_with(&format!("HTTP GET http://{closed}/: ")), "{output}");
    drop(silent);
}

#[tokio::test]
async fn tcp_connect_passes_on_a_listener_and_fails_on_a_closed_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    assert_eq!(
        probe(CheckKind::Tcp { addr: addr.clone() }).await,
        (Status::Passing, format!("TCP connect {addr}: Success"))
    );
    let closed = closed_tcp_addr().await.to_string();
    let (status, output) = probe(CheckKind::Tcp { addr: closed.clone() }).await;
    assert_eq!(status, Status::Critical);
    assert!(output.starts_with(&format!("dial tcp {closed}: ")), "{output}");
}

#[tokio::test]
async fn udp_passes_on_reply_or_silence_and_fails_on_port_unreachable() {
    let echo = udp_echo_server().await.to_string();
    assert_eq!(
        probe(CheckKind::Udp { addr: echo.clone() }).await,
        (Status::Passing, format!("UDP connect {echo}: Success"))
    );
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr").to_string();
    let kind = CheckKind::Udp { addr: silent_addr };
    let (status, _) = runners(false, None).probe(&spec(kind, Duration::from_millis(100), 4096)).await;
    assert_eq!(status, Status::Passing, "silence is success for UDP, as in Consul");
    let closed = {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket.local_addr().expect("addr").to_string()
    };
    let (status, output) = probe(CheckKind::Udp { addr: closed.clone() }).await;
    assert_eq!(status, Status::Critical, "{output}");
    assert!(output.starts_with(&format!("read udp {closed}: ")), "{output}");
}

#[tokio::test]
async fn grpc_health_protocol_maps_serving_status() {
    let addr = grpc_server(|service| match service {
        "" | "web" => Some(1),
        "db" => Some(2),
        _ => None,
    })
    .await;
    let grpc = |target: String| CheckKind::Grpc { target, use_tls: false, tls_skip_verify: false };
    assert_eq!(probe(grpc(addr.to_string())).await, (Status::Passing, format!("gRPC check {addr}: success")));
    assert_eq!(probe(grpc(format!("{addr}/web"))).await.0, Status::Passing);
    assert_eq!(
        probe(grpc(format!("{addr}/db"))).await,
        (Status::Critical, format!("gRPC {addr}/db serving status: NOT_SERVING"))
    );
    let (status, output) = probe(grpc(format!("{addr}/nope"))).await;
    assert_eq!(status, Status::Critical);
    assert!(output.contains("code = 5") && output.contains("unknown service"), "{output}");
    let closed = closed_tcp_addr().await;
    assert_eq!(probe(grpc(closed.to_string())).await.0, Status::Critical);
}

#[tokio::test]
async fn h2ping_cleartext_needs_an_http2_peer() {
    let h2_addr = grpc_server(|_| Some(1)).await.to_string();
    let h2ping = |addr: String| CheckKind::H2Ping { addr, use_tls: false, tls_skip_verify: false };
    assert_eq!(probe(h2ping(h2_addr)).await, (Status::Passing, "HTTP2 ping was successful".to_string()));
    let (http1_addr, _log) = http_server(|_| (200, vec![], String::new())).await;
    let (status, output) = probe(h2ping(http1_addr.to_string())).await;
    assert_eq!(status, Status::Critical);
    assert!(output.starts_with("HTTP2 ping failed: "), "{output}");
}

fn h2ping_tls(addr: String, tls_skip_verify: bool) -> CheckKind {
    CheckKind::H2Ping { addr, use_tls: true, tls_skip_verify }
}

#[tokio::test]
async fn h2ping_tls_with_skip_verify_pings_a_self_signed_server() {
    let (addr, sni_log) = h2_tls_server(&[b"h2"]).await;
    let passing = (Status::Passing, "HTTP2 ping was successful".to_string());
    assert_eq!(probe(h2ping_tls(addr.to_string(), true)).await, passing);
    assert_eq!(probe(h2ping_tls(format!("localhost:{}", addr.port()), true)).await, passing);
    // The host part of the address is the server name: no SNI for an IP address, the name otherwise.
    assert_eq!(*sni_log.lock().expect("sni log"), vec![None, Some("localhost".to_string())]);
}

#[tokio::test]
async fn h2ping_tls_without_skip_verify_rejects_a_self_signed_certificate() {
    let (addr, _sni_log) = h2_tls_server(&[b"h2"]).await;
    for addr in [addr.to_string(), format!("localhost:{}", addr.port())] {
        let (status, output) = probe(h2ping_tls(addr.clone(), false)).await;
        assert_eq!(status, Status::Critical);
        assert!(output.starts_with(&format!("HTTP2 ping failed: TLS handshake with {addr}: ")), "{output}");
        assert!(output.contains("certificate") && output.contains("UnknownIssuer"), "{output}");
    }
}

#[tokio::test]
async fn h2ping_tls_needs_the_server_to_choose_alpn_h2() {
    let (no_alpn_addr, _sni_log) = h2_tls_server(&[]).await;
    let (status, output) = probe(h2ping_tls(no_alpn_addr.to_string(), true)).await;
    assert_eq!(status, Status::Critical);
    assert!(output.contains("chose no ALPN protocol, not h2"), "{output}");
    // A server that offers only HTTP/1.1 refuses the handshake outright.
    let (http1_addr, _sni_log) = h2_tls_server(&[b"http/1.1"]).await;
    let (status, output) = probe(h2ping_tls(http1_addr.to_string(), true)).await;
    assert_eq!(status, Status::Critical);
    assert!(output.contains("NoApplicationProtocol"), "{output}");
}

#[tokio::test]
async fn h2ping_tls_times_out_on_a_port_that_never_handshakes() {
    let addr = silent_tcp_server().await;
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let res = runners(true, None).probe(&spec(h2ping_tls(addr.to_string(), true), timeout, 4096)).await;
    assert_eq!(res, (Status::Critical, "HTTP2 ping failed: timed out after 500ms".to_string()));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

fn sh(script: &str) -> CheckKind {
    CheckKind::Script { args: vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()] }
}

#[tokio::test]
async fn script_exit_codes_map_to_passing_warning_critical() {
    assert_eq!(probe(sh("echo fine")).await, (Status::Passing, "fine\n".to_string()));
    assert_eq!(probe(sh("echo meh >&2; exit 1")).await, (Status::Warning, "meh\n".to_string()));
    assert_eq!(probe(sh("echo bad; exit 2")).await, (Status::Critical, "bad\n".to_string()));
    assert_eq!(probe(sh("kill -9 $$")).await.0, Status::Critical);
    let missing = CheckKind::Script { args: vec!["/nonexistent/check".to_string()] };
    assert_eq!(probe(missing).await.0, Status::Critical);
}

#[tokio::test]
async fn script_output_keeps_the_tail_with_a_notice() {
    let kind = sh("i=0; while [ $i -lt 100 ]; do echo line$i; i=$((i+1)); done");
    let (status, output) = runners(true, None).probe(&spec(kind, Duration::from_secs(5), 16)).await;
    assert_eq!(status, Status::Passing);
    assert!(output.starts_with("Captured 16 of 690 bytes\n...\n"), "{output}");
    assert!(output.ends_with("line98\nline99\n"), "{output}");
}

#[tokio::test]
async fn hung_script_is_killed_with_its_process_group_at_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("child.pid");
    // The background child keeps the output pipe open; only killing the group ends it.
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    // On a loaded machine the shell may not reach the `echo` inside a short timeout; then
    // there is no child to look for, so try again with a longer one.
    for (timeout, text) in [(300, "300ms"), (2000, "2s"), (8000, "8s")] {
        let started = Instant::now();
        let (status, output) =
            runners(true, None).probe(&spec(sh(&script), Duration::from_millis(timeout), 4096)).await;
        assert_eq!((status, output), (Status::Critical, format!("Timed out ({text}) running check")));
        // `wait` would hold the probe for the full 30 s if the group were not killed.
        assert!(started.elapsed() < Duration::from_millis(timeout) + Duration::from_secs(10));
        if pid_file.exists() {
            break;
        }
    }
    let child_pid = std::fs::read_to_string(&pid_file).expect("pid file").trim().to_string();
    // The killed grandchild is reaped by init soon after; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while std::path::Path::new(&format!("/proc/{child_pid}")).exists() && Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{child_pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stat = std::fs::read_to_string(format!("/proc/{child_pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "the script's child survived: {stat}");
}

#[tokio::test]
async fn script_checks_do_not_run_unless_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let kind = sh(&format!("touch {}", marker.display()));
    let (status, output) = runners(false, None).probe(&spec(kind, Duration::from_secs(5), 4096)).await;
    assert_eq!(status, Status::Critical);
    assert!(output.contains("enable_script_checks"), "{output}");
    assert!(!marker.exists());
}

/// A container runtime that answers with a fixed exit code and output.
struct FakeExec(i64, &'static str);

#[async_trait::async_trait]
impl ContainerExec for FakeExec {
    async fn exec(
        &self,
        container_id: &str,
        _shell: &str,
        args: &[String],
        _timeout: Duration,
    ) -> Result<(i64, Vec<u8>), String> {
        if container_id != "abc" {
            return Err(format!("No such container: {container_id}"));
        }
        Ok((self.0, format!("{}{}", self.1, args.join(" ")).into_bytes()))
    }
}

#[tokio::test]
async fn docker_checks_map_exit_codes_and_report_missing_runtime() {
    let docker = |container_id: &str| CheckKind::Docker {
        container_id: container_id.to_string(),
        shell: "/bin/sh".to_string(),
        args: vec!["check".to_string()],
    };
    for (exit_code, expected) in [(0, Status::Passing), (1, Status::Warning), (2, Status::Critical)] {
        let runners = runners(false, Some(Arc::new(FakeExec(exit_code, "ran "))));
        let res = runners.probe(&spec(docker("abc"), Duration::from_secs(5), 4096)).await;
        assert_eq!(res, (expected, "ran check".to_string()));
    }
    let runners = runners(false, Some(Arc::new(FakeExec(0, ""))));
    let res = runners.probe(&spec(docker("gone"), Duration::from_secs(5), 4096)).await;
    assert_eq!(res, (Status::Critical, "No such container: gone".to_string()));
    assert_eq!(probe(docker("abc")).await.0, Status::Critical);
}

#[test]
fn output_buffer_keeps_the_tail_and_counts_everything() {
    let mut buffer = OutputBuffer::new(4);
    buffer.write(b"hello ");
    buffer.write(b"world");
    assert_eq!(buffer.text(), "orld");
    assert_eq!(buffer.text_with_notice(), "Captured 4 of 11 bytes\n...\norld");
    let mut small = OutputBuffer::new(100);
    small.write(b"ok");
    assert_eq!(small.text_with_notice(), "ok");
}
