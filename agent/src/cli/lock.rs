//! `roster lock`: Consul's `consul lock` for one holder. It runs a command only while this
//! process holds `PREFIX/.lock`, and stops the command as soon as it no longer does.
//!
//! The lifecycle: create a session (TTL 15 s, renewed at half that, behavior release) → acquire
//! the key, parking on a blocking query while another session holds it → run the command in its
//! own process group → wait for whichever comes first: the command exits (release the key,
//! destroy the session, exit with the command's code), the lock is lost (the key no longer names
//! our session, or the session is gone: SIGTERM then SIGKILL to the command, exit 1), or SIGINT/
//! SIGTERM (stop the command, release, exit 1).
//!
//! Differences from Consul: `-n` above 1 (a semaphore) is refused; the command's exit code is
//! always propagated (Consul needs `-child-exit-code`, and then exits 2); `-lock-delay` sets the
//! session's lock-delay (Consul's server default, 15 s, unless given).
//!
//! # Layout
//! - `session`: create, keep alive, destroy.
//! - `key`: acquire, monitor and release `PREFIX/.lock`.
//! - `child`: start the command and stop its process group.

mod child;
mod key;
mod session;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use self::child::ChildSpec;
use super::HttpArgs;
use super::watch::agent_http::AgentHttp;
use crate::config::EnvSource;
use crate::config::duration::parse_go_duration;

/// `roster lock`.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Number of holders; only 1 (a lock) is supported.
    #[arg(short = 'n', default_value_t = 1, value_name = "N")]
    pub n: u32,
    /// Give up acquiring after this long (Go duration; 0 waits forever).
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub timeout: String,
    /// Name of the session (default: one naming the command and prefix).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Agent errors tolerated in a row while monitoring the lock before giving it up.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub monitor_retry: u32,
    /// The session's lock-delay: how long the key stays unlockable after the session is invalidated.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub lock_delay: String,
    /// Run the command through `$SHELL -c` (default true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub shell: bool,
    /// Pass this process's stdin to the command.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub pass_stdin: bool,
    /// KV prefix of the lock; the key is `PREFIX/.lock`.
    #[arg(value_name = "PREFIX")]
    pub prefix: String,
    /// The command to run while the lock is held.
    #[arg(value_name = "COMMAND", required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub child: Vec<String>,
}

/// How the locked run ended, before cleanup.
enum Outcome {
    /// The command exited by itself.
    Exited(ExitStatus),
    /// The lock went away while the command ran.
    Lost,
    /// SIGINT or SIGTERM arrived.
    Interrupted,
}

/// Runs the command under the lock and returns the exit code.
pub async fn run(args: &LockArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match args.n {
        0 => bail!("-n must be at least 1"),
        1 => {}
        n => bail!("-n {n} asks for a semaphore, which roster lock does not support; use -n 1 for a lock"),
    }
    let prefix = args.prefix.trim_matches('/');
    if prefix.is_empty() {
        bail!("Missing prefix");
    }
    let timeout = parse_go_duration(&args.timeout).map_err(anyhow::Error::msg).context("invalid -timeout")?;
    let lock_delay = parse_go_duration(&args.lock_delay).map_err(anyhow::Error::msg).context("invalid -lock-delay")?;
    let mut signals = Signals::new()?;
    let agent = AgentHttp::new(&args.http, env)?;
    let key = key::lock_key(prefix);
    let name = args.name.clone().unwrap_or_else(|| format!("Consul lock for '{}' at '{prefix}'", args.child.join(" ")));
    let session = session::create(&agent, &name, lock_delay).await?;
    let (lost_tx, lost_rx) = watch::channel(false);
    let renewer = AbortOnDrop(tokio::spawn(session::keep_alive(agent.clone(), session.clone(), lost_tx)));

    let acquired = tokio::select! {
        acquired = acquire_within(&agent, &key, &session, timeout) => acquired,
        () = signals.recv() => Err(anyhow::anyhow!("Shutdown triggered during lock acquisition")),
    };
    if let Err(err) = acquired {
        session::destroy(&agent, &session).await;
        eprintln!("Lock acquisition failed: {err:#}");
        return Ok(1);
    }
    let spec = ChildSpec { argv: args.child.clone(), shell: args.shell, pass_stdin: args.pass_stdin };
    let mut child = match child::spawn(&spec) {
        Ok(child) => child,
        Err(err) => {
            cleanup(&agent, &key, &session).await;
            return Err(err);
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => Outcome::Exited(status?),
        () = lost(&agent, &key, &session, args.monitor_retry, lost_rx) => Outcome::Lost,
        () = signals.recv() => Outcome::Interrupted,
    };
    let code = match outcome {
        Outcome::Exited(status) => exit_code(status),
        Outcome::Lost => {
            eprintln!("Lock lost, killing child");
            child::terminate(&mut child).await?;
            1
        }
        Outcome::Interrupted => {
            eprintln!("Shutdown triggered, killing child");
            child::terminate(&mut child).await?;
            1
        }
    };
    drop(renewer);
    cleanup(&agent, &key, &session).await;
    Ok(code)
}

/// Acquires the lock, giving up after `timeout` unless it is zero.
async fn acquire_within(agent: &AgentHttp, key: &str, session: &str, timeout: Duration) -> anyhow::Result<()> {
    if timeout.is_zero() {
        return key::acquire(agent, key, session).await;
    }
    match tokio::time::timeout(timeout, key::acquire(agent, key, session)).await {
        Ok(acquired) => acquired,
        Err(_) => bail!("timeout during lock acquisition"),
    }
}

/// Resolves when the lock is no longer ours: the key says so, or the renewer found the session gone.
async fn lost(agent: &AgentHttp, key: &str, session: &str, retries: u32, mut session_lost: watch::Receiver<bool>) {
    tokio::select! {
        () = key::until_lost(agent, key, session, retries) => {}
        // An Err means the renewer is gone without a verdict; the key monitor still decides.
        Ok(_) = session_lost.wait_for(|lost| *lost) => {}
    }
}

/// Releases the key (if still ours) and destroys the session.
async fn cleanup(agent: &AgentHttp, key: &str, session: &str) {
    key::release(agent, key, session).await;
    session::destroy(agent, session).await;
}

/// The command's exit code, or 128 + the signal that ended it, as shells report it.
fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|signal| 128 + signal)).unwrap_or(1)
}

/// SIGINT and SIGTERM, installed before the lock is taken so either one cleans up.
struct Signals {
    /// Ctrl-C.
    interrupt: Signal,
    /// A polite stop from a supervisor.
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers.
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Owns a background task and stops it when dropped, so no renewal outlives the lock.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
