//! The task that runs one check: waits for its next result (a probe, a TTL update or expiry, an alias change),
//! feeds it to the check's state machine, and reports what changed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::checks::{Event, Shared};
use crate::spec::{CheckKind, CheckSpec};
use crate::status::Status;

/// The shortest time between two probes of one check, so a zero interval cannot spin.
const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// The pause before asking an alias source again when it answered without a newer index.
const ALIAS_RETRY: Duration = Duration::from_secs(1);

/// What one wait of a check produced.
enum Step {
    /// A probe result, which goes through the thresholds.
    Probe(Status, String),
    /// A result shown as is (alias).
    Set(Status, String),
    /// A TTL deadline passed (or moved: the update already changed the machine).
    TtlTimer,
    /// The check has been critical for its `deregister_critical_after`.
    CriticalTooLong,
}

/// Where a check's results come from, with the state between waits.
enum Source {
    /// A probing check and when its next probe starts.
    Probe { next_run: Instant },
    /// A TTL check: results arrive through `Checks::ttl_update`; this only watches the deadline.
    Ttl,
    /// An alias check and the index its last answer had.
    Alias { index: u64 },
}

/// Runs one check until it is cancelled, replaced, or the event receiver is gone.
pub(super) async fn run(
    shared: Arc<Shared>,
    spec: Arc<CheckSpec>,
    generation: u64,
    cancel: CancellationToken,
    kick: Arc<Notify>,
) {
    let started = Instant::now();
    let mut source = Source::new(&spec, started);
    let mut reported = (spec.initial_status, String::new());
    let mut deregister_at = match shared.lock().get(&spec.check_id).filter(|entry| entry.generation == generation) {
        Some(entry) => entry.deregister_at(),
        None => return,
    };
    loop {
        let step = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = sleep_until_some(deregister_at) => Step::CriticalTooLong,
            step = source.next(&shared, &spec, generation, &kick) => step,
        };
        let in_start_period = started.elapsed() < spec.start_period;
        let Some(applied) = apply(&shared, &spec, generation, step, in_start_period) else {
            return;
        };
        deregister_at = applied.deregister_at;
        if applied.too_long {
            let event = Event::CriticalTooLong { check_id: spec.check_id.clone() };
            if !send(&shared, &cancel, event).await {
                return;
            }
        }
        if applied.current != reported {
            reported = applied.current.clone();
            let (status, output) = applied.current;
            let event = Event::Status { check_id: spec.check_id.clone(), status, output };
            if !send(&shared, &cancel, event).await {
                return;
            }
        }
    }
}

/// What a step left the check showing.
struct Applied {
    /// The status and output now shown.
    current: (Status, String),
    /// When the critical stretch will be too long, if it is running and not yet reported.
    deregister_at: Option<Instant>,
    /// The critical stretch just became too long: report it.
    too_long: bool,
}

/// Applies `step` to the check's state and returns what it shows, or `None` if this task's check was replaced.
fn apply(shared: &Shared, spec: &CheckSpec, generation: u64, step: Step, in_start_period: bool) -> Option<Applied> {
    let mut entries = shared.lock();
    let entry = entries.get_mut(&spec.check_id).filter(|entry| entry.generation == generation)?;
    let deregister_timer = matches!(step, Step::CriticalTooLong);
    match step {
        Step::Probe(status, output) => entry.machine.observe(status, output, in_start_period),
        Step::Set(status, output) => entry.machine.set(status, output),
        Step::TtlTimer => {
            // Re-checked under the lock: an update that landed after the timer fired has moved the deadline.
            if entry.ttl_deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                entry.ttl_deadline = None;
                let output = ttl_expired_output(entry.machine.current().1);
                entry.machine.set(Status::Critical, output);
            }
        }
        Step::CriticalTooLong => {}
    }
    entry.note_status();
    // Re-checked under the lock, like the TTL: the stretch may have ended since the timer was set.
    let too_long = deregister_timer && entry.deregister_at().is_some_and(|deadline| deadline <= Instant::now());
    if too_long {
        entry.deregister_sent = true;
    }
    let (status, output) = entry.machine.current();
    Some(Applied { current: (status, output.to_string()), deregister_at: entry.deregister_at(), too_long })
}

/// Sends `event` unless the check is cancelled first; false when the task should stop.
async fn send(shared: &Shared, cancel: &CancellationToken, event: Event) -> bool {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => false,
        res = shared.events.send(event) => res.is_ok(),
    }
}

impl Source {
    fn new(spec: &CheckSpec, started: Instant) -> Source {
        match spec.kind {
            CheckKind::Ttl { .. } => Source::Ttl,
            CheckKind::Alias { .. } => Source::Alias { index: 0 },
            _ => {
                let interval = probe_interval(spec);
                // Spread first probes over one interval so checks registered together never probe together.
                let stagger = rand::random_range(0..=interval.as_nanos().min(u128::from(u64::MAX)) as u64);
                Source::Probe { next_run: started + Duration::from_nanos(stagger) }
            }
        }
    }

    /// Waits for this check's next result.
    async fn next(&mut self, shared: &Shared, spec: &CheckSpec, generation: u64, kick: &Notify) -> Step {
        match self {
            Source::Probe { next_run } => {
                sleep_until(*next_run).await;
                let (status, output) = {
                    // The semaphore is never closed; were it, probing without a permit beats stopping the check.
                    let _permit = shared.permits.acquire().await;
                    // Boxed so the probe's large future (an HTTP client call) exists only while it runs, and an
                    // idle check's task stays a few hundred bytes.
                    Box::pin(shared.runners.probe(spec)).await
                };
                metrics::counter!("roster.checks.runs_total", "type" => kind_label(&spec.kind)).increment(1);
                let now = Instant::now();
                *next_run += probe_interval(spec);
                if *next_run < now {
                    // The probe outlasted its interval (a long timeout): start the next one a full interval later.
                    *next_run = now + probe_interval(spec);
                }
                Step::Probe(status, output)
            }
            Source::Ttl => {
                let deadline = shared
                    .lock()
                    .get(&spec.check_id)
                    .filter(|entry| entry.generation == generation)
                    .and_then(|entry| entry.ttl_deadline);
                tokio::select! {
                    biased;
                    _ = kick.notified() => Step::TtlTimer,
                    _ = sleep_until_some(deadline) => Step::TtlTimer,
                }
            }
            Source::Alias { index } => {
                let CheckKind::Alias { node, service_id } = &spec.kind else {
                    return Step::Set(Status::Critical, "internal error: not an alias check".to_string());
                };
                let (status, output, new_index) = shared.alias.wait_status(node, service_id.as_deref(), *index).await;
                if new_index == *index && *index != 0 {
                    // The source answered without news (a timeout or an error): do not ask again in a tight loop.
                    tokio::time::sleep(ALIAS_RETRY).await;
                }
                *index = new_index;
                Step::Set(status, output)
            }
        }
    }
}

fn probe_interval(spec: &CheckSpec) -> Duration {
    spec.interval.max(MIN_PROBE_INTERVAL)
}

/// Consul's text for an expired TTL, keeping the last output the service reported.
fn ttl_expired_output(last_output: &str) -> String {
    const PREFIX: &str = "TTL expired";
    if last_output.is_empty() || last_output.starts_with(PREFIX) {
        PREFIX.to_string()
    } else {
        format!("{PREFIX} (last output before timeout follows): {last_output}")
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A check's type as a metric label (Consul's `Type` field).
fn kind_label(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Http { .. } => "http",
        CheckKind::Tcp { .. } => "tcp",
        CheckKind::Udp { .. } => "udp",
        CheckKind::Grpc { .. } => "grpc",
        CheckKind::Script { .. } => "script",
        CheckKind::Ttl { .. } => "ttl",
        CheckKind::Docker { .. } => "docker",
        CheckKind::Alias { .. } => "alias",
        CheckKind::H2Ping { .. } => "h2ping",
    }
}
