//! The fan-out behind `/v1/agent/monitor`: a `tracing` layer that hands every event to the clients streaming the log,
//! each at its own level and in its own format, independent of the level the agent logs at.
//!
//! Each client has a bounded buffer ([`BUFFER_LINES`], Consul's 512). The agent never waits for a client: a line that
//! finds the buffer full is dropped and counted, and the client is told how many were dropped before its next line.
//!
//! Interest: with no client connected the layer is disabled for every callsite, so the agent pays nothing for it. The
//! most verbose level any client asked for is the layer's level; a client arriving or leaving that changes it
//! rebuilds tracing's callsite cache, so events that were filtered out before reach the layer from then on.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};

use super::format::Captured;
use crate::config::LogLevel;

/// How many lines a client may fall behind before lines are dropped for it (Consul's monitor buffer).
pub const BUFFER_LINES: usize = 512;

/// The registry of monitor clients, shared by the layer and the HTTP handler.
#[derive(Clone, Default)]
pub struct Monitors {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    clients: Mutex<Vec<Client>>,
    /// The most verbose level any client wants, as [`rank`] numbers it; 0 with no client.
    max_rank: AtomicUsize,
    next_id: AtomicU64,
}

/// One connected client.
struct Client {
    id: u64,
    level: LogLevel,
    json: bool,
    lines: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

/// A client's end: the lines logged since it subscribed, at its level, in its format. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    monitors: Monitors,
    lines: mpsc::Receiver<String>,
    dropped: Arc<AtomicU64>,
    json: bool,
}

impl Monitors {
    /// Starts streaming log lines at `level` (JSON when `json`) to a new client.
    pub fn subscribe(&self, level: LogLevel, json: bool) -> Subscription {
        let (tx, rx) = mpsc::channel(BUFFER_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let client = Client { id, level, json, lines: tx, dropped: dropped.clone() };
        self.lock().push(client);
        self.recompute_interest();
        Subscription { id, monitors: self.clone(), lines: rx, dropped, json }
    }

    /// How many clients are connected (for tests and stats).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.inner.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().retain(|client| client.id != id);
        self.recompute_interest();
    }

    /// Sets the layer's level to the most verbose client's, and makes tracing ask again when it changed.
    fn recompute_interest(&self) {
        let max = self.lock().iter().map(|client| rank(client.level)).max().unwrap_or(0);
        if self.inner.max_rank.swap(max, Ordering::SeqCst) != max {
            tracing::callsite::rebuild_interest_cache();
        }
    }

    /// Sends `event` to every client whose level takes it; a full buffer counts a drop.
    fn deliver(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let captured = Captured::of(event);
        let (mut text, mut json) = (None, None);
        for client in self.lock().iter() {
            if !takes(client.level, meta) {
                continue;
            }
            let line = if client.json {
                json.get_or_insert_with(|| captured.json()).clone()
            } else {
                text.get_or_insert_with(|| captured.text()).clone()
            };
            match client.lines.try_send(line) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    client.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // The client's `Subscription` is being dropped, and its `Drop` unsubscribes it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// The layer that feeds these clients, with the filter that keeps it off while nobody listens.
    pub(crate) fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        MonitorLayer { monitors: self.clone() }.with_filter(MonitorFilter { monitors: self.clone() })
    }
}

impl Subscription {
    /// The next line; once the buffered lines are read, a note of how many were dropped after them, if any.
    /// `None` once the agent is gone.
    pub async fn next(&mut self) -> Option<String> {
        match self.lines.try_recv() {
            Ok(line) => Some(line),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Lines are dropped only while the buffer is full, so none are lost while this waits.
                let dropped = self.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    return Some(dropped_note(dropped, self.json));
                }
                self.lines.recv().await
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.monitors.unsubscribe(self.id);
    }
}

/// The line that stands in for `n` dropped ones.
fn dropped_note(n: u64, json: bool) -> String {
    let message = format!("monitor: {n} log lines dropped; this client reads more slowly than the agent logs");
    let captured = Captured {
        at: std::time::SystemTime::now(),
        level: tracing::Level::WARN,
        module: "roster_agent::logging::monitor".to_owned(),
        message,
        fields: Vec::new(),
    };
    if json { captured.json() } else { captured.text() }
}

/// Levels numbered so that more verbose is larger; 0 is "nothing".
fn rank(level: LogLevel) -> usize {
    match level {
        LogLevel::Error => 1,
        LogLevel::Warn => 2,
        LogLevel::Info => 3,
        LogLevel::Debug => 4,
        LogLevel::Trace => 5,
    }
}

fn rank_of(level: &tracing::Level) -> usize {
    match *level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    }
}

/// Whether a client at `level` sees an event: its level, with the noisy crates held at warn as in the agent's own
/// log (hickory's per-query lines, openraft's per-entry ones), so a monitor shows what the agent would log there.
fn takes(level: LogLevel, meta: &Metadata<'_>) -> bool {
    let event_rank = rank_of(meta.level());
    let noisy = ["hickory_server", "openraft"].iter().any(|prefix| meta.target().starts_with(prefix));
    event_rank <= rank(level) && (!noisy || event_rank <= rank(LogLevel::Warn))
}

struct MonitorLayer {
    monitors: Monitors,
}

impl<S: Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
        self.monitors.deliver(event);
    }
}

/// Enables the layer for exactly the events some client wants.
struct MonitorFilter {
    monitors: Monitors,
}

impl MonitorFilter {
    fn wanted(&self, meta: &Metadata<'_>) -> bool {
        rank_of(meta.level()) <= self.monitors.inner.max_rank.load(Ordering::Relaxed)
    }
}

impl<S> Filter<S> for MonitorFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        meta.is_event() && self.wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Cached until the next rebuild, which every change of the clients' level triggers.
        if meta.is_event() && self.wanted(meta) { Interest::always() } else { Interest::never() }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(match self.monitors.inner.max_rank.load(Ordering::Relaxed) {
            0 => tracing::level_filters::LevelFilter::OFF,
            1 => tracing::level_filters::LevelFilter::ERROR,
            2 => tracing::level_filters::LevelFilter::WARN,
            3 => tracing::level_filters::LevelFilter::INFO,
            4 => tracing::level_filters::LevelFilter::DEBUG,
            _ => tracing::level_filters::LevelFilter::TRACE,
        })
    }
}
