//! What the gossip layer knows besides foca's member list: each node's metadata and the leave intents, both spread as
//! foca custom broadcasts and merged by push/pull.
//!
//! Foca owns its [`foca::BroadcastHandler`] and offers no way back to it, so the handler and the actor share one
//! [`Known`] behind a mutex; only the actor's task ever locks it, so it is never contended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use super::MemberMeta;
use super::wire::{Broadcast, LeaveIntent, MetaRecord, UserEvent};

/// User event IDs remembered to drop repeats: far more than are in flight at once.
const SEEN_EVENTS: usize = 4096;
/// The newest user events offered in every push/pull: more than are fired within one push/pull interval.
const RECENT_EVENTS: usize = 128;

/// Metadata and leave intents by node name.
#[derive(Default)]
pub(crate) struct Known {
    /// The newest metadata seen for each node, with when it arrived (for garbage collection).
    pub(crate) metas: HashMap<String, (u64, MemberMeta, Instant)>,
    /// The newest leave intent seen for each node, with when it arrived; kept as a tombstone after the member is
    /// reaped so that stale gossip about it cannot bring it back as failed.
    pub(crate) leaves: HashMap<String, (LeaveIntent, Instant)>,
    /// Bumped on every change, so the actor can tell when to rebuild its member view.
    pub(crate) version: u64,
    /// User event IDs already delivered, oldest first.
    pub(crate) seen_events: std::collections::VecDeque<String>,
    /// The newest events delivered, oldest first, for push/pull: gossip sends each event a bounded number of times to
    /// random members, so now and then a member gets none of them; the next push/pull with anyone repairs that.
    pub(crate) recent_events: std::collections::VecDeque<UserEvent>,
    /// Where delivered user events go (the agent's event store); `None` drops them.
    pub(crate) events_out: Option<tokio::sync::broadcast::Sender<UserEvent>>,
}

impl Known {
    /// Stores `item` if it is news; returns the key foca should keep disseminating it under, or `None` if stale.
    pub(crate) fn receive(&mut self, item: Broadcast, now: Instant) -> Option<BroadcastKey> {
        match item {
            Broadcast::Meta(record) => self.receive_meta(record, now),
            Broadcast::Leave(intent) => self.receive_leave(intent, now),
            Broadcast::Event(event) => self.receive_event(event),
        }
    }

    /// Delivers a user event the first time it is seen, and keeps spreading it.
    pub(crate) fn receive_event(&mut self, event: UserEvent) -> Option<BroadcastKey> {
        if !self.mark_seen(&event.id) {
            return None;
        }
        if self.recent_events.len() >= RECENT_EVENTS {
            self.recent_events.pop_front();
        }
        self.recent_events.push_back(event.clone());
        let key = BroadcastKey::Event { id: event.id.clone() };
        if let Some(out) = &self.events_out {
            // No receiver only means nobody listens yet.
            let _ = out.send(event);
        }
        Some(key)
    }

    /// Marks `events` as seen without delivering them: a joining agent takes no events fired before it joined
    /// (Consul joins with Serf's `ignoreOld`).
    pub(crate) fn ignore_events(&mut self, events: Vec<UserEvent>) {
        for event in events {
            self.mark_seen(&event.id);
        }
    }

    /// Remembers an event ID; `false` if it was already seen.
    fn mark_seen(&mut self, id: &str) -> bool {
        if self.seen_events.iter().any(|seen| seen == id) {
            return false;
        }
        if self.seen_events.len() >= SEEN_EVENTS {
            self.seen_events.pop_front();
        }
        self.seen_events.push_back(id.to_owned());
        true
    }

    /// Stores a node's metadata if it is for a newer generation than the one held.
    pub(crate) fn receive_meta(&mut self, record: MetaRecord, now: Instant) -> Option<BroadcastKey> {
        if self.metas.get(&record.name).is_some_and(|(generation, _, _)| *generation >= record.generation) {
            return None;
        }
        let key = BroadcastKey::Meta { name: record.name.clone(), generation: record.generation };
        self.metas.insert(record.name, (record.generation, record.meta, now));
        self.version += 1;
        Some(key)
    }

    /// Stores a leave intent if it supersedes the one held.
    pub(crate) fn receive_leave(&mut self, intent: LeaveIntent, now: Instant) -> Option<BroadcastKey> {
        if self.leaves.get(&intent.name).is_some_and(|(held, _)| !intent.supersedes(held)) {
            return None;
        }
        let key = BroadcastKey::Leave {
            name: intent.name.clone(),
            generation: intent.generation,
            incarnation: intent.incarnation,
            prune: intent.prune,
        };
        self.leaves.insert(intent.name.clone(), (intent, now));
        self.version += 1;
        Some(key)
    }

    /// The metadata held for `name`, with its generation.
    pub(crate) fn meta(&self, name: &str) -> Option<(u64, &MemberMeta)> {
        self.metas.get(name).map(|(generation, meta, _)| (*generation, meta))
    }

    /// The leave intent held for `name`.
    pub(crate) fn leave(&self, name: &str) -> Option<&LeaveIntent> {
        self.leaves.get(name).map(|(intent, _)| intent)
    }

    /// Forgets a node's metadata (its leave intent stays, as a tombstone).
    pub(crate) fn forget_meta(&mut self, name: &str) {
        if self.metas.remove(name).is_some() {
            self.version += 1;
        }
    }
}

/// The shared [`Known`]; locking tolerates poisoning because every update leaves it consistent.
#[derive(Clone, Default)]
pub(crate) struct SharedKnown(Arc<Mutex<Known>>);

impl SharedKnown {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Foca's view of our custom broadcasts: it decodes them and stores the news in [`Known`].
pub(crate) struct Handler {
    pub(crate) known: SharedKnown,
}

/// Identifies a broadcast in foca's dissemination backlog.
pub(crate) enum BroadcastKey {
    Meta { name: String, generation: u64 },
    Leave { name: String, generation: u64, incarnation: u16, prune: bool },
    Event { id: String },
}

impl foca::Invalidates for BroadcastKey {
    /// A newer item about the same node replaces an older one still waiting to be sent.
    fn invalidates(&self, other: &Self) -> bool {
        match (self, other) {
            (
                BroadcastKey::Meta { name, generation },
                BroadcastKey::Meta { name: other_name, generation: other_gen },
            ) => name == other_name && generation >= other_gen,
            (
                BroadcastKey::Leave { name, generation, incarnation, prune },
                BroadcastKey::Leave { name: other_name, generation: g, incarnation: i, prune: p },
            ) => name == other_name && (generation, incarnation, prune) >= (g, i, p),
            (BroadcastKey::Event { id }, BroadcastKey::Event { id: other }) => id == other,
            _ => false,
        }
    }
}

/// A custom broadcast that did not decode.
#[derive(Debug, thiserror::Error)]
#[error("malformed gossip broadcast: {0}")]
pub(crate) struct BadBroadcast(#[from] postcard::Error);

impl foca::BroadcastHandler<super::identity::NodeId> for Handler {
    type Key = BroadcastKey;
    type Error = BadBroadcast;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&super::identity::NodeId>,
    ) -> Result<Option<BroadcastKey>, BadBroadcast> {
        let item: Broadcast = postcard::from_bytes(data)?;
        Ok(self.known.lock().receive(item, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use foca::Invalidates;

    use super::*;

    fn meta(generation: u64, build: &str) -> MetaRecord {
        MetaRecord {
            name: "web1".into(),
            generation,
            meta: MemberMeta { build: build.into(), ..MemberMeta::default() },
        }
    }

    #[test]
    fn only_newer_generations_of_meta_are_news() {
        let mut known = Known::default();
        let now = Instant::now();
        assert!(known.receive(Broadcast::Meta(meta(2, "a")), now).is_some());
        assert!(known.receive(Broadcast::Meta(meta(2, "a")), now).is_none(), "a repeat is not news");
        assert!(known.receive(Broadcast::Meta(meta(1, "old")), now).is_none(), "an older life is not news");
        assert!(known.receive(Broadcast::Meta(meta(3, "b")), now).is_some());
        assert_eq!(known.meta("web1").map(|(generation, meta)| (generation, meta.build.as_str())), Some((3, "b")));
    }

    #[test]
    fn newer_keys_invalidate_older_ones_of_the_same_kind() {
        let old = BroadcastKey::Meta { name: "a".into(), generation: 1 };
        let new = BroadcastKey::Meta { name: "a".into(), generation: 2 };
        let other = BroadcastKey::Meta { name: "b".into(), generation: 9 };
        let leave = BroadcastKey::Leave { name: "a".into(), generation: 2, incarnation: 0, prune: false };
        assert!(new.invalidates(&old));
        assert!(!old.invalidates(&new));
        assert!(!other.invalidates(&old));
        assert!(!leave.invalidates(&new));
    }

    #[test]
    fn a_user_event_is_delivered_once_and_spread_under_its_own_key() {
        let (tx, mut rx) = tokio::sync::broadcast::channel(8);
        let mut known = Known { events_out: Some(tx), ..Known::default() };
        let event = UserEvent {
            id: "e1".into(),
            name: "deploy".into(),
            payload: b"x".to_vec(),
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            ltime: 3,
        };
        let key = known.receive(Broadcast::Event(event.clone()), Instant::now()).expect("news");
        assert!(known.receive(Broadcast::Event(event.clone()), Instant::now()).is_none(), "a repeat is not news");
        assert_eq!(rx.try_recv().expect("delivered"), event);
        assert!(rx.try_recv().is_err(), "delivered once");
        let other = BroadcastKey::Event { id: "e2".into() };
        assert!(key.invalidates(&BroadcastKey::Event { id: "e1".into() }));
        assert!(!key.invalidates(&other), "distinct events never replace each other");
    }

    fn event(id: &str) -> UserEvent {
        UserEvent {
            id: id.into(),
            name: "deploy".into(),
            payload: Vec::new(),
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            ltime: 1,
        }
    }

    #[test]
    fn delivered_events_are_offered_to_push_pull_and_a_join_takes_the_offered_ones_as_seen() {
        let (tx, mut rx) = tokio::sync::broadcast::channel(8);
        let mut sender = Known::default();
        for id in ["e1", "e2"] {
            assert!(sender.receive_event(event(id)).is_some());
        }
        let offered: Vec<UserEvent> = sender.recent_events.iter().cloned().collect();
        assert_eq!(offered, [event("e1"), event("e2")], "what a push/pull carries");

        // A member that gossip missed gets each offered event once, from a periodic push/pull.
        let mut missed = Known { events_out: Some(tx.clone()), ..Known::default() };
        for item in offered.iter().cloned().chain(offered.iter().cloned()) {
            missed.receive(Broadcast::Event(item), Instant::now());
        }
        assert_eq!((rx.try_recv().ok(), rx.try_recv().ok()), (Some(event("e1")), Some(event("e2"))));
        assert!(rx.try_recv().is_err(), "each once");

        // A joiner takes them as old news, and they stay old news when gossip or a later push/pull brings them again.
        let mut joiner = Known { events_out: Some(tx), ..Known::default() };
        joiner.ignore_events(offered.clone());
        for item in offered {
            assert!(joiner.receive(Broadcast::Event(item), Instant::now()).is_none());
        }
        assert!(rx.try_recv().is_err(), "a joiner gets no event fired before it joined");
        assert!(joiner.recent_events.is_empty());
    }

    #[test]
    fn push_pull_offers_only_the_newest_events() {
        let mut known = Known::default();
        for n in 0..RECENT_EVENTS + 3 {
            known.receive_event(event(&format!("e{n}")));
        }
        assert_eq!(known.recent_events.len(), RECENT_EVENTS);
        assert_eq!(known.recent_events.front().map(|event| event.id.as_str()), Some("e3"));
    }
}
