//! The catalog as the DNS server sees it: `roster_dns::CatalogView` over this server's applied state.
//!
//! DNS reads are local reads of this server's state: they never wait on a leader, so names keep resolving while an election runs.
//! Each instance's health is the worst of its node's checks and its own, which is what DNS filters on.

use std::net::IpAddr;

use roster_dns::{CatalogView, Health, Instance, NodeRecord, ViewError};
use roster_kv::{CheckStatus, Node};

/// The view the agent hands to the DNS server.
pub struct ServerView {
    server: roster_server::Server,
}

impl ServerView {
    /// A view over `server`'s local state.
    pub fn new(server: roster_server::Server) -> ServerView {
        ServerView { server }
    }

    /// A local read: DNS answers from this server's state as it is, without a barrier, so it needs no leader.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&roster_kv::State) -> T + Send + 'static,
    ) -> Result<T, ViewError> {
        Ok(self.server.read_local(f))
    }
}

fn record(node: &Node) -> NodeRecord {
    NodeRecord {
        name: node.node.clone(),
        address: node.address.clone(),
        tagged_addresses: node.tagged_addresses.clone(),
        meta: node.meta.clone(),
    }
}

/// The catalog's spelling of a service name, matched exactly first and then ignoring ASCII case.
fn catalog_service_name(state: &roster_kv::State, asked: &str) -> Option<String> {
    let (names, _) = state.service_names();
    if names.contains_key(asked) {
        return Some(asked.to_owned());
    }
    names.keys().find(|n| n.eq_ignore_ascii_case(asked)).map(|n| (*n).to_owned())
}

/// An instance as service answers need it. Its node carries name and address only: service answers never read node meta or tagged addresses, and cloning those maps for every instance of every query was most of the allocation in a DNS answer.
fn instance(e: &roster_kv::HealthEntry<'_>) -> Instance {
    Instance {
        node: NodeRecord { name: e.node.node.clone(), address: e.node.address.clone(), ..NodeRecord::default() },
        service_id: e.service.id.clone(),
        service_name: e.service.service.clone(),
        address: e.service.address.clone(),
        port: e.service.port,
        tags: e.service.tags.clone(),
        weight_passing: e.service.weights.passing,
        weight_warning: e.service.weights.warning,
        health: health(e.status()),
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
        let service = service.to_owned();
        let tags: Vec<String> = tag.map(str::to_owned).into_iter().collect();
        self.read(move |s| {
            // DNS names arrive lower-cased; catalog names keep their case, and DNS matches them case-insensitively.
            let Some(name) = catalog_service_name(s, &service) else {
                return Vec::new();
            };
            s.service_health(&name, &tags, false).0.iter().map(instance).collect()
        })
        .await
    }

    async fn node(&self, name: &str) -> Result<Option<NodeRecord>, ViewError> {
        let name = name.to_owned();
        self.read(move |s| {
            let (nodes, _) = s.nodes();
            nodes.into_iter().find(|n| n.node.eq_ignore_ascii_case(&name)).map(record)
        })
        .await
    }

    async fn services_with_address(&self, ip: IpAddr) -> Result<Vec<Instance>, ViewError> {
        let wanted = ip.to_string();
        self.read(move |s| {
            let (names, _) = s.service_names();
            let names: Vec<String> = names.keys().map(|n| (*n).to_owned()).collect();
            names
                .iter()
                .flat_map(|name| s.service_health(name, &[], false).0)
                .filter(|e| e.service.address == wanted)
                .map(|e| instance(&e))
                .collect()
        })
        .await
    }

    async fn nodes_with_address(&self, ip: IpAddr) -> Result<Vec<NodeRecord>, ViewError> {
        let wanted = ip.to_string();
        self.read(move |s| s.nodes().0.into_iter().filter(|n| n.address == wanted).map(record).collect()).await
    }
}
