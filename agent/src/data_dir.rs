//! The data dir's format marker: written when a data dir is initialized, read at every start, so a roster never
//! misreads a data dir laid out by a newer roster, or a directory that is not a roster data dir at all.
//!
//! The marker is `<data_dir>/roster-data-format`, one decimal number and a newline, written atomically (a temporary
//! file, fsync, rename, directory fsync). Formats:
//! - **1**: the layout before the marker: `node-id`, `raft-log.redb` with unversioned log entries, `snapshots/`,
//!   `local.json`, `jobs.json`, `exec/`, `acl-tokens.json`, `serf/`, an operator's `acl-bootstrap-reset`. A data dir
//!   that holds nothing else is recognised as format 1 and upgraded by writing the marker; the server reads its
//!   unversioned log entries as they are.
//! - **2**: the marker, and Raft log entries that carry their own version (`roster-server`'s log envelope).
//! - **3**: the Raft log in `raft-log.wal`, roster-server's own file of checksummed records, instead of
//!   `raft-log.redb`. The server moves a format-1 or -2 dir's redb log into it when it first opens it, so the upgrade
//!   is the marker; the marker is what keeps an older roster, which would find no `raft-log.redb` and start with an
//!   empty log, from using the dir after it.
//!
//! A marker of a newer format is refused with both versions named, before anything is read or written; so is a
//! data dir with no marker that holds anything format 1 never wrote (another program's directory, or a Consul data
//! dir, whose `raft/raft.db` roster cannot read).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};

/// The data-dir format this build writes, and the newest it reads.
pub const FORMAT: u32 = 3;

/// The marker's file name.
pub const MARKER: &str = "roster-data-format";

/// What a format-1 data dir may hold at its top level (each also with a `.tmp` twin, left by an interrupted
/// atomic write). `raft` is where an operator puts `peers.json` for outage recovery.
const FORMAT_1_NAMES: &[&str] = &[
    "node-id",
    "raft-log.redb",
    "snapshots",
    "local.json",
    "jobs.json",
    "exec",
    "acl-tokens.json",
    "acl-bootstrap-reset",
    "serf",
    "raft",
];

/// Checks the format of `dir` and marks it: a new or empty dir is initialized, a format-1 dir upgraded.
///
/// Runs before anything else reads or writes the data dir. Returns the format the dir had (`None` for a new one).
pub fn prepare(dir: &Path) -> anyhow::Result<Option<u32>> {
    let marker = dir.join(MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let found: u32 =
                text.trim().parse().ok().filter(|v| *v >= 1).with_context(|| {
                    format!("{}: not a data-dir format number: {:?}", marker.display(), text.trim())
                })?;
            if found > FORMAT {
                bail!(
                    "data dir {} has format {found}, written by a newer roster; this roster reads formats up to {FORMAT}. \
                     Run the newer roster, or point -data-dir at another directory",
                    dir.display()
                );
            }
            if found < FORMAT {
                upgrade(dir, found)?;
            }
            Ok(Some(found))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => unmarked(dir),
        Err(e) => Err(e).with_context(|| format!("reading {}", marker.display())),
    }
}

/// A data dir without a marker: new, empty, format 1, or not roster's.
fn unmarked(dir: &Path) -> anyhow::Result<Option<u32>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
            write_marker(dir)?;
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("reading data dir {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading data dir {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        write_marker(dir)?;
        return Ok(None);
    }
    let mut unknown: Vec<&String> = names.iter().filter(|name| !is_format_1_name(name)).collect();
    if !unknown.is_empty() {
        unknown.sort();
        bail!(
            "data dir {} has no {MARKER} and holds {}, which roster never writes; refusing to use it. \
             Point -data-dir at an empty directory or at a roster data dir",
            dir.display(),
            unknown.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        );
    }
    upgrade(dir, 1)?;
    Ok(Some(1))
}

/// Whether format 1 (or an interrupted first marker write) leaves `name` at the top level.
fn is_format_1_name(name: &str) -> bool {
    let base = name.strip_suffix(".tmp").unwrap_or(name);
    FORMAT_1_NAMES.contains(&base) || base == MARKER
}

/// Moves a data dir of format `from` to `FORMAT`. That is the marker alone: the log's unversioned entries (format 1)
/// stay as they are and are read as such, and the server moves a redb log into its new file when it opens it.
fn upgrade(dir: &Path, from: u32) -> anyhow::Result<()> {
    write_marker(dir)?;
    tracing::info!(data_dir = %dir.display(), from, to = FORMAT, "data dir upgraded to the current format");
    Ok(())
}

/// Writes the marker atomically: a crash leaves the old state or the new, never a torn file.
fn write_marker(dir: &Path) -> anyhow::Result<()> {
    let marker = dir.join(MARKER);
    let tmp = dir.join(format!("{MARKER}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{FORMAT}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &marker)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("writing {}", marker.display()))
}

#[cfg(test)]
mod tests;
