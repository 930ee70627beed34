//! What goes into Consul's agent CA and agent certificates, and the signing itself.
//!
//! The contents follow Consul's `tlsutil.GenerateCA` and `GenerateCert`: ECDSA P-256 keys,
//! random 128-bit serial numbers, key identifiers that are the SHA-256 of the public key info,
//! the CA's fixed HashiCorp subject, and each kind's names and extended key usages
//! ([`Profile::new`]). After signing, the certificate is verified against the CA with webpki,
//! as Consul verifies it with Go's `x509`, so a key that does not belong to the CA, or a name
//! outside the CA's name constraints, is an error before anything is written.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, NameConstraints, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
    SerialNumber,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::encoding::{self, CERTIFICATE, EC_PRIVATE_KEY, PRIVATE_KEY};

/// Which of Consul's three certificate kinds to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-server`: may act as a server agent (and must be kept as safe as the CA key).
    Server,
    /// `-client`: a client agent.
    Client,
    /// `-cli`: a command-line user of an HTTPS API with `verify_incoming`.
    Cli,
}

/// The names, usages and file prefix of one certificate, before any key exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The subject's common name, which the certificate is verified for.
    pub common_name: String,
    /// DNS subject alternative names, in Consul's order.
    pub dns_names: Vec<String>,
    /// IP subject alternative names, in Consul's order.
    pub ip_addresses: Vec<IpAddr>,
    /// Extended key usages.
    pub usages: Vec<ExtendedKeyUsagePurpose>,
    /// File names are `<prefix>-<index>.pem` and `<prefix>-<index>-key.pem`.
    pub file_prefix: String,
}

/// What `tls cert create` was asked for, already split into values.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `-dc`.
    pub datacenter: String,
    /// `-domain`.
    pub domain: String,
    /// `-node` (servers only).
    pub node: Option<String>,
    /// `-additional-dnsname`, trimmed, empty ones left out.
    pub extra_dns_names: Vec<String>,
    /// `-additional-ipaddress`.
    pub extra_ip_addresses: Vec<IpAddr>,
}

/// A PEM certificate and its PEM private key.
#[derive(Debug)]
pub struct Issued {
    /// The certificate, `CERTIFICATE` PEM.
    pub cert_pem: String,
    /// Its private key, `EC PRIVATE KEY` PEM as Consul writes it.
    pub key_pem: String,
}

impl Profile {
    /// Consul's names for `kind`: server → `server.<dc>.<domain>` (and `<node>.server.<dc>.<domain>`
    /// with `-node`), `localhost`, 127.0.0.1; client → `client.<dc>.<domain>`, `localhost`,
    /// 127.0.0.1; cli → `cli.<dc>.<domain>`, `localhost`. The additional names come first.
    pub fn new(kind: Kind, request: &Request) -> Profile {
        let Request { datacenter: dc, domain, .. } = request;
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let mut dns_names = request.extra_dns_names.clone();
        let mut ip_addresses = request.extra_ip_addresses.clone();
        let (role, usages) = match kind {
            Kind::Server => ("server", vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]),
            Kind::Client => ("client", vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth]),
            // Consul leaves a CLI certificate without extended key usages, which makes it good for
            // any purpose, a server's included; it is only ever presented as a client, so say so.
            Kind::Cli => ("cli", vec![ExtendedKeyUsagePurpose::ClientAuth]),
        };
        let common_name = format!("{role}.{dc}.{domain}");
        if let (Kind::Server, Some(node)) = (kind, &request.node) {
            dns_names.push(format!("{node}.{common_name}"));
        }
        dns_names.push(common_name.clone());
        dns_names.push("localhost".to_owned());
        if kind != Kind::Cli {
            ip_addresses.push(loopback);
        }
        Profile { common_name, dns_names, ip_addresses, usages, file_prefix: format!("{dc}-{role}-{domain}") }
    }
}

/// What `tls ca create` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CaRequest {
    /// `-common-name`; Consul's `Consul Agent CA <serial>` when empty.
    pub common_name: String,
    /// `-days`.
    pub days: u32,
    /// `-domain`, for the SPIFFE ID of `-cluster-id`.
    pub domain: String,
    /// `-cluster-id`: adds the URI `spiffe://<cluster id>.<domain>`.
    pub cluster_id: String,
    /// The DNS names the CA may sign for; empty: no name constraints.
    pub permitted_dns_domains: Vec<String>,
}

/// Creates a self-signed agent CA as Consul's `tls ca create` does.
pub fn create_ca(request: &CaRequest) -> Result<Issued, String> {
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|err| format!("error generating private key: {err}"))?;
    let serial = random_serial();
    let common_name = match request.common_name.as_str() {
        "" => format!("Consul Agent CA {}", u128::from_be_bytes(serial)),
        name => name.to_owned(),
    };
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.distinguished_name = ca_subject(&common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id(&key));
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, request.days)?;
    if !request.cluster_id.is_empty() {
        let uri = format!("spiffe://{}.{}", request.cluster_id, request.domain);
        let ascii = uri.clone().try_into().map_err(|_| format!("-cluster-id: {uri} is not an ASCII URI"))?;
        params.subject_alt_names.push(SanType::URI(ascii));
    }
    if !request.permitted_dns_domains.is_empty() {
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: request.permitted_dns_domains.iter().cloned().map(GeneralSubtree::DnsName).collect(),
            excluded_subtrees: Vec::new(),
        });
    }
    let cert = params.self_signed(&key).map_err(|err| format!("error generating CA certificate: {err}"))?;
    Ok(Issued { cert_pem: encoding::pem_encode(CERTIFICATE, cert.der()), key_pem: key_pem(&key)? })
}

/// Issues a certificate for `profile` signed by the CA in `ca_pem` with the key in `ca_key_pem`,
/// valid for `days`, and verifies it against that CA before returning it.
pub fn issue(profile: &Profile, days: u32, ca_pem: &str, ca_key_pem: &str) -> Result<Issued, String> {
    let ca_der = read_ca(ca_pem)?;
    let ca_key = read_key(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key).map_err(|err| format!("failed to parse CA: {err}"))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|err| format!("failed to generate private key: {err}"))?;
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, profile.common_name.as_str());
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = profile.usages.clone();
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id(&key));
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days)?;
    for name in &profile.dns_names {
        let san = name.clone().try_into().map_err(|_| format!("{name:?} is not an ASCII DNS name"))?;
        params.subject_alt_names.push(SanType::DnsName(san));
    }
    params.subject_alt_names.extend(profile.ip_addresses.iter().copied().map(SanType::IpAddress));
    let cert = params.signed_by(&key, &issuer).map_err(|err| format!("failed to create certificate: {err}"))?;
    verify(cert.der(), &ca_der, profile)?;
    Ok(Issued { cert_pem: encoding::pem_encode(CERTIFICATE, cert.der()), key_pem: key_pem(&key)? })
}

/// Consul's CA subject: HashiCorp's address and the common name.
fn ca_subject(common_name: &str) -> DistinguishedName {
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CountryName, "US");
    // postalCode and streetAddress, which rcgen has no names for (RFC 4519).
    subject.push(DnType::CustomDnType(vec![2, 5, 4, 17]), "94105");
    subject.push(DnType::StateOrProvinceName, "CA");
    subject.push(DnType::LocalityName, "San Francisco");
    subject.push(DnType::CustomDnType(vec![2, 5, 4, 9]), "101 Second Street");
    subject.push(DnType::OrganizationName, "HashiCorp Inc.");
    subject.push(DnType::CommonName, common_name);
    subject
}

/// Valid from now for `days` days (Consul's `time.Now().AddDate(0, 0, days)`, in UTC).
fn set_validity(params: &mut CertificateParams, days: u32) -> Result<(), String> {
    let now = SystemTime::now();
    let until = now.checked_add(Duration::from_secs(u64::from(days) * 86_400)).ok_or("-days is too large")?;
    params.not_before = to_datetime(now)?;
    params.not_after = to_datetime(until)?;
    Ok(())
}

fn to_datetime(at: SystemTime) -> Result<time::OffsetDateTime, String> {
    let secs = at.duration_since(UNIX_EPOCH).map_err(|_| "the clock is before 1970")?.as_secs();
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).map_err(|_| "-days is too large")?)
        .map_err(|_| "-days is too large".to_owned())
}

/// A random 128-bit serial number, as Consul's `GenerateSerialNumber`.
fn random_serial() -> [u8; 16] {
    rand::random()
}

/// Consul's key identifier: the SHA-256 of the DER public key info (not RFC 5280's truncated SHA-1).
fn key_id(key: &KeyPair) -> Vec<u8> {
    Sha256::digest(key.subject_public_key_info()).to_vec()
}

/// The key as Consul writes it: SEC1 `EC PRIVATE KEY`.
fn key_pem(key: &KeyPair) -> Result<String, String> {
    let sec1 = encoding::p256_sec1_from_pkcs8(&key.serialize_der(), key.public_key_raw())?;
    Ok(encoding::pem_encode(EC_PRIVATE_KEY, &sec1))
}

/// The DER of the CA file's first block, which must be a certificate.
fn read_ca(ca_pem: &str) -> Result<CertificateDer<'static>, String> {
    let (label, der) = encoding::pem_decode_first(ca_pem).map_err(|err| format!("failed to parse CA: {err}"))?;
    if label != CERTIFICATE {
        return Err("failed to parse CA: first PEM-block should be CERTIFICATE type".to_owned());
    }
    Ok(CertificateDer::from(der))
}

/// The CA's signing key from SEC1 (Consul's) or PKCS#8 PEM.
fn read_key(key_pem: &str) -> Result<KeyPair, String> {
    let (label, der) = encoding::pem_decode_first(key_pem)?;
    let pkcs8 = match label.as_str() {
        EC_PRIVATE_KEY => encoding::pkcs8_from_sec1(&der)?,
        PRIVATE_KEY => der,
        other => return Err(format!("unknown PEM block type for signing key: {other}")),
    };
    KeyPair::try_from(pkcs8.as_slice()).map_err(|err| format!("cannot use the CA key: {err}"))
}

/// Checks `cert` chains to `ca` for its common name, as Consul's `tlsutil.Verify` does: as a
/// server certificate, or, for a CLI certificate (which may only authenticate clients), as a
/// client certificate.
fn verify(cert: &CertificateDer<'_>, ca: &CertificateDer<'static>, profile: &Profile) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|err| format!("failed to parse root certificate: {err}"))?;
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let now = UnixTime::now();
    let signed_by_ca = |err: rustls::Error| format!("the new certificate does not verify against the CA: {err}");
    if profile.usages.contains(&ExtendedKeyUsagePurpose::ServerAuth) {
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|err| err.to_string())?;
        let name = ServerName::try_from(profile.common_name.clone())
            .map_err(|_| format!("{:?} is not a valid DNS name", profile.common_name))?;
        verifier.verify_server_cert(cert, &[], &name, &[], now).map_err(signed_by_ca)?;
    } else {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|err| err.to_string())?;
        verifier.verify_client_cert(cert, &[], now).map_err(signed_by_ca)?;
    }
    Ok(())
}
