//! roster's Raft server: a replicated `roster_kv::State` on openraft, with a redb log, snapshot
//! files, and a small TCP RPC between servers. The only crate that names openraft.
//!
//! # Layout
//! - `server`: `Server`, the entry point: `start`, `write`, `read`, `blocking_read`, membership.
//! - `config`: `Config`, `Consistency`, `ReadMeta`.
//! - `replica`: the applied state shared by the state machine and readers, and the watch registry
//!   that wakes blocking queries.
//! - `raft` (+ `raft/`): every openraft type: log store, state machine, snapshot files, network,
//!   RPC service, wire messages. Its module docs explain the storage design.
//! - `rpc` (+ `rpc/`): the framed, multiplexed request/response transport (no openraft types).
//! - `error`: `Error`, `Result`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod raft;
mod replica;
mod rpc;
mod server;

pub use config::{Config, Consistency, ReadMeta};
pub use error::{Error, Result};
pub use server::Server;
