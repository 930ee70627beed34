//! Tests of the spec hash and the task-state helpers.

use std::time::{Duration, SystemTime};

use super::{StartOptions, TaskState, TaskStatus, spec_hash};
use crate::spec::{JobSpec, RestartPolicy, TaskSpec};

fn task() -> TaskSpec {
    let text = "name = \"web\"\n[[tasks]]\nname = \"app\"\ndriver = \"docker\"\nimage = \"app:1\"\n";
    JobSpec::from_toml(text).expect("valid").tasks.remove(0)
}

#[test]
fn spec_hash_is_stable_and_sees_process_changes() {
    let options = StartOptions::default();
    let base = spec_hash("web", &task(), &options);
    assert_eq!(base.len(), 32);
    assert_eq!(base, spec_hash("web", &task(), &options), "deterministic");
    assert_ne!(base, spec_hash("other", &task(), &options), "job name");
    assert_ne!(base, spec_hash("web", &TaskSpec { image: Some("app:2".to_string()), ..task() }, &options));
    let mut dns = StartOptions::default();
    dns.dns.ndots = Some(1);
    assert_ne!(base, spec_hash("web", &task(), &dns), "start options");
}

#[test]
fn spec_hash_ignores_services_and_restart() {
    let options = StartOptions::default();
    let base = spec_hash("web", &task(), &options);
    let mut changed = task();
    changed.restart.policy = RestartPolicy::Always;
    changed.services = JobSpec::from_toml(
        "name = \"web\"\n[[tasks]]\nname = \"app\"\ndriver = \"docker\"\nimage = \"app:1\"\n[[tasks.services]]\nname = \"x\"\n",
    )
    .expect("valid")
    .tasks[0]
        .services
        .clone();
    assert_eq!(base, spec_hash("web", &changed, &options));
}

#[test]
fn ran_for_needs_both_times() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let mut state = TaskState {
        status: TaskStatus::Exited { exit_code: 1 },
        started_at: Some(start),
        finished_at: Some(start + Duration::from_secs(7)),
        addresses: Default::default(),
        health: None,
        oom_killed: false,
    };
    assert_eq!(state.ran_for(), Some(Duration::from_secs(7)));
    assert!(!state.is_running());
    state.finished_at = None;
    assert_eq!(state.ran_for(), None);
}
