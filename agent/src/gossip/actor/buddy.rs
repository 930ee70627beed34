//! Lifeguard's buddy system: the member whose probe failed tells the suspect straight away, so a live suspect refutes
//! within a round trip instead of when gossip happens to reach it.
//!
//! Foca marks a member suspect when our probe of it fails and spreads the suspicion by piggybacking, like any update.
//! The suspect learns of it only when some message carrying it reaches it, which in a large cluster takes a few
//! gossip rounds, and its refutation (a higher incarnation on every message it sends) then has to spread back before
//! every member's suspicion timer fires. Under packet loss that race is what makes a short suspicion timeout
//! dangerous. memberlist piggybacks a suspect message on its pings to a suspect for the same reason; foca has no
//! hook for that, so the prober sends a [`Suspicion`] of its own on the gossip socket (sealed when gossip is
//! encrypted, on the side envelope otherwise, as the coordinate messages are):
//!
//! - the suspect hands foca the suspicion about itself, which refutes it as if gossip had brought it (the incarnation
//!   goes up, and foca gossips to a few members at once), and answers with the refuting incarnation;
//! - the prober applies that answer as foca would a message from the suspect: alive at the new incarnation, queued
//!   for dissemination, so the refutation also spreads from the member that raised the suspicion.
//!
//! Each message goes out [`COPIES`] times: a lost one only falls back on gossip, but the point is to beat it.
//! A dead suspect answers nothing, so detection is unchanged; the cost is four small datagrams per failed probe.

use std::net::SocketAddr;

use super::super::wire::{Sealed, Suspicion};
use super::Actor;

/// How many times each buddy message is sent: with 5 % loss per datagram, two copies lose both 0.25 % of the time.
const COPIES: usize = 2;

impl Actor {
    /// Our probe of `id` failed: if foca now holds it suspect, tell it.
    pub(super) fn tell_suspect(&mut self, id: &super::NodeId) {
        let Some(member) = self.foca.iter_membership_state().find(|member| member.id() == id) else { return };
        if member.state() != foca::State::Suspect {
            return;
        }
        let suspicion =
            Suspicion { name: id.name.to_string(), generation: id.generation, incarnation: member.incarnation() };
        self.send_suspicion(Sealed::Suspected, &suspicion, id.addr);
    }

    /// A member suspects us: refute through foca and answer with the incarnation that refutes it.
    pub(super) fn on_suspected(&mut self, body: &[u8], from: SocketAddr) {
        let Ok(suspicion) = postcard::from_bytes::<Suspicion>(body) else {
            tracing::debug!(%from, "gossip: dropped a malformed suspicion");
            return;
        };
        let own = self.foca.identity().clone();
        if self.left || *own.name != suspicion.name || own.generation != suspicion.generation {
            return;
        }
        let about_us = foca::Member::new(own, suspicion.incarnation, foca::State::Suspect);
        if let Err(error) = self.with_foca(|foca, io| foca.apply_many(std::iter::once(about_us), true, io)) {
            tracing::debug!(%from, %error, "gossip: refuting a suspicion");
        }
        // Foca's refutation gossips at once, and every packet it sends carries the new counter, which `with_foca`
        // noted; a suspicion of a counter already refuted gets the current one back.
        let incarnation = self.incarnation.1;
        if incarnation > suspicion.incarnation {
            tracing::debug!(%from, incarnation, "gossip: refuted a suspicion {from} sent us");
            let refutation = Suspicion { incarnation, ..suspicion };
            self.send_suspicion(Sealed::Refuted, &refutation, from);
        }
    }

    /// The suspect we told answered: it is alive at the refuting incarnation, and foca spreads that on.
    pub(super) fn on_refuted(&mut self, body: &[u8], from: SocketAddr) {
        let Ok(refutation) = postcard::from_bytes::<Suspicion>(body) else {
            tracing::debug!(%from, "gossip: dropped a malformed refutation");
            return;
        };
        // Only from the suspect's own address, about the life we suspect, and only a counter that refutes it.
        let refuted = self.foca.iter_membership_state().find(|member| {
            let id = member.id();
            *id.name == refutation.name
                && id.generation == refutation.generation
                && id.addr == from
                && member.state() == foca::State::Suspect
                && member.incarnation() < refutation.incarnation
        });
        let Some(member) = refuted else { return };
        let alive = foca::Member::new(member.id().clone(), refutation.incarnation, foca::State::Alive);
        if let Err(error) = self.with_foca(|foca, io| foca.apply_many(std::iter::once(alive), true, io)) {
            tracing::debug!(%from, %error, "gossip: applying a refutation");
        }
    }

    fn send_suspicion(&mut self, kind: Sealed, suspicion: &Suspicion, to: SocketAddr) {
        match postcard::to_stdvec(suspicion) {
            Ok(encoded) => {
                for _ in 0..COPIES {
                    self.outbound().send(&mut Vec::new(), kind, &encoded, to, None);
                }
            }
            Err(error) => tracing::warn!(%error, "gossip: cannot encode a suspicion"),
        }
    }
}
