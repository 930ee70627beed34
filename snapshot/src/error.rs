//! Why an archive was refused. Every variant names what is wrong, so `roster snapshot` and `PUT /v1/snapshot` can say it.

/// An archive that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes do not start with the gzip magic number.
    #[error("not a snapshot archive: the data is not gzip-compressed")]
    NotGzip,
    /// The gzip stream is damaged (bad header, bad deflate data, CRC or length mismatch).
    #[error("snapshot archive is corrupt: {0}")]
    CorruptGzip(String),
    /// The data ended before the archive did.
    #[error("snapshot archive is truncated")]
    Truncated,
    /// The gzip stream is fine but does not hold a tar archive.
    #[error("not a snapshot archive: the compressed data is not a tar archive ({0})")]
    NotTar(String),
    /// A member the archive must hold is missing.
    #[error("snapshot archive is missing {0}")]
    MissingMember(&'static str),
    /// A member the format does not have, or a member that is not a plain file.
    #[error("snapshot archive has an unexpected member {0:?}")]
    ExtraMember(String),
    /// A member appears twice.
    #[error("snapshot archive has {0} twice")]
    DuplicateMember(String),
    /// A member is larger than this build accepts.
    #[error("snapshot archive member {name} is too large ({size} bytes, the limit is {limit})")]
    TooLarge {
        /// The member.
        name: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `SHA256SUMS` does not list exactly the other members, or does not parse.
    #[error("snapshot archive's SHA256SUMS is invalid: {0}")]
    BadSums(String),
    /// A member's SHA-256 differs from the one `SHA256SUMS` lists.
    #[error("snapshot archive checksum mismatch for {0}")]
    ChecksumMismatch(String),
    /// `meta.json` does not parse, or disagrees with `state.bin`.
    #[error("snapshot archive's meta.json is invalid: {0}")]
    BadMeta(String),
    /// The archive's format version is newer than this build reads.
    #[error("snapshot archive format version {found} is newer than this build supports (version {supported})")]
    NewerFormat {
        /// The archive's version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The state's encoding version is newer than this build reads.
    #[error("snapshot state encoding version {found} is newer than this build supports (version {supported})")]
    NewerState {
        /// The state's encoding version.
        found: u16,
        /// The newest this build reads.
        supported: u16,
    },
    /// `state.bin` passed its checksum but does not decode.
    #[error("snapshot archive's state.bin does not decode: {0}")]
    BadState(String),
    /// Reading the input failed for a reason of its own (not the archive's).
    #[error("reading the snapshot archive: {0}")]
    Io(std::io::Error),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
