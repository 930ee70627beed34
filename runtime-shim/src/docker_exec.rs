//! Docker health checks: runs a check's command inside its container through the Docker Engine API's exec calls
//! (create exec → start attached → read output to the end → inspect for the exit code).
//!
//! The timeout is enforced by health, which drops this future; the Engine API has no call to kill an exec, so a
//! command that hangs keeps running inside the container until it ends or the container stops (Consul behaves the
//! same).

use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use roster_health::ContainerExec;

/// The most output bytes kept per exec; health keeps its own, smaller tail of this (`OutputMaxSize`).
const MAX_OUTPUT: usize = 64 * 1024;

/// Runs Docker check commands with `docker exec` semantics over the Engine API.
#[derive(Debug, Clone)]
pub struct DockerExec {
    /// The Engine API client; cheap to clone, one connection pool.
    docker: Docker,
}

impl DockerExec {
    /// Connects to the local engine (`DOCKER_HOST` when it is a `unix://` address, else `/var/run/docker.sock`).
    /// Nothing is sent until the first check runs.
    pub fn connect_local() -> Result<DockerExec, String> {
        Docker::connect_with_local_defaults().map(DockerExec::new).map_err(|err| format!("docker: {err}"))
    }

    /// Wraps an existing client.
    pub fn new(docker: Docker) -> DockerExec {
        DockerExec { docker }
    }

    /// Whether the engine answers, with the reason when it does not.
    pub async fn ping(&self) -> Result<(), String> {
        self.docker.ping().await.map(|_| ()).map_err(|err| format!("docker: {err}"))
    }
}

#[async_trait]
impl ContainerExec for DockerExec {
    async fn exec(
        &self,
        container_id: &str,
        _shell: &str,
        args: &[String],
        _timeout: Duration,
    ) -> Result<(i64, Vec<u8>), String> {
        let (exit_code, output) =
            run(&self.docker, container_id, args).await.map_err(|err| format!("docker exec: {err}"))?;
        let exit_code = exit_code.ok_or("docker exec: the command ended without an exit code")?;
        Ok((exit_code, output))
    }
}

/// Runs `args` in the container and returns its exit code (absent if the engine reports none) and output, the tail
/// of it past [`MAX_OUTPUT`]. Shared with the Docker driver's `exec`.
pub(crate) async fn run(
    docker: &Docker,
    container_id: &str,
    args: &[String],
) -> Result<(Option<i64>, Vec<u8>), bollard::errors::Error> {
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(args.to_vec()),
        ..ExecConfig::default()
    };
    let created = docker.create_exec(container_id, config).await?;
    let started = docker.start_exec(&created.id, None::<StartExecOptions>).await?;
    let mut output = Vec::new();
    if let StartExecResults::Attached { output: mut stream, .. } = started {
        while let Some(item) = stream.next().await {
            output.extend_from_slice(&item?.into_bytes());
            if output.len() > 2 * MAX_OUTPUT {
                // Keep reading to the end (the exit code comes after), holding only the tail.
                output.drain(..output.len() - MAX_OUTPUT);
            }
        }
    }
    let inspected = docker.inspect_exec(&created.id).await?;
    Ok((inspected.exit_code, output))
}

#[cfg(test)]
mod tests;
