//! Consul's semaphore (`api/semaphore.go`): up to `Limit` sessions hold `PREFIX` at once.
//!
//! The protocol, which every contender (Go's `api.Semaphore`, `consul lock -n`, `roster lock -n`)
//! must follow for the others to see its slot:
//! - A contender first creates `PREFIX/<session>` with `?acquire=<session>`. That key is the proof
//!   of life: the session's `Behavior` is `delete`, so when the session ends the key goes too.
//! - `PREFIX/.lock` holds `{"Limit":N,"Holders":{"<session>":true,..}}`. Nobody acquires it with a
//!   session; every change is a compare-and-set on its `ModifyIndex` (`?cas=0` creates it).
//! - A reader prunes from `Holders` every session that holds no key under the prefix, so a slot
//!   whose session died frees itself at the next write without its owner's help.
//! - A contender with a free slot adds itself with CAS; with none, it parks on a blocking read of
//!   the prefix, which wakes when a holder leaves or a contender key disappears.
//! - Every contender must agree on `Limit`; a disagreement is an error, not a silent override.
//! - Release removes the session from `Holders` (CAS, retried on a race) and deletes its contender
//!   key; the last one out deletes `.lock` (CAS again), so a later run may pick another limit.
//!
//! Invariant: the `.lock` flags are Consul's `SemaphoreFlagValue`, distinct from the lock's, so a
//! lock and a semaphore on one prefix refuse each other's key instead of corrupting it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::key::lock_key;
use super::monitor;
use crate::cli::watch::agent_http::{AgentHttp, kv_path, segment};

/// Consul's `SemaphoreFlagValue`, the `Flags` of `.lock` and of every contender key.
pub(super) const SEMAPHORE_FLAG_VALUE: u64 = 0xe0f6_9a2b_aa41_4de0;

/// One semaphore: a prefix and the number of holders it admits.
#[derive(Debug, Clone)]
pub(super) struct Semaphore {
    /// The KV prefix, without leading or trailing `/`.
    pub prefix: String,
    /// The most sessions that may hold it at once; every contender must agree on it.
    pub limit: u32,
}

/// The JSON value of `PREFIX/.lock`, Consul's `semaphoreLock`, field names and all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LockValue {
    /// The agreed number of holders.
    #[serde(rename = "Limit", alias = "limit")]
    pub limit: u32,
    /// The holders' session IDs, each mapped to `true` (Go's set idiom).
    #[serde(rename = "Holders", alias = "holders", default, deserialize_with = "null_as_empty")]
    pub holders: BTreeMap<String, bool>,
}

/// The prefix as one recursive read showed it, dead holders already pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct View {
    /// The `.lock` value; a fresh one with our limit when the key is absent or empty.
    pub lock: LockValue,
    /// The `ModifyIndex` of `.lock` to compare-and-set against, 0 when it does not exist.
    pub modify_index: u64,
}

/// What an acquiring contender does after one read of the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// This session is already a holder.
    Held,
    /// Every slot is taken: block on the prefix until it changes.
    Wait,
    /// A slot is free: write `value` with `?cas=<cas>`.
    Take {
        /// The new `.lock` value, with this session among the holders.
        value: LockValue,
        /// The `ModifyIndex` the write must still find.
        cas: u64,
    },
}

impl Semaphore {
    /// `PREFIX/.lock`, the coordination key (the same name a lock uses, so the two collide loudly).
    pub fn lock_key(&self) -> String {
        lock_key(&self.prefix)
    }

    /// `PREFIX/<session>`, the session's contender key.
    pub fn contender_key(&self, session: &str) -> String {
        format!("{}/{session}", self.prefix)
    }

    /// Takes a slot, parking while all are held. Runs until it succeeds or fails; the caller bounds it.
    pub async fn acquire(&self, agent: &AgentHttp, session: &str) -> anyhow::Result<()> {
        let contender = format!(
            "{}?acquire={}&flags={SEMAPHORE_FLAG_VALUE}",
            kv_path(&self.contender_key(session)),
            segment(session)
        );
        let made = agent.send(Method::PUT, &contender, Some(Vec::new())).await?.json()?;
        if made.as_bool() != Some(true) {
            bail!("failed to make contender entry: the agent answered {made}");
        }
        let mut wait_index = 0;
        loop {
            let (entries, index) = self.list(agent, wait_index).await?;
            match next_step(self.view(&entries)?, session, self.limit)? {
                Step::Held => return Ok(()),
                Step::Wait => wait_index = index,
                Step::Take { value, cas } => {
                    if self.write_lock(agent, &value, cas).await? {
                        return Ok(());
                    }
                    // Another contender wrote `.lock` first; look again at once.
                    wait_index = 0;
                }
            }
        }
    }

    /// Returns once `session` is no longer among the (pruned) holders, or after `retries`
    /// consecutive agent errors, since then the slot can no longer be vouched for.
    pub async fn until_lost(&self, agent: &AgentHttp, session: &str, retries: u32) {
        monitor::until_lost(retries, |wait_index| async move {
            let (entries, index) = self.list(agent, wait_index).await?;
            // A `.lock` that no longer decodes is as good as lost, as in Go's `monitorLock`.
            let held = match self.view(&entries) {
                Ok(view) => view.lock.holders.contains_key(session),
                Err(err) => {
                    eprintln!("roster lock: reading the semaphore: {err:#}");
                    false
                }
            };
            Ok(held.then_some(index))
        })
        .await;
    }

    /// Gives up the slot and deletes the contender key, then deletes `.lock` if nobody holds
    /// it any more; best effort, since the session's end frees the slot in any case.
    pub async fn release(&self, agent: &AgentHttp, session: &str) {
        if let Err(err) = self.leave_holders(agent, session).await {
            eprintln!("roster lock: releasing the semaphore slot: {err:#}");
        }
        let contender = kv_path(&self.contender_key(session));
        if let Err(err) = agent.send(Method::DELETE, &contender, None).await {
            eprintln!("roster lock: deleting the contender key: {err:#}");
        }
        if let Err(err) = self.destroy_if_unused(agent).await {
            eprintln!("roster lock: cleaning up the semaphore: {err:#}");
        }
    }

    /// Removes `session` from `Holders`, retrying when another contender writes in between.
    async fn leave_holders(&self, agent: &AgentHttp, session: &str) -> anyhow::Result<()> {
        loop {
            let reply = agent.get(&kv_path(&self.lock_key()), 0).await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Ok(());
            }
            let entries = reply.json()?;
            let Some(entry) = entries.as_array().and_then(|entries| entries.first()) else { return Ok(()) };
            let mut lock = decode_lock(entry, self.limit)?;
            if lock.holders.remove(session).is_none() {
                return Ok(());
            }
            if self.write_lock(agent, &lock, modify_index(entry)).await? {
                return Ok(());
            }
        }
    }

    /// Consul's `Semaphore.Destroy`: deletes `.lock` when no live session holds a slot, so the
    /// next contenders may agree on a new limit. A key in use (or not a semaphore's) stays.
    async fn destroy_if_unused(&self, agent: &AgentHttp) -> anyhow::Result<()> {
        let (entries, _) = self.list(agent, 0).await?;
        let Ok(view) = self.view(&entries) else { return Ok(()) };
        if view.modify_index == 0 || !view.lock.holders.is_empty() {
            return Ok(());
        }
        let path = format!("{}?cas={}", kv_path(&self.lock_key()), view.modify_index);
        agent.send(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// One read of every key under the prefix (a blocking one past `wait_index` when it is set).
    async fn list(&self, agent: &AgentHttp, wait_index: u64) -> anyhow::Result<(Value, u64)> {
        let path = format!("{}?recurse", kv_path(&format!("{}/", self.prefix)));
        let reply = agent.get(&path, wait_index).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok((Value::Array(Vec::new()), reply.index));
        }
        Ok((reply.json()?, reply.index))
    }

    /// Compare-and-sets `.lock` to `value`; false when its `ModifyIndex` moved past `cas`.
    async fn write_lock(&self, agent: &AgentHttp, value: &LockValue, cas: u64) -> anyhow::Result<bool> {
        let path = format!("{}?cas={cas}&flags={SEMAPHORE_FLAG_VALUE}", kv_path(&self.lock_key()));
        let body = serde_json::to_vec(value).context("lock encoding failed")?;
        Ok(agent.send(Method::PUT, &path, Some(body)).await?.json()?.as_bool() == Some(true))
    }

    /// Reads `.lock` out of a recursive listing and prunes the holders that are gone.
    pub fn view(&self, entries: &Value) -> anyhow::Result<View> {
        let lock_key = self.lock_key();
        let entries = entries.as_array().map(Vec::as_slice).unwrap_or_default();
        let (mut lock, modify_index) = match entries.iter().find(|entry| entry["Key"] == lock_key.as_str()) {
            None => (LockValue::fresh(self.limit), 0),
            Some(entry) if entry["Flags"].as_u64() != Some(SEMAPHORE_FLAG_VALUE) => {
                bail!("Existing key does not match semaphore use")
            }
            Some(entry) => (decode_lock(entry, self.limit)?, modify_index(entry)),
        };
        prune_dead_holders(&mut lock, entries);
        Ok(View { lock, modify_index })
    }
}

impl LockValue {
    /// The value of a semaphore nobody has written yet.
    fn fresh(limit: u32) -> LockValue {
        LockValue { limit, holders: BTreeMap::new() }
    }
}

/// Decides the next move of an acquiring contender from a pruned view of the prefix.
pub(super) fn next_step(view: View, session: &str, limit: u32) -> anyhow::Result<Step> {
    let View { mut lock, modify_index } = view;
    if lock.limit != limit {
        bail!("semaphore limit conflict (lock: {}, local: {limit})", lock.limit);
    }
    if lock.holders.contains_key(session) {
        return Ok(Step::Held);
    }
    if lock.holders.len() >= lock.limit as usize {
        return Ok(Step::Wait);
    }
    lock.holders.insert(session.to_owned(), true);
    Ok(Step::Take { value: lock, cas: modify_index })
}

/// Drops every holder whose session holds no key under the prefix: its contender key went with
/// the session, so its slot is free whether or not it released it.
pub(super) fn prune_dead_holders(lock: &mut LockValue, entries: &[Value]) {
    let live: BTreeSet<&str> =
        entries.iter().filter_map(|entry| entry["Session"].as_str()).filter(|session| !session.is_empty()).collect();
    lock.holders.retain(|holder, _| live.contains(holder.as_str()));
}

/// Decodes the base64 JSON value of a `.lock` entry; an empty value is a fresh semaphore.
fn decode_lock(entry: &Value, limit: u32) -> anyhow::Result<LockValue> {
    let Some(encoded) = entry["Value"].as_str().filter(|encoded| !encoded.is_empty()) else {
        return Ok(LockValue::fresh(limit));
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).context("lock decoding failed")?;
    serde_json::from_slice(&bytes).context("lock decoding failed")
}

/// The entry's `ModifyIndex`, 0 when missing.
fn modify_index(entry: &Value) -> u64 {
    entry["ModifyIndex"].as_u64().unwrap_or(0)
}

/// Go encodes a nil map as `null`; read it as no holders.
fn null_as_empty<'de, D>(deserializer: D) -> Result<BTreeMap<String, bool>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::deserialize(deserializer)?.unwrap_or_default())
}
