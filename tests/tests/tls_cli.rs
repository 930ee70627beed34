//! `roster tls ca create` and `roster tls cert create` as a user runs them: the real binary in an
//! empty directory, the files it leaves there with their modes, and certificates that rustls
//! (and, when installed, `openssl verify`) accepts for exactly the names Consul gives them, down
//! to a mutual-TLS handshake between the server and client certificates.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use roster_tests::{CliOutput, roster_bin};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// Runs `roster tls ARGS` in `dir`.
fn tls(dir: &Path, args: &[&str]) -> CliOutput {
    let output = Command::new(roster_bin()).arg("tls").args(args).current_dir(dir).output().expect("run roster");
    CliOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display())).permissions().mode() & 0o777
}

fn cert(dir: &Path, name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(dir.join(name)).unwrap_or_else(|err| panic!("{name}: {err:?}"))
}

fn key(dir: &Path, name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(dir.join(name)).unwrap_or_else(|err| panic!("{name}: {err:?}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(dir: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(cert(dir, "consul-agent-ca.pem")).expect("CA is a usable root");
    Arc::new(roots)
}

/// Whether the CA vouches for `name` as a server certificate for `server_name`.
fn server_verifies(dir: &Path, name: &str, server_name: &str) -> Result<(), rustls::Error> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(dir), provider()).build().expect("verifier");
    let server_name = ServerName::try_from(server_name.to_owned()).expect("a server name");
    verifier.verify_server_cert(&cert(dir, name), &[], &server_name, &[], UnixTime::now()).map(|_| ())
}

/// Whether the CA vouches for `name` as a client certificate.
fn client_verifies(dir: &Path, name: &str) -> Result<(), rustls::Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(dir), provider()).build().expect("verifier");
    verifier.verify_client_cert(&cert(dir, name), &[], UnixTime::now()).map(|_| ())
}

/// A mutual-TLS handshake over a socket pair: the server presents `server` (+ key) and requires a
/// client certificate from the CA; the client presents `client` (+ key) and checks the server for
/// `server.dc1.consul`. One byte goes each way, so both keys were used.
fn mutual_tls(dir: &Path, server: &str, client: &str) {
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(dir), provider()).build().expect("verifier"),
        )
        .with_single_cert(vec![cert(dir, &format!("{server}.pem"))], key(dir, &format!("{server}-key.pem")))
        .expect("server key matches its certificate");
    let client_config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots(dir))
        .with_client_auth_cert(vec![cert(dir, &format!("{client}.pem"))], key(dir, &format!("{client}-key.pem")))
        .expect("client key matches its certificate");
    let (server_end, client_end) = UnixStream::pair().expect("socket pair");
    let server_thread = std::thread::spawn(move || -> std::io::Result<u8> {
        let connection = ServerConnection::new(Arc::new(server_config)).map_err(std::io::Error::other)?;
        let mut stream = StreamOwned::new(connection, server_end);
        let mut byte = [0u8];
        std::io::Read::read_exact(&mut stream, &mut byte)?;
        std::io::Write::write_all(&mut stream, &[byte[0] + 1])?;
        Ok(byte[0])
    });
    let name = ServerName::try_from("server.dc1.consul").expect("name");
    let connection = ClientConnection::new(Arc::new(client_config), name).expect("client connection");
    let mut stream = StreamOwned::new(connection, client_end);
    std::io::Write::write_all(&mut stream, &[41]).expect("client writes through TLS");
    let mut reply = [0u8];
    std::io::Read::read_exact(&mut stream, &mut reply).expect("client reads through TLS");
    assert_eq!(reply, [42]);
    assert_eq!(server_thread.join().expect("server thread").expect("server side of the handshake"), 41);
}

#[test]
fn ca_and_certificates_are_created_with_consuls_names_modes_and_sans() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();

    let out = tls(dir, &["ca", "create"]);
    out.expect_success();
    assert_eq!(out.stdout, "==> Saved consul-agent-ca.pem\n==> Saved consul-agent-ca-key.pem\n");
    assert_eq!(mode(&dir.join("consul-agent-ca.pem")), 0o644);
    assert_eq!(mode(&dir.join("consul-agent-ca-key.pem")), 0o600);
    let again = tls(dir, &["ca", "create"]);
    assert_eq!((again.code, again.stderr.as_str()), (Some(1), "consul-agent-ca.pem already exists.\n"));

    let out = tls(dir, &["cert", "create", "-server"]);
    out.expect_success();
    assert!(
        out.stdout.starts_with("==> WARNING: Server Certificates grants authority to become a\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with(
        "==> Using consul-agent-ca.pem and consul-agent-ca-key.pem\n\
         ==> Saved dc1-server-consul-0.pem\n==> Saved dc1-server-consul-0-key.pem\n"
    ));
    tls(dir, &["cert", "create", "-client"]).expect_success();
    tls(dir, &["cert", "create", "-cli"]).expect_success();
    let out = tls(dir, &["cert", "create", "-server"]);
    out.expect_success();
    assert!(out.stdout.ends_with("==> Saved dc1-server-consul-1.pem\n==> Saved dc1-server-consul-1-key.pem\n"));

    for kind in ["server-consul-0", "server-consul-1", "client-consul-0", "cli-consul-0"] {
        assert_eq!(mode(&dir.join(format!("dc1-{kind}.pem"))), 0o644, "{kind}");
        assert_eq!(mode(&dir.join(format!("dc1-{kind}-key.pem"))), 0o600, "{kind}");
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 10, "nothing but the certificates and keys is left behind: {names:?}");

    // The server certificate is good for its Consul names and nothing else.
    for server_name in ["server.dc1.consul", "localhost", "127.0.0.1"] {
        server_verifies(dir, "dc1-server-consul-0.pem", server_name)
            .unwrap_or_else(|err| panic!("{server_name}: {err}"));
    }
    assert!(server_verifies(dir, "dc1-server-consul-0.pem", "client.dc1.consul").is_err());
    server_verifies(dir, "dc1-client-consul-0.pem", "client.dc1.consul").expect("a client certificate serves too");
    client_verifies(dir, "dc1-client-consul-0.pem").expect("client certificate");
    client_verifies(dir, "dc1-server-consul-0.pem").expect("a server certificate is a client too");
    client_verifies(dir, "dc1-cli-consul-0.pem").expect("CLI certificate");
    assert!(
        server_verifies(dir, "dc1-cli-consul-0.pem", "cli.dc1.consul").is_err(),
        "a CLI certificate serves nothing"
    );

    mutual_tls(dir, "dc1-server-consul-0", "dc1-client-consul-0");
    mutual_tls(dir, "dc1-server-consul-1", "dc1-cli-consul-0");

    openssl_verifies(dir);
}

#[test]
fn refusals_print_consuls_messages_and_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let out = tls(dir, &["cert", "create", "-server"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(1), "Error reading CA: open consul-agent-ca.pem: no such file or directory\n")
    );
    let out = tls(dir, &["cert", "create", "-server", "-client"]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(1), "Please provide either -server, -client, or -cli\n"));
    let out = tls(dir, &["cert", "create", "-client", "-node", "n1"]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(1), "-node requires -server\n"));
    assert_eq!(std::fs::read_dir(dir).expect("list").count(), 0);
}

/// `openssl verify` agrees, when the openssl binary is installed (CI installs it).
fn openssl_verifies(dir: &Path) {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("skipping the openssl cross-check: no openssl binary on PATH");
        return;
    }
    for (cert, purpose) in [
        ("dc1-server-consul-0.pem", "sslserver"),
        ("dc1-server-consul-0.pem", "sslclient"),
        ("dc1-client-consul-0.pem", "sslclient"),
        ("dc1-cli-consul-0.pem", "sslclient"),
    ] {
        let output = Command::new("openssl")
            .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile", "consul-agent-ca.pem", cert])
            .current_dir(dir)
            .output()
            .expect("run openssl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.trim() == format!("{cert}: OK"),
            "openssl verify {cert} ({purpose}): {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = Command::new("openssl")
        .args(["verify", "-purpose", "sslserver", "-CAfile", "consul-agent-ca.pem", "dc1-cli-consul-0.pem"])
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(!output.status.success(), "openssl must refuse a CLI certificate as a server's");
    for key in ["consul-agent-ca-key.pem", "dc1-server-consul-0-key.pem"] {
        let output = Command::new("openssl")
            .args(["ec", "-check", "-noout", "-in", key])
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(output.status.success(), "openssl ec -check {key}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
