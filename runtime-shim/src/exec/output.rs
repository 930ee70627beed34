//! The task's output, bounded: the supervisor reads the task's stdout and stderr (one pipe, so they stay
//! interleaved as the task wrote them) and appends them to `output.log`, rotating it the way Docker's json-file
//! driver does (`max-size`, `max-file`).
//!
//! A file grows to the spec's `max_size_kb`; then `output.log.N` are shifted up one (the oldest beyond
//! `max_files` deleted), `output.log` becomes `output.log.1` and a new `output.log` starts. Copying runs in the
//! supervisor's only thread before it waits for the task: after `unshare(CLONE_NEWPID)` the kernel refuses to
//! create threads (`EINVAL`), and the pipe's end coincides with the task's anyway. A write that fails (a full disk) drops that output and counts it, and reading goes on, so the
//! task never blocks on a full pipe because the disk is.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::wire::OUTPUT_LOG;
use crate::spec::LogsSpec;

/// Copies the task's output from `pipe` into `dir`'s `output.log` within `limits` until every writer has closed
/// it, which is when the task's PID namespace is gone (its PID 1 exited and the kernel killed the rest) or every
/// process in it closed its output. Returns the bytes that could not be written.
pub(crate) fn copy(pipe: io::PipeReader, dir: &Path, limits: LogsSpec) -> io::Result<u64> {
    Ok(RotatingLog::open(dir, limits)?.copy_from(pipe))
}

/// `output.log` and its rotated predecessors.
pub(crate) struct RotatingLog {
    dir: PathBuf,
    max_size: u64,
    max_files: u32,
    file: Option<File>,
    size: u64,
}

impl RotatingLog {
    /// Opens (appending to) the current file in `dir`.
    pub(crate) fn open(dir: &Path, limits: LogsSpec) -> io::Result<RotatingLog> {
        let path = dir.join(OUTPUT_LOG);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            dir: dir.to_path_buf(),
            max_size: limits.max_size_kb.saturating_mul(1024).max(1),
            max_files: limits.max_files.max(1),
            file: Some(file),
            size,
        })
    }

    /// Copies `source` to the log until its end; returns the bytes that could not be written.
    pub(crate) fn copy_from(&mut self, mut source: impl Read) -> u64 {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut dropped = 0u64;
        loop {
            let read = match source.read(&mut buffer) {
                Ok(0) => return dropped,
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return dropped,
            };
            if self.write(&buffer[..read]).is_err() {
                dropped += read as u64;
            }
        }
    }

    /// Appends `bytes`, filling the current file up to the limit at a line boundary and rotating for the rest, so
    /// no file exceeds the limit and a line only straddles two files when it is longer than a whole file.
    pub(crate) fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = usize::try_from(self.max_size.saturating_sub(self.size)).unwrap_or(usize::MAX);
            let take = if bytes.len() <= room {
                bytes.len()
            } else {
                match bytes[..room].iter().rposition(|byte| *byte == b'\n') {
                    Some(newline) => newline + 1,
                    None if self.size > 0 => {
                        self.rotate()?;
                        continue;
                    }
                    None => room,
                }
            };
            let (now, later) = bytes.split_at(take);
            let file = match &mut self.file {
                Some(file) => file,
                None => self.file.insert(OpenOptions::new().create(true).append(true).open(self.path(0))?),
            };
            file.write_all(now)?;
            self.size += now.len() as u64;
            bytes = later;
        }
        Ok(())
    }

    /// Shifts the files up one, dropping the oldest kept, and starts a new current file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let oldest = self.max_files - 1;
        if oldest == 0 {
            std::fs::remove_file(self.path(0)).or_else(ignore_missing)?;
        } else {
            std::fs::remove_file(self.path(oldest)).or_else(ignore_missing)?;
            for index in (0..oldest).rev() {
                std::fs::rename(self.path(index), self.path(index + 1)).or_else(ignore_missing)?;
            }
        }
        self.size = 0;
        Ok(())
    }

    /// `output.log` for 0, `output.log.N` for N.
    fn path(&self, index: u32) -> PathBuf {
        rotated_path(&self.dir, index)
    }
}

/// The path of the current output file (0) or of the Nth rotated one.
pub(crate) fn rotated_path(dir: &Path, index: u32) -> PathBuf {
    match index {
        0 => dir.join(OUTPUT_LOG),
        index => dir.join(format!("{OUTPUT_LOG}.{index}")),
    }
}

fn ignore_missing(err: io::Error) -> io::Result<()> {
    if err.kind() == io::ErrorKind::NotFound { Ok(()) } else { Err(err) }
}

#[cfg(test)]
mod tests;
