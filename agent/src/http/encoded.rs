//! Encoded bodies of repeated reads on a server agent: the same read of the same applied state answers the same bytes.
//!
//! `/v1/health/service/:s`, `/v1/catalog/service/:s` and KV lists (`?recurse`, `?keys`) are what load balancers'
//! helpers, consul-template and Prometheus ask over and over, and between two writes their answer cannot change; yet
//! every request cloned the records out of the state and encoded them again (the encoding alone was 17.5 % of the
//! health read's samples in the profile). An
//! entry holds one answer's body, its `X-Consul-Index` and whether ACLs left something out of it, for one caller
//! secret and one request (path and query string without `index` and `wait`), stamped with the state's `last_index`
//! when it was computed. Every apply moves `last_index` (the rule `roster_server`'s shared evaluation of blocking
//! queries relies on too), so an entry is exact for exactly as long as the state is still at its stamp.
//!
//! Used only where the answer comes from this server's own state and checking the stamp costs nothing: a server agent
//! that leads (its lease barrier is local) or any server for `?stale`. Not for `?consistent` (a miss would run its
//! quorum round twice), nor `?cached` (the agent cache keeps its own answers), nor a client agent (its server decides).
//! An answer is stored under the state its computation read (the server's `ReadMeta::state_index`), and only while
//! the state is still there. So the first of the watchers one write wakes stores its body, and the rest, reading the
//! same state, answer with it (`Slot::reuse`) rather than each encoding the same JSON; a blocking read whose entry's
//! index differs from its `?index` answers from the entry at once, as the server would have answered it. With ACLs
//! on, a hit resolves the caller's token again, so a token that expired since (expiry is the one change that is not a
//! write) is refused as before.
//!
//! Bounded: at most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] of bodies, none above [`MAX_BODY`]; to make room, the
//! entries of older states go first, then everything (forgetting costs one evaluation).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::body::{Bytes, HttpBody as _};
use axum::http::StatusCode;
use axum::response::Response;
use roster_kv::State;
use roster_server::{Consistency, ReadMeta};

use super::Api;
use super::caller;
use super::query::{Query, ReadOpts};
use super::reply::{ApiError, ApiResult, X_CONSUL_INDEX, json_read_reply};

/// The most entries kept.
pub(crate) const MAX_ENTRIES: usize = 1024;
/// The most body bytes kept over all entries.
pub(crate) const MAX_BYTES: usize = 16 << 20;
/// The largest body kept: a larger answer is encoded per request, as before.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// One stored answer.
#[derive(Clone)]
struct Entry {
    /// `State::last_index` when the answer was computed.
    at: u64,
    /// The answer's `X-Consul-Index`.
    index: u64,
    body: Bytes,
    /// ACLs left something out for this caller.
    filtered: bool,
}

/// The stored answers, by caller and request.
#[derive(Default)]
pub(crate) struct Encoded {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    bytes: usize,
}

/// The entry key: the caller's secret (answers are filtered for their caller) and the request without the two
/// parameters that only say how long to block.
fn key(secret: &str, path: &str, raw_query: Option<&str>) -> String {
    let mut key = String::with_capacity(secret.len() + path.len() + raw_query.map_or(0, str::len) + 2);
    key.push_str(secret);
    key.push('\0');
    key.push_str(path);
    key.push('?');
    for pair in raw_query.unwrap_or("").split('&').filter(|pair| !pair.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if name != "index" && name != "wait" {
            key.push_str(pair);
            key.push('&');
        }
    }
    key
}

impl Encoded {
    fn get(&self, key: &str, at: u64) -> Option<Entry> {
        let entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        entries.map.get(key).filter(|entry| entry.at == at).cloned()
    }

    fn put(&self, key: String, entry: Entry) {
        if entry.body.len() > MAX_BODY {
            return;
        }
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Entries { map, bytes } = &mut *entries;
        if let Some(old) = map.remove(&key) {
            *bytes -= old.body.len();
        }
        if map.len() >= MAX_ENTRIES || *bytes + entry.body.len() > MAX_BYTES {
            let at = entry.at;
            map.retain(|_, kept| kept.at >= at);
            *bytes = map.values().map(|kept| kept.body.len()).sum();
            if map.len() >= MAX_ENTRIES || *bytes + entry.body.len() > MAX_BYTES {
                map.clear();
                *bytes = 0;
            }
        }
        *bytes += entry.body.len();
        map.insert(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (entries.map.len(), entries.bytes)
    }
}

/// Where one request stands with the stored answers: the key its answer is kept under when it may use them, and the
/// state its computation read its records at.
pub(crate) struct Slot {
    key: Option<String>,
    /// `State::last_index` the computation's read was evaluated at, once it was (0: not known).
    read_at: AtomicU64,
}

impl Slot {
    /// The slot of a request to `path` with `raw_query`: usable on a server agent that answers it from its own state
    /// (a leader's default read, or `?stale`), and neither for `?consistent` (a miss would run its quorum round twice)
    /// nor `?cached` (the agent cache keeps its own answers).
    pub(crate) fn new(api: &Api, path: &str, raw_query: Option<&str>, q: &Query, opts: &ReadOpts) -> Slot {
        let local = api.backend.server().is_some_and(|server| match opts.consistency {
            Consistency::Stale => true,
            Consistency::Default => server.is_leader(),
            Consistency::Consistent => false,
        });
        let key = (local && !q.names().any(|name| name == "cached")).then(|| key(&caller::secret(), path, raw_query));
        Slot { key, read_at: AtomicU64::new(0) }
    }

    /// A slot that never uses the stored answers.
    pub(crate) fn unused() -> Slot {
        Slot { key: None, read_at: AtomicU64::new(0) }
    }

    /// Called by the computation once it has read its records (`index` and `meta` from that read): the answer
    /// another request stored for the same state, if there is one. This is what a woken watcher finds: thousands
    /// woken by one write read the same state, the first to finish stores its body, and the rest answer with it
    /// instead of encoding it again. The read already resolved the caller's token after its wait.
    pub(crate) fn reuse(&self, api: &Api, index: u64, meta: ReadMeta) -> Option<Response> {
        let key = self.key.as_deref()?;
        if meta.state_index == 0 {
            return None;
        }
        self.read_at.store(meta.state_index, Ordering::Relaxed);
        // One state and one request make one answer, so the index cannot differ; checked rather than assumed.
        let entry = api.encoded.get(key, meta.state_index).filter(|entry| entry.index == index)?;
        if entry.filtered {
            caller::note_filtered();
        }
        Some(json_read_reply(entry.body, entry.index, meta))
    }
}

/// Answers a read from a stored body when this server's state is still where that body was computed, and otherwise
/// runs `compute` (a handler whose 200 answers are `read_reply`s, which calls `slot.reuse` after its read) and stores
/// what it answers, under the state its read saw, when the state is still there.
///
/// `compute` is pinned by the caller and lent, not moved in: a future argument that is awaited takes two slots in
/// this function's future (the argument's and the awaited copy's), which doubled every parked watcher's handler.
pub(crate) async fn read(
    api: &Api,
    slot: &Slot,
    opts: &ReadOpts,
    compute: Pin<&mut impl Future<Output = ApiResult>>,
) -> ApiResult {
    let (Some(key), Some(server)) = (slot.key.as_deref(), api.backend.server()) else { return compute.await };
    let secret = caller::secret();
    let (at, meta) = server.read(opts.consistency, State::last_index).await?;
    if let Some(entry) = api.encoded.get(key, at)
        && (opts.min_index == 0 || entry.index != opts.min_index)
    {
        if api.acl.enabled() {
            server.resolve_token(&secret)?;
        }
        if entry.filtered {
            caller::note_filtered();
        }
        return Ok(json_read_reply(entry.body, entry.index, meta));
    }
    let response = compute.await?;
    // The state the computation read at (a blocking read's is the one that woke it), else the one read above.
    let read_at = match slot.read_at.load(Ordering::Relaxed) {
        0 => at,
        stamp => stamp,
    };
    if response.status() != StatusCode::OK || server.read_local(State::last_index) != read_at {
        return Ok(response);
    }
    // Boxed: inline, the store's state would sit beside `compute.await` in a parked watcher's future.
    Box::pin(store(api, key.to_owned(), read_at, response)).await
}

/// Keeps a computed answer for the next read of the same state, when it is a `read_reply` small enough.
async fn store(api: &Api, key: String, at: u64, response: Response) -> ApiResult {
    let Some(index) = response.headers().get(X_CONSUL_INDEX).and_then(|v| v.to_str().ok()?.parse().ok()) else {
        return Ok(response);
    };
    // Only a body already whole in memory (what `read_reply` makes) is taken apart; anything else goes out as it is.
    if response.body().size_hint().exact().is_none_or(|len| len > MAX_BODY as u64) {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|err| ApiError::internal(format!("reading back an encoded reply failed: {err}")))?;
    api.encoded.put(key, Entry { at, index, body: body.clone(), filtered: caller::filtered() });
    Ok(Response::from_parts(parts, axum::body::Body::from(body)))
}

#[cfg(test)]
mod tests;
