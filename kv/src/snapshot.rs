//! Versioned snapshot encoding of a whole `State`: an 8-byte header (magic + format version) and a postcard body.
//!
//! Derived indexes (service name → instances) are not stored; decode rebuilds them, so a snapshot cannot disagree with itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{HealthCheck, KvEntry, Node, Service};
use crate::state::State;
use crate::watch::Table;

const MAGIC: &[u8; 6] = b"RSTRSN";
const VERSION: u16 = 1;

/// The stored form of format version 1. Field order is the format: append only, in a new version.
#[derive(Serialize, Deserialize)]
struct SnapshotV1 {
    index: u64,
    kv: Vec<KvEntry>,
    kv_tombstones: Vec<(String, u64)>,
    nodes: Vec<Node>,
    services: Vec<(String, Service)>,
    checks: Vec<HealthCheck>,
    service_index: Vec<(String, u64)>,
    node_index: Vec<(String, u64)>,
    /// Kvs, Nodes, Services, Checks.
    table_index: [u64; 4],
}

const TABLES: [Table; 4] = [Table::Kvs, Table::Nodes, Table::Services, Table::Checks];

impl State {
    /// Encodes the whole state. Equal states give equal bytes.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let body = SnapshotV1 {
            index: self.index,
            kv: self.kv.values().cloned().collect(),
            kv_tombstones: self.kv_tombstones.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            nodes: self.nodes.values().cloned().collect(),
            services: self.services.iter().map(|((node, _), s)| (node.clone(), s.clone())).collect(),
            checks: self.checks.values().cloned().collect(),
            service_index: self.service_index.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            node_index: self.node_index.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            table_index: TABLES.map(|t| self.table_index.get(&t).copied().unwrap_or(0)),
        };
        let mut out = Vec::with_capacity(64 + self.kv.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        // Serialising plain owned data into a Vec cannot fail; an error here would be a bug in postcard.
        match postcard::to_extend(&body, out) {
            Ok(bytes) => bytes,
            Err(err) => unreachable!("postcard failed to encode an in-memory snapshot: {err}"),
        }
    }

    /// Decodes a snapshot made by `encode_snapshot`.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<State> {
        if bytes.len() < 8 || &bytes[..6] != MAGIC {
            return Err(Error::SnapshotFormat("missing roster snapshot header".into()));
        }
        let version = u16::from_be_bytes([bytes[6], bytes[7]]);
        if version != VERSION {
            return Err(Error::SnapshotFormat(format!("version {version} (this build reads {VERSION})")));
        }
        let body: SnapshotV1 = postcard::from_bytes(&bytes[8..])?;
        let mut state = State {
            index: body.index,
            kv: body.kv.into_iter().map(|e| (e.key.clone(), e)).collect(),
            kv_tombstones: body.kv_tombstones.into_iter().collect(),
            nodes: body.nodes.into_iter().map(|n| (n.node.clone(), n)).collect(),
            services: BTreeMap::new(),
            checks: body.checks.into_iter().map(|c| ((c.node.clone(), c.check_id.clone()), c)).collect(),
            service_index: body.service_index.into_iter().collect(),
            node_index: body.node_index.into_iter().collect(),
            table_index: TABLES.into_iter().zip(body.table_index).filter(|(_, i)| *i > 0).collect(),
            service_names: BTreeMap::new(),
        };
        for (node, service) in body.services {
            let key = (node, service.id.clone());
            state.service_names.entry(service.service.clone()).or_default().insert(key.clone());
            state.services.insert(key, service);
        }
        Ok(state)
    }
}
