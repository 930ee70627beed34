//! Cluster jobs over HTTP (issue 18): `GET`/`PUT /v1/jobs` (list, submit), `GET`/`DELETE /v1/job/:name` (a job with
//! its allocations, undeploy), `GET /v1/job/:name/versions`, `PUT /v1/job/:name/revert?version=N`,
//! `GET /v1/node/:node/allocations` and `GET /v1/hosts`. Roster's own API (Consul has no jobs): the JSON uses Consul's
//! PascalCase style, reads block on `?index` like every other read, and the serving server checks the ACLs
//! (`operator:write` plus `service:write` on each service to deploy, `operator:read` to read).
//!
//! A submitted spec is read by the runtime shim's parser (JSON, or TOML with `Content-Type: application/toml`), so a
//! problem is a 400 naming its field path before anything is proposed; the canonical JSON it writes back is what the
//! servers store and what nodes run.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use roster_kv::{
    Allocation, Answer, ClientStatus, Command, CommandResult, Desired, Job, JobVersion, Query as StateQuery, Rollout,
};
use roster_runtime_shim::JobSpec;
use serde_json::{Value, json};

use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok, read_reply};
use super::{Api, read, unexpected, write};

/// `PUT /v1/jobs`: submits a job; answers its name and the version that now runs.
pub async fn submit(State(api): State<Api>, uri: Uri, headers: HeaderMap, body: Bytes) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let spec = read_spec(&headers, &body)?;
    let canonical = serde_json::to_string(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let value: Value = serde_json::from_str(&canonical).map_err(|e| ApiError::internal(e.to_string()))?;
    roster_kv::JobShape::from_spec(&value)
        .map_err(|problems| ApiError::bad_request(format!("Invalid job: {}", roster_scheduler::describe(&problems))))?;
    let now_ms = now_ms();
    match write(&api, Command::JobSubmit { spec: canonical, now_ms }).await? {
        CommandResult::Bool(_) => {}
        CommandResult::Rejected(why) => return Err(ApiError::bad_request(format!("Invalid job: {why}"))),
    }
    let q = Query::parse(Some("consistent"));
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Job { name: spec.name.clone() }).await?;
    let Answer::Job(Some(detail)) = answer else { return Err(unexpected()) };
    Ok(read_reply(&json!({"Name": spec.name, "Version": detail.job.version}), index, meta))
}

/// `GET /v1/jobs`: every job with its status, by name.
pub async fn list(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Jobs).await?;
    let Answer::Jobs(jobs) = answer else { return Err(unexpected()) };
    let body: Vec<Value> = jobs.iter().map(|job| job_json(job, false)).collect();
    Ok(read_reply(&body, index, meta))
}

/// `GET /v1/job/:name`: the job, its current spec and its allocations; 404 for an unknown job.
pub async fn get(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Job { name: name.clone() }).await?;
    let Answer::Job(detail) = answer else { return Err(unexpected()) };
    let Some(detail) = detail else { return Err(ApiError::not_found(format!("job not found: {name}"))) };
    let mut body = job_json(&detail.job, true);
    body["Allocations"] = Value::Array(detail.allocations.iter().map(alloc_json).collect());
    Ok(read_reply(&body, index, meta))
}

/// `GET /v1/job/:name/versions`: the kept versions, newest first.
pub async fn versions(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Job { name: name.clone() }).await?;
    let Answer::Job(detail) = answer else { return Err(unexpected()) };
    let Some(detail) = detail else { return Err(ApiError::not_found(format!("job not found: {name}"))) };
    let body: Vec<Value> = detail.job.versions.iter().rev().map(|v| version_json(&detail.job, v)).collect();
    Ok(read_reply(&body, index, meta))
}

/// `DELETE /v1/job/:name`: undeploys (every allocation stops); `?purge` removes the job and its history too.
pub async fn stop(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let purge = q.flag("purge");
    match write(&api, Command::JobStop { name: name.clone(), purge }).await? {
        CommandResult::Bool(true) => Ok(empty_ok()),
        CommandResult::Bool(false) => Err(ApiError::not_found(format!("job not found: {name}"))),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}

/// `PUT /v1/job/:name/revert?version=N`: the kept version N becomes the newest version (a copy, rolled out as a new
/// one).
pub async fn revert(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let version = q.u64("version")?.ok_or_else(|| ApiError::bad_request("Missing ?version"))?;
    match write(&api, Command::JobRevert { name: name.clone(), version, now_ms: now_ms() }).await? {
        CommandResult::Bool(_) => Ok(empty_ok()),
        CommandResult::Rejected(why) if why.starts_with("no job named") => Err(ApiError::not_found(why)),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}

/// `GET /v1/node/:node/allocations`: what is allocated to a node (what its agent runs), by job.
pub async fn node_allocations(State(api): State<Api>, Path(node): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::NodeAllocations { node }).await?;
    let Answer::NodeAllocations(allocations) = answer else { return Err(unexpected()) };
    let body: Vec<Value> = allocations.iter().map(|a| alloc_json(&a.allocation)).collect();
    Ok(read_reply(&body, index, meta))
}

/// `GET /v1/hosts`: the nodes whose agents can run jobs, with their drivers, node meta and running allocations.
pub async fn hosts(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Hosts).await?;
    let Answer::Hosts(hosts) = answer else { return Err(unexpected()) };
    let plain = Query::parse(None).read_opts(&api)?;
    let (Answer::Nodes(nodes), ..) = read(&api, &plain, &StateQuery::Nodes).await? else { return Err(unexpected()) };
    let (Answer::Allocations(allocs), ..) = read(&api, &plain, &StateQuery::Allocations).await? else {
        return Err(unexpected());
    };
    let node_meta: BTreeMap<&str, &BTreeMap<String, String>> =
        nodes.iter().map(|n| (n.node.as_str(), &n.meta)).collect();
    let body: Vec<Value> = hosts
        .iter()
        .map(|host| {
            let running: BTreeSet<&str> = (allocs.iter())
                .filter(|a| a.node == host.node && a.desired == Desired::Run)
                .map(|a| a.id.as_str())
                .collect();
            json!({
                "Node": host.node,
                "Drivers": host.drivers,
                "Meta": node_meta.get(host.node.as_str()).copied().cloned().unwrap_or_default(),
                "Allocations": running,
                "ModifyIndex": host.modify_index,
            })
        })
        .collect();
    Ok(read_reply(&body, index, meta))
}

/// A job spec from a request body: JSON, or TOML with `Content-Type: application/toml`; a 400 names every field at
/// fault. Shared with the single-agent `PUT /v1/agent/job`.
pub(super) fn read_spec(headers: &HeaderMap, body: &[u8]) -> Result<JobSpec, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("Request body is not UTF-8"))?;
    let is_toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/toml"));
    let spec = if is_toml { JobSpec::from_toml(text) } else { JobSpec::from_json(text) };
    spec.map_err(|error| ApiError::bad_request(format!("Invalid job: {error}")))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A job's status in one word: `stopped`, `pending` (something could not be placed), `failed` (its newest version's
/// rollout failed), `running`.
fn status(job: &Job) -> &'static str {
    if job.stopped {
        "stopped"
    } else if !job.pending.is_empty() {
        "pending"
    } else if job.current().is_some_and(|v| matches!(v.rollout, Rollout::Failed(_))) {
        "failed"
    } else {
        "running"
    }
}

fn job_json(job: &Job, with_spec: bool) -> Value {
    let current = job.current();
    let mut body = json!({
        "Name": job.name,
        "Version": job.version,
        "Status": status(job),
        "Stopped": job.stopped,
        "Pending": job.pending,
        "Rollout": current.map(|v| rollout_name(&v.rollout)),
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
    });
    if with_spec {
        body["Spec"] = current.and_then(|v| serde_json::from_str(&v.spec).ok()).unwrap_or(Value::Null);
    }
    body
}

fn version_json(job: &Job, version: &JobVersion) -> Value {
    json!({
        "Version": version.version,
        "Current": version.version == job.version,
        "SubmitTime": version.submitted_ms,
        "RevertedFrom": version.reverted_from,
        "Rollout": rollout_name(&version.rollout),
        "RolloutMessage": match &version.rollout { Rollout::Failed(why) => why.as_str(), _ => "" },
        "Spec": serde_json::from_str::<Value>(&version.spec).unwrap_or(Value::Null),
    })
}

fn rollout_name(rollout: &Rollout) -> &'static str {
    match rollout {
        Rollout::InProgress => "in-progress",
        Rollout::Healthy => "healthy",
        Rollout::Failed(_) => "failed",
    }
}

fn alloc_json(alloc: &Allocation) -> Value {
    let tasks: Vec<Value> = (alloc.tasks.iter())
        .map(|t| json!({"Name": t.name, "State": t.state, "Restarts": t.restarts, "Failed": t.failed}))
        .collect();
    json!({
        "ID": alloc.id,
        "Job": alloc.job,
        "Version": alloc.version,
        "Index": alloc.index,
        "Node": alloc.node,
        "DesiredStatus": match alloc.desired { Desired::Run => "run", Desired::Stop => "stop" },
        "DesiredReason": alloc.desired_reason,
        "ClientStatus": match alloc.status {
            ClientStatus::Pending => "pending",
            ClientStatus::Running => "running",
            ClientStatus::Complete => "complete",
            ClientStatus::Failed => "failed",
        },
        "Tasks": tasks,
        "Healthy": alloc.healthy,
        "HealthySince": (alloc.healthy_since_ms > 0).then_some(alloc.healthy_since_ms),
        "Message": alloc.message,
        "CreateTime": alloc.created_ms,
        "CreateIndex": alloc.create_index,
        "ModifyIndex": alloc.modify_index,
    })
}
