//! [`Tls`]: the material of one [`Settings`], loaded and checked, with the rustls configs built from it, and a
//! reload that swaps them whole.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};

use crate::load::{self, Material};
use crate::verify::{NameCheck, ServerCheck};
use crate::{Error, Result, Settings, TlsVersion};

/// Loaded TLS material and the configs built from it, shared (`Arc<Tls>`) by whoever serves or dials with it.
///
/// Take [`Tls::server_config`] / [`Tls::client_config`] once per connection: after [`Tls::reload`] they return
/// the new configs, while connections already open keep the ones they started with.
#[derive(Debug)]
pub struct Tls {
    settings: Settings,
    current: RwLock<Arc<Built>>,
}

/// The configs built from one reading of the files.
#[derive(Debug)]
struct Built {
    /// `None` when the settings name no certificate: such a `Tls` can only dial.
    server: Option<Arc<ServerConfig>>,
    client: Arc<ClientConfig>,
}

impl Tls {
    /// Reads and checks every file of `settings` and builds the configs; errors name the file and the problem.
    pub fn load(settings: Settings) -> Result<Tls> {
        check_settings(&settings)?;
        let built = build(&settings)?;
        Ok(Tls { settings, current: RwLock::new(Arc::new(built)) })
    }

    /// Re-reads the files and, if everything checks out, makes new handshakes use them. On error the previous
    /// material stays in use and the error says why.
    pub fn reload(&self) -> Result<()> {
        let built = Arc::new(build(&self.settings)?);
        match self.current.write() {
            Ok(mut current) => *current = built,
            // A panic while swapping an `Arc` cannot leave it half-written; take the lock back.
            Err(poisoned) => *poisoned.into_inner() = built,
        }
        Ok(())
    }

    /// The config a server hands to a new connection; `None` when the settings name no certificate.
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.built().server.clone()
    }

    /// The config a client uses for a new connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.built().client.clone()
    }

    /// The settings this material was loaded from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every file (and CA directory) a reload reads, for watching them for changes.
    pub fn files(&self) -> Vec<PathBuf> {
        load::files(&self.settings)
    }

    fn built(&self) -> Arc<Built> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The combinations Consul refuses, before any file is read.
fn check_settings(settings: &Settings) -> Result<()> {
    let has_ca = settings.ca_file.is_some() || settings.ca_path.is_some();
    if settings.verify_incoming && !has_ca {
        return Err(Error::Setting("verify_incoming is set but no ca_file or ca_path is given".into()));
    }
    if settings.verify_incoming && settings.cert_file.is_none() {
        return Err(Error::Setting("verify_incoming is set but no cert_file and key_file are given".into()));
    }
    if settings.verify_outgoing && !has_ca {
        return Err(Error::Setting("verify_outgoing is set but no ca_file or ca_path is given".into()));
    }
    if settings.min_version == TlsVersion::Tls13 && !settings.cipher_suites.is_empty() {
        return Err(Error::Setting(
            "tls_cipher_suites cannot be set with tls_min_version TLSv1_3: TLS 1.3 suites are not configurable".into(),
        ));
    }
    if let Some(name) = &settings.server_name {
        ServerName::try_from(name.clone())
            .map_err(|_| Error::Setting(format!("server name {name:?} is not a valid DNS name or IP address")))?;
    }
    Ok(())
}

fn build(settings: &Settings) -> Result<Built> {
    let provider = Arc::new(provider(settings));
    let material = load::material(settings, &provider)?;
    let versions = versions(settings.min_version);
    let server = match &material.certified {
        Some(certified) => Some(Arc::new(server_config(settings, &material, certified, &provider, versions)?)),
        None => None,
    };
    let client = Arc::new(client_config(settings, &material, &provider, versions)?);
    Ok(Built { server, client })
}

/// ring's provider, narrowed to the configured TLS 1.2 suites (TLS 1.3 suites always stay).
fn provider(settings: &Settings) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if !settings.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|suite| {
            suite.version() == &rustls::version::TLS13 || settings.cipher_suites.contains(&suite.suite())
        });
    }
    provider
}

/// Protocol versions from TLS 1.2 up.
static FROM_TLS12: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
/// TLS 1.3 alone.
static ONLY_TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

fn versions(min: TlsVersion) -> &'static [&'static SupportedProtocolVersion] {
    match min {
        TlsVersion::Tls12 => &FROM_TLS12,
        TlsVersion::Tls13 => &ONLY_TLS13,
    }
}

fn rustls_error(what: &'static str) -> impl Fn(rustls::Error) -> Error {
    move |err| Error::Setting(format!("{what}: {err}"))
}

fn server_config(
    settings: &Settings,
    material: &Material,
    certified: &Arc<rustls::sign::CertifiedKey>,
    provider: &Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(rustls_error("building the server TLS config"))?;
    let builder = match (&material.roots, settings.verify_incoming) {
        (Some(roots), true) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|err| Error::Setting(format!("building the client certificate check: {err}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(builder.with_cert_resolver(Arc::new(SingleCert(certified.clone()))))
}

/// Always presents the one loaded certificate, as server or as client; a reload builds new configs around the new
/// one.
#[derive(Debug)]
struct SingleCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for SingleCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn client_config(
    settings: &Settings,
    material: &Material,
    provider: &Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<ClientConfig> {
    let chain = match (&material.roots, settings.verify_outgoing) {
        (Some(roots), true) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|err| Error::Setting(format!("building the server certificate check: {err}")))?;
            let name = match (&settings.server_name, settings.verify_server_hostname) {
                (_, false) => NameCheck::Ignore,
                (Some(name), true) => NameCheck::Fixed(
                    ServerName::try_from(name.clone())
                        .map_err(|_| Error::Setting(format!("server name {name:?} is not a valid DNS name")))?,
                ),
                (None, true) => NameCheck::Connected,
            };
            Some((webpki, name))
        }
        _ => None,
    };
    let check = ServerCheck { algorithms: provider.signature_verification_algorithms, chain };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(rustls_error("building the client TLS config"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(check));
    match &material.certified {
        Some(certified) => Ok(builder.with_client_cert_resolver(Arc::new(SingleCert(certified.clone())))),
        None => Ok(builder.with_no_client_auth()),
    }
}
