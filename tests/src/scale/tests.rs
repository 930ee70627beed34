//! The log reading behind [`super::KillLog`]: timestamps and whole-name matches.

use std::time::{Duration, SystemTime};

use super::{count_logged, first_logged, line_time};

fn at(secs: u64, millis: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
}

#[test]
fn line_time_reads_hclog_text_timestamps() {
    assert_eq!(line_time("1970-01-01T00:00:00.000Z [INFO]  x: y"), Some(at(0, 0)));
    // 2026-12-03 is day 20 790 since the epoch; a leap day before it (2024-02-29) is counted.
    assert_eq!(line_time("2026-12-03T07:04:01.123Z [DEBUG] x: y"), Some(at(20_790 * 86_400 + 7 * 3600 + 241, 123)));
    assert_eq!(line_time("2024-03-01T00:00:00.000Z"), Some(at(19_783 * 86_400, 0)));
    assert_eq!(line_time("agent: no timestamp on this line"), None);
    assert_eq!(line_time("2026-13-03T07:04:01.123Z month 13"), None);
}

#[test]
fn first_logged_takes_the_earliest_whole_match_after_the_kill() {
    let log = "\
2026-12-03T07:04:00.500Z [INFO]  roster_agent::cluster: member failed: marking serfHealth critical: node=c2
2026-12-03T07:04:01.900Z [INFO]  roster_agent::cluster: member failed: marking serfHealth critical: node=c20
2026-12-03T07:04:02.250Z [INFO]  roster_agent::cluster: member failed: marking serfHealth critical: node=c2
2026-12-03T07:04:03.000Z [INFO]  roster_agent::cluster: member failed: marking serfHealth critical: node=c2
";
    let killed = line_time("2026-12-03T07:04:01.000Z").expect("a timestamp");
    let needle = "marking serfHealth critical: node=c2";
    assert_eq!(first_logged(log, needle, killed), Some(Duration::from_millis(1250)), "c20 is not c2, 00.500 is before");
    assert_eq!(first_logged(log, "node=c3", killed), None);
    let suspect =
        "2026-12-03T07:04:01.400Z [DEBUG] roster_agent::gossip::view: gossip: member c2 is suspect: member=c2";
    assert_eq!(first_logged(suspect, "gossip: member c2 is suspect:", killed), Some(Duration::from_millis(400)));
    assert_eq!(count_logged(log, needle, killed), 2, "the lines at 02.250 and 03.000");
}
