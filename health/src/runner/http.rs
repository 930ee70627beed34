//! The HTTP probe, and the shared HTTP clients that the gRPC and TLS H2 ping probes use too.
//!
//! Clients are shared by settings (certificate checking, redirects, HTTP/2 only), so 10 000 checks cost a handful of
//! clients, not 10 000 TLS configurations.
//! Like Consul (`DisableKeepAlives`), HTTP checks open a fresh connection per probe: a check should see what a new
//! client sees, and an agent probing thousands of services must not hold thousands of idle sockets.
//! `TLSServerName` needs its own client per probe because reqwest can only override a name through its resolver.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::runner::{OutputBuffer, error_chain, format_duration};
use crate::spec::CheckKind;
use crate::status::Status;

/// The settings that need a client of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    /// Accept any server certificate.
    pub(crate) tls_skip_verify: bool,
    /// Do not follow redirects.
    pub(crate) disable_redirects: bool,
    /// Speak only HTTP/2 (cleartext with prior knowledge, or TLS with ALPN h2): gRPC and H2 ping.
    pub(crate) http2_only: bool,
}

/// The clients built so far, by settings.
pub(crate) struct HttpClients {
    /// Built on first use; a client is cheap to clone (an `Arc` inside).
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl HttpClients {
    pub(crate) fn new() -> HttpClients {
        // reqwest is built without a default crypto provider; the agent installs ring at start, and this makes
        // health usable on its own (tests, the bench). A second install is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        HttpClients { clients: Mutex::new(HashMap::new()) }
    }

    /// The shared client for `key`.
    pub(crate) fn client(&self, key: ClientKey) -> Result<reqwest::Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = builder(key).build().map_err(|err| error_chain(&err))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Runs one HTTP check: 2xx passing, 429 warning, anything else critical.
    pub(crate) async fn probe(&self, kind: &CheckKind, timeout: Duration, max: usize) -> (Status, String) {
        let CheckKind::Http { url, method, headers, body, tls_server_name, tls_skip_verify, disable_redirects } = kind
        else {
            return (Status::Critical, "internal error: not an HTTP check".to_string());
        };
        let prefix = format!("HTTP {method} {url}");
        let key =
            ClientKey { tls_skip_verify: *tls_skip_verify, disable_redirects: *disable_redirects, http2_only: false };
        let request = async {
            let (client, target, host) = match tls_server_name {
                None => (self.client(key)?, url.clone(), None),
                Some(server_name) => with_server_name(key, url, server_name).await?,
            };
            let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|err| err.to_string())?;
            let mut request = client.request(method, &target).timeout(timeout);
            let mut has_accept = false;
            for (name, values) in headers {
                has_accept |= name.eq_ignore_ascii_case("accept");
                for value in values {
                    request = request.header(name.as_str(), value.as_str());
                }
            }
            if !has_accept {
                request = request.header("Accept", "text/plain, text/*, */*");
            }
            if let Some(host) = host.filter(|_| !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host"))) {
                request = request.header("Host", host);
            }
            if !body.is_empty() {
                request = request.body(body.clone());
            }
            let mut response = request.send().await.map_err(|err| error_chain(&err))?;
            let mut output = OutputBuffer::new(max);
            // A body that breaks off still leaves the status to report, as in Consul.
            while let Ok(Some(chunk)) = response.chunk().await {
                output.write(&chunk);
            }
            Ok::<_, String>((response.status(), output.text()))
        };
        match tokio::time::timeout(timeout, request).await {
            Err(_) => (Status::Critical, format!("{prefix}: timed out after {}", format_duration(timeout))),
            Ok(Err(err)) => (Status::Critical, format!("{prefix}: {err}")),
            Ok(Ok((code, output))) => {
                let status = match code.as_u16() {
                    200..=299 => Status::Passing,
                    429 => Status::Warning,
                    _ => Status::Critical,
                };
                let reason = code.canonical_reason().unwrap_or("");
                let line = format!("{} {reason}", code.as_u16());
                (status, format!("{prefix}: {} Output: {output}", line.trim_end()))
            }
        }
    }
}

pub(crate) fn builder(key: ClientKey) -> reqwest::ClientBuilder {
    let redirects =
        if key.disable_redirects { reqwest::redirect::Policy::none() } else { reqwest::redirect::Policy::limited(10) };
    let builder = reqwest::Client::builder()
        .user_agent("Consul Health Check")
        .redirect(redirects)
        .pool_max_idle_per_host(0)
        .tls_danger_accept_invalid_certs(key.tls_skip_verify);
    if key.http2_only { builder.http2_prior_knowledge() } else { builder }
}

/// A one-off client that sends `server_name` as SNI and verifies it, by resolving that name to the URL's address.
/// Returns the client, the rewritten URL and the original authority for the `Host` header.
async fn with_server_name(
    key: ClientKey,
    url: &str,
    server_name: &str,
) -> Result<(reqwest::Client, String, Option<String>), String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|err| format!("invalid URL: {err}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?.to_string();
    let port = parsed.port_or_known_default().ok_or("the URL has no port")?;
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let lookup_host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let addr = tokio::net::lookup_host((lookup_host.as_str(), port))
        .await
        .map_err(|err| format!("lookup {host}: {err}"))?
        .next()
        .ok_or_else(|| format!("lookup {host}: no addresses"))?;
    parsed.set_host(Some(server_name)).map_err(|err| format!("invalid TLSServerName: {err}"))?;
    let client = builder(key).resolve(server_name, addr).build().map_err(|err| error_chain(&err))?;
    Ok((client, parsed.to_string(), Some(authority)))
}
