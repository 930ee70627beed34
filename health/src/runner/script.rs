//! The script probe: runs a command on this host, exit 0 passing, 1 warning, anything else critical.
//!
//! The command runs without a shell in a process group of its own, with stdout and stderr captured into one buffer
//! (the tail is kept, with Consul's "Captured N of M bytes" notice).
//! At the timeout the whole group is killed, so a shell script's children die with it instead of piling up one set
//! per interval; the run waits for both the exit and the end of output, as Go's `exec.Cmd.Wait` does.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use crate::runner::{OutputBuffer, format_duration, status_of_exit_code};
use crate::status::Status;

/// Runs `args` with a `timeout`, keeping at most `max` output bytes.
pub(crate) async fn run(args: &[String], timeout: Duration, max: usize) -> (Status, String) {
    let Some((program, rest)) = args.split_first() else {
        return (Status::Critical, "The script check has no command to run".to_string());
    };
    let mut command = Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return (Status::Critical, format!("Failed to invoke {program:?}: {err}")),
    };
    let mut output = OutputBuffer::new(max);
    let res = tokio::time::timeout(timeout, collect(&mut child, &mut output)).await;
    match res {
        Ok(Ok(exit)) => (status_of_exit(exit), output.text_with_notice()),
        Ok(Err(err)) => (Status::Critical, format!("Failed to run {program:?}: {err}")),
        Err(_) => {
            kill_group(&mut child).await;
            (Status::Critical, format!("Timed out ({}) running check", format_duration(timeout)))
        }
    }
}

/// Reads stdout and stderr to their ends into `output`, then reaps the child.
async fn collect(child: &mut Child, output: &mut OutputBuffer) -> std::io::Result<ExitStatus> {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut stdout_chunk = [0u8; 4096];
    let mut stderr_chunk = [0u8; 4096];
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            read = read_some(&mut stdout, &mut stdout_chunk), if stdout.is_some() => match read {
                Ok(0) | Err(_) => stdout = None,
                Ok(n) => output.write(&stdout_chunk[..n]),
            },
            read = read_some(&mut stderr, &mut stderr_chunk), if stderr.is_some() => match read {
                Ok(0) | Err(_) => stderr = None,
                Ok(n) => output.write(&stderr_chunk[..n]),
            },
        }
    }
    child.wait().await
}

async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, chunk: &mut [u8]) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(chunk).await,
        None => Ok(0),
    }
}

/// Kills the child's process group (its own, made at spawn), then the child itself, and reaps it.
async fn kill_group(child: &mut Child) {
    let group = child.id().and_then(|pid| i32::try_from(pid).ok()).and_then(rustix::process::Pid::from_raw);
    if let Some(group) = group {
        // The group may be gone already (the leader exited, its children too); that is the goal, not an error.
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn status_of_exit(exit: ExitStatus) -> Status {
    // Killed by a signal: no exit code, and Consul counts that as critical.
    exit.code().map_or(Status::Critical, |code| status_of_exit_code(i64::from(code)))
}
