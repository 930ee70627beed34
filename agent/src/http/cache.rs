//! The agent cache behind `?cached`, in Consul's background-refresh form, for the endpoints Consul caches that way
//! (`/v1/catalog/services`, `/v1/catalog/service/:s`, `/v1/health/service/:s`).
//!
//! The first `?cached` read of a query (per caller token: answers are filtered for their caller) is a `MISS`: it is
//! read from the servers, stored, and kept current by a background blocking query on the same watch keys. Later reads
//! are `HIT`s answered from the agent, with `Age: 0` while the refresh reaches a server and the seconds since it last
//! did otherwise; `?cached&index=N` blocks on the entry, so many local watchers share one query to the servers.
//! `Cache-Control` is ignored, as Consul ignores it for this form. Reads are stale reads, as Consul's cache types make.
//!
//! Bounded: at most `MAX_ENTRIES` entries (the least recently used is dropped, with its refresh, to make room), and an
//! entry unused for `IDLE_TTL` (Consul's 3 days) drops itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;
use roster_kv::{Answer, Query as StateQuery};
use roster_server::{Consistency, ReadMeta};
use tokio::sync::watch;
use tokio::time::Instant;

use super::query::{MAX_WAIT, Query, ReadOpts};
use super::reply::ApiError;
use super::{Api, caller};

/// The most entries the cache holds.
pub(crate) const MAX_ENTRIES: usize = 256;
/// How long an unused entry is kept (Consul's default TTL).
pub(crate) const IDLE_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
/// The first and the longest pause before a failed refresh is retried.
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// A read as the servers answered it.
#[derive(Clone)]
struct Fetched {
    answer: Answer,
    index: u64,
    meta: ReadMeta,
    filtered: bool,
}

/// What an entry holds.
#[derive(Clone)]
enum Slot {
    /// The first read is under way.
    Pending,
    Ready(Fetched),
    /// The first read failed; the entry is gone from the cache.
    Failed(String),
}

struct Entry {
    slot: watch::Sender<Slot>,
    /// The cache's use counter at the last use (orders entries for eviction; instants can tie) and when it was.
    last_used: Mutex<(u64, Instant)>,
    /// When the refresh last failed to reach a server, while it keeps failing.
    offline_since: Mutex<Option<Instant>>,
    refresh: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(task) = self.refresh.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

type Key = (String, String);

/// The cache: entries by caller secret and query.
#[derive(Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<Key, Arc<Entry>>>,
    uses: std::sync::atomic::AtomicU64,
}

impl Cache {
    /// The entry for `key`, and whether it is new (then the caller fetches it).
    fn entry(&self, key: &Key) -> (Arc<Entry>, bool) {
        let used = (self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed), Instant::now());
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(key) {
            *entry.last_used.lock().unwrap_or_else(|e| e.into_inner()) = used;
            return (entry.clone(), false);
        }
        if entries.len() >= MAX_ENTRIES {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used.lock().unwrap_or_else(|e| e.into_inner()).0)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let entry = Arc::new(Entry {
            slot: watch::Sender::new(Slot::Pending),
            last_used: Mutex::new(used),
            offline_since: Mutex::new(None),
            refresh: Mutex::new(None),
        });
        entries.insert(key.clone(), entry.clone());
        (entry, true)
    }

    fn remove(&self, key: &Key) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// How many entries are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Whether a reply came from the cache, for `X-Cache` and `Age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not a `?cached` read.
    Uncached,
    Miss,
    /// Served from the cache; the seconds since the entry was last known current.
    Hit {
        age_secs: u64,
    },
}

impl Status {
    /// `response` with Consul's cache headers.
    pub(crate) fn mark(self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        match self {
            Status::Uncached => {}
            Status::Miss => {
                headers.insert("X-Cache", HeaderValue::from_static("MISS"));
            }
            Status::Hit { age_secs } => {
                headers.insert("X-Cache", HeaderValue::from_static("HIT"));
                headers.insert("Age", HeaderValue::from(age_secs));
            }
        }
        response
    }
}

/// `read` for an endpoint Consul caches: through the cache with `?cached`, straight to the servers otherwise.
pub(crate) async fn read(
    api: &Api,
    opts: &ReadOpts,
    q: &Query,
    query: &StateQuery,
) -> Result<(Answer, u64, ReadMeta, Status), ApiError> {
    if !q.flag("cached") {
        let (answer, index, meta) = super::read(api, opts, query).await?;
        return Ok((answer, index, meta, Status::Uncached));
    }
    // Boxed: inline, the cached path's state would sit in every uncached read's future, each parked watcher's.
    Box::pin(cached(api, opts, query)).await
}

/// A `?cached` read: answered from the agent's cache entry for the caller and query, fetched first if there is none.
async fn cached(api: &Api, opts: &ReadOpts, query: &StateQuery) -> Result<(Answer, u64, ReadMeta, Status), ApiError> {
    let secret = caller::secret();
    let key = (secret.clone(), format!("{query:?}"));
    let (entry, new) = api.cache.entry(&key);
    let mut status = Status::Miss;
    if new {
        match api.backend.query_as(&secret, Consistency::Stale, 0, Duration::ZERO, query).await {
            Ok((answer, index, meta, filtered)) => {
                entry.slot.send_replace(Slot::Ready(Fetched { answer, index, meta, filtered }));
                let task = tokio::spawn(refresh(api.clone(), secret, query.clone(), Arc::downgrade(&entry), key));
                *entry.refresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
            }
            Err(err) => {
                api.cache.remove(&key);
                entry.slot.send_replace(Slot::Failed(err.to_string()));
                return Err(err.into());
            }
        }
    }
    let mut slot = entry.slot.subscribe();
    let deadline = Instant::now() + opts.wait;
    let fetched = loop {
        let current = slot.borrow_and_update().clone();
        match current {
            Slot::Failed(why) => return Err(ApiError::internal(why)),
            Slot::Ready(fetched) if opts.min_index == 0 || fetched.index > opts.min_index => break fetched,
            Slot::Ready(_) | Slot::Pending => {}
        }
        if !new {
            status = Status::Hit { age_secs: 0 };
        }
        tokio::select! {
            changed = slot.changed() => if changed.is_err() { return Err(ApiError::internal("the cache entry was dropped")) },
            () = tokio::time::sleep_until(deadline) => {
                // The wait ended: answer what is there, as a blocking read does.
                match slot.borrow().clone() {
                    Slot::Ready(fetched) => break fetched,
                    _ => return Err(ApiError::internal("the first read of the cache entry did not finish")),
                }
            }
            () = api.draining.cancelled() => match slot.borrow().clone() {
                Slot::Ready(fetched) => break fetched,
                _ => return Err(ApiError::internal("the agent is shutting down")),
            },
        }
    };
    if !new {
        let offline = *entry.offline_since.lock().unwrap_or_else(|e| e.into_inner());
        status = Status::Hit { age_secs: offline.map_or(0, |since| since.elapsed().as_secs()) };
    }
    if fetched.filtered {
        caller::note_filtered();
    }
    Ok((fetched.answer, fetched.index, fetched.meta, status))
}

/// Keeps an entry current with blocking reads until it is dropped, unused for `IDLE_TTL`, or the agent drains.
async fn refresh(api: Api, secret: String, query: StateQuery, entry: Weak<Entry>, key: Key) {
    let mut retry = RETRY.0;
    loop {
        let index = {
            let Some(entry) = entry.upgrade() else { return };
            if entry.last_used.lock().unwrap_or_else(|e| e.into_inner()).1.elapsed() > IDLE_TTL {
                api.cache.remove(&key);
                return;
            }
            match &*entry.slot.borrow() {
                Slot::Ready(fetched) => fetched.index.max(1),
                _ => return,
            }
        };
        let res = tokio::select! {
            res = api.backend.query_as(&secret, Consistency::Stale, index, MAX_WAIT, &query) => res,
            () = api.draining.cancelled() => return,
        };
        let Some(entry) = entry.upgrade() else { return };
        match res {
            Ok((answer, index, meta, filtered)) => {
                *entry.offline_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
                entry.slot.send_replace(Slot::Ready(Fetched { answer, index, meta, filtered }));
                retry = RETRY.0;
            }
            Err(err) => {
                tracing::debug!("refreshing a cached read failed: {err}");
                entry.offline_since.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
                drop(entry);
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = api.draining.cancelled() => return,
                }
                retry = (retry * 2).min(RETRY.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The bound on entries.
    use super::*;

    #[test]
    fn a_full_cache_drops_the_least_recently_used_entry() {
        let cache = Cache::default();
        let key = |n: usize| (String::new(), format!("q{n}"));
        for n in 0..MAX_ENTRIES {
            assert!(cache.entry(&key(n)).1, "new");
        }
        // Touch the first so that the second is the oldest.
        assert!(!cache.entry(&key(0)).1);
        assert!(cache.entry(&key(MAX_ENTRIES)).1);
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(!cache.entry(&key(0)).1, "kept: recently used");
        assert!(cache.entry(&key(1)).1, "dropped: least recently used");
    }
}
