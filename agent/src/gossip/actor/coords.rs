//! Network coordinates from gossip round trips: once per probe period the actor sends a [`CoordPing`] to one random
//! alive member, the member answers with a [`CoordAck`] carrying its coordinate, and the measured round trip moves
//! this node's Vivaldi coordinate ([`roster_coordinate::Client`]).
//!
//! Serf gets the same samples by riding on memberlist's probes (the ack's payload is the acker's coordinate). Foca
//! has no ack payload and sends its probes itself, so timing them would still leave us without the other side's
//! coordinate; an exchange of our own on the same socket, at the same rate, gives both at once, travels sealed when
//! gossip is encrypted, and costs two datagrams of about 100 bytes per probe period.
//!
//! Test knob: in debug builds only, `ROSTER_TEST_COORDINATE_DELAY_MS` holds back every coordinate ping and ack this
//! agent sends by that long, as a slow access link would (both directions, so what this node measures and what the
//! others measure of it agree); that is how the black-box tests make one member far away on loopback, where `tc
//! netem` needs namespaces. Release builds never read it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::seq::IteratorRandom;
use tokio::time::Instant;

use super::super::identity::NodeId;
use super::super::wire::{CoordAck, CoordPing, Sealed};
use super::{Actor, Due};

/// A ping unanswered for this long is forgotten (Serf's RTT bound is 10 s; a LAN answer takes microseconds).
const PENDING_TTL: Duration = Duration::from_secs(10);
/// At most this many pings wait for an answer; past it the oldest are forgotten first.
const MAX_PENDING: usize = 64;

/// The coordinate client and the pings in flight.
pub(crate) struct Coords {
    pub(crate) client: roster_coordinate::Client,
    pending: HashMap<u64, Pending>,
    next_seq: u64,
    send_delay: Duration,
}

struct Pending {
    node: String,
    addr: SocketAddr,
    sent: Instant,
}

impl Coords {
    /// Records a ping to `target` sent at `now` and returns its sequence number; past [`MAX_PENDING`] the oldest is
    /// forgotten.
    pub(crate) fn register_ping(&mut self, target: &NodeId, now: Instant) -> u64 {
        if self.pending.len() >= MAX_PENDING
            && let Some(oldest) = self.pending.iter().min_by_key(|(_, p)| p.sent).map(|(seq, _)| *seq)
        {
            self.pending.remove(&oldest);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(seq, Pending { node: target.name.to_string(), addr: target.addr, sent: now });
        seq
    }

    /// Forgets ping `seq`: a late answer to it is ignored.
    pub(crate) fn forget_ping(&mut self, seq: u64) {
        self.pending.remove(&seq);
    }

    pub(crate) fn new(seed: u64) -> Coords {
        Coords {
            client: roster_coordinate::Client::new(roster_coordinate::Config::default(), seed),
            pending: HashMap::new(),
            next_seq: 1,
            send_delay: test_send_delay(),
        }
    }
}

/// The test knob (see the module docs); zero in release builds.
fn test_send_delay() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("ROSTER_TEST_COORDINATE_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        return Duration::from_millis(ms);
    }
    Duration::ZERO
}

impl Actor {
    /// One coordinate ping to a random alive member; rescheduled every probe period.
    pub(super) fn coordinate_probe(&mut self, now: Instant) {
        self.timers.push(now + super::health::PROBE_PERIOD, Due::CoordinateProbe);
        self.coords.pending.retain(|_, p| now.saturating_duration_since(p.sent) < PENDING_TTL);
        if self.left {
            return;
        }
        let Some(target) = self.foca.iter_members().map(|m| m.id()).choose(&mut self.rng).cloned() else { return };
        let seq = self.coords.register_ping(&target, now);
        self.send_coordinate_ping(target.addr, seq);
    }

    /// Sends coordinate ping `seq` to `to`, now or after the test delay.
    pub(super) fn send_coordinate_ping(&mut self, to: SocketAddr, seq: u64) {
        if self.coords.send_delay.is_zero() {
            self.send_coordinate_ping_now(to, seq);
        } else {
            self.timers.push(Instant::now() + self.coords.send_delay, Due::CoordinatePing { to, seq });
        }
    }

    pub(super) fn send_coordinate_ping_now(&mut self, to: SocketAddr, seq: u64) {
        match postcard::to_stdvec(&CoordPing { seq }) {
            Ok(encoded) => self.outbound().send(&mut Vec::new(), Sealed::CoordPing, &encoded, to, None),
            Err(error) => tracing::warn!(%error, "gossip: cannot encode a coordinate ping"),
        }
    }

    /// A member asks for our coordinate: answer at once (or after the test delay).
    pub(super) fn on_coordinate_ping(&mut self, body: &[u8], from: SocketAddr) {
        let Ok(ping) = postcard::from_bytes::<CoordPing>(body) else {
            tracing::debug!(%from, "gossip: dropped a malformed coordinate ping");
            return;
        };
        if self.coords.send_delay.is_zero() {
            self.send_coordinate_ack(from, ping.seq);
        } else {
            self.timers.push(Instant::now() + self.coords.send_delay, Due::CoordinateAck { to: from, seq: ping.seq });
        }
    }

    pub(super) fn send_coordinate_ack(&mut self, to: SocketAddr, seq: u64) {
        let ack = CoordAck {
            seq,
            node: self.foca.identity().name.to_string(),
            coord: self.coords.client.coordinate().clone(),
        };
        match postcard::to_stdvec(&ack) {
            Ok(encoded) => self.outbound().send(&mut Vec::new(), Sealed::CoordAck, &encoded, to, None),
            Err(error) => tracing::warn!(%error, "gossip: cannot encode a coordinate ack"),
        }
    }

    /// The answer to one of our pings: the round trip and the member's coordinate move ours.
    pub(super) fn on_coordinate_ack(&mut self, body: &[u8], from: SocketAddr) {
        let received = Instant::now();
        let Ok(ack) = postcard::from_bytes::<CoordAck>(body) else {
            tracing::debug!(%from, "gossip: dropped a malformed coordinate ack");
            return;
        };
        // Only the member we asked, from the address we asked, once: an ack from elsewhere leaves the ping waiting.
        let asked = self.coords.pending.get(&ack.seq).is_some_and(|p| p.node == ack.node && p.addr == from);
        if !asked {
            return;
        }
        let Some(pending) = self.coords.pending.remove(&ack.seq) else { return };
        // A ping sent on a hint is a probe too: the member is alive.
        self.hinted.answered(ack.seq);
        let rtt = received.saturating_duration_since(pending.sent);
        match self.coords.client.update(&ack.node, &ack.coord, rtt) {
            Ok(coord) => self.shared.set_coordinate(coord.clone()),
            Err(error) => tracing::debug!(node = %ack.node, %error, "gossip: coordinate sample refused"),
        }
    }
}
