//! `roster maint`: put this agent's node or one of its services into maintenance, take it out, or list what is in
//! maintenance, through `/v1/agent/maintenance` and `/v1/agent/service/maintenance/:id`, as Consul's `maint` does.

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::HttpArgs;
use super::client::{AgentClient, segment};
use crate::config::EnvSource;

/// The check ID Consul's agent registers for node maintenance.
const NODE_MAINTENANCE: &str = "_node_maintenance";
/// The prefix of a service's maintenance check ID (`_service_maintenance:<id>`).
const SERVICE_MAINTENANCE: &str = "_service_maintenance:";

/// `roster maint`.
#[derive(Debug, Clone, Default, Args)]
pub struct MaintArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Enable maintenance mode.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub enable: bool,
    /// Disable maintenance mode.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub disable: bool,
    /// Text describing the maintenance reason (shown as the check's Notes).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub reason: String,
    /// Control maintenance mode for this service ID instead of the whole node.
    #[arg(long = "service", default_value = "", value_name = "ID")]
    pub service_id: String,
}

/// Runs `roster maint`; usage mistakes and failed requests print Consul's message and give exit code 1.
pub(super) async fn run(args: &MaintArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    if let Some(problem) = usage_problem(args) {
        eprintln!("{problem}");
        return Ok(1);
    }
    let agent = AgentClient::new(&args.http, env)?;
    let Some(me) = agent.get_json_or_report("/v1/agent/self", "Error querying Consul agent").await else {
        return Ok(1);
    };
    if !args.enable && !args.disable {
        let Some(checks) = agent.get_json_or_report("/v1/agent/checks", "Error getting checks").await else {
            return Ok(1);
        };
        print!("{}", listing(me["Config"]["NodeName"].as_str().unwrap_or_default(), &checks)?);
        return Ok(0);
    }
    let (what, done) = match (args.enable, args.service_id.is_empty()) {
        (true, true) => ("enabling node", "Node maintenance is now enabled".to_owned()),
        (false, true) => ("disabling node", "Node maintenance is now disabled".to_owned()),
        (true, false) => ("enabling service", format!("Service maintenance is now enabled for {:?}", args.service_id)),
        (false, false) => {
            ("disabling service", format!("Service maintenance is now disabled for {:?}", args.service_id))
        }
    };
    let mut path = if args.service_id.is_empty() {
        "/v1/agent/maintenance".to_owned()
    } else {
        format!("/v1/agent/service/maintenance/{}", segment(&args.service_id))
    };
    path.push_str(&format!("?enable={}", args.enable));
    if !args.reason.is_empty() {
        path.push_str(&format!("&reason={}", segment(&args.reason)));
    }
    let (status, body) = agent.send(Method::PUT, &path, None).await?;
    if !status.is_success() {
        let answer = String::from_utf8_lossy(&body);
        eprintln!("Error {what} maintenance: Unexpected response code: {} ({})", status.as_u16(), answer.trim());
        return Ok(1);
    }
    println!("{done}");
    Ok(0)
}

/// Consul's refusals of flag combinations, checked before anything is sent.
fn usage_problem(args: &MaintArgs) -> Option<&'static str> {
    if args.enable && args.disable {
        return Some("Only one of -enable or -disable may be provided");
    }
    if !args.enable && !args.reason.is_empty() {
        return Some("Reason may only be provided with -enable");
    }
    if !args.enable && !args.disable && !args.service_id.is_empty() {
        return Some("Service requires either -enable or -disable");
    }
    None
}

/// The list mode's output: a `Node:` block for node maintenance and a `Service:` block per service in maintenance.
pub(super) fn listing(node_name: &str, checks: &Value) -> anyhow::Result<String> {
    let checks = checks.as_object().context("unexpected /v1/agent/checks answer: not an object")?;
    let mut out = String::new();
    // serde_json's map is sorted by check ID, so the node block comes first and services follow in ID order.
    for (check_id, check) in checks {
        let notes = check["Notes"].as_str().unwrap_or_default();
        if check_id == NODE_MAINTENANCE {
            out.push_str(&format!("Node:\n  Name:   {node_name}\n  Reason: {notes}\n\n"));
        } else if check_id.starts_with(SERVICE_MAINTENANCE) {
            let service_id = check["ServiceID"].as_str().unwrap_or_default();
            out.push_str(&format!("Service:\n  ID:     {service_id}\n  Reason: {notes}\n\n"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listing_shows_node_then_services_and_nothing_else() -> anyhow::Result<()> {
        let checks = json!({
            "_service_maintenance:web-1": {"Notes": "deploy", "ServiceID": "web-1"},
            "_node_maintenance": {"Notes": "kernel", "ServiceID": ""},
            "service:web-1": {"Notes": "", "ServiceID": "web-1"},
        });
        assert_eq!(
            listing("n1", &checks)?,
            "Node:\n  Name:   n1\n  Reason: kernel\n\nService:\n  ID:     web-1\n  Reason: deploy\n\n"
        );
        assert_eq!(listing("n1", &json!({}))?, "");
        Ok(())
    }

    #[test]
    fn conflicting_flags_are_refused_with_consuls_words() {
        let both = MaintArgs { enable: true, disable: true, ..MaintArgs::default() };
        assert_eq!(usage_problem(&both), Some("Only one of -enable or -disable may be provided"));
        let reason = MaintArgs { disable: true, reason: "x".into(), ..MaintArgs::default() };
        assert_eq!(usage_problem(&reason), Some("Reason may only be provided with -enable"));
        let service = MaintArgs { service_id: "web".into(), ..MaintArgs::default() };
        assert_eq!(usage_problem(&service), Some("Service requires either -enable or -disable"));
        assert_eq!(usage_problem(&MaintArgs { enable: true, ..MaintArgs::default() }), None);
    }
}
