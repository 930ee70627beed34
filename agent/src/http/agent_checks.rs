//! `/v1/agent/check/*`, maintenance mode, and `/v1/agent/health/service/*`: the agent's own checks, registered, updated by TTL calls, and summed up per service.
//!
//! A TTL check's status changes here; other checks' statuses come from their runners. Either way the change reaches the catalog at once, so `health/service?passing` follows it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use roster_kv::{CheckStatus, HealthCheck, Service};
use serde_json::{Value, json};

use super::agent::local_error;
use super::input::{Obj, parse_object};
use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok};
use super::{Api, caller, definition, output};

pub async fn register(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let map = parse_object(&body).map_err(ApiError::decode)?;
    let o = Obj(&map);
    let mut check = definition::check(o, api.info.enable_script_checks).map_err(ApiError::bad_request)?;
    if check.name.is_empty() {
        return Err(ApiError::bad_request("Missing check name"));
    }
    if check.check_type.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid check: one of Args, HTTP, TCP, UDP, GRPC, TTL, DockerContainerID, AliasService, AliasNode or H2PING is required",
        ));
    }
    if check.check_id.is_empty() {
        check.check_id = check.name.clone();
    }
    may_write_check(&api, &check.service_id).await?;
    if let Some(existing) = api.local.check(&check.check_id).await {
        may_write_check(&api, &existing.service_id).await?;
    }
    api.local.add_check(check).await.map_err(local_error)?;
    api.runner.sync().await;
    Ok(empty_ok())
}

/// What writing a check needs: `service:write` on its service, or `node:write` on this node for a node check.
/// A check on a service this agent does not have is a 404, as in Consul.
async fn may_write_check(api: &Api, service_id: &str) -> Result<(), ApiError> {
    if service_id.is_empty() {
        caller::node_write(api, &api.info.node_name).await?;
        return Ok(());
    }
    let (services, _) = api.local.snapshot().await;
    match services.iter().find(|s| s.id == service_id) {
        Some(service) => caller::service_write(api, &service.service).await.map(|_| ()),
        None => Err(ApiError::not_found(format!("ServiceID {service_id:?} does not exist"))),
    }
}

/// An existing check the caller may write, or Consul's 404 for an unknown one.
async fn writable_check(api: &Api, id: &str) -> Result<HealthCheck, ApiError> {
    let Some(check) = api.local.check(id).await else {
        return Err(ApiError::not_found(format!(
            "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
        )));
    };
    may_write_check(api, &check.service_id).await?;
    Ok(check)
}

pub async fn deregister(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    writable_check(&api, &id).await?;
    api.local.remove_check(&id).await.map_err(local_error)?;
    api.runner.sync().await;
    Ok(empty_ok())
}

pub async fn pass(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    ttl(&api, &id, CheckStatus::Passing, note(&uri)).await
}

pub async fn warn(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    ttl(&api, &id, CheckStatus::Warning, note(&uri)).await
}

pub async fn fail(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    ttl(&api, &id, CheckStatus::Critical, note(&uri)).await
}

fn note(uri: &Uri) -> String {
    Query::parse(uri.query()).get("note").unwrap_or_default().to_owned()
}

/// The largest output a TTL update may carry (Consul's default check output limit).
const MAX_TTL_OUTPUT: usize = 4096;

pub async fn update(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let map = parse_object(&body).map_err(ApiError::decode)?;
    let o = Obj(&map);
    let status_text = o.str(&["Status"]).map_err(ApiError::decode)?;
    let status = CheckStatus::parse(&status_text)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid check status: {status_text:?}")))?;
    let output = o.str(&["Output"]).map_err(ApiError::decode)?;
    ttl(&api, &id, status, output).await
}

async fn ttl(api: &Api, id: &str, status: CheckStatus, mut output: String) -> ApiResult {
    let check = writable_check(api, id).await?;
    if check.check_type != "ttl" {
        return Err(ApiError::bad_request(format!("Check {id:?} is not a TTL check")));
    }
    if output.len() > MAX_TTL_OUTPUT {
        let mut cut = MAX_TTL_OUTPUT;
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        output.truncate(cut);
        output.push_str(" ... (captured 4096 of the output)");
    }
    // The runner restarts the TTL clock; the local write makes the new status visible before the 200.
    api.runner.ttl_update(id, status, &output);
    api.local.set_status(id, status, output).await.map_err(local_error)?;
    Ok(empty_ok())
}

pub async fn node_maintenance(State(api): State<Api>, uri: Uri) -> ApiResult {
    let (enable, reason) = maintenance_args(&uri)?;
    caller::node_write(&api, &api.info.node_name).await?;
    api.local.set_maintenance(None, enable, &reason).await.map_err(local_error)?;
    Ok(empty_ok())
}

pub async fn service_maintenance(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let (enable, reason) = maintenance_args(&uri)?;
    let (services, _) = api.local.snapshot().await;
    match services.iter().find(|s| s.id == id) {
        Some(service) => caller::service_write(&api, &service.service).await.map(|_| ())?,
        None => return Err(ApiError::not_found(format!("Unknown service ID {id:?}"))),
    }
    api.local.set_maintenance(Some(&id), enable, &reason).await.map_err(local_error)?;
    Ok(empty_ok())
}

fn maintenance_args(uri: &Uri) -> Result<(bool, String), ApiError> {
    let q = Query::parse(uri.query());
    let enable = match q.get("enable") {
        None => return Err(ApiError::bad_request("Missing value for enable")),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => return Err(ApiError::bad_request(format!("Invalid value for enable: {other:?}"))),
        },
    };
    Ok((enable, q.get("reason").unwrap_or_default().to_owned()))
}

/// One service instance on this agent with its checks (node checks included) and the worst of their statuses.
fn summary(service: &Service, checks: &[HealthCheck], datacenter: &str) -> (CheckStatus, Value) {
    let mine: Vec<&HealthCheck> =
        checks.iter().filter(|c| c.service_id.is_empty() || c.service_id == service.id).collect();
    let status = mine.iter().map(|c| c.status).max().unwrap_or(CheckStatus::Passing);
    let body = json!({
        "AggregatedStatus": status.as_str(),
        "Service": output::agent_service(service, datacenter),
        "Checks": mine.iter().map(|c| output::check(c)).collect::<Vec<_>>(),
    });
    (status, body)
}

/// 200 passing, 429 warning, 503 critical, as Consul's agent health endpoints answer.
fn health_code(status: CheckStatus) -> StatusCode {
    match status {
        CheckStatus::Passing => StatusCode::OK,
        CheckStatus::Warning => StatusCode::TOO_MANY_REQUESTS,
        CheckStatus::Critical => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn health_reply(status: CheckStatus, body: Value, as_text: bool) -> ApiResult {
    let code = health_code(status);
    if as_text {
        return Ok((code, [(header::CONTENT_TYPE, "text/plain")], status.as_str()).into_response());
    }
    Ok((code, axum::Json(body)).into_response())
}

pub async fn health_by_id(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let as_text = Query::parse(uri.query()).get("format") == Some("text");
    let (services, checks) = api.local.snapshot().await;
    let Some(service) = services.iter().find(|s| s.id == id) else {
        return Err(ApiError::not_found(format!("ServiceId {id} not found")));
    };
    service_read(&api, &service.service).await?;
    let (status, body) = summary(service, &checks, &api.info.datacenter);
    health_reply(status, body, as_text)
}

pub async fn health_by_name(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let as_text = Query::parse(uri.query()).get("format") == Some("text");
    service_read(&api, &name).await?;
    let (services, checks) = api.local.snapshot().await;
    let entries: Vec<(CheckStatus, Value)> =
        services.iter().filter(|s| s.service == name).map(|s| summary(s, &checks, &api.info.datacenter)).collect();
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("ServiceName {name} Not Found")));
    }
    let status = entries.iter().map(|(s, _)| *s).max().unwrap_or(CheckStatus::Passing);
    health_reply(status, Value::Array(entries.into_iter().map(|(_, b)| b).collect()), as_text)
}

async fn service_read(api: &Api, name: &str) -> Result<(), ApiError> {
    let (resource, level) = (roster_acl::Resource::Service, roster_acl::AccessLevel::Read);
    caller::require(api, resource, level, Some(name), |a| a.service_read(name)).await.map(|_| ())
}
