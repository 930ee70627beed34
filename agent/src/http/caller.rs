//! Who is calling: the token a request carries, found once by a middleware and kept for the request's task, so that every
//! read and write a handler makes carries it to the server without any handler having to pass it along.
//!
//! Consul's order: `?token=` wins, then `X-Consul-Token`, then `Authorization: Bearer <token>`; a request with none acts
//! with the agent's default token, and without that as the anonymous token.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use percent_encoding::percent_decode_str;
use roster_acl::{AccessLevel, Authorizer, Resource};
use roster_server::Access;
use tower_layer::Layer;
use tower_service::Service;

use super::Api;
use super::reply::ApiError;

/// The caller of the request being served.
pub(crate) struct Caller {
    /// The secret to act with (after the default-token fallback); empty is the anonymous token.
    secret: String,
    /// Set when a read left something out for this caller.
    filtered: AtomicBool,
}

tokio::task_local! {
    static CALLER: Arc<Caller>;
}

/// Finds the request's token and serves the request with it as the caller; every response says which default policy
/// the agent enforces, as Consul's do. The router adds this layer only when ACLs are on: with them off every caller
/// may do everything, there is no token to find or carry, and outside a request's scope [`secret`] is anonymous.
#[derive(Clone)]
pub(crate) struct CallerLayer {
    acl: Arc<crate::acl::Acl>,
}

impl CallerLayer {
    pub(crate) fn new(acl: Arc<crate::acl::Acl>) -> CallerLayer {
        CallerLayer { acl }
    }
}

impl<S> Layer<S> for CallerLayer {
    type Service = CallerService<S>;

    fn layer(&self, inner: S) -> CallerService<S> {
        CallerService { inner, acl: self.acl.clone() }
    }
}

/// The router wrapped by [`CallerLayer`]: a hand-written tower service, like the route layer (`layer.rs`), so the
/// request costs one boxed future rather than a `from_fn` layer's boxed service clone and future.
#[derive(Clone)]
pub(crate) struct CallerService<S> {
    inner: S,
    acl: Arc<crate::acl::Acl>,
}

/// Made once: a header name given as a string is parsed on every insert.
const X_CONSUL_DEFAULT_ACL_POLICY: HeaderName = HeaderName::from_static("x-consul-default-acl-policy");

impl<S> Service<Request> for CallerService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = super::layer::Reply;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let sent = token_of(request.uri().query(), request.headers());
        let caller =
            Arc::new(Caller { secret: self.acl.caller_secret(sent.as_deref()), filtered: AtomicBool::new(false) });
        let policy = HeaderValue::from_static(self.acl.default_policy_name());
        // The inner layers run part of their work when called, before their future is first polled: that too sees
        // the caller.
        let handler = CALLER.sync_scope(caller.clone(), || self.inner.call(request));
        Box::pin(async move {
            let Ok(mut response) = CALLER.scope(caller, handler).await;
            response.headers_mut().insert(X_CONSUL_DEFAULT_ACL_POLICY, policy);
            Ok(response)
        })
    }
}

/// The token a request sent, in Consul's order of precedence.
fn token_of(query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    let from_query = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token" && !value.is_empty()).then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
    });
    if from_query.is_some() {
        return from_query;
    }
    if let Some(value) = headers.get("X-Consul-Token").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
        return Some(value.to_owned());
    }
    let authorization = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    rest.split_whitespace().next().map(str::to_owned)
}

/// The secret the current request acts with; anonymous outside a request.
pub(crate) fn secret() -> String {
    CALLER.try_with(|caller| caller.secret.clone()).unwrap_or_default()
}

/// Records that a read left something out for the current caller.
pub(crate) fn note_filtered() {
    let _ = CALLER.try_with(|caller| caller.filtered.store(true, Ordering::Relaxed));
}

/// Whether to send `X-Consul-Results-Filtered-By-ACLs: true`: something was left out for this caller, the anonymous
/// token included, so that an empty answer under `default_policy = "deny"` says why it is empty.
pub(crate) fn filtered() -> bool {
    CALLER.try_with(|caller| caller.filtered.load(Ordering::Relaxed)).unwrap_or(false)
}

/// What the current caller may do, for the endpoints the agent answers itself.
pub(crate) async fn access(api: &Api) -> Result<Access, ApiError> {
    Ok(api.acl.resolve(&api.backend, &secret()).await?)
}

/// Checks one permission of the current caller on an endpoint the agent answers itself; 403 with Consul's text when denied.
pub(crate) async fn require(
    api: &Api,
    resource: Resource,
    level: AccessLevel,
    name: Option<&str>,
    allowed: impl FnOnce(&Authorizer) -> bool,
) -> Result<Access, ApiError> {
    let access = access(api).await?;
    access.require(allowed(access.authorizer()), resource, level, name)?;
    Ok(access)
}

/// `agent:read` on this agent.
pub(crate) async fn agent_read(api: &Api) -> Result<Access, ApiError> {
    let node = api.info.node_name.as_str();
    require(api, Resource::Agent, AccessLevel::Read, Some(node), |a| a.agent_read(node)).await
}

/// `agent:write` on this agent.
pub(crate) async fn agent_write(api: &Api) -> Result<Access, ApiError> {
    let node = api.info.node_name.as_str();
    require(api, Resource::Agent, AccessLevel::Write, Some(node), |a| a.agent_write(node)).await
}

/// `service:write` on `name`.
pub(crate) async fn service_write(api: &Api, name: &str) -> Result<Access, ApiError> {
    require(api, Resource::Service, AccessLevel::Write, Some(name), |a| a.service_write(name)).await
}

/// `node:write` on `name`.
pub(crate) async fn node_write(api: &Api, name: &str) -> Result<Access, ApiError> {
    require(api, Resource::Node, AccessLevel::Write, Some(name), |a| a.node_write(name)).await
}

/// Keeps the items `visible` allows and records whether any was dropped, for the filtered header.
pub(crate) fn keep_visible<T>(items: &mut Vec<T>, visible: impl Fn(&T) -> bool) {
    let before = items.len();
    items.retain(|item| visible(item));
    if items.len() != before {
        note_filtered();
    }
}

#[cfg(test)]
mod tests;
