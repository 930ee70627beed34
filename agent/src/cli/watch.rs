//! `roster watch`: Consul's `consul watch`, a blocking-query loop over one data view that hands
//! every change to a handler.
//!
//! The loop is [`plan::Plan`] (index bookkeeping and backoff, no I/O) driven by blocking reads of
//! the path [`kind::Source`] builds; [`handler::Handler`] runs a command, POSTs to a URL, or,
//! with no handler, prints the current result once and exits.
//!
//! # Layout
//! - `agent_http`: the blocking-query HTTP client, shared with `roster lock`.
//! - `kind`: the watch types, their paths and result shapes.
//! - `plan`: when to fire, where to resume, how long to back off.
//! - `handler`: shell, exec, HTTP and print handlers.

pub(super) mod agent_http;
mod handler;
mod kind;
mod plan;

use anyhow::Context;
use clap::Args;

use self::agent_http::AgentHttp;
use self::handler::{Handler, Next};
use self::kind::{Params, Source};
use self::plan::Plan;
use super::HttpArgs;
use crate::config::EnvSource;

pub use self::kind::WatchType;

/// `roster watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The data view to watch.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: WatchType,
    /// Key to watch (`key` type).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Key prefix to watch (`keyprefix` type).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Service to watch (`service` type; optional for `checks`).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Service tag to filter on (`service` type); may repeat.
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only passing instances (`service` type).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub passingonly: bool,
    /// Check state to watch (`checks` type): any, passing, warning, critical.
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Event name to watch (`event` type).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// `?filter=` expression (`services`, `nodes`, `service`, `checks`).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Handler command line, run with the JSON on stdin (instead of positional arguments).
    #[arg(long, value_name = "CMD", conflicts_with_all = ["http_handler", "child"])]
    pub handler: Option<String>,
    /// POST every result to this URL instead of running a command.
    #[arg(long, value_name = "URL", conflicts_with = "child")]
    pub http_handler: Option<String>,
    /// Run the handler through `$SHELL -c` (default true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub shell: bool,
    /// Handler command, Consul's way (`consul watch -type key -key k ./handler.sh`).
    #[arg(value_name = "CHILD", trailing_var_arg = true, allow_hyphen_values = true)]
    pub child: Vec<String>,
}

/// Runs the watch until a handler fails (exit 1) or, without a handler, after the first result.
pub async fn run(args: &WatchArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let source = Source::new(args.kind, &params(args))?;
    let handler = handler(args);
    let agent = AgentHttp::new(&args.http, env)?;
    // Consul checks that the agent answers before it starts, so a wrong address fails fast
    // instead of retrying with backoff forever.
    agent.get("/v1/agent/self", 0).await?.json().context("Error querying Consul agent")?;
    let mut plan = Plan::new(source.ordered_index());
    loop {
        let fetched = match agent.get(source.path(), plan.wait_index()).await {
            Ok(reply) => source.result(&reply, plan.wait_index()),
            Err(err) => Err(err),
        };
        let (index, result) = match fetched {
            Ok(answer) => answer,
            Err(err) => {
                let retry = plan.failed();
                eprintln!("roster watch: {err:#}; retrying in {retry:?}");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        if !plan.observe(index, &result) {
            continue;
        }
        match handler.handle(&agent, index, &result).await {
            Ok(Next::Continue) => {}
            Ok(Next::Stop) => return Ok(0),
            Err(err) => {
                eprintln!("{err:#}");
                return Ok(1);
            }
        }
    }
}

/// The parameters that select what is read, as given on the command line.
fn params(args: &WatchArgs) -> Params {
    Params {
        key: args.key.clone(),
        prefix: args.prefix.clone(),
        service: args.service.clone(),
        tags: args.tag.clone(),
        passing_only: args.passingonly,
        state: args.state.clone(),
        name: args.name.clone(),
        filter: args.filter.clone(),
    }
}

/// `-handler`, `-http-handler`, the positional command, or printing.
fn handler(args: &WatchArgs) -> Handler {
    if let Some(url) = &args.http_handler {
        return Handler::Http(url.clone());
    }
    if let Some(line) = &args.handler {
        return if args.shell { Handler::Shell(line.clone()) } else { Handler::Exec(split_words(line)) };
    }
    match (args.child.is_empty(), args.shell) {
        (true, _) => Handler::Print,
        (false, true) => Handler::Shell(args.child.join(" ")),
        (false, false) => Handler::Exec(args.child.clone()),
    }
}

/// `-shell=false -handler "prog a b"`: whitespace-separated words, no quoting (as Consul).
fn split_words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests;
