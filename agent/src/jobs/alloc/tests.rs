//! How a local job's state becomes an allocation report, and the spec a node runs for an allocation.

use roster_kv::{ClientStatus, Desired, MAX_ALLOC_MESSAGE_LEN, TaskState};

use super::{bounded, local_spec, to_report};
use crate::jobs::JobSummary;

fn task(name: &str, state: &str, failed: bool) -> TaskState {
    TaskState { name: name.to_owned(), state: state.to_owned(), restarts: 0, failed }
}

fn summary(tasks: Vec<TaskState>, healthy: Option<bool>) -> Option<JobSummary> {
    Some(JobSummary { tasks, healthy, message: String::new() })
}

#[test]
fn running_tasks_report_running_and_their_health() {
    let report = to_report("web-1", Desired::Run, summary(vec![task("db", "running", false)], Some(true)));
    assert_eq!((report.status, report.healthy), (ClientStatus::Running, Some(true)));
    assert_eq!(report.tasks, [task("db", "running", false)]);
}

#[test]
fn a_task_waiting_for_its_turn_is_pending_and_a_failed_one_fails_the_allocation() {
    let waiting = summary(vec![task("db", "running", false), task("proxy", "pending", false)], None);
    assert_eq!(to_report("web-1", Desired::Run, waiting).status, ClientStatus::Pending);
    let failed = summary(vec![task("db", "dead", true), task("proxy", "dead", false)], Some(false));
    assert_eq!(to_report("web-1", Desired::Run, failed).status, ClientStatus::Failed);
    let done = summary(vec![task("once", "dead", false)], Some(false));
    assert_eq!(to_report("web-1", Desired::Run, done).status, ClientStatus::Complete);
}

#[test]
fn without_a_local_job_a_stopped_allocation_is_complete_and_a_wanted_one_pending() {
    assert_eq!(to_report("web-1", Desired::Stop, None).status, ClientStatus::Complete);
    assert_eq!(to_report("web-1", Desired::Run, None).status, ClientStatus::Pending);
}

#[test]
fn reports_stay_within_the_servers_limits() {
    let mut report = to_report("web-1", Desired::Run, summary(Vec::new(), None));
    report.message = "é".repeat(MAX_ALLOC_MESSAGE_LEN);
    report.tasks = (0..100).map(|n| task(&format!("t{n}"), "running", false)).collect();
    let report = bounded(report);
    assert!(report.message.len() <= MAX_ALLOC_MESSAGE_LEN && report.message.chars().all(|c| c == 'é'));
    assert_eq!(report.tasks.len(), roster_kv::MAX_REPORTED_TASKS);
}

#[test]
fn the_local_job_is_named_after_the_allocation_without_the_servers_sections() {
    let spec = r#"{"name": "web", "placement": {"count": 3, "distinct_hosts": true},
                   "tasks": [{"name": "app", "driver": "exec", "command": "/bin/true"}]}"#;
    let local = local_spec("web-7", spec).expect("a valid spec");
    assert_eq!(local.name, "web-7");
    assert_eq!((local.placement, local.update), (None, None));
    assert!(local_spec("web-7", "{}").expect_err("invalid").starts_with("the allocation's spec is invalid"));
}
