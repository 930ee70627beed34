//! The roster agent as a library: configuration and command line, with the rest of the agent wired in by `main`.
//!
//! # Layout
//! - [`config`]: the one `Config`, built from defaults, files, environment and flags.
//! - [`checks`]: runs the agent's health checks and relays their status changes.
//! - [`cli`]: the `roster` command line and the HTTP client subcommands.
//! - [`http`]: the Consul-compatible HTTP API.
//! - [`dns_view`]: the catalog as the DNS server reads it.
//! - [`local`]: the agent's own services and checks, persisted and pushed to the catalog.
//! - [`run`]: the agent's lifecycle: bind, start the server, register, serve, drain.
//! - `data_dir`: the data dir's format marker, checked (and written or upgraded) before anything else touches the dir.
//! - [`logging`]: log setup: the agent's log (stderr, `log_file` with rotation, text or JSON) and the monitor fan-out.
//! - `init_system`: the `pid_file` and systemd's `sd_notify` readiness messages.
//! - `fuzzing` (doc-hidden): the untrusted-input decoders as the fuzz targets in `agent/fuzz` drive them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acl;
pub mod backend;
pub mod checks;
pub mod cli;
mod clock;
pub mod cluster;
pub mod config;
pub mod coordinate_sync;
mod data_dir;
pub mod dns_cache;
pub mod dns_view;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod gossip;
pub mod http;
mod init_system;
pub mod jobs;
pub mod local;
pub mod logging;
pub mod registrator;
pub mod reload;
mod rpc_tls;
pub mod run;
mod telemetry;
#[cfg(test)]
mod test_server;
mod tls_reload;
