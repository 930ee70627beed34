//! `meta.json`: what an archive holds, readable without decoding the state (`roster snapshot inspect`).

use serde::{Deserialize, Serialize};

/// The archive format this build writes; it reads every version up to this one.
pub const FORMAT_VERSION: u32 = 1;

/// An archive's `meta.json`. Field names are Consul's where Consul has the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Meta {
    /// The archive format version (`FORMAT_VERSION` when written by this build).
    pub version: u32,
    /// The snapshot's ID: `<term>-<index>-<unix ms>`, as Consul names snapshots.
    #[serde(rename = "ID")]
    pub id: String,
    /// The last Raft index the state covers.
    pub index: u64,
    /// The term of that index.
    pub term: u64,
    /// The Raft configuration at that index.
    pub servers: Vec<Server>,
    /// The encoding version of `state.bin` (`roster_kv::SNAPSHOT_VERSION` when written by this build).
    pub state_version: u16,
    /// The size of `state.bin` in bytes (Consul's `Size`).
    pub state_size: u64,
}

/// One server of the Raft configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Server {
    /// Its Raft ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its RPC address.
    pub address: String,
    /// Whether it votes.
    pub voter: bool,
}
