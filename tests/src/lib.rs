//! Black-box harness for roster: it starts the real `roster` binary and talks to it over loopback sockets.
//!
//! Nothing here links against roster's own crates.
//! The tests see exactly what a Consul client sees (status codes, headers, JSON), so they stay valid
//! whatever the implementation does internally, and they encode Consul's behaviour as the reference.
//!
//! # Layout
//!
//! - `harness`: [`TestAgent`] spawns `roster agent` with a generated config on port 0, waits for the
//!   readiness line on stdout and for a leader, and kills the process on `Drop`. It also runs the CLI.
//! - `http`: [`Resp`], a fully read HTTP response with helpers for the Consul headers.
//! - `cluster`: [`TestCluster`], servers and clients as real processes on their own loopback addresses,
//!   forming a cluster through gossip and `-bootstrap-expect`.
//! - `dig`: `dig` against an agent's DNS port, its output split into sections.
//! - `docker`: the multi-host tier: an image of the suite's roster binary built offline, networks and containers.
//! - `browser`: [`browser::Browser`], headless Chromium over WebDriver, for the web UI's tests.
//! - `backend`: [`FlipBackend`], an HTTP backend whose health the test flips, for health checks to probe.
//! - `exec`: [`exec::exec_or_skip`] and busybox root filesystems for exec-driver tasks.
//! - `jobs`: [`jobs::wait_job`], a cluster job read with blocking queries until it reaches a state.
//! - `etcd`: [`etcd::EtcdProcess`], a throwaway etcd the benchmarks compare against.
//! - `procfs`: [`procfs::cpu_time`], a process's CPU time, for the benchmarks' CPU-per-operation columns.
//! - `jwt`: [`JwtIssuer`], an ES256 key that signs JWTs for the ACL login tests.
//! - `py_consul`: runs the py-consul scripts of `tests/py/` against an agent (skipped with the reason outside CI).
//! - `scale`: [`scale::ScaleCluster`], 1 or 3 servers and N clients on loopback addresses or a network namespace
//!   each, with the convergence, kill-detection and propagation times issue 20 measures.
//! - `shape`: the exact JSON key sets of compat.md and assertion helpers built on them.
//! - `watcher`: blocking-query watchers written and read by hand, one per connection, for the benchmarks that park
//!   thousands of them.
//!
//! The integration tests live in `tests/tests/*.rs`, one file per API area; the benchmark is
//! `src/bin/bench.rs`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
pub mod browser;
mod cluster;
pub mod dig;
pub mod docker;
pub mod etcd;
pub mod exec;
mod harness;
mod http;
pub mod jobs;
mod jwt;
pub mod procfs;
pub mod prometheus;
pub mod py_consul;
pub mod scale;
pub mod shape;
pub mod watcher;

pub use backend::FlipBackend;
pub use cluster::{RPC_PORT, SERF_PORT, TestCluster, alive_members, eventually, kv_value, member_names, put_kv};
pub use harness::{AgentMode, CliOutput, TestAgent, roster_bin, run_cli};
pub use http::{Resp, b64, http_client, query_escape, unb64};
pub use jwt::JwtIssuer;
