//! User events (`/v1/event/*`): fired on any agent, spread by gossip, kept by every agent whose node, services and
//! tags match the event's filters, in a ring of the last [`MAX_EVENTS`], as Consul's agent keeps them.
//!
//! Each event carries a Lamport time: a fire takes one more than the highest seen, and every delivery raises the
//! local clock to the event's, as Serf does, so an event fired after another was seen orders after it.
//! `GET /v1/event/list` answers with an index derived from the last event's ID (Consul's scheme), so a blocking list
//! returns when a new event is stored.
//!
//! # Layout
//! - `ring`: the buffer and the clock; `filter`: checking filters at fire time and matching them on delivery.
//!
//! # Limits
//! The name is at most [`MAX_NAME`] bytes and the payload at most [`MAX_PAYLOAD`] (Serf's default limit, which in
//! Consul covers name and payload together); the whole event must encode within [`MAX_EVENT_BYTES`] so it fits one
//! gossip datagram, which bounds the filters too.

mod filter;
mod ring;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument as _;

pub use filter::Filters;
pub use ring::{MAX_EVENTS, uuid_index};

use crate::gossip::{Gossip, MAX_EVENT_BYTES, UserEvent};
use crate::local::Local;
use ring::Ring;

/// The largest payload an event may carry, in bytes (Serf's default `UserEventSizeLimit`).
pub const MAX_PAYLOAD: usize = 512;
/// The longest event name, in bytes.
pub const MAX_NAME: usize = 128;

/// This agent's received events.
pub struct EventStore {
    /// This agent's node name, which node filters match.
    node: String,
    /// Where service and tag filters find this agent's services.
    services: Services,
    /// Spreads fires to the cluster; `None` when the agent runs without gossip (`-dev` may), then fires stay here.
    gossip: Option<Gossip>,
    /// The stored events and the Lamport clock.
    ring: Mutex<Ring>,
    /// Bumped whenever an event is stored; blocking lists wait on it.
    changes: watch::Sender<u64>,
    /// Stops the gossip receiver when the store goes away.
    _stop_on_drop: DropGuard,
}

/// The agent's services, as filters see them.
enum Services {
    /// The agent's local state.
    Local(Arc<Local>),
    /// A fixed list, for tests that have no catalog behind them.
    #[cfg(test)]
    Fixed(Vec<roster_kv::Service>),
}

impl EventStore {
    /// Starts receiving events from `gossip` (when the agent gossips) until `shutdown` or the store is dropped.
    pub fn start(
        node: String,
        local: Arc<Local>,
        gossip: Option<Gossip>,
        shutdown: CancellationToken,
    ) -> Arc<EventStore> {
        EventStore::with_services(node, Services::Local(local), gossip, shutdown)
    }

    fn with_services(
        node: String,
        services: Services,
        gossip: Option<Gossip>,
        shutdown: CancellationToken,
    ) -> Arc<EventStore> {
        let stop = shutdown.child_token();
        let store = Arc::new(EventStore {
            node,
            services,
            gossip: gossip.clone(),
            ring: Mutex::new(Ring::default()),
            changes: watch::Sender::new(0),
            _stop_on_drop: stop.clone().drop_guard(),
        });
        if let Some(gossip) = gossip {
            let span = tracing::info_span!("events", node = %store.node);
            // The task holds the store weakly, so dropping the store's last handle ends it through the guard above.
            tokio::spawn(receive(Arc::downgrade(&store), gossip, stop).instrument(span));
        }
        store
    }

    /// Fires an event: checked, stamped with the next Lamport time, stored here if it matches, spread by gossip.
    ///
    /// Returns the event as Consul's fire answers it, with `ltime` 0: Consul learns the Lamport time only when Serf
    /// delivers the event back, after the answer.
    pub async fn fire(&self, name: &str, payload: Vec<u8>, filters: Filters) -> Result<UserEvent, String> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(format!("User event name must be 1 to {MAX_NAME} bytes"));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(format!("User event payload exceeds limit of {MAX_PAYLOAD} bytes ({} given)", payload.len()));
        }
        filters.validate()?;
        let Filters { node, service, tag } = filters;
        let mut event = UserEvent {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            payload,
            node_filter: node,
            service_filter: service,
            tag_filter: tag,
            ltime: 0,
        };
        let size = event.encoded_len();
        if size > MAX_EVENT_BYTES {
            return Err(format!("User event exceeds limit of {MAX_EVENT_BYTES} bytes after encoding ({size})"));
        }
        event.ltime = self.lock().next_ltime();
        // Stored before the answer, so a list right after a fire sees it; gossip's echo is then a repeat.
        self.deliver(event.clone()).await;
        if let Some(gossip) = &self.gossip {
            gossip.fire(event.clone()).await.map_err(|error| error.to_string())?;
        }
        Ok(UserEvent { ltime: 0, ..event })
    }

    /// The stored events named `name` (all without one), oldest first, with their index (1 when there are none).
    pub fn list(&self, name: Option<&str>) -> (Vec<UserEvent>, u64) {
        self.lock().list(name)
    }

    /// The event Lamport clock: the highest time seen or given out (Serf's `event_time`).
    pub fn ltime(&self) -> u64 {
        self.lock().ltime()
    }

    /// Changes whenever an event is stored.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Stores `event` if this agent matches its filters; always advances the Lamport clock.
    async fn deliver(&self, event: UserEvent) {
        let wanted = match &self.services {
            Services::Local(local) => filter::matches(&event, &self.node, &local.snapshot().await.0),
            #[cfg(test)]
            Services::Fixed(services) => filter::matches(&event, &self.node, services),
        };
        let mut ring = self.lock();
        ring.witness(event.ltime);
        if wanted && ring.insert(event) {
            drop(ring);
            self.changes.send_modify(|version| *version += 1);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands every event gossip delivers to the store, until `stop` or the store is gone.
async fn receive(store: Weak<EventStore>, gossip: Gossip, stop: CancellationToken) {
    let mut events = gossip.subscribe_events();
    drop(gossip);
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            () = stop.cancelled() => return,
        };
        match received {
            Ok(event) => match store.upgrade() {
                Some(store) => store.deliver(event).await,
                None => return,
            },
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "user events arrived faster than they were stored; {missed} were dropped");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests;
