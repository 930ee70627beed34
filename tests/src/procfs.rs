//! A process's CPU time and its threads' states from `/proc`: the benchmarks' CPU-per-operation columns, and the
//! harness's `freeze`, which waits until every thread has stopped.

use std::time::Duration;

use anyhow::Context as _;

/// A process's user and system CPU time over all its threads (`/proc/<pid>/stat`, in the kernel's 100 Hz ticks).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_time(&stat)
}

/// Whether every thread of process `pid` is stopped (state `T` in `/proc/<pid>/task/<tid>/stat`); false when the
/// process is gone.
pub(crate) fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.filter_map(Result::ok).all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        after_name(&stat).and_then(|fields| fields.first().copied()) == Some("T")
    })
}

/// The fields of a `/proc` stat line after the command name, which is in parentheses and may hold spaces: the
/// state is the first.
fn after_name(stat: &str) -> Option<Vec<&str>> {
    Some(stat.rsplit_once(')')?.1.split_whitespace().collect())
}

/// utime plus stime of one `/proc/<pid>/stat` line.
fn parse_cpu_time(stat: &str) -> anyhow::Result<Duration> {
    let fields = after_name(stat).context("a /proc stat line")?;
    let ticks = |field: usize| -> anyhow::Result<u64> { Ok(fields.get(field).context("utime and stime")?.parse()?) };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_user_plus_system_time_even_with_spaces_in_the_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let line = "4242 (tokio rt) worker) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 9 0 100";
        assert_eq!(parse_cpu_time(line).unwrap(), Duration::from_millis(2_870));
        assert_eq!(after_name(line).unwrap().first(), Some(&"S"), "the state, not a word of the name");
        assert!(parse_cpu_time("4242 no name").is_err());
    }

    #[test]
    fn a_running_process_is_not_stopped_and_a_gone_one_is_not_either() {
        assert!(!all_threads_stopped(std::process::id()));
        assert!(!all_threads_stopped(u32::MAX));
    }

    #[test]
    fn this_process_cpu_time_grows_as_it_works() {
        let before = cpu_time(std::process::id()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut spin = 0u64;
        // The kernel counts in 10 ms ticks: work until at least one more shows.
        while cpu_time(std::process::id()).unwrap() <= before {
            assert!(std::time::Instant::now() < deadline, "ten seconds of spinning showed no CPU time");
            for i in 0..100_000u64 {
                spin = std::hint::black_box(spin.wrapping_add(i));
            }
        }
    }
}
