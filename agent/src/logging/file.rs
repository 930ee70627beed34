//! The log file with Consul's rotation: by size (`log_rotate_bytes`) and by age (`log_rotate_duration`), keeping
//! `log_rotate_max_files` rotated files.
//!
//! The current file keeps its configured name; before a write that finds it full or old, it is renamed to
//! `<stem>-<unix nanos><ext>` (`.log` when the name has no extension) and a new one is started, then the oldest
//! rotated files beyond the limit are removed. Rotated names sort by age because the timestamps have the same width.
//! Files are created 0640: Consul's mode, so a log shipper in the agent's group can read them; roster logs no
//! secrets. Unlike Consul, an existing current file is appended to, not truncated, so a restart keeps the log of the
//! run before it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::LogFileConfig;

/// The mode new log files are created with (before the umask).
const FILE_MODE: u32 = 0o640;

/// The open log file and what decides its next rotation.
pub(crate) struct RotatingFile {
    config: LogFileConfig,
    file: File,
    /// Bytes in the current file, counted from its size when it was opened.
    written: u64,
    /// When the current file was started (opened, by this process).
    started: Instant,
}

impl RotatingFile {
    /// Opens (creating or appending to) the current file; the directory must exist.
    pub fn open(config: LogFileConfig) -> io::Result<RotatingFile> {
        let file = open_current(&config)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile { config, file, written, started: Instant::now() })
    }

    /// The current file's path.
    pub fn path(&self) -> PathBuf {
        self.config.dir.join(&self.config.name)
    }

    /// Writes one whole line, rotating first when the current file is full or old.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_line_at(line, Instant::now())
    }

    /// [`RotatingFile::write_line`] as if at `now`, so tests drive age-based rotation without waiting.
    pub(crate) fn write_line_at(&mut self, line: &[u8], now: Instant) -> io::Result<()> {
        let full = self.config.rotate_bytes > 0 && self.written >= self.config.rotate_bytes;
        let old = now.saturating_duration_since(self.started) >= self.config.rotate_duration;
        if full || old {
            self.rotate(now)?;
        }
        self.file.write_all(line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// Renames the current file aside, prunes old ones and starts a new current file.
    fn rotate(&mut self, now: Instant) -> io::Result<()> {
        let current = self.path();
        let mut stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos();
        let mut aside = self.config.dir.join(rotated_name(&self.config.name, &stamp.to_string()));
        // Two rotations within one clock tick must not overwrite each other.
        while aside.exists() {
            stamp += 1;
            aside = self.config.dir.join(rotated_name(&self.config.name, &stamp.to_string()));
        }
        std::fs::rename(&current, &aside)?;
        prune(&self.config)?;
        self.file = open_current(&self.config)?;
        self.written = 0;
        self.started = now;
        Ok(())
    }
}

fn open_current(config: &LogFileConfig) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(FILE_MODE).open(config.dir.join(&config.name))
}

/// `name` with `-<stamp>` before its extension; a name without one gets `.log`, as in Consul.
pub(crate) fn rotated_name(name: &str, stamp: &str) -> String {
    let (stem, ext) = split_ext(name);
    format!("{stem}-{stamp}{ext}")
}

fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ".log"),
    }
}

/// The rotated files of `config` in the directory, oldest first.
pub(crate) fn rotated_files(config: &LogFileConfig) -> io::Result<Vec<PathBuf>> {
    let (stem, ext) = split_ext(&config.name);
    let prefix = format!("{stem}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&config.dir)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| is_rotated(path, &prefix, ext))
        .collect();
    found.sort();
    Ok(found)
}

/// Whether `path` is `<stem>-<digits><ext>`.
fn is_rotated(path: &Path, prefix: &str, ext: &str) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else { return false };
    let Some(stamp) = name.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(ext)) else { return false };
    !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit())
}

/// Removes rotated files beyond `max_files` (0 keeps all, -1 keeps none), oldest first.
fn prune(config: &LogFileConfig) -> io::Result<()> {
    if config.max_files == 0 {
        return Ok(());
    }
    let rotated = rotated_files(config)?;
    let keep = usize::try_from(config.max_files).unwrap_or(0);
    let excess = rotated.len().saturating_sub(keep);
    for path in &rotated[..excess] {
        std::fs::remove_file(path)?;
    }
    Ok(())
}
