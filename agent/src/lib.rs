//! The roster agent as a library: configuration and command line, with the rest of the agent wired in by `main`.
//!
//! # Layout
//! - [`config`]: the one `Config`, built from defaults, files, environment and flags.
//! - [`cli`]: the `roster` command line and the HTTP client subcommands.
//! - [`http`]: the Consul-compatible HTTP API.
//! - [`local`]: the agent's own services and checks, persisted and pushed to the catalog.
//! - [`run`]: the agent's lifecycle: bind, start the server, register, serve, drain.
//! - [`logging`]: log setup.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod http;
pub mod local;
pub mod logging;
pub mod run;
