//! Sessions and KV locks in `State`: creating and destroying sessions, invalidating them when the catalog no longer backs them, and acquiring and releasing locks.
//!
//! # Invalidation
//! A session lives only while its node is registered and every check it names exists and is not critical.
//! Any apply that changes a node (its record, services or checks) re-examines the sessions on that node and destroys, in the same apply, those that no longer hold, so a lock can never outlive the health it was granted on.
//!
//! # Lock-delay
//! When a session is destroyed, each key it held may not be locked again for the session's `LockDelay`, giving the old holder time to notice it lost the lock (Consul's lock-delay).
//! Time is an input here: commands that need it carry the proposer's clock (`now_ms`).
//! A session invalidated by a catalog change has no clock to start the delay from, so its delay starts at the first later lock attempt on that key, which makes it at least as long as asked and keeps apply deterministic.

use super::State;
use crate::model::{CheckStatus, KvEntry, Session, SessionBehavior};
use crate::watch::{Changes, Table};

/// A key's lock-delay: when it started (unknown until a clock is seen) and how long it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockDelay {
    /// Unix milliseconds at which the delay began; `None` until a command carrying time looks at it.
    pub(crate) start_ms: Option<u64>,
    /// Its length in milliseconds.
    pub(crate) delay_ms: u64,
}

/// A lock attempt: the key, the value and flags to set, the session, and the proposer's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockRequest<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: &'a [u8],
    pub(crate) flags: u64,
    pub(crate) session: &'a str,
    pub(crate) now_ms: u64,
}

/// How a lock attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockOutcome {
    /// The session holds the lock now.
    Acquired,
    /// Another session holds it.
    Held,
    /// The key is inside the lock-delay of a session that held it.
    Delayed,
}

impl State {
    /// Checks a new session against the catalog, with Consul's texts.
    pub(super) fn validate_session(&self, session: &Session) -> Result<(), String> {
        if session.id.is_empty() {
            return Err("Missing session ID".into());
        }
        if self.sessions.contains_key(&session.id) {
            return Err(format!("Session ID '{}' already exists", session.id));
        }
        if session.node.is_empty() {
            return Err("Must provide Node".into());
        }
        if !self.nodes.contains_key(&session.node) {
            return Err("Missing node registration".into());
        }
        // The leader's timer reads the TTL with the same function; a TTL it could not read would never expire.
        crate::duration::session_ttl(&session.ttl)?;
        for check_id in session_check_ids(session) {
            match self.check(&session.node, check_id) {
                None => return Err(format!("Missing check '{check_id}' registration")),
                Some(check) if check.status == CheckStatus::Critical => {
                    return Err(format!("Check '{check_id}' is in critical state"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(super) fn session_create(&mut self, index: u64, input: &Session, changes: &mut Changes) {
        let mut session = input.clone();
        session.create_index = index;
        session.modify_index = index;
        self.sessions.insert(session.id.clone(), session);
        self.session_touched(index, changes);
    }

    /// Destroys a session and frees what it holds; false when there was no such session.
    pub(super) fn session_destroy(&mut self, index: u64, id: &str, now_ms: Option<u64>, changes: &mut Changes) -> bool {
        let Some(session) = self.sessions.remove(id) else { return false };
        let held: Vec<String> =
            self.kv.values().filter(|e| e.session.as_deref() == Some(id)).map(|e| e.key.clone()).collect();
        for key in &held {
            match session.behavior {
                SessionBehavior::Delete => self.kv_remove(index, key, changes),
                SessionBehavior::Release => {
                    if let Some(entry) = self.kv.get_mut(key) {
                        entry.session = None;
                        entry.modify_index = index;
                    }
                    self.kv_touched(index, key, changes);
                }
            }
            let delay_ms = session.lock_delay_ns / 1_000_000;
            if delay_ms > 0 {
                self.lock_delays.insert(key.clone(), LockDelay { start_ms: now_ms, delay_ms });
            }
        }
        self.prepared_queries_of_session_removed(index, id, changes);
        self.session_touched(index, changes);
        true
    }

    /// Destroys the sessions on the nodes `changes` touched that their node and checks no longer back.
    pub(super) fn invalidate_sessions(&mut self, index: u64, changes: &mut Changes) {
        if self.sessions.is_empty() || changes.nodes.is_empty() {
            return;
        }
        let dead: Vec<String> = self
            .sessions
            .values()
            .filter(|s| changes.nodes.contains(&s.node) && !self.session_backed(s))
            .map(|s| s.id.clone())
            .collect();
        for id in dead {
            self.session_destroy(index, &id, None, changes);
        }
    }

    /// Locks `key` for `session`, setting its value; `Err` (Consul's text) for an unknown session.
    pub(super) fn kv_lock(
        &mut self,
        index: u64,
        request: &LockRequest<'_>,
        changes: &mut Changes,
    ) -> Result<LockOutcome, String> {
        let LockRequest { key, value, flags, session, now_ms } = *request;
        if session.is_empty() {
            return Err("missing session".into());
        }
        if !self.sessions.contains_key(session) {
            return Err(format!("invalid session {session:?}"));
        }
        if self.lock_delayed(key, now_ms) {
            return Ok(LockOutcome::Delayed);
        }
        let holder = self.kv.get(key).and_then(|e| e.session.as_deref());
        if holder.is_some_and(|h| h != session) {
            return Ok(LockOutcome::Held);
        }
        // Re-acquiring a lock the session already holds updates the value without counting a new acquisition.
        let reacquire = holder == Some(session);
        self.kv_write(index, key, value, flags, changes);
        if let Some(entry) = self.kv.get_mut(key) {
            if !reacquire {
                entry.lock_index += 1;
            }
            entry.session = Some(session.to_owned());
        }
        Ok(LockOutcome::Acquired)
    }

    /// Releases `session`'s lock on `key`, setting its value; false when the session does not hold it.
    pub(super) fn kv_unlock(
        &mut self,
        index: u64,
        key: &str,
        value: &[u8],
        flags: u64,
        session: &str,
        changes: &mut Changes,
    ) -> bool {
        let holds = self.kv.get(key).is_some_and(|e| e.session.as_deref() == Some(session));
        if holds {
            self.kv_write(index, key, value, flags, changes);
            if let Some(entry) = self.kv.get_mut(key) {
                entry.session = None;
            }
        }
        holds
    }

    /// Whether `key` is inside a lock-delay at `now_ms`. Anchors a delay that had no start yet, and forgets one that has passed.
    fn lock_delayed(&mut self, key: &str, now_ms: u64) -> bool {
        let Some(delay) = self.lock_delays.get_mut(key) else { return false };
        let start = *delay.start_ms.get_or_insert(now_ms);
        if now_ms < start.saturating_add(delay.delay_ms) {
            return true;
        }
        self.lock_delays.remove(key);
        false
    }

    /// Whether the session's node and every check it names still back it.
    fn session_backed(&self, session: &Session) -> bool {
        self.nodes.contains_key(&session.node)
            && session_check_ids(session)
                .all(|id| self.check(&session.node, id).is_some_and(|c| c.status != CheckStatus::Critical))
    }

    fn session_touched(&mut self, index: u64, changes: &mut Changes) {
        self.table_index.insert(Table::Sessions, index);
        changes.tables.insert(Table::Sessions);
    }
}

/// Every check ID a session names: its node checks, then its service checks.
fn session_check_ids(session: &Session) -> impl Iterator<Item = &str> {
    session.node_checks.iter().map(String::as_str).chain(session.service_checks.iter().map(|c| c.id.as_str()))
}

/// A KV entry with its value left out, as transaction results of verbs other than get show it.
pub(super) fn without_value(entry: &KvEntry) -> KvEntry {
    KvEntry { value: Vec::new(), ..entry.clone() }
}
