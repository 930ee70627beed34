//! Tests of Docker event translation.

use std::collections::HashMap;

use bollard::models::{EventActor, EventMessage, EventMessageTypeEnum};

use super::translate;
use crate::driver::{DriverEvent, HealthStatus, TaskEventKind, TaskId};

fn message(action: &str, extra: &[(&str, &str)]) -> EventMessage {
    let mut attributes: HashMap<String, String> =
        [("roster.job", "files"), ("roster.task", "httpd"), ("roster.node", "n1"), ("name", "x")]
            .iter()
            .chain(extra)
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
    attributes.insert("image".to_string(), "files:1".to_string());
    EventMessage {
        typ: Some(EventMessageTypeEnum::CONTAINER),
        action: Some(action.to_string()),
        actor: Some(EventActor { id: Some("c0ffee".to_string()), attributes: Some(attributes) }),
        ..EventMessage::default()
    }
}

fn kind(event: Option<DriverEvent>) -> Option<TaskEventKind> {
    match event? {
        DriverEvent::Task { id, job, task, kind } => {
            assert_eq!((id, job.as_str(), task.as_str()), (TaskId("c0ffee".to_string()), "files", "httpd"));
            Some(kind)
        }
        DriverEvent::Resync { .. } => None,
    }
}

#[test]
fn translates_the_actions_roster_follows() {
    assert_eq!(kind(translate(&message("start", &[]))), Some(TaskEventKind::Started));
    assert_eq!(kind(translate(&message("die", &[("exitCode", "137")]))), Some(TaskEventKind::Died { exit_code: 137 }));
    assert_eq!(kind(translate(&message("oom", &[]))), Some(TaskEventKind::Oom));
    assert_eq!(
        kind(translate(&message("health_status: healthy", &[]))),
        Some(TaskEventKind::Health(HealthStatus::Healthy))
    );
    assert_eq!(
        kind(translate(&message("health_status: unhealthy", &[]))),
        Some(TaskEventKind::Health(HealthStatus::Unhealthy))
    );
}

#[test]
fn ignores_other_actions_and_foreign_containers() {
    assert_eq!(translate(&message("create", &[])), None);
    assert_eq!(translate(&message("exec_start: /bin/sh", &[])), None);
    assert_eq!(translate(&message("die", &[])), None, "a die without an exit code");
    let mut foreign = message("start", &[]);
    if let Some(attributes) = foreign.actor.as_mut().and_then(|actor| actor.attributes.as_mut()) {
        attributes.remove("roster.job");
    }
    assert_eq!(translate(&foreign), None);
    let mut network = message("start", &[]);
    network.typ = Some(EventMessageTypeEnum::NETWORK);
    assert_eq!(translate(&network), None);
}
