//! `/v1/config`: Consul's config entries, `service-defaults` and `proxy-defaults` (`PUT /v1/config` with `?cas`,
//! `GET /v1/config/:kind`, `GET`/`DELETE /v1/config/:kind/:name` with `?cas`).
//!
//! The body is read and validated by `roster_kv::ConfigEntry::from_json` (which `apply` runs again), so a bad kind or
//! field is a 400 naming it before anything is proposed; the serving server checks Consul's per-kind ACLs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use roster_kv::{Answer, Command, CommandResult, ConfigEntry, Query as StateQuery, check_kind};
use serde_json::Value;

use super::query::Query;
use super::reply::{ApiError, ApiResult, bool_reply, read_headers, read_reply};
use super::{Api, read, unexpected, write};

/// `PUT /v1/config`: `true` when stored, `false` when `?cas` did not hold.
pub async fn apply(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let cas = q.u64("cas")?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("Request decoding failed: {e}")))?;
    let entry =
        ConfigEntry::from_json(&value).map_err(|e| ApiError::bad_request(format!("Request decoding failed: {e}")))?;
    match write(&api, Command::ConfigEntrySet { entry: Box::new(entry), cas }).await? {
        CommandResult::Bool(done) => Ok(bool_reply(done)),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}

/// `GET /v1/config/:kind`: the entries of a kind the caller may read, by name.
pub async fn list(State(api): State<Api>, Path(kind): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    check_kind(&kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::ConfigEntries { kind }).await?;
    let Answer::ConfigEntries(entries) = answer else { return Err(unexpected()) };
    let body: Vec<Value> = entries.iter().map(ConfigEntry::to_json).collect();
    Ok(read_reply(&body, index, meta))
}

/// `GET /v1/config/:kind/:name`: 404 with Consul's text when there is none.
pub async fn get(State(api): State<Api>, Path((kind, name)): Path<(String, String)>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    check_kind(&kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let opts = q.read_opts(&api)?;
    let query = StateQuery::ConfigEntry { kind: kind.clone(), name: name.clone() };
    let (answer, index, meta) = read(&api, &opts, &query).await?;
    let Answer::ConfigEntries(entries) = answer else { return Err(unexpected()) };
    match entries.first() {
        Some(entry) => Ok(read_reply(&entry.to_json(), index, meta)),
        None => {
            let mut headers = read_headers(index, meta);
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            let text = format!("Config entry not found for {kind:?} / {name:?}\n");
            Ok((StatusCode::NOT_FOUND, headers, text).into_response())
        }
    }
}

/// `DELETE /v1/config/:kind/:name`: `{}`, or with `?cas` whether it was deleted, as Consul answers.
pub async fn delete(State(api): State<Api>, Path((kind, name)): Path<(String, String)>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let cas = q.u64("cas")?;
    check_kind(&kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let name = roster_kv::normalize_name(&kind, &name).map_err(ApiError::bad_request)?;
    match write(&api, Command::ConfigEntryDelete { kind, name, cas }).await? {
        CommandResult::Bool(done) if cas.is_some() => Ok(bool_reply(done)),
        CommandResult::Bool(_) => Ok(([(header::CONTENT_TYPE, "application/json")], "{}").into_response()),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}
