//! `/v1/health/*`: a service's instances with their checks (`?passing`, `?tag`), a service's or node's checks, and checks by state.

use axum::extract::{Path, State};
use axum::http::Uri;
use roster_kv::{CheckStatus, Table, WatchKey};
use serde_json::Value;

use super::query::Query;
use super::reply::{ApiError, ApiResult, read_reply};
use super::{Api, output, read};

pub async fn service(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (tags, passing) = (q.all("tag"), q.flag("passing"));
    let (body, index, meta) = read(&api, &opts, vec![WatchKey::Service(name.clone())], move |s| {
        let (entries, index) = s.service_health(&name, &tags, passing);
        (Value::Array(entries.iter().map(output::health_entry).collect()), index)
    })
    .await?;
    Ok(read_reply(&body, index, meta))
}

pub async fn checks(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (body, index, meta) = read(&api, &opts, vec![WatchKey::Service(name.clone())], move |s| {
        let (checks, index) = s.service_checks(&name);
        (Value::Array(checks.into_iter().map(output::check).collect()), index)
    })
    .await?;
    Ok(read_reply(&body, index, meta))
}

pub async fn node(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (body, index, meta) = read(&api, &opts, vec![WatchKey::Node(name.clone())], move |s| {
        let (checks, index) = s.node_checks(&name);
        (Value::Array(checks.into_iter().map(output::check).collect()), index)
    })
    .await?;
    Ok(read_reply(&body, index, meta))
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
    let (body, index, meta) = read(&api, &opts, vec![WatchKey::Table(Table::Checks)], move |s| {
        let (checks, index) = s.checks_in_state(status);
        (Value::Array(checks.into_iter().map(output::check).collect()), index)
    })
    .await?;
    Ok(read_reply(&body, index, meta))
}

/// Connect and ingress views: roster has no service mesh, so every service has no such instances.
pub async fn empty(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let ((), index, meta) = read(&api, &opts, vec![], |s| ((), s.table(Table::Services))).await?;
    Ok(read_reply(&Value::Array(Vec::new()), index, meta))
}
