//! The exec driver's events, by polling the task directories: the supervisors' `state.json` files say when a
//! task started and exited (and whether it was OOM-killed), and a running task's cgroup counts OOM kills as they
//! happen. A poll costs a few small file reads per task, and needs no connection that could break.
//!
//! The first scan, when the stream is made, only records what is there, so the stream reports changes from then
//! on. A task whose supervisor vanished without recording an exit (killed, or the host's OOM killer) is reported
//! as `Died { exit_code: -1 }` once, since nobody else will report it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::supervisor_alive;
use super::wire::{self, STATE_FILE, StateFile, TASK_FILE, TaskFile};
use crate::driver::{DriverEvent, TaskEventKind, TaskId};

/// What the last scan saw of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen {
    /// The run's start time (ms); a new value is a new run.
    started_at: Option<u64>,
    /// The run's exit time (ms), once it ended.
    exited_at: Option<u64>,
    /// OOM kills counted in the running task's cgroup.
    oom_kills: u64,
    /// Whether an `Oom` was reported for this run.
    oom_reported: bool,
    /// Whether this run was reported dead (supervisor gone, no exit recorded).
    dead_reported: bool,
}

/// The stream's state between polls.
struct Watch {
    /// The driver's state directory.
    state_dir: PathBuf,
    /// Only this node's tasks are reported.
    node: String,
    /// Time between scans.
    interval: Duration,
    /// Each task directory's last view, by directory name.
    seen: HashMap<String, Seen>,
    /// Events found but not yet yielded.
    pending: VecDeque<DriverEvent>,
    /// Whether the last scan failed (so a lasting failure yields one `Resync`).
    broken: bool,
}

pub(super) fn stream(state_dir: PathBuf, node: String, interval: Duration) -> BoxStream<'static, DriverEvent> {
    let mut watch = Watch { state_dir, node, interval, seen: HashMap::new(), pending: VecDeque::new(), broken: false };
    watch.scan();
    watch.pending.clear();
    futures_util::stream::unfold(watch, next).boxed()
}

async fn next(mut watch: Watch) -> Option<(DriverEvent, Watch)> {
    loop {
        if let Some(event) = watch.pending.pop_front() {
            return Some((event, watch));
        }
        tokio::time::sleep(watch.interval).await;
        watch.scan();
    }
}

impl Watch {
    /// Reads every task directory and queues the changes since the last scan.
    fn scan(&mut self) {
        let entries = match std::fs::read_dir(&self.state_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) => {
                if !self.broken {
                    self.broken = true;
                    let reason = format!("reading {}: {err}", self.state_dir.display());
                    self.pending.push_back(DriverEvent::Resync { reason });
                }
                return;
            }
        };
        self.broken = false;
        let mut present = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.scan_task(&name, &entry.path()) {
                present.push(name);
            }
        }
        self.seen.retain(|name, _| present.contains(name));
    }

    /// Queues one task's changes; `false` when the directory is not one of this node's tasks.
    fn scan_task(&mut self, name: &str, dir: &Path) -> bool {
        let Ok(Some(task)) = wire::read::<TaskFile>(&dir.join(TASK_FILE)) else { return false };
        if task.node != self.node {
            return false;
        }
        let state: StateFile = wire::read(&dir.join(STATE_FILE)).ok().flatten().unwrap_or_default();
        let before = self.seen.get(name).cloned().unwrap_or_default();
        let mut now = Seen { started_at: state.started_at, exited_at: state.exited_at, ..Seen::default() };
        let mut kinds = Vec::new();
        let same_run = state.started_at == before.started_at;
        if same_run {
            now.oom_reported = before.oom_reported;
            now.dead_reported = before.dead_reported;
            now.oom_kills = before.oom_kills;
        } else if state.started_at.is_some() {
            kinds.push(TaskEventKind::Started);
        }
        if !state.exited() && state.started_at.is_some() {
            now.oom_kills = task.cgroup.oom_kills();
            if now.oom_kills > before.oom_kills && same_run || now.oom_kills > 0 && !same_run {
                kinds.push(TaskEventKind::Oom);
                now.oom_reported = true;
            }
            if !now.dead_reported && !supervisor_alive(&state) {
                kinds.push(TaskEventKind::Died { exit_code: -1 });
                now.dead_reported = true;
            }
        }
        if state.exited() && (state.exited_at != before.exited_at || !same_run) {
            if state.oom && !now.oom_reported {
                kinds.push(TaskEventKind::Oom);
                now.oom_reported = true;
            }
            kinds.push(TaskEventKind::Died { exit_code: state.exit_code.unwrap_or(-1) });
        }
        for kind in kinds {
            let event = DriverEvent::Task {
                id: TaskId(name.to_string()),
                job: task.job.clone(),
                task: task.task.clone(),
                kind,
            };
            self.pending.push_back(event);
        }
        self.seen.insert(name.to_string(), now);
        true
    }
}
