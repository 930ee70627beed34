//! The one error type of the crate: what is wrong, with the file it is wrong in.

use std::path::PathBuf;

/// A TLS setting or file that cannot be used; the message names the file and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds nothing of the expected kind.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        what: String,
    },
    /// The private key does not belong to the certificate.
    #[error("{} does not match the certificate in {}: {why}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// What rustls said.
        why: String,
    },
    /// The certificate is outside its validity period.
    #[error("the certificate in {} {why}", path.display())]
    Validity {
        /// The certificate file.
        path: PathBuf,
        /// "expired at …" or "is not valid before …".
        why: String,
    },
    /// The certificate does not chain to the configured CA.
    #[error("the certificate in {} is not signed by the configured CA ({ca}): {why}", path.display())]
    NotSignedByCa {
        /// The certificate file.
        path: PathBuf,
        /// The CA files or directory, as configured.
        ca: String,
        /// What the chain check said.
        why: String,
    },
    /// A combination of settings that cannot work, or a value rustls does not support.
    #[error("{0}")]
    Setting(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
