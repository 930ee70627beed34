//! The `dns_config` keys beyond the TTLs and answer limits `source.rs` reads: Consul's `allow_stale`,
//! `a_record_limit`, `soa {}`, `recursor_strategy`, `recursor_timeout`, `use_cache`, `cache_max_age`,
//! `enable_additional_node_meta_txt` and `disable_compression`, each checked as Consul's config builder checks it.

use std::time::Duration;

use serde_json::Value;

/// Consul's default `dns_config.recursor_timeout`.
const DEFAULT_RECURSOR_TIMEOUT: Duration = Duration::from_secs(2);

/// One layer's values of these keys; `None` means "not set by this layer".
#[derive(Debug, Default)]
pub(super) struct DnsLayer {
    allow_stale: Option<bool>,
    a_record_limit: Option<u32>,
    soa_refresh: Option<u32>,
    soa_retry: Option<u32>,
    soa_expire: Option<u32>,
    soa_min_ttl: Option<u32>,
    recursor_strategy: Option<roster_dns::RecursorStrategy>,
    recursor_timeout: Option<Duration>,
    use_cache: Option<bool>,
    cache_max_age: Option<Duration>,
    node_meta_txt: Option<bool>,
    disable_compression: Option<bool>,
}

/// Whether `key` (dotted, from the top) is one of the keys [`DnsLayer::apply`] reads.
pub(super) fn is_key(key: &str) -> bool {
    matches!(
        key,
        "dns_config.allow_stale"
            | "dns_config.a_record_limit"
            | "dns_config.soa"
            | "dns_config.recursor_strategy"
            | "dns_config.recursor_timeout"
            | "dns_config.use_cache"
            | "dns_config.cache_max_age"
            | "dns_config.enable_additional_node_meta_txt"
            | "dns_config.disable_compression"
    )
}

impl DnsLayer {
    /// Reads `key` (one of [`is_key`]'s) from `value`; the error says what is wrong with the value.
    pub(super) fn apply(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "dns_config.allow_stale" => set(&mut self.allow_stale, boolean(value)),
            "dns_config.a_record_limit" => set(&mut self.a_record_limit, unsigned(value)),
            "dns_config.soa" => self.soa(value),
            "dns_config.recursor_strategy" => set(&mut self.recursor_strategy, strategy(value)),
            "dns_config.recursor_timeout" => set(&mut self.recursor_timeout, positive_duration(value)),
            "dns_config.use_cache" => set(&mut self.use_cache, boolean(value)),
            "dns_config.cache_max_age" => set(&mut self.cache_max_age, super::duration_from_json(value)),
            "dns_config.enable_additional_node_meta_txt" => set(&mut self.node_meta_txt, boolean(value)),
            "dns_config.disable_compression" => set(&mut self.disable_compression, boolean(value)),
            _ => Err(format!("not a dns_config key: {key}")),
        }
    }

    /// `soa { expire, min_ttl, refresh, retry }`, each a whole number of seconds; any other key is refused.
    fn soa(&mut self, value: &Value) -> Result<(), String> {
        let Value::Object(map) = value else { return Err("expected an object".to_owned()) };
        for (key, field) in map {
            let slot = match key.as_str() {
                "expire" => &mut self.soa_expire,
                "min_ttl" => &mut self.soa_min_ttl,
                "refresh" => &mut self.soa_refresh,
                "retry" => &mut self.soa_retry,
                other => return Err(format!("unknown key {other:?} (expire, min_ttl, refresh, retry)")),
            };
            set(slot, unsigned(field)).map_err(|why| format!("{key}: {why}"))?;
        }
        Ok(())
    }

    /// Later layers win key by key.
    pub(super) fn merge(&mut self, later: DnsLayer) {
        over(&mut self.allow_stale, later.allow_stale);
        over(&mut self.a_record_limit, later.a_record_limit);
        over(&mut self.soa_refresh, later.soa_refresh);
        over(&mut self.soa_retry, later.soa_retry);
        over(&mut self.soa_expire, later.soa_expire);
        over(&mut self.soa_min_ttl, later.soa_min_ttl);
        over(&mut self.recursor_strategy, later.recursor_strategy);
        over(&mut self.recursor_timeout, later.recursor_timeout);
        over(&mut self.use_cache, later.use_cache);
        over(&mut self.cache_max_age, later.cache_max_age);
        over(&mut self.node_meta_txt, later.node_meta_txt);
        over(&mut self.disable_compression, later.disable_compression);
    }

    /// The settings with Consul's defaults for what no layer set, except `use_cache` (see [`DnsSettings::use_cache`]).
    pub(super) fn build(&self) -> DnsSettings {
        let soa = roster_dns::Soa::default();
        DnsSettings {
            allow_stale: self.allow_stale.unwrap_or(true),
            a_record_limit: self.a_record_limit.unwrap_or(0),
            soa: roster_dns::Soa {
                refresh: self.soa_refresh.unwrap_or(soa.refresh),
                retry: self.soa_retry.unwrap_or(soa.retry),
                expire: self.soa_expire.unwrap_or(soa.expire),
                min_ttl: self.soa_min_ttl.unwrap_or(soa.min_ttl),
            },
            recursor_strategy: self.recursor_strategy.unwrap_or_default(),
            recursor_timeout: self.recursor_timeout.unwrap_or(DEFAULT_RECURSOR_TIMEOUT),
            use_cache: self.use_cache.unwrap_or(true),
            cache_max_age: self.cache_max_age.unwrap_or(Duration::ZERO),
            node_meta_txt: self.node_meta_txt.unwrap_or(true),
            disable_compression: self.disable_compression.unwrap_or(false),
        }
    }
}

/// The settings of these keys in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Answer from stale reads (`allow_stale`, default true): a server reads its own state, a client asks any server.
    /// Off, every lookup is a default-consistency read through the leader, and nothing is cached.
    pub allow_stale: bool,
    /// Most address records in a service's A/AAAA answer (`a_record_limit`; 0, the default, is no limit).
    pub a_record_limit: u32,
    /// The SOA timers (`soa { refresh, retry, expire, min_ttl }`; Consul's 3600, 600, 86400, 0).
    pub soa: roster_dns::Soa,
    /// Recursors in the configured order, or a random one per question (`recursor_strategy`, default sequential).
    pub recursor_strategy: roster_dns::RecursorStrategy,
    /// How long each recursor is given (`recursor_timeout`, default 2 s).
    pub recursor_timeout: Duration,
    /// A client agent answers from its watch-fed cache of lookups (`use_cache`). Consul's default is false; roster's
    /// is true, because its cache is refreshed by blocking queries (it answers what a server would) and keeps
    /// answering while no server does. False makes every lookup a read on a server.
    pub use_cache: bool,
    /// A cached answer not confirmed by a server for this long is fetched again before use (`cache_max_age`; 0, the
    /// default, leaves only `max_stale`).
    pub cache_max_age: Duration,
    /// Node meta as TXT records in the additional section (`enable_additional_node_meta_txt`, default true).
    pub node_meta_txt: bool,
    /// Send UDP answers without name compression (`disable_compression`, default false).
    pub disable_compression: bool,
}

fn set<T>(slot: &mut Option<T>, value: Result<T, String>) -> Result<(), String> {
    *slot = Some(value?);
    Ok(())
}

fn over<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {value}"))
}

/// A whole number from 0 to 2^32 - 1; Consul refuses negative limits ("must be greater than or equal to zero").
fn unsigned(value: &Value) -> Result<u32, String> {
    let number = value.as_i64().ok_or_else(|| format!("expected a whole number, got {value}"))?;
    if number < 0 {
        return Err(format!("cannot be {number}; must be greater than or equal to zero"));
    }
    u32::try_from(number).map_err(|_| format!("{number} is too large"))
}

fn positive_duration(value: &Value) -> Result<Duration, String> {
    let duration = super::duration_from_json(value)?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(duration)
}

/// `sequential` or `random`, as Consul names them.
fn strategy(value: &Value) -> Result<roster_dns::RecursorStrategy, String> {
    match value.as_str() {
        Some("sequential") => Ok(roster_dns::RecursorStrategy::Sequential),
        Some("random") => Ok(roster_dns::RecursorStrategy::Random),
        _ => Err(format!("invalid strategy: {value} (sequential or random)")),
    }
}
