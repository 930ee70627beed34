//! What `/proc` says about a process, and signal names: enough to tell whether a supervisor recorded in a
//! `state.json` is still that supervisor (PID + start time + boot ID, since PIDs are reused) and to send the
//! signal a spec names.

use rustix::process::{Pid, Signal};

/// The PID and start time of the current process, as a [`super::wire::StateFile`] records them.
pub(crate) fn current() -> (i32, u64) {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    (pid, start_time(pid).map(|(_, start)| start).unwrap_or(0))
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`), empty if unreadable.
pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|id| id.trim().to_string()).unwrap_or_default()
}

/// Whether the process `pid` that started at `start` during boot `boot` still runs (a zombie does not).
pub(crate) fn alive(pid: i32, start: u64, boot: &str) -> bool {
    if boot != boot_id() {
        return false;
    }
    matches!(start_time(pid), Some((state, started)) if started == start && !matches!(state, 'Z' | 'X' | 'x'))
}

/// The state letter and start time of `pid` from `/proc/<pid>/stat`.
pub(crate) fn start_time(pid: i32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The state (field 3) and start time (field 22) of a `/proc/<pid>/stat` line. The command (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so the fields are counted after its last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// A signal by name (`SIGTERM`, `TERM`, case-insensitive) or number (`15`).
pub(crate) fn parse_signal(name: &str) -> Option<Signal> {
    const SIGNALS: [(&str, i32, Signal); 20] = [
        ("HUP", 1, Signal::HUP),
        ("INT", 2, Signal::INT),
        ("QUIT", 3, Signal::QUIT),
        ("ILL", 4, Signal::ILL),
        ("TRAP", 5, Signal::TRAP),
        ("ABRT", 6, Signal::ABORT),
        ("BUS", 7, Signal::BUS),
        ("FPE", 8, Signal::FPE),
        ("KILL", 9, Signal::KILL),
        ("USR1", 10, Signal::USR1),
        ("SEGV", 11, Signal::SEGV),
        ("USR2", 12, Signal::USR2),
        ("PIPE", 13, Signal::PIPE),
        ("ALRM", 14, Signal::ALARM),
        ("TERM", 15, Signal::TERM),
        ("CHLD", 17, Signal::CHILD),
        ("CONT", 18, Signal::CONT),
        ("STOP", 19, Signal::STOP),
        ("WINCH", 28, Signal::WINCH),
        ("PWR", 30, Signal::POWER),
    ];
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number: Option<i32> = bare.parse().ok();
    SIGNALS.iter().find(|(word, raw, _)| *word == bare || Some(*raw) == number).map(|(_, _, signal)| *signal)
}

/// Sends `signal` to `pid`; `false` when there is no such process.
pub(crate) fn signal(pid: i32, signal: Signal) -> bool {
    Pid::from_raw(pid).is_some_and(|pid| rustix::process::kill_process(pid, signal).is_ok())
}

#[cfg(test)]
mod tests;
