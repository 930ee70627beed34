//! The HTTP side of the long-running client commands (`watch`, `lock`): blocking reads that
//! report `X-Consul-Index`, and writes whose status the caller interprets.
//!
//! Unlike the one-shot subcommands, these requests may park on the agent for minutes, so the
//! client's timeout is the blocking wait plus the agent's jitter plus a margin.

use std::time::Duration;

use anyhow::Context;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};

use crate::cli::HttpArgs;
use crate::cli::{resolve_http_addr, resolve_token};
use crate::config::EnvSource;

/// How long one blocking query parks on the agent (Consul's default wait).
pub(in crate::cli) const BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// The agent adds up to wait/16 of jitter; anything past this margin is a dead connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300 + 60);

/// Characters escaped in a KV key: everything but unreserved characters and `/`, which keys keep.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
/// Characters escaped in one path segment or query value.
const SEGMENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// One agent answer: status, `X-Consul-Index` (0 when absent) and the body.
#[derive(Debug, Clone)]
pub(in crate::cli) struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `X-Consul-Index` header, 0 when the endpoint sends none.
    pub index: u64,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, or an error naming the status for any non-2xx answer.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        if !self.status.is_success() {
            anyhow::bail!(
                "Unexpected response code: {} ({})",
                self.status.as_u16(),
                String::from_utf8_lossy(&self.body).trim()
            );
        }
        serde_json::from_slice(&self.body).context("the agent's answer is not valid JSON")
    }
}

/// A client of one agent's HTTP API for blocking reads.
#[derive(Debug, Clone)]
pub(in crate::cli) struct AgentHttp {
    /// The shared connection pool.
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    base: String,
    /// Sent as `X-Consul-Token` when set.
    token: Option<String>,
}

impl AgentHttp {
    /// Resolves `-http-addr`/`-token` (and their environment variables) and builds the client.
    pub fn new(args: &HttpArgs, env: &dyn EnvSource) -> anyhow::Result<AgentHttp> {
        AgentHttp::with_timeout(args, env, REQUEST_TIMEOUT)
    }

    /// The same, for requests that never park: `timeout` bounds each whole request.
    pub fn with_timeout(args: &HttpArgs, env: &dyn EnvSource, timeout: Duration) -> anyhow::Result<AgentHttp> {
        AgentHttp::build(args, env, Some(timeout))
    }

    /// The same, for a response that streams for as long as the caller reads it (`monitor`): no overall timeout.
    pub fn streaming(args: &HttpArgs, env: &dyn EnvSource) -> anyhow::Result<AgentHttp> {
        AgentHttp::build(args, env, None)
    }

    fn build(args: &HttpArgs, env: &dyn EnvSource, timeout: Option<Duration>) -> anyhow::Result<AgentHttp> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(tls) = crate::cli::http_tls::client_tls(args, env)? {
            builder = builder.tls_backend_preconfigured(tls);
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(AgentHttp {
            http,
            base: resolve_http_addr(args.http_addr.as_deref(), env),
            token: resolve_token(args.token.as_deref(), args.token_file.as_deref(), env)?,
        })
    }

    /// GETs `path` and hands back the response as it arrives, for the caller to read chunk by chunk.
    pub async fn open(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        request.send().await.with_context(|| format!("cannot reach the roster agent at {}", self.base))
    }

    /// GETs `path` (which may carry a query); with `index` > 0 it is a blocking query.
    pub async fn get(&self, path: &str, index: u64) -> anyhow::Result<Reply> {
        let path = if index > 0 {
            let separator = if path.contains('?') { '&' } else { '?' };
            format!("{path}{separator}index={index}&wait={}s", BLOCKING_WAIT.as_secs())
        } else {
            path.to_owned()
        };
        self.send(Method::GET, &path, None).await
    }

    /// Sends a write; any status comes back, only transport failures are errors.
    pub async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Reply> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let unreachable = || format!("cannot reach the roster agent at {}", self.base);
        let response = request.send().await.with_context(unreachable)?;
        let status = response.status();
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let body = response.bytes().await.with_context(unreachable)?.to_vec();
        Ok(Reply { status, index, body })
    }

    /// POSTs `body` to an arbitrary URL (the `-http-handler` of a watch) with `X-Consul-Index`.
    pub async fn post_url(&self, url: &str, index: u64, body: Vec<u8>) -> anyhow::Result<StatusCode> {
        let response = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Consul-Index", index.to_string())
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the HTTP handler at {url}"))?;
        Ok(response.status())
    }
}

/// `/v1/kv/<key>` with the key percent-encoded but its `/` kept.
pub(in crate::cli) fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", utf8_percent_encode(key.trim_start_matches('/'), KEY_ESCAPES))
}

/// Percent-encodes one path segment or query value.
pub(in crate::cli) fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT_ESCAPES).to_string()
}
