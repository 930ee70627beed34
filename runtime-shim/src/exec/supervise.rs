//! The supervisor: the process that runs one task and outlives the agent, as a set of modes of one entry point,
//! [`supervise_main`], which the agent binary reaches through a hidden subcommand (`roster __supervise <mode>
//! <task dir> ...`):
//!
//! - `start`: the detaching hop. The agent spawns it and reaps it at once; it leaves the agent's session
//!   (`setsid`) and spawns `run`, which is thereby orphaned to init and belongs to no terminal or agent process.
//! - `run`: the supervisor proper. It records itself in `state.json`, creates the task's cgroup with its limits,
//!   unshares a PID namespace for its children, for a task with a network of its own makes its network namespace
//!   (and veth pair) and steps into it (`net.rs`), spawns `init` (which becomes PID 1 there), returns to the
//!   host's network namespace, records the task's PID, waits, and records the exit (code or signal, OOM) before
//!   removing the cgroup and the host veth end. It never joins the task's cgroup, so an OOM kill there cannot
//!   take it.
//! - `init` (`init.rs`): the task's first process, which sets up its namespaces and root and `exec`s the command.
//! - `enter` (`enter.rs`): runs a command inside a running task, for [`Driver::exec`](crate::Driver::exec).
//! - `probe`: checks that this host lets the supervisor create namespaces.
//!
//! Each mode is a fresh process doing one thing, single-threaded (no async runtime), which is what `unshare` and
//! `setns` of a mount namespace require, and why the re-executions go through `/proc/self/exe`.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::wire::{self, OUTPUT_LOG, STATE_FILE, StateFile, TASK_FILE, TaskFile};
use super::{enter, init, net, output, procfs, sys};

/// The exit status of a supervisor mode that could not do its work (Docker's for its own failures).
pub(crate) const SETUP_FAILED: u8 = 125;
/// How long the supervisor waits for the task's leftover processes to die and its cgroup to go.
const CLEANUP_WAIT: Duration = Duration::from_secs(5);

/// The supervisor's entry point. `args` are what follows the hidden subcommand: a mode word, the task directory,
/// and for `enter` the command to run. Never returns early on a bad argument without saying so on stderr.
///
/// The agent's `main` dispatches to it before anything else (no runtime, no logging, no config):
///
/// ```ignore
/// let mut args = std::env::args_os().skip(1).peekable();
/// if args.peek().is_some_and(|arg| arg == "__supervise") {
///     return roster_runtime_shim::supervise_main(args.skip(1));
/// }
/// ```
pub fn supervise_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let mut args = args.into_iter();
    let mode = args.next().unwrap_or_default();
    if mode == "probe" {
        return probe();
    }
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("roster supervisor: usage: <start|run|init|enter|probe> <task dir> [command...]");
        return ExitCode::from(SETUP_FAILED);
    };
    match mode.to_str() {
        Some("start") => detach(&dir),
        Some("run") => run(&dir),
        Some("init") => init::init(&dir),
        Some("enter") => enter::enter(&dir, args.collect()),
        _ => {
            eprintln!("roster supervisor: unknown mode {mode:?}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

/// The command that re-runs this supervisor in another mode for the task in `dir`.
pub(crate) fn self_command(task: &TaskFile, mode: &str, dir: &Path) -> Command {
    let mut command = Command::new("/proc/self/exe");
    command.args(&task.supervisor_args).arg(mode).arg(dir).env_clear().current_dir("/");
    command
}

/// Reads the task's `task.json`, saying on stderr why not.
pub(crate) fn read_task(dir: &Path) -> Option<TaskFile> {
    match wire::read::<TaskFile>(&dir.join(TASK_FILE)) {
        Ok(Some(task)) => Some(task),
        Ok(None) => {
            eprintln!("roster supervisor: {} has no {TASK_FILE}", dir.display());
            None
        }
        Err(err) => {
            eprintln!("roster supervisor: {err}");
            None
        }
    }
}

/// `start`: leaves the agent's session and spawns `run` without waiting for it.
fn detach(dir: &Path) -> ExitCode {
    let Some(task) = read_task(dir) else { return ExitCode::from(SETUP_FAILED) };
    // The agent spawned this hop as a plain child (not a group leader), so setsid succeeds.
    if let Err(err) = rustix::process::setsid() {
        eprintln!("roster supervisor: setsid: {err}");
        return ExitCode::from(SETUP_FAILED);
    }
    // stdout and stderr are the supervisor log the agent opened; `run` inherits them.
    match self_command(&task, "run", dir).stdin(Stdio::null()).spawn() {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("roster supervisor: spawning the supervisor: {err}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

/// `run`: supervises the task from creation to recorded exit.
fn run(dir: &Path) -> ExitCode {
    let Some(task) = read_task(dir) else { return ExitCode::from(SETUP_FAILED) };
    let (supervisor_pid, supervisor_start) = procfs::current();
    let mut state = StateFile {
        version: wire::VERSION,
        boot_id: procfs::boot_id(),
        supervisor_pid,
        supervisor_start,
        ..StateFile::default()
    };
    save(dir, &state);
    let (mut child, output) = match spawn_task(dir, &task) {
        Ok(spawned) => spawned,
        Err(err) => return fail(dir, &task, state, err),
    };
    state.pid = i32::try_from(child.id()).ok();
    state.started_at = Some(wire::now_ms());
    save(dir, &state);
    // Until the task's output ends, which is at the latest when it does; so everything it wrote is in the log before
    // its exit is recorded, and `job status` shows its last words.
    match output::copy(output, dir, task.logs) {
        Ok(0) => {}
        Ok(dropped) => eprintln!("roster supervisor: {dropped} bytes of task output could not be written"),
        Err(err) => eprintln!("roster supervisor: opening {OUTPUT_LOG}: {err}"),
    }
    let status = child.wait();
    // PID 1 of the namespace is gone, so the kernel has killed the rest of it; processes that `enter` put in the
    // cgroup from outside the namespace, if any, go now, before the group is removed.
    state.exited_at = Some(wire::now_ms());
    match status {
        Ok(status) => {
            state.signal = status.signal();
            state.exit_code = Some(match (status.code(), status.signal()) {
                (Some(code), _) => i64::from(code),
                (None, Some(signal)) => 128 + i64::from(signal),
                (None, None) => -1,
            });
        }
        Err(err) => state.error = Some(format!("waiting for the task: {err}")),
    }
    state.oom = task.cgroup.oom_kills() > 0;
    save(dir, &state);
    cleanup(&task);
    ExitCode::SUCCESS
}

/// Creates the cgroup and spawns `init` as PID 1 of a new PID namespace, its output into a pipe whose read end is
/// returned, for the copier that keeps the task's log within its limits (`output.rs`).
fn spawn_task(dir: &Path, task: &TaskFile) -> Result<(std::process::Child, std::io::PipeReader), String> {
    task.cgroup.create(&task.resources).map_err(|err| format!("creating the cgroup: {err}"))?;
    sys::unshare_pid_for_children().map_err(|err| format!("unsharing the PID namespace: {err}"))?;
    let (reader, output) = std::io::pipe().map_err(|err| format!("creating the output pipe: {err}"))?;
    let stderr = output.try_clone().map_err(|err| format!("creating the output pipe: {err}"))?;
    // `init` inherits the network namespace this leaves the supervisor in; the supervisor returns to the host's.
    let namespace = net::enter(&task.network).map_err(|err| format!("setting up the network: {err}"))?;
    let spawned = self_command(task, "init", dir).stdin(Stdio::null()).stdout(output).stderr(stderr).spawn();
    if let Some(namespace) = namespace {
        namespace.leave().map_err(|err| format!("{err}"))?;
    }
    let child = spawned.map_err(|err| format!("spawning the task: {err}"))?;
    Ok((child, reader))
}

/// Records a failure to start as an exit with [`SETUP_FAILED`] and the reason, and cleans up.
fn fail(dir: &Path, task: &TaskFile, mut state: StateFile, error: String) -> ExitCode {
    eprintln!("roster supervisor: {}.{}: {error}", task.job, task.task);
    state.exited_at = Some(wire::now_ms());
    state.exit_code = Some(i64::from(SETUP_FAILED));
    state.error = Some(error);
    save(dir, &state);
    cleanup(task);
    ExitCode::from(SETUP_FAILED)
}

/// Kills what is left in the task's cgroup and removes it, waiting up to [`CLEANUP_WAIT`] for the kernel to let
/// go of exiting processes, and deletes the task's host veth end.
fn cleanup(task: &TaskFile) {
    if let Err(err) = net::remove_host_veth(&task.network) {
        eprintln!("roster supervisor: {err}");
    }
    let deadline = Instant::now() + CLEANUP_WAIT;
    task.cgroup.kill_all();
    loop {
        match task.cgroup.remove() {
            Ok(()) => return,
            Err(err) if Instant::now() >= deadline => {
                eprintln!("roster supervisor: removing the cgroup: {err}");
                return;
            }
            Err(_) => {
                task.cgroup.kill_all();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Writes `state.json`, reporting a failure on stderr (there is no one else to tell).
fn save(dir: &Path, state: &StateFile) {
    if let Err(err) = wire::write(&dir.join(STATE_FILE), state) {
        eprintln!("roster supervisor: writing {STATE_FILE}: {err}");
    }
}

/// `probe`: creates every namespace a task gets (in this throwaway process) and makes its mounts private.
fn probe() -> ExitCode {
    let result = sys::unshare_task_namespaces()
        .and_then(|()| {
            let private = rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC;
            rustix::mount::mount_change("/", private).map_err(std::io::Error::from)
        })
        .and_then(|()| sys::unshare_pid_for_children());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cannot create namespaces: {err}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}
