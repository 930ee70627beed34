//! The errors health returns to its caller.

/// What went wrong in a call on [`crate::Checks`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No check with this ID is registered with health: register it first (Consul answers 404 here).
    #[error("Unknown check ID \"{0}\". Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
    /// The check exists but is not a TTL check, so it cannot be updated by hand.
    #[error("Check \"{0}\" is not a TTL check and cannot be updated through the agent")]
    NotTtl(String),
}

/// The result type of health's fallible calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
