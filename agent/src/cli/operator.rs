//! `roster operator raft remove-peer|transfer-leader` and `roster operator autopilot get-config|set-config|state`:
//! Consul's operator commands, with its flags and output.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::HttpArgs;
use super::client::{AgentClient, print_stdout, segment};
use crate::config::EnvSource;

/// `roster operator raft remove-peer -id ID | -address IP:PORT`.
#[derive(Debug, Clone, Default, Args)]
pub struct RemovePeerArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The address to remove from the Raft configuration.
    #[arg(long, value_name = "IP:PORT")]
    pub address: Option<String>,
    /// The ID to remove from the Raft configuration.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// `roster operator raft transfer-leader [-id ID]`.
#[derive(Debug, Clone, Default, Args)]
pub struct TransferLeaderArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The ID of the node to transfer leadership to (default: the leader picks a voter).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// The DELETE path of a remove-peer, or Consul's complaint about the flags.
fn remove_peer_path(args: &RemovePeerArgs) -> Result<String, &'static str> {
    let address = args.address.as_deref().filter(|a| !a.is_empty());
    let id = args.id.as_deref().filter(|i| !i.is_empty());
    match (address, id) {
        (None, None) => Err("an address or id is required for the peer to remove"),
        (Some(_), Some(_)) => Err("cannot give both an address and id"),
        (Some(address), None) => Ok(format!("/v1/operator/raft/peer?address={}", segment(address))),
        (None, Some(id)) => Ok(format!("/v1/operator/raft/peer?id={}", segment(id))),
    }
}

/// Removes the peer; prints Consul's `Removed peer with address "..."` or the error (exit 1).
pub async fn remove_peer(args: &RemovePeerArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let path = match remove_peer_path(args) {
        Ok(path) => path,
        Err(why) => {
            eprintln!("Error removing peer: {why}");
            return Ok(1);
        }
    };
    let agent = AgentClient::new(&args.http, env)?;
    if let Err(err) = agent.expect_ok(Method::DELETE, &path, None).await {
        eprintln!("Error removing peer: {err:#}");
        return Ok(1);
    }
    match (&args.address, &args.id) {
        (Some(address), _) if !address.is_empty() => println!("Removed peer with address {address:?}"),
        (_, id) => println!("Removed peer with id {:?}", id.as_deref().unwrap_or_default()),
    }
    Ok(0)
}

/// Transfers leadership; prints `Success`, or Consul's error text (exit 1).
pub async fn transfer_leader(args: &TransferLeaderArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let path = match &args.id {
        Some(id) => format!("/v1/operator/raft/transfer-leader?id={}", segment(id)),
        None => "/v1/operator/raft/transfer-leader".to_owned(),
    };
    let agent = AgentClient::new(&args.http, env)?;
    if let Err(err) = agent.expect_ok(Method::POST, &path, None).await {
        eprintln!("Error transfering leadership: Failed to transfer leadership {err:#}");
        return Ok(1);
    }
    println!("Success");
    Ok(0)
}

/// `roster operator autopilot ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum OperatorAutopilotCommand {
    /// Print the autopilot configuration.
    GetConfig(AutopilotGetArgs),
    /// Change the autopilot configuration (check-and-set on its ModifyIndex).
    SetConfig(AutopilotSetArgs),
    /// Print autopilot's view of the servers.
    State(AutopilotStateArgs),
}

/// `roster operator autopilot get-config`.
#[derive(Debug, Clone, Default, Args)]
pub struct AutopilotGetArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `roster operator autopilot state`.
#[derive(Debug, Clone, Default, Args)]
pub struct AutopilotStateArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format: `pretty` or `json`.
    #[arg(long, default_value = "pretty", value_parser = ["pretty", "json"], value_name = "FORMAT")]
    pub format: String,
}

/// `roster operator autopilot set-config`: only the flags given change.
#[derive(Debug, Clone, Default, Args)]
pub struct AutopilotSetArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Remove dead servers from the voters automatically.
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub cleanup_dead_servers: Option<bool>,
    /// Entries a server may trail the leader by and still be healthy.
    #[arg(long, value_name = "N")]
    pub max_trailing_logs: Option<u64>,
    /// Voters autopilot never prunes below.
    #[arg(long, value_name = "N")]
    pub min_quorum: Option<u32>,
    /// How long a server may go without contact from the leader and still be healthy (`200ms`).
    #[arg(long, value_name = "DURATION")]
    pub last_contact_threshold: Option<String>,
    /// How long a new server must be healthy before it becomes a voter (`10s`).
    #[arg(long, value_name = "DURATION")]
    pub server_stabilization_time: Option<String>,
    /// (Enterprise-only in Consul; refused by roster unless empty.)
    #[arg(long, value_name = "TAG")]
    pub redundancy_zone_tag: Option<String>,
    /// (Enterprise-only in Consul; refused by roster unless false.)
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub disable_upgrade_migration: Option<bool>,
    /// (Enterprise-only in Consul; refused by roster unless empty.)
    #[arg(long, value_name = "TAG")]
    pub upgrade_version_tag: Option<String>,
}

/// Runs an autopilot subcommand.
pub async fn autopilot(command: &OperatorAutopilotCommand, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match command {
        OperatorAutopilotCommand::GetConfig(args) => {
            let agent = AgentClient::new(&args.http, env)?;
            let Some(config) = agent
                .get_json_or_report("/v1/operator/autopilot/configuration", "Error querying Autopilot configuration")
                .await
            else {
                return Ok(1);
            };
            print_stdout(config_text(&config).as_bytes())
        }
        OperatorAutopilotCommand::SetConfig(args) => set_config(args, env).await,
        OperatorAutopilotCommand::State(args) => {
            let agent = AgentClient::new(&args.http, env)?;
            let Some(state) =
                agent.get_json_or_report("/v1/operator/autopilot/state", "Error querying Autopilot state").await
            else {
                return Ok(1);
            };
            let text = if args.format == "json" {
                format!("{}\n", serde_json::to_string_pretty(&state)?)
            } else {
                state_text(&state)
            };
            print_stdout(text.as_bytes())
        }
    }
}

async fn set_config(args: &AutopilotSetArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(&args.http, env)?;
    let Some(mut config) = agent
        .get_json_or_report("/v1/operator/autopilot/configuration", "Error querying Autopilot configuration")
        .await
    else {
        return Ok(1);
    };
    merge_flags(&mut config, args);
    let cas = config["ModifyIndex"].as_u64().unwrap_or(0);
    let body = serde_json::to_vec(&config)?;
    let path = format!("/v1/operator/autopilot/configuration?cas={cas}");
    let (status, answer) = agent.send(Method::PUT, &path, Some(body)).await?;
    if !status.is_success() {
        eprintln!(
            "Error setting Autopilot configuration: Unexpected response code: {} ({})",
            status.as_u16(),
            String::from_utf8_lossy(&answer).trim()
        );
        return Ok(1);
    }
    if answer.trim_ascii() == b"true" {
        println!("Configuration updated!");
        return Ok(0);
    }
    println!("Configuration could not be atomically updated, please try again");
    Ok(1)
}

/// Sets the fields whose flags were given.
fn merge_flags(config: &mut Value, args: &AutopilotSetArgs) {
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            config[key] = value;
        }
    };
    set("CleanupDeadServers", args.cleanup_dead_servers.map(Value::from));
    set("MaxTrailingLogs", args.max_trailing_logs.map(Value::from));
    set("MinQuorum", args.min_quorum.map(Value::from));
    set("LastContactThreshold", args.last_contact_threshold.clone().map(Value::from));
    set("ServerStabilizationTime", args.server_stabilization_time.clone().map(Value::from));
    set("RedundancyZoneTag", args.redundancy_zone_tag.clone().map(Value::from));
    set("DisableUpgradeMigration", args.disable_upgrade_migration.map(Value::from));
    set("UpgradeVersionTag", args.upgrade_version_tag.clone().map(Value::from));
}

/// `get-config`'s text, as Consul prints it.
fn config_text(config: &Value) -> String {
    let text = |key: &str| config[key].as_str().unwrap_or_default().to_owned();
    format!(
        "CleanupDeadServers = {}\nLastContactThreshold = {}\nMaxTrailingLogs = {}\nMinQuorum = {}\n\
         ServerStabilizationTime = {}\nRedundancyZoneTag = {:?}\nDisableUpgradeMigration = {}\nUpgradeVersionTag = {:?}\n",
        config["CleanupDeadServers"].as_bool().unwrap_or_default(),
        text("LastContactThreshold"),
        config["MaxTrailingLogs"].as_u64().unwrap_or_default(),
        config["MinQuorum"].as_u64().unwrap_or_default(),
        text("ServerStabilizationTime"),
        text("RedundancyZoneTag"),
        config["DisableUpgradeMigration"].as_bool().unwrap_or_default(),
        text("UpgradeVersionTag"),
    )
}

/// `state`'s pretty text, as Consul's formatter lays it out (servers by ID).
fn state_text(state: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "Healthy:                      {}", state["Healthy"]);
    let _ = writeln!(out, "Failure Tolerance:            {}", state["FailureTolerance"]);
    let _ = writeln!(out, "Optimistic Failure Tolerance: {}", state["OptimisticFailureTolerance"]);
    let _ = writeln!(out, "Leader:                       {}", state["Leader"].as_str().unwrap_or_default());
    out.push_str("Voters:\n");
    for voter in state["Voters"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "   {}", voter.as_str().unwrap_or_default());
    }
    out.push_str("Servers:\n");
    for (id, server) in state["Servers"].as_object().into_iter().flatten() {
        let field = |key: &str| match &server[key] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "   {id}");
        for (label, key) in [
            ("Name", "Name"),
            ("Address", "Address"),
            ("Version", "Version"),
            ("Status", "Status"),
            ("Node Type", "NodeType"),
            ("Node Status", "NodeStatus"),
            ("Healthy", "Healthy"),
            ("Last Contact", "LastContact"),
            ("Last Term", "LastTerm"),
            ("Last Index", "LastIndex"),
        ] {
            let _ = writeln!(out, "      {:<17}{}", format!("{label}:"), field(key));
        }
        if let Some(meta) = server["Meta"].as_object().filter(|m| !m.is_empty()) {
            out.push_str("      Meta\n");
            for (key, value) in meta {
                let _ = writeln!(out, "         {key:?}: {value}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Flag checks and output that need no agent.
    use super::*;
    use serde_json::json;

    #[test]
    fn get_config_prints_consuls_lines() {
        let config = json!({"CleanupDeadServers": true, "LastContactThreshold": "200ms", "MaxTrailingLogs": 250,
            "MinQuorum": 0, "ServerStabilizationTime": "10s", "RedundancyZoneTag": "", "DisableUpgradeMigration": false,
            "UpgradeVersionTag": "", "CreateIndex": 5, "ModifyIndex": 5});
        assert_eq!(
            config_text(&config),
            "CleanupDeadServers = true\nLastContactThreshold = 200ms\nMaxTrailingLogs = 250\nMinQuorum = 0\n\
             ServerStabilizationTime = 10s\nRedundancyZoneTag = \"\"\nDisableUpgradeMigration = false\nUpgradeVersionTag = \"\"\n"
        );
        let mut changed = config.clone();
        let args = AutopilotSetArgs { min_quorum: Some(3), cleanup_dead_servers: Some(false), ..Default::default() };
        merge_flags(&mut changed, &args);
        assert_eq!((changed["MinQuorum"].clone(), changed["CleanupDeadServers"].clone()), (json!(3), json!(false)));
        assert_eq!(changed["MaxTrailingLogs"], json!(250), "flags not given stay");
    }

    #[test]
    fn state_prints_consuls_layout() {
        let state = json!({"Healthy": true, "FailureTolerance": 1, "OptimisticFailureTolerance": 1, "Leader": "7",
            "Voters": ["7"], "Servers": {"7": {"Name": "s1", "Address": "127.0.0.1:8300", "Version": "0.1.0",
            "Status": "leader", "NodeType": "voter", "NodeStatus": "alive", "Healthy": true, "LastContact": "0s",
            "LastTerm": 3, "LastIndex": 42, "Meta": {}}}});
        let text = state_text(&state);
        assert!(text.starts_with("Healthy:                      true\nFailure Tolerance:            1\n"), "{text}");
        assert!(text.contains("Voters:\n   7\nServers:\n   7\n      Name:            s1\n"), "{text}");
        assert!(text.contains("      Last Index:      42\n"), "{text}");
    }

    #[test]
    fn remove_peer_needs_exactly_one_of_address_and_id() {
        let mut args = RemovePeerArgs::default();
        assert_eq!(remove_peer_path(&args), Err("an address or id is required for the peer to remove"));
        args.address = Some("127.0.0.1:8300".into());
        assert_eq!(remove_peer_path(&args).unwrap(), "/v1/operator/raft/peer?address=127.0.0.1%3A8300");
        args.id = Some("12".into());
        assert_eq!(remove_peer_path(&args), Err("cannot give both an address and id"));
        args.address = None;
        assert_eq!(remove_peer_path(&args).unwrap(), "/v1/operator/raft/peer?id=12");
    }
}
