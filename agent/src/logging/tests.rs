//! Unit tests of the log file's rotation, Consul's line formats and the monitor fan-out.

use std::path::Path;
use std::time::{Duration, Instant};

use tracing_subscriber::layer::SubscriberExt as _;

use super::file::{RotatingFile, rotated_files, rotated_name};
use super::*;
use crate::config::LogFileConfig;

fn file_config(dir: &Path, rotate_bytes: u64, max_files: i64) -> LogFileConfig {
    LogFileConfig {
        dir: dir.to_path_buf(),
        name: "roster.log".to_owned(),
        rotate_bytes,
        rotate_duration: Duration::from_secs(24 * 3600),
        max_files,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read log file")
}

#[test]
fn rotation_by_bytes_keeps_at_most_max_files_rotated_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = file_config(dir.path(), 100, 2);
    let mut file = RotatingFile::open(config.clone()).expect("open");
    for idx in 0..20 {
        file.write_line(format!("line {idx:02} {}\n", "x".repeat(40)).as_bytes()).expect("write");
    }
    let rotated = rotated_files(&config).expect("list");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    // Each file was cut once it held 100 bytes: two lines of 49 bytes, then a third.
    let current = read(&dir.path().join("roster.log"));
    assert_eq!(current.lines().last(), Some(format!("line 19 {}", "x".repeat(40)).as_str()));
    let newest_rotated = read(&rotated[1]);
    assert!(newest_rotated.starts_with("line 15"), "{newest_rotated}");
    assert_eq!(newest_rotated.lines().count(), 3);
}

#[test]
fn max_files_zero_keeps_every_rotated_file_and_minus_one_keeps_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep_all = file_config(dir.path(), 10, 0);
    let mut file = RotatingFile::open(keep_all.clone()).expect("open");
    for _ in 0..6 {
        file.write_line(b"0123456789ab\n").expect("write");
    }
    assert_eq!(rotated_files(&keep_all).expect("list").len(), 5);

    let other = tempfile::tempdir().expect("tempdir");
    let keep_none = file_config(other.path(), 10, -1);
    let mut file = RotatingFile::open(keep_none.clone()).expect("open");
    for _ in 0..6 {
        file.write_line(b"0123456789ab\n").expect("write");
    }
    assert_eq!(rotated_files(&keep_none).expect("list").len(), 0);
    assert_eq!(read(&other.path().join("roster.log")), "0123456789ab\n");
}

#[test]
fn rotation_by_age_starts_a_new_file_once_the_duration_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogFileConfig { rotate_duration: Duration::from_secs(3600), ..file_config(dir.path(), 0, 0) };
    let mut file = RotatingFile::open(config.clone()).expect("open");
    let start = Instant::now();
    file.write_line_at(b"first\n", start).expect("write");
    file.write_line_at(b"second\n", start + Duration::from_secs(3599)).expect("write");
    assert!(rotated_files(&config).expect("list").is_empty());
    file.write_line_at(b"third\n", start + Duration::from_secs(3600)).expect("write");
    let rotated = rotated_files(&config).expect("list");
    assert_eq!(rotated.len(), 1);
    assert_eq!(read(&rotated[0]), "first\nsecond\n");
    assert_eq!(read(&dir.path().join("roster.log")), "third\n");
}

#[test]
fn an_existing_log_file_is_appended_to_and_created_0640() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("roster.log"), "from the last run\n").expect("seed");
    let mut file = RotatingFile::open(file_config(dir.path(), 0, 0)).expect("open");
    file.write_line(b"this run\n").expect("write");
    assert_eq!(read(&dir.path().join("roster.log")), "from the last run\nthis run\n");
    let fresh = tempfile::tempdir().expect("tempdir");
    RotatingFile::open(file_config(fresh.path(), 0, 0)).expect("open");
    let mode = std::fs::metadata(fresh.path().join("roster.log")).expect("stat").permissions().mode();
    assert_eq!(mode & 0o077 & !0o040, 0, "group may read, others nothing: {mode:o}");
}

#[test]
fn rotated_names_put_the_stamp_before_the_extension_as_consul_does() {
    assert_eq!(rotated_name("roster.log", "17"), "roster-17.log");
    assert_eq!(rotated_name("agent", "17"), "agent-17.log");
    assert_eq!(rotated_name("a.b.txt", "17"), "a.b-17.txt");
}

/// Runs `log` under a subscriber that has only the monitor layer, and returns what `subscription` received.
async fn monitored(level: LogLevel, json: bool, log: impl FnOnce()) -> Vec<String> {
    let monitors = Monitors::default();
    let mut subscription = monitors.subscribe(level, json);
    let subscriber = tracing_subscriber::registry().with(monitors.layer());
    tracing::subscriber::with_default(subscriber, log);
    let mut lines = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(50), subscription.next()).await {
        lines.push(line);
    }
    lines
}

#[tokio::test]
async fn a_monitor_client_gets_the_lines_at_its_own_level() {
    let lines = monitored(LogLevel::Debug, false, || {
        tracing::trace!("too verbose");
        tracing::debug!(key = "a b", n = 3, "detail");
        tracing::info!("normal");
        tracing::debug!(target: "hickory_server::server", "per-query chatter");
    })
    .await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains(" [DEBUG] ") && lines[0].ends_with(": detail: key=\"a b\" n=3\n"), "{}", lines[0]);
    assert!(lines[1].contains(" [INFO]  ") && lines[1].ends_with(": normal\n"), "{}", lines[1]);
}

#[tokio::test]
async fn json_lines_carry_consuls_fields() {
    let lines = monitored(LogLevel::Info, true, || tracing::warn!(peer = "10.0.0.1", tries = 2, "join failed")).await;
    assert_eq!(lines.len(), 1);
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("one JSON object per line");
    assert_eq!(line["@level"], "warn");
    assert_eq!(line["@message"], "join failed");
    assert_eq!(line["@module"], module_path!());
    assert_eq!(line["peer"], "10.0.0.1");
    assert_eq!(line["tries"], 2);
    let stamp = line["@timestamp"].as_str().expect("timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{stamp}");
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_how_many_lines_it_lost() {
    let lines = monitored(LogLevel::Info, false, || {
        for idx in 0..BUFFER_LINES + 10 {
            tracing::info!(idx, "flood");
        }
    })
    .await;
    assert_eq!(lines.len(), BUFFER_LINES + 1);
    assert!(lines.last().is_some_and(|line| line.contains("10 log lines dropped")), "{:?}", lines.last());
}

#[test]
fn monitor_levels_are_consuls() {
    assert_eq!(parse_monitor_level("err"), Some(LogLevel::Error));
    assert_eq!(parse_monitor_level("TRACE"), Some(LogLevel::Trace));
    assert_eq!(parse_monitor_level("warning"), None);
    assert_eq!(parse_monitor_level(""), None);
}
