//! Acquiring and watching `PREFIX/.lock`, Consul's leader-election recipe (`api/lock.go`).
//!
//! The key carries Consul's lock flag value so a `consul lock` and a `roster lock` recognise each
//! other's keys, and a key used for something else (or a semaphore's) is refused rather than
//! overwritten. While another session holds the key, the waiter parks on a blocking query of it;
//! when the key is free but the acquire still fails, a lock-delay is in force after a session was
//! invalidated, and no blocking query can wake for its end, so the waiter polls.

use std::time::Duration;

use anyhow::bail;
use reqwest::Method;
use serde_json::Value;

use super::monitor;
use crate::cli::watch::agent_http::{AgentHttp, kv_path, segment};

/// Consul's `LockFlagValue`, the `Flags` of every lock key.
pub(super) const LOCK_FLAG_VALUE: u64 = 0x2ddc_cbc0_58a5_0c18;
/// How often a waiter retries while a lock-delay blocks the key (Consul waits 5 s; a shorter poll
/// costs one request a second and takes over a freed lock sooner).
const LOCK_DELAY_RETRY: Duration = Duration::from_secs(1);

/// The lock key of a prefix.
pub(super) fn lock_key(prefix: &str) -> String {
    format!("{}/.lock", prefix.trim_start_matches('/').trim_end_matches('/'))
}

/// Who holds the key now, read from one GET of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Holder {
    /// The key is absent or no session holds it.
    Nobody,
    /// This session holds it.
    Us,
    /// Another session holds it.
    Other,
}

/// Reads who holds the key, refusing a key that is not a lock.
pub(super) fn holder(entries: &Value, session: &str) -> anyhow::Result<Holder> {
    let Some(entry) = entries.as_array().and_then(|entries| entries.first()) else { return Ok(Holder::Nobody) };
    if entry["Flags"].as_u64() != Some(LOCK_FLAG_VALUE) {
        bail!("Existing key does not match lock use");
    }
    Ok(match entry["Session"].as_str() {
        None | Some("") => Holder::Nobody,
        Some(holder) if holder == session => Holder::Us,
        Some(_) => Holder::Other,
    })
}

/// One read of the key: its holder and index (`None` entries when it does not exist).
async fn read(agent: &AgentHttp, key: &str, session: &str, index: u64) -> anyhow::Result<(Holder, u64)> {
    let reply = agent.get(&kv_path(key), index).await?;
    if reply.status == reqwest::StatusCode::NOT_FOUND {
        return Ok((Holder::Nobody, reply.index));
    }
    Ok((holder(&reply.json()?, session)?, reply.index))
}

/// Waits until `session` holds `key`. Runs until it succeeds or fails; the caller bounds it.
pub(super) async fn acquire(agent: &AgentHttp, key: &str, session: &str) -> anyhow::Result<()> {
    let acquire_path = format!("{}?acquire={}&flags={LOCK_FLAG_VALUE}", kv_path(key), segment(session));
    let mut wait_index = 0;
    loop {
        let (holder, index) = read(agent, key, session, wait_index).await?;
        match holder {
            Holder::Us => return Ok(()),
            Holder::Other => {
                wait_index = index;
                continue;
            }
            Holder::Nobody => {}
        }
        let acquired = agent.send(Method::PUT, &acquire_path, Some(Vec::new())).await?.json()?;
        if acquired.as_bool() == Some(true) {
            return Ok(());
        }
        // Lost a race to another waiter (wait for its release) or a lock-delay is running (poll).
        let (holder, index) = read(agent, key, session, 0).await?;
        if holder == Holder::Other {
            wait_index = index;
        } else {
            wait_index = 0;
            tokio::time::sleep(LOCK_DELAY_RETRY).await;
        }
    }
}

/// Returns once `session` no longer holds `key` (released, deleted, session invalidated), or
/// after `retries` consecutive agent errors, since then the lock can no longer be vouched for.
pub(super) async fn until_lost(agent: &AgentHttp, key: &str, session: &str, retries: u32) {
    monitor::until_lost(retries, |wait_index| async move {
        let (holder, index) = read(agent, key, session, wait_index).await?;
        Ok((holder == Holder::Us).then_some(index))
    })
    .await;
}

/// Releases the key if this session still holds it.
pub(super) async fn release(agent: &AgentHttp, key: &str, session: &str) {
    let path = format!("{}?release={}&flags={LOCK_FLAG_VALUE}", kv_path(key), segment(session));
    if let Err(err) = agent.send(Method::PUT, &path, Some(Vec::new())).await {
        eprintln!("roster lock: releasing {key}: {err:#}");
    }
}
