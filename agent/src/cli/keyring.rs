//! `roster keygen` and `roster keyring`: make a gossip encryption key, and list, install, use or remove keys on every
//! member through the agent's `/v1/operator/keyring`, printing what Consul's `keyring` command prints.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::HttpArgs;
use super::client::AgentClient;
use crate::config::EnvSource;
use crate::gossip::Key;

/// `roster keyring`: exactly one of the actions.
#[derive(Debug, Clone, Default, Args)]
pub struct KeyringArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// List every key installed in the cluster, with how many members hold it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub list: bool,
    /// List the primary key of every member, with how many members use it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub list_primary: bool,
    /// Install a new key on every member.
    #[arg(long, value_name = "KEY")]
    pub install: Option<String>,
    /// Make an installed key the primary (the key messages are sealed with) on every member.
    #[arg(long = "use", value_name = "KEY")]
    pub use_key: Option<String>,
    /// Remove a key that is not the primary from every member.
    #[arg(long, value_name = "KEY")]
    pub remove: Option<String>,
    /// With -list or -list-primary: only this agent's keys.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub local_only: bool,
    /// Consul's response relaying; roster members answer directly, so only 0 is accepted.
    #[arg(long, default_value_t = 0, value_name = "N", allow_negative_numbers = true)]
    pub relay_factor: i64,
}

/// `roster keygen`: a fresh random 32-byte key in base64.
pub(super) fn keygen() -> anyhow::Result<i32> {
    println!("{}", Key::generate().to_base64());
    Ok(0)
}

/// `roster keyring`: one action; exit 1 when any member failed, as Consul's command does.
pub(super) async fn run(args: &KeyringArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let writes = [("POST", &args.install), ("PUT", &args.use_key), ("DELETE", &args.remove)];
    let n_actions =
        usize::from(args.list) + usize::from(args.list_primary) + writes.iter().filter(|w| w.1.is_some()).count();
    if n_actions > 1 {
        eprintln!("Only a single action is allowed");
        return Ok(1);
    }
    if n_actions == 0 {
        eprintln!("{USAGE}");
        return Ok(1);
    }
    if !(0..=5).contains(&args.relay_factor) {
        eprintln!("Error parsing relay factor: Relay factor must be in range: [0, 5]");
        return Ok(1);
    }
    if args.local_only && !(args.list || args.list_primary) {
        eprintln!("Error: -local-only is only valid with -list or -list-primary");
        return Ok(1);
    }
    let agent = AgentClient::new(&args.http, env)?;
    let mut query = Vec::new();
    if args.relay_factor > 0 {
        query.push(format!("relay-factor={}", args.relay_factor));
    }
    if args.local_only {
        query.push("local-only=true".to_owned());
    }
    let path = if query.is_empty() {
        "/v1/operator/keyring".to_owned()
    } else {
        format!("/v1/operator/keyring?{}", query.join("&"))
    };
    if args.list || args.list_primary {
        let what = if args.list { "installed" } else { "primary" };
        println!("==> Gathering {what} encryption keys...");
        let (status, body) = agent.send(Method::GET, &path, None).await?;
        if !status.is_success() {
            eprintln!(
                "error: Unexpected response code: {} ({})",
                status.as_u16(),
                String::from_utf8_lossy(&body).trim()
            );
            return Ok(1);
        }
        let pools: Value = serde_json::from_slice(&body).context("the agent's answer is not valid JSON")?;
        print!("{}", list_output(&pools, if args.list { "Keys" } else { "PrimaryKeys" })?);
        return Ok(0);
    }
    let Some((method, Some(key))) = writes.iter().find(|w| w.1.is_some()) else { return Ok(1) };
    let doing = match *method {
        "POST" => "Installing new gossip encryption key...",
        "PUT" => "Changing primary gossip encryption key...",
        _ => "Removing gossip encryption key...",
    };
    println!("==> {doing}");
    let method = Method::from_bytes(method.as_bytes())?;
    let (status, body) = agent.send(method, &path, Some(serde_json::to_vec(&json!({ "Key": key }))?)).await?;
    if !status.is_success() {
        eprintln!("error: Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(&body).trim());
        return Ok(1);
    }
    Ok(0)
}

/// Consul's list output: per pool, its messages, then `  KEY [held/total]` for each key of `field`.
pub(super) fn list_output(pools: &Value, field: &str) -> anyhow::Result<String> {
    let pools = pools.as_array().context("unexpected /v1/operator/keyring answer: not a list")?;
    let mut out = String::new();
    for pool in pools {
        let datacenter = pool["Datacenter"].as_str().unwrap_or_default();
        let name = if pool["WAN"].as_bool() == Some(true) { "WAN".to_owned() } else { format!("{datacenter} (LAN)") };
        let total = pool["NumNodes"].as_u64().unwrap_or(0);
        let _ = write!(out, "\n{name}:\n");
        for (node, message) in pool["Messages"].as_object().into_iter().flatten() {
            let _ = writeln!(out, "  ===> {node}: {}", message.as_str().unwrap_or_default());
        }
        for (key, held) in pool[field].as_object().into_iter().flatten() {
            let _ = writeln!(out, "  {key} [{}/{total}]", held.as_u64().unwrap_or(0));
        }
    }
    Ok(out)
}

const USAGE: &str = "Usage: roster keyring [options]

  Manages encryption keys used for gossip messages. Gossip encryption is
  optional. When enabled, this command may be used to examine active encryption
  keys in the cluster, add new keys, and remove old ones. When combined, this
  functionality provides the ability to perform key rotation cluster-wide,
  without disrupting the cluster.

  Exactly one of -list, -list-primary, -install KEY, -use KEY or -remove KEY.
  Returns 0 if all nodes reply and there are no errors, 1 otherwise.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prints_each_pool_with_messages_and_counts() -> anyhow::Result<()> {
        let pools = json!([{
            "WAN": false, "Datacenter": "dc1", "Segment": "", "Partition": "",
            "Keys": {"a2V5MQ==": 3, "a2V5Mg==": 1}, "PrimaryKeys": {"a2V5MQ==": 3},
            "NumNodes": 3, "Messages": {"n2": "oops"}
        }]);
        assert_eq!(list_output(&pools, "Keys")?, "\ndc1 (LAN):\n  ===> n2: oops\n  a2V5MQ== [3/3]\n  a2V5Mg== [1/3]\n");
        assert_eq!(list_output(&pools, "PrimaryKeys")?, "\ndc1 (LAN):\n  ===> n2: oops\n  a2V5MQ== [3/3]\n");
        assert!(list_output(&json!({}), "Keys").is_err());
        Ok(())
    }
}
