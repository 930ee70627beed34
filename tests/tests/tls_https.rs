//! The HTTPS API as an operator meets it: a CA, a server certificate and a client certificate made here with
//! rcgen and written to a temp dir; the agent serves its API over TLS and asks for client certificates, the CLI
//! reaches it with Consul's flags and variables, a bad key stops the agent naming the file, replaced files and
//! SIGHUP give new connections the new certificate, `ports.http = -1` leaves HTTPS alone, and the per-client
//! connection cap answers Consul's 429.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose, SanType};
use roster_tests::{AgentMode, TestAgent};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

/// A CA and the certificate files of one test.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "roster test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let pki = Pki { dir: tempfile::tempdir().expect("temp dir"), ca };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).expect("writing the CA");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn path_text(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Writes `<name>.pem` and `<name>-key.pem`, a certificate for localhost/127.0.0.1 signed by the CA; returns
    /// the certificate's DER.
    fn issue(&self, name: &str) -> Vec<u8> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "server.dc1.consul".to_owned()]).expect("leaf params");
        params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf");
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).expect("writing the certificate");
        std::fs::write(self.path(&format!("{name}-key.pem")), key.serialize_pem()).expect("writing the key");
        cert.der().to_vec()
    }

    /// The agent config: HTTPS on port 0 with the `server` files, client certificates required.
    fn agent_config(&self) -> Value {
        json!({
            "ports": {"https": 0},
            "tls": {
                "defaults": {"ca_file": self.path_text("ca.pem"), "cert_file": self.path_text("server.pem"),
                             "key_file": self.path_text("server-key.pem")},
                "https": {"verify_incoming": true},
            },
        })
    }

    /// A reqwest client that trusts the CA, with the `client` certificate when `with_cert`.
    fn client(&self, with_cert: bool) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(self.path("ca.pem")).expect("CA PEM")).expect("CA");
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = if with_cert {
            let chain = vec![CertificateDer::from_pem_file(self.path("client.pem")).expect("client PEM")];
            let key = PrivateKeyDer::from_pem_file(self.path("client-key.pem")).expect("client key");
            builder.with_client_auth_cert(chain, key).expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .tls_info(true)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }
}

/// The certificate the agent presents on a new connection.
async fn presented_certificate(client: &reqwest::Client, addr: SocketAddr) -> Vec<u8> {
    let res = client.get(format!("https://localhost:{}/v1/status/leader", addr.port())).send().await.expect("GET");
    let info = res.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info");
    info.peer_certificate().expect("a peer certificate").to_vec()
}

/// Merges `extra` into `base`, objects key by key.
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}

async fn https_agent(pki: &Pki, node: &str, extra: Value) -> TestAgent {
    pki.issue("server");
    pki.issue("client");
    let mut config = pki.agent_config();
    merge(&mut config, extra);
    TestAgent::start_with_config(node, AgentMode::Dev, config).await.expect("agent with HTTPS")
}

#[tokio::test]
async fn https_api_answers_a_client_certificate_and_refuses_a_handshake_without_one() {
    let pki = Pki::new();
    let agent = https_agent(&pki, "tls-members", json!({})).await;
    let url = format!("https://localhost:{}/v1/agent/members", agent.https_addr().port());

    let res = pki.client(true).get(&url).send().await.expect("members over HTTPS");
    assert_eq!(res.status(), 200);
    let members: Value = res.json().await.expect("JSON");
    assert_eq!(members[0]["Name"], "tls-members");

    let refused = pki.client(false).get(&url).send().await;
    assert!(refused.is_err(), "verify_incoming: a client without a certificate gets no answer: {refused:?}");

    let https = format!("https://127.0.0.1:{}", agent.https_addr().port());
    let (ca, cert, key) = (pki.path_text("ca.pem"), pki.path_text("client.pem"), pki.path_text("client-key.pem"));
    let flags = ["members", "-http-addr", &https, "-ca-file", &ca, "-client-cert", &cert, "-client-key", &key];
    let out = agent.cli_env(&flags, &[]).await;
    assert!(out.stdout.contains("tls-members"), "{out:?}");
    out.expect_success();

    let envs = [
        ("CONSUL_HTTP_ADDR", https.as_str()),
        ("CONSUL_CACERT", ca.as_str()),
        ("CONSUL_CLIENT_CERT", cert.as_str()),
        ("CONSUL_CLIENT_KEY", key.as_str()),
        ("CONSUL_TLS_SERVER_NAME", "server.dc1.consul"),
    ];
    let out = agent.cli_env(&["members"], &envs).await;
    assert!(out.stdout.contains("tls-members"), "{out:?}");
    let wrong_name = [envs[0], envs[1], envs[2], envs[3], ("CONSUL_TLS_SERVER_NAME", "other.dc1.consul")];
    let out = agent.cli_env(&["members"], &wrong_name).await;
    assert!(!out.success() && out.stderr.contains("cannot reach the roster agent"), "{out:?}");
    let no_cert = agent.cli_env(&["members", "-http-addr", &https, "-ca-file", &ca], &[]).await;
    assert!(!no_cert.success(), "no client certificate: {no_cert:?}");
}

#[tokio::test]
async fn with_plain_http_off_only_https_serves() {
    let pki = Pki::new();
    pki.issue("server");
    pki.issue("client");
    let mut config = pki.agent_config();
    merge(&mut config, json!({"ports": {"http": -1}}));
    let agent = TestAgent::start_with_config("tls-only", AgentMode::Args(vec!["-dev".into()]), config)
        .await
        .expect("HTTPS-only agent");
    assert!(!agent.has_http(), "the readiness line says http=off");
    let client = pki.client(true);
    let url = format!("https://localhost:{}/v1/status/leader", agent.https_addr().port());
    roster_tests::eventually("a leader over HTTPS", Duration::from_secs(10), || async {
        let res = client.get(&url).send().await.ok()?;
        let leader: Value = res.json().await.ok()?;
        leader.as_str().filter(|leader| !leader.is_empty()).map(|_| ())
    })
    .await;
    // Plain HTTP on the HTTPS port gets no HTTP answer: the TLS server sees garbage and hangs up.
    let mut plain = TcpStream::connect(agent.https_addr()).expect("connect");
    plain.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_stops_the_agent_naming_the_file() {
    let pki = Pki::new();
    pki.issue("server");
    pki.issue("other");
    let mut config = pki.agent_config();
    merge(
        &mut config,
        json!({"tls": {"defaults": {"key_file": pki.path_text("other-key.pem")}, "https": {"verify_incoming": false}}}),
    );
    let err = match TestAgent::start_with_config("tls-bad-key", AgentMode::Dev, config).await {
        Ok(_) => panic!("the agent started with a key of another certificate"),
        Err(err) => format!("{err:#}"),
    };
    let expected = format!(
        "tls.https: {} does not match the certificate in {}",
        pki.path_text("other-key.pem"),
        pki.path_text("server.pem")
    );
    assert!(err.contains(&expected), "{err}");
}

#[tokio::test]
async fn replaced_files_and_sighup_give_new_connections_the_new_certificate() {
    let pki = Pki::new();
    let agent = https_agent(&pki, "tls-reload", json!({})).await;
    let client = pki.client(true);
    let first = presented_certificate(&client, agent.https_addr()).await;
    assert_eq!(first, CertificateDer::from_pem_file(pki.path("server.pem")).expect("PEM").to_vec());

    let renewed = pki.issue("server");
    assert_ne!(renewed, first);
    let pid = agent.pid().expect("running").to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while presented_certificate(&client, agent.https_addr()).await != renewed {
        assert!(Instant::now() < deadline, "still the old certificate; stderr:\n{}", agent.stderr_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The log line is read from the agent's stderr pipe by another thread, so it may trail the swap a little.
    while !agent.stderr_tail().contains("reloaded the HTTPS certificates") {
        assert!(Instant::now() < deadline, "no reload logged; stderr:\n{}", agent.stderr_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The agent is still up and serving plain HTTP too.
    agent.get("/v1/status/leader").await.expect_status(200);
}

#[tokio::test]
async fn the_connection_past_the_per_client_cap_is_answered_429() {
    let pki = Pki::new();
    pki.issue("server");
    // No harness client touches this agent's API (Args mode does not wait for a leader), so every connection
    // from 127.0.0.1 is one of ours.
    let config = json!({"limits": {"http_max_conns_per_client": 2}});
    let agent =
        TestAgent::start_with_config("tls-cap", AgentMode::Args(vec!["-dev".into()]), config).await.expect("agent");
    let request = b"GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(agent.http_addr()).expect("connect");
        stream.write_all(request).expect("write");
        let mut status = [0u8; 12];
        stream.read_exact(&mut status).expect("answer");
        assert_eq!(&status, b"HTTP/1.1 200");
        held.push(stream);
    }
    let mut third = TcpStream::connect(agent.http_addr()).expect("connect");
    let mut answer = String::new();
    let _ = third.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests"), "{answer}");
    assert!(answer.contains("Your IP is issuing too many concurrent connections"), "{answer}");
}

#[tokio::test]
async fn tls_internal_rpc_puts_the_server_rpc_port_behind_mutual_tls() {
    let pki = Pki::new();
    let server_der = pki.issue("server");
    pki.issue("client");
    let config = json!({
        "tls": {"internal_rpc": {"ca_file": pki.path_text("ca.pem"), "cert_file": pki.path_text("server.pem"),
                                 "key_file": pki.path_text("server-key.pem"), "verify_incoming": true}},
    });
    let agent = TestAgent::start_with_config("tls-rpc", AgentMode::Dev, config).await.expect("agent with RPC TLS");
    let rpc = agent.rpc_addr();
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client-key.pem"));
    let presented = tokio::task::spawn_blocking(move || rpc_handshake(rpc, &ca, Some((&cert, &key))))
        .await
        .expect("thread")
        .expect("a handshake with a client certificate of the CA");
    assert_eq!(presented, server_der, "the RPC port presents tls.internal_rpc's certificate");
    let ca = pki.path("ca.pem");
    let anonymous = tokio::task::spawn_blocking(move || rpc_handshake(rpc, &ca, None)).await.expect("thread");
    assert!(anonymous.is_err(), "verify_incoming: no client certificate, no connection");
}

/// A TLS handshake with the RPC port (rustls over a blocking socket). `Ok` carries the server's leaf certificate
/// once the server has accepted the connection; `Err` says how it refused.
fn rpc_handshake(
    addr: SocketAddr,
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).expect("CA PEM")).expect("CA");
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).expect("cert")],
                PrivateKeyDer::from_pem_file(key).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from("server.dc1.consul").expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|err| err.to_string())?;
    let mut tcp = TcpStream::connect(addr).map_err(|err| err.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).map_err(|err| err.to_string())?;
    conn.complete_io(&mut tcp).map_err(|err| err.to_string())?;
    // TLS 1.3 settles the client certificate after the client's Finished, so the server's verdict arrives as an
    // alert or a close after the handshake; an accepted connection just waits for a frame, and the read times out.
    match conn.complete_io(&mut tcp).and_then(|_| conn.reader().read(&mut [0u8; 1])) {
        Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        Err(err) => return Err(err.to_string()),
        Ok(_) => return Err("the server closed the connection".to_owned()),
    }
    conn.peer_certificates().and_then(|chain| chain.first()).map(|leaf| leaf.to_vec()).ok_or("no certificate".into())
}

#[tokio::test]
async fn a_client_agent_reaches_a_verify_incoming_server_over_tls_only_with_a_certificate() {
    let pki = Pki::new();
    pki.issue("server");
    pki.issue("client");
    let files = |name: &str| {
        json!({"ca_file": pki.path_text("ca.pem"), "cert_file": pki.path_text(&format!("{name}.pem")),
               "key_file": pki.path_text(&format!("{name}-key.pem")), "verify_incoming": true, "verify_outgoing": true})
    };
    let server_config = json!({"tls": {"internal_rpc": files("server")}});
    let server = TestAgent::start_with_config("tls-rpc-server", AgentMode::Dev, server_config).await.expect("server");
    let join = server.serf_addr().to_string();
    let client_args = vec!["-bind".to_owned(), "127.0.0.1".to_owned(), "-join".to_owned(), join.clone()];
    let client_config = json!({"tls": {"internal_rpc": files("client")}});
    let client = TestAgent::start_with_config("tls-rpc-client", AgentMode::Args(client_args.clone()), client_config)
        .await
        .expect("client agent with a certificate");
    // The write goes from the client agent to the server over the RPC port, so over mutual TLS.
    roster_tests::eventually("a write through the client agent", Duration::from_secs(20), || async {
        let res = client.client().put(client.url("/v1/kv/over-tls")).body("yes").send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
    server.get("/v1/kv/over-tls?raw").await.expect_status(200);

    // The same client without a certificate: the server refuses its connections, so it never gets an answer.
    let anonymous_config =
        json!({"tls": {"internal_rpc": {"ca_file": pki.path_text("ca.pem"), "verify_outgoing": true}}});
    let anonymous = TestAgent::start_with_config("tls-rpc-anon", AgentMode::Args(client_args), anonymous_config)
        .await
        .expect("client agent without a certificate");
    // Until its server tracker has the server it answers "no known servers"; after, the RPC connection is cut.
    let rpc = server.rpc_addr().to_string();
    let refused = roster_tests::eventually("the server's refusal", Duration::from_secs(20), || async {
        let res = anonymous.put("/v1/kv/refused", "no").await;
        assert_ne!(res.status, 200, "a client without a certificate wrote: {}", res.text());
        res.text().contains(&rpc).then(|| res.text())
    })
    .await;
    assert!(refused.contains("closed"), "{refused}");
    server.get("/v1/kv/refused").await.expect_status(404);
}
