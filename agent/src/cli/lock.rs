//! `roster lock`: Consul's `consul lock`. It runs a command only while this process holds
//! `PREFIX` (a lock with `-n 1`, one of N semaphore slots with `-n N`), and stops the command as
//! soon as it no longer does.
//!
//! The lifecycle: create a session (TTL 15 s, renewed at half that) → acquire, parking on a
//! blocking query while the lock or every slot is held → run the command in its own process group
//! → wait for whichever comes first: the command exits (release, destroy the session, exit with
//! the command's code), the hold is lost (the lock key no longer names our session, our session
//! left the semaphore's holders, or the session is gone: SIGTERM then SIGKILL to the command, exit
//! 1), or SIGINT/SIGTERM (stop the command, release, exit 1).
//!
//! `-n 1` takes `PREFIX/.lock` with `?acquire` (Consul's `api.Lock`, session behavior release);
//! `-n` above 1 follows Consul's `api.Semaphore` (session behavior delete, a contender key
//! `PREFIX/<session>`, the holder set in `PREFIX/.lock`), so Go and roster contenders share a prefix.
//!
//! Differences from Consul: the command's exit code is always propagated (Consul needs
//! `-child-exit-code`, and then exits 2); `-lock-delay` sets the session's lock-delay (Consul's
//! server default, 15 s, unless given; a semaphore's contender keys are never re-acquired, so it
//! has no effect there); a semaphore reads only the keys under `PREFIX/` to find the live
//! contenders, where Go lists every key starting with `PREFIX`, which only differs for a sibling
//! prefix like `PREFIX2/`; a lock leaves its unheld `.lock` key in place.
//!
//! # Layout
//! - `session`: create, keep alive, destroy.
//! - `key`: acquire, monitor and release `PREFIX/.lock` as a lock.
//! - `semaphore`: take, monitor and give up a slot of Consul's semaphore.
//! - `monitor`: the blocking-read loop both use to notice a lost hold, with its retry rule.
//! - `child`: start the command and stop its process group.

mod child;
mod key;
mod monitor;
mod semaphore;
mod session;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use self::child::ChildSpec;
use self::semaphore::Semaphore;
use self::session::Behavior;
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
    /// Number of concurrent holders: 1 is a lock, more a semaphore all contenders must agree on.
    #[arg(short = 'n', default_value_t = 1, value_name = "N")]
    pub n: u32,
    /// Give up acquiring after this long (Go duration; 0 waits forever). `-try` is Consul's old name.
    #[arg(long, alias = "try", default_value = "0s", value_name = "DURATION")]
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
    /// Report each step (setup, acquisition, the command's start and end) on stderr.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub verbose: bool,
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

/// What the session holds under the prefix.
#[derive(Debug, Clone)]
enum Hold {
    /// `-n 1`: the session itself acquires this key, `PREFIX/.lock`.
    Lock(String),
    /// `-n` above 1: one slot of the semaphore at the prefix.
    Semaphore(Semaphore),
}

impl Hold {
    /// The hold `-n` asks for at `prefix`.
    fn new(limit: u32, prefix: &str) -> anyhow::Result<Hold> {
        Ok(match limit {
            0 => bail!("Lock holder limit must be positive"),
            1 => Hold::Lock(key::lock_key(prefix)),
            limit => Hold::Semaphore(Semaphore { prefix: prefix.to_owned(), limit }),
        })
    }

    /// What the agent should do with the session's keys when it ends.
    fn behavior(&self) -> Behavior {
        match self {
            Hold::Lock(_) => Behavior::Release,
            Hold::Semaphore(_) => Behavior::Delete,
        }
    }

    /// Waits until `session` holds it. Runs until it succeeds or fails; the caller bounds it.
    async fn acquire(&self, agent: &AgentHttp, session: &str) -> anyhow::Result<()> {
        match self {
            Hold::Lock(key) => key::acquire(agent, key, session).await,
            Hold::Semaphore(semaphore) => semaphore.acquire(agent, session).await,
        }
    }

    /// Returns once `session` no longer holds it, or the agent failed more than `retries` times in a row.
    async fn until_lost(&self, agent: &AgentHttp, session: &str, retries: u32) {
        match self {
            Hold::Lock(key) => key::until_lost(agent, key, session, retries).await,
            Hold::Semaphore(semaphore) => semaphore.until_lost(agent, session, retries).await,
        }
    }

    /// Gives it up if `session` still holds it; best effort.
    async fn release(&self, agent: &AgentHttp, session: &str) {
        match self {
            Hold::Lock(key) => key::release(agent, key, session).await,
            Hold::Semaphore(semaphore) => semaphore.release(agent, session).await,
        }
    }
}

/// Runs the command under the lock and returns the exit code.
pub async fn run(args: &LockArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let prefix = args.prefix.trim_matches('/');
    if prefix.is_empty() {
        bail!("Missing prefix");
    }
    let hold = Hold::new(args.n, prefix)?;
    let timeout = parse_go_duration(&args.timeout).map_err(anyhow::Error::msg).context("invalid -timeout")?;
    let lock_delay = parse_go_duration(&args.lock_delay).map_err(anyhow::Error::msg).context("invalid -lock-delay")?;
    let verbose = |message: &str| {
        if args.verbose {
            eprintln!("{message}");
        }
    };
    let mut signals = Signals::new()?;
    let agent = AgentHttp::new(&args.http, env)?;
    match &hold {
        Hold::Lock(key) => verbose(&format!("Setting up lock at path: {key}")),
        Hold::Semaphore(_) => verbose(&format!("Setting up semaphore (limit {}) at prefix: {prefix}", args.n)),
    }
    let name = args.name.clone().unwrap_or_else(|| format!("Consul lock for '{}' at '{prefix}'", args.child.join(" ")));
    let session = session::create(&agent, &name, hold.behavior(), lock_delay).await?;
    let (lost_tx, lost_rx) = watch::channel(false);
    let renewer = AbortOnDrop(tokio::spawn(session::keep_alive(agent.clone(), session.clone(), lost_tx)));

    verbose("Attempting lock acquisition");
    let acquired = tokio::select! {
        acquired = acquire_within(&agent, &hold, &session, timeout) => acquired,
        () = signals.recv() => Err(anyhow::anyhow!("Shutdown triggered during lock acquisition")),
    };
    if let Err(err) = acquired {
        // With behavior delete this also removes a semaphore contender key.
        session::destroy(&agent, &session).await;
        eprintln!("Lock acquisition failed: {err:#}");
        return Ok(1);
    }
    verbose("Starting handler");
    let spec = ChildSpec { argv: args.child.clone(), shell: args.shell, pass_stdin: args.pass_stdin };
    let mut child = match child::spawn(&spec) {
        Ok(child) => child,
        Err(err) => {
            cleanup(&agent, &hold, &session).await;
            return Err(err);
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => Outcome::Exited(status?),
        () = lost(&agent, &hold, &session, args.monitor_retry, lost_rx) => Outcome::Lost,
        () = signals.recv() => Outcome::Interrupted,
    };
    let code = match outcome {
        Outcome::Exited(status) => {
            verbose("Child terminated, releasing lock");
            exit_code(status)
        }
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
    cleanup(&agent, &hold, &session).await;
    Ok(code)
}

/// Acquires the hold, giving up after `timeout` unless it is zero.
async fn acquire_within(agent: &AgentHttp, hold: &Hold, session: &str, timeout: Duration) -> anyhow::Result<()> {
    if timeout.is_zero() {
        return hold.acquire(agent, session).await;
    }
    match tokio::time::timeout(timeout, hold.acquire(agent, session)).await {
        Ok(acquired) => acquired,
        Err(_) => bail!("timeout during lock acquisition"),
    }
}

/// Resolves when the hold is no longer ours: the KV says so, or the renewer found the session gone.
async fn lost(agent: &AgentHttp, hold: &Hold, session: &str, retries: u32, mut session_lost: watch::Receiver<bool>) {
    tokio::select! {
        () = hold.until_lost(agent, session, retries) => {}
        // An Err means the renewer is gone without a verdict; the KV monitor still decides.
        Ok(_) = session_lost.wait_for(|lost| *lost) => {}
    }
}

/// Releases the hold (if still ours) and destroys the session.
async fn cleanup(agent: &AgentHttp, hold: &Hold, session: &str) {
    hold.release(agent, session).await;
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
