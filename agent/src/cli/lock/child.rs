//! The command run under the lock, in a process group of its own.
//!
//! `sh -c` does not pass SIGTERM on to its children (Debian's dash), so signalling only the
//! shell would leave the real work running without the lock. The child therefore leads its own
//! process group and the whole group is signalled: SIGTERM, then SIGKILL after a grace period,
//! as `consul lock` does.
//!
//! The group is signalled through the shell's `kill` builtin because the agent crate links no
//! syscall wrapper for `kill(2)` and `#![forbid(unsafe_code)]` rules out calling libc directly.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// How long the child may take to exit after SIGTERM before it gets SIGKILL (Consul's grace).
pub(super) const KILL_GRACE: Duration = Duration::from_secs(5);

/// How to start the child.
#[derive(Debug, Clone)]
pub(super) struct ChildSpec {
    /// The command words; joined and run through the shell when `shell` is set.
    pub argv: Vec<String>,
    /// Run through `$SHELL -c` (default `/bin/sh`).
    pub shell: bool,
    /// Give the child this process's stdin instead of an empty one.
    pub pass_stdin: bool,
}

/// Starts the child with `CONSUL_LOCK_HELD=true`, leading a new process group.
pub(super) fn spawn(spec: &ChildSpec) -> anyhow::Result<Child> {
    let mut command = if spec.shell {
        let shell = std::env::var("SHELL").ok().filter(|shell| !shell.is_empty());
        let mut command = Command::new(shell.unwrap_or_else(|| "/bin/sh".to_owned()));
        command.arg("-c").arg(spec.argv.join(" "));
        command
    } else {
        let Some((program, args)) = spec.argv.split_first() else { bail!("missing the command to run") };
        let mut command = Command::new(program);
        command.args(args);
        command
    };
    command
        .env("CONSUL_LOCK_HELD", "true")
        .stdin(if spec.pass_stdin { Stdio::inherit() } else { Stdio::null() })
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().with_context(|| format!("Error running handler: cannot start {:?}", spec.argv))
}

/// SIGTERM to the child's group, SIGKILL after [`KILL_GRACE`]; returns once the child is reaped.
pub(super) async fn terminate(child: &mut Child) -> anyhow::Result<ExitStatus> {
    if let Some(pid) = child.id() {
        signal_group(pid, "TERM").await;
        // SIGTERM reached every member of the group at once, so the leader's exit is the signal
        // that the group is done; signalling a reaped leader's group again could hit a reused ID.
        if let Ok(status) = tokio::time::timeout(KILL_GRACE, child.wait()).await {
            return Ok(status?);
        }
        signal_group(pid, "KILL").await;
    }
    child.start_kill().ok();
    Ok(child.wait().await?)
}

/// Sends `signal` to process group `pgid`; a group that is already gone is not an error.
async fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -s {signal} -- -{pgid} 2>/dev/null"))
        .stdin(Stdio::null())
        .status()
        .await;
}
