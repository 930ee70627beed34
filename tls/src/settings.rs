//! [`Settings`]: the TLS options of one listener or client, with Consul's names for versions and cipher suites.

use std::path::PathBuf;

use rustls::CipherSuite;

use crate::{Error, Result};

/// One listener's or client's TLS options, as Consul's `tls.*` blocks name them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// A PEM bundle of CA certificates (`ca_file`).
    pub ca_file: Option<PathBuf>,
    /// A directory of PEM CA certificates, read recursively (`ca_path`); used together with `ca_file`.
    pub ca_path: Option<PathBuf>,
    /// The PEM certificate chain presented to peers, leaf first (`cert_file`).
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of the leaf certificate (`key_file`).
    pub key_file: Option<PathBuf>,
    /// The oldest protocol version accepted (`tls_min_version`; default TLS 1.2, as in Consul).
    pub min_version: TlsVersion,
    /// The TLS 1.2 cipher suites allowed (`tls_cipher_suites`); empty allows every suite rustls offers.
    /// TLS 1.3 suites are not configurable, as in Consul.
    pub cipher_suites: Vec<CipherSuite>,
    /// A server requires a client certificate signed by the CA (`verify_incoming`); off, it asks for none.
    pub verify_incoming: bool,
    /// A client checks the server's chain against the CA (`verify_outgoing`); off, it checks nothing.
    pub verify_outgoing: bool,
    /// A client also checks the server's name (`verify_server_hostname`): [`Settings::server_name`] when set,
    /// else the name it connected with. Off, only the chain is checked, as Consul does for RPC.
    pub verify_server_hostname: bool,
    /// The DNS name a client requires in the server's certificate instead of the name it connected with
    /// (`-tls-server-name`, or `server.<dc>.<domain>` for RPC).
    pub server_name: Option<String>,
}

/// A TLS protocol version roster can require as the minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (Consul's default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersion {
    /// Parses Consul's names (`TLSv1_2`, `TLSv1_3`, the deprecated `tls12`/`tls13`); TLS 1.0 and 1.1 are refused,
    /// since rustls does not speak them.
    pub fn parse(text: &str) -> Result<TlsVersion> {
        match text {
            "TLSv1_2" | "tls12" => Ok(TlsVersion::Tls12),
            "TLSv1_3" | "tls13" => Ok(TlsVersion::Tls13),
            "TLSv1_0" | "TLSv1_1" | "tls10" | "tls11" => {
                Err(Error::Setting(format!("{text:?} is not supported: roster speaks TLS 1.2 and 1.3 only")))
            }
            _ => Err(Error::Setting(format!("{text:?} is not a TLS version; use \"TLSv1_2\" or \"TLSv1_3\""))),
        }
    }
}

/// The TLS 1.2 suites rustls (ring) offers, by the IANA names Consul uses.
const TLS12_SUITES: [(&str, CipherSuite); 6] = [
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
];

/// Parses one of Consul's `tls_cipher_suites` names. Consul's CBC suites are refused by name: rustls does not
/// implement them.
pub fn parse_cipher_suite(name: &str) -> Result<CipherSuite> {
    let name = name.trim();
    if let Some((_, suite)) = TLS12_SUITES.iter().find(|(known, _)| *known == name) {
        return Ok(*suite);
    }
    let supported: Vec<&str> = TLS12_SUITES.iter().map(|(known, _)| *known).collect();
    Err(Error::Setting(format!(
        "cipher suite {name:?} is not supported by roster (it supports {})",
        supported.join(", ")
    )))
}
