//! The runtime shim over HTTP: `PUT /v1/agent/job` (a job spec as JSON, or TOML with `Content-Type:
//! application/toml`), `GET /v1/agent/jobs`, `GET|DELETE /v1/agent/job/:name`, `GET /v1/agent/job/:name/logs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse as _;

use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok};
use super::{Api, caller};
use crate::jobs::{JobError, JobManager};

/// The most log lines one request returns.
const MAX_LOG_LINES: usize = 10_000;

/// Starts (or replaces) a job and answers with its status.
pub async fn submit(State(api): State<Api>, uri: Uri, headers: HeaderMap, body: Bytes) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let spec = super::cluster_jobs::read_spec(&headers, &body)?;
    // Placement and rollout are the servers' business; a job run by this agent alone would silently ignore them.
    if let Some(section) = [("placement", spec.placement.is_some()), ("update", spec.update.is_some())]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    {
        return Err(ApiError::bad_request(format!(
            "Invalid job: {section}: only cluster jobs are placed and rolled out (PUT /v1/jobs, roster job deploy)"
        )));
    }
    // Starting processes on this host is agent:write; registering their services is service:write on each.
    caller::agent_write(&api).await?;
    for service in spec.tasks.iter().flat_map(|task| &task.services) {
        caller::service_write(&api, &service.name).await?;
    }
    let status = manager(&api)?.submit(spec).await.map_err(job_error)?;
    Ok(Json(status).into_response())
}

pub async fn list(State(api): State<Api>) -> ApiResult {
    caller::agent_read(&api).await?;
    Ok(Json(manager(&api)?.list().await).into_response())
}

pub async fn status(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    caller::agent_read(&api).await?;
    Ok(Json(manager(&api)?.status(&name).await.map_err(job_error)?).into_response())
}

/// Deregisters the job's services, then stops and removes its tasks.
pub async fn stop(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    caller::agent_write(&api).await?;
    manager(&api)?.stop(&name).await.map_err(job_error)?;
    Ok(empty_ok())
}

/// `?task=T&lines=N` (default the first task, 100 lines).
pub async fn logs(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    caller::agent_read(&api).await?;
    let lines = match q.get("lines") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LOG_LINES).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("lines must be 1..={MAX_LOG_LINES}")))?,
        None => 100,
    };
    let lines = manager(&api)?.logs(&name, q.get("task"), lines).await.map_err(job_error)?;
    Ok(Json(lines).into_response())
}

fn manager(api: &Api) -> Result<&JobManager, ApiError> {
    api.jobs.as_ref().ok_or_else(|| ApiError::internal("this agent runs no job manager"))
}

fn job_error(error: JobError) -> ApiError {
    match error {
        JobError::Invalid(why) => ApiError::bad_request(why),
        JobError::NotFound(_) => ApiError::not_found(error.to_string()),
        JobError::Runtime(why) => ApiError::internal(why),
    }
}
