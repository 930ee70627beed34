//! A task spec as a Docker container-create request: image, command, env, labels, ports, network, mounts, limits,
//! HEALTHCHECK, stop signal and DNS. Pure, so every mapping is unit-tested without an engine.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig, Mount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use crate::driver::{LABEL_JOB, LABEL_NODE, LABEL_SPEC_HASH, LABEL_TASK, StartOptions};
use crate::duration::GoDuration;
use crate::error::{Error, Result};
use crate::spec::{HealthcheckSpec, TaskSpec};

/// Bytes in a MiB, for `memory_mb`.
const MIB: i64 = 1024 * 1024;
/// Docker's `NanoCpus` per millicore.
const NANO_CPUS_PER_MILLICORE: i64 = 1_000_000;

/// The create request for a task of `job` on `node`, labelled with `hash`.
pub(super) fn container_body(
    node: &str,
    job: &str,
    task: &TaskSpec,
    options: &StartOptions,
    hash: &str,
) -> Result<ContainerCreateBody> {
    let labels = HashMap::from([
        (LABEL_NODE.to_string(), node.to_string()),
        (LABEL_JOB.to_string(), job.to_string()),
        (LABEL_TASK.to_string(), task.name.clone()),
        (LABEL_SPEC_HASH.to_string(), hash.to_string()),
    ]);
    // The agent's variables first, so the spec's own override them.
    let mut env = options.env.clone();
    env.extend(task.env.clone());
    let stop_timeout = i64::try_from(task.stop_timeout.get().as_secs()).unwrap_or(i64::MAX);
    Ok(ContainerCreateBody {
        image: task.image.clone(),
        cmd: command(task),
        env: Some(env.iter().map(|(key, value)| format!("{key}={value}")).collect()),
        labels: Some(labels),
        exposed_ports: Some(
            task.ports.iter().map(|port| format!("{}/{}", port.container_port, port.protocol)).collect(),
        ),
        healthcheck: task.healthcheck.as_ref().map(healthcheck),
        stop_signal: Some(task.stop_signal.clone()),
        stop_timeout: Some(stop_timeout),
        host_config: Some(host_config(task, options)?),
        ..ContainerCreateBody::default()
    })
}

/// `[command, args...]`, or `args` alone (replacing the image's CMD), or the image's own when both are absent.
fn command(task: &TaskSpec) -> Option<Vec<String>> {
    match &task.command {
        Some(command) => Some(std::iter::once(command.clone()).chain(task.args.iter().cloned()).collect()),
        None if !task.args.is_empty() => Some(task.args.clone()),
        None => None,
    }
}

fn host_config(task: &TaskSpec, options: &StartOptions) -> Result<HostConfig> {
    let memory = task.resources.memory_mb.map(|memory_mb| to_i64("resources.memory_mb", memory_mb, MIB)).transpose()?;
    let nano_cpus = task.resources.cpu.map(|cpu| to_i64("resources.cpu", cpu, NANO_CPUS_PER_MILLICORE)).transpose()?;
    let pids_limit = task.resources.pids.map(|pids| to_i64("resources.pids", pids, 1)).transpose()?;
    let port_bindings = task.ports.iter().filter_map(|port| {
        let binding = PortBinding { host_ip: None, host_port: Some(port.host_port?.to_string()) };
        Some((format!("{}/{}", port.container_port, port.protocol), Some(vec![binding])))
    });
    let mounts = task.mounts.iter().map(|mount| Mount {
        source: Some(mount.source.clone()),
        target: Some(mount.target.clone()),
        typ: Some(MountType::BIND),
        read_only: Some(mount.read_only),
        ..Mount::default()
    });
    let dns = &options.dns;
    Ok(HostConfig {
        memory,
        // Swap equal to memory means no swap at all: a task at its limit is OOM-killed and roster sees the exit,
        // rather than the task slowing to a crawl while its checks still pass.
        memory_swap: memory,
        nano_cpus,
        pids_limit,
        port_bindings: Some(port_bindings.collect()),
        network_mode: task.network.clone(),
        mounts: Some(mounts.collect()),
        dns: non_empty(dns.servers.iter().map(ToString::to_string).collect()),
        dns_search: non_empty(dns.search.clone()),
        dns_options: dns.ndots.map(|ndots| vec![format!("ndots:{ndots}")]),
        // roster decides restarts (see crate::restart): Docker restarting by itself would hide exits from it.
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        log_config: task.logs.map(|logs| HostConfigLogConfig {
            typ: Some("json-file".to_string()),
            config: Some(HashMap::from([
                ("max-size".to_string(), format!("{}k", logs.max_size_kb)),
                ("max-file".to_string(), logs.max_files.to_string()),
            ])),
        }),
        ..HostConfig::default()
    })
}

fn healthcheck(check: &HealthcheckSpec) -> HealthConfig {
    let nanos =
        |value: Option<GoDuration>| value.map(|value| i64::try_from(value.get().as_nanos()).unwrap_or(i64::MAX));
    HealthConfig {
        test: Some(check.test.clone()),
        interval: nanos(check.interval),
        timeout: nanos(check.timeout),
        retries: check.retries.map(i64::from),
        start_period: nanos(check.start_period),
        ..HealthConfig::default()
    }
}

/// `value × scale` as Docker's i64, refusing what does not fit.
fn to_i64(field: &str, value: u64, scale: i64) -> Result<i64> {
    i64::try_from(value)
        .ok()
        .and_then(|value| value.checked_mul(scale))
        .ok_or_else(|| Error::Unsupported(format!("{field} {value} is too large for Docker")))
}

fn non_empty(items: Vec<String>) -> Option<Vec<String>> {
    if items.is_empty() { None } else { Some(items) }
}

#[cfg(test)]
mod tests;
