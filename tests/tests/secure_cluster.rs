//! The secured cluster of issue 14, end to end: 3 servers and a client agent with TLS everywhere (`verify_incoming`,
//! `verify_outgoing`, `verify_server_hostname`) and gossip encryption, every certificate made by the real
//! `roster tls ca create` / `tls cert create` and every key by `roster keygen`.
//! It forms and serves; a `-server` holding a client certificate never becomes a Raft voter; the RPC port turns away
//! plaintext and certificate-less TLS; an agent with the wrong gossip key is never a member; HTTPS wants a client
//! certificate.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use roster_tests::{TestAgent, TestCluster, alive_members, eventually, member_names, roster_bin};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

/// How long the cluster may take to do what it does by itself (replicate, gossip, reconcile) on a loaded machine.
const SETTLE: Duration = Duration::from_secs(60);

/// The files `roster tls` leaves in one temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and one `-server`, `-client` and `-cli` certificate, made by the roster binary as an operator would.
    fn create() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().expect("temp dir") };
        for args in [&["ca", "create"][..], &["cert", "create", "-server"], &["cert", "create", "-client"]] {
            pki.roster(&[&["tls"], args].concat());
        }
        pki.roster(&["tls", "cert", "create", "-cli"]);
        pki
    }

    /// Runs `roster ARGS` in the PKI dir and returns its stdout, panicking with both streams on failure.
    fn roster(&self, args: &[&str]) -> String {
        let out = Command::new(roster_bin()).args(args).current_dir(self.dir.path()).output().expect("run roster");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "roster {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn text(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// An agent's config: HTTPS on, TLS on every listener with the `kind` certificate (`server` or `client`), and
    /// gossip encrypted with `key`.
    fn agent_config(&self, kind: &str, key: &str) -> Value {
        json!({
            "ports": {"https": 0},
            "encrypt": key,
            "tls": {
                "defaults": {
                    "ca_file": self.text("consul-agent-ca.pem"),
                    "cert_file": self.text(&format!("dc1-{kind}-consul-0.pem")),
                    "key_file": self.text(&format!("dc1-{kind}-consul-0-key.pem")),
                    "verify_incoming": true,
                    "verify_outgoing": true,
                },
                "internal_rpc": {"verify_server_hostname": true},
            },
        })
    }

    /// A rustls client config trusting the CA, presenting the `cli` certificate when `with_cert`.
    fn client_config(&self, with_cert: bool) -> rustls::ClientConfig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(self.path("consul-agent-ca.pem")).expect("CA PEM")).expect("CA");
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        if !with_cert {
            return builder.with_no_client_auth();
        }
        let chain = vec![CertificateDer::from_pem_file(self.path("dc1-cli-consul-0.pem")).expect("cli PEM")];
        let key = PrivateKeyDer::from_pem_file(self.path("dc1-cli-consul-0-key.pem")).expect("cli key");
        builder.with_client_auth_cert(chain, key).expect("client auth")
    }

    /// An HTTPS client for `agent`'s API under the certificate name `name` (`server.dc1.consul`, `client.dc1.consul`),
    /// which is where the agent's certificate says it lives.
    fn https(&self, agent: &TestAgent, name: &str, with_cert: bool) -> (reqwest::Client, String) {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(self.client_config(with_cert))
            .resolve(name, agent.https_addr())
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTPS client");
        (client, format!("https://{name}:{}", agent.https_addr().port()))
    }
}

/// A fresh gossip key from `roster keygen`.
fn keygen(pki: &Pki) -> String {
    pki.roster(&["keygen"]).trim().to_owned()
}

/// The voters of the Raft configuration as `agent` serves it, by node name.
async fn voters(agent: &TestAgent) -> Vec<String> {
    let res = agent.get("/v1/operator/raft/configuration").await;
    res.expect_status(200);
    let servers = res.json()["Servers"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = servers
        .iter()
        .filter(|s| s["Voter"] == json!(true))
        .filter_map(|s| s["Node"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Writes `key` through the client agent's HTTPS API with the cli certificate, until a server takes it.
async fn write_through_client(pki: &Pki, client_agent: &TestAgent, key: &str, value: &str) {
    let (https, base) = pki.https(client_agent, "client.dc1.consul", true);
    let url = format!("{base}/v1/kv/{key}");
    eventually(&format!("writing {key} through the client agent over HTTPS"), SETTLE, || async {
        let res = https.put(&url).body(value.to_owned()).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
}

/// Waits until every server answers `value` for `key` from its own state (`?stale`).
async fn readable_everywhere(cluster: &TestCluster, key: &str, value: &str) {
    for server in &cluster.servers {
        eventually(&format!("{key} on {}", server.node_name()), SETTLE, || async {
            let res = server.get(&format!("/v1/kv/{key}?raw&stale")).await;
            (res.status == 200 && res.text() == value).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_tls_everywhere_and_gossip_encryption_serves_and_keeps_impostors_out() {
    let pki = Pki::create();
    let key = keygen(&pki);
    let cluster =
        TestCluster::try_start_roles(3, 1, pki.agent_config("server", &key), pki.agent_config("client", &key))
            .await
            .expect("the secured cluster forms");
    let leader = cluster.wait_for_leader(SETTLE).await.expect("a leader");

    // 1. A write through the client agent travels over mutual TLS to the servers and is on every one of them.
    write_through_client(&pki, &cluster.clients[0], "secure/greeting", "hello").await;
    readable_everywhere(&cluster, "secure/greeting", "hello").await;
    assert_eq!(voters(&cluster.servers[leader]).await, ["s1", "s2", "s3"]);

    // 2. A server with a client certificate gossips in (it has the key) but never gets a Raft vote.
    let impostor_dir = tempfile::tempdir().expect("dir");
    let impostor = cluster
        .start_outsider(
            4,
            "impostor",
            vec!["-server".to_owned()],
            impostor_dir.path(),
            &pki.agent_config("client", &key),
        )
        .await
        .expect("the impostor starts");
    let leader_agent = &cluster.servers[leader];
    // The leader's reconcile registers every member it has seen in the catalog, after bringing Raft in line.
    eventually("the leader's reconcile to have seen the impostor", SETTLE, || async {
        let alive = alive_members(leader_agent).await.contains(&"impostor".to_owned());
        let res = leader_agent.get("/v1/catalog/node/impostor").await;
        (alive && res.status == 200 && res.json()["Node"]["Node"] == json!("impostor")).then_some(())
    })
    .await;
    assert_eq!(voters(leader_agent).await, ["s1", "s2", "s3"], "the impostor is not a voter");
    let peers = leader_agent.get("/v1/status/peers").await.json();
    let mut peers: Vec<&str> = peers.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    peers.sort_unstable();
    let mut expected: Vec<String> = cluster.servers.iter().map(|s| s.rpc_addr().to_string()).collect();
    expected.sort();
    assert_eq!(peers, expected, "the leader's peers are the three servers");
    write_through_client(&pki, &cluster.clients[0], "secure/after-impostor", "still").await;
    readable_everywhere(&cluster, "secure/after-impostor", "still").await;
    drop(impostor);

    // 3. The RPC port: plaintext is closed without an answer, TLS without a client certificate fails.
    let rpc = cluster.servers[0].rpc_addr();
    let plain = tokio::task::spawn_blocking(move || plaintext_answer(rpc)).await.expect("thread");
    assert_eq!(plain, Vec::<u8>::new(), "plaintext on the RPC port gets no answer");
    let anonymous = pki.client_config(false);
    let refused = tokio::task::spawn_blocking(move || tls_exchange(rpc, anonymous)).await.expect("thread");
    assert!(refused.is_err(), "a TLS client without a certificate got through: {refused:?}");

    // 4. An agent with the wrong gossip key (and good certificates) cannot join, and nobody lists it.
    let outsider_dir = tempfile::tempdir().expect("dir");
    let wrong_key = keygen(&pki);
    assert_ne!(wrong_key, key);
    let outsider = cluster
        .start_outsider(5, "outsider", Vec::new(), outsider_dir.path(), &pki.agent_config("client", &wrong_key))
        .await
        .expect("the outsider starts");
    let join = outsider.put(&format!("/v1/agent/join/{}", cluster.servers[0].serf_addr()), "").await;
    assert_eq!(join.status, 500, "a join with the wrong key fails: {}", join.text());
    for agent in cluster.agents() {
        for status in [1, 2, 3, 4] {
            let names = member_names(agent, status).await;
            assert!(!names.contains(&"outsider".to_owned()), "{} lists the outsider: {names:?}", agent.node_name());
        }
    }
    assert_eq!(alive_members(&outsider).await, ["outsider"], "the outsider sees only itself");

    // 5. A server's HTTPS API answers the cli certificate and refuses a handshake without one.
    let server = &cluster.servers[1];
    let (https, base) = pki.https(server, "server.dc1.consul", true);
    let res = https.get(format!("{base}/v1/kv/secure/greeting?raw")).send().await.expect("GET over HTTPS");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "hello");
    let (anonymous, base) = pki.https(server, "server.dc1.consul", false);
    let refused = anonymous.get(format!("{base}/v1/status/leader")).send().await;
    assert!(refused.is_err(), "HTTPS without a client certificate got an answer: {refused:?}");
}

/// Sends an HTTP request in plaintext to the RPC port and returns whatever comes back before the server closes.
fn plaintext_answer(addr: SocketAddr) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    match tcp.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("the RPC port neither answered nor closed: {err}"),
    }
    answer
}

/// A TLS handshake with the RPC port under `config`, then one read: the server's verdict on the client (TLS 1.3
/// settles the client certificate after the client's Finished) arrives as an alert or a close. `Err` says how
/// the connection was refused; the read timeout is long, as only an accepted connection would sit through it.
fn tls_exchange(addr: SocketAddr, config: rustls::ClientConfig) -> Result<(), String> {
    let name = ServerName::try_from("server.dc1.consul").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|err| err.to_string())?;
    let mut tcp = TcpStream::connect(addr).map_err(|err| err.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(60))).map_err(|err| err.to_string())?;
    conn.complete_io(&mut tcp).map_err(|err| err.to_string())?;
    match conn.complete_io(&mut tcp).and_then(|_| conn.reader().read(&mut [0u8; 1])) {
        Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(()),
        Err(err) => Err(err.to_string()),
        Ok(_) => Err("the server closed the connection".to_owned()),
    }
}
