//! `roster monitor [-log-level LEVEL] [-log-json]`: prints the agent's log lines as they are written, at the level
//! asked for (independent of the agent's own), until the agent goes away or the command is interrupted; Consul's
//! `consul monitor`. A refused level is the agent's 400, printed as Consul prints it, with exit code 1.

use std::io::Write as _;

use clap::Args;

use super::HttpArgs;
use super::watch::agent_http::{AgentHttp, segment};
use crate::config::EnvSource;

/// `roster monitor`.
#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The level to stream at: trace, debug, info, warn or err (default info).
    #[arg(long, value_name = "LEVEL", default_value = "INFO")]
    pub log_level: String,
    /// Stream JSON lines with Consul's `@level`, `@message`, `@module` and `@timestamp` fields.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub log_json: bool,
}

/// Runs `roster monitor`.
pub(super) async fn run(args: &MonitorArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    super::client::install_crypto_provider();
    let agent = AgentHttp::streaming(&args.http, env)?;
    let mut path = format!("/v1/agent/monitor?loglevel={}", segment(&args.log_level));
    if args.log_json {
        path.push_str("&logjson");
    }
    let mut response = agent.open(&path).await?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        eprintln!("Error starting monitor: Unexpected response code: {status} ({})", body.trim());
        return Ok(1);
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = &mut interrupted => return Ok(0),
        };
        match chunk {
            Ok(Some(bytes)) => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&bytes)?;
                stdout.flush()?;
            }
            Ok(None) => {
                eprintln!(
                    "Remote side ended the monitor! This usually means that the remote side has exited or crashed."
                );
                return Ok(1);
            }
            Err(err) => {
                eprintln!("Error reading the monitor stream: {err}");
                return Ok(1);
            }
        }
    }
}
