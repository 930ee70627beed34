//! The order of a job's tasks on this node, as a pure decision: from where each task stands, which to start and
//! which to stop, following their `after` and `requires` names (systemd's `After=` and `Requires=`).
//!
//! A task starts once every task it names in `after` is ready (running, every check of its services passing) and
//! none it `requires` is down. A running task is stopped (held) when a task it requires is down: exited for good,
//! failed to start, or itself held; it starts again when they all return. A task its restart policy is about to
//! restart is not down, so a crash that the policy handles does not take its dependents with it.

/// Where a task stands, as ordering sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// Never started in this version: waiting for the tasks it starts after.
    Waiting,
    /// Running, its services' checks not all passing yet.
    Running,
    /// Running, and every check of its services passes (or it has none).
    Ready,
    /// Exited, and its restart policy will start it again.
    Restarting,
    /// Stopped for good: exited and not restarted, or its start failed.
    Down,
    /// Stopped by the manager because a task it requires is down.
    Held,
}

impl Standing {
    fn is_down(self) -> bool {
        matches!(self, Standing::Down | Standing::Held)
    }

    fn runs(self) -> bool {
        matches!(self, Standing::Running | Standing::Ready | Standing::Restarting)
    }
}

/// One task as the plan sees it.
#[derive(Debug, Clone)]
pub(super) struct Task<'a> {
    pub(super) name: &'a str,
    pub(super) after: &'a [String],
    pub(super) requires: &'a [String],
    pub(super) standing: Standing,
    /// Whether its services have checks of their own, so a start leaves it `Running` until they pass rather than
    /// `Ready` at once.
    pub(super) has_checks: bool,
}

/// What to do to one task (by its index in the job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Start it: everything it starts after is ready and nothing it requires is down.
    Start(usize),
    /// Stop it, because the task named is required and down.
    Stop { task: usize, because: String },
}

/// The actions that bring the job's tasks in line with their dependencies, in the order to take them (`order`:
/// the job's start order). Each action's effect is assumed, so a start lets the tasks after it start in the same
/// plan when it has no checks to wait for, and a stop passes on to the tasks that require it.
pub(super) fn plan(tasks: &mut [Task<'_>], order: &[usize]) -> Vec<Action> {
    let mut actions = Vec::new();
    // Every change moves a task one way (waiting or held to running, running to held, never back within a plan),
    // so this ends within as many rounds as there are tasks.
    for _ in 0..=tasks.len() {
        let mut changed = false;
        for &idx in order {
            let standing = tasks[idx].standing;
            if standing.runs() {
                if let Some(down) = required_down(tasks, idx) {
                    tasks[idx].standing = Standing::Held;
                    actions.push(Action::Stop { task: idx, because: down });
                    changed = true;
                }
            } else if matches!(standing, Standing::Waiting | Standing::Held) && blockers(tasks, idx).is_empty() {
                tasks[idx].standing = if tasks[idx].has_checks { Standing::Running } else { Standing::Ready };
                actions.push(Action::Start(idx));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    actions
}

/// Why a task that does not run cannot start yet: each task it starts after that is not ready, and each it
/// requires that is down, worded for `job status`.
pub(super) fn blockers(tasks: &[Task<'_>], idx: usize) -> Vec<String> {
    let task = &tasks[idx];
    let find = |name: &str| tasks.iter().find(|task| task.name == name);
    let mut why = Vec::new();
    for name in task.after {
        match find(name).map(|dep| dep.standing) {
            Some(Standing::Ready) | None => {}
            Some(Standing::Running) => why.push(format!("{name} (checks not passing)")),
            Some(_) => why.push(format!("{name} (not running)")),
        }
    }
    for name in task.requires.iter().filter(|name| !task.after.contains(name)) {
        if find(name).is_some_and(|dep| dep.standing.is_down()) {
            why.push(format!("{name} (required, down)"));
        }
    }
    why
}

/// The first task `idx` requires that is down.
fn required_down(tasks: &[Task<'_>], idx: usize) -> Option<String> {
    tasks[idx]
        .requires
        .iter()
        .find(|name| tasks.iter().any(|task| task.name == name.as_str() && task.standing.is_down()))
        .cloned()
}

#[cfg(test)]
mod tests;
