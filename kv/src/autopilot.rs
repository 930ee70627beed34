//! The replicated autopilot configuration (Consul's `AutopilotConfig`): one record, written with a check-and-set
//! on its `modify_index`, so every server and a restored snapshot agree on it.

use serde::{Deserialize, Serialize};

/// How the leader's autopilot manages the Raft servers. Durations are milliseconds.
///
/// The Raft log and snapshot schema: fields are appended, never reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotConfig {
    /// Remove servers that failed in gossip from the voters (within `min_quorum` and a healthy majority).
    pub cleanup_dead_servers: bool,
    /// A follower not heard from for this long is unhealthy.
    pub last_contact_threshold_ms: u64,
    /// A follower this many entries behind the leader's log is unhealthy.
    pub max_trailing_logs: u64,
    /// Autopilot never removes a voter when fewer than this many would remain.
    pub min_quorum: u32,
    /// A new server becomes a voter only after it has been healthy this long.
    pub server_stabilization_time_ms: u64,
    /// The index the record was first written at.
    pub create_index: u64,
    /// The index of its last write; a CAS names it.
    pub modify_index: u64,
}

impl Default for AutopilotConfig {
    /// Consul's defaults.
    fn default() -> AutopilotConfig {
        AutopilotConfig {
            cleanup_dead_servers: true,
            last_contact_threshold_ms: 200,
            max_trailing_logs: 250,
            min_quorum: 0,
            server_stabilization_time_ms: 10_000,
            create_index: 0,
            modify_index: 0,
        }
    }
}
