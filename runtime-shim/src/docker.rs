//! The Docker driver: tasks as containers of the local engine, over bollard and the engine's unix socket.
//!
//! A task's container is named `roster-<job>.<task>.<node>` (job and task names are DNS labels, so they hold no dot
//! and the name parses back unambiguously; the node makes agents sharing one engine, as in tests, never collide) and
//! carries roster's labels (see [`crate::driver`]). Docker's own restart policy is `no`: roster decides restarts
//! (see [`crate::restart`]). Nothing is pulled unless the task says `pull = true`, and no network is created unless
//! the agent calls [`DockerDriver::ensure_network`].
//!
//! Every call goes to the engine afresh; the driver holds no state besides the client, so the engine's view (found
//! by name and labels) is the only truth, and an agent restart loses nothing.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptionsBuilder, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::driver::{
    Driver, DriverEvent, DriverInfo, ExecOutput, LABEL_JOB, LABEL_NODE, LABEL_SPEC_HASH, LABEL_TASK, StartOptions,
    TaskHandle, TaskId, TaskState, spec_hash,
};
use crate::error::{Error, Result};
use crate::host_access::{HostAccess, HostPaths};
use crate::spec::{DriverKind, TaskSpec};

mod create;
mod events;
mod foreign;
mod state;

/// The driver name in errors and specs.
const DRIVER: &str = "docker";
/// How often `stop` looks whether the container has exited.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long `stop` waits for a SIGKILLed container to be reported exited.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Runs tasks as Docker containers for one node.
#[derive(Debug, Clone)]
pub struct DockerDriver {
    /// The Engine API client; cheap to clone, one connection pool.
    docker: Docker,
    /// The node whose tasks this driver starts and recovers (the `roster.node` label).
    node: String,
    /// The host paths tasks may bind-mount (default none; the agent's `docker.host_mounts`), checked on every
    /// start, adoption included, so a job saved under an older config cannot bypass it.
    host_mounts: HostPaths,
}

impl DockerDriver {
    /// Connects to the local engine (`DOCKER_HOST` when it is a `unix://` address, else `/var/run/docker.sock`).
    /// Fails at once, as [`Error::Unavailable`], when the socket is missing.
    pub fn connect_local(node: impl Into<String>) -> Result<DockerDriver> {
        let docker = Docker::connect_with_local_defaults().map_err(|err| runtime_error("connect", err))?;
        Ok(DockerDriver::new(docker, node))
    }

    /// Connects to the engine at a unix socket path.
    pub fn connect_unix(socket: &str, node: impl Into<String>) -> Result<DockerDriver> {
        let docker = Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|err| runtime_error("connect", err))?;
        Ok(DockerDriver::new(docker, node))
    }

    /// Wraps an existing client.
    pub fn new(docker: Docker, node: impl Into<String>) -> DockerDriver {
        DockerDriver { docker, node: node.into(), host_mounts: HostPaths::default() }
    }

    /// The same driver allowing bind mounts of these host paths.
    pub fn with_host_mounts(self, host_mounts: HostPaths) -> DockerDriver {
        DockerDriver { host_mounts, ..self }
    }

    /// The container name of a task of this node: `roster-<job>.<task>.<node>`, with any character Docker refuses
    /// in a name replaced by `-`.
    pub fn container_name(&self, job: &str, task: &str) -> String {
        let name = format!("roster-{job}.{task}.{}", self.node);
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect()
    }

    /// Creates a bridge network of this name unless one exists: the only way this driver creates a network, for
    /// an agent configured to own its tasks' network. Returns whether it created it.
    pub async fn ensure_network(&self, name: &str) -> Result<bool> {
        match self.docker.inspect_network(name, None).await {
            Ok(_) => return Ok(false),
            Err(err) if status_of(&err) == Some(404) => {}
            Err(err) => return Err(runtime_error("inspect network", err)),
        }
        let labels = HashMap::from([(LABEL_NODE.to_string(), self.node.clone())]);
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(labels),
            ..NetworkCreateRequest::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(true),
            // Another agent created it between the inspect and the create: it exists, as asked.
            Err(err) if status_of(&err) == Some(409) => Ok(false),
            Err(err) => Err(runtime_error("create network", err)),
        }
    }

    /// The handle of an existing container from its labels, if roster made it for this node.
    fn handle_from_labels(&self, id: &str, name: &str, labels: &HashMap<String, String>) -> Option<TaskHandle> {
        let label = |key: &str| labels.get(key).cloned();
        if label(LABEL_NODE)? != self.node {
            return None;
        }
        Some(TaskHandle {
            id: TaskId(id.to_string()),
            name: name.trim_start_matches('/').to_string(),
            node: self.node.clone(),
            job: label(LABEL_JOB)?,
            task: label(LABEL_TASK)?,
            spec_hash: label(LABEL_SPEC_HASH).unwrap_or_default(),
        })
    }

    /// Starts the container with this id, mapping a missing network to [`Error::NetworkMissing`].
    async fn start_container(&self, id: &str, task: &TaskSpec) -> Result<()> {
        self.docker.start_container(id, None).await.map_err(|err| create_error("start", err, task))
    }

    /// Creates the task's container and returns its id.
    async fn create(
        &self,
        name: &str,
        job: &str,
        task: &TaskSpec,
        options: &StartOptions,
        hash: &str,
    ) -> Result<String> {
        let body = create::container_body(&self.node, job, task, options, hash)?;
        let create_options = CreateContainerOptions { name: Some(name.to_string()), platform: String::new() };
        let created = self
            .docker
            .create_container(Some(create_options), body)
            .await
            .map_err(|err| create_error("create", err, task))?;
        Ok(created.id)
    }

    /// Waits until the container is no longer running, or `limit` passes; returns whether it stopped.
    async fn wait_stopped(&self, id: &str, limit: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.docker.inspect_container(id, None).await {
                Ok(info) if !info.state.as_ref().and_then(|state| state.running).unwrap_or(false) => return Ok(true),
                Ok(_) => {}
                Err(err) if status_of(&err) == Some(404) => return Ok(true),
                Err(err) => return Err(runtime_error("inspect", err)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }

    /// Sends a signal; `Ok(false)` when the container was not running (nothing to signal).
    async fn kill(&self, task: &TaskHandle, signal: &str) -> Result<bool> {
        let options = KillContainerOptions { signal: signal.to_string() };
        match self.docker.kill_container(&task.id.0, Some(options)).await {
            Ok(()) => Ok(true),
            Err(err) if status_of(&err) == Some(409) => Ok(false),
            Err(err) if status_of(&err) == Some(404) => Err(Error::NotFound { task: task.name.clone() }),
            Err(err) => Err(runtime_error("kill", err)),
        }
    }
}

#[async_trait]
impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn probe(&self) -> Result<DriverInfo> {
        let version = self.docker.version().await.map_err(|err| runtime_error("version", err))?;
        Ok(DriverInfo { driver: DRIVER, version: version.version.unwrap_or_default() })
    }

    async fn ensure_image(&self, task: &TaskSpec) -> Result<()> {
        let image = docker_image(task)?;
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(err) if status_of(&err) == Some(404) => {}
            Err(err) => return Err(runtime_error("inspect image", err)),
        }
        if !task.pull {
            return Err(Error::ImageMissing { image: image.to_string(), hint: image_hint(image) });
        }
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            let step = step.map_err(|err| Error::Pull { image: image.to_string(), reason: error_text(&err) })?;
            if let Some(detail) = step.error_detail.and_then(|detail| detail.message) {
                return Err(Error::Pull { image: image.to_string(), reason: detail });
            }
        }
        Ok(())
    }

    async fn start(&self, job: &str, task: &TaskSpec, options: &StartOptions) -> Result<TaskHandle> {
        docker_image(task)?;
        let access = HostAccess {
            allow_host_rootfs: false,
            exec_mounts: HostPaths::default(),
            docker_mounts: self.host_mounts.clone(),
        };
        access.task_allowed(task)?;
        let name = self.container_name(job, &task.name);
        let hash = spec_hash(job, task, options);
        match self.docker.inspect_container(&name, None).await {
            Ok(info) => {
                let id = info.id.clone().unwrap_or_default();
                let labels = info.config.as_ref().and_then(|config| config.labels.clone()).unwrap_or_default();
                let Some(handle) = self
                    .handle_from_labels(&id, &name, &labels)
                    .filter(|handle| handle.job == job && handle.task == task.name)
                else {
                    let reason = "a container of that name exists without this task's roster labels".to_string();
                    return Err(Error::Conflict { name, reason });
                };
                if handle.spec_hash == hash {
                    if !info.state.and_then(|state| state.running).unwrap_or(false) {
                        self.start_container(&id, task).await?;
                    }
                    return Ok(handle);
                }
                tracing::info!(container = %name, "task spec changed; replacing its container");
                self.destroy(&handle).await?;
            }
            Err(err) if status_of(&err) == Some(404) => {}
            Err(err) => return Err(runtime_error("inspect", err)),
        }
        let id = self.create(&name, job, task, options, &hash).await?;
        self.start_container(&id, task).await?;
        let handle = TaskHandle {
            id: TaskId(id),
            name,
            node: self.node.clone(),
            job: job.to_string(),
            task: task.name.clone(),
            spec_hash: hash,
        };
        Ok(handle)
    }

    async fn inspect(&self, task: &TaskHandle) -> Result<TaskState> {
        match self.docker.inspect_container(&task.id.0, None).await {
            Ok(info) => Ok(state::task_state(&info)),
            Err(err) if status_of(&err) == Some(404) => Err(Error::NotFound { task: task.name.clone() }),
            Err(err) => Err(runtime_error("inspect", err)),
        }
    }

    async fn stop(&self, task: &TaskHandle, signal: &str, grace: Duration) -> Result<()> {
        if !self.kill(task, signal).await? {
            return Ok(());
        }
        if self.wait_stopped(&task.id.0, grace).await? {
            return Ok(());
        }
        tracing::info!(container = %task.name, ?grace, "task ignored its stop signal; killing it");
        if self.kill(task, "SIGKILL").await? && !self.wait_stopped(&task.id.0, KILL_WAIT).await? {
            let message = format!("still running {KILL_WAIT:?} after SIGKILL");
            return Err(Error::Runtime { driver: DRIVER, op: "stop", message });
        }
        Ok(())
    }

    async fn destroy(&self, task: &TaskHandle) -> Result<()> {
        let options = RemoveContainerOptions { v: true, force: true, link: false };
        match self.docker.remove_container(&task.id.0, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if status_of(&err) == Some(404) => Ok(()),
            Err(err) => Err(runtime_error("remove", err)),
        }
    }

    async fn recover(&self) -> Result<Vec<TaskHandle>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_NODE}={}", self.node)])]);
        let options = ListContainersOptions { all: true, limit: None, size: false, filters: Some(filters) };
        let containers = self.docker.list_containers(Some(options)).await.map_err(|err| runtime_error("list", err))?;
        let handles = containers.iter().filter_map(|container| {
            let name = container.names.as_ref()?.first()?;
            self.handle_from_labels(container.id.as_deref()?, name, container.labels.as_ref()?)
        });
        Ok(handles.collect())
    }

    async fn exec(&self, task: &TaskHandle, command: &[String], timeout: Duration) -> Result<ExecOutput> {
        let run = crate::docker_exec::run(&self.docker, &task.id.0, command);
        let (exit_code, output) = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(done)) => done,
            Ok(Err(err)) if status_of(&err) == Some(404) => return Err(Error::NotFound { task: task.name.clone() }),
            Ok(Err(err)) => return Err(runtime_error("exec", err)),
            Err(_) => {
                let message = format!("timed out after {timeout:?} (the command may still run in the container)");
                return Err(Error::Runtime { driver: DRIVER, op: "exec", message });
            }
        };
        let message = "the command ended without an exit code".to_string();
        let exit_code = exit_code.ok_or(Error::Runtime { driver: DRIVER, op: "exec", message })?;
        Ok(ExecOutput { exit_code, output })
    }

    async fn logs(&self, task: &TaskHandle, lines: usize) -> Result<Vec<String>> {
        let options = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since: 0,
            until: 0,
            timestamps: false,
            tail: lines.to_string(),
        };
        let mut stream = self.docker.logs(&task.id.0, Some(options));
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => bytes.extend_from_slice(&chunk.into_bytes()),
                Err(err) if status_of(&err) == Some(404) => return Err(Error::NotFound { task: task.name.clone() }),
                Err(err) => return Err(runtime_error("logs", err)),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        Ok(all[all.len().saturating_sub(lines)..].iter().map(|line| line.to_string()).collect())
    }

    fn events(&self) -> BoxStream<'static, DriverEvent> {
        events::stream(self.docker.clone(), self.node.clone())
    }
}

/// The task's image, refusing a task this driver cannot run.
fn docker_image(task: &TaskSpec) -> Result<&str> {
    if task.driver != DriverKind::Docker {
        return Err(Error::Unsupported(format!("task {:?} uses the {} driver, not docker", task.name, task.driver)));
    }
    task.image.as_deref().ok_or_else(|| Error::Unsupported(format!("docker task {:?} has no image", task.name)))
}

/// How to get a missing image onto the host without a registry.
fn image_hint(image: &str) -> String {
    format!(
        "build or load it on this host first (docker build -t {image} DIR, docker load -i IMAGE.tar, or \
         docker import ROOTFS.tar {image}); roster pulls only when the task sets pull = true"
    )
}

/// The HTTP status of an engine error, if the engine answered.
fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// An error of create or start, with a missing image or network named as such.
fn create_error(op: &'static str, err: BollardError, task: &TaskSpec) -> Error {
    if let BollardError::DockerResponseServerError { status_code: 404, message } = &err {
        let lowered = message.to_lowercase();
        if let Some(network) = task.network.as_ref().filter(|_| lowered.contains("network")) {
            return Error::NetworkMissing { network: network.clone() };
        }
        if let Some(image) = task.image.as_ref().filter(|_| lowered.contains("image")) {
            return Error::ImageMissing { image: image.clone(), hint: image_hint(image) };
        }
    }
    if status_of(&err) == Some(409) {
        return Error::Conflict { name: format!("container of task {:?}", task.name), reason: error_text(&err) };
    }
    runtime_error(op, err)
}

/// Maps a bollard error: no engine at all is [`Error::Unavailable`], anything else [`Error::Runtime`].
fn runtime_error(op: &'static str, err: BollardError) -> Error {
    match &err {
        BollardError::SocketNotFoundError(path) => {
            Error::Unavailable { driver: DRIVER, reason: format!("socket {path} not found (is dockerd running?)") }
        }
        BollardError::HyperLegacyError { .. } | BollardError::IOError { .. } | BollardError::RequestTimeoutError => {
            Error::Unavailable { driver: DRIVER, reason: error_text(&err) }
        }
        _ => Error::Runtime { driver: DRIVER, op, message: error_text(&err) },
    }
}

/// The error with its causes, since bollard's outermost message ("client error (Connect)") rarely says enough.
fn error_text(err: &BollardError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
