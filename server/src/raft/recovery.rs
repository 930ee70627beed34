//! Outage recovery: a `peers.json` in `<data_dir>/raft/` replaces the Raft configuration before Raft starts.
//!
//! When a quorum of servers is lost for good, the survivors cannot commit anything, not even the membership change
//! that would drop the dead servers. Consul's answer, which this follows (hashicorp/raft's `RecoverCluster`): the
//! operator stops the survivors, writes the servers that are to form the cluster into `raft/peers.json` on each, and
//! starts them. Before Raft starts, a server that finds the file appends one membership entry naming exactly those
//! servers right after its last log entry, under that entry's own leader id, so nothing it holds is lost or reordered.
//! openraft takes the newest membership in the log as the configuration whether or not it is committed, so the listed
//! voters elect a leader among themselves, and that leader's first entry commits everything before it: every write
//! this server had acknowledged is served again. The file is then deleted (as Consul does), so a restart does not
//! apply it twice.
//!
//! The file is Consul's (Raft protocol 3): `[{"id": "<node ID>", "address": "10.1.0.1:8300", "non_voter": false}]`.
//! Node IDs map to Raft ids with `crate::raft_id`, as the agent maps its own. A file that does not parse, names no
//! voter, lists an id or an address twice, has an address that is not `ip:port`, or leaves this server out stops the
//! start with an error naming the file, before anything on disk has changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openraft::entry::RaftEntry;
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Membership};
use serde::Deserialize;

use super::log_store::{LOG_FILE, LogStore};
use super::{Entry, LogId};
use crate::error::{Error, Result};

/// The directory under the data dir where Consul keeps its Raft files, and where its operators put `peers.json`.
pub(crate) const RAFT_DIR: &str = "raft";
/// The recovery file's name, Consul's.
pub(crate) const PEERS_FILE: &str = "peers.json";

/// One server of the recovered configuration, as the file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecoveredServer {
    /// The node ID the file gave.
    pub(crate) node_id: String,
    /// Where its RPC listens.
    pub(crate) addr: SocketAddr,
    /// Whether it votes (`non_voter: false`).
    pub(crate) voter: bool,
}

/// A validated `peers.json`, not yet applied.
#[derive(Debug)]
pub(crate) struct Recovery {
    path: PathBuf,
    servers: BTreeMap<u64, RecoveredServer>,
}

/// One entry of the file. Unknown keys are refused: a misspelt `non_voter` must not silently make a voter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    id: String,
    address: String,
    #[serde(default)]
    non_voter: bool,
}

impl Recovery {
    /// Reads and validates `<data_dir>/raft/peers.json`; `None` when there is no such file.
    ///
    /// Changes nothing on disk: an invalid file, or one next to a data dir with no Raft log, is an error.
    pub(crate) fn read(data_dir: &Path, self_id: u64) -> Result<Option<Recovery>> {
        let path = data_dir.join(RAFT_DIR).join(PEERS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::DataDir(format!("reading {}: {e}", path.display()))),
        };
        let refuse = |why: String| Error::DataDir(format!("{}: {why}; nothing was changed", path.display()));
        let servers = parse(&text, self_id).map_err(refuse)?;
        if !super::log_store::exists(data_dir) {
            return Err(refuse(format!(
                "this server has no Raft log ({LOG_FILE}) to recover; remove the file, and join the server to a cluster instead"
            )));
        }
        Ok(Some(Recovery { path, servers }))
    }

    /// Appends the membership entry after the last log entry (durably), deletes the file and says so in the log.
    pub(crate) async fn apply(self, log: &LogStore) -> Result<()> {
        let state = log.clone().get_log_state().await?;
        let Some(last) = state.last_log_id else {
            return Err(Error::DataDir(format!(
                "{}: the Raft log is empty, so there is nothing to recover; remove the file, and join the server to a cluster instead; nothing was changed",
                self.path.display()
            )));
        };
        let voters: BTreeSet<u64> = self.servers.iter().filter(|(_, s)| s.voter).map(|(id, _)| *id).collect();
        let nodes: BTreeMap<u64, BasicNode> =
            self.servers.iter().map(|(id, s)| (*id, BasicNode::new(s.addr))).collect();
        let membership = Membership::new(vec![voters], nodes)
            .map_err(|e| Error::DataDir(format!("{}: {e}; nothing was changed", self.path.display())))?;
        // The last entry's leader id keeps the log's order: openraft compares log ids by leader, then index.
        let log_id = LogId { leader_id: last.leader_id, index: last.index + 1 };
        log.append_before_start(Entry::new_membership(log_id, membership)).await?;
        remove_durably(&self.path)?;
        let listed: Vec<String> = self
            .servers
            .values()
            .map(|s| format!("{} at {} ({})", s.node_id, s.addr, if s.voter { "voter" } else { "non-voter" }))
            .collect();
        tracing::warn!(
            file = %self.path.display(),
            index = last.index + 1,
            servers = %listed.join(", "),
            "OUTAGE RECOVERY: the Raft configuration was replaced by peers.json (appended after the last log entry, \
             nothing removed) and the file was deleted; the listed servers now form the whole cluster"
        );
        Ok(())
    }
}

/// Parses and checks the file's text; the error says what is wrong.
fn parse(text: &str, self_id: u64) -> std::result::Result<BTreeMap<u64, RecoveredServer>, String> {
    if serde_json::from_str::<Vec<String>>(text).is_ok_and(|addrs| !addrs.is_empty()) {
        return Err("this is the address-only form of Raft protocol 2; roster reads protocol 3's \
                    [{\"id\": \"<node ID>\", \"address\": \"<ip:port>\", \"non_voter\": false}]"
            .to_owned());
    }
    let entries: Vec<FileEntry> = serde_json::from_str(text).map_err(|e| format!("not valid peers.json: {e}"))?;
    let mut servers = BTreeMap::new();
    let mut addrs = BTreeSet::new();
    for entry in entries {
        if entry.id.is_empty() {
            return Err("an entry has an empty id".to_owned());
        }
        uuid::Uuid::parse_str(&entry.id).map_err(|_| format!("id {:?} is not a node ID (a UUID)", entry.id))?;
        let addr: SocketAddr =
            entry.address.parse().map_err(|_| format!("address {:?} of {} is not ip:port", entry.address, entry.id))?;
        if !addrs.insert(addr) {
            return Err(format!("address {addr} is listed twice"));
        }
        let raft_id = crate::raft_id(&entry.id);
        let server = RecoveredServer { node_id: entry.id, addr, voter: !entry.non_voter };
        if let Some(other) = servers.insert(raft_id, server) {
            return Err(format!("id {} is listed twice", other.node_id));
        }
    }
    if !servers.values().any(|s| s.voter) {
        return Err("it names no voter (every entry is a non_voter, or there are none)".to_owned());
    }
    if !servers.contains_key(&self_id) {
        return Err("it does not list this server's own node ID".to_owned());
    }
    Ok(servers)
}

/// Deletes `path` and syncs its directory, so the deletion survives a crash that follows.
fn remove_durably(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
