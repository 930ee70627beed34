//! `roster event`: fires a user event through `/v1/event/fire/:name` and prints its ID, as Consul's `event` does.

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::HttpArgs;
use super::client::{AgentClient, segment};
use crate::config::EnvSource;

/// `roster event`.
#[derive(Debug, Clone, Default, Args)]
pub struct EventArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Name of the event.
    #[arg(long, default_value = "", value_name = "NAME")]
    pub name: String,
    /// Regular expression to filter on node names.
    #[arg(long, default_value = "", value_name = "REGEX")]
    pub node: String,
    /// Regular expression to filter on service instances.
    #[arg(long, default_value = "", value_name = "REGEX")]
    pub service: String,
    /// Regular expression to filter on service tags; needs -service.
    #[arg(long, default_value = "", value_name = "REGEX")]
    pub tag: String,
    /// The payload (at most 512 bytes).
    #[arg(value_name = "PAYLOAD")]
    pub payload: Vec<String>,
}

/// Runs `roster event`: 0 with `Event ID: <id>` printed, 1 with Consul's message otherwise.
pub(super) async fn run(args: &EventArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    if let Some(problem) = usage_problem(args) {
        eprintln!("{problem}");
        return Ok(1);
    }
    let agent = AgentClient::new(&args.http, env)?;
    // Consul's command asks the agent's name first, so an unreachable agent is reported before anything is fired.
    if agent.get_json_or_report("/v1/agent/self", "Error querying Consul agent").await.is_none() {
        return Ok(1);
    }
    let mut query = Vec::new();
    for (name, value) in [("node", &args.node), ("service", &args.service), ("tag", &args.tag)] {
        if !value.is_empty() {
            query.push(format!("{name}={}", segment(value)));
        }
    }
    let mut path = format!("/v1/event/fire/{}", segment(&args.name));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let payload = args.payload.first().map(|payload| payload.as_bytes().to_vec());
    let (status, body) = agent.send(Method::PUT, &path, payload).await?;
    if !status.is_success() {
        let answer = String::from_utf8_lossy(&body);
        eprintln!("Error firing event: Unexpected response code: {} ({})", status.as_u16(), answer.trim());
        return Ok(1);
    }
    let event: Value = serde_json::from_slice(&body).context("the agent's answer is not valid JSON")?;
    println!("Event ID: {}", event["ID"].as_str().unwrap_or_default());
    Ok(0)
}

/// Consul's checks of the flags and arguments, before anything is sent.
fn usage_problem(args: &EventArgs) -> Option<String> {
    if args.name.is_empty() {
        return Some("Event name must be specified".to_owned());
    }
    for (what, pattern) in [("node", &args.node), ("service", &args.service), ("tag", &args.tag)] {
        if let Err(err) = regex::Regex::new(pattern) {
            return Some(format!("Failed to compile {what} filter regexp: {err}"));
        }
    }
    if !args.tag.is_empty() && args.service.is_empty() {
        return Some("Cannot provide tag filter without service filter.".to_owned());
    }
    if args.payload.len() > 1 {
        return Some("Too many command line arguments.".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flags_are_refused_before_anything_is_sent() {
        let args = |name: &str, service: &str, tag: &str, payload: &[&str]| EventArgs {
            name: name.into(),
            service: service.into(),
            tag: tag.into(),
            payload: payload.iter().map(|p| (*p).to_owned()).collect(),
            ..EventArgs::default()
        };
        assert_eq!(usage_problem(&args("", "", "", &[])).as_deref(), Some("Event name must be specified"));
        assert!(usage_problem(&args("x", "(", "", &[])).is_some_and(|p| p.starts_with("Failed to compile service")));
        assert_eq!(
            usage_problem(&args("x", "", "v1", &[])).as_deref(),
            Some("Cannot provide tag filter without service filter.")
        );
        assert_eq!(usage_problem(&args("x", "", "", &["a", "b"])).as_deref(), Some("Too many command line arguments."));
        assert_eq!(usage_problem(&args("x", "web", "v1", &["a"])), None);
    }
}
