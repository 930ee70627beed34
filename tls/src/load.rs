//! Reading PEM files into DER, with the checks that turn a confusing handshake failure into a startup error that
//! names the file: not PEM, no certificate, a key that does not match, a certificate out of its validity period,
//! a certificate the configured CA did not sign.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::sign::CertifiedKey;

use crate::{Error, Result, Settings};

/// Everything read from the files of one [`Settings`].
pub(crate) struct Material {
    /// The CA certificates; `None` when neither `ca_file` nor `ca_path` is set.
    pub roots: Option<Arc<RootCertStore>>,
    /// The certificate chain with its key; `None` when `cert_file`/`key_file` are unset.
    pub certified: Option<Arc<CertifiedKey>>,
}

/// Reads and checks every file `settings` names.
pub(crate) fn material(settings: &Settings, provider: &CryptoProvider) -> Result<Material> {
    let roots = roots(settings)?;
    let certified = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(certified_key(cert, key, provider)?)),
        (None, None) => None,
        (Some(_), None) => return Err(Error::Setting("cert_file is set but key_file is not".into())),
        (None, Some(_)) => return Err(Error::Setting("key_file is set but cert_file is not".into())),
    };
    if let (Some(roots), Some(certified), Some(cert_file)) = (&roots, &certified, &settings.cert_file) {
        check_signed_by(certified, roots, cert_file, settings, provider)?;
    }
    Ok(Material { roots, certified })
}

/// The files a reload re-reads, for callers that watch them for changes.
pub(crate) fn files(settings: &Settings) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        [&settings.ca_file, &settings.cert_file, &settings.key_file].into_iter().flatten().cloned().collect();
    if let Some(dir) = &settings.ca_path {
        files.push(dir.clone());
        files.extend(ca_dir_files(dir).unwrap_or_default());
    }
    files
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })
}

/// Every certificate of a PEM file; a file with none, or with a broken PEM section, is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Error::Pem { path: path.to_path_buf(), what: format!("not valid PEM: {err}") })?;
    if certs.is_empty() {
        return Err(Error::Pem { path: path.to_path_buf(), what: "no PEM certificate found".into() });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| Error::Pem {
        path: path.to_path_buf(),
        what: match err {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".into(),
            other => format!("not a valid PEM private key: {other}"),
        },
    })
}

fn roots(settings: &Settings) -> Result<Option<Arc<RootCertStore>>> {
    let mut files = Vec::new();
    if let Some(file) = &settings.ca_file {
        files.push(file.clone());
    }
    if let Some(dir) = &settings.ca_path {
        let found = ca_dir_files(dir)?;
        if found.is_empty() {
            return Err(Error::Pem { path: dir.clone(), what: "no CA certificates found in this directory".into() });
        }
        files.extend(found);
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut store = RootCertStore::empty();
    for file in &files {
        for cert in certificates(file)? {
            store.add(cert).map_err(|err| Error::Pem {
                path: file.clone(),
                what: format!("not a usable CA certificate: {err}"),
            })?;
        }
    }
    Ok(Some(Arc::new(store)))
}

/// The regular files under `dir`, recursively, in a stable order (Consul walks `ca_path` the same way).
fn ca_dir_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let path = entry.map_err(|source| Error::Read { path: dir.to_path_buf(), source })?.path();
        if path.is_dir() {
            found.extend(ca_dir_files(&path)?);
        } else {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn certified_key(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let chain = certificates(cert_file)?;
    check_validity(&chain[0], cert_file)?;
    let key = private_key(key_file)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| Error::Pem { path: key_file.to_path_buf(), what: format!("not a usable private key: {err}") })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(err) => {
            Err(Error::KeyMismatch { key: key_file.to_path_buf(), cert: cert_file.to_path_buf(), why: err.to_string() })
        }
    }
}

/// Refuses a leaf certificate that has expired or is not valid yet, naming the date.
fn check_validity(leaf: &CertificateDer<'_>, path: &Path) -> Result<()> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|err| Error::Pem {
        path: path.to_path_buf(),
        what: format!("not a valid X.509 certificate: {err}"),
    })?;
    let validity = parsed.validity();
    let now = UnixTime::now().as_secs();
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    if now > validity.not_after.timestamp() {
        return Err(Error::Validity {
            path: path.to_path_buf(),
            why: format!("expired at {}", shown(&validity.not_after)),
        });
    }
    if now < validity.not_before.timestamp() {
        return Err(Error::Validity {
            path: path.to_path_buf(),
            why: format!("is not valid before {}", shown(&validity.not_before)),
        });
    }
    Ok(())
}

/// A certificate date as people read it (RFC 2822, UTC).
fn shown(time: &x509_parser::time::ASN1Time) -> String {
    time.to_rfc2822().unwrap_or_else(|_| time.to_string())
}

/// Checks the chain from `cert_file` against the CA, as a peer will. Only the signatures are checked here: the
/// certificate's purpose (server or client) is the peer's business, and its dates were checked already.
fn check_signed_by(
    certified: &CertifiedKey,
    roots: &RootCertStore,
    cert_file: &Path,
    settings: &Settings,
    provider: &CryptoProvider,
) -> Result<()> {
    let ca = [settings.ca_file.as_ref(), settings.ca_path.as_ref()]
        .into_iter()
        .flatten()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let fail = |why: String| Error::NotSignedByCa { path: cert_file.to_path_buf(), ca: ca.clone(), why };
    let (leaf, intermediates) = certified.cert.split_first().ok_or_else(|| fail("no certificate".into()))?;
    let parsed = rustls::server::ParsedCertificate::try_from(leaf).map_err(|err| fail(err.to_string()))?;
    let res = rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        intermediates,
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    );
    match res {
        Ok(()) => Ok(()),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::InvalidPurpose | rustls::CertificateError::InvalidPurposeContext { .. },
        )) => Ok(()),
        Err(err) => Err(fail(err.to_string())),
    }
}
