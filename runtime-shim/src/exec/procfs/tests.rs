//! `/proc/<pid>/stat` parsing, the liveness check against PID reuse, and signal names.

use super::{alive, boot_id, current, parse_signal, parse_stat};
use rustix::process::Signal;

#[test]
fn parse_stat_counts_fields_after_the_command() {
    let stat =
        "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
    assert_eq!(parse_stat(stat), Some(('S', 987654)));
    assert_eq!(parse_stat("garbage"), None);
}

#[test]
fn alive_knows_this_process_and_refuses_another_start_or_boot() {
    let (pid, start) = current();
    let boot = boot_id();
    assert!(alive(pid, start, &boot));
    assert!(!alive(pid, start + 1, &boot), "a reused PID has another start time");
    assert!(!alive(pid, start, "another-boot"));
}

#[test]
fn parse_signal_takes_names_and_numbers() {
    assert_eq!(parse_signal("SIGTERM"), Some(Signal::TERM));
    assert_eq!(parse_signal("term"), Some(Signal::TERM));
    assert_eq!(parse_signal("9"), Some(Signal::KILL));
    assert_eq!(parse_signal("SIGQUIT"), Some(Signal::QUIT));
    assert_eq!(parse_signal("SIGNOPE"), None);
}
