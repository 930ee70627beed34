//! `GET /v1/agent/monitor?loglevel=<level>&logjson`: the agent's log as it is written, streamed to the client.
//!
//! As in Consul: `agent:read` on this agent, `loglevel` defaults to `INFO` and must be one of Consul's levels (else
//! 400 `Unknown log level: <level>`), `logjson` (by presence) streams hclog's JSON lines. The client's level is its
//! own, independent of the agent's `log_level`. Each line goes out as its own chunk as it is logged; a client that
//! reads too slowly loses lines and is told how many (`crate::logging::Subscription`). The stream ends when the
//! client goes away or the agent starts draining.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::query::Query;
use super::reply::{ApiError, ApiResult};
use super::{Api, caller};

/// The handler.
pub async fn monitor(State(api): State<Api>, uri: Uri) -> ApiResult {
    caller::agent_read(&api).await?;
    let q = Query::parse(uri.query());
    let asked = q.get("loglevel").filter(|text| !text.is_empty()).unwrap_or("INFO");
    let Some(level) = crate::logging::parse_monitor_level(asked) else {
        return Err(ApiError::bad_request(format!("Unknown log level: {asked}")));
    };
    let subscription = crate::logging::monitors().subscribe(level, q.flag("logjson"));
    let draining = api.draining.clone();
    let lines = futures_util::stream::unfold((subscription, draining), |(mut subscription, draining)| async move {
        let line = tokio::select! {
            line = subscription.next() => line?,
            () = draining.cancelled() => return None,
        };
        Some((Ok::<Bytes, std::convert::Infallible>(Bytes::from(line)), (subscription, draining)))
    });
    let mut response: Response = (StatusCode::OK, Body::from_stream(lines)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}
