//! Responses: API errors with Consul's status codes and plain-text messages, and read replies carrying `X-Consul-Index`, `X-Consul-KnownLeader` and `X-Consul-LastContact`.
//!
//! The Go client refuses a read without `X-Consul-LastContact` and py-consul one without `X-Consul-Index`, so every read path, 404s included, goes through `read_reply` or `read_not_found`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use roster_kv::Query;
use roster_server::{Consistency, ReadMeta};
use serde::Serialize;

/// An error answer: a status and the text Consul would send.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The plain-text body.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// 400 for a body that does not decode, worded as Consul words it.
    pub fn decode(why: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("Request decode failed: {why}"))
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, message: message.into() }
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }
}

impl From<roster_server::Error> for ApiError {
    fn from(err: roster_server::Error) -> ApiError {
        match err {
            roster_server::Error::Rejected(why) => ApiError::bad_request(why),
            roster_server::Error::PermissionDenied(why) => ApiError { status: StatusCode::FORBIDDEN, message: why },
            roster_server::Error::AclNotFound => ApiError::forbidden("ACL not found"),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut message = self.message;
        message.push('\n');
        (self.status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
    }
}

/// The result type of every handler.
pub type ApiResult = Result<Response, ApiError>;

/// `X-Consul-Index`. The read headers' names are made once: a name given as a string is parsed on every insert.
pub(crate) const X_CONSUL_INDEX: HeaderName = HeaderName::from_static("x-consul-index");
const X_CONSUL_KNOWN_LEADER: HeaderName = HeaderName::from_static("x-consul-knownleader");
const X_CONSUL_LAST_CONTACT: HeaderName = HeaderName::from_static("x-consul-lastcontact");
const X_CONSUL_RESULTS_FILTERED: HeaderName = HeaderName::from_static("x-consul-results-filtered-by-acls");

/// The room a JSON body starts with: a service's few instances fit without the buffer growing (and being copied)
/// several times on the way.
const BODY_CAPACITY: usize = 4096;

/// The three `X-Consul-*` headers of a read.
pub fn read_headers(index: u64, meta: ReadMeta) -> HeaderMap {
    let mut headers = HeaderMap::new();
    add_read_headers(&mut headers, index, meta);
    headers
}

/// Adds the read headers to `headers`.
fn add_read_headers(headers: &mut HeaderMap, index: u64, meta: ReadMeta) {
    headers.insert(X_CONSUL_INDEX, HeaderValue::from(index.max(1)));
    headers.insert(X_CONSUL_KNOWN_LEADER, HeaderValue::from_static(if meta.known_leader { "true" } else { "false" }));
    headers.insert(X_CONSUL_LAST_CONTACT, HeaderValue::from(meta.last_contact_ms));
    if super::caller::filtered() {
        headers.insert(X_CONSUL_RESULTS_FILTERED, HeaderValue::from_static("true"));
    }
}

/// A JSON read reply with its headers.
pub fn read_reply<T: Serialize>(body: &T, index: u64, meta: ReadMeta) -> Response {
    match to_json(body) {
        Ok(bytes) => json_read_reply(bytes, index, meta),
        Err(err) => ApiError::internal(format!("encoding the reply failed: {err}")).into_response(),
    }
}

/// `serde_json::to_vec` into a buffer that starts at `BODY_CAPACITY`.
pub fn to_json<T: Serialize + ?Sized>(body: &T) -> serde_json::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(BODY_CAPACITY);
    serde_json::to_writer(&mut bytes, body)?;
    Ok(bytes)
}

/// A 200 read reply of JSON already encoded, its headers written straight into the response rather than gathered
/// in a map of their own and copied over.
pub fn json_read_reply(json: impl Into<Body>, index: u64, meta: ReadMeta) -> Response {
    let mut response = Response::new(json.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    add_read_headers(headers, index, meta);
    response
}

/// A 404 read reply that still carries the headers clients need to keep blocking.
pub fn read_not_found(index: u64, meta: ReadMeta) -> Response {
    (StatusCode::NOT_FOUND, read_headers(index, meta)).into_response()
}

/// A write reply: a JSON `true`/`false` body.
pub fn bool_reply(value: bool) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], if value { "true" } else { "false" }).into_response()
}

/// A 200 with an empty body, as Consul's agent endpoints answer.
pub fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

/// Unknown paths.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("404 page not found: {}", uri.path()))
}

/// Known paths asked with the wrong method.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError { status: StatusCode::METHOD_NOT_ALLOWED, message: format!("method {method} not allowed") }
}

/// How long an answer the agent makes from its own view (its members, its self description, its services and checks)
/// waits for a server: for the index headers it carries, and for the leader `agent/self` names. Consul's agent
/// answers these without a server. Without this bound, a client agent whose servers went down retried them for the
/// RPC's 5 s hold, and one whose server stopped answering (a cut link, a stopped process: nothing closes) held the
/// answer for the call's 30 s timeout, `roster members` included. A server agent reads its own state and never waits.
pub(crate) const LOCAL_SERVER_WAIT: Duration = Duration::from_millis(250);

/// What `read` gives, unless it fails or takes longer than `LOCAL_SERVER_WAIT` (then `None`, logged at debug with
/// `what`): for answers the agent makes from its own view.
pub(crate) async fn within_local_wait<T>(
    what: &str,
    read: impl std::future::Future<Output = roster_server::Result<T>>,
) -> Option<T> {
    match tokio::time::timeout(LOCAL_SERVER_WAIT, read).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(err)) => {
            tracing::debug!("{what}: no server answered: {err}");
            None
        }
        Err(_) => {
            tracing::debug!("{what}: no server answered within {LOCAL_SERVER_WAIT:?}");
            None
        }
    }
}

/// The index headers of an answer made from the agent's own view: `query`'s index and read facts as a server gives
/// them within `LOCAL_SERVER_WAIT`; otherwise the highest index answers reading the same kind of index carried before
/// (1 at first) and no known leader. Kept per kind, as each kind's index only grows: the state's latest index for
/// `local_reply`, this node's services', this node's checks'. One shared value would let an agent's services
/// answer with the state's latest index while no server answers, and with their own, lower one once it does.
pub(crate) async fn local_index(api: &super::Api, query: &Query) -> (u64, ReadMeta) {
    let seen = &api.local_index[match query {
        Query::NodeServices { .. } => 1,
        Query::NodeChecks { .. } => 2,
        _ => 0,
    }];
    let read = api.backend.query(Consistency::Stale, 0, Duration::ZERO, query);
    match within_local_wait("the index of an agent answer", read).await {
        Some((_, index, meta)) => {
            seen.fetch_max(index, Ordering::Relaxed);
            (index, meta)
        }
        None => {
            let index = seen.load(Ordering::Relaxed).max(1);
            (index, ReadMeta { known_leader: false, last_contact_ms: 0, state_index: 0 })
        }
    }
}

/// A JSON reply for endpoints that read agent or cluster facts rather than the state (status, self, members): they
/// still carry the read headers, with the state's latest index (`local_index`), because clients parse them on every
/// read.
pub async fn local_reply<T: Serialize>(api: &super::Api, body: &T) -> ApiResult {
    let (index, meta) = local_index(api, &Query::MaxIndex).await;
    Ok(read_reply(body, index, meta))
}
