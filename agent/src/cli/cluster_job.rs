//! `roster job deploy|undeploy|history|revert`, the cluster side of `roster job status`, and `roster hosts`: cluster
//! jobs (issue 18) through the agent's `/v1/jobs`, `/v1/job/...` and `/v1/hosts`, printed in Consul's aligned columns.
//!
//! `roster job status NAME` shows the cluster job of that name; when there is none (404) it falls back to the job this
//! agent runs alone (`roster run`), so the single-agent flow keeps working unchanged.

use anyhow::{Context as _, bail};
use clap::Args;
use reqwest::Method;
use roster_runtime_shim::JobSpec;
use serde_json::Value;

use super::HttpArgs;
use super::client::{AgentClient, print_stdout, segment};
use super::output::columnize;
use crate::config::EnvSource;

/// `roster hosts`.
#[derive(Debug, Clone, Args)]
pub struct HostsArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Reads the spec here (errors name the file's fields), places it on `nodes` when given, and submits it.
pub(super) async fn deploy(
    http: &HttpArgs,
    file: &std::path::Path,
    nodes: &[String],
    env: &dyn EnvSource,
) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let is_toml = file.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
    let spec = if is_toml { JobSpec::from_toml(&text) } else { JobSpec::from_json(&text) };
    let mut spec = spec.map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
    if !nodes.is_empty() {
        spec.placement.get_or_insert_with(Default::default).nodes = nodes.to_vec();
    }
    let agent = AgentClient::new(http, env)?;
    let (status, body) = agent.send(Method::PUT, "/v1/jobs", Some(serde_json::to_vec(&spec)?)).await?;
    if !status.is_success() {
        bail!("Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(&body).trim());
    }
    let answer: Value = serde_json::from_slice(&body).context("the agent's answer is not JSON")?;
    print_stdout(format!("Deployed job {:?} version {}\n", spec.name, answer["Version"]).as_bytes())
}

pub(super) async fn undeploy(http: &HttpArgs, name: &str, purge: bool, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(http, env)?;
    let path = format!("/v1/job/{}{}", segment(name), if purge { "?purge" } else { "" });
    agent.expect_ok(Method::DELETE, &path, None).await?;
    print_stdout(format!("Undeployed job {name:?}\n").as_bytes())
}

pub(super) async fn revert(http: &HttpArgs, name: &str, version: u64, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(http, env)?;
    agent.expect_ok(Method::PUT, &format!("/v1/job/{}/revert?version={version}", segment(name)), None).await?;
    print_stdout(format!("Reverted job {name:?} to version {version}\n").as_bytes())
}

pub(super) async fn history(http: &HttpArgs, name: &str, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(http, env)?;
    let versions = agent.get_json(&format!("/v1/job/{}/versions", segment(name))).await?;
    let mut rows = vec![cells(&["Version", "Current", "Rollout", "Reverted From", "Submitted"])];
    for v in versions.as_array().into_iter().flatten() {
        rows.push(vec![
            v["Version"].to_string(),
            v["Current"].to_string(),
            text(&v["Rollout"]),
            if v["RevertedFrom"].is_null() { "-".into() } else { v["RevertedFrom"].to_string() },
            time(&v["SubmitTime"]),
        ]);
    }
    print_stdout(columnize(&rows).as_bytes())
}

/// The cluster job `name`, or `None` when there is no such cluster job.
pub(super) async fn status(http: &HttpArgs, name: &str, env: &dyn EnvSource) -> anyhow::Result<Option<String>> {
    let agent = AgentClient::new(http, env)?;
    let (code, body) = agent.send(Method::GET, &format!("/v1/job/{}", segment(name)), None).await?;
    if code.as_u16() == 404 {
        return Ok(None);
    }
    if !code.is_success() {
        bail!("Unexpected response code: {} ({})", code.as_u16(), String::from_utf8_lossy(&body).trim());
    }
    let job: Value = serde_json::from_slice(&body).context("the agent's answer is not JSON")?;
    Ok(Some(status_text(&job)))
}

fn status_text(job: &Value) -> String {
    let mut out = columnize(&[
        vec!["Name".into(), text(&job["Name"])],
        vec!["Version".into(), job["Version"].to_string()],
        vec!["Status".into(), text(&job["Status"])],
        vec!["Rollout".into(), text(&job["Rollout"])],
    ]);
    for reason in job["Pending"].as_array().into_iter().flatten() {
        out.push_str(&format!("Pending: {}\n", text(reason)));
    }
    out.push('\n');
    let mut rows = vec![cells(&["ID", "Node", "Version", "Desired", "Status", "Healthy", "Restarts", "Tasks"])];
    for alloc in job["Allocations"].as_array().into_iter().flatten() {
        let tasks = alloc["Tasks"].as_array().cloned().unwrap_or_default();
        let restarts: u64 = tasks.iter().filter_map(|t| t["Restarts"].as_u64()).sum();
        let states: Vec<String> = tasks.iter().map(|t| format!("{}={}", text(&t["Name"]), text(&t["State"]))).collect();
        rows.push(vec![
            text(&alloc["ID"]),
            text(&alloc["Node"]),
            alloc["Version"].to_string(),
            text(&alloc["DesiredStatus"]),
            text(&alloc["ClientStatus"]),
            if alloc["Healthy"].is_null() { "-".into() } else { alloc["Healthy"].to_string() },
            restarts.to_string(),
            if states.is_empty() { "-".into() } else { states.join(",") },
        ]);
    }
    out.push_str(&columnize(&rows));
    out
}

pub(super) async fn hosts(args: &HostsArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(&args.http, env)?;
    let hosts = agent.get_json("/v1/hosts").await?;
    let mut rows = vec![cells(&["Node", "Drivers", "Meta", "Allocations"])];
    for host in hosts.as_array().into_iter().flatten() {
        let list = |v: &Value| {
            let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
            if items.is_empty() { "-".into() } else { items.join(",") }
        };
        let meta: Vec<String> =
            host["Meta"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", text(v))).collect();
        rows.push(vec![
            text(&host["Node"]),
            list(&host["Drivers"]),
            if meta.is_empty() { "-".into() } else { meta.join(",") },
            list(&host["Allocations"]),
        ]);
    }
    print_stdout(columnize(&rows).as_bytes())
}

fn cells(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| if v.is_null() { "-".into() } else { v.to_string() })
}

/// Unix milliseconds as RFC 3339 UTC.
fn time(v: &Value) -> String {
    v.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "-".into(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
