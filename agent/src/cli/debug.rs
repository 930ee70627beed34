//! `roster debug`: Consul's `consul debug`. Over `-duration`, every `-interval`, it captures what an operator attaches
//! to a bug report, then packs it into `<output>.tar.gz` (or leaves the directory, with `-archive=false`).
//!
//! The layout is Consul's, so the same habits read it: `index.json` (format version, agent version, interval,
//! duration, targets), `agent.json` (`/v1/agent/self`), `host.json` (`/v1/agent/host`), `members.json`,
//! `consul.log` (the monitor stream at trace for the whole duration), and one directory per interval with
//! `metrics.json` (`/v1/agent/metrics`). Roster adds `raft.json` (`/v1/operator/raft/configuration`, where Consul
//! writes a `list-peers` table) and, for the `pprof` target, `tasks.json` per interval: Go's goroutine profile has no
//! tokio equivalent without an unstable build, so it holds the runtime's task and worker counts from `Stats.runtime`.
//! A capture the agent refuses or fails is recorded as `<name>.error.txt` with the status and reason, so the archive
//! says what is missing and why.
//!
//! Secrets: every captured JSON document is passed through [`redact`], which replaces the value of any key naming a
//! token, secret, password, private key or the gossip key with `hidden`, whatever the endpoint returned.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::HttpArgs;
use super::watch::agent_http::AgentHttp;
use crate::config::{EnvSource, format_go_duration, parse_go_duration};

/// What `-capture` may name, in Consul's order; all of them by default.
const TARGETS: &[&str] = &["metrics", "logs", "pprof", "host", "agent", "members"];
/// Consul's shortest `-duration` and `-interval`, which keep a capture from hammering the agent.
const MIN_DURATION: Duration = Duration::from_secs(10);
const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// The version of this archive layout (Consul's `debugProtocolVersion`).
const ARCHIVE_VERSION: u32 = 1;
/// How each redacted value reads.
const HIDDEN: &str = "hidden";

/// `roster debug`.
#[derive(Debug, Clone, Args)]
pub struct DebugArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// How long to capture (at least 10s).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub duration: String,
    /// How often to capture metrics and task counts (at least 5s).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub interval: String,
    /// The path to write to, without `.tar.gz` (default `roster-debug-<time>` in the current directory).
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Pack the capture into `<output>.tar.gz` and remove the directory; `-archive=false` keeps the directory.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub archive: bool,
    /// What to capture (metrics, logs, pprof, host, agent, members); may repeat. Default: everything.
    #[arg(long, value_name = "TARGET")]
    pub capture: Vec<String>,
}

/// Runs `roster debug`.
pub(super) async fn run(args: &DebugArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    super::client::install_crypto_provider();
    let plan = match Plan::new(args) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("==> Capture validation failed: {err:#}");
            return Ok(1);
        }
    };
    let agent = AgentHttp::with_timeout(&args.http, env, Duration::from_secs(30))?;
    let version = match agent.send(Method::GET, "/v1/agent/self", None).await.and_then(|reply| reply.json()) {
        Ok(me) => me["Config"]["Version"].as_str().unwrap_or("unknown").to_owned(),
        Err(err) => {
            eprintln!(
                "==> Capture validation failed: error querying target agent: {err:#}. verify connectivity and agent address"
            );
            return Ok(1);
        }
    };
    if plan.output.exists() {
        eprintln!("==> Capture validation failed: output directory already exists: {}", plan.output.display());
        return Ok(1);
    }
    create_private_dir(&plan.output)?;
    let shown =
        if args.archive { format!("{}.tar.gz", plan.output.display()) } else { plan.output.display().to_string() };
    println!("==> Starting debugger and capturing static information...");
    println!("     Agent Version: '{version}'");
    println!("          Interval: '{}'", format_go_duration(plan.interval));
    println!("          Duration: '{}'", format_go_duration(plan.duration));
    println!("            Output: '{shown}'");
    println!("           Capture: '{}'", plan.targets.join(", "));

    plan.capture_static(&agent).await?;
    let streaming = AgentHttp::streaming(&args.http, env)?;
    let logs = plan
        .wants("logs")
        .then(|| tokio::spawn(capture_logs(streaming, plan.output.join("consul.log"), plan.duration)));
    plan.capture_intervals(&agent).await?;
    if let Some(logs) = logs {
        logs.await.context("the log capture")??;
    }
    let index = json!({
        "Version": ARCHIVE_VERSION,
        "AgentVersion": version,
        "Interval": format_go_duration(plan.interval),
        "Duration": format_go_duration(plan.duration),
        "Targets": plan.targets,
    });
    write_json(&plan.output.join("index.json"), &index)?;
    let raft = agent.send(Method::GET, "/v1/operator/raft/configuration", None).await;
    plan.record(&plan.output, "raft", raft)?;
    if args.archive {
        let archive = write_archive(&plan.output)?;
        std::fs::remove_dir_all(&plan.output)
            .with_context(|| format!("removing {} after archiving it", plan.output.display()))?;
        println!("==> Saved debug archive: {}", archive.display());
    } else {
        println!("==> Saved debug directory: {}", plan.output.display());
    }
    Ok(0)
}

/// The checked flags.
struct Plan {
    duration: Duration,
    interval: Duration,
    output: PathBuf,
    targets: Vec<String>,
}

impl Plan {
    fn new(args: &DebugArgs) -> anyhow::Result<Plan> {
        let duration = parse_go_duration(&args.duration).map_err(|why| anyhow::anyhow!("-duration: {why}"))?;
        let interval = parse_go_duration(&args.interval).map_err(|why| anyhow::anyhow!("-interval: {why}"))?;
        if duration < MIN_DURATION {
            bail!("duration must be longer than {}", format_go_duration(MIN_DURATION));
        }
        if interval < MIN_INTERVAL {
            bail!("interval must be longer than {}", format_go_duration(MIN_INTERVAL));
        }
        if duration < interval {
            bail!("duration ({}) must be longer than interval ({})", args.duration, args.interval);
        }
        let mut targets = Vec::new();
        for target in &args.capture {
            // Consul's deprecated name for `members`.
            let target = if target == "cluster" { "members" } else { target.as_str() };
            if !TARGETS.contains(&target) {
                bail!("target not found: {target}");
            }
            if !targets.iter().any(|seen| seen == target) {
                targets.push(target.to_owned());
            }
        }
        if targets.is_empty() {
            targets = TARGETS.iter().map(|target| (*target).to_owned()).collect();
        }
        let output = args.output.clone().unwrap_or_else(|| {
            let now = path_stamp();
            PathBuf::from(format!("roster-debug-{now}"))
        });
        Ok(Plan { duration, interval, output, targets })
    }

    fn wants(&self, target: &str) -> bool {
        self.targets.iter().any(|wanted| wanted == target)
    }

    /// `host.json`, `agent.json` and `members.json`, once.
    async fn capture_static(&self, agent: &AgentHttp) -> anyhow::Result<()> {
        for (target, path) in
            [("host", "/v1/agent/host"), ("agent", "/v1/agent/self"), ("members", "/v1/agent/members")]
        {
            if self.wants(target) {
                let reply = agent.send(Method::GET, path, None).await;
                self.record(&self.output, target, reply)?;
            }
        }
        Ok(())
    }

    /// Metrics and task counts at the start and every interval until the duration is over.
    async fn capture_intervals(&self, agent: &AgentHttp) -> anyhow::Result<()> {
        if !self.wants("metrics") && !self.wants("pprof") {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.duration;
        let mut ticks = tokio::time::interval(self.interval);
        let mut count = 0;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = tokio::time::sleep_until(deadline) => return Ok(()),
            }
            let stamp = path_stamp();
            println!("==> Capturing interval {stamp} ({count})");
            let dir = self.output.join(&stamp);
            create_private_dir(&dir)?;
            if self.wants("metrics") {
                let reply = agent.send(Method::GET, "/v1/agent/metrics", None).await;
                self.record(&dir, "metrics", reply)?;
            }
            if self.wants("pprof") {
                let reply = agent.send(Method::GET, "/v1/agent/self", None).await;
                let tasks = reply.and_then(|reply| Ok(json!({ "runtime": reply.json()?["Stats"]["runtime"].clone() })));
                match tasks {
                    Ok(tasks) => write_json(&dir.join("tasks.json"), &tasks)?,
                    Err(err) => write_private(&dir.join("tasks.error.txt"), format!("{err:#}\n").as_bytes())?,
                }
            }
            count += 1;
        }
    }

    /// Writes `<name>.json` (redacted) from a 2xx JSON answer, else `<name>.error.txt` saying what went wrong.
    fn record(
        &self,
        dir: &Path,
        name: &str,
        reply: anyhow::Result<super::watch::agent_http::Reply>,
    ) -> anyhow::Result<()> {
        match reply.and_then(|reply| reply.json()) {
            Ok(mut document) => {
                redact(&mut document);
                write_json(&dir.join(format!("{name}.json")), &document)
            }
            Err(err) => {
                println!("    {name}: not captured: {err:#}");
                write_private(&dir.join(format!("{name}.error.txt")), format!("{err:#}\n").as_bytes())
            }
        }
    }
}

/// Streams the monitor at trace into `path` until `duration` is over (or the agent ends the stream).
async fn capture_logs(agent: AgentHttp, path: PathBuf, duration: Duration) -> anyhow::Result<()> {
    let mut file = private_file(&path)?;
    let mut response = agent.open("/v1/agent/monitor?loglevel=trace").await?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        drop(file);
        std::fs::remove_file(&path)?;
        let error = format!("Unexpected response code: {status} ({})\n", body.trim());
        return write_private(&path.with_extension("error.txt"), error.as_bytes());
    }
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk?,
            () = tokio::time::sleep_until(deadline) => return Ok(()),
        };
        match chunk {
            Some(bytes) => file.write_all(&bytes)?,
            None => return Ok(()),
        }
    }
}

/// Now in UTC as Consul names capture paths: RFC 3339 with `-` for `:`, which tar would take for a remote host.
fn path_stamp() -> String {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| secs.to_string(), |t| t.format("%Y-%m-%dT%H-%M-%SZ").to_string())
}

/// Replaces, at any depth, the values of keys that name secrets.
pub(crate) fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_key(key) && !inner.is_null() {
                    *inner = Value::from(HIDDEN);
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Whether a key names something secret: tokens (`Token`, `AgentToken`, `acl_token`...), secrets, passwords, private
/// keys (`KeyFile` is a path and is kept) and the gossip encryption key.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace(['_', '-'], "");
    key.contains("token")
        || key.contains("secret")
        || key.contains("password")
        || key == "encrypt"
        || key == "encryptkey"
        || key.ends_with("privatekey")
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("could not create output directory: {}", path.display()))
}

/// A new file only its owner can read: a capture describes the cluster.
fn private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    private_file(path)?.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_private(path, text.as_bytes())
}

/// Packs `dir` into `<dir>.tar.gz` under its own name, through a temporary file renamed into place once complete.
fn write_archive(dir: &Path) -> anyhow::Result<PathBuf> {
    let name = dir.file_name().context("the output path has no name")?;
    let archive = dir.with_file_name(format!("{}.tar.gz", name.to_string_lossy()));
    let tmp = dir.with_file_name(format!("{}.tar.gz.tmp", name.to_string_lossy()));
    let file = private_file(&tmp)?;
    let gzip = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    tar.append_dir_all(name, dir).with_context(|| format!("archiving {}", dir.display()))?;
    let file = tar.into_inner()?.finish()?;
    file.sync_all()?;
    std::fs::rename(&tmp, &archive).with_context(|| format!("writing {}", archive.display()))?;
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_at_any_depth_and_paths_kept() {
        let mut document = json!({
            "Config": {"NodeName": "n1", "acl": {"tokens": {"agent": "s3cr3t"}}},
            "DebugConfig": {"ACLTokens": {"ACLAgentToken": "s3cr3t"}, "Encrypt": "a2V5", "KeyFile": "/etc/k.pem",
                            "list": [{"SecretID": "s3cr3t", "Name": "x"}]},
        });
        redact(&mut document);
        assert!(!document.to_string().contains("s3cr3t"), "{document}");
        assert!(!document.to_string().contains("a2V5"), "{document}");
        assert_eq!(document["DebugConfig"]["KeyFile"], "/etc/k.pem");
        assert_eq!(document["DebugConfig"]["list"][0]["Name"], "x");
    }

    #[test]
    fn timing_and_targets_are_checked_as_consul_does() {
        let args = |duration: &str, interval: &str, capture: &[&str]| DebugArgs {
            http: HttpArgs::default(),
            duration: duration.into(),
            interval: interval.into(),
            output: Some(PathBuf::from("out")),
            archive: true,
            capture: capture.iter().map(|c| (*c).to_owned()).collect(),
        };
        let error = |a: DebugArgs| Plan::new(&a).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(error(args("5s", "5s", &[])), "duration must be longer than 10s");
        assert_eq!(error(args("30s", "1s", &[])), "interval must be longer than 5s");
        assert_eq!(error(args("10s", "20s", &[])), "duration (10s) must be longer than interval (20s)");
        assert_eq!(error(args("30s", "10s", &["bogus"])), "target not found: bogus");
        let plan = Plan::new(&args("30s", "10s", &["cluster", "host"])).expect("valid");
        assert_eq!(plan.targets, ["members", "host"]);
        assert_eq!(Plan::new(&args("30s", "10s", &[])).expect("valid").targets.len(), TARGETS.len());
    }
}
