//! `roster run FILE` and `roster job status|stop|logs`: the runtime shim's jobs through the agent's HTTP API.

use anyhow::{Context as _, bail};
use reqwest::Method;
use roster_runtime_shim::JobSpec;
use serde_json::Value;

use super::client::{AgentClient, print_stdout};
use super::cluster_job;
use super::{JobCommand, RunArgs};
use crate::config::EnvSource;

/// Reads and validates the spec here (so errors name the file's fields), then submits it as JSON.
pub(super) async fn run(args: &RunArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let is_toml = args.file.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
    let spec = if is_toml { JobSpec::from_toml(&text) } else { JobSpec::from_json(&text) };
    let spec = spec.map_err(|error| anyhow::anyhow!("{}: {error}", args.file.display()))?;
    let agent = AgentClient::new(&args.http, env)?;
    let (status, body) = agent.send(Method::PUT, "/v1/agent/job", Some(serde_json::to_vec(&spec)?)).await?;
    if !status.is_success() {
        bail!("Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(&body).trim());
    }
    let answer: Value = serde_json::from_slice(&body).context("the agent's answer is not JSON")?;
    print_stdout(tasks_table(std::slice::from_ref(&answer)).as_bytes())
}

pub(super) async fn job(command: &JobCommand, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match command {
        JobCommand::Status { http, name: Some(name) }
            if let Some(text) = cluster_job::status(http, name, env).await? =>
        {
            print_stdout(text.as_bytes())
        }
        JobCommand::Deploy { http, nodes, file } => cluster_job::deploy(http, file, nodes, env).await,
        JobCommand::Undeploy { http, purge, name } => cluster_job::undeploy(http, name, *purge, env).await,
        JobCommand::History { http, name } => cluster_job::history(http, name, env).await,
        JobCommand::Revert { http, name, version } => cluster_job::revert(http, name, *version, env).await,
        JobCommand::Status { http, name } => {
            let agent = AgentClient::new(http, env)?;
            let jobs = match name {
                Some(name) => vec![agent.get_json(&format!("/v1/agent/job/{name}")).await?],
                None => match agent.get_json("/v1/agent/jobs").await? {
                    Value::Array(jobs) => jobs,
                    other => bail!("unexpected answer: {other}"),
                },
            };
            print_stdout(tasks_table(&jobs).as_bytes())
        }
        JobCommand::Stop { http, name } => {
            let agent = AgentClient::new(http, env)?;
            let (status, body) = agent.send(Method::DELETE, &format!("/v1/agent/job/{name}"), None).await?;
            if !status.is_success() {
                bail!("Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(&body).trim());
            }
            print_stdout(format!("Job {name:?} stopped\n").as_bytes())
        }
        JobCommand::Logs { http, task, lines, name } => {
            let agent = AgentClient::new(http, env)?;
            let mut path = format!("/v1/agent/job/{name}/logs?lines={lines}");
            if let Some(task) = task {
                path.push_str(&format!("&task={task}"));
            }
            let lines = agent.get_json(&path).await?;
            let text: String =
                lines.as_array().into_iter().flatten().filter_map(Value::as_str).map(|l| format!("{l}\n")).collect();
            print_stdout(text.as_bytes())
        }
    }
}

/// One line per task: job, task, driver, state, restarts, last exit code, ID.
fn tasks_table(jobs: &[Value]) -> String {
    let mut out = format!(
        "{:<16} {:<16} {:<7} {:<14} {:>8} {:>9}  {}\n",
        "Job", "Task", "Driver", "State", "Restarts", "LastExit", "ID"
    );
    for job in jobs {
        for task in job["Tasks"].as_array().into_iter().flatten() {
            let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
            let id: String = task["ID"].as_str().unwrap_or("-").chars().take(12).collect();
            out.push_str(&format!(
                "{:<16} {:<16} {:<7} {:<14} {:>8} {:>9}  {}\n",
                text(&job["Name"]),
                text(&task["Name"]),
                text(&task["Driver"]),
                text(&task["State"]),
                task["Restarts"],
                if task["LastExitCode"].is_null() { "-".to_owned() } else { task["LastExitCode"].to_string() },
                id
            ));
            // A task that is down shows what it last wrote, so a crash loop explains itself.
            if task["State"] != "running" {
                for line in task["LastLogs"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                    out.push_str(&format!("    | {line}\n"));
                }
            }
        }
    }
    out
}
