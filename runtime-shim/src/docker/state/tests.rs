//! Tests of inspect-to-state mapping and Docker's timestamps.

use std::time::{Duration, SystemTime};

use bollard::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, EndpointSettings, Health, HealthStatusEnum,
    NetworkSettings,
};

use super::{parse_time, task_state};
use crate::driver::{HealthStatus, TaskStatus};

fn at(secs: u64, nanos: u32) -> Option<SystemTime> {
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

#[test]
fn parses_docker_timestamps() {
    assert_eq!(parse_time("1970-01-01T00:00:00Z"), at(0, 0));
    assert_eq!(parse_time("2026-05-07T21:09:36.123456789Z"), at(1_778_188_176, 123_456_789));
    assert_eq!(parse_time("2026-05-07T21:09:36.5Z"), at(1_778_188_176, 500_000_000));
    assert_eq!(parse_time("2026-05-07T23:09:36+02:00"), at(1_778_188_176, 0));
    assert_eq!(parse_time("2000-02-29T00:00:00Z"), at(951_782_400, 0));
    assert_eq!(parse_time("0001-01-01T00:00:00Z"), None, "Docker's never");
    assert_eq!(parse_time("yesterday"), None);
    assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
}

#[test]
fn exited_container_with_health_and_address() {
    let info = ContainerInspectResponse {
        state: Some(ContainerState {
            status: Some(ContainerStateStatusEnum::EXITED),
            exit_code: Some(137),
            oom_killed: Some(true),
            started_at: Some("1970-01-01T00:00:10Z".to_string()),
            finished_at: Some("1970-01-01T00:00:25Z".to_string()),
            health: Some(Health { status: Some(HealthStatusEnum::UNHEALTHY), ..Health::default() }),
            ..ContainerState::default()
        }),
        network_settings: Some(NetworkSettings {
            networks: Some(
                [
                    (
                        "bridge".to_string(),
                        EndpointSettings { ip_address: Some("172.17.0.2".to_string()), ..Default::default() },
                    ),
                    ("none".to_string(), EndpointSettings { ip_address: Some(String::new()), ..Default::default() }),
                ]
                .into(),
            ),
            ..NetworkSettings::default()
        }),
        ..ContainerInspectResponse::default()
    };
    let state = task_state(&info);
    assert_eq!(state.status, TaskStatus::Exited { exit_code: 137 });
    assert!(state.oom_killed);
    assert_eq!(state.health, Some(HealthStatus::Unhealthy));
    assert_eq!(state.ran_for(), Some(Duration::from_secs(15)));
    assert_eq!(state.addresses.len(), 1);
    assert_eq!(state.addresses["bridge"].to_string(), "172.17.0.2");
}

#[test]
fn created_container_has_no_times() {
    let info = ContainerInspectResponse {
        state: Some(ContainerState {
            status: Some(ContainerStateStatusEnum::CREATED),
            started_at: Some("0001-01-01T00:00:00Z".to_string()),
            finished_at: Some("0001-01-01T00:00:00Z".to_string()),
            health: Some(Health { status: Some(HealthStatusEnum::NONE), ..Health::default() }),
            ..ContainerState::default()
        }),
        ..ContainerInspectResponse::default()
    };
    let state = task_state(&info);
    assert_eq!(state.status, TaskStatus::Created);
    assert_eq!((state.started_at, state.finished_at, state.health), (None, None, None));
}
