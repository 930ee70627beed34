//! `roster config write|read|list|delete`: Consul's config-entry commands, with its flags and output.
//!
//! Entries are read as JSON only: roster has no HCL decoder for Consul's full config-entry grammar, so an `.hcl`
//! file (or input that looks like HCL) is refused by name rather than guessed at.

use std::path::Path;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::HttpArgs;
use super::client::{AgentClient, print_stdout, segment};
use crate::config::EnvSource;

/// `roster config ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Create or update a config entry from a JSON file (`-` reads stdin).
    Write(ConfigWriteArgs),
    /// Print one config entry as JSON.
    Read(ConfigEntryArgs),
    /// List the names of the config entries of a kind.
    List(ConfigListArgs),
    /// Delete a config entry.
    Delete(ConfigDeleteArgs),
}

/// `roster config write [-cas -modify-index N] FILE`.
#[derive(Debug, Clone, Args)]
pub struct ConfigWriteArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Write only if the entry's ModifyIndex is -modify-index (0: only if it does not exist).
    #[arg(long)]
    pub cas: bool,
    /// The ModifyIndex -cas compares with.
    #[arg(long, value_name = "INDEX")]
    pub modify_index: Option<u64>,
    /// The entry: a JSON file, or `-` for stdin.
    #[arg(value_name = "FILE")]
    pub file: String,
}

/// `roster config read -kind KIND -name NAME`.
#[derive(Debug, Clone, Args)]
pub struct ConfigEntryArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The entry's kind (`service-defaults`, `proxy-defaults`).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// The entry's name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `roster config list -kind KIND`.
#[derive(Debug, Clone, Args)]
pub struct ConfigListArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The kind to list.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
}

/// `roster config delete -kind KIND -name NAME [-cas -modify-index N]`.
#[derive(Debug, Clone, Args)]
pub struct ConfigDeleteArgs {
    /// The entry.
    #[command(flatten)]
    pub entry: ConfigEntryArgs,
    /// Delete only if the entry's ModifyIndex is -modify-index.
    #[arg(long)]
    pub cas: bool,
    /// The ModifyIndex -cas compares with (greater than 0).
    #[arg(long, value_name = "INDEX")]
    pub modify_index: Option<u64>,
}

/// Runs a config subcommand.
pub async fn run(command: &ConfigCommand, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match command {
        ConfigCommand::Write(args) => write(args, env).await,
        ConfigCommand::Read(args) => read(args, env).await,
        ConfigCommand::List(args) => list(args, env).await,
        ConfigCommand::Delete(args) => delete(args, env).await,
    }
}

async fn write(args: &ConfigWriteArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let query = match cas_query(args.cas, args.modify_index, false) {
        Ok(query) => query,
        Err(why) => return usage(&why),
    };
    let entry = match read_entry(&args.file).await {
        Ok(entry) => entry,
        Err(why) => {
            eprintln!("Failed to decode config entry input: {why:#}");
            return Ok(1);
        }
    };
    let (kind, name) = (field(&entry, "kind"), field(&entry, "name"));
    let agent = AgentClient::new(&args.http, env)?;
    let (status, body) =
        agent.send(Method::PUT, &format!("/v1/config{query}"), Some(serde_json::to_vec(&entry)?)).await?;
    if !status.is_success() {
        eprintln!("Error writing config entry {kind}/{name}: {}", response_error(status, &body));
        return Ok(1);
    }
    if body.trim_ascii() == b"true" {
        println!("Config entry written: {kind}/{name}");
        return Ok(0);
    }
    eprintln!("Config entry not updated: {kind}/{name}");
    Ok(1)
}

async fn read(args: &ConfigEntryArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let (kind, name) = match kind_and_name(args) {
        Ok(pair) => pair,
        Err(why) => return usage(why),
    };
    let agent = AgentClient::new(&args.http, env)?;
    let path = format!("/v1/config/{}/{}", segment(kind), segment(name));
    let (status, body) = agent.send(Method::GET, &path, None).await?;
    if !status.is_success() {
        eprintln!("Error reading config entry {kind}/{name}: {}", response_error(status, &body));
        return Ok(1);
    }
    let entry: Value = serde_json::from_slice(&body).context("the agent's answer is not valid JSON")?;
    print_stdout(format!("{}\n", pretty(&entry)?).as_bytes())
}

async fn list(args: &ConfigListArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let Some(kind) = args.kind.as_deref().filter(|k| !k.is_empty()) else {
        return usage("Must specify the -kind parameter");
    };
    let agent = AgentClient::new(&args.http, env)?;
    let (status, body) = agent.send(Method::GET, &format!("/v1/config/{}", segment(kind)), None).await?;
    if !status.is_success() {
        eprintln!("Error listing config entries for kind {kind:?}: {}", response_error(status, &body));
        return Ok(1);
    }
    let entries: Vec<Value> = serde_json::from_slice(&body).context("the agent's answer is not valid JSON")?;
    let text: String = entries.iter().map(|e| format!("{}\n", field(e, "name"))).collect();
    print_stdout(text.as_bytes())
}

async fn delete(args: &ConfigDeleteArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let (kind, name) = match kind_and_name(&args.entry) {
        Ok(pair) => pair,
        Err(why) => return usage(why),
    };
    let query = match cas_query(args.cas, args.modify_index, true) {
        Ok(query) => query,
        Err(why) => return usage(&why),
    };
    let agent = AgentClient::new(&args.entry.http, env)?;
    let path = format!("/v1/config/{}/{}{query}", segment(kind), segment(name));
    let (status, body) = agent.send(Method::DELETE, &path, None).await?;
    if !status.is_success() {
        eprintln!("Error deleting config entry {kind}/{name}: {}", response_error(status, &body));
        return Ok(1);
    }
    if args.cas && body.trim_ascii() != b"true" {
        eprintln!("Config entry not deleted: {kind}/{name}");
        return Ok(1);
    }
    println!("Config entry deleted: {kind}/{name}");
    Ok(0)
}

/// The `?cas=` of a write or delete, checked as Consul's CLI checks the two flags.
fn cas_query(cas: bool, modify_index: Option<u64>, delete: bool) -> Result<String, String> {
    match (cas, modify_index) {
        (false, None) => Ok(String::new()),
        (false, Some(_)) => Err("Cannot specify -modify-index without -cas".into()),
        (true, None) => Err("Must specify a -modify-index with -cas".into()),
        (true, Some(0)) if delete => Err("Must specify a -modify-index greater than 0 with -cas".into()),
        (true, Some(index)) => Ok(format!("?cas={index}")),
    }
}

fn kind_and_name(args: &ConfigEntryArgs) -> Result<(&str, &str), &'static str> {
    let kind = args.kind.as_deref().filter(|k| !k.is_empty()).ok_or("Must specify the -kind parameter")?;
    let name = args.name.as_deref().filter(|n| !n.is_empty()).ok_or("Must specify the -name parameter")?;
    Ok((kind, name))
}

fn usage(why: &str) -> anyhow::Result<i32> {
    eprintln!("{why}");
    Ok(1)
}

/// The entry's JSON object from a file or stdin; HCL is refused by name.
async fn read_entry(file: &str) -> anyhow::Result<Value> {
    let text = if file == "-" {
        let mut text = String::new();
        tokio::io::stdin().read_to_string(&mut text).await.context("cannot read stdin")?;
        text
    } else {
        if Path::new(file).extension().is_some_and(|ext| ext.eq_ignore_ascii_case("hcl")) {
            anyhow::bail!("{file}: HCL config entries are not supported by roster; write the entry as JSON");
        }
        tokio::fs::read_to_string(file).await.with_context(|| format!("cannot read {file}"))?
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => anyhow::bail!("the config entry must be a JSON object"),
        Err(_) if !text.trim_start().starts_with('{') => {
            anyhow::bail!(
                "the input is not JSON (HCL config entries are not supported by roster; write the entry as JSON)"
            )
        }
        Err(err) => Err(err).context("the config entry is not valid JSON"),
    }
}

/// A top-level string field, matched in any case and ignoring `_` as the agent matches it.
fn field(entry: &Value, name: &str) -> String {
    let Value::Object(map) = entry else { return String::new() };
    map.iter()
        .find(|(key, _)| key.replace('_', "").eq_ignore_ascii_case(name))
        .and_then(|(_, value)| value.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// What the agent said, as Consul's API client words a failed call.
fn response_error(status: reqwest::StatusCode, body: &[u8]) -> String {
    format!("Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(body).trim())
}

/// JSON indented by four spaces, as Consul's `config read` prints it.
fn pretty(value: &Value) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut serializer)?;
    Ok(String::from_utf8(out)?)
}
