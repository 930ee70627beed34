//! Probes on a hint: when something outside gossip suggests a member's process is gone (a server saw the RPC
//! connection from that member's address closed by its peer, which a killed process's kernel does at once), the
//! member is probed now rather than when some member's round-robin gets to it.
//!
//! SWIM finds a dead member only when a prober picks it: with one probe per member per period, about one probe per
//! period reaches any given member, so at a few hundred members the first suspicion of a killed agent came 0.5 s to
//! 2.4 s after the kill, most of the spread of the whole detection time. A hint changes nothing by itself: it buys
//! one direct probe of our own ([`COPIES`] coordinate pings, whose acks also feed the coordinate), and only a probe
//! that goes unanswered for a probe period (stretched by our local health, as foca's probes are) makes a suspicion,
//! exactly as a failed foca probe does: foca holds the member suspect, our runtime holds its suspicion timer, and
//! the buddy system tells the suspect and asks for second opinions. A live member answers within a round trip and
//! nothing happens; a member that closed a connection for any other reason costs two pings. Without hints (a host
//! that lost power, a partition) detection is SWIM's alone, as before.
//!
//! At most [`MAX_HINTED`] probes run at once and one per member; a hint beyond that is dropped.

use std::collections::HashMap;
use std::net::IpAddr;

use foca::Timer;
use tokio::time::Instant;

use super::super::health;
use super::super::identity::NodeId;
use super::{Actor, Due};

/// Probes on hints running at once.
pub(crate) const MAX_HINTED: usize = 32;
/// Pings per probe: with 5 % loss, a live member's answer is lost both ways under 1 % of the time.
const COPIES: usize = 2;

/// Probes started on a hint, by the sequence number of their coordinate ping.
#[derive(Default)]
pub(crate) struct Hinted {
    probes: HashMap<u64, Probe>,
}

struct Probe {
    id: NodeId,
    /// The member's refutation counter when probed: the suspicion, if any, is about this one.
    incarnation: u16,
}

impl Hinted {
    /// Records a probe of `id` at `incarnation` under `seq`; false when one of that member is running or there
    /// is no room.
    pub(crate) fn start(&mut self, seq: u64, id: &NodeId, incarnation: u16) -> bool {
        if self.probes.len() >= MAX_HINTED || self.probes.values().any(|probe| probe.id.name == id.name) {
            return false;
        }
        self.probes.insert(seq, Probe { id: id.clone(), incarnation });
        true
    }

    /// The ack to ping `seq` arrived: the probe, if it was one of ours, succeeded.
    pub(crate) fn answered(&mut self, seq: u64) {
        self.probes.remove(&seq);
    }

    /// Probe `seq` ran out of time: the member and counter it was about, unless it was answered.
    pub(crate) fn expire(&mut self, seq: u64) -> Option<(NodeId, u16)> {
        self.probes.remove(&seq).map(|probe| (probe.id, probe.incarnation))
    }

    /// Whether a probe of `name` is running.
    pub(crate) fn probing(&self, name: &str) -> bool {
        self.probes.values().any(|probe| *probe.id.name == *name)
    }
}

impl Actor {
    /// Something suggests the agent at `ip` is gone: probe every alive member there (normally one) now.
    pub(super) fn on_hint(&mut self, ip: IpAddr) {
        if self.left {
            return;
        }
        let targets: Vec<(NodeId, u16, foca::State)> = self
            .foca
            .iter_membership_state()
            .filter(|member| member.id().addr.ip() == ip && member.state() != foca::State::Down)
            .map(|member| (member.id().clone(), member.incarnation(), member.state()))
            .collect();
        let now = Instant::now();
        let wait = health::PROBE_PERIOD * self.awareness.multiplier();
        for (id, incarnation, state) in targets {
            tracing::debug!(member = %id.name, %ip, ?state, "gossip: a hint names a member");
            // A suspect is being settled already; one probe of a member at a time.
            if state != foca::State::Alive || self.hinted.probing(&id.name) {
                continue;
            }
            let seq = self.coords.register_ping(&id, now);
            if !self.hinted.start(seq, &id, incarnation) {
                self.coords.forget_ping(seq);
                tracing::debug!(member = %id.name, "gossip: too many probes on hints; dropped one");
                continue;
            }
            tracing::debug!(member = %id.name, %ip, "gossip: probing a member on a hint");
            for _ in 0..COPIES {
                self.send_coordinate_ping(id.addr, seq);
            }
            self.timers.push(now + wait, Due::HintProbe { seq });
        }
    }

    /// A probe on a hint ran out of time: unless it was answered, the member is suspect, as when a probe of foca's
    /// fails.
    pub(super) fn hint_probe_due(&mut self, seq: u64) {
        let Some((id, incarnation)) = self.hinted.expire(seq) else { return };
        self.coords.forget_ping(seq);
        // Only the life and counter we probed, and only while nothing else has moved it on.
        if self.member_state(&id) != Some((foca::State::Alive, incarnation)) {
            return;
        }
        let Some(token) = self.foca_token else { return };
        tracing::debug!(member = %id.name, "gossip: a member did not answer a probe on a hint");
        let timeout = health::foca_config(self.cluster_size(), self.awareness.multiplier()).suspect_to_down_after;
        let suspect = foca::Member::new(id.clone(), incarnation, foca::State::Suspect);
        let timer = Timer::ChangeSuspectToDown { member_id: id.clone(), incarnation, token };
        let applied = self.with_foca(|foca, io| {
            foca.apply_many(std::iter::once(suspect), true, &mut *io)?;
            foca::Runtime::submit_after(io, timer, timeout);
            Ok::<(), foca::Error>(())
        });
        if let Err(error) = applied {
            tracing::debug!(member = %id.name, %error, "gossip: suspecting a member after a probe on a hint");
            return;
        }
        self.tell_suspect(&id);
    }
}

#[cfg(test)]
mod tests;
