//! roster's health checks: check definitions, their runners, the jittered scheduler and the pure status state machine.
//!
//! The agent hands each check to [`Checks`] as a [`CheckSpec`] (usually parsed from the stored Consul `Definition`
//! with [`CheckSpec::from_consul`]); health runs it and reports every change of status or output as an [`Event`] on a
//! channel.
//! The agent turns each event into a catalog write: health never writes the catalog itself.
//!
//! # Layout
//!
//! - `status.rs`: [`Status`], [`Thresholds`] and the pure per-check state machine (no I/O, no clock).
//! - `spec.rs`: [`CheckSpec`], [`CheckKind`] and the Consul `Definition` parser (Go durations included).
//! - `runner.rs` + `runner/`: one probe per check kind (http, tcp, udp, grpc, h2ping, script, docker); each
//!   does the I/O of one run and returns a status with Consul's output text.
//! - `checks.rs` + `checks/`: the [`Checks`] handle, one task per check (jittered first run, TTL and
//!   deregister timers, alias watches), the concurrency bound and the event emission.
//! - `error.rs`: [`Error`] and [`Result`].
//!
//! **Architecture Invariant:** the status logic (thresholds, start period) is a pure state machine in `status.rs`; it is
//! tested without sockets or clocks.
//!
//! **Architecture Invariant:** an [`Event::Status`] is sent only when a check's status or output changed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checks;
mod error;
mod runner;
mod spec;
mod status;
#[cfg(test)]
mod test_servers;

pub use checks::{AliasSource, Checks, Config, ContainerExec, Event};
pub use error::{Error, Result};
pub use spec::{CheckKind, CheckSpec};
pub use status::{Status, Thresholds};
