//! A container's inspect response as a [`TaskState`]: status, times, addresses per network, health.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};

use crate::driver::{HealthStatus, TaskState, TaskStatus};

pub(super) fn task_state(info: &ContainerInspectResponse) -> TaskState {
    let state = info.state.clone().unwrap_or_default();
    let status = match state.status {
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING
            | ContainerStateStatusEnum::STOPPING,
        ) => TaskStatus::Running,
        Some(ContainerStateStatusEnum::EXITED) => TaskStatus::Exited { exit_code: state.exit_code.unwrap_or(-1) },
        Some(ContainerStateStatusEnum::REMOVING | ContainerStateStatusEnum::DEAD) => TaskStatus::Dead,
        Some(ContainerStateStatusEnum::CREATED | ContainerStateStatusEnum::EMPTY) | None => TaskStatus::Created,
    };
    let networks = info.network_settings.as_ref().and_then(|settings| settings.networks.as_ref());
    let addresses = networks
        .into_iter()
        .flatten()
        .filter_map(|(name, endpoint)| {
            let ip: IpAddr = endpoint.ip_address.as_deref()?.parse().ok()?;
            Some((name.clone(), ip))
        })
        .collect::<BTreeMap<_, _>>();
    TaskState {
        status,
        started_at: state.started_at.as_deref().and_then(parse_time),
        finished_at: state.finished_at.as_deref().and_then(parse_time),
        addresses,
        health: state.health.and_then(|health| health_status(health.status?)),
        oom_killed: state.oom_killed.unwrap_or(false),
    }
}

/// Docker's health words; `None` for a container without a healthcheck.
pub(super) fn health_status(status: HealthStatusEnum) -> Option<HealthStatus> {
    match status {
        HealthStatusEnum::STARTING => Some(HealthStatus::Starting),
        HealthStatusEnum::HEALTHY => Some(HealthStatus::Healthy),
        HealthStatusEnum::UNHEALTHY => Some(HealthStatus::Unhealthy),
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
    }
}

/// An RFC 3339 time as Docker writes it (`2026-05-07T21:09:36.123456789Z`); `None` for Docker's "never"
/// (`0001-01-01T00:00:00Z`, before the Unix epoch) or anything malformed.
pub(super) fn parse_time(text: &str) -> Option<SystemTime> {
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let (clock, offset_secs) = split_offset(time)?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms_parts = hms.splitn(3, ':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (hms_parts.next()??, hms_parts.next()??, hms_parts.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let nanos = fraction_nanos(fraction)?;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Splits `12:00:00.5+02:00` into the clock and the offset in seconds (`Z` is zero).
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix('Z').or_else(|| time.strip_suffix('z')) {
        return Some((clock, 0));
    }
    let cut = time.rfind(['+', '-'])?;
    let (clock, offset) = time.split_at(cut);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let (hours, minutes) = offset[1..].split_once(':')?;
    Some((clock, sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60)))
}

/// Up to nine fraction digits as nanoseconds.
fn fraction_nanos(fraction: &str) -> Option<u32> {
    if !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let digits: String = fraction.chars().chain(std::iter::repeat('0')).take(9).collect();
    digits.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests;
