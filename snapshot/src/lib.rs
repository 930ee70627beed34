//! roster's snapshot archive (`/v1/snapshot`, `roster snapshot`): Consul's layout, a gzip'd tar of `meta.json`,
//! `state.bin` and `SHA256SUMS`, with roster's contents (`state.bin` is `roster_kv::State::encode_snapshot` output).
//!
//! # Layout
//! - `meta`: `Meta`, the archive's `meta.json` (format version, index, term, Raft servers, the state's encoding
//!   version and size).
//! - `write`: `write`, which streams an archive out from the encoded state, holding nothing else of size.
//! - `read`: `read`, which checks an archive as it streams in: gunzip, untar, hash each member as its bytes pass,
//!   and refuse anything wrong, naming it (`Error`).
//!
//! Pure: no network, no clock; callers pass the ID and the bytes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod meta;
mod read;
mod write;

pub use error::{Error, Result};
pub use meta::{FORMAT_VERSION, Meta, Server};
pub use read::{Archive, MAX_STATE_LEN, read};
pub use write::write;

/// The members an archive holds, in the order they are written.
const META: &str = "meta.json";
const STATE: &str = "state.bin";
const SUMS: &str = "SHA256SUMS";

/// Lower-case hex, as `sha256sum` prints digests.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
