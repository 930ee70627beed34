//! A client agent's DNS cache: the answers to the lookups asked of it, each kept fresh by a blocking
//! query on a server, so a repeat lookup costs no round trip and keeps answering (stale) while the
//! cluster has no leader or no server answers.
//!
//! The first lookup of a name fetches it (a stale query, bounded by `FIRST_FETCH_TIMEOUT`, so DNS
//! answers SERVFAIL rather than hang) and starts a watcher: a loop of blocking queries on exactly
//! that lookup's watch keys, which replaces the cached answer whenever its index moves. A watcher
//! stops, and its entry goes, when nobody has asked for the name for `IDLE_EVICT`; the cache holds
//! at most `MAX_ENTRIES` names, dropping the least recently used beyond that.
//! An answer older than `max_stale` (its last successful refresh) is not served; the lookup is
//! fetched again, and fails if that fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use roster_kv::{Answer, Query};
use roster_server::{Consistency, Remote};
use tokio::time::Instant;

/// How long a first lookup may wait for a server before DNS gives up with SERVFAIL.
const FIRST_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Names nobody asked for in this long stop being watched.
const IDLE_EVICT: Duration = Duration::from_secs(600);
/// The most names watched at once (each is a parked query on a server and a small task here).
const MAX_ENTRIES: usize = 4096;
/// Each blocking query's wait; the server answers sooner when the lookup's data changes.
const WATCH_WAIT: Duration = Duration::from_secs(300);
/// Pause after a failed refresh before asking again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Why a lookup could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No server answered the first lookup in time (or at all).
    #[error("{0}")]
    Unavailable(String),
}

/// The cache; cheap to share across DNS threads.
pub struct WatchCache {
    remote: Remote,
    /// Whose token DNS reads with (`acl.tokens.dns`, else `default`); the servers filter answers by it.
    acl: Arc<crate::acl::Acl>,
    /// Watchers run on the agent's main runtime, not on the DNS thread that saw the first lookup.
    runtime: tokio::runtime::Handle,
    /// `dns_config.max_stale` in nanoseconds, which a config reload may change.
    max_stale: AtomicU64,
    entries: Entries,
    /// Moves whenever a cached answer is added or replaced, so DNS knows when its encoded answers are stale.
    generation: Arc<AtomicU64>,
}

/// Cached answers by the postcard encoding of their query.
type Entries = Arc<Mutex<HashMap<Vec<u8>, Arc<Mutex<Slot>>>>>;

struct Slot {
    answer: Answer,
    index: u64,
    /// The last time a server confirmed this answer.
    fresh_at: Instant,
    /// The last time a lookup used it.
    used_at: Instant,
}

impl WatchCache {
    /// A cache reading through `remote`; call from inside the agent's main runtime.
    pub fn new(remote: Remote, acl: Arc<crate::acl::Acl>, max_stale: Duration) -> WatchCache {
        WatchCache {
            remote,
            acl,
            runtime: tokio::runtime::Handle::current(),
            max_stale: AtomicU64::new(nanos(max_stale)),
            entries: Arc::new(Mutex::new(HashMap::new())),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Serves answers up to `max_stale` old from now on.
    pub fn set_max_stale(&self, max_stale: Duration) {
        self.max_stale.store(nanos(max_stale), Ordering::Relaxed);
    }

    /// A number that changes whenever any cached answer does.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The answer to `query`: cached when a fresh enough one is there, else fetched (and watched from now on).
    pub async fn get(&self, query: Query) -> Result<Answer, CacheError> {
        let key = postcard::to_allocvec(&query).map_err(|e| CacheError::Unavailable(e.to_string()))?;
        let cached = lock(&self.entries).get(&key).cloned();
        if let Some(slot) = cached {
            let mut slot = lock(&slot);
            slot.used_at = Instant::now();
            if slot.fresh_at.elapsed() <= Duration::from_nanos(self.max_stale.load(Ordering::Relaxed)) {
                return Ok(slot.answer.clone());
            }
        }
        let secret = self.acl.dns_secret();
        let fetch = self.remote.query_as(&secret, Consistency::Stale, 0, Duration::ZERO, &query);
        let fetched = tokio::time::timeout(FIRST_FETCH_TIMEOUT, fetch).await;
        let (answer, index, _, _) = match fetched {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => return Err(CacheError::Unavailable(err.to_string())),
            Err(_) => {
                return Err(CacheError::Unavailable(format!("no server answered within {FIRST_FETCH_TIMEOUT:?}")));
            }
        };
        let now = Instant::now();
        let slot = Arc::new(Mutex::new(Slot { answer: answer.clone(), index, fresh_at: now, used_at: now }));
        let mut entries = lock(&self.entries);
        if let Some(existing) = entries.get(&key) {
            // Another lookup of the same name raced this one and already watches it.
            let mut existing = lock(existing);
            existing.answer = answer.clone();
            existing.fresh_at = now;
            existing.used_at = now;
            self.generation.fetch_add(1, Ordering::AcqRel);
            return Ok(answer);
        }
        if entries.len() >= MAX_ENTRIES {
            evict_least_recently_used(&mut entries);
        }
        entries.insert(key.clone(), slot.clone());
        drop(entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let generation = self.generation.clone();
        let watcher = Watcher {
            remote: self.remote.clone(),
            acl: self.acl.clone(),
            entries: self.entries.clone(),
            key,
            slot,
            query,
            generation,
        };
        self.runtime.spawn(watcher.run());
        Ok(answer)
    }

    /// Names watched right now.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps one cached answer fresh until it is evicted or unused for `IDLE_EVICT`.
struct Watcher {
    remote: Remote,
    acl: Arc<crate::acl::Acl>,
    entries: Entries,
    key: Vec<u8>,
    slot: Arc<Mutex<Slot>>,
    query: Query,
    generation: Arc<AtomicU64>,
}

impl Watcher {
    async fn run(self) {
        loop {
            let (index, idle) = {
                let slot = lock(&self.slot);
                (slot.index, slot.used_at.elapsed() > IDLE_EVICT)
            };
            let still_cached = lock(&self.entries).get(&self.key).is_some_and(|s| Arc::ptr_eq(s, &self.slot));
            if idle || !still_cached {
                if still_cached {
                    lock(&self.entries).remove(&self.key);
                }
                return;
            }
            let secret = self.acl.dns_secret();
            match self.remote.query_as(&secret, Consistency::Stale, index, WATCH_WAIT, &self.query).await {
                Ok((answer, index, _, _)) => {
                    let mut slot = lock(&self.slot);
                    if slot.index != index {
                        slot.answer = answer;
                        slot.index = index;
                        self.generation.fetch_add(1, Ordering::AcqRel);
                    }
                    slot.fresh_at = Instant::now();
                }
                Err(err) => {
                    tracing::debug!("DNS cache refresh failed, keeping the last answer: {err}");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
}

fn evict_least_recently_used(entries: &mut HashMap<Vec<u8>, Arc<Mutex<Slot>>>) {
    let oldest = entries.iter().min_by_key(|(_, slot)| lock(slot).used_at).map(|(key, _)| key.clone());
    if let Some(key) = oldest {
        entries.remove(&key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A duration in nanoseconds, saturating (Consul's default `max_stale` of ten years fits many times over).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
