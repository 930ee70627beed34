//! Rotation of the task's output: no file over the limit, no more files than asked, newest output last.

use std::path::Path;

use super::*;
use crate::exec::tail_output;

fn limits(max_size_kb: u64, max_files: u32) -> LogsSpec {
    LogsSpec { max_size_kb, max_files }
}

fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), entry.metadata().unwrap().len())
        })
        .collect();
    found.sort();
    found
}

fn numbered_lines(count: usize) -> Vec<u8> {
    (0..count).flat_map(|line| format!("line {line:06} of the task's output\n").into_bytes()).collect()
}

#[test]
fn a_megabyte_through_a_16_kib_log_keeps_three_full_files_and_the_newest_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = RotatingLog::open(dir.path(), limits(16, 3)).unwrap();
    let output = numbered_lines(32_000);
    assert!(output.len() > 1024 * 1024);
    assert_eq!(log.copy_from(output.as_slice()), 0, "nothing dropped");
    let found = files(dir.path());
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["output.log", "output.log.1", "output.log.2"]);
    assert!(found.iter().all(|(_, len)| *len <= 16 * 1024), "{found:?}");
    let tail = tail_output(dir.path(), 3).unwrap();
    assert_eq!(tail.last().unwrap(), "line 031999 of the task's output");
    // Older lines come from the rotated files, in order, when the current one holds too few.
    let current_lines = std::fs::read_to_string(dir.path().join("output.log")).unwrap().lines().count();
    let longer = tail_output(dir.path(), current_lines + 10).unwrap();
    assert_eq!(longer.len(), current_lines + 10);
    let numbers: Vec<u32> =
        longer.iter().filter_map(|line| line.get(5..11)).filter_map(|number| number.parse().ok()).collect();
    assert!(numbers.windows(2).all(|pair| pair[1] == pair[0] + 1), "contiguous across files: {numbers:?}");
}

#[test]
fn one_file_means_starting_over_and_a_chunk_bigger_than_a_file_is_split() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = RotatingLog::open(dir.path(), limits(16, 1)).unwrap();
    log.write(&vec![b'x'; 40 * 1024]).unwrap();
    let found = files(dir.path());
    assert_eq!(found, [("output.log".to_string(), 8 * 1024)], "40 KiB in 16 KiB files, only the last kept");
}

#[test]
fn an_existing_log_counts_towards_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("output.log"), vec![b'a'; 15 * 1024]).unwrap();
    let mut log = RotatingLog::open(dir.path(), limits(16, 2)).unwrap();
    log.write(&[b'b'; 2048]).unwrap();
    assert_eq!(files(dir.path()), [("output.log".to_string(), 2048), ("output.log.1".to_string(), 15 * 1024)]);
}
