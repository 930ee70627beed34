//! Tests of `roster tls`: the names, usages and files of each certificate kind, read back with
//! x509-parser, and Consul's refusals. The real binary and rustls/openssl verification are in
//! `tests/tests/tls_cli.rs`.

use std::net::IpAddr;
use std::path::Path;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::encoding::{self, CERTIFICATE, EC_PRIVATE_KEY, PRIVATE_KEY};
use super::pki::{Kind, Profile, Request};
use super::{TlsCommand, Ui, run_in};
use crate::cli::{Command, parse};

/// Runs one `roster tls ...` command line in `dir`: (exit code, stdout, stderr).
fn run_line(dir: &Path, line: &str) -> (i32, String, String) {
    let cli = parse(format!("roster tls {line}").split(' ')).unwrap_or_else(|err| panic!("{line:?}: {err}"));
    let Command::Tls(command) = cli.command else { panic!("{line:?} is not a tls command") };
    run_command(dir, &command)
}

fn run_command(dir: &Path, command: &TlsCommand) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_in(command, dir, &mut Ui { out: &mut out, err: &mut err });
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

/// Runs a command that must succeed and returns its stdout.
fn ok(dir: &Path, line: &str) -> String {
    let (code, out, err) = run_line(dir, line);
    assert_eq!(code, 0, "{line:?} failed: {err}");
    out
}

/// Runs a command that must fail and returns its stderr.
fn refused(dir: &Path, line: &str) -> String {
    let (code, out, err) = run_line(dir, line);
    assert_eq!(code, 1, "{line:?} did not fail: {out}");
    err
}

/// The DER of a PEM file's only block, checking its label.
fn pem_file(path: &Path, label: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let (found, der) = encoding::pem_decode_first(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert_eq!(found, label, "{}", path.display());
    der
}

fn parse_cert(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).expect("a certificate").1
}

fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    general_names(cert).into_iter().filter_map(|name| name.strip_prefix("dns:").map(str::to_owned)).collect()
}

fn ip_addresses(cert: &X509Certificate<'_>) -> Vec<String> {
    general_names(cert).into_iter().filter_map(|name| name.strip_prefix("ip:").map(str::to_owned)).collect()
}

/// Every subject alternative name as `dns:…`, `ip:…` or `uri:…`.
fn general_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Some(san) = cert.subject_alternative_name().expect("valid SAN extension") else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("dns:{dns}"),
            GeneralName::URI(uri) => format!("uri:{uri}"),
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")),
                };
                format!("ip:{ip}")
            }
            other => format!("other:{other:?}"),
        })
        .collect()
}

/// The extended key usages as Consul's names.
fn usages(cert: &X509Certificate<'_>) -> Vec<&'static str> {
    let Some(eku) = cert.extended_key_usage().expect("valid EKU extension") else { return Vec::new() };
    let mut found = Vec::new();
    if eku.value.server_auth {
        found.push("serverAuth");
    }
    if eku.value.client_auth {
        found.push("clientAuth");
    }
    if eku.value.any || !eku.value.other.is_empty() || eku.value.code_signing || eku.value.email_protection {
        found.push("other");
    }
    found
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
            _ => None,
        })
        .expect("a subject key identifier")
}

fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|id| id.0),
            _ => None,
        })
        .expect("an authority key identifier")
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).expect("a common name").to_owned()
}

fn request(node: Option<&str>, dns: &[&str], ips: &[&str]) -> Request {
    Request {
        datacenter: "dc1".to_owned(),
        domain: "consul".to_owned(),
        node: node.map(str::to_owned),
        extra_dns_names: dns.iter().map(|name| (*name).to_owned()).collect(),
        extra_ip_addresses: ips.iter().map(|ip| ip.parse().expect("an IP")).collect(),
    }
}

#[test]
fn each_kind_gets_consuls_names_usages_and_file_prefix() {
    let check = |kind, request: &Request, expect: (&str, &[&str], &[&str], &str)| {
        let profile = Profile::new(kind, request);
        let (name, dns, ips, prefix) = expect;
        assert_eq!(profile.common_name, name, "{kind:?}");
        assert_eq!(profile.dns_names, dns, "{kind:?}");
        let ips: Vec<IpAddr> = ips.iter().map(|ip| ip.parse().expect("an IP")).collect();
        assert_eq!(profile.ip_addresses, ips, "{kind:?}");
        assert_eq!(profile.file_prefix, prefix, "{kind:?}");
    };
    check(
        Kind::Server,
        &request(None, &[], &[]),
        ("server.dc1.consul", &["server.dc1.consul", "localhost"], &["127.0.0.1"], "dc1-server-consul"),
    );
    // Additional names come first, then the node's name, as Consul appends them.
    check(
        Kind::Server,
        &request(Some("n1"), &["lb.example"], &["10.0.0.1"]),
        (
            "server.dc1.consul",
            &["lb.example", "n1.server.dc1.consul", "server.dc1.consul", "localhost"],
            &["10.0.0.1", "127.0.0.1"],
            "dc1-server-consul",
        ),
    );
    check(
        Kind::Client,
        &request(None, &["c.example"], &[]),
        ("client.dc1.consul", &["c.example", "client.dc1.consul", "localhost"], &["127.0.0.1"], "dc1-client-consul"),
    );
    // A CLI certificate has no loopback address, as Consul's.
    check(
        Kind::Cli,
        &request(None, &[], &["10.0.0.2"]),
        ("cli.dc1.consul", &["cli.dc1.consul", "localhost"], &["10.0.0.2"], "dc1-cli-consul"),
    );
    let with_other_dc = Request { datacenter: "eu".to_owned(), domain: "corp".to_owned(), ..request(None, &[], &[]) };
    check(
        Kind::Client,
        &with_other_dc,
        ("client.eu.corp", &["client.eu.corp", "localhost"], &["127.0.0.1"], "eu-client-corp"),
    );
}

#[test]
fn ca_create_writes_a_consul_shaped_ca_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = ok(dir.path(), "ca create");
    assert_eq!(out, "==> Saved consul-agent-ca.pem\n==> Saved consul-agent-ca-key.pem\n");
    let der = pem_file(&dir.path().join("consul-agent-ca.pem"), CERTIFICATE);
    let ca = parse_cert(&der);
    assert!(ca.is_ca());
    assert!(common_name(&ca).starts_with("Consul Agent CA "), "{}", common_name(&ca));
    // The common name carries the serial number in decimal, as Consul's.
    let serial = ca.tbs_certificate.serial.to_string();
    assert_eq!(common_name(&ca), format!("Consul Agent CA {serial}"));
    let usage = ca.key_usage().expect("valid").expect("key usage").value;
    assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
    assert_eq!(subject_key_id(&ca).len(), 32, "SHA-256 key identifier");
    assert_eq!(subject_key_id(&ca), authority_key_id(&ca));
    assert!(ca.name_constraints().expect("valid").is_none());
    let days = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 1825);
    pem_file(&dir.path().join("consul-agent-ca-key.pem"), EC_PRIVATE_KEY);

    let before = std::fs::read(dir.path().join("consul-agent-ca.pem")).expect("read");
    assert_eq!(refused(dir.path(), "ca create"), "consul-agent-ca.pem already exists.\n");
    assert_eq!(std::fs::read(dir.path().join("consul-agent-ca.pem")).expect("read"), before, "left as it was");
    std::fs::remove_file(dir.path().join("consul-agent-ca.pem")).expect("remove");
    assert_eq!(refused(dir.path(), "ca create"), "consul-agent-ca-key.pem already exists.\n");
    assert!(!dir.path().join("consul-agent-ca.pem").exists(), "a refused create writes nothing");
}

#[test]
fn ca_create_flags_name_the_files_and_shape_the_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(
        dir.path(),
        "ca create -domain corp -days 10 -common-name Example-CA -cluster-id 11111111-2222 -name-constraint \
         -additional-name-constraint example.com",
    );
    let der = pem_file(&dir.path().join("corp-agent-ca.pem"), CERTIFICATE);
    let ca = parse_cert(&der);
    assert_eq!(common_name(&ca), "Example-CA");
    assert_eq!(general_names(&ca), ["uri:spiffe://11111111-2222.corp"]);
    let constraints = ca.name_constraints().expect("valid").expect("name constraints");
    assert!(constraints.critical);
    let permitted: Vec<String> = constraints
        .value
        .permitted_subtrees
        .iter()
        .flatten()
        .map(|subtree| match subtree.base {
            GeneralName::DNSName(name) => name.to_owned(),
            ref other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(permitted, ["example.com", "corp", "localhost"]);
    let days = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 10);
    assert!(dir.path().join("corp-agent-ca-key.pem").exists());
}

#[test]
fn cert_create_issues_each_kind_from_the_ca_with_its_sans_and_usages() {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(dir.path(), "ca create");
    let ca_der = pem_file(&dir.path().join("consul-agent-ca.pem"), CERTIFICATE);
    let ca = parse_cert(&ca_der);

    let out =
        ok(dir.path(), "cert create -server -node n1 -additional-dnsname lb.example -additional-ipaddress 10.0.0.1");
    assert!(out.starts_with("==> WARNING: Server Certificates grants authority"), "{out}");
    assert!(out.ends_with(
        "==> Using consul-agent-ca.pem and consul-agent-ca-key.pem\n\
         ==> Saved dc1-server-consul-0.pem\n==> Saved dc1-server-consul-0-key.pem\n"
    ));
    let der = pem_file(&dir.path().join("dc1-server-consul-0.pem"), CERTIFICATE);
    let server = parse_cert(&der);
    assert_eq!(common_name(&server), "server.dc1.consul");
    assert_eq!(dns_names(&server), ["lb.example", "n1.server.dc1.consul", "server.dc1.consul", "localhost"]);
    assert_eq!(ip_addresses(&server), ["10.0.0.1", "127.0.0.1"]);
    assert_eq!(usages(&server), ["serverAuth", "clientAuth"]);
    assert!(!server.is_ca());
    assert_eq!(server.issuer(), ca.subject());
    assert_eq!(authority_key_id(&server), subject_key_id(&ca));
    let usage = server.key_usage().expect("valid").expect("key usage").value;
    assert!(usage.digital_signature() && usage.key_encipherment() && !usage.key_cert_sign());
    let days = (server.validity().not_after.timestamp() - server.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 365);
    pem_file(&dir.path().join("dc1-server-consul-0-key.pem"), EC_PRIVATE_KEY);

    let out = ok(dir.path(), "cert create -client");
    assert_eq!(
        out,
        "==> Using consul-agent-ca.pem and consul-agent-ca-key.pem\n\
         ==> Saved dc1-client-consul-0.pem\n==> Saved dc1-client-consul-0-key.pem\n"
    );
    let der = pem_file(&dir.path().join("dc1-client-consul-0.pem"), CERTIFICATE);
    let client = parse_cert(&der);
    assert_eq!(dns_names(&client), ["client.dc1.consul", "localhost"]);
    assert_eq!(ip_addresses(&client), ["127.0.0.1"]);
    assert_eq!(usages(&client), ["serverAuth", "clientAuth"]);

    ok(dir.path(), "cert create -cli -days 30");
    let der = pem_file(&dir.path().join("dc1-cli-consul-0.pem"), CERTIFICATE);
    let cli = parse_cert(&der);
    assert_eq!(dns_names(&cli), ["cli.dc1.consul", "localhost"]);
    assert!(ip_addresses(&cli).is_empty());
    assert_eq!(usages(&cli), ["clientAuth"]);
    let days = (cli.validity().not_after.timestamp() - cli.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 30);

    // Serial numbers are random, not derived from anything the certificates share.
    let serials = [&ca, &server, &client, &cli].map(|cert| cert.tbs_certificate.serial.clone());
    for (idx, serial) in serials.iter().enumerate() {
        assert!(!serials[idx + 1..].contains(serial), "serial {serial} repeats");
    }
}

#[test]
fn cert_create_takes_the_next_free_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(dir.path(), "ca create");
    ok(dir.path(), "cert create -server");
    assert!(ok(dir.path(), "cert create -server").ends_with("==> Saved dc1-server-consul-1-key.pem\n"));
    // An index is free only when neither its certificate nor its key exists.
    std::fs::remove_file(dir.path().join("dc1-server-consul-0.pem")).expect("remove");
    assert!(ok(dir.path(), "cert create -server").ends_with("==> Saved dc1-server-consul-2-key.pem\n"));
    assert!(!dir.path().join("dc1-server-consul-0.pem").exists());
}

#[test]
fn cert_create_signs_with_a_pkcs8_ca_key_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = params.self_signed(&key).expect("CA");
    std::fs::write(dir.path().join("my-ca.pem"), encoding::pem_encode(CERTIFICATE, ca.der())).expect("write");
    let key_pem = encoding::pem_encode(PRIVATE_KEY, &key.serialize_der());
    std::fs::write(dir.path().join("my-ca-key.pem"), key_pem).expect("write");
    let out = ok(dir.path(), "cert create -client -ca my-ca.pem -key my-ca-key.pem");
    assert!(out.starts_with("==> Using my-ca.pem and my-ca-key.pem\n"), "{out}");
    let der = pem_file(&dir.path().join("dc1-client-consul-0.pem"), CERTIFICATE);
    assert_eq!(parse_cert(&der).issuer(), parse_cert(ca.der()).subject());
}

#[test]
fn cert_create_refuses_what_consul_refuses_with_its_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let check = |line: &str, expect: &str| assert_eq!(refused(dir.path(), line), format!("{expect}\n"), "{line}");
    check("cert create", "Please provide either -server, -client, or -cli");
    check("cert create -server -client", "Please provide either -server, -client, or -cli");
    check("cert create -server -cli", "Please provide either -server, -client, or -cli");
    check("cert create -client -node n1", "-node requires -server");
    check("cert create -server -ca=", "Please provide the ca");
    check("cert create -server -key=", "Please provide the key");
    check("cert create -server", "Error reading CA: open consul-agent-ca.pem: no such file or directory");
    check("cert create -server -domain corp", "Error reading CA: open corp-agent-ca.pem: no such file or directory");
    ok(dir.path(), "ca create");
    check("cert create -client -key nope.pem", "Error reading CA key: open nope.pem: no such file or directory");
    // roster refuses what Consul would drop or write broken, naming the flag.
    check(
        "cert create -cli -additional-dnsname a.example",
        "-additional-dnsname cannot be used with -cli: a CLI certificate is named cli.<dc>.<domain> and localhost only",
    );
    check(
        "cert create -client -additional-ipaddress 10.0.0.300",
        "-additional-ipaddress: \"10.0.0.300\" is not an IP address",
    );
    check("cert create -client -days 0", "-days must be a positive number of days, not 0");
    check("cert create -client -days -5", "-days must be a positive number of days, not -5");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "a refused create writes nothing: {names:?}");
}

#[test]
fn a_ca_key_that_is_not_the_cas_signs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(dir.path(), "ca create");
    ok(dir.path(), "ca create -domain other");
    let err = refused(dir.path(), "cert create -server -key other-agent-ca-key.pem");
    assert!(err.starts_with("the new certificate does not verify against the CA"), "{err}");
    assert!(!dir.path().join("dc1-server-consul-0.pem").exists());
    let err = refused(dir.path(), "cert create -server -key consul-agent-ca.pem");
    assert_eq!(err, "unknown PEM block type for signing key: CERTIFICATE\n");
}

#[test]
fn a_name_constrained_ca_signs_only_its_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(dir.path(), "ca create -name-constraint");
    ok(dir.path(), "cert create -server -node n1");
    let err = refused(dir.path(), "cert create -client -additional-dnsname www.example.com");
    assert!(err.starts_with("the new certificate does not verify against the CA"), "{err}");
    assert!(!dir.path().join("dc1-client-consul-0.pem").exists());
}

#[test]
fn keys_round_trip_through_consuls_sec1_layout() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let sec1 = encoding::p256_sec1_from_pkcs8(&key.serialize_der(), key.public_key_raw()).expect("sec1");
    // 30 77, version 1, the 32-byte secret, [0] prime256v1, [1] the 65-byte point: Go's layout.
    assert_eq!(sec1.len(), 121);
    assert_eq!(&sec1[..7], &[0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20]);
    let back = rcgen::KeyPair::try_from(encoding::pkcs8_from_sec1(&sec1).expect("pkcs8").as_slice()).expect("loads");
    assert_eq!(back.public_key_raw(), key.public_key_raw());
    assert!(encoding::pkcs8_from_sec1(&sec1[..50]).is_err());
}

#[test]
fn pem_blocks_are_found_among_other_text() {
    let pem = encoding::pem_encode("CERTIFICATE", &[7u8; 100]);
    assert!(pem.lines().all(|line| line.len() <= 64));
    let (label, der) = encoding::pem_decode_first(&format!("junk\n{pem}more")).expect("decodes");
    assert_eq!((label.as_str(), der), ("CERTIFICATE", vec![7u8; 100]));
    assert_eq!(encoding::pem_decode_first("nothing here"), Err("no PEM-encoded data found".to_owned()));
}
