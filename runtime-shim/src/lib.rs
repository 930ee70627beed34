//! roster's runtime shim: everything that talks to a container runtime.
//!
//! Today it holds one piece: [`DockerExec`], the Docker Engine API (bollard, over the unix socket) implementation of
//! `roster_health::ContainerExec`, which runs Docker health checks inside their containers.
//! The `Driver` trait with its `docker` and `exec` drivers and the job spec (issue "Runtime shim") are not built yet.
//!
//! # Layout
//!
//! - `docker_exec.rs`: [`DockerExec`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod docker_exec;

pub use docker_exec::DockerExec;
