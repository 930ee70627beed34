//! Ordering between the tasks of a job (`after`, `requires`): the references checked at submit, a cycle through
//! `after` refused with the field path of the edge that closes it, and the start order the job manager follows.
//!
//! Only `after` orders starts, as in systemd, where `Requires=` without `After=` starts both units together; so a
//! cycle is a loop of `after` edges, and two tasks that require each other without `after` are allowed.

use std::collections::BTreeMap;

use super::JobSpec;
use super::validate::Problems;

/// Checks every `after` and `requires` name (a task of this job, not the task itself, not named twice) and
/// refuses a cycle of `after` edges.
pub(super) fn check(problems: &mut Problems, job: &JobSpec) {
    let index: BTreeMap<&str, usize> = job.tasks.iter().enumerate().map(|(idx, t)| (t.name.as_str(), idx)).collect();
    let known = || job.tasks.iter().map(|task| task.name.as_str()).collect::<Vec<_>>().join(", ");
    for (idx, task) in job.tasks.iter().enumerate() {
        for (field, names, itself) in [
            ("after", &task.after, "a task cannot start after itself"),
            ("requires", &task.requires, "a task cannot require itself"),
        ] {
            for (pos, name) in names.iter().enumerate() {
                let path = format!("tasks[{idx}].{field}[{pos}]");
                if names[..pos].contains(name) {
                    problems.add(path, format!("{name:?} is named twice"));
                } else if *name == task.name {
                    problems.add(path, itself);
                } else if !index.contains_key(name.as_str()) {
                    problems.add(path, format!("no task {name:?} in this job (tasks: {})", known()));
                }
            }
        }
    }
    // Depth-first over `after` edges in the order written; an edge back to a task still on the stack closes a
    // cycle, reported once at that edge with the loop it makes.
    let mut marks = vec![Mark::New; job.tasks.len()];
    for start in 0..job.tasks.len() {
        if marks[start] == Mark::New {
            visit(problems, job, &index, &mut marks, &mut vec![start]);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    OnStack,
    Done,
}

fn visit(
    problems: &mut Problems,
    job: &JobSpec,
    index: &BTreeMap<&str, usize>,
    marks: &mut [Mark],
    stack: &mut Vec<usize>,
) {
    let Some(&current) = stack.last() else { return };
    marks[current] = Mark::OnStack;
    for (pos, name) in job.tasks[current].after.iter().enumerate() {
        let Some(&next) = index.get(name.as_str()).filter(|next| **next != current) else { continue };
        match marks[next] {
            Mark::Done => {}
            Mark::OnStack => {
                let from = stack.iter().position(|idx| *idx == next).unwrap_or(0);
                let mut names: Vec<&str> = stack[from..].iter().map(|idx| job.tasks[*idx].name.as_str()).collect();
                names.push(&job.tasks[next].name);
                problems.add(
                    format!("tasks[{current}].after[{pos}]"),
                    format!("dependency cycle: {} (each starts after the next)", names.join(" -> ")),
                );
            }
            Mark::New => {
                stack.push(next);
                visit(problems, job, index, marks, stack);
                stack.pop();
            }
        }
    }
    marks[current] = Mark::Done;
}

impl JobSpec {
    /// The task indexes in an order that starts every task after those it names in `after`, keeping the written
    /// order where `after` leaves it free. Names that are not tasks of the job are ignored, and tasks caught in a
    /// cycle (which validation refuses) come last in written order, so the answer always lists every task once.
    pub fn start_order(&self) -> Vec<usize> {
        let index: BTreeMap<&str, usize> =
            self.tasks.iter().enumerate().map(|(idx, task)| (task.name.as_str(), idx)).collect();
        let mut placed = vec![false; self.tasks.len()];
        let mut order = Vec::with_capacity(self.tasks.len());
        loop {
            let ready = (0..self.tasks.len()).find(|idx| {
                !placed[*idx]
                    && self.tasks[*idx]
                        .after
                        .iter()
                        .filter_map(|name| index.get(name.as_str()))
                        .all(|dep| placed[*dep] || *dep == *idx)
            });
            let Some(next) = ready.or_else(|| (0..self.tasks.len()).find(|idx| !placed[*idx])) else { break };
            placed[next] = true;
            order.push(next);
        }
        order
    }
}

#[cfg(test)]
mod tests;
