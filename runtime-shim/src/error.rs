//! The crate's error type: each variant says what went wrong in terms the agent can act on (retry later, fix the
//! spec, build the image), never in bollard's types.

use crate::spec::SpecError;

/// Errors of the runtime shim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job spec is malformed or invalid; fix it and resubmit.
    #[error("invalid job spec: {0}")]
    Spec(#[from] SpecError),
    /// The runtime cannot be reached (socket missing, daemon down); retry later.
    #[error("{driver} driver unavailable: {reason}")]
    Unavailable {
        /// Which driver.
        driver: &'static str,
        /// Why, as the runtime or the OS said it.
        reason: String,
    },
    /// The task's image is not on this host and the spec does not allow pulling it.
    #[error("image {image:?} is not on this host: {hint}")]
    ImageMissing {
        /// The image reference.
        image: String,
        /// How to get it there.
        hint: String,
    },
    /// Pulling the image (only with `pull = true`) failed.
    #[error("pulling image {image:?} failed: {reason}")]
    Pull {
        /// The image reference.
        image: String,
        /// The registry's or engine's message.
        reason: String,
    },
    /// The task's network does not exist; roster creates none unless asked.
    #[error("network {network:?} does not exist (create it first, e.g. docker network create {network})")]
    NetworkMissing {
        /// The network name.
        network: String,
    },
    /// No such task (container) exists.
    #[error("task {task:?} not found")]
    NotFound {
        /// The task's container name or ID.
        task: String,
    },
    /// Something else owns the name this task would take.
    #[error("conflict on {name:?}: {reason}")]
    Conflict {
        /// The contested name.
        name: String,
        /// Who holds it.
        reason: String,
    },
    /// The task reaches more of the host than the agent's config allows (see [`crate::HostAccess`]); the message
    /// names the field and the config key that would allow it.
    #[error("task {task:?} is not allowed: {reason}")]
    NotAllowed {
        /// The task's name.
        task: String,
        /// The field and why, e.g. `rootfs: an exec task without a rootfs runs on the host's filesystem as root; ...`.
        reason: String,
    },
    /// The task's spec cannot run on this driver (for example an exec task given to the docker driver).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The runtime refused or failed an operation.
    #[error("{driver} {op}: {message}")]
    Runtime {
        /// Which driver.
        driver: &'static str,
        /// Which operation: `create`, `start`, `inspect`, ...
        op: &'static str,
        /// The runtime's message.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
