//! `roster snapshot save|restore|inspect`: Consul's snapshot commands over `/v1/snapshot` and the archive format of
//! `roster_snapshot`.
//!
//! `save` checks the archive it received (checksums, versions, that the state decodes) before the file exists under its
//! name: it is written to a temporary file created with mode 0600 beside it, synced, then renamed, so a failed or
//! interrupted save never leaves a partial file where a good one was expected. `inspect` reads a file offline.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::HttpArgs;
use super::client::AgentClient;
use crate::config::EnvSource;

/// `roster snapshot ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum SnapshotCommand {
    /// Save a snapshot of the servers' state to a file.
    Save(SnapshotSaveArgs),
    /// Restore the servers' state from a snapshot file, replacing all of it.
    Restore(SnapshotRestoreArgs),
    /// Print what a snapshot file holds, without contacting an agent.
    Inspect(SnapshotInspectArgs),
}

/// `roster snapshot save FILE`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotSaveArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Let any server answer from its own state, not only the leader.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub stale: bool,
    /// Where to write the snapshot.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `roster snapshot restore FILE`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotRestoreArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The snapshot to restore.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `roster snapshot inspect FILE`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotInspectArgs {
    /// `pretty` (the default) or `json`.
    #[arg(long, default_value = "pretty", value_parser = ["pretty", "json"], value_name = "FORMAT")]
    pub format: String,
    /// The snapshot to inspect.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs a `roster snapshot` subcommand.
pub(super) async fn run(command: &SnapshotCommand, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match command {
        SnapshotCommand::Save(args) => save(args, env).await,
        SnapshotCommand::Restore(args) => restore(args, env).await,
        SnapshotCommand::Inspect(args) => inspect(args),
    }
}

async fn save(args: &SnapshotSaveArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(&args.http, env)?;
    let path = if args.stale { "/v1/snapshot?stale" } else { "/v1/snapshot" };
    let (status, body) = agent.send(Method::GET, path, None).await?;
    if !status.is_success() {
        let why = String::from_utf8_lossy(&body);
        eprintln!("Error saving snapshot: Unexpected response code: {} ({})", status.as_u16(), why.trim());
        return Ok(1);
    }
    let archive = match roster_snapshot::read(&body[..]).and_then(|a| a.decode_state().map(|_| a)) {
        Ok(archive) => archive,
        Err(err) => {
            eprintln!("Error verifying snapshot: {err}");
            return Ok(1);
        }
    };
    write_private(&args.file, &body).with_context(|| format!("Error writing snapshot file {}", args.file.display()))?;
    println!("Saved and verified snapshot to index {}", archive.meta.index);
    Ok(0)
}

/// Writes `bytes` to `path` through a temporary file created with mode 0600 in the same directory, synced, then renamed.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

async fn restore(args: &SnapshotRestoreArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let bytes = match tokio::fs::read(&args.file).await {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!("Error opening snapshot file: {err}");
            return Ok(1);
        }
    };
    let agent = AgentClient::new(&args.http, env)?;
    let (status, body) = agent.send(Method::PUT, "/v1/snapshot", Some(bytes)).await?;
    if !status.is_success() {
        let why = String::from_utf8_lossy(&body);
        eprintln!("Error restoring snapshot: Unexpected response code: {} ({})", status.as_u16(), why.trim());
        return Ok(1);
    }
    println!("Restored snapshot");
    Ok(0)
}

fn inspect(args: &SnapshotInspectArgs) -> anyhow::Result<i32> {
    let file = match std::fs::File::open(&args.file) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("Error opening snapshot file: {err}");
            return Ok(1);
        }
    };
    let checked = roster_snapshot::read(std::io::BufReader::new(file)).and_then(|a| Ok((a.decode_state()?, a)));
    let (state, archive) = match checked {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("Error verifying snapshot file: {err}");
            return Ok(1);
        }
    };
    let counts = state.record_counts();
    let meta = &archive.meta;
    if args.format == "json" {
        let stats: Vec<_> = counts.iter().map(|(name, count)| json!({"Name": name, "Count": count})).collect();
        let body = json!({
            "Meta": {
                "ID": meta.id, "Size": meta.state_size, "Index": meta.index, "Term": meta.term, "Version": meta.version,
                "StateVersion": meta.state_version,
            },
            "Servers": meta.servers,
            "Stats": stats,
            "ChecksumsOK": true,
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(0);
    }
    print!("{}", pretty(&archive.meta, &counts));
    Ok(0)
}

/// Consul's `snapshot inspect` layout: the meta, then a count per record kind.
fn pretty(meta: &roster_snapshot::Meta, counts: &[(&str, u64)]) -> String {
    let mut out = String::new();
    for (key, value) in [
        ("ID", meta.id.clone()),
        ("Size", meta.state_size.to_string()),
        ("Index", meta.index.to_string()),
        ("Term", meta.term.to_string()),
        ("Version", meta.version.to_string()),
    ] {
        out.push_str(&format!(" {key:<13}{value}\n"));
    }
    out.push_str(&format!("\n {:<22}{}\n {:<22}{}\n", "Type", "Count", "----", "-----"));
    for (name, count) in counts {
        out.push_str(&format!(" {name:<22}{count}\n"));
    }
    out.push_str("\n Checksums OK\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_lists_meta_then_counts() {
        let meta = roster_snapshot::Meta {
            version: 1,
            id: "2-9-1".into(),
            index: 9,
            term: 2,
            servers: Vec::new(),
            state_version: 5,
            state_size: 120,
        };
        let text = pretty(&meta, &[("KV entries", 3), ("Nodes", 1)]);
        assert!(
            text.starts_with(" ID           2-9-1\n Size         120\n Index        9\n Term         2\n"),
            "{text}"
        );
        assert!(text.contains(" KV entries            3\n Nodes                 1\n"), "{text}");
        assert!(text.ends_with("Checksums OK\n"));
    }

    #[test]
    fn a_save_leaves_a_private_file_and_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("backup.snap");
        write_private(&path, b"bytes").expect("writes");
        let mode = std::fs::metadata(&path).expect("exists").permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).expect("lists").count(), 1);
    }
}
