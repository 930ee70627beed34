//! The [`Checks`] handle: registers checks, runs each in a task of its own and reports changes as [`Event`]s.
//!
//! # Scheduling
//!
//! Each check is one small task that sleeps on a tokio timer between probes, so an idle check costs a timer entry and
//! a few hundred bytes, and 10 000 checks at a 10 s interval cost about 1 000 probes a second and nothing else.
//! The first probe waits a random part of the interval (Consul's `RandomStagger`), so checks registered together do
//! not probe together; later probes keep that phase.
//! A semaphore of `Config::max_concurrent` permits bounds the probes in flight; a probe's timeout starts once it has a
//! permit, so a burst delays probes rather than failing them.
//!
//! # State and events
//!
//! The state of every check (its [`crate::status`] machine, TTL deadline and generation) sits in one map behind a
//! mutex held only for a few field updates, so `status` and `ttl_update` answer synchronously.
//! A check's task is the only sender of its events, so they reach the agent in order; it compares what the check
//! shows after each step with what it last reported and sends only a difference.
//! The event channel is bounded and sends are awaited: a slow consumer delays the next probe of that check; no
//! transition is ever dropped.
//! Replacing a check bumps its generation and cancels the old task; a result of an old generation is discarded.
//!
//! # Lifetime
//!
//! Every task runs under a child of the `shutdown` token and belongs to a `TaskTracker`; dropping the last [`Checks`]
//! handle cancels them all too.

mod task;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::runner::{HttpClients, Runners};
use crate::spec::{CheckKind, CheckSpec};
use crate::status::{Machine, Status};

/// What the agent configures about health as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Consul's `enable_script_checks`: without it a script check never runs its command and stays critical, saying
    /// why (the agent should already refuse to register one). Running arbitrary commands is a remote-execution risk.
    pub enable_script_checks: bool,
    /// The most probes in flight at once. Higher finishes a burst sooner; lower caps the sockets, processes and CPU
    /// that checks can take. 0 is taken as 1.
    pub max_concurrent: usize,
}

/// A change the agent must write to the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The check's status or output changed (never sent for an unchanged result).
    Status {
        /// The check.
        check_id: String,
        /// What it shows now.
        status: Status,
        /// The output that goes with the status.
        output: String,
    },
    /// The check has been critical without a break for its `deregister_critical_after`: deregister its service.
    /// Sent once per critical stretch.
    CriticalTooLong {
        /// The check.
        check_id: String,
    },
}

/// Where alias checks read the health they mirror (the agent answers from its local state or the catalog).
#[async_trait::async_trait]
pub trait AliasSource: Send + Sync + 'static {
    /// Blocking-query style: returns the aggregate status (worst of the node's checks and, if `service_id`, that
    /// instance's checks; critical if absent) once the data's index passes `after_index` (or at once when
    /// `after_index` is 0), with the new index and an output text.
    async fn wait_status(&self, node: &str, service_id: Option<&str>, after_index: u64) -> (Status, String, u64);
}

/// Runs a command inside a container (implemented over the Docker Engine API by `roster-runtime-shim`).
#[async_trait::async_trait]
pub trait ContainerExec: Send + Sync + 'static {
    /// Runs `args` in `container_id` and returns its exit code and combined output, or why it could not run.
    /// `shell` is the check's `Shell` setting, for implementations that need one.
    async fn exec(
        &self,
        container_id: &str,
        shell: &str,
        args: &[String],
        timeout: Duration,
    ) -> std::result::Result<(i64, Vec<u8>), String>;
}

/// A cheap, clonable handle to the running checks.
#[derive(Clone)]
pub struct Checks {
    /// The state shared with the check tasks.
    shared: Arc<Shared>,
    /// Cancels every check task when the last handle is dropped.
    _guard: Arc<DropGuard>,
}

/// What the handle and every check task share.
struct Shared {
    /// Every registered check by ID.
    entries: Mutex<HashMap<String, Entry>>,
    /// The probes and what they share.
    runners: Runners,
    /// Bounds the probes in flight.
    permits: Semaphore,
    /// Where alias checks read from.
    alias: Arc<dyn AliasSource>,
    /// Where changes go.
    events: mpsc::Sender<Event>,
    /// The parent of every check's cancellation token.
    root: CancellationToken,
    /// Owns every check task.
    tracker: TaskTracker,
    /// The runtime check tasks run on, so `upsert` works from any thread.
    runtime: tokio::runtime::Handle,
    /// The next generation number to hand out.
    next_generation: AtomicU64,
}

/// One registered check.
struct Entry {
    /// Its definition.
    spec: Arc<CheckSpec>,
    /// What it shows and its threshold counters.
    machine: Machine,
    /// Which registration this is; results of older ones are discarded.
    generation: u64,
    /// Stops this check's task.
    cancel: CancellationToken,
    /// For TTL checks: when the last reported status expires.
    ttl_deadline: Option<Instant>,
    /// Wakes the task after a TTL update so it re-reads the deadline.
    kick: Arc<Notify>,
    /// Since when the check has shown critical without a break; kept here, beside the machine, so that a TTL
    /// update to passing that the task never saw as an event still breaks the stretch.
    critical_since: Option<Instant>,
    /// Whether this critical stretch has already been reported as too long.
    deregister_sent: bool,
}

impl Checks {
    /// Starts health: no checks yet. Must be called inside a tokio runtime.
    pub fn spawn(
        config: Config,
        alias: Arc<dyn AliasSource>,
        exec: Option<Arc<dyn ContainerExec>>,
        events: mpsc::Sender<Event>,
        shutdown: CancellationToken,
    ) -> Checks {
        let root = shutdown.child_token();
        let runners = Runners { http: HttpClients::new(), exec, enable_script_checks: config.enable_script_checks };
        let shared = Shared {
            entries: Mutex::new(HashMap::new()),
            runners,
            permits: Semaphore::new(config.max_concurrent.clamp(1, Semaphore::MAX_PERMITS)),
            alias,
            events,
            root: root.clone(),
            tracker: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
            next_generation: AtomicU64::new(1),
        };
        Checks { shared: Arc::new(shared), _guard: Arc::new(root.drop_guard()) }
    }

    /// Adds a check or replaces the one with the same ID; a replaced check restarts from the new spec's initial
    /// status (with no event: the agent wrote that status when it registered the check).
    pub fn upsert(&self, spec: CheckSpec) {
        let spec = Arc::new(spec);
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let cancel = self.shared.root.child_token();
        let kick = Arc::new(Notify::new());
        let ttl_deadline = match spec.kind {
            CheckKind::Ttl { ttl } => Some(Instant::now() + ttl),
            _ => None,
        };
        let entry = Entry {
            spec: spec.clone(),
            machine: Machine::new(spec.initial_status, spec.thresholds),
            generation,
            cancel: cancel.clone(),
            ttl_deadline,
            kick: kick.clone(),
            // The agent registered the check with its initial status, so an initially critical check is critical
            // from now.
            critical_since: (spec.initial_status == Status::Critical).then(Instant::now),
            deregister_sent: false,
        };
        if let Some(old) = self.shared.lock().insert(spec.check_id.clone(), entry) {
            old.cancel.cancel();
        }
        let span = tracing::debug_span!("check", check_id = %spec.check_id);
        let task = task::run(self.shared.clone(), spec, generation, cancel, kick);
        self.shared.tracker.spawn_on(task.instrument(span), &self.shared.runtime);
    }

    /// Stops and forgets a check; unknown IDs are ignored.
    pub fn remove(&self, check_id: &str) {
        if let Some(old) = self.shared.lock().remove(check_id) {
            old.cancel.cancel();
        }
    }

    /// Sets a TTL check's status (Consul's pass / warn / fail / update) and restarts its TTL.
    /// Output beyond the check's `output_max_size` is cut, saying so.
    pub fn ttl_update(&self, check_id: &str, status: Status, output: String) -> Result<()> {
        let mut entries = self.shared.lock();
        let entry = entries.get_mut(check_id).ok_or_else(|| Error::UnknownCheck(check_id.to_string()))?;
        let CheckKind::Ttl { ttl } = entry.spec.kind else {
            return Err(Error::NotTtl(check_id.to_string()));
        };
        let output = truncate_output(output, entry.spec.output_max_size);
        entry.machine.set(status, output);
        entry.note_status();
        entry.ttl_deadline = Some(Instant::now() + ttl);
        entry.kick.notify_one();
        Ok(())
    }

    /// What a check shows now, or `None` for an unknown ID.
    pub fn status(&self, check_id: &str) -> Option<(Status, String)> {
        let entries = self.shared.lock();
        let (status, output) = entries.get(check_id)?.machine.current();
        Some((status, output.to_string()))
    }

    /// How many checks are registered.
    pub fn len(&self) -> usize {
        self.shared.lock().len()
    }

    /// Whether no check is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves plain data behind, still consistent enough to keep serving.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Entry {
    /// Starts or ends the critical stretch after the machine changed.
    fn note_status(&mut self) {
        if self.machine.current().0 == Status::Critical {
            self.critical_since.get_or_insert_with(Instant::now);
        } else {
            self.critical_since = None;
            self.deregister_sent = false;
        }
    }

    /// When the current critical stretch becomes too long, if it can.
    fn deregister_at(&self) -> Option<Instant> {
        let after = self.spec.deregister_critical_after?;
        if self.deregister_sent {
            return None;
        }
        Some(self.critical_since? + after)
    }
}

impl Default for Config {
    fn default() -> Config {
        Config { enable_script_checks: false, max_concurrent: 256 }
    }
}

/// Cuts a TTL update's output to `max` bytes (on a character boundary), as Consul's TTL check does.
fn truncate_output(output: String, max: usize) -> String {
    if output.len() <= max {
        return output;
    }
    let mut cut = max;
    while !output.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ... (captured {cut} of {} bytes)", &output[..cut], output.len())
}

#[cfg(test)]
mod tests;
