//! The catalog as the DNS server sees it: `roster_dns::CatalogView` over the `Backend`.
//!
//! DNS reads are stale reads (`dns_config.allow_stale`, the default): they never wait on a leader, so names keep resolving while an election runs; with `allow_stale` off each lookup is a read through the leader, as in Consul.
//! A server agent evaluates each lookup on its own applied state in place, with no barrier and no round trip; a client agent answers from its `WatchCache` (`dns_cache.rs`), which fetches a name once and keeps it fresh with a blocking query, so repeat lookups cost no round trip and keep working without a leader.
//! Both run the same `roster_kv::Query`, so both answer alike.
//! Each instance's health is the worst of its node's checks and its own, which is what DNS filters on.

use std::net::IpAddr;
use std::time::Duration;

use roster_dns::{CatalogView, Health, Instance, NodeMeta, NodeRecord, PreparedQueryResult, ViewError};
use roster_kv::{Answer, CheckStatus, InstanceHealth, Node, PreparedQueryAnswer, Query, ServiceEntry};
use roster_server::Consistency;

use crate::backend::Backend;
use crate::config::DnsConfig;
use crate::dns_cache::WatchCache;

/// The view the agent hands to the DNS server.
pub struct ServerView {
    backend: Backend,
    /// ACLs: DNS answers with the `dns` token (else `default`), and leaves out what it may not read.
    acl: std::sync::Arc<crate::acl::Acl>,
    /// A client agent's watch-fed cache (`dns_config.use_cache`); `None` on a server, which reads its own state, and
    /// whenever lookups must not be stale.
    cache: Option<WatchCache>,
    /// This agent's node: what a prepared query's `Near = "_agent"` sorts from.
    node_name: String,
    /// `Stale` (`dns_config.allow_stale`, the default), else `Default`: every lookup is then a read through the
    /// leader, as Consul's DNS does with `allow_stale = false`.
    consistency: Consistency,
}

impl ServerView {
    /// A view over `backend`'s catalog as `dns` (`dns_config`) asks: stale reads unless `allow_stale` is off, and on a
    /// client the watch-fed cache with `use_cache`, serving answers confirmed within `max_stale` and `cache_max_age`.
    /// Call from inside the agent's main runtime: a client's cache runs its watchers there.
    pub fn new(backend: Backend, acl: std::sync::Arc<crate::acl::Acl>, dns: &DnsConfig) -> ServerView {
        let stale = dns.settings.allow_stale;
        let cache = match &backend {
            Backend::Remote(remote) if stale && dns.settings.use_cache => {
                Some(WatchCache::new(remote.clone(), acl.clone(), cached_for(dns)))
            }
            Backend::Local(_) | Backend::Remote(_) => None,
        };
        let consistency = if stale { Consistency::Stale } else { Consistency::Default };
        ServerView { backend, acl, cache, node_name: String::new(), consistency }
    }

    /// Executes prepared queries as the agent `node_name` (`Near = "_agent"`).
    pub fn with_node(mut self, node_name: &str) -> ServerView {
        node_name.clone_into(&mut self.node_name);
        self
    }

    /// Evaluates `query` now, past a client's cache: a prepared query's answer depends on who asks (`_ip`), and
    /// its execution is one read either way.
    async fn read_uncached(&self, query: Query) -> Result<Answer, ViewError> {
        let secret = self.acl.dns_secret();
        let res = match &self.backend {
            Backend::Local(server) => server.query_as(&secret, self.consistency, 0, Duration::ZERO, &query).await,
            Backend::Remote(remote) => remote.query_as(&secret, self.consistency, 0, Duration::ZERO, &query).await,
        };
        match res {
            Ok((answer, ..)) => Ok(answer),
            Err(roster_server::Error::NoLeader) => Err(ViewError::NoLeader),
            Err(err) => Err(ViewError::Other(err.to_string())),
        }
    }

    /// Serves a client's cached answers up to `max_stale` (and `cache_max_age`) old from now on (a config reload); a
    /// server reads its own state and has nothing to change.
    pub fn set_max_stale(&self, dns: &DnsConfig) {
        if let Some(cache) = &self.cache {
            cache.set_max_stale(cached_for(dns));
        }
    }

    /// Evaluates `query` as it stands now: from a client's cache, in place on a server reading stale without ACLs,
    /// else as a query on a server (through the leader unless stale) with the DNS token.
    async fn read(&self, query: Query) -> Result<Answer, ViewError> {
        if let Some(cache) = &self.cache {
            return cache.get(query).await.map_err(|err| ViewError::Other(err.to_string()));
        }
        let stale = self.consistency == Consistency::Stale;
        let asked = match &self.backend {
            Backend::Local(server) if stale && !self.acl.enabled() => {
                return Ok(server.read_local(|state| query.eval(state).0));
            }
            // With ACLs on, the server filters the answer by the DNS token as it filters any caller's read.
            Backend::Local(server) => {
                server.query_as(&self.acl.dns_secret(), self.consistency, 0, Duration::ZERO, &query).await
            }
            Backend::Remote(remote) => {
                remote.query_as(&self.acl.dns_secret(), self.consistency, 0, Duration::ZERO, &query).await
            }
        };
        match asked {
            Ok((answer, ..)) => Ok(answer),
            Err(roster_server::Error::NoLeader) => Err(ViewError::NoLeader),
            Err(err) => Err(ViewError::Other(err.to_string())),
        }
    }

    async fn instances(&self, query: Query) -> Result<Vec<Instance>, ViewError> {
        match self.read(query).await? {
            Answer::Instances(instances) => Ok(instances.into_iter().map(instance).collect()),
            _ => Err(unexpected()),
        }
    }
}

/// How old a client's cached answer may be: `max_stale`, or `cache_max_age` when that is set and shorter.
fn cached_for(dns: &DnsConfig) -> Duration {
    match dns.settings.cache_max_age {
        Duration::ZERO => dns.max_stale,
        max_age => max_age.min(dns.max_stale),
    }
}

fn unexpected() -> ViewError {
    ViewError::Other("unexpected answer from the server".to_owned())
}

fn record(node: Node) -> NodeRecord {
    NodeRecord { name: node.node, address: node.address, tagged_addresses: node.tagged_addresses, meta: node.meta }
}

/// An instance as service answers need it. Its node carries name and address only: service answers never read node meta or tagged addresses.
fn instance(found: InstanceHealth) -> Instance {
    Instance {
        node: NodeRecord { name: found.node, address: found.node_address, ..NodeRecord::default() },
        service_id: found.service_id,
        service_name: found.service_name,
        address: found.address,
        port: found.port,
        tags: found.tags,
        weight_passing: found.weights.passing,
        weight_warning: found.weights.warning,
        health: health(found.status),
    }
}

/// A prepared query's instance as DNS answers it.
fn entry_instance(entry: &ServiceEntry) -> Instance {
    Instance {
        node: NodeRecord {
            name: entry.node.node.clone(),
            address: entry.node.address.clone(),
            ..NodeRecord::default()
        },
        service_id: entry.service.id.clone(),
        service_name: entry.service.service.clone(),
        address: entry.service.address.clone(),
        port: entry.service.port,
        tags: entry.service.tags.clone(),
        weight_passing: entry.service.weights.passing,
        weight_warning: entry.service.weights.warning,
        health: health(entry.status()),
    }
}

fn health(status: CheckStatus) -> Health {
    match status {
        CheckStatus::Passing => Health::Passing,
        CheckStatus::Warning => Health::Warning,
        CheckStatus::Critical => Health::Critical,
    }
}

#[async_trait::async_trait]
impl CatalogView for ServerView {
    async fn service_instances(&self, service: &str, tag: Option<&str>) -> Result<Vec<Instance>, ViewError> {
        // DNS names arrive lower-cased; catalog names keep their case, and the query matches them case-insensitively.
        self.instances(Query::ResolveService { name: service.to_owned(), tag: tag.map(str::to_owned) }).await
    }

    async fn node(&self, name: &str) -> Result<Option<NodeRecord>, ViewError> {
        match self.read(Query::ResolveNode { name: name.to_owned() }).await? {
            Answer::Node(node) => Ok(node.map(record)),
            _ => Err(unexpected()),
        }
    }

    async fn services_with_address(&self, ip: IpAddr) -> Result<Vec<Instance>, ViewError> {
        self.instances(Query::ServicesWithAddress { address: ip.to_string() }).await
    }

    async fn prepared_query(&self, name: &str, source: IpAddr) -> Result<Option<PreparedQueryResult>, ViewError> {
        let query = Query::PreparedQueryExecute {
            id_or_name: name.to_owned(),
            agent: self.node_name.clone(),
            near: String::new(),
            source_ip: source.to_string(),
        };
        match self.read_uncached(query).await? {
            Answer::PreparedQuery(PreparedQueryAnswer::Executed { query, mut nodes, origin, coordinates }) => {
                // Consul's DNS path asks for no limit; the answer is trimmed as service answers are.
                crate::http::prepared_query::arrange(&mut nodes, &origin, &coordinates, 0);
                Ok(Some(PreparedQueryResult {
                    service: query.service.service.clone(),
                    instances: nodes.iter().map(entry_instance).collect(),
                    ttl: query.dns_ttl(),
                }))
            }
            Answer::PreparedQuery(PreparedQueryAnswer::NotFound) => Ok(None),
            Answer::PreparedQuery(PreparedQueryAnswer::Failed(why)) => Err(ViewError::Other(why)),
            _ => Err(unexpected()),
        }
    }

    async fn node_meta(&self, nodes: &[&str]) -> Result<NodeMeta, ViewError> {
        let meta_of = |found: Vec<&Node>| -> NodeMeta {
            found.into_iter().map(|node| (node.node.clone(), node.meta.clone())).collect()
        };
        match &self.backend {
            // The common case reads each node in place instead of copying every node.
            Backend::Local(server)
                if self.cache.is_none() && self.consistency == Consistency::Stale && !self.acl.enabled() =>
            {
                Ok(server.read_local(|state| meta_of(nodes.iter().filter_map(|name| state.node(name).0).collect())))
            }
            _ => match self.read(Query::Nodes).await? {
                Answer::Nodes(all) => {
                    Ok(meta_of(all.iter().filter(|node| nodes.contains(&node.node.as_str())).collect()))
                }
                _ => Err(unexpected()),
            },
        }
    }

    fn generation(&self) -> Option<u64> {
        // Lookups through the leader must not be answered from a copy kept for a second.
        if self.consistency != Consistency::Stale {
            return None;
        }
        match (&self.cache, &self.backend) {
            (Some(cache), _) => Some(cache.generation()),
            // An ACL change can change what the DNS token sees without touching the catalog.
            (None, Backend::Local(server)) if self.acl.enabled() => {
                Some(server.read_local(|state| state.catalog_index().max(state.acl_index())))
            }
            (None, Backend::Local(server)) => Some(server.read_local(roster_kv::State::catalog_index)),
            (None, Backend::Remote(_)) => None,
        }
    }

    async fn nodes_with_address(&self, ip: IpAddr) -> Result<Vec<NodeRecord>, ViewError> {
        match self.read(Query::NodesWithAddress { address: ip.to_string() }).await? {
            Answer::Nodes(nodes) => Ok(nodes.into_iter().map(record).collect()),
            _ => Err(unexpected()),
        }
    }
}
