//! The one layer every API and web UI route runs through: it times the request for `/v1/agent/metrics`, refuses
//! parameters the endpoint does not take (`params.rs`), and finishes an admitted request's reply (the effective
//! consistency of a read, `?pretty`).
//!
//! It is a hand-written tower service rather than two `axum::middleware::from_fn` layers: each of those clones and
//! boxes the service inside it and boxes its future on every request, and a parked blocking query held both futures
//! for as long as it waited. Here the inner route is called in place (it was made ready by `poll_ready`) and the
//! request costs one boxed future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::AgentInfo;
use super::metrics::RouteTimers;
use super::params;

/// The future of a hand-written HTTP layer's reply (this one and `caller.rs`'s): one box per request.
pub(super) type Reply = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The layer, shared by every route it wraps.
#[derive(Clone)]
pub(super) struct ApiLayer {
    shared: Arc<Shared>,
}

struct Shared {
    info: Arc<AgentInfo>,
    timers: Arc<RouteTimers>,
    /// The web UI's content path, for the layer on the UI's routes.
    ui_path: Option<Arc<str>>,
}

impl ApiLayer {
    /// The layer for the API's routes.
    pub(super) fn api(info: Arc<AgentInfo>, timers: Arc<RouteTimers>) -> ApiLayer {
        ApiLayer { shared: Arc::new(Shared { info, timers, ui_path: None }) }
    }

    /// The layer for the web UI's routes under `ui_path`.
    pub(super) fn ui(info: Arc<AgentInfo>, timers: Arc<RouteTimers>, ui_path: Arc<str>) -> ApiLayer {
        ApiLayer { shared: Arc::new(Shared { info, timers, ui_path: Some(ui_path) }) }
    }
}

impl<S> Layer<S> for ApiLayer {
    type Service = ApiService<S>;

    fn layer(&self, inner: S) -> ApiService<S> {
        ApiService { inner, shared: self.shared.clone() }
    }
}

/// One route wrapped by [`ApiLayer`].
#[derive(Clone)]
pub(super) struct ApiService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for ApiService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Reply;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let start = Instant::now();
        let shared = &self.shared;
        // Set by the router for every matched route, which is all a route layer sees.
        let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
        let timer = shared.timers.timer(request.method(), route);
        let admitted = params::admit(
            &shared.info,
            route,
            shared.ui_path.as_deref(),
            request.method(),
            request.uri().query(),
            request.headers(),
        );
        let timers = shared.timers.clone();
        // A refused request never reaches the handler, but it is timed and counted like any other.
        let reply = admitted.map(|admitted| (admitted, self.inner.call(request)));
        Box::pin(async move {
            let response = match reply {
                Ok((admitted, handler)) => {
                    let Ok(response) = handler.await;
                    params::finish(admitted, response).await
                }
                Err(refused) => refused.into_response(),
            };
            timer.record(start.elapsed().as_secs_f64() * 1000.0);
            timers.responses(response.status()).increment(1);
            Ok(response)
        })
    }
}
