//! `GET /v1/agent/metrics` (Consul's JSON summary of the last finished 10 s interval, or with `?format=prometheus`
//! the Prometheus text exposition), `/v1/agent/metrics/stream` (one summary per interval as it ends), and the layer
//! that times every request as Consul does: `consul.api.http` labelled with the method and the route's pattern
//! (`v1_kv_` for `/v1/kv/{*key}`, as Consul's mux prefix `/v1/kv/` reads), plus `roster.api.http.responses_total` by status.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::query::Query;
use super::reply::{ApiError, ApiResult};
use super::{Api, caller};

/// Consul's interval, after which the stream sends the summary of the one that ended.
const INTERVAL: Duration = Duration::from_secs(10);

pub async fn metrics(State(api): State<Api>, uri: Uri, headers: HeaderMap) -> ApiResult {
    caller::agent_read(&api).await?;
    let q = Query::parse(uri.query());
    // Consul also answers in Prometheus's format to a scraper that offers OpenMetrics.
    let prometheus = match q.get("format") {
        None | Some("") => accepts_openmetrics(&headers),
        Some("prometheus") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unsupported metrics format {other:?}: leave format out for JSON, or use format=prometheus"
            )));
        }
    };
    let metrics = recorder(&api)?;
    if !prometheus {
        return Ok(axum::Json(metrics.summary()).into_response());
    }
    let Some(text) = metrics.prometheus() else {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "Prometheus is not enabled since its retention time is not positive".into(),
        });
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

pub async fn stream(State(api): State<Api>) -> ApiResult {
    caller::agent_read(&api).await?;
    let metrics = recorder(&api)?.clone();
    let draining = api.draining.clone();
    let summaries = futures_util::stream::unfold((metrics, draining), |(metrics, draining)| async move {
        tokio::select! {
            () = tokio::time::sleep(until_next_interval()) => {}
            () = draining.cancelled() => return None,
        }
        let mut line = serde_json::to_vec(&metrics.summary()).ok()?;
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), (metrics, draining)))
    });
    let mut response = Response::new(Body::from_stream(summaries));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Times one request under its route's pattern; runs for matched routes only, as Consul's mux does.
pub async fn layer(path: MatchedPath, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(request.method());
    let path = intern(&consul_path(path.as_str()));
    let response = next.run(request).await;
    let millis = start.elapsed().as_secs_f64() * 1000.0;
    metrics::histogram!("consul.api.http", "method" => method, "path" => path).record(millis);
    metrics::counter!("roster.api.http.responses_total", "code" => intern(response.status().as_str())).increment(1);
    response
}

fn recorder(api: &Api) -> Result<&roster_metrics::Metrics, ApiError> {
    api.metrics.as_ref().ok_or_else(|| ApiError::internal("this agent records no metrics"))
}

fn accepts_openmetrics(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")))
}

fn until_next_interval() -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let into = Duration::from_nanos(u64::try_from(now.as_nanos() % INTERVAL.as_nanos()).unwrap_or(0));
    // A moment past the boundary, so the interval that just ended is the one shown.
    INTERVAL - into + Duration::from_millis(50)
}

/// The label Consul gives a route: its mux pattern (the route up to its first parameter) without the leading
/// slash, slashes as underscores.
fn consul_path(route: &str) -> String {
    let pattern = route.split('{').next().unwrap_or(route);
    pattern.trim_start_matches('/').replace('/', "_")
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// Label values made once: routes and status codes are few, and a `&'static str` label costs nothing per request.
fn intern(value: &str) -> &'static str {
    static VALUES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(RwLock::default);
    if let Some(known) = VALUES.read().unwrap_or_else(PoisonError::into_inner).get(value) {
        return known;
    }
    let mut values = VALUES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = values.get(value) {
        return known;
    }
    let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
    values.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::consul_path;

    #[test]
    fn route_labels_are_consuls_mux_patterns() {
        assert_eq!(consul_path("/v1/kv/{*key}"), "v1_kv_");
        assert_eq!(consul_path("/v1/kv"), "v1_kv");
        assert_eq!(consul_path("/v1/agent/self"), "v1_agent_self");
        assert_eq!(consul_path("/v1/query/{id}/execute"), "v1_query_");
    }
}
