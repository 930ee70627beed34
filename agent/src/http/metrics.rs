//! `GET /v1/agent/metrics` (Consul's JSON summary of the last finished 10 s interval, or with `?format=prometheus`
//! the Prometheus text exposition), `/v1/agent/metrics/stream` (one summary per interval as it ends), and the layer
//! that times every request as Consul does: `consul.api.http` labelled with the method and the route's pattern
//! (`v1_kv_` for `/v1/kv/{*key}`, as Consul's mux prefix `/v1/kv/` reads), plus `roster.api.http.responses_total` by status.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
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

/// The metric handles the route layer (`layer.rs`) records into, timing each request under its route's pattern
/// (matched routes only, as Consul's mux does). They are, made on the first request of each route, method and status. The
/// `histogram!`/`counter!` macros build the labelled key and look it up in the recorder's registry (hashing, a
/// shard lock, a reference count) on every call; a route's label also had to be derived and interned per request.
#[derive(Default)]
pub struct RouteTimers {
    /// `consul.api.http` by route pattern, then by method label.
    by_route: RwLock<HashMap<String, Vec<(&'static str, metrics::Histogram)>>>,
    /// `roster.api.http.responses_total` by status code.
    by_status: RwLock<HashMap<StatusCode, metrics::Counter>>,
}

impl RouteTimers {
    pub(super) fn timer(&self, method: &axum::http::Method, route: &str) -> metrics::Histogram {
        let method = method_label(method);
        let known = self
            .by_route
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|timers| timers.iter().find(|(label, _)| *label == method).map(|(_, timer)| timer.clone()));
        if let Some(timer) = known {
            return timer;
        }
        let path = intern(&consul_path(route));
        let timer = metrics::histogram!("consul.api.http", "method" => method, "path" => path);
        let mut by_route = self.by_route.write().unwrap_or_else(PoisonError::into_inner);
        by_route.entry(route.to_owned()).or_default().push((method, timer.clone()));
        timer
    }

    pub(super) fn responses(&self, status: StatusCode) -> metrics::Counter {
        if let Some(counter) = self.by_status.read().unwrap_or_else(PoisonError::into_inner).get(&status) {
            return counter.clone();
        }
        let counter = metrics::counter!("roster.api.http.responses_total", "code" => intern(status.as_str()));
        self.by_status.write().unwrap_or_else(PoisonError::into_inner).insert(status, counter.clone());
        counter
    }
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
    use std::time::Duration;

    use axum::http::{Method, StatusCode};

    use super::{RouteTimers, consul_path};

    #[test]
    fn route_labels_are_consuls_mux_patterns() {
        assert_eq!(consul_path("/v1/kv/{*key}"), "v1_kv_");
        assert_eq!(consul_path("/v1/kv"), "v1_kv");
        assert_eq!(consul_path("/v1/agent/self"), "v1_agent_self");
        assert_eq!(consul_path("/v1/query/{id}/execute"), "v1_query_");
    }

    /// The value of the Prometheus line that starts with `name` and carries every label in `labels`.
    fn exposed(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
            .find_map(|line| line.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn cached_timers_record_under_the_route_method_and_status_labels() {
        let config = roster_metrics::Config { prometheus_retention: Duration::from_secs(60), ..Default::default() };
        let (metrics, recorder) = roster_metrics::Metrics::local(&config).expect("a recorder without sinks");
        metrics::with_local_recorder(&recorder, || {
            let timers = RouteTimers::default();
            // The second request of a route and method takes the handle the first one made.
            timers.timer(&Method::GET, "/v1/kv/{*key}").record(1.0);
            timers.timer(&Method::GET, "/v1/kv/{*key}").record(3.0);
            timers.timer(&Method::PUT, "/v1/kv/{*key}").record(2.0);
            timers.timer(&Method::GET, "/v1/health/service/{*name}").record(4.0);
            timers.responses(StatusCode::OK).increment(1);
            timers.responses(StatusCode::OK).increment(1);
            timers.responses(StatusCode::NOT_FOUND).increment(1);
        });
        let text = metrics.prometheus().expect("the exposition is on");
        let kv_get = ["method=\"GET\"", "path=\"v1_kv_\""];
        assert_eq!(exposed(&text, "consul_api_http_count", &kv_get), Some(2.0), "{text}");
        assert_eq!(exposed(&text, "consul_api_http_sum", &kv_get), Some(4.0), "{text}");
        let kv_put = ["method=\"PUT\"", "path=\"v1_kv_\""];
        assert_eq!(exposed(&text, "consul_api_http_count", &kv_put), Some(1.0), "{text}");
        let health = ["method=\"GET\"", "path=\"v1_health_service_\""];
        assert_eq!(exposed(&text, "consul_api_http_count", &health), Some(1.0), "{text}");
        assert_eq!(exposed(&text, "roster_api_http_responses_total", &["code=\"200\""]), Some(2.0), "{text}");
        assert_eq!(exposed(&text, "roster_api_http_responses_total", &["code=\"404\""]), Some(1.0), "{text}");
    }
}
