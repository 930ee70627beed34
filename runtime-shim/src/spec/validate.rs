//! Validation of a parsed job: every rule serde cannot express, checked in one pass that collects every problem,
//! each named by its field path (`tasks[0].services[1].port: no port labelled "web" in this task (ports: http)`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path};
use std::time::Duration;

use super::{DriverKind, HealthcheckSpec, JobSpec, LogsSpec, PortSpec, Resources, RestartSpec, ServiceSpec, TaskSpec};
use crate::spec::AddressMode;

/// One problem in a job spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where: `tasks[0].restart.policy`; empty for the document as a whole.
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

/// Everything wrong with a job spec (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The problems, in the order of the fields.
    pub errors: Vec<FieldError>,
}

impl SpecError {
    pub(crate) fn one(path: String, message: String) -> SpecError {
        SpecError { errors: vec![FieldError { path, message }] }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, error) in self.errors.iter().enumerate() {
            if idx > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Consul's limits on service metadata.
const MAX_META_PAIRS: usize = 64;
const MAX_META_KEY: usize = 128;
const MAX_META_VALUE: usize = 512;
/// Docker refuses a memory limit below 6 MiB.
const MIN_MEMORY_MB: u64 = 6;
/// The networks of the exec driver: the host's (the default), a namespace with only loopback, or the roster bridge.
const EXEC_NETWORKS: [&str; 3] = ["host", "none", "bridge"];
/// Docker refuses healthcheck intervals and timeouts below a millisecond.
const MIN_HEALTHCHECK_STEP: Duration = Duration::from_millis(1);

/// Collects problems under their paths.
pub(super) struct Problems(Vec<FieldError>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }
}

pub(super) fn job(job: &JobSpec) -> Result<(), SpecError> {
    let mut problems = Problems(Vec::new());
    name(&mut problems, "name", &job.name);
    if job.tasks.is_empty() {
        problems.add("tasks", "a job needs at least one task");
    }
    let mut seen = BTreeSet::new();
    for (idx, task_spec) in job.tasks.iter().enumerate() {
        let path = format!("tasks[{idx}]");
        if !seen.insert(task_spec.name.as_str()) {
            problems.add(format!("{path}.name"), format!("duplicate task name {:?}", task_spec.name));
        }
        task(&mut problems, &path, task_spec);
    }
    super::order::check(&mut problems, job);
    super::cluster::validate(&mut problems.0, job);
    if problems.0.is_empty() { Ok(()) } else { Err(SpecError { errors: problems.0 }) }
}

/// A DNS label: 1-63 of `a-z`, `0-9` and `-`, neither starting nor ending with `-`; it names containers, labels and
/// DNS names, so it is held to the strictest of their rules.
fn name(problems: &mut Problems, path: &str, value: &str) {
    let why = if value.is_empty() {
        Some("must not be empty".to_string())
    } else if value.len() > 63 {
        Some(format!("{value:?} is longer than 63 characters"))
    } else if let Some(bad) = value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        Some(format!("{value:?} contains {bad:?} (want a DNS label: a-z, 0-9 and -)"))
    } else if value.starts_with('-') || value.ends_with('-') {
        Some(format!("{value:?} must not start or end with -"))
    } else {
        None
    };
    if let Some(why) = why {
        problems.add(path, why);
    }
}

fn task(problems: &mut Problems, path: &str, task: &TaskSpec) {
    name(problems, &format!("{path}.name"), &task.name);
    driver_fields(problems, path, task);
    if task.stop_signal.trim().is_empty() {
        problems.add(format!("{path}.stop_signal"), "must not be empty");
    }
    for (key, _) in task.env.iter().filter(|(key, _)| key.is_empty() || key.contains('=')) {
        problems.add(format!("{path}.env"), format!("invalid variable name {key:?}"));
    }
    ports(problems, path, &task.ports);
    for (idx, mount) in task.mounts.iter().enumerate() {
        let mount_path = format!("{path}.mounts[{idx}]");
        if !mount.source.starts_with('/') {
            problems.add(format!("{mount_path}.source"), format!("{:?} is not an absolute path", mount.source));
        }
        if let Some(why) = mount_target_problem(&mount.target) {
            problems.add(format!("{mount_path}.target"), why);
        }
    }
    resources(problems, &format!("{path}.resources"), &task.resources);
    if let Some(logs_spec) = &task.logs {
        logs(problems, &format!("{path}.logs"), logs_spec);
    }
    restart(problems, &format!("{path}.restart"), &task.restart);
    if let Some(check) = &task.healthcheck {
        healthcheck(problems, &format!("{path}.healthcheck"), check);
    }
    services(problems, path, task);
}

/// Why a mount's `target` is refused, if it is. It names a path inside the task, so it must be absolute; it must not
/// hold `..`, which names nothing inside a container that the path without it would not, and which the exec driver
/// (which makes the mount before the task's root switch) must never follow out of the rootfs; and it must not be
/// the task's root itself, which the mount would replace (Docker refuses that too). The exec driver checks it
/// again at start, as its caller may not have come through here.
pub(crate) fn mount_target_problem(target: &str) -> Option<String> {
    let components = Path::new(target).components();
    if !target.starts_with('/') {
        Some(format!("{target:?} is not an absolute path"))
    } else if components.clone().any(|component| component == Component::ParentDir) {
        Some(format!("{target:?} has a .. component (name the path inside the task without ..)"))
    } else if components.clone().all(|component| matches!(component, Component::RootDir | Component::CurDir)) {
        Some(format!("{target:?} is the task's root (mount at a path below /)"))
    } else {
        None
    }
}

/// The fields one driver needs and the other cannot use.
fn driver_fields(problems: &mut Problems, path: &str, task: &TaskSpec) {
    match task.driver {
        DriverKind::Docker => {
            match task.image.as_deref().map(str::trim) {
                None => problems.add(format!("{path}.image"), "a docker task needs an image"),
                Some("") => problems.add(format!("{path}.image"), "must not be empty"),
                Some(_) => {}
            }
            if task.rootfs.is_some() {
                problems.add(format!("{path}.rootfs"), "only exec tasks have a rootfs (docker uses image)");
            }
            if task.network.as_deref().is_some_and(|network| network.trim().is_empty()) {
                problems.add(format!("{path}.network"), "must not be empty");
            }
        }
        DriverKind::Exec => {
            let docker_only =
                [("image", task.image.is_some()), ("healthcheck", task.healthcheck.is_some()), ("pull", task.pull)];
            for (field, _) in docker_only.iter().filter(|(_, set)| *set) {
                problems.add(format!("{path}.{field}"), "only docker tasks have this field");
            }
            if task.command.as_deref().is_none_or(|command| command.trim().is_empty()) {
                problems.add(format!("{path}.command"), "an exec task needs a command");
            }
            if let Some(rootfs) = task.rootfs.as_deref().filter(|rootfs| !rootfs.starts_with('/')) {
                problems.add(format!("{path}.rootfs"), format!("{rootfs:?} is not an absolute path"));
            }
            exec_network(problems, path, task);
        }
    }
}

/// An exec task's network is one of the driver's modes; off the host's network nothing publishes host ports.
fn exec_network(problems: &mut Problems, path: &str, task: &TaskSpec) {
    match task.network.as_deref() {
        None | Some("host") => {}
        Some(network) if EXEC_NETWORKS.contains(&network) => {
            for (idx, _) in task.ports.iter().enumerate().filter(|(_, port)| port.host_port.is_some()) {
                problems.add(
                    format!("{path}.ports[{idx}].host_port"),
                    format!(
                        "an exec task on the {network} network publishes no host ports (reach it at its own address, \
                         address_mode = \"container\")"
                    ),
                );
            }
        }
        Some(network) => problems.add(
            format!("{path}.network"),
            format!("{network:?} is not an exec network (want {})", EXEC_NETWORKS.join(", ")),
        ),
    }
}

fn ports(problems: &mut Problems, path: &str, ports: &[PortSpec]) {
    let mut labels = BTreeSet::new();
    let mut published = BTreeSet::new();
    for (idx, port) in ports.iter().enumerate() {
        let path = format!("{path}.ports[{idx}]");
        name(problems, &format!("{path}.label"), &port.label);
        if !labels.insert(port.label.as_str()) {
            problems.add(format!("{path}.label"), format!("duplicate port label {:?}", port.label));
        }
        port_number(problems, &format!("{path}.container_port"), port.container_port);
        if let Some(host_port) = port.host_port {
            port_number(problems, &format!("{path}.host_port"), host_port);
            if !published.insert((host_port, port.protocol)) {
                problems.add(
                    format!("{path}.host_port"),
                    format!("host port {host_port}/{} is already published by this task", port.protocol),
                );
            }
        }
    }
}

fn port_number(problems: &mut Problems, path: &str, port: u32) {
    if !(1..=65535).contains(&port) {
        problems.add(path, format!("port {port} is out of range (want 1-65535)"));
    }
}

fn resources(problems: &mut Problems, path: &str, resources: &Resources) {
    if let Some(memory_mb) = resources.memory_mb.filter(|memory_mb| *memory_mb < MIN_MEMORY_MB) {
        problems.add(format!("{path}.memory_mb"), format!("{memory_mb} is below the minimum of {MIN_MEMORY_MB}"));
    }
    if resources.cpu == Some(0) {
        problems.add(format!("{path}.cpu"), "must be at least 1 millicore (omit it for no limit)");
    }
    if resources.pids == Some(0) {
        problems.add(format!("{path}.pids"), "must be at least 1 (omit it for no limit)");
    }
}

/// The bounds of a `logs` block: a file smaller than 16 KiB would rotate on every burst, and one above 1 GiB or
/// more than 100 files defeats the point of a bound.
const LOG_MAX_SIZE_KB: std::ops::RangeInclusive<u64> = 16..=1024 * 1024;
const LOG_MAX_FILES: std::ops::RangeInclusive<u32> = 1..=100;

fn logs(problems: &mut Problems, path: &str, logs: &LogsSpec) {
    if !LOG_MAX_SIZE_KB.contains(&logs.max_size_kb) {
        let (low, high) = (LOG_MAX_SIZE_KB.start(), LOG_MAX_SIZE_KB.end());
        problems
            .add(format!("{path}.max_size_kb"), format!("{} is out of range (want {low}-{high})", logs.max_size_kb));
    }
    if !LOG_MAX_FILES.contains(&logs.max_files) {
        let (low, high) = (LOG_MAX_FILES.start(), LOG_MAX_FILES.end());
        problems.add(format!("{path}.max_files"), format!("{} is out of range (want {low}-{high})", logs.max_files));
    }
}

fn restart(problems: &mut Problems, path: &str, restart: &RestartSpec) {
    if restart.delay.is_zero() {
        problems.add(format!("{path}.delay"), "must be above zero, so a crash loop cannot spin");
    }
    if restart.max_delay < restart.delay {
        problems
            .add(format!("{path}.max_delay"), format!("{} is shorter than delay {}", restart.max_delay, restart.delay));
    }
    if !(restart.backoff.is_finite() && restart.backoff >= 1.0) {
        problems.add(format!("{path}.backoff"), format!("{} is not a factor of at least 1", restart.backoff));
    }
    if restart.reset_after.is_zero() {
        problems.add(format!("{path}.reset_after"), "must be above zero");
    }
}

fn healthcheck(problems: &mut Problems, path: &str, check: &HealthcheckSpec) {
    let test_path = format!("{path}.test");
    match check.test.first().map(String::as_str) {
        None => {
            problems.add(test_path, "must not be empty (want [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"])")
        }
        Some("CMD") if check.test.len() < 2 => problems.add(test_path, "CMD needs a program after it"),
        Some("CMD-SHELL") if check.test.len() != 2 => problems.add(test_path, "CMD-SHELL takes exactly one shell line"),
        Some("NONE") if check.test.len() != 1 => problems.add(test_path, "NONE takes nothing after it"),
        Some("CMD" | "CMD-SHELL" | "NONE") => {}
        Some(other) => problems.add(test_path, format!("unknown test kind {other:?} (want CMD, CMD-SHELL or NONE)")),
    }
    for (field, value) in [("interval", check.interval), ("timeout", check.timeout)] {
        if value.is_some_and(|value| value.get() < MIN_HEALTHCHECK_STEP) {
            problems.add(format!("{path}.{field}"), "must be at least 1ms");
        }
    }
}

fn services(problems: &mut Problems, path: &str, task: &TaskSpec) {
    let mut id_keys = BTreeSet::new();
    for (idx, service) in task.services.iter().enumerate() {
        let path = format!("{path}.services[{idx}]");
        name(problems, &format!("{path}.name"), &service.name);
        if !id_keys.insert(service.id_key()) {
            problems.add(
                &path,
                format!(
                    "another service of this task has ID key {:?} (IDs are <node>:<task>:<port>)",
                    service.id_key()
                ),
            );
        }
        service_port(problems, &path, task, service);
        meta(problems, &format!("{path}.meta"), service);
        for (check_idx, check) in service.checks.iter().enumerate() {
            if !check.is_object() {
                problems.add(format!("{path}.checks[{check_idx}]"), "a check definition must be a table");
            }
        }
    }
}

fn service_port(problems: &mut Problems, path: &str, task: &TaskSpec, service: &ServiceSpec) {
    let Some(label) = &service.port else { return };
    let Some(port) = task.port(label) else {
        let known: Vec<&str> = task.ports.iter().map(|port| port.label.as_str()).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        problems.add(format!("{path}.port"), format!("no port labelled {label:?} in this task (ports: {known})"));
        return;
    };
    if service.address_mode == AddressMode::Host && port.host_port.is_none() {
        problems.add(
            format!("{path}.address_mode"),
            format!(
                "port {label:?} has no host_port, which address_mode \"host\" registers (set one, or use \"container\")"
            ),
        );
    }
}

fn meta(problems: &mut Problems, path: &str, service: &ServiceSpec) {
    if service.meta.len() > MAX_META_PAIRS {
        problems.add(path, format!("{} pairs, at most {MAX_META_PAIRS} allowed", service.meta.len()));
    }
    for (key, value) in &service.meta {
        if key.is_empty() || key.len() > MAX_META_KEY {
            problems.add(path, format!("key {key:?} must be 1-{MAX_META_KEY} characters"));
        }
        if value.len() > MAX_META_VALUE {
            problems.add(format!("{path}.{key}"), format!("value longer than {MAX_META_VALUE} characters"));
        }
    }
}
