//! Blocking-query loops that follow one agent endpoint and send every changed answer on a channel.
//!
//! Index handling follows Consul's watch package: resume from the answer's `X-Consul-Index`,
//! start over from 0 when the index goes backwards (a restored or re-elected server), skip
//! answers whose index did not move, and back off on errors (1 s doubling to 30 s, shorter than
//! `consul watch`'s because a load balancer should converge quickly once the agent is back).

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::sync::mpsc;

/// How long one blocking query parks on the agent.
const BLOCKING_WAIT: Duration = Duration::from_secs(60);
/// The client timeout: the wait plus the agent's jitter (up to wait/16) plus a margin.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60 + 30);
/// First retry after an error; doubles up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_secs(1);
/// The longest pause between retries.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Which endpoint an update came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `/v1/health/service/<name>?passing`.
    Health,
    /// `/v1/kv/<prefix>?recurse`.
    Kv,
}

/// One changed answer.
#[derive(Debug)]
pub struct Update {
    /// Its endpoint.
    pub feed: Feed,
    /// The JSON body (`null` for a 404, which an empty KV prefix gives).
    pub body: Value,
}

/// The agent's address and credentials.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The connection pool.
    pub http: reqwest::Client,
    /// `http://host:port`.
    pub base: String,
    /// `X-Consul-Token`, when set.
    pub token: Option<String>,
}

/// Follows `path` until the receiver is dropped.
pub async fn follow(agent: Agent, feed: Feed, path: String, updates: mpsc::Sender<Update>) {
    let mut last_index: Option<u64> = None;
    let mut failures = 0u32;
    loop {
        match fetch(&agent, &path, last_index.unwrap_or(0)).await {
            Ok((index, body)) => {
                failures = 0;
                if last_index == Some(index) {
                    continue;
                }
                last_index = Some(match last_index {
                    Some(previous) if previous > index => 0,
                    _ => index,
                });
                if updates.send(Update { feed, body }).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                last_index = None;
                let retry = RETRY_BASE.saturating_mul(1 << failures.min(5)).min(RETRY_MAX);
                failures += 1;
                eprintln!("roster-lb-helper: {path}: {err:#}; retrying in {retry:?}");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// One (blocking, when `index` > 0) GET: the index and the JSON body.
async fn fetch(agent: &Agent, path: &str, index: u64) -> anyhow::Result<(u64, Value)> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!("{}{path}{separator}index={index}&wait={}s", agent.base, BLOCKING_WAIT.as_secs());
    let mut request = agent.http.get(&url);
    if let Some(token) = &agent.token {
        request = request.header("X-Consul-Token", token);
    }
    let response = request.send().await.with_context(|| format!("cannot reach the agent at {}", agent.base))?;
    let status = response.status();
    let index = response
        .headers()
        .get("X-Consul-Index")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .context("the answer has no X-Consul-Index")?;
    let bytes = response.bytes().await.context("reading the answer")?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok((index, Value::Null));
    }
    anyhow::ensure!(status.is_success(), "HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim());
    Ok((index, serde_json::from_slice(&bytes).context("the answer is not JSON")?))
}
