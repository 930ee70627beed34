//! The crate's error type: what can stop [`crate::serve`] from serving.

/// Why the DNS server could not start or stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The recursor configuration was rejected by hickory's forwarder; fix `recursors` and restart.
    #[error("invalid recursor configuration: {0}")]
    Recursor(String),
    /// `domain` or `alt_domain` is not a valid DNS name; fix the config.
    #[error("invalid DNS domain {domain:?}: {reason}")]
    Domain {
        /// The configured value.
        domain: String,
        /// What hickory objected to.
        reason: String,
    },
    /// A listener failed while serving (the socket is unusable).
    #[error("DNS listener failed: {0}")]
    Listener(String),
}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
