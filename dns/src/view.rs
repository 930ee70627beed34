//! The read-only catalog view the agent implements for DNS, and the records it returns.
//!
//! DNS never writes the catalog; everything it answers comes through [`CatalogView`].

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Aggregate health of an instance: the worst of its node's and its service's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Every check passes.
    Passing,
    /// At least one check warns and none is critical.
    Warning,
    /// At least one check (maintenance included) is critical.
    Critical,
}

/// A catalog node as DNS needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeRecord {
    /// Node name, the `<name>` of `<name>.node.<domain>`.
    pub name: String,
    /// The node's address: an IP literal, or a hostname (answered as a CNAME).
    pub address: String,
    /// Tagged addresses (`lan`, `wan`, `lan_ipv4`, ...); kept for WAN answers later.
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node meta, answered as TXT records.
    pub meta: BTreeMap<String, String>,
}

/// One registered service instance with its node and aggregate health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The node the instance runs on.
    pub node: NodeRecord,
    /// Service ID (unique per node).
    pub service_id: String,
    /// Service name.
    pub service_name: String,
    /// Service address; `""` means the node's address.
    pub address: String,
    /// Service port, the SRV port.
    pub port: u16,
    /// Service tags.
    pub tags: Vec<String>,
    /// SRV weight while passing (`Weights.Passing`).
    pub weight_passing: i64,
    /// SRV weight while warning (`Weights.Warning`).
    pub weight_warning: i64,
    /// Worst of node and service checks.
    pub health: Health,
}

/// What executing a prepared query gave DNS: the instances in answer order (the query's filters, shuffle and
/// distance sort already applied) and the TTL it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedQueryResult {
    /// The service the query looked up (for `dns_config.service_ttl` when the query sets no TTL).
    pub service: String,
    /// The instances, in the order to answer them.
    pub instances: Vec<Instance>,
    /// The query's `DNS.TTL`, when it sets one.
    pub ttl: Option<std::time::Duration>,
}

/// Node meta by node name, as [`CatalogView::node_meta`] returns it.
pub type NodeMeta = BTreeMap<String, BTreeMap<String, String>>;

/// Why a catalog read failed; DNS answers SERVFAIL for any of them.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// No leader is known and no usable cached answer exists.
    #[error("no cluster leader")]
    NoLeader,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The catalog as DNS reads it, for this datacenter only.
///
/// Names arrive lower-cased (DNS is case-insensitive and resolvers randomise case), so an
/// implementation should match service and node names case-insensitively, as Consul does.
#[async_trait::async_trait]
pub trait CatalogView: Send + Sync + 'static {
    /// All instances of `service` (with `tag` among their tags when given), whatever their health.
    async fn service_instances(&self, service: &str, tag: Option<&str>) -> Result<Vec<Instance>, ViewError>;
    /// The node called `name`, if registered.
    async fn node(&self, name: &str) -> Result<Option<NodeRecord>, ViewError>;
    /// Nodes whose address is `ip`, for PTR answers.
    async fn nodes_with_address(&self, ip: IpAddr) -> Result<Vec<NodeRecord>, ViewError>;
    /// Service instances whose own service address is `ip`, for PTR answers.
    ///
    /// Defaults to none, so a view that cannot index service addresses still compiles; PTR then
    /// answers only node addresses.
    async fn services_with_address(&self, ip: IpAddr) -> Result<Vec<Instance>, ViewError> {
        let _ = ip;
        Ok(Vec::new())
    }

    /// Executes the prepared query `name` (an ID or a name; a template renders for it) for a client at `source`
    /// (which `Near = "_ip"` sorts from); `None` when no query has that name.
    ///
    /// Defaults to none, so a view without prepared queries still compiles; their names then answer NXDOMAIN.
    async fn prepared_query(&self, name: &str, source: IpAddr) -> Result<Option<PreparedQueryResult>, ViewError> {
        let _ = (name, source);
        Ok(None)
    }

    /// The meta of the named nodes (as [`Instance::node`] names them), for the TXT records SRV answers carry in
    /// their additional section; a node that is gone is left out.
    ///
    /// Defaults to one [`CatalogView::node`] call per name; a view that can read them all at once should.
    async fn node_meta(&self, nodes: &[&str]) -> Result<NodeMeta, ViewError> {
        let mut meta = NodeMeta::new();
        for name in nodes {
            if let Some(node) = self.node(name).await? {
                meta.insert((*name).to_owned(), node.meta);
            }
        }
        Ok(meta)
    }

    /// A number that changes whenever any answer this view gives could change (a catalog write, a refreshed
    /// client cache), read on every UDP query, so it must be cheap. Answers are cached per question until it
    /// moves (and for at most a second). `None`, the default, turns the answer cache off.
    fn generation(&self) -> Option<u64> {
        None
    }
}
