//! What of the host a job may reach: exec tasks without a `rootfs` (they run on the host's filesystem as root) and
//! bind mounts of host paths, by exec and Docker tasks alike (an exec task with a rootfs that mounts `/` reaches the
//! whole host as root, as a task without one does). All are refused unless the agent's config allows them.
//!
//! The check runs twice: when a job is submitted (so the caller gets a 400 naming the field) and again in the driver
//! when a task is started, because the agent also starts jobs it saved in `jobs.json` under an older config, and the
//! restart policy starts tasks without a new submission.
//!
//! A host path is allowed when, resolved, it lies at or below an allowed path component by component: `/srv/data2`
//! is not below `/srv/data`. Resolving (symlinks followed, through the longest prefix that exists) is what makes a
//! symlink planted inside an allowed directory (say by a task that mounts it writable) unable to lead out of it.
//! A path written with `..` is refused outright rather than resolved, so the spec says what it reaches.
//! What remains is the window between the check and the runtime's own mount, during which only someone who can
//! already write inside an allowed directory could swap a component for a symlink.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::{DriverKind, FieldError, JobSpec, SpecError, TaskSpec};

/// The config keys an operator changes to allow what is refused, named in every refusal.
const ROOTFS_KEY: &str = "exec.allow_host_rootfs";
const EXEC_MOUNTS_KEY: &str = "exec.host_mounts";
const DOCKER_MOUNTS_KEY: &str = "docker.host_mounts";

/// What of the host a job's tasks may reach.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostAccess {
    /// Whether exec tasks without a `rootfs` may run (on the host's filesystem, as root).
    pub allow_host_rootfs: bool,
    /// The host paths exec tasks may bind-mount (`exec.host_mounts`).
    pub exec_mounts: HostPaths,
    /// The host paths Docker tasks may bind-mount (`docker.host_mounts`).
    pub docker_mounts: HostPaths,
}

/// The host paths a task may bind-mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPaths {
    /// Any path (`-dev`, a throwaway sandbox).
    Any,
    /// Paths at or below one of these absolute paths; none when empty (the default).
    Under(Vec<PathBuf>),
}

impl Default for HostPaths {
    fn default() -> HostPaths {
        HostPaths::Under(Vec::new())
    }
}

impl HostAccess {
    /// Everything allowed: `-dev`'s policy.
    pub fn unrestricted() -> HostAccess {
        HostAccess { allow_host_rootfs: true, exec_mounts: HostPaths::Any, docker_mounts: HostPaths::Any }
    }

    /// Checks every task of `job`, reporting each refusal under its field path (`tasks[0].rootfs`).
    pub fn check_job(&self, job: &JobSpec) -> Result<(), SpecError> {
        let errors: Vec<FieldError> = job
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(idx, task)| self.check_task(&format!("tasks[{idx}]"), task))
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(SpecError { errors }) }
    }

    /// The driver's check of one task: its first refusal as [`Error::NotAllowed`], with field paths of the task.
    pub(crate) fn task_allowed(&self, task: &TaskSpec) -> Result<()> {
        match self.check_task("", task).into_iter().next() {
            None => Ok(()),
            Some(refusal) => Err(Error::NotAllowed { task: task.name.clone(), reason: refusal.to_string() }),
        }
    }

    /// The refusals for one task, with field paths below `path` (`""` for the task itself).
    pub fn check_task(&self, path: &str, task: &TaskSpec) -> Vec<FieldError> {
        let field = |name: String| if path.is_empty() { name } else { format!("{path}.{name}") };
        let mut errors = Vec::new();
        if task.driver == DriverKind::Exec && task.rootfs.is_none() && !self.allow_host_rootfs {
            errors.push(FieldError {
                path: field("rootfs".to_string()),
                message: format!(
                    "an exec task without a rootfs runs on the host's filesystem as root; give it a rootfs, \
                     or set {ROOTFS_KEY} = true in the agent config"
                ),
            });
        }
        // Checked whatever the rootfs: a task allowed the host's filesystem may still be one the operator wants
        // kept off a path, and one rule per driver is simpler to state than one per combination.
        let (allowed, key) = match task.driver {
            DriverKind::Exec => (&self.exec_mounts, EXEC_MOUNTS_KEY),
            DriverKind::Docker => (&self.docker_mounts, DOCKER_MOUNTS_KEY),
        };
        for (idx, mount) in task.mounts.iter().enumerate() {
            if let Err(message) = allowed.allows(Path::new(&mount.source), key) {
                errors.push(FieldError { path: field(format!("mounts[{idx}].source")), message });
            }
        }
        errors
    }
}

impl HostPaths {
    /// Whether `source` may be bind-mounted; the refusal says why and that `key` (the config key these paths come
    /// from) would allow it.
    pub fn allows(&self, source: &Path, key: &str) -> Result<(), String> {
        let HostPaths::Under(allowed) = self else { return Ok(()) };
        check_written_form(source)?;
        let resolved =
            resolve(source).map_err(|err| format!("cannot resolve host path {}: {err}", source.display()))?;
        if allowed.iter().any(|root| resolved.starts_with(resolve(root).unwrap_or_else(|_| root.clone()))) {
            return Ok(());
        }
        let listed = if allowed.is_empty() {
            "it is empty".to_string()
        } else {
            allowed.iter().map(|root| format!("{:?}", root.display().to_string())).collect::<Vec<_>>().join(", ")
        };
        let resolved_note =
            if resolved == source { String::new() } else { format!(" (it resolves to {})", resolved.display()) };
        Err(format!(
            "host path {}{resolved_note} is not at or below a path the agent allows ({key}: {listed}); \
             add it to {key} in the agent config",
            source.display()
        ))
    }
}

/// A host path as the spec must write it: absolute and without `..`.
fn check_written_form(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("host path {} is not absolute", path.display()));
    }
    if path.components().any(|component| component == Component::ParentDir) {
        return Err(format!("host path {} contains \"..\"; write it without", path.display()));
    }
    Ok(())
}

/// The path with every symlink of its longest existing prefix resolved and the rest appended as written, so a path
/// Docker would create is judged by where it would be created. `path` is absolute and free of `..`.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut resolved) => {
                resolved.extend(rest.iter().rev());
                return Ok(resolved);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(ToOwned::to_owned) else { return Err(err) };
                rest.push(name);
                existing.pop();
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests;
