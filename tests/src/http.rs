//! HTTP plumbing shared by the tests and the benchmark: one client setup and a fully read response type.

use std::sync::Once;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A response whose body has been read to the end, so assertions can look at everything at once.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The HTTP status code.
    pub status: u16,
    /// Every response header, for the `X-Consul-*` checks.
    pub headers: HeaderMap,
    /// The raw body bytes (`?raw` KV reads are compared byte for byte).
    pub body: Vec<u8>,
}

impl Resp {
    /// Reads a reqwest response to the end.
    pub async fn read(res: reqwest::Response) -> reqwest::Result<Resp> {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.bytes().await?.to_vec();
        Ok(Resp { status, headers, body })
    }

    /// The body as (lossy) UTF-8 text, for messages and plain-text endpoints.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body text when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): status {} body {:?}", self.status, self.text()))
    }

    /// One header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// `X-Consul-Index` as a number; panics when it is missing or not a number, because every read
    /// endpoint must send it (py-consul fails without it).
    pub fn index(&self) -> u64 {
        let raw = self
            .header("X-Consul-Index")
            .unwrap_or_else(|| panic!("no X-Consul-Index header: status {} headers {:?}", self.status, self.headers));
        raw.parse().unwrap_or_else(|err| panic!("X-Consul-Index {raw:?} is not a u64: {err}"))
    }

    /// Asserts the status code, showing the body on failure, and returns `self` for chaining.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Resp {
        assert_eq!(self.status, status, "unexpected status; body: {:?}", self.text());
        self
    }
}

/// A reqwest client for loopback use: no proxies (a developer's `HTTP_PROXY` must not capture
/// 127.0.0.1), keep-alive pooling, and a generous per-request timeout so a hung agent fails the test
/// instead of hanging it.
pub fn http_client(max_idle_per_host: usize) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(max_idle_per_host)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building a reqwest client with a crypto provider installed cannot fail")
}

/// Percent-encodes a query-string value: everything but RFC 3986's unreserved characters.
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Standard base64, the encoding of KV `Value` fields.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64; panics on bad input because a bad `Value` is a test failure.
pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|err| panic!("{text:?} is not standard base64: {err}"))
}

/// The workspace builds reqwest with `rustls-no-provider`, so a process must pick the provider
/// before the first client is built. Another crate in the process may have done it already, which
/// is fine: any installed provider serves plain-HTTP loopback traffic.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}
