//! The log's previous home, a redb database (`raft-log.redb`): moved into `raft-log.wal` once, when a server that
//! wrote it starts on this build.
//!
//! The move runs under the log's lock file, writes the new log beside where it goes, syncs it and renames it into
//! place; only then is the redb file removed. A crash before the rename leaves the old log to move again; after
//! it, the new log is used and the old file is removed at the next start. The entries' bytes are copied as they
//! are, so entries of every format a redb log held read back the same.

use std::io;
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::wal;

/// The log's file name in a data dir written before the move.
pub(super) const LEGACY_LOG_FILE: &str = "raft-log.redb";

/// Log entries by index, each a postcard-encoded `Entry`.
pub(super) const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// Small records: `vote`, `committed`, `last_purged`, each postcard-encoded as the new file's records are.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Writes the redb log in `dir` into a new log at `path` (salted `salt`) and puts it in place.
pub(super) fn move_into(dir: &Path, path: &Path, salt: u64) -> io::Result<()> {
    let legacy = dir.join(LEGACY_LOG_FILE);
    let named = |e: &dyn std::fmt::Display| io::Error::other(format!("{}: {e}", legacy.display()));
    let db = redb::Database::open(&legacy).map_err(|e| named(&e))?;
    let txn = db.begin_read().map_err(|e| named(&e))?;
    let meta = |key: &str| -> io::Result<Option<Vec<u8>>> {
        match txn.open_table(META) {
            Ok(table) => Ok(table.get(key).map_err(|e| named(&e))?.map(|value| value.value().to_vec())),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(named(&e)),
        }
    };
    let (vote, committed, purged) = (meta("vote")?, meta("committed")?, meta("last_purged")?);
    let fresh = wal::Fresh { salt, vote: vote.as_deref(), committed: committed.as_deref(), purged: purged.as_deref() };
    let logs = match txn.open_table(LOGS) {
        Ok(table) => Some(table),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(named(&e)),
    };
    let mut moved = 0u64;
    let entries: Box<dyn Iterator<Item = io::Result<(u64, Vec<u8>)>>> = match &logs {
        Some(table) => Box::new(table.iter().map_err(|e| named(&e))?.map(|item| {
            moved += 1;
            item.map(|(index, value)| (index.value(), value.value().to_vec())).map_err(|e| named(&e))
        })),
        None => Box::new(std::iter::empty()),
    };
    let written = wal::write_beside(path, &fresh, entries)?;
    written.install(path)?;
    tracing::info!(
        from = %legacy.display(),
        to = %path.display(),
        entries = moved,
        "moved the Raft log into its own file format"
    );
    Ok(())
}

/// Removes a redb log that was moved (the new log exists and is locked by the caller).
pub(super) fn remove_moved(dir: &Path) -> io::Result<()> {
    let legacy = dir.join(LEGACY_LOG_FILE);
    match std::fs::remove_file(&legacy) {
        Ok(()) => wal::sync_dir(&legacy),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
