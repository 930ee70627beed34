//! What a watch does with each new result: run a command with the JSON on stdin, POST it to a
//! URL, or print it once.
//!
//! Commands run through `$SHELL -c` (default `/bin/sh`) as Consul's handlers do, with
//! `CONSUL_INDEX` set, and one at a time: the next blocking query starts only after the handler
//! exited, so a slow handler sees the newest state rather than a queue of stale ones.

use std::process::Stdio;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::agent_http::AgentHttp;

/// Where results go.
#[derive(Debug, Clone)]
pub(super) enum Handler {
    /// No handler: print the first result, indented, and stop (Consul's behaviour).
    Print,
    /// Run a command line through the shell.
    Shell(String),
    /// Run a program with arguments directly (`-shell=false`).
    Exec(Vec<String>),
    /// POST the JSON to this URL.
    Http(String),
}

/// Whether the watch goes on after a result was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Keep watching.
    Continue,
    /// The watch is done (a printed result).
    Stop,
}

impl Handler {
    /// Hands one result over; an error ends the watch with exit code 1, as in Consul.
    pub async fn handle(&self, agent: &AgentHttp, index: u64, result: &Value) -> anyhow::Result<Next> {
        match self {
            Handler::Print => {
                println!("{}", indented(result)?);
                Ok(Next::Stop)
            }
            Handler::Shell(line) => {
                let shell = std::env::var("SHELL").ok().filter(|shell| !shell.is_empty());
                let shell = shell.unwrap_or_else(|| "/bin/sh".to_owned());
                run_command(&shell, &["-c".to_owned(), line.clone()], index, result).await?;
                Ok(Next::Continue)
            }
            Handler::Exec(argv) => {
                let Some((program, args)) = argv.split_first() else { bail!("empty handler command") };
                run_command(program, args, index, result).await?;
                Ok(Next::Continue)
            }
            Handler::Http(url) => {
                // Consul's agent logs a failed HTTP handler and keeps watching: the endpoint being
                // down for a moment should not end the watch.
                match agent.post_url(url, index, serde_json::to_vec(result)?).await {
                    Ok(status) if status.is_success() => {}
                    Ok(status) => eprintln!("roster watch: HTTP handler {url} answered {status}"),
                    Err(err) => eprintln!("roster watch: {err:#}"),
                }
                Ok(Next::Continue)
            }
        }
    }
}

/// Runs one handler process with the result on stdin and waits for it; a non-zero exit is an error.
async fn run_command(program: &str, args: &[String], index: u64, result: &Value) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("CONSUL_INDEX", index.to_string())
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("Error executing handler: cannot start {program}"))?;
    let input = serde_json::to_vec(result)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A handler that exits without reading its input closes the pipe; that is its choice.
        let _ = stdin.write_all(&input).await;
    }
    let status = child.wait().await.context("Error executing handler")?;
    if !status.success() {
        bail!("Error executing handler: {status}");
    }
    Ok(())
}

/// Consul's CLI prints results with Go's `json.MarshalIndent(data, "", "    ")`.
fn indented(value: &Value) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut serializer)?;
    Ok(String::from_utf8(out)?)
}
