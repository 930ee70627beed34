//! `roster info`: the `Stats` object of `/v1/agent/self`, one `section:` line per key and a `\tkey = value` line per
//! entry, both sorted, as Consul's `info` prints it.

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use super::HttpArgs;
use super::client::AgentClient;
use crate::config::EnvSource;

/// `roster info`.
#[derive(Debug, Clone, Default, Args)]
pub struct InfoArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Runs `roster info`.
pub(super) async fn run(args: &InfoArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(&args.http, env)?;
    let Some(me) = agent.get_json_or_report("/v1/agent/self", "Error querying agent").await else { return Ok(1) };
    print!("{}", stats_text(&me)?);
    Ok(0)
}

/// The printed sections; serde_json's maps are sorted, which gives Consul's order.
fn stats_text(me: &Value) -> anyhow::Result<String> {
    let stats = me.get("Stats").and_then(Value::as_object).context("Agent response did not contain 'Stats' key")?;
    let mut out = String::new();
    for (section, entries) in stats {
        out.push_str(&format!("{section}:\n"));
        let entries = entries.as_object().with_context(|| format!("Got invalid subkey in stats: {entries}"))?;
        for (key, value) in entries {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("\t{key} = {value}\n"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_and_keys_come_out_sorted() -> anyhow::Result<()> {
        let me = json!({"Stats": {"raft": {"term": "2", "state": "Leader"}, "agent": {"services": "1"}}});
        assert_eq!(stats_text(&me)?, "agent:\n\tservices = 1\nraft:\n\tstate = Leader\n\tterm = 2\n");
        assert!(stats_text(&json!({})).is_err());
        Ok(())
    }
}
