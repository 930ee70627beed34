//! roster's runtime shim: everything that talks to a container runtime, and the job specs that say what to run.
//!
//! The agent reads a [`JobSpec`] ([`JobSpec::from_toml`]/[`JobSpec::from_json`], validated with field paths), asks
//! a [`Driver`] ([`DockerDriver`] today) to `probe`, `ensure_image` and `start` each task (idempotent, keyed by
//! labels and a [`spec_hash`]), follows its [`Driver::events`], drives a [`RestartTracker`] per task with the exits
//! it sees, and registers each task's services under [`service_id`]. After an agent restart, [`Driver::recover`]
//! lists the tasks to adopt. [`DockerExec`] runs Docker health checks inside containers.
//!
//! # Layout
//!
//! - `spec.rs` (+ `spec/`): the job schema, its string enums and its validation.
//! - `duration.rs`: Go-style duration strings.
//! - `driver.rs`: the [`Driver`] trait and the task types, labels and spec hash.
//! - `docker.rs` (+ `docker/`): [`DockerDriver`]: create-request mapping, inspect mapping, the event stream.
//! - `host_access.rs`: [`HostAccess`], what of the host (its root filesystem, bind mounts) a job may reach.
//! - `restart.rs`: the restart policy as a pure state machine.
//! - `docker_exec.rs`: [`DockerExec`], `roster_health::ContainerExec` over the Engine API.
//! - `error.rs`: [`Error`] and [`Result`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod docker;
mod docker_exec;
mod driver;
mod duration;
mod error;
mod exec;
mod host_access;
mod registrator;
mod restart;
mod spec;

pub use docker::DockerDriver;
pub use docker_exec::DockerExec;
pub use driver::{
    DnsOptions, Driver, DriverEvent, DriverInfo, ExecOutput, HealthStatus, LABEL_JOB, LABEL_NODE, LABEL_SPEC_HASH,
    LABEL_TASK, StartOptions, TaskEventKind, TaskHandle, TaskId, TaskState, TaskStatus, spec_hash,
};
pub use duration::GoDuration;
pub use error::{Error, Result};
pub use exec::{BridgeConfig, ExecConfig, ExecDriver, ensure_private_dir, supervise_main};
pub use host_access::{HostAccess, HostPaths};
pub use registrator::{ContainerInfo, registrations};
pub use restart::{Decision, RestartTracker, StayReason};
pub use spec::{
    AddressMode, DriverKind, FieldError, HealthcheckSpec, JobSpec, MountSpec, PortSpec, Protocol, Resources,
    RestartPolicy, RestartSpec, ServiceSpec, SpecError, TaskSpec, service_id,
};
