//! Versioned snapshot encoding of a whole `State`: an 8-byte header (magic + format version) and a postcard body.
//!
//! Derived indexes (service name → instances) are not stored; decode rebuilds them, so a snapshot cannot disagree with itself.
//!
//! # Versions
//! 1: KV, catalog and their indexes. 2: version 1's body followed by sessions, lock-delays and the sessions table index.
//! 3: version 2's body followed by the ACL tables (tokens, policies, roles, the bootstrap index and the three tables' indexes).
//! 4: version 3's body followed by the auth methods, binding rules and their two tables' indexes.
//! 5: version 4's body followed by the snapshot restore being staged, if any (`state/restore.rs`).
//! 6: version 5's body followed by the autopilot configuration and its table index.
//! 7: version 6's body followed by the network coordinates and their table index.
//! 8: version 7's body followed by the prepared queries and their table index.
//! 9: version 8's body followed by the config entries and their table index.
//! 10: version 9's body followed by the cluster jobs, allocations, hosts, each node's allocation index, and the three
//! tables' indexes.
//! 11: version 10's body followed by the index floors of what was reaped or removed: the highest tombstone deletion
//! index reaped, and the highest service-name and node index entries folded away (`state/graveyard.rs`).
//! This build writes version 11 and reads all eleven; an older snapshot decodes to a state without what it did not
//! have (floors of 0: nothing was reaped or folded yet; the first reap folds what an older state still holds).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acl::{AclAuthMethod, AclBindingRule, AclPolicy, AclRole, AclToken};
use crate::autopilot::AutopilotConfig;
use crate::config_entry::ConfigEntry;
use crate::coordinate::NodeCoordinate;
use crate::error::{Error, Result};
use crate::job::{Allocation, Host, Job};
use crate::model::{HealthCheck, KvEntry, Node, Service, Session};
use crate::prepared_query::PreparedQuery;
use crate::state::restore::Staging;
use crate::state::session::LockDelay;
use crate::state::{NodeScoped, State};
use crate::watch::Table;

const MAGIC: &[u8; 6] = b"RSTRSN";
/// The snapshot format version this build writes; it reads every version up to this one.
pub const SNAPSHOT_VERSION: u16 = 11;
const VERSION: u16 = SNAPSHOT_VERSION;

/// The format version of snapshot bytes, read from their header without decoding them; `None` without a header.
pub fn snapshot_version(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [m0, m1, m2, m3, m4, m5, v0, v1, ..] if [m0, m1, m2, m3, m4, m5].into_iter().eq(MAGIC) => {
            Some(u16::from_be_bytes([*v0, *v1]))
        }
        _ => None,
    }
}

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

/// The stored form of format version 2: version 1's fields, then the session tables. Postcard writes a nested struct as its fields in order, so `base` is exactly a version-1 body.
#[derive(Serialize, Deserialize)]
struct SnapshotV2 {
    base: SnapshotV1,
    sessions: Vec<Session>,
    /// Key, start (Unix ms, unknown until a clock was seen), length in ms.
    lock_delays: Vec<(String, Option<u64>, u64)>,
    sessions_index: u64,
}

/// The stored form of format version 3: version 2's fields, then the ACL tables.
#[derive(Serialize, Deserialize)]
struct SnapshotV3 {
    base: SnapshotV2,
    acl_tokens: Vec<AclToken>,
    acl_policies: Vec<AclPolicy>,
    acl_roles: Vec<AclRole>,
    acl_bootstrap_index: Option<u64>,
    /// AclTokens, AclPolicies, AclRoles.
    acl_table_index: [u64; 3],
}

/// The stored form of format version 4: version 3's fields, then the auth methods and binding rules.
#[derive(Serialize, Deserialize)]
struct SnapshotV4 {
    base: SnapshotV3,
    acl_auth_methods: Vec<AclAuthMethod>,
    acl_binding_rules: Vec<AclBindingRule>,
    /// AclAuthMethods, AclBindingRules.
    acl_auth_table_index: [u64; 2],
}

/// The stored form of format version 5: version 4's fields, then the restore being staged.
#[derive(Serialize, Deserialize)]
struct SnapshotV5 {
    base: SnapshotV4,
    restore: Option<Staging>,
}

/// The stored form of format version 6: version 5's fields, then the autopilot configuration.
#[derive(Serialize, Deserialize)]
struct SnapshotV6 {
    base: SnapshotV5,
    autopilot: Option<AutopilotConfig>,
    autopilot_index: u64,
}

/// The stored form of format version 7: version 6's fields, then the network coordinates.
#[derive(Serialize, Deserialize)]
struct SnapshotV7 {
    base: SnapshotV6,
    coordinates: Vec<NodeCoordinate>,
    coordinates_index: u64,
}

/// The stored form of format version 8: version 7's fields, then the prepared queries.
#[derive(Serialize, Deserialize)]
struct SnapshotV8 {
    base: SnapshotV7,
    prepared_queries: Vec<PreparedQuery>,
    prepared_queries_index: u64,
}

/// The stored form of format version 9: version 8's fields, then the config entries.
#[derive(Serialize, Deserialize)]
struct SnapshotV9 {
    base: SnapshotV8,
    config_entries: Vec<ConfigEntry>,
    config_entries_index: u64,
}

/// The stored form of format version 10: version 9's fields, then the cluster-job tables.
#[derive(Serialize, Deserialize)]
struct SnapshotV10 {
    base: SnapshotV9,
    jobs: Vec<Job>,
    allocations: Vec<Allocation>,
    hosts: Vec<Host>,
    node_alloc_index: Vec<(String, u64)>,
    /// Jobs, Allocations, Hosts.
    job_table_index: [u64; 3],
}

/// The stored form of format version 11: version 10's fields, then the index floors.
#[derive(Serialize, Deserialize)]
struct SnapshotV11 {
    base: SnapshotV10,
    kv_reaped_index: u64,
    service_index_floor: u64,
    node_index_floor: u64,
}

const JOB_TABLES: [Table; 3] = [Table::Jobs, Table::Allocations, Table::Hosts];

const ACL_AUTH_TABLES: [Table; 2] = [Table::AclAuthMethods, Table::AclBindingRules];

const ACL_TABLES: [Table; 3] = [Table::AclTokens, Table::AclPolicies, Table::AclRoles];

const TABLES: [Table; 4] = [Table::Kvs, Table::Nodes, Table::Services, Table::Checks];

impl State {
    /// Encodes the whole state. Equal states give equal bytes.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let base = SnapshotV1 {
            index: self.index,
            kv: self.kv.values().cloned().collect(),
            kv_tombstones: self.kv_tombstones.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            nodes: self.nodes.values().cloned().collect(),
            services: self.services.iter().map(|((node, _), s)| (node.clone(), Service::clone(s))).collect(),
            checks: self.checks.values().map(|c| HealthCheck::clone(c)).collect(),
            service_index: self.service_index.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            node_index: self.node_index.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            table_index: TABLES.map(|t| self.table_index.get(&t).copied().unwrap_or(0)),
        };
        let v2 = SnapshotV2 {
            base,
            sessions: self.sessions.values().cloned().collect(),
            lock_delays: self.lock_delays.iter().map(|(k, d)| (k.clone(), d.start_ms, d.delay_ms)).collect(),
            sessions_index: self.table_index.get(&Table::Sessions).copied().unwrap_or(0),
        };
        let v3 = SnapshotV3 {
            base: v2,
            acl_tokens: self.acl_tokens.values().cloned().collect(),
            acl_policies: self.acl_policies.values().cloned().collect(),
            acl_roles: self.acl_roles.values().cloned().collect(),
            acl_bootstrap_index: self.acl_bootstrap_index,
            acl_table_index: ACL_TABLES.map(|t| self.table_index.get(&t).copied().unwrap_or(0)),
        };
        let v4 = SnapshotV4 {
            base: v3,
            acl_auth_methods: self.acl_auth_methods.values().cloned().collect(),
            acl_binding_rules: self.acl_binding_rules.values().cloned().collect(),
            acl_auth_table_index: ACL_AUTH_TABLES.map(|t| self.table_index.get(&t).copied().unwrap_or(0)),
        };
        let v6 = SnapshotV6 {
            base: SnapshotV5 { base: v4, restore: self.restore.as_deref().cloned() },
            autopilot: self.autopilot.clone(),
            autopilot_index: self.table_index.get(&Table::Autopilot).copied().unwrap_or(0),
        };
        let v7 = SnapshotV7 {
            base: v6,
            coordinates: self.coordinates.values().cloned().collect(),
            coordinates_index: self.table_index.get(&Table::Coordinates).copied().unwrap_or(0),
        };
        let v8 = SnapshotV8 {
            base: v7,
            prepared_queries: self.prepared_queries.values().cloned().collect(),
            prepared_queries_index: self.table_index.get(&Table::PreparedQueries).copied().unwrap_or(0),
        };
        let v9 = SnapshotV9 {
            base: v8,
            config_entries: self.config_entries.values().cloned().collect(),
            config_entries_index: self.table_index.get(&Table::ConfigEntries).copied().unwrap_or(0),
        };
        let v10 = SnapshotV10 {
            base: v9,
            jobs: self.jobs.values().cloned().collect(),
            allocations: self.allocations.values().cloned().collect(),
            hosts: self.hosts.values().cloned().collect(),
            node_alloc_index: self.node_alloc_index.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            job_table_index: JOB_TABLES.map(|t| self.table_index.get(&t).copied().unwrap_or(0)),
        };
        let body = SnapshotV11 {
            base: v10,
            kv_reaped_index: self.kv_reaped_index,
            service_index_floor: self.service_index_floor,
            node_index_floor: self.node_index_floor,
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
        let v11 = match version {
            1 => v11_of(v10_of(v9_of(v8_of(v7_of(v6_of(v5_of(v4_of(v3_of(SnapshotV2 {
                base: postcard::from_bytes(&bytes[8..])?,
                sessions: Vec::new(),
                lock_delays: Vec::new(),
                sessions_index: 0,
            }))))))))),
            2 => v11_of(v10_of(v9_of(v8_of(v7_of(v6_of(v5_of(v4_of(v3_of(postcard::from_bytes(&bytes[8..])?))))))))),
            3 => v11_of(v10_of(v9_of(v8_of(v7_of(v6_of(v5_of(v4_of(postcard::from_bytes(&bytes[8..])?)))))))),
            4 => v11_of(v10_of(v9_of(v8_of(v7_of(v6_of(v5_of(postcard::from_bytes(&bytes[8..])?))))))),
            5 => v11_of(v10_of(v9_of(v8_of(v7_of(v6_of(postcard::from_bytes(&bytes[8..])?)))))),
            6 => v11_of(v10_of(v9_of(v8_of(v7_of(postcard::from_bytes(&bytes[8..])?))))),
            7 => v11_of(v10_of(v9_of(v8_of(postcard::from_bytes(&bytes[8..])?)))),
            8 => v11_of(v10_of(v9_of(postcard::from_bytes(&bytes[8..])?))),
            9 => v11_of(v10_of(postcard::from_bytes(&bytes[8..])?)),
            10 => v11_of(postcard::from_bytes(&bytes[8..])?),
            11 => postcard::from_bytes(&bytes[8..])?,
            _ => return Err(Error::SnapshotFormat(format!("version {version} (this build reads 1 to {VERSION})"))),
        };
        let (v10, kv_reaped_index) = (v11.base, v11.kv_reaped_index);
        let (service_index_floor, node_index_floor) = (v11.service_index_floor, v11.node_index_floor);
        let v9 = v10.base;
        let (v8, config_entries, config_entries_index) = (v9.base, v9.config_entries, v9.config_entries_index);
        let (v7, prepared_queries, prepared_queries_index) = (v8.base, v8.prepared_queries, v8.prepared_queries_index);
        let (v6, coordinates, coordinates_index) = (v7.base, v7.coordinates, v7.coordinates_index);
        let (v5, autopilot, autopilot_index) = (v6.base, v6.autopilot, v6.autopilot_index);
        let v4 = v5.base;
        let v3 = v4.base;
        let body = v3.base;
        let mut state = from_v1(body.base);
        for token in v3.acl_tokens {
            state.acl_secrets.insert(crate::acl::secret_digest(&token.secret_id), token.accessor_id.clone());
            state.acl_tokens.insert(token.accessor_id.clone(), token);
        }
        state.acl_policies = v3.acl_policies.into_iter().map(|p| (p.id.clone(), p)).collect();
        state.acl_roles = v3.acl_roles.into_iter().map(|r| (r.id.clone(), r)).collect();
        state.acl_bootstrap_index = v3.acl_bootstrap_index;
        state.acl_auth_methods = v4.acl_auth_methods.into_iter().map(|m| (m.name.clone(), m)).collect();
        state.acl_binding_rules = v4.acl_binding_rules.into_iter().map(|r| (r.id.clone(), r)).collect();
        for (table, index) in ACL_AUTH_TABLES.into_iter().zip(v4.acl_auth_table_index) {
            if index > 0 {
                state.table_index.insert(table, index);
            }
        }
        for (table, index) in ACL_TABLES.into_iter().zip(v3.acl_table_index) {
            if index > 0 {
                state.table_index.insert(table, index);
            }
        }
        state.sessions = body.sessions.into_iter().map(|s| (s.id.clone(), s)).collect();
        state.lock_delays = body
            .lock_delays
            .into_iter()
            .map(|(key, start_ms, delay_ms)| (key, LockDelay { start_ms, delay_ms }))
            .collect();
        if body.sessions_index > 0 {
            state.table_index.insert(Table::Sessions, body.sessions_index);
        }
        state.autopilot = autopilot;
        if autopilot_index > 0 {
            state.table_index.insert(Table::Autopilot, autopilot_index);
        }
        state.restore = v5.restore.map(Arc::new);
        state.coordinates = coordinates.into_iter().map(|c| ((c.node.clone(), c.segment.clone()), c)).collect();
        if coordinates_index > 0 {
            state.table_index.insert(Table::Coordinates, coordinates_index);
        }
        state.prepared_queries = prepared_queries.into_iter().map(|q| (q.id.clone(), q)).collect();
        if prepared_queries_index > 0 {
            state.table_index.insert(Table::PreparedQueries, prepared_queries_index);
        }
        state.config_entries = config_entries.into_iter().map(|e| ((e.kind.clone(), e.name.clone()), e)).collect();
        if config_entries_index > 0 {
            state.table_index.insert(Table::ConfigEntries, config_entries_index);
        }
        state.jobs = v10.jobs.into_iter().map(|j| (j.name.clone(), j)).collect();
        state.allocations = v10.allocations.into_iter().map(|a| ((a.job.clone(), a.seq), a)).collect();
        state.hosts = v10.hosts.into_iter().map(|h| (h.node.clone(), h)).collect();
        state.node_alloc_index = v10.node_alloc_index.into_iter().collect();
        state.kv_reaped_index = kv_reaped_index;
        state.service_index_floor = service_index_floor;
        state.node_index_floor = node_index_floor;
        for (table, index) in JOB_TABLES.into_iter().zip(v10.job_table_index) {
            if index > 0 {
                state.table_index.insert(table, index);
            }
        }
        Ok(state)
    }
}

/// An older body with empty ACL tables.
fn v3_of(base: SnapshotV2) -> SnapshotV3 {
    SnapshotV3 {
        base,
        acl_tokens: Vec::new(),
        acl_policies: Vec::new(),
        acl_roles: Vec::new(),
        acl_bootstrap_index: None,
        acl_table_index: [0; 3],
    }
}

/// A version-3 body with no auth methods or binding rules.
fn v4_of(base: SnapshotV3) -> SnapshotV4 {
    SnapshotV4 { base, acl_auth_methods: Vec::new(), acl_binding_rules: Vec::new(), acl_auth_table_index: [0; 2] }
}

/// A version-4 body with no restore staging.
fn v5_of(base: SnapshotV4) -> SnapshotV5 {
    SnapshotV5 { base, restore: None }
}

/// A version-5 body with no autopilot configuration.
fn v6_of(base: SnapshotV5) -> SnapshotV6 {
    SnapshotV6 { base, autopilot: None, autopilot_index: 0 }
}

/// A version-6 body with no coordinates.
fn v7_of(base: SnapshotV6) -> SnapshotV7 {
    SnapshotV7 { base, coordinates: Vec::new(), coordinates_index: 0 }
}

/// A version-7 body with no prepared queries.
fn v8_of(base: SnapshotV7) -> SnapshotV8 {
    SnapshotV8 { base, prepared_queries: Vec::new(), prepared_queries_index: 0 }
}

/// A version-8 body with no config entries.
fn v9_of(base: SnapshotV8) -> SnapshotV9 {
    SnapshotV9 { base, config_entries: Vec::new(), config_entries_index: 0 }
}

/// A version-9 body with no cluster jobs.
fn v10_of(base: SnapshotV9) -> SnapshotV10 {
    SnapshotV10 {
        base,
        jobs: Vec::new(),
        allocations: Vec::new(),
        hosts: Vec::new(),
        node_alloc_index: Vec::new(),
        job_table_index: [0; 3],
    }
}

/// A version-10 body with no floors: nothing reaped or folded yet.
fn v11_of(base: SnapshotV10) -> SnapshotV11 {
    SnapshotV11 { base, kv_reaped_index: 0, service_index_floor: 0, node_index_floor: 0 }
}

/// The state a version-1 body describes, with its derived indexes rebuilt.
fn from_v1(body: SnapshotV1) -> State {
    // Collected rather than inserted one by one: `BTreeMap`'s `FromIterator` sorts and fills every node, where
    // inserts leave nodes part empty, so a state read from its snapshot is smaller than the one that wrote it.
    let mut service_names: BTreeMap<String, BTreeSet<NodeScoped>> = BTreeMap::new();
    let services = body.services.into_iter().map(|(node, service)| {
        let key = (node, service.id.clone());
        service_names.entry(service.service.clone()).or_default().insert(key.clone());
        (key, Box::new(service))
    });
    let services = services.collect();
    State {
        index: body.index,
        kv: body.kv.into_iter().map(|e| (e.key.clone(), e)).collect(),
        kv_tombstones: body.kv_tombstones.into_iter().collect(),
        nodes: body.nodes.into_iter().map(|n| (n.node.clone(), n)).collect(),
        services,
        checks: body.checks.into_iter().map(|c| ((c.node.clone(), c.check_id.clone()), Box::new(c))).collect(),
        service_index: body.service_index.into_iter().collect(),
        node_index: body.node_index.into_iter().collect(),
        table_index: TABLES.into_iter().zip(body.table_index).filter(|(_, i)| *i > 0).collect(),
        service_names: service_names.into_iter().collect(),
        ..State::default()
    }
}
