//! The crate's behaviour against real certificates made by rcgen: what loads, what is refused and how the message
//! reads, handshakes between the configs built, and reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::ServerName;

use crate::{Error, Settings, Tls, TlsVersion, leaf_has_dns_san, parse_cipher_suite};

/// A CA and the files written for one test.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        Pki { dir: tempfile::tempdir().expect("temp dir"), ca: ca("Test CA") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("writing a test file");
        path
    }

    /// Writes the CA and a leaf signed by it with `sans`; returns (ca, cert, key) paths.
    fn files(&self, prefix: &str, sans: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
        let (cert, key) = leaf(&self.ca, sans, |_| {});
        (
            self.write("ca.pem", &self.ca.pem()),
            self.write(&format!("{prefix}.pem"), &cert),
            self.write(&format!("{prefix}-key.pem"), &key),
        )
    }

    fn settings(&self, prefix: &str, sans: &[&str]) -> Settings {
        let (ca, cert, key) = self.files(prefix, sans);
        Settings { ca_file: Some(ca), cert_file: Some(cert), key_file: Some(key), ..Settings::default() }
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

/// A leaf certificate (PEM) and its key (PEM); `tweak` adjusts the params (dates) before signing.
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    sans: &[&str],
    tweak: impl FnOnce(&mut CertificateParams),
) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|san| (*san).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    tweak(&mut params);
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf cert");
    (cert.pem(), key.serialize_pem())
}

/// Runs a handshake in memory; `Err` carries whichever side's error ended it.
fn handshake(server: &Tls, client: &Tls, name: &str) -> Result<(), rustls::Error> {
    let server_config = server.server_config().expect("the server has a certificate");
    let mut server_conn = rustls::ServerConnection::new(server_config)?;
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let mut client_conn = rustls::ClientConnection::new(client.client_config(), name)?;
    for _ in 0..16 {
        let mut buf = Vec::new();
        client_conn.write_tls(&mut buf).map_err(|err| rustls::Error::General(err.to_string()))?;
        server_conn.read_tls(&mut buf.as_slice()).map_err(|err| rustls::Error::General(err.to_string()))?;
        server_conn.process_new_packets()?;
        let mut buf = Vec::new();
        server_conn.write_tls(&mut buf).map_err(|err| rustls::Error::General(err.to_string()))?;
        client_conn.read_tls(&mut buf.as_slice()).map_err(|err| rustls::Error::General(err.to_string()))?;
        client_conn.process_new_packets()?;
        if !client_conn.is_handshaking() && !server_conn.is_handshaking() {
            return Ok(());
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}

fn load_err(settings: Settings) -> String {
    match Tls::load(settings) {
        Ok(_) => panic!("expected the settings to be refused"),
        Err(err) => err.to_string(),
    }
}

fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[test]
fn a_good_chain_loads_and_serves_a_client_that_checks_name_and_chain() {
    provider();
    let pki = Pki::new();
    let server = Tls::load(pki.settings("server", &["server.dc1.consul", "localhost"])).expect("server loads");
    let client = Tls::load(Settings {
        ca_file: Some(pki.path("ca.pem")),
        verify_outgoing: true,
        verify_server_hostname: true,
        ..Settings::default()
    })
    .expect("client loads");
    handshake(&server, &client, "localhost").expect("handshake with the right name");
    let refused = handshake(&server, &client, "other.example").expect_err("a name not in the certificate");
    assert!(refused.to_string().contains("not valid for name"), "{refused}");
}

#[test]
fn verify_incoming_refuses_a_client_without_a_certificate_and_accepts_one_signed_by_the_ca() {
    provider();
    let pki = Pki::new();
    let server =
        Tls::load(Settings { verify_incoming: true, ..pki.settings("server", &["localhost"]) }).expect("server");
    let anonymous =
        Tls::load(Settings { ca_file: Some(pki.path("ca.pem")), verify_outgoing: true, ..Settings::default() })
            .expect("anonymous client");
    let refused = handshake(&server, &anonymous, "localhost").expect_err("no client certificate");
    assert!(refused.to_string().contains("NoCertificatesPresented") || refused.to_string().contains("certificate"));
    let with_cert = Tls::load(Settings { verify_outgoing: true, ..pki.settings("client", &["client.dc1.consul"]) })
        .expect("client with a certificate");
    handshake(&server, &with_cert, "localhost").expect("a client certificate signed by the CA");

    let stranger_pki = Pki::new();
    let stranger = Tls::load(Settings {
        ca_file: Some(pki.path("ca.pem")),
        verify_outgoing: true,
        ..stranger_pki.settings("client", &["client.dc1.consul"])
    });
    // The stranger's certificate is signed by another CA than the one it names, so loading refuses it already.
    let message = stranger.expect_err("a certificate from another CA").to_string();
    assert!(message.contains("not signed by the configured CA"), "{message}");
}

#[test]
fn verify_server_hostname_with_a_fixed_name_requires_that_san_whatever_was_dialled() {
    provider();
    let pki = Pki::new();
    let server = Tls::load(pki.settings("server", &["server.dc1.consul"])).expect("server");
    let rpc_client = Tls::load(Settings {
        ca_file: Some(pki.path("ca.pem")),
        verify_outgoing: true,
        verify_server_hostname: true,
        server_name: Some("server.dc1.consul".into()),
        ..Settings::default()
    })
    .expect("client");
    handshake(&server, &rpc_client, "10.0.0.1").expect("the fixed name is in the certificate");
    let client_cert_server = Tls::load(pki.settings("client", &["client.dc1.consul"])).expect("client-only cert");
    let refused = handshake(&client_cert_server, &rpc_client, "10.0.0.1").expect_err("no server SAN");
    assert!(refused.to_string().contains("not valid for name"), "{refused}");
    // Without hostname checks, only the chain matters (Consul's RPC default).
    let chain_only =
        Tls::load(Settings { ca_file: Some(pki.path("ca.pem")), verify_outgoing: true, ..Settings::default() })
            .expect("chain-only client");
    handshake(&client_cert_server, &chain_only, "10.0.0.1").expect("any certificate of the CA");
}

#[test]
fn leaf_has_dns_san_reads_the_peer_leaf() {
    let pki = Pki::new();
    let (cert, _) = leaf(&pki.ca, &["server.dc1.consul"], |_| {});
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert.as_bytes()).expect("PEM");
    let chain = vec![der];
    assert!(leaf_has_dns_san(&chain, "server.dc1.consul"));
    assert!(!leaf_has_dns_san(&chain, "client.dc1.consul"));
    assert!(!leaf_has_dns_san(&[], "server.dc1.consul"));
}

#[test]
fn an_expired_certificate_is_refused_naming_the_file_and_the_date() {
    let pki = Pki::new();
    let (cert, key) = leaf(&pki.ca, &["localhost"], |params| {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let cert_file = pki.write("old.pem", &cert);
    let key_file = pki.write("old-key.pem", &key);
    let message =
        load_err(Settings { cert_file: Some(cert_file.clone()), key_file: Some(key_file), ..Settings::default() });
    assert!(
        message.contains(&cert_file.display().to_string())
            && message.contains("expired at Fri, 01 Jan 2021 00:00:00 +0000"),
        "{message}"
    );
}

#[test]
fn a_certificate_not_yet_valid_is_refused() {
    let pki = Pki::new();
    let (cert, key) = leaf(&pki.ca, &["localhost"], |params| {
        params.not_before = rcgen::date_time_ymd(2999, 1, 1);
        params.not_after = rcgen::date_time_ymd(3000, 1, 1);
    });
    let cert_file = pki.write("future.pem", &cert);
    let key_file = pki.write("future-key.pem", &key);
    let message = load_err(Settings { cert_file: Some(cert_file), key_file: Some(key_file), ..Settings::default() });
    assert!(message.contains("is not valid before") && message.contains("2999"), "{message}");
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_both_files() {
    let pki = Pki::new();
    let (_, cert, _) = pki.files("a", &["localhost"]);
    let (_, _, other_key) = pki.files("b", &["localhost"]);
    let message =
        load_err(Settings { cert_file: Some(cert.clone()), key_file: Some(other_key.clone()), ..Settings::default() });
    assert!(
        message.contains(&other_key.display().to_string())
            && message.contains("does not match the certificate in")
            && message.contains(&cert.display().to_string()),
        "{message}"
    );
}

#[test]
fn missing_and_non_pem_files_are_named() {
    let pki = Pki::new();
    let missing = pki.path("nowhere.pem");
    let message = load_err(Settings { ca_file: Some(missing.clone()), ..Settings::default() });
    assert!(message.starts_with(&format!("cannot read {}", missing.display())), "{message}");

    let garbage = pki.write("garbage.pem", "this is not PEM\n");
    let message = load_err(Settings { ca_file: Some(garbage.clone()), ..Settings::default() });
    assert_eq!(message, format!("{}: no PEM certificate found", garbage.display()));

    let (_, cert, _) = pki.files("c", &["localhost"]);
    let message = load_err(Settings { cert_file: Some(cert.clone()), key_file: Some(cert), ..Settings::default() });
    assert!(message.contains("no PEM private key found"), "{message}");

    let empty_dir = pki.path("empty");
    std::fs::create_dir(&empty_dir).expect("dir");
    let message = load_err(Settings { ca_path: Some(empty_dir), ..Settings::default() });
    assert!(message.contains("no CA certificates found"), "{message}");
}

#[test]
fn a_ca_path_directory_is_read_and_checks_the_certificate() {
    let pki = Pki::new();
    let (_, cert, key) = pki.files("server", &["localhost"]);
    let dir = pki.path("cas");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::write(dir.join("one.pem"), pki.ca.pem()).expect("CA");
    std::fs::write(dir.join("two.pem"), ca("Other CA").pem()).expect("CA");
    Tls::load(Settings {
        ca_path: Some(dir.clone()),
        cert_file: Some(cert),
        key_file: Some(key),
        ..Settings::default()
    })
    .expect("a CA in the directory signed it");
}

#[test]
fn impossible_combinations_are_refused_before_reading_files() {
    let message = load_err(Settings { verify_incoming: true, ..Settings::default() });
    assert_eq!(message, "verify_incoming is set but no ca_file or ca_path is given");
    let message = load_err(Settings { verify_outgoing: true, ..Settings::default() });
    assert_eq!(message, "verify_outgoing is set but no ca_file or ca_path is given");
    let suite = parse_cipher_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").expect("a GCM suite");
    let message =
        load_err(Settings { min_version: TlsVersion::Tls13, cipher_suites: vec![suite], ..Settings::default() });
    assert!(message.contains("cannot be set with tls_min_version TLSv1_3"), "{message}");
}

#[test]
fn consul_names_for_versions_and_suites() {
    assert_eq!(TlsVersion::parse("TLSv1_3").ok(), Some(TlsVersion::Tls13));
    assert_eq!(TlsVersion::parse("tls12").ok(), Some(TlsVersion::Tls12));
    let old = TlsVersion::parse("TLSv1_1").expect_err("TLS 1.1").to_string();
    assert!(old.contains("\"TLSv1_1\" is not supported"), "{old}");
    let cbc = parse_cipher_suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA").expect_err("CBC").to_string();
    assert!(cbc.starts_with("cipher suite \"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\" is not supported"), "{cbc}");
}

#[test]
fn tls13_minimum_refuses_a_tls12_only_client() {
    provider();
    let pki = Pki::new();
    let server = Tls::load(Settings { min_version: TlsVersion::Tls13, ..pki.settings("server", &["localhost"]) })
        .expect("server");
    // roster's own clients always offer TLS 1.3, so an older client is built by hand.
    let tls12_only = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .dangerous()
        .with_custom_certificate_verifier(accept_anything())
        .with_no_client_auth();
    let mut server_conn = rustls::ServerConnection::new(server.server_config().expect("cert")).expect("conn");
    let name = ServerName::try_from("localhost").expect("name");
    let mut client_conn = rustls::ClientConnection::new(Arc::new(tls12_only), name).expect("conn");
    let mut buf = Vec::new();
    client_conn.write_tls(&mut buf).expect("hello");
    server_conn.read_tls(&mut buf.as_slice()).expect("read");
    let refused = server_conn.process_new_packets().expect_err("TLS 1.2 refused");
    assert!(refused.to_string().contains("Tls12NotOfferedOrEnabled"), "{refused}");
}

#[test]
fn reload_swaps_the_certificate_and_a_failed_reload_keeps_the_old_one() {
    provider();
    let pki = Pki::new();
    let settings = pki.settings("server", &["localhost"]);
    let tls = Tls::load(settings.clone()).expect("loads");
    let first = leaf_der(&tls);

    let (cert, key) = leaf(&pki.ca, &["localhost"], |_| {});
    write_over(settings.cert_file.as_deref(), &cert);
    write_over(settings.key_file.as_deref(), &key);
    tls.reload().expect("new files load");
    let second = leaf_der(&tls);
    assert_ne!(first, second, "new handshakes present the new certificate");

    let (other_cert, _) = leaf(&pki.ca, &["localhost"], |_| {});
    write_over(settings.cert_file.as_deref(), &other_cert);
    let err = tls.reload().expect_err("the key no longer matches");
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
    assert_eq!(leaf_der(&tls), second, "the previous certificate stays in use");
}

fn write_over(path: Option<&Path>, text: &str) {
    std::fs::write(path.expect("a path"), text).expect("overwriting");
}

/// The leaf certificate the server config presents.
fn leaf_der(tls: &Tls) -> Vec<u8> {
    let config = tls.server_config().expect("a server config");
    let mut conn = rustls::ServerConnection::new(config).expect("conn");
    let client = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(accept_anything())
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let mut client_conn = rustls::ClientConnection::new(Arc::new(client), name).expect("client conn");
    for _ in 0..8 {
        let mut buf = Vec::new();
        client_conn.write_tls(&mut buf).expect("client write");
        conn.read_tls(&mut buf.as_slice()).expect("server read");
        conn.process_new_packets().expect("server process");
        let mut buf = Vec::new();
        conn.write_tls(&mut buf).expect("server write");
        client_conn.read_tls(&mut buf.as_slice()).expect("client read");
        client_conn.process_new_packets().expect("client process");
        if let Some(chain) = client_conn.peer_certificates() {
            return chain[0].as_ref().to_vec();
        }
    }
    panic!("no certificate presented")
}

/// A client-side check that accepts any certificate, to look at what a server presents.
fn accept_anything() -> Arc<crate::verify::ServerCheck> {
    Arc::new(crate::verify::ServerCheck {
        algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        chain: None,
    })
}
