//! `/v1/health/*`: a service's instances with their checks (`?passing`, `?tag`), a service's or node's checks, and checks by state.

use axum::extract::{Path, State};
use axum::http::Uri;
use roster_kv::{Answer, CheckStatus, Query as StateQuery, Table};
use serde_json::Value;

use super::filter::{keep, schema};
use super::query::{Query, ReadOpts};
use super::reply::{ApiError, ApiResult, read_reply};
use super::{Api, cache, encoded, output, read, unexpected};

pub async fn service(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let filter = q.filter(&schema::HEALTH_ENTRY)?;
    super::central_config::refuse_blocking_merge(&q)?;
    let query = q.with_node_meta(StateQuery::ServiceHealth { name, tags: q.all("tag"), passing: q.flag("passing") });
    let slot = encoded::Slot::new(&api, uri.path(), uri.query(), &q, &opts);
    let compute = std::pin::pin!(async {
        let (answer, index, meta, cached) = cache::read(&api, &opts, &q, &query).await?;
        if let Some(reply) = slot.reuse(&api, index, meta) {
            return Ok(reply);
        }
        let Answer::Health(mut entries) = answer else { return Err(unexpected()) };
        let near = super::coordinate::near_node(&api, &q);
        super::coordinate::sort_near(&api, &opts, near, &mut entries, |e| &e.node.node).await?;
        super::central_config::merge_central_config(&api, &q, entries.iter_mut().map(|e| &mut e.service).collect())
            .await?;
        if filter.is_none() {
            // The read every watcher makes: written straight from the records, no JSON tree in between.
            let body: Vec<output::HealthEntryOut> = entries.iter().map(output::HealthEntryOut::from).collect();
            return Ok(cached.mark(read_reply(&body, index, meta)));
        }
        let body: Vec<Value> =
            entries.iter().map(output::health_entry).filter(|entry| keep(filter.as_ref(), entry)).collect();
        Ok(cached.mark(read_reply(&Value::Array(body), index, meta)))
    });
    encoded::read(&api, &slot, &opts, compute).await
}

pub async fn checks(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    checks_reply(&api, &opts, &q, &q.with_node_meta(StateQuery::ServiceChecks { name })).await
}

pub async fn node(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    checks_reply(&api, &opts, &q, &StateQuery::NodeChecks { name }).await
}

pub async fn state(State(api): State<Api>, Path(state): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let status = match state.as_str() {
        "any" => None,
        other => Some(CheckStatus::parse(other).ok_or_else(|| {
            ApiError::bad_request(format!("Invalid check state {other:?}: use any, passing, warning or critical"))
        })?),
    };
    checks_reply(&api, &opts, &q, &q.with_node_meta(StateQuery::ChecksInState { state: status })).await
}

/// A read of a list of checks, as the checks endpoints answer it.
async fn checks_reply(api: &Api, opts: &ReadOpts, q: &Query, query: &StateQuery) -> ApiResult {
    let filter = q.filter(&schema::CHECK)?;
    let (answer, index, meta) = read(api, opts, query).await?;
    let Answer::Checks(mut checks) = answer else { return Err(unexpected()) };
    super::coordinate::sort_near(api, opts, super::coordinate::near_node(api, q), &mut checks, |c| &c.node).await?;
    let body: Vec<Value> = checks.iter().map(output::check).filter(|check| keep(filter.as_ref(), check)).collect();
    Ok(read_reply(&Value::Array(body), index, meta))
}

/// Connect and ingress views: roster has no service mesh, so every service has no such instances.
pub async fn empty(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (_, index, meta) = read(&api, &opts, &StateQuery::TableIndex(Table::Services)).await?;
    Ok(read_reply(&Value::Array(Vec::new()), index, meta))
}
