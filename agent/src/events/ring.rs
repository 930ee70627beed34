//! The agent's event buffer and Lamport clock: the last [`MAX_EVENTS`] stored events, oldest first.

use std::collections::VecDeque;

use crate::gossip::UserEvent;

/// Events kept per agent, oldest dropped first (Consul keeps 256).
pub const MAX_EVENTS: usize = 256;

/// The stored events and the highest Lamport time seen.
#[derive(Default)]
pub(crate) struct Ring {
    events: VecDeque<UserEvent>,
    ltime: u64,
}

impl Ring {
    /// The Lamport time for a new fire: one past everything seen, so it orders after every event this agent knows.
    pub(crate) fn next_ltime(&mut self) -> u64 {
        self.ltime += 1;
        self.ltime
    }

    /// The highest Lamport time seen or given out.
    pub(crate) fn ltime(&self) -> u64 {
        self.ltime
    }

    /// Raises the clock to an event's time (Serf's `Witness`), whether or not the event is kept.
    pub(crate) fn witness(&mut self, ltime: u64) {
        self.ltime = self.ltime.max(ltime);
    }

    /// Stores `event` unless it is already here; returns whether it was new. Drops the oldest beyond [`MAX_EVENTS`].
    pub(crate) fn insert(&mut self, event: UserEvent) -> bool {
        // A fire is stored before gossip echoes it back, so the echo must not be stored twice.
        if self.events.iter().any(|held| held.id == event.id) {
            return false;
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
        true
    }

    /// The events named `name` (all without one), oldest first, with Consul's index for them.
    pub(crate) fn list(&self, name: Option<&str>) -> (Vec<UserEvent>, u64) {
        let events: Vec<UserEvent> =
            self.events.iter().filter(|event| name.is_none_or(|name| event.name == name)).cloned().collect();
        // Consul answers 1 for no events, never 0, so a watcher blocks instead of spinning on `?index=0`.
        let index = events.last().map_or(1, |event| uuid_index(&event.id));
        (events, index)
    }
}

/// Consul's index for an event list: the two halves of the last event's UUID, XORed.
///
/// It is not monotonic; it only has to change when a new event is listed, which a random UUID does (a clash is a
/// 2^-64 chance, costing a watcher one missed wake-up until the next event).
pub fn uuid_index(id: &str) -> u64 {
    uuid::Uuid::parse_str(id).map_or(0, |uuid| {
        let (high, low) = uuid.as_u64_pair();
        high ^ low
    })
}
