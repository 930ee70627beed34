//! `roster-lb-helper`: keeps an nginx upstream file in step with one service's passing instances
//! and the settings under a KV prefix, and reloads nginx only when the file's text changes.
//!
//! The lifecycle: parse flags → validate the template → follow two blocking queries (health and
//! KV, one task each) → on every change render the file, and if its text differs from what is on
//! disk, write it atomically and run `-reload`. See README.md for the template syntax.
//!
//! # Layout
//! - `follow`: the blocking-query loops.
//! - `render`: backends and settings from the agent's JSON, and the template.
//! - `output`: atomic write and the reload command.

#![forbid(unsafe_code)]

mod follow;
mod output;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::follow::{Agent, Feed, Update};
use crate::render::{Backend, Settings};

/// Characters escaped in a path segment (service name) and in a KV prefix (which keeps its `/`).
const SEGMENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
const KEY_ESCAPES: &AsciiSet = &SEGMENT_ESCAPES.remove(b'/');

/// The command line; flags take one dash or two, as roster's own.
#[derive(Debug, Parser)]
#[command(name = "roster-lb-helper", about = "Render an nginx upstream from a roster service and reload nginx")]
struct Args {
    /// Agent HTTP address (default: $CONSUL_HTTP_ADDR, then 127.0.0.1:8500).
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// ACL token (default: $CONSUL_HTTP_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// The service whose passing instances become the upstream's servers.
    #[arg(long, value_name = "NAME")]
    service: String,
    /// KV prefix with the settings (default `lb/<service>/`).
    #[arg(long, value_name = "PREFIX")]
    kv_prefix: Option<String>,
    /// The file to write (nginx `include`s it).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Template file (default: a built-in `upstream` block).
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// Shell command run after the file changed, e.g. `nginx -s reload`.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    reload: Option<String>,
}

fn main() -> ExitCode {
    // reqwest is built without a default TLS provider; the workspace uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse_from(double_dash(std::env::args()));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("roster-lb-helper: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("roster-lb-helper: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Follows the service and the settings until killed.
async fn run(args: Args) -> anyhow::Result<()> {
    let template = match &args.template {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => render::DEFAULT_TEMPLATE.to_owned(),
    };
    validate_template(&template, &args.service)?;
    let prefix = args.kv_prefix.clone().unwrap_or_else(|| format!("lb/{}/", args.service));
    let prefix = prefix.trim_start_matches('/').to_owned();
    let agent = agent(&args)?;
    let (updates_tx, mut updates) = mpsc::channel(16);
    // The followers belong to this set; returning from `run` drops it, which aborts them.
    let mut followers = JoinSet::new();
    let health_path = format!("/v1/health/service/{}?passing", utf8_percent_encode(&args.service, SEGMENT_ESCAPES));
    let kv_path = format!("/v1/kv/{}?recurse", utf8_percent_encode(&prefix, KEY_ESCAPES));
    followers.spawn(follow::follow(agent.clone(), Feed::Health, health_path, updates_tx.clone()));
    followers.spawn(follow::follow(agent, Feed::Kv, kv_path, updates_tx));

    let mut backends: Option<Vec<Backend>> = None;
    let mut settings: Option<Settings> = None;
    while let Some(update) = updates.recv().await {
        absorb(update, &prefix, &mut backends, &mut settings);
        // Several changes often arrive together (an instance and its checks); render once.
        while let Ok(update) = updates.try_recv() {
            absorb(update, &prefix, &mut backends, &mut settings);
        }
        if let (Some(backends), Some(settings)) = (&backends, &settings) {
            let text = render::render(&template, &args.service, backends, settings)?;
            apply(&args, &text).await;
        }
    }
    anyhow::bail!("both blocking queries stopped")
}

/// Takes one update into the current state; an unreadable answer keeps the previous state.
fn absorb(update: Update, prefix: &str, backends: &mut Option<Vec<Backend>>, settings: &mut Option<Settings>) {
    match update.feed {
        Feed::Health => match render::backends(&update.body) {
            Ok(found) => *backends = Some(found),
            Err(err) => eprintln!("roster-lb-helper: {err:#}"),
        },
        Feed::Kv => *settings = Some(render::settings(&update.body, prefix)),
    }
}

/// Writes and reloads when `text` differs from the file on disk (so a restart of the helper
/// does not reload nginx for nothing).
async fn apply(args: &Args, text: &str) {
    let current = std::fs::read_to_string(&args.out).ok();
    if current.as_deref() == Some(text) {
        return;
    }
    if let Err(err) = output::write_atomically(&args.out, text) {
        eprintln!("roster-lb-helper: {err:#}");
        return;
    }
    eprintln!("roster-lb-helper: wrote {}", args.out.display());
    if let Some(command) = &args.reload {
        match output::reload(command).await {
            Ok(()) => eprintln!("roster-lb-helper: reloaded"),
            Err(err) => eprintln!("roster-lb-helper: {err:#}"),
        }
    }
}

/// Renders the template once with and once without a backend, so a typo fails at start rather
/// than at the first change.
fn validate_template(template: &str, service: &str) -> anyhow::Result<()> {
    let sample = Backend { address: "127.0.0.1".into(), port: 80, id: "id".into(), node: "node".into(), weight: 1 };
    render::render(template, service, &[sample], &Settings::default()).context("invalid template")?;
    render::render(template, service, &[], &Settings::default()).context("invalid template")?;
    Ok(())
}

/// The agent client from `-http-addr`/`-token` or `CONSUL_HTTP_ADDR`/`CONSUL_HTTP_TOKEN`.
fn agent(args: &Args) -> anyhow::Result<Agent> {
    let addr = args
        .http_addr
        .clone()
        .or_else(|| std::env::var("CONSUL_HTTP_ADDR").ok())
        .filter(|addr| !addr.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:8500".to_owned());
    let addr = addr.trim().trim_end_matches('/');
    let base = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    let token = args.token.clone().or_else(|| std::env::var("CONSUL_HTTP_TOKEN").ok()).filter(|t| !t.is_empty());
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(follow::REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    Ok(Agent { http, base, token })
}

/// Rewrites Consul-style `-flag`/`-flag=v` into `--flag`/`--flag=v` for this program's long
/// flags only, so a value that starts with a dash (`-reload "-x"`) is left alone.
fn double_dash(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let command = <Args as clap::CommandFactory>::command();
    let known: Vec<String> = command.get_arguments().filter_map(|arg| arg.get_long()).map(str::to_owned).collect();
    args.into_iter()
        .enumerate()
        .map(|(idx, arg)| {
            let body = arg.strip_prefix('-').filter(|body| !body.starts_with('-'));
            let name = body.map(|body| body.split_once('=').map_or(body, |(name, _)| name));
            let long = name.is_some_and(|name| known.iter().any(|known| known == name));
            if idx > 0 && long { format!("-{arg}") } else { arg }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Tests of the flag rewriting and parsing.

    use super::*;

    #[test]
    fn single_dash_flags_parse() {
        let words = ["roster-lb-helper", "-service", "web", "-out=/tmp/u.conf", "-reload", "-x", "--kv-prefix", "p/"];
        let args = Args::try_parse_from(double_dash(words.map(str::to_owned))).expect("parses");
        assert_eq!((args.service.as_str(), args.kv_prefix.as_deref()), ("web", Some("p/")));
        assert_eq!(args.out, PathBuf::from("/tmp/u.conf"));
        assert_eq!(args.reload.as_deref(), Some("-x"), "a dash value that names no flag stays a value");
    }

    #[test]
    fn a_template_with_a_typo_fails_at_start() {
        assert!(validate_template(render::DEFAULT_TEMPLATE, "web").is_ok());
        let err = validate_template("{{#each backends}}{{adress}}{{/each}}", "web").expect_err("typo");
        assert!(format!("{err:#}").contains("unknown placeholder `{{adress}}`"), "{err:#}");
    }
}
