//! The errors this crate can return: only decoding a snapshot can fail; applying commands never does.

/// What went wrong when decoding persisted state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes do not start with a snapshot header this version understands.
    #[error("snapshot format not recognised: {0}")]
    SnapshotFormat(String),
    /// The header was fine but the body does not decode.
    #[error("snapshot body is corrupt: {0}")]
    SnapshotCorrupt(#[from] postcard::Error),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
