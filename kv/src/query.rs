//! Reads as data: a `Query` names one read of `State`, `eval` runs it and returns an owned `Answer` with the index that covers it, and `watch_keys` says which changes can move that index.
//!
//! Closures cannot cross the network, so a client agent sends a `Query` to a server, which evaluates it locally (blocking on its watch keys when asked) and sends the `Answer` back.
//! A server's own HTTP API runs the same queries in process, so both paths answer alike.
//!
//! # Wire format
//! `Query` and `Answer` travel between agents and servers as postcard, which is not self-describing: variants are appended at the end and never reshaped, and the types they carry keep their field order (see `model`).
//!
//! # Indexes and watch keys
//! Each query reports exactly the index of the `State` query it is built on, and watches exactly the keys that can move that index, so a blocking query sleeps through unrelated writes.
//! The DNS lookups resolve names case-insensitively, so which service or node they read is only known while evaluating; they watch whole tables instead, and report the highest of those tables' indexes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::acl::{AclAuthMethod, AclBindingRule, AclPolicy, AclRole, AclToken, ResolvedToken};
use crate::model::{CheckStatus, HealthCheck, KvEntry, Node, Service, Session, Weights};
use crate::prepared_query::{PreparedQueryAnswer, RenderContext};
use crate::state::{HealthEntry, State};
use crate::txn::{TxnOp, TxnOutcome};
use crate::watch::{Table, WatchKey};

/// One read of the replicated state.
///
/// Sent over the server RPC: new variants go at the end, and an existing variant's fields never change shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// One KV entry (`GET /v1/kv/<key>`). Answers `Entry`.
    KvGet {
        /// The exact key.
        key: String,
    },
    /// Every KV entry under a prefix (`?recurse`). Answers `Entries`.
    KvList {
        /// The prefix; empty lists everything.
        prefix: String,
    },
    /// The keys under a prefix, folded at the first separator after it (`?keys&separator=`). Answers `Keys`.
    KvKeys {
        /// The prefix.
        prefix: String,
        /// Fold keys at the first occurrence of this after the prefix; none or empty lists every key.
        separator: Option<String>,
    },
    /// Every catalog node. Answers `Nodes`.
    Nodes,
    /// One node (exact name) with its service instances. Answers `NodeServices`.
    NodeServices {
        /// The node name.
        name: String,
    },
    /// Every service name with the union of its instances' tags. Answers `ServiceTags`.
    Services,
    /// The instances of a service carrying every tag in `tags`, each with its node. Answers `ServiceNodes`.
    ServiceNodes {
        /// The service name (exact).
        name: String,
        /// Tags every instance must carry (matched case-insensitively).
        tags: Vec<String>,
    },
    /// The instances of a service with their checks (`/v1/health/service`). Answers `Health`.
    ServiceHealth {
        /// The service name (exact).
        name: String,
        /// Tags every instance must carry (matched case-insensitively).
        tags: Vec<String>,
        /// Leave out instances with any non-passing check.
        passing: bool,
    },
    /// Every check of every instance of a service. Answers `Checks`.
    ServiceChecks {
        /// The service name.
        name: String,
    },
    /// Every check on a node, node and service checks alike. Answers `Checks`.
    NodeChecks {
        /// The node name.
        name: String,
    },
    /// Every check in a state. Answers `Checks`.
    ChecksInState {
        /// The state; `None` is Consul's `any`.
        state: Option<CheckStatus>,
    },
    /// Only the highest index of the state, for replies that describe the agent rather than the state. Answers `Index`.
    MaxIndex,
    /// Only a table's index. Answers `Index`.
    TableIndex(Table),
    /// The worst status of a node's checks and, when `service_id` is given, of that instance's (alias checks). Answers `Status`.
    NodeStatus {
        /// The node name.
        node: String,
        /// An instance on the node whose checks count too; its absence answers `Status(None)`.
        service_id: Option<String>,
    },
    /// The instances of a service with their aggregate health, the name matched exactly first and then ignoring ASCII case (DNS). Answers `Instances`.
    ResolveService {
        /// The service name as asked.
        name: String,
        /// A tag the instances must carry (case-insensitively).
        tag: Option<String>,
    },
    /// The first node, in name order, whose name matches ignoring ASCII case (DNS). Answers `Node`.
    ResolveNode {
        /// The node name as asked.
        name: String,
    },
    /// Nodes whose address is exactly `address` (DNS PTR). Answers `Nodes`.
    NodesWithAddress {
        /// The address text, as the catalog stores it.
        address: String,
    },
    /// Service instances whose own address is exactly `address`, by service name, node and ID (DNS PTR). Answers `Instances`.
    ServicesWithAddress {
        /// The address text, as the catalog stores it.
        address: String,
    },
    /// One session, if it exists (`/v1/session/info`). Answers `Sessions`.
    SessionInfo {
        /// The session ID.
        id: String,
    },
    /// Every session, by ID. Answers `Sessions`.
    SessionList,
    /// The sessions of one node, by ID. Answers `Sessions`.
    SessionNode {
        /// The node name.
        node: String,
    },
    /// A transaction of read operations only, run as a read (`PUT /v1/txn` without writes). Answers `Txn`.
    Txn(Vec<TxnOp>),
    /// A token by secret with every policy and role it grants (what authorizing a request needs). Answers `AclResolved`.
    AclResolve {
        /// The secret.
        secret_id: String,
    },
    /// Every token, by accessor ID. Answers `AclTokens`.
    AclTokens,
    /// Every policy, by ID. Answers `AclPolicies`.
    AclPolicies,
    /// Every role, by ID. Answers `AclRoles`.
    AclRoles,
    /// Every auth method, by name. Answers `AclAuthMethods`.
    AclAuthMethods,
    /// Every binding rule, by ID. Answers `AclBindingRules`.
    AclBindingRules,
    /// How many nodes, service names and instances the catalog holds (`/v1/operator/usage`). Answers `Usage`.
    Usage,
    /// The autopilot configuration, if one is stored. Answers `Autopilot`.
    AutopilotConfig,
    /// Every node's network coordinate, by node (`/v1/coordinate/nodes`, and the coordinates `?near` sorts by).
    /// Answers `Coordinates`.
    Coordinates,
    /// One node's network coordinates, one per segment (`/v1/coordinate/node/:node`). Answers `Coordinates`.
    NodeCoordinate {
        /// The node name (exact).
        node: String,
    },
    /// Every prepared query, by ID. Answers `PreparedQueries`.
    PreparedQueryList,
    /// One prepared query by its ID (`GET /v1/query/:id`). Answers `PreparedQuery`: `Found` or `NotFound`.
    PreparedQueryGet {
        /// The query's ID.
        id: String,
    },
    /// A query resolved by ID or name, a template rendered for that name (`/v1/query/:name/explain`). Answers
    /// `PreparedQuery`: `Explained`, `NotFound` or `Failed`.
    PreparedQueryExplain {
        /// The ID or name asked.
        id_or_name: String,
    },
    /// A query resolved and run: the instances that pass its filters, unshuffled (`/v1/query/:name/execute`, DNS).
    /// Answers `PreparedQuery`: `Executed`, `NotFound` or `Failed`.
    PreparedQueryExecute {
        /// The ID or name asked.
        id_or_name: String,
        /// The node of the agent that executes it (`_agent`).
        agent: String,
        /// The caller's `?near` (a node, `_agent` or `_ip`); empty: the query's own `Near`.
        near: String,
        /// The caller's address, which `_ip` looks up among the nodes' addresses; empty when unknown.
        source_ip: String,
    },
    /// The config entries of one kind, by name (`GET /v1/config/:kind`). Answers `ConfigEntries`.
    ConfigEntries {
        /// The kind.
        kind: String,
    },
    /// One config entry, if stored (`GET /v1/config/:kind/:name`). Answers `ConfigEntries` with at most one.
    ConfigEntry {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// `inner` (nodes, a service's instances or health, checks, or service names) with only what runs on nodes
    /// carrying every `node_meta` pair (`?node-meta=`); answers what `inner` answers.
    NodeMeta {
        /// Metadata every node must carry, exactly.
        node_meta: BTreeMap<String, String>,
        /// The read to filter.
        inner: Box<Query>,
    },
    /// Every service instance with its node, on nodes carrying every `node_meta` pair (empty: every node), for a
    /// filter over all instances (`/v1/catalog/services?filter=`). Answers `ServiceNodes`.
    AllServiceNodes {
        /// Metadata every node must carry, exactly.
        node_meta: BTreeMap<String, String>,
    },
    /// Every cluster job, by name (`GET /v1/jobs`). Answers `Jobs`.
    Jobs,
    /// One cluster job with its allocations (`GET /v1/job/:name`, `/versions`). Answers `Job`.
    Job {
        /// The job's name.
        name: String,
    },
    /// The allocations on one node, each with its version's spec: what the node's agent blocks on to know what to
    /// run (`GET /v1/node/:node/allocations`). Answers `NodeAllocations`; its index moves only when they change.
    NodeAllocations {
        /// The node name (exact).
        node: String,
    },
    /// Every host driver report, by node. Answers `Hosts`.
    Hosts,
    /// Every allocation, by job then sequence number. Answers `Allocations`.
    Allocations,
    /// Everything the leader's scheduler reads, from one state. Answers `Scheduling`.
    Scheduling,
}

/// What a `Query` returns: owned data, free of the state's lock.
///
/// Sent over the server RPC: new variants go at the end, and an existing variant's fields never change shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// One KV entry, if it exists.
    Entry(Option<KvEntry>),
    /// KV entries, sorted by key.
    Entries(Vec<KvEntry>),
    /// KV keys, sorted.
    Keys(Vec<String>),
    /// Nodes, by name.
    Nodes(Vec<Node>),
    /// One node, if found.
    Node(Option<Node>),
    /// A node, if it exists, and its service instances by ID (empty without the node).
    NodeServices {
        /// The node.
        node: Option<Node>,
        /// Its instances, by ID.
        services: Vec<Service>,
    },
    /// Service name → the sorted, deduplicated union of its instances' tags.
    ServiceTags(BTreeMap<String, Vec<String>>),
    /// Instances with their nodes, by node then ID.
    ServiceNodes(Vec<(Node, Service)>),
    /// Instances with their nodes and checks, by node then ID.
    Health(Vec<ServiceEntry>),
    /// Health checks, by node then check ID.
    Checks(Vec<HealthCheck>),
    /// A worst status; `None` when the instance the query named does not exist.
    Status(Option<CheckStatus>),
    /// Instances reduced to what name resolution needs.
    Instances(Vec<InstanceHealth>),
    /// Nothing but the index returned alongside.
    Index,
    /// Sessions, by ID.
    Sessions(Vec<Session>),
    /// What a read-only transaction found.
    Txn(TxnOutcome),
    /// A resolved token, if the secret names one.
    AclResolved(Option<Box<ResolvedToken>>),
    /// ACL tokens, by accessor ID.
    AclTokens(Vec<AclToken>),
    /// ACL policies, by ID.
    AclPolicies(Vec<AclPolicy>),
    /// ACL roles, by ID.
    AclRoles(Vec<AclRole>),
    /// ACL auth methods, by name.
    AclAuthMethods(Vec<AclAuthMethod>),
    /// ACL binding rules, by ID.
    AclBindingRules(Vec<AclBindingRule>),
    /// Catalog counts.
    Usage(Usage),
    /// The stored autopilot configuration.
    Autopilot(Option<crate::autopilot::AutopilotConfig>),
    /// Network coordinates, by node then segment.
    Coordinates(Vec<crate::coordinate::NodeCoordinate>),
    /// Prepared queries, by ID.
    PreparedQueries(Vec<crate::prepared_query::PreparedQuery>),
    /// What resolving (and perhaps running) one prepared query found.
    PreparedQuery(crate::prepared_query::PreparedQueryAnswer),
    /// Config entries, by kind then name.
    ConfigEntries(Vec<crate::config_entry::ConfigEntry>),
    /// Cluster jobs, by name.
    Jobs(Vec<crate::job::Job>),
    /// One job with its allocations, if it exists.
    Job(Option<Box<crate::job::JobDetail>>),
    /// A node's allocations with their specs, by job then sequence number.
    NodeAllocations(Vec<crate::job::NodeAllocation>),
    /// Host driver reports, by node.
    Hosts(Vec<crate::job::Host>),
    /// Allocations, by job then sequence number.
    Allocations(Vec<crate::job::Allocation>),
    /// What the scheduler reads.
    Scheduling(Box<crate::job::SchedulingState>),
}

/// What the catalog holds, counted (Consul's `ServiceUsage` for one datacenter).
///
/// Sent over the server RPC: fields are appended, never reordered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Catalog nodes.
    pub nodes: u64,
    /// Distinct service names.
    pub services: u64,
    /// Service instances, on every node.
    pub service_instances: u64,
    /// Typical instances (no `Kind`) other than the servers' own `consul` service: what Consul bills.
    pub billable_instances: u64,
    /// Instances of each non-typical kind (`connect-proxy`, `mesh-gateway`, ...).
    pub kind_instances: BTreeMap<String, u64>,
}

/// One service instance with its node and every check that affects it: the owned form of `HealthEntry` (Consul's `ServiceEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The node the instance runs on.
    pub node: Node,
    /// The instance.
    pub service: Service,
    /// Node checks first, then the instance's checks, each group ordered by check ID.
    pub checks: Vec<HealthCheck>,
}

impl ServiceEntry {
    /// The worst status of all the entry's checks; passing when it has none.
    pub fn status(&self) -> CheckStatus {
        self.checks.iter().map(|c| c.status).max().unwrap_or(CheckStatus::Passing)
    }
}

impl From<&HealthEntry<'_>> for ServiceEntry {
    fn from(entry: &HealthEntry<'_>) -> ServiceEntry {
        ServiceEntry {
            node: entry.node.clone(),
            service: entry.service.clone(),
            checks: entry.checks.iter().map(|c| (*c).clone()).collect(),
        }
    }
}

/// A service instance as name resolution sees it: where it is and how healthy it is, without the node's meta or the checks themselves.
///
/// DNS answers many small queries; copying whole nodes and checks for each of them was most of the work of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceHealth {
    /// The node's name.
    pub node: String,
    /// The node's address.
    pub node_address: String,
    /// The instance ID.
    pub service_id: String,
    /// The service name, as the catalog spells it.
    pub service_name: String,
    /// The instance's own address; empty means the node's.
    pub address: String,
    /// The port.
    pub port: u16,
    /// The tags, in registration order.
    pub tags: Vec<String>,
    /// SRV weights.
    pub weights: Weights,
    /// The worst of the node's and the instance's checks.
    pub status: CheckStatus,
}

impl From<&HealthEntry<'_>> for InstanceHealth {
    fn from(entry: &HealthEntry<'_>) -> InstanceHealth {
        InstanceHealth {
            node: entry.node.node.clone(),
            node_address: entry.node.address.clone(),
            service_id: entry.service.id.clone(),
            service_name: entry.service.service.clone(),
            address: entry.service.address.clone(),
            port: entry.service.port,
            tags: entry.service.tags.clone(),
            weights: entry.service.weights,
            status: entry.status(),
        }
    }
}

/// The tables whose changes can alter a case-insensitive DNS lookup of services: which names exist, their instances' checks, and their nodes.
const RESOLVE_TABLES: [Table; 3] = [Table::Services, Table::Checks, Table::Nodes];

/// Every table, for the reads whose answer may depend on anything.
const ALL_TABLES: [Table; 17] = Table::ALL;

/// What the scheduler reads: jobs, allocations, hosts, and nodes with their `serfHealth`.
const SCHEDULING_TABLES: [Table; 5] = [Table::Jobs, Table::Allocations, Table::Hosts, Table::Nodes, Table::Checks];

/// The ACL tables: what a token's resolution depends on.
const ACL_TABLES: [Table; 3] = [Table::AclTokens, Table::AclPolicies, Table::AclRoles];

impl Query {
    /// What the answer depends on: a blocking query parks on these keys, and the index `eval` reports moves only when an apply touches one of them.
    pub fn watch_keys(&self) -> Vec<WatchKey> {
        match self {
            Query::KvGet { key } => vec![WatchKey::Key(key.clone())],
            Query::KvList { prefix } | Query::KvKeys { prefix, .. } => vec![WatchKey::Prefix(prefix.clone())],
            Query::Nodes | Query::ResolveNode { .. } | Query::NodesWithAddress { .. } => {
                vec![WatchKey::Table(Table::Nodes)]
            }
            Query::NodeServices { name } | Query::NodeChecks { name } => vec![WatchKey::Node(name.clone())],
            Query::NodeStatus { node, .. } => vec![WatchKey::Node(node.clone())],
            Query::Services => vec![WatchKey::Table(Table::Services)],
            Query::ServiceNodes { name, .. } | Query::ServiceHealth { name, .. } | Query::ServiceChecks { name } => {
                vec![WatchKey::Service(name.clone())]
            }
            Query::ChecksInState { .. } => vec![WatchKey::Table(Table::Checks)],
            Query::TableIndex(table) => vec![WatchKey::Table(*table)],
            Query::ResolveService { .. } | Query::ServicesWithAddress { .. } => {
                RESOLVE_TABLES.into_iter().map(WatchKey::Table).collect()
            }
            Query::SessionInfo { .. } | Query::SessionList | Query::SessionNode { .. } => {
                vec![WatchKey::Table(Table::Sessions)]
            }
            // Every table: the closest set of keys to "anything". Raft entries that carry no command (elections, membership) move the index without touching a key, so a blocking MaxIndex may also wake late; nothing blocks on it today.
            Query::MaxIndex | Query::Txn(_) => ALL_TABLES.into_iter().map(WatchKey::Table).collect(),
            Query::AclResolve { .. } => ACL_TABLES.into_iter().map(WatchKey::Table).collect(),
            // Tokens and roles show their links by current name, so a rename or delete of what they link to moves their lists too.
            Query::AclTokens => ACL_TABLES.into_iter().map(WatchKey::Table).collect(),
            Query::AclRoles => vec![WatchKey::Table(Table::AclRoles), WatchKey::Table(Table::AclPolicies)],
            Query::AclPolicies => vec![WatchKey::Table(Table::AclPolicies)],
            Query::AclAuthMethods => vec![WatchKey::Table(Table::AclAuthMethods)],
            Query::AclBindingRules => vec![WatchKey::Table(Table::AclBindingRules)],
            Query::Usage => vec![WatchKey::Table(Table::Nodes), WatchKey::Table(Table::Services)],
            Query::AutopilotConfig => vec![WatchKey::Table(Table::Autopilot)],
            Query::Coordinates | Query::NodeCoordinate { .. } => vec![WatchKey::Table(Table::Coordinates)],
            Query::PreparedQueryList | Query::PreparedQueryGet { .. } | Query::PreparedQueryExplain { .. } => {
                vec![WatchKey::Table(Table::PreparedQueries)]
            }
            Query::PreparedQueryExecute { .. } => [Table::PreparedQueries, Table::Coordinates]
                .into_iter()
                .chain(RESOLVE_TABLES)
                .map(WatchKey::Table)
                .collect(),
            // Like Consul, a single entry reports the table's index, so it wakes on any config entry write.
            Query::ConfigEntries { .. } | Query::ConfigEntry { .. } => vec![WatchKey::Table(Table::ConfigEntries)],
            Query::NodeMeta { inner, .. } => node_meta::watch_keys(inner),
            Query::AllServiceNodes { .. } => vec![WatchKey::Table(Table::Services), WatchKey::Table(Table::Nodes)],
            Query::Jobs => vec![WatchKey::Table(Table::Jobs)],
            Query::Job { .. } => vec![WatchKey::Table(Table::Jobs), WatchKey::Table(Table::Allocations)],
            // A version's spec never changes and is kept while an allocation uses it, so the allocations alone move this.
            Query::NodeAllocations { node } => vec![WatchKey::NodeAllocations(node.clone())],
            Query::Hosts => vec![WatchKey::Table(Table::Hosts)],
            Query::Allocations => vec![WatchKey::Table(Table::Allocations)],
            Query::Scheduling => SCHEDULING_TABLES.into_iter().map(WatchKey::Table).collect(),
        }
    }

    /// Runs the query on `state`: the owned answer and the index that covers it.
    pub fn eval(&self, state: &State) -> (Answer, u64) {
        match self {
            Query::KvGet { key } => {
                let (entry, index) = state.kv_get(key);
                (Answer::Entry(entry.cloned()), index)
            }
            Query::KvList { prefix } => {
                let (entries, index) = state.kv_list(prefix);
                (Answer::Entries(entries.into_iter().cloned().collect()), index)
            }
            Query::KvKeys { prefix, separator } => {
                let (keys, index) = state.kv_keys(prefix, separator.as_deref());
                (Answer::Keys(keys), index)
            }
            Query::Nodes => {
                let (nodes, index) = state.nodes();
                (Answer::Nodes(nodes.into_iter().cloned().collect()), index)
            }
            Query::NodeServices { name } => {
                let (node, index) = state.node(name);
                let services = match node {
                    Some(_) => state.node_services(name).0.into_iter().cloned().collect(),
                    None => Vec::new(),
                };
                (Answer::NodeServices { node: node.cloned(), services }, index)
            }
            Query::Services => {
                let (names, index) = state.service_names();
                let tags = names
                    .into_iter()
                    .map(|(name, tags)| (name.to_owned(), tags.into_iter().map(str::to_owned).collect()))
                    .collect();
                (Answer::ServiceTags(tags), index)
            }
            Query::ServiceNodes { name, tags } => {
                let (instances, index) = state.service_instances(name, tags);
                let owned = instances.into_iter().map(|(node, service)| (node.clone(), service.clone())).collect();
                (Answer::ServiceNodes(owned), index)
            }
            Query::ServiceHealth { name, tags, passing } => {
                let (entries, index) = state.service_health(name, tags, *passing);
                (Answer::Health(entries.iter().map(ServiceEntry::from).collect()), index)
            }
            Query::ServiceChecks { name } => owned_checks(state.service_checks(name)),
            Query::NodeChecks { name } => owned_checks(state.node_checks(name)),
            Query::ChecksInState { state: status } => owned_checks(state.checks_in_state(*status)),
            Query::MaxIndex => (Answer::Index, state.max_index()),
            Query::TableIndex(table) => (Answer::Index, state.table(*table)),
            Query::NodeStatus { node, service_id } => node_status(state, node, service_id.as_deref()),
            Query::ResolveService { name, tag } => {
                let tags: Vec<String> = tag.iter().cloned().collect();
                let instances = match state.resolve_service_name(name) {
                    Some(resolved) => {
                        state.service_health(resolved, &tags, false).0.iter().map(InstanceHealth::from).collect()
                    }
                    None => Vec::new(),
                };
                (Answer::Instances(instances), resolve_index(state))
            }
            Query::ResolveNode { name } => {
                let (nodes, index) = state.nodes();
                let found = nodes.into_iter().find(|n| n.node.eq_ignore_ascii_case(name)).cloned();
                (Answer::Node(found), index)
            }
            Query::NodesWithAddress { address } => {
                let (nodes, index) = state.nodes();
                (Answer::Nodes(nodes.into_iter().filter(|n| n.address == *address).cloned().collect()), index)
            }
            Query::ServicesWithAddress { address } => {
                let instances = state
                    .service_name_list()
                    .flat_map(|name| state.service_health(name, &[], false).0)
                    .filter(|entry| entry.service.address == *address)
                    .map(|entry| InstanceHealth::from(&entry))
                    .collect();
                (Answer::Instances(instances), resolve_index(state))
            }
            Query::SessionInfo { id } => {
                let (sessions, index) = state.sessions();
                (Answer::Sessions(sessions.into_iter().filter(|s| s.id == *id).cloned().collect()), index)
            }
            Query::SessionList => {
                let (sessions, index) = state.sessions();
                (Answer::Sessions(sessions.into_iter().cloned().collect()), index)
            }
            Query::SessionNode { node } => {
                let (sessions, index) = state.sessions();
                (Answer::Sessions(sessions.into_iter().filter(|s| s.node == *node).cloned().collect()), index)
            }
            // A transaction reads across tables; like Consul's read-only transactions it does not block, so the state's index serves.
            Query::Txn(ops) => (Answer::Txn(state.txn_read(ops)), state.max_index()),
            Query::AclResolve { secret_id } => {
                (Answer::AclResolved(state.acl_resolve(secret_id).map(Box::new)), state.acl_index())
            }
            Query::AclTokens => {
                let (tokens, _) = state.acl_tokens();
                (Answer::AclTokens(tokens), state.acl_index())
            }
            Query::AclPolicies => {
                let (policies, index) = state.acl_policies();
                (Answer::AclPolicies(policies.into_iter().cloned().collect()), index)
            }
            Query::AclRoles => {
                let (roles, index) = state.acl_roles();
                (Answer::AclRoles(roles), index.max(state.table(Table::AclPolicies)))
            }
            Query::AclAuthMethods => {
                let methods = state.acl_auth_methods.values().cloned().collect();
                (Answer::AclAuthMethods(methods), state.table(Table::AclAuthMethods))
            }
            Query::AclBindingRules => {
                let rules = state.acl_binding_rules.values().cloned().collect();
                (Answer::AclBindingRules(rules), state.table(Table::AclBindingRules))
            }
            Query::Usage => (Answer::Usage(usage(state)), state.table(Table::Nodes).max(state.table(Table::Services))),
            Query::AutopilotConfig => (Answer::Autopilot(state.autopilot.clone()), state.table(Table::Autopilot)),
            Query::Coordinates => {
                (Answer::Coordinates(state.coordinates().cloned().collect()), state.table(Table::Coordinates))
            }
            Query::NodeCoordinate { node } => (
                Answer::Coordinates(state.coordinates().filter(|c| &c.node == node).cloned().collect()),
                state.table(Table::Coordinates),
            ),
            Query::PreparedQueryList => {
                let (queries, index) = state.prepared_queries();
                (Answer::PreparedQueries(queries.into_iter().cloned().collect()), index)
            }
            Query::PreparedQueryGet { id } => {
                let found = state.prepared_queries.get(id).cloned().map(Box::new);
                let answer = found.map_or(PreparedQueryAnswer::NotFound, PreparedQueryAnswer::Found);
                (Answer::PreparedQuery(answer), state.table(Table::PreparedQueries))
            }
            Query::PreparedQueryExplain { id_or_name } => {
                let answer = state.resolve_prepared_query(id_or_name, &RenderContext::default());
                (Answer::PreparedQuery(answer), state.table(Table::PreparedQueries))
            }
            Query::PreparedQueryExecute { id_or_name, agent, near, source_ip } => {
                let answer = match state.resolve_prepared_query(id_or_name, &RenderContext::default()) {
                    PreparedQueryAnswer::Explained(query) => {
                        let source = crate::prepared_query::Source { agent, near, source_ip };
                        state.execute_prepared_query(*query, &source)
                    }
                    other => other,
                };
                let tables = state.table(Table::PreparedQueries).max(state.table(Table::Coordinates));
                (Answer::PreparedQuery(answer), tables.max(resolve_index(state)))
            }
            Query::ConfigEntries { kind } => {
                let entries = state.config_entries(kind).into_iter().cloned().collect();
                (Answer::ConfigEntries(entries), state.table(Table::ConfigEntries))
            }
            Query::ConfigEntry { kind, name } => {
                let entries = state.config_entry(kind, name).into_iter().cloned().collect();
                (Answer::ConfigEntries(entries), state.table(Table::ConfigEntries))
            }
            Query::NodeMeta { node_meta, inner } => node_meta::eval(state, node_meta, inner),
            Query::AllServiceNodes { node_meta } => node_meta::all_instances(state, node_meta),
            Query::Jobs => (Answer::Jobs(state.jobs().cloned().collect()), state.table(Table::Jobs)),
            Query::Job { name } => (
                Answer::Job(state.job_detail(name).map(Box::new)),
                state.table(Table::Jobs).max(state.table(Table::Allocations)),
            ),
            Query::NodeAllocations { node } => {
                let (allocations, index) = state.node_allocations(node);
                (Answer::NodeAllocations(allocations), index)
            }
            Query::Hosts => (Answer::Hosts(state.hosts().cloned().collect()), state.table(Table::Hosts)),
            Query::Allocations => {
                (Answer::Allocations(state.allocations.values().cloned().collect()), state.table(Table::Allocations))
            }
            Query::Scheduling => {
                let index = SCHEDULING_TABLES.into_iter().map(|t| state.table(t)).max().unwrap_or(1);
                (Answer::Scheduling(Box::new(state.scheduling_state())), index)
            }
        }
    }
}

fn owned_checks((checks, index): (Vec<&HealthCheck>, u64)) -> (Answer, u64) {
    (Answer::Checks(checks.into_iter().cloned().collect()), index)
}

/// The worst status of the node's own checks and the named instance's, or `None` when that instance is not on the node.
fn node_status(state: &State, node: &str, service_id: Option<&str>) -> (Answer, u64) {
    let (checks, index) = state.node_checks(node);
    if service_id.is_some_and(|id| state.service(node, id).is_none()) {
        return (Answer::Status(None), index);
    }
    let relevant = checks.into_iter().filter(|c| c.service_id.is_empty() || Some(c.service_id.as_str()) == service_id);
    (Answer::Status(Some(relevant.map(|c| c.status).max().unwrap_or(CheckStatus::Passing))), index)
}

/// Counts the catalog: every node, and every instance under each service name.
fn usage(state: &State) -> Usage {
    let mut usage = Usage { nodes: state.nodes().0.len() as u64, ..Usage::default() };
    for name in state.service_name_list() {
        usage.services += 1;
        for (_, service) in state.service_instances(name, &[]).0 {
            usage.service_instances += 1;
            if !service.kind.is_empty() {
                *usage.kind_instances.entry(service.kind.clone()).or_default() += 1;
            } else if name != "consul" {
                usage.billable_instances += 1;
            }
        }
    }
    usage
}

/// The index of the case-insensitive service lookups: the last change to any table they read.
fn resolve_index(state: &State) -> u64 {
    RESOLVE_TABLES.into_iter().map(|table| state.table(table)).max().unwrap_or(1)
}

mod node_meta;
#[cfg(test)]
mod tests;
