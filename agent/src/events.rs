//! User events (`/v1/event/*`): fired on any agent, spread by gossip, kept by every agent whose node, services and
//! tags match the event's filters, in a ring of the last [`MAX_EVENTS`], as Consul's agent keeps them.
//!
//! Each event carries a Lamport time: a fire takes one more than the highest seen, and every delivery raises the
//! local clock to the event's, as Serf does. `GET /v1/event/list` answers with an index derived from the last
//! event's ID (Consul's scheme), so a blocking list returns when a new event is stored.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use regex::Regex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::gossip::{Gossip, UserEvent};
use crate::local::Local;

/// Events kept per agent, oldest dropped first (Consul keeps 256).
pub const MAX_EVENTS: usize = 256;
/// The largest payload an event may carry, in bytes: it travels inside gossip datagrams.
pub const MAX_PAYLOAD: usize = 512;
/// The longest event name.
pub const MAX_NAME: usize = 128;

/// This agent's received events.
pub struct EventStore {
    node: String,
    local: Arc<Local>,
    gossip: Option<Gossip>,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    ring: VecDeque<UserEvent>,
    ltime: u64,
}

/// The filters of a fire request, as given.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// Regular expression over node names.
    pub node: String,
    /// Regular expression over service names.
    pub service: String,
    /// Regular expression over the tags of the matching service.
    pub tag: String,
}

impl EventStore {
    /// Starts receiving events from `gossip` (when the agent gossips) until `shutdown`.
    pub fn start(
        node: String,
        local: Arc<Local>,
        gossip: Option<Gossip>,
        shutdown: CancellationToken,
    ) -> Arc<EventStore> {
        let store = Arc::new(EventStore {
            node,
            local,
            gossip: gossip.clone(),
            state: Mutex::new(State::default()),
            changes: watch::Sender::new(0),
        });
        if let Some(gossip) = gossip {
            let mut events = gossip.subscribe_events();
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        event = events.recv() => event,
                        () = shutdown.cancelled() => return,
                    };
                    match event {
                        Ok(event) => store.deliver(event).await,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(
                                missed,
                                "user events arrived faster than they were stored; some were dropped"
                            );
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        store
    }

    /// Fires an event: checked, stamped with the next Lamport time, delivered here and spread by gossip.
    pub async fn fire(&self, name: &str, payload: Vec<u8>, filters: Filters) -> Result<UserEvent, String> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(format!("Event name must be 1 to {MAX_NAME} bytes"));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(format!("User event payload exceeds limit of {MAX_PAYLOAD} bytes ({} given)", payload.len()));
        }
        for (what, pattern) in [("node", &filters.node), ("service", &filters.service), ("tag", &filters.tag)] {
            Regex::new(pattern).map_err(|error| format!("Invalid {what} filter {pattern:?}: {error}"))?;
        }
        if !filters.tag.is_empty() && filters.service.is_empty() {
            return Err("Cannot provide tag filter without service filter".to_owned());
        }
        let ltime = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.ltime += 1;
            state.ltime
        };
        let event = UserEvent {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            payload,
            node_filter: filters.node,
            service_filter: filters.service,
            tag_filter: filters.tag,
            ltime,
        };
        // Stored here before the answer, so a list right after a fire sees it; gossip's echo is a repeat.
        self.deliver(event.clone()).await;
        if let Some(gossip) = &self.gossip {
            gossip.fire(event.clone()).await.map_err(|error| error.to_string())?;
        }
        Ok(event)
    }

    /// Stores `event` if this agent matches its filters; always advances the Lamport clock.
    async fn deliver(&self, event: UserEvent) {
        let wanted = self.matches(&event).await;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ltime = state.ltime.max(event.ltime);
        if !wanted || state.ring.iter().any(|held| held.id == event.id) {
            return;
        }
        if state.ring.len() >= MAX_EVENTS {
            state.ring.pop_front();
        }
        state.ring.push_back(event);
        drop(state);
        self.changes.send_modify(|version| *version += 1);
    }

    async fn matches(&self, event: &UserEvent) -> bool {
        let compiled = |pattern: &str| Regex::new(pattern).ok();
        if !event.node_filter.is_empty() && !compiled(&event.node_filter).is_some_and(|re| re.is_match(&self.node)) {
            return false;
        }
        if event.service_filter.is_empty() {
            return true;
        }
        let (Some(service_re), tag_re) = (compiled(&event.service_filter), compiled(&event.tag_filter)) else {
            return false;
        };
        let (services, _) = self.local.snapshot().await;
        services.iter().any(|service| {
            service_re.is_match(&service.service)
                && (event.tag_filter.is_empty()
                    || service.tags.iter().any(|tag| tag_re.as_ref().is_some_and(|re| re.is_match(tag))))
        })
    }

    /// The stored events named `name` (all without one), oldest first, with their index.
    pub fn list(&self, name: Option<&str>) -> (Vec<UserEvent>, u64) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let events: Vec<UserEvent> =
            state.ring.iter().filter(|event| name.is_none_or(|name| event.name == name)).cloned().collect();
        let index = events.last().map_or(0, |event| uuid_index(&event.id));
        (events, index)
    }

    /// Changes whenever an event is stored.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Consul's index for an event list: the two halves of the last event's UUID, XORed.
pub fn uuid_index(id: &str) -> u64 {
    uuid::Uuid::parse_str(id).map_or(0, |uuid| {
        let (high, low) = uuid.as_u64_pair();
        high ^ low
    })
}

#[cfg(test)]
mod tests;
