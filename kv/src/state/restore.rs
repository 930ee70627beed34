//! Snapshot restore through the log: `RestoreBegin` stages an expected length and SHA-256, `RestoreChunk`s append
//! bytes in order, and `RestoreCommit` checks them, decodes them and replaces the whole state in one apply.
//!
//! The staged bytes are part of the state (and of its snapshots, format 5), so a server that joins or restarts midway
//! stages exactly what the others staged, and every replica decides the commit alike.
//! A commit keeps the restored records' own indexes (a key's ModifyIndex is data a client's CAS depends on) but sets
//! the state's index and every table's index to the commit's: list answers, the ACL resolve cache (keyed on the ACL
//! index), the DNS answer cache (keyed on the catalog index) and shared evaluations (keyed on the last index) all see
//! an index they never saw before, so nothing computed from the state before the restore is taken for current.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::State;
use crate::command::CommandResult;
use crate::watch::{Changes, Table};

/// The largest snapshot a restore may stage: it is held in memory twice while committing (staged and decoded) and
/// travels in every snapshot of the state until then.
pub const MAX_RESTORE_LEN: u64 = 256 << 20;

/// The largest `RestoreChunk`: one log entry, well inside the RPC's 5 MiB limit for forwarded writes.
pub const MAX_RESTORE_CHUNK: usize = 1 << 20;

/// A restore being staged. Behind an `Arc` in `State` so the scratch copy a transaction makes does not copy the bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Staging {
    pub(crate) id: String,
    pub(crate) len: u64,
    pub(crate) sha256: [u8; 32],
    #[serde(with = "crate::serde_bytes")]
    pub(crate) bytes: Vec<u8>,
}

impl State {
    /// `Command::RestoreBegin`.
    pub(crate) fn restore_begin(&mut self, id: &str, len: u64, sha256: [u8; 32]) -> CommandResult {
        if len > MAX_RESTORE_LEN {
            return CommandResult::Rejected(format!(
                "snapshot too large to restore: {len} bytes (the limit is {MAX_RESTORE_LEN})"
            ));
        }
        self.restore = Some(Arc::new(Staging { id: id.to_owned(), len, sha256, bytes: Vec::new() }));
        CommandResult::Bool(true)
    }

    /// `Command::RestoreChunk`.
    pub(crate) fn restore_chunk(&mut self, id: &str, offset: u64, bytes: &[u8]) -> CommandResult {
        let Some(staging) = self.restore.as_mut().filter(|s| s.id == id) else {
            return CommandResult::Rejected(format!("no snapshot restore {id} in progress"));
        };
        let staged = staging.bytes.len() as u64;
        if offset != staged {
            return CommandResult::Rejected(format!("restore {id}: chunk at offset {offset}, expected {staged}"));
        }
        if bytes.len() > MAX_RESTORE_CHUNK {
            return CommandResult::Rejected(format!(
                "restore {id}: chunk of {} bytes (the limit is {MAX_RESTORE_CHUNK})",
                bytes.len()
            ));
        }
        if staged + bytes.len() as u64 > staging.len {
            return CommandResult::Rejected(format!("restore {id}: chunk passes the announced {} bytes", staging.len));
        }
        Arc::make_mut(staging).bytes.extend_from_slice(bytes);
        CommandResult::Bool(true)
    }

    /// `Command::RestoreCommit` at log index `index`.
    pub(crate) fn restore_commit(&mut self, index: u64, id: &str, changes: &mut Changes) -> CommandResult {
        let Some(staging) = self.restore.as_ref().filter(|s| s.id == id) else {
            return CommandResult::Rejected(format!("no snapshot restore {id} in progress"));
        };
        if staging.bytes.len() as u64 != staging.len {
            return CommandResult::Rejected(format!(
                "restore {id}: {} of {} bytes staged",
                staging.bytes.len(),
                staging.len
            ));
        }
        let digest: [u8; 32] = Sha256::digest(&staging.bytes).into();
        if digest != staging.sha256 {
            return CommandResult::Rejected(format!("restore {id}: the staged bytes do not match their SHA-256"));
        }
        let mut restored = match State::decode_snapshot(&staging.bytes) {
            Ok(restored) => restored,
            Err(err) => return CommandResult::Rejected(format!("restore {id}: {err}")),
        };
        // A snapshot saved while another restore was staging carries that staging; it is not part of the data.
        restored.restore = None;
        restored.index = index.max(self.index);
        for table in Table::ALL {
            restored.table_index.insert(table, restored.index);
        }
        *self = restored;
        changes.restored = true;
        changes.tables.extend(Table::ALL);
        CommandResult::Bool(true)
    }

    /// The restore being staged, if any: its ID, bytes staged and bytes announced.
    pub fn restore_progress(&self) -> Option<(&str, u64, u64)> {
        self.restore.as_ref().map(|s| (s.id.as_str(), s.bytes.len() as u64, s.len))
    }
}

impl State {
    /// How many records of each kind the state holds, named as `roster snapshot inspect` prints them.
    pub fn record_counts(&self) -> Vec<(&'static str, u64)> {
        let count = |n: usize| n as u64;
        vec![
            ("KV entries", count(self.kv.len())),
            ("Nodes", count(self.nodes.len())),
            ("Services", count(self.services.len())),
            ("Checks", count(self.checks.len())),
            ("Sessions", count(self.sessions.len())),
            ("ACL tokens", count(self.acl_tokens.len())),
            ("ACL policies", count(self.acl_policies.len())),
            ("ACL roles", count(self.acl_roles.len())),
            ("ACL auth methods", count(self.acl_auth_methods.len())),
            ("ACL binding rules", count(self.acl_binding_rules.len())),
            ("Config entries", count(self.config_entries.len())),
            ("Jobs", count(self.jobs.len())),
            ("Allocations", count(self.allocations.len())),
            ("Hosts", count(self.hosts.len())),
        ]
    }
}
