//! DNS configuration, as the agent builds it from `dns_config`, `domain`, `recursors` and friends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Everything [`crate::serve`] needs besides its sockets and the catalog view.
#[derive(Debug, Clone)]
pub struct Config {
    /// The domain answered authoritatively (Consul's `domain`, default `consul`), without dots at either end.
    pub domain: String,
    /// A second domain answered exactly like `domain` (Consul's `alt_domain`); answers keep the asked domain.
    pub alt_domain: Option<String>,
    /// This agent's datacenter; a name with any other `.dc` label gets NXDOMAIN (no WAN yet).
    pub datacenter: String,
    /// TTL of node, addr and PTR answers (`dns_config.node_ttl`, default 0 so changes show at once).
    pub node_ttl: Duration,
    /// TTL of service answers by service name: an exact name, a `prefix*`, or `*`; longest match wins, default 0.
    pub service_ttl: BTreeMap<String, Duration>,
    /// Drop instances in warning as well as critical (`dns_config.only_passing`).
    pub only_passing: bool,
    /// Set the TC bit when a UDP answer was trimmed, so clients retry over TCP (`dns_config.enable_truncate`).
    pub enable_truncate: bool,
    /// Maximum records in the answer section of a UDP answer (`dns_config.udp_answer_limit`, default 3; 0 = no cap).
    pub udp_answer_limit: u32,
    /// Upstream resolvers for names outside the domain, asked one at a time in `recursor_strategy`'s order.
    pub recursors: Vec<SocketAddr>,
    /// How long each recursor is given before the next is asked; past the last, the client gets SERVFAIL (default 2 s).
    pub recursor_timeout: Duration,
    /// Bound on a `CatalogView` call; past it the client gets SERVFAIL rather than a timeout.
    pub query_timeout: Duration,
    /// In which order the recursors are asked (`dns_config.recursor_strategy`).
    pub recursor_strategy: RecursorStrategy,
    /// Most address records in a service's A/AAAA answer on any transport (`dns_config.a_record_limit`; 0 = no limit).
    pub a_record_limit: u32,
    /// Add each node's meta as TXT records to the additional section of SRV answers and node A/AAAA answers
    /// (`dns_config.enable_additional_node_meta_txt`, default true as in Consul).
    pub node_meta_txt: bool,
    /// Encode answers without name compression (`dns_config.disable_compression`), for clients that mishandle it.
    pub disable_compression: bool,
    /// The SOA timers (`dns_config.soa`).
    pub soa: Soa,
}

/// The timers of the zone's SOA record (`dns_config.soa`), in seconds; Consul's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Soa {
    /// `refresh` (default 3600).
    pub refresh: u32,
    /// `retry` (default 600).
    pub retry: u32,
    /// `expire` (default 86400).
    pub expire: u32,
    /// `min_ttl`, the negative-caching TTL and the SOA record's own TTL (default 0).
    pub min_ttl: u32,
}

impl Default for Soa {
    fn default() -> Self {
        Soa { refresh: 3600, retry: 600, expire: 86_400, min_ttl: 0 }
    }
}

/// How a name outside the domain is forwarded (`dns_config.recursor_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecursorStrategy {
    /// Ask the recursors one after another in the configured order, each for up to `recursor_timeout`, until one
    /// answers NOERROR or NXDOMAIN (Consul's default).
    #[default]
    Sequential,
    /// The same, in a random order per query, which spreads the load over the recursors.
    Random,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: "consul".to_owned(),
            alt_domain: None,
            datacenter: "dc1".to_owned(),
            node_ttl: Duration::ZERO,
            service_ttl: BTreeMap::new(),
            only_passing: false,
            enable_truncate: false,
            udp_answer_limit: 3,
            recursors: Vec::new(),
            recursor_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(2),
            recursor_strategy: RecursorStrategy::Sequential,
            a_record_limit: 0,
            node_meta_txt: true,
            disable_compression: false,
            soa: Soa::default(),
        }
    }
}

impl Config {
    /// The TTL for answers about `service`: exact name, then the longest matching `prefix*`, then `*`, then 0.
    pub fn service_ttl_for(&self, service: &str) -> Duration {
        if let Some(ttl) = self.service_ttl.get(service) {
            return *ttl;
        }
        self.service_ttl
            .iter()
            .filter_map(|(pattern, ttl)| {
                let prefix = pattern.strip_suffix('*')?;
                service.starts_with(prefix).then_some((prefix.len(), *ttl))
            })
            .max_by_key(|(prefix_len, _)| *prefix_len)
            .map_or(Duration::ZERO, |(_, ttl)| ttl)
    }
}

/// A running server's settings, which [`SharedConfig::update`] replaces while it serves (a config reload): every
/// query reads the newest, and answers cached under older settings are no longer used.
///
/// Clones share one value, so one update reaches every DNS thread.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: RwLock<Arc<Config>>,
    /// Moves after every update; the answer cache files entries under it. Read on the UDP fast path, which
    /// therefore touches no lock.
    version: AtomicU64,
}

impl SharedConfig {
    /// Shares `config`.
    pub fn new(config: Config) -> SharedConfig {
        SharedConfig { inner: Arc::new(Shared { config: RwLock::new(Arc::new(config)), version: AtomicU64::new(0) }) }
    }

    /// Replaces the settings from the next query on. The domains and the datacenter are fixed when the server
    /// starts (they make its zones), so a change to them is refused by name and nothing changes.
    pub fn update(&self, config: Config) -> Result<(), String> {
        let current = self.current();
        let fixed = [
            ("domain", current.domain != config.domain),
            ("alt_domain", current.alt_domain != config.alt_domain),
            ("datacenter", current.datacenter != config.datacenter),
        ];
        let changed: Vec<&str> = fixed.iter().filter(|(_, changed)| *changed).map(|(name, _)| *name).collect();
        if !changed.is_empty() {
            return Err(format!("a running DNS server cannot change {}", changed.join(", ")));
        }
        *self.inner.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        // After the write: whoever reads the new version and then the settings gets the new settings.
        self.inner.version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The settings in force.
    pub fn current(&self) -> Arc<Config> {
        self.inner.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Which update is in force; read before [`SharedConfig::current`] so an answer is never filed under a newer
    /// version than the settings it was made with.
    pub(crate) fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }
}

impl From<Config> for SharedConfig {
    fn from(config: Config) -> SharedConfig {
        SharedConfig::new(config)
    }
}
