//! The session behind a lock or semaphore slot: created with a TTL, renewed at half of it, destroyed at the end.
//!
//! The session, not the process, is what holds the key: if `roster lock` dies without cleaning
//! up, the TTL runs out and the agent releases the key, so another waiter can take over.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::watch;

use crate::cli::watch::agent_http::{AgentHttp, segment};

/// Consul's `DefaultLockSessionTTL`.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(15);

/// What the agent does with the session's keys when the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Behavior {
    /// Unlock them: a lock key outlives its holders.
    Release,
    /// Delete them: a semaphore's contender key exists only while its session lives.
    Delete,
}

/// Creates a session with the given end-of-life `behavior` and returns its ID.
pub(super) async fn create(
    agent: &AgentHttp,
    name: &str,
    behavior: Behavior,
    lock_delay: Duration,
) -> anyhow::Result<String> {
    let behavior = match behavior {
        Behavior::Release => "release",
        Behavior::Delete => "delete",
    };
    let body = json!({
        "Name": name,
        "TTL": format!("{}s", SESSION_TTL.as_secs()),
        "Behavior": behavior,
        "LockDelay": format!("{}ms", lock_delay.as_millis()),
    });
    let reply = agent.send(Method::PUT, "/v1/session/create", Some(serde_json::to_vec(&body)?)).await?;
    let created = reply.json().context("Error creating the lock session")?;
    match created["ID"].as_str() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => bail!("the agent created a session without an ID: {created}"),
    }
}

/// Renews the session every TTL/2 until it is gone, then reports it on `lost`.
///
/// A transport error is retried at the next tick: the TTL leaves room for one missed renewal,
/// and the lock monitor independently notices a lock that really went away.
pub(super) async fn keep_alive(agent: AgentHttp, id: String, lost: watch::Sender<bool>) {
    let path = format!("/v1/session/renew/{}", segment(&id));
    loop {
        tokio::time::sleep(SESSION_TTL / 2).await;
        match agent.send(Method::PUT, &path, None).await {
            Ok(reply) if reply.status == StatusCode::NOT_FOUND => {
                eprintln!("roster lock: session {id} expired or was destroyed");
                let _ = lost.send(true);
                return;
            }
            Ok(reply) if !reply.status.is_success() => {
                eprintln!("roster lock: renewing session {id}: HTTP {}", reply.status);
            }
            Ok(_) => {}
            Err(err) => eprintln!("roster lock: renewing session {id}: {err:#}"),
        }
    }
}

/// Destroys the session; best effort, since a lost session may already be gone.
pub(super) async fn destroy(agent: &AgentHttp, id: &str) {
    let path = format!("/v1/session/destroy/{}", segment(id));
    if let Err(err) = agent.send(Method::PUT, &path, None).await {
        eprintln!("roster lock: destroying session {id}: {err:#}");
    }
}
