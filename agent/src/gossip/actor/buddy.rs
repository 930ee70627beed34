//! Lifeguard's buddy system and suspicion confirmations: what a member whose probe failed tells the suspect, the other
//! members and, once its suspicion times out, the servers.
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
//!
//! **Confirmations** (Lifeguard's dynamic suspicion, `suspicion`): the prober also sends the suspicion to every other
//! active member, once each. Foca never re-gossips a suspicion another member already raised, so this is the only way
//! a member holding a suspicion timer learns that others' probes fail too. Direct datagrams rather than a custom
//! broadcast: piggybacked gossip reaches a given member after a few 200 ms rounds at a few hundred members, about
//! as long as the shortened timeout itself, while a failed probe is rare enough (a dead member, or a probe and all
//! three indirect probes lost) that one datagram per member is cheap. A lost confirmation only leaves a timer longer.
//!
//! **Second opinions** (`verify`): a confirmation comes only from a member whose own probe of the suspect failed, and
//! with one probe per member per period a dead member is probed by about one member per period, so a suspicion can
//! run its whole unconfirmed timeout before a second member gets to it. The prober therefore sends [`VERIFIERS`] of
//! the others a `Verify` instead of the `Confirm` (it counts as one): each probes the suspect with a `Suspected`
//! datagram of its own and, when no refutation comes back within [`VERIFY_TIMEOUT`] (a probe period, what a probe
//! and its indirect probes get), confirms the suspicion to the prober and to every member that confirmed it
//! meanwhile. A verifier in poor local health declines: its own silence from the suspect may be its own stall. A live
//! suspect answers the verifiers too, so its refutation reaches three more members at once.
//!
//! **Failures to the servers**: the member whose timer declares a suspect down sends that straight to every server
//! ([`COPIES`] times), which apply it through foca as if gossip had brought it, so the leader's `serfHealth` write
//! does not wait for the gossip rounds that carry the news to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::super::Role;
use super::super::health;
use super::super::identity::NodeId;
use super::super::wire::{Sealed, Suspicion};
use super::Actor;
use super::Due;
use super::verify::Requested;

/// How many times each buddy message is sent: with 5 % loss per datagram, two copies lose both 0.25 % of the time.
const COPIES: usize = 2;
/// How many members a prober asks for a second opinion. Two confirmations bring a suspicion to its shortest
/// timeout; with 5 % loss each verifier's answer arrives 90 % of the time (request and confirmation), so two of
/// three arrive 97 % of the time.
pub(super) const VERIFIERS: usize = 3;
/// How long a verifier waits for the suspect to answer before confirming: a probe period, what a failed probe
/// (direct, then indirect) had too.
pub(super) const VERIFY_TIMEOUT: Duration = health::PROBE_PERIOD;

impl Actor {
    /// Our probe of `id` failed: if foca now holds it suspect, tell it, and tell every other member our probe failed.
    pub(super) fn tell_suspect(&mut self, id: &NodeId) {
        let Some(member) = self.foca.iter_membership_state().find(|member| member.id() == id) else { return };
        if member.state() != foca::State::Suspect {
            return;
        }
        let suspicion =
            Suspicion { name: id.name.to_string(), generation: id.generation, incarnation: member.incarnation() };
        self.send_suspicion(Sealed::Suspected, &suspicion, id.addr);
        let mut others: Vec<SocketAddr> =
            self.foca.iter_members().map(|member| member.id().addr).filter(|addr| *addr != id.addr).collect();
        let mut verifiers = Vec::with_capacity(VERIFIERS);
        for picked in rand::seq::index::sample(&mut self.rng, others.len(), VERIFIERS.min(others.len())).into_vec() {
            verifiers.push(others[picked]);
        }
        others.retain(|addr| !verifiers.contains(addr));
        self.send_to_each(Sealed::Verify, &suspicion, &verifiers, COPIES);
        self.send_to_each(Sealed::Confirm, &suspicion, &others, 1);
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
        // The suspect answered a check of ours: nothing to confirm. Foca may not hold it suspect yet (the request
        // can beat the gossip), but the new counter is news either way.
        let checked =
            self.verifications.answered(&refutation.name, refutation.generation, refutation.incarnation, from);
        // Only from the suspect's own address, about the life we suspect, and only a counter that refutes it.
        let refuted = self.foca.iter_membership_state().find(|member| {
            let id = member.id();
            *id.name == refutation.name
                && id.generation == refutation.generation
                && id.addr == from
                && (member.state() == foca::State::Suspect || (checked && member.state() == foca::State::Alive))
                && member.incarnation() < refutation.incarnation
        });
        let Some(member) = refuted else { return };
        let alive = foca::Member::new(member.id().clone(), refutation.incarnation, foca::State::Alive);
        if let Err(error) = self.with_foca(|foca, io| foca.apply_many(std::iter::once(alive), true, io)) {
            tracing::debug!(%from, %error, "gossip: applying a refutation");
        }
    }

    /// Another member's probe of a suspect failed too: one more confirmation, which may bring our timer forward.
    pub(super) fn on_confirm(&mut self, body: &[u8], from: SocketAddr) {
        let Some((confirmer, suspicion, suspect)) = self.checked_suspicion(body, from) else { return };
        let life = (suspect.generation, suspicion.incarnation);
        // It holds a timer for the suspicion: if we are checking the suspect, it hears our outcome too.
        self.verifications.also_tell(&suspect.name, life, from);
        self.count_confirmation(&confirmer, life, &suspect);
    }

    /// A prober asks for a second opinion: count its confirmation, then probe the suspect ourselves.
    pub(super) fn on_verify(&mut self, body: &[u8], from: SocketAddr) {
        let Some((requester, suspicion, suspect)) = self.checked_suspicion(body, from) else { return };
        let life = (suspect.generation, suspicion.incarnation);
        self.count_confirmation(&requester, life, &suspect);
        let multiplier = self.awareness.multiplier();
        if multiplier > 1 {
            tracing::debug!(member = %suspect.name, multiplier, "gossip: declined to check a suspect (local health)");
            return;
        }
        match self.verifications.request(&suspect, suspicion.incarnation, from) {
            Requested::Start(token) => {
                tracing::debug!(member = %suspect.name, from = %requester, "gossip: checking a suspect");
                self.send_suspicion(Sealed::Suspected, &suspicion, suspect.addr);
                let name = suspect.name.clone();
                self.timers.push(Instant::now() + VERIFY_TIMEOUT, Due::Verify { name, token });
            }
            Requested::Joined | Requested::Ignored => {}
        }
    }

    /// Our check of a suspect ran out of time: unless it answered (or others' news made the check moot), the
    /// suspicion is confirmed to everyone that asked or confirmed it.
    pub(super) fn verification_due(&mut self, name: &Arc<str>, token: u64) {
        let Some(((generation, incarnation), requesters)) = self.verifications.expire(name, token) else { return };
        let unrefuted = self.foca.iter_membership_state().any(|member| {
            member.id().name == *name
                && member.id().generation == generation
                && member.state() != foca::State::Down
                && member.incarnation() <= incarnation
        });
        if !unrefuted {
            return;
        }
        tracing::debug!(member = %name, told = requesters.len(), "gossip: a suspect did not answer our check");
        let suspicion = Suspicion { name: name.to_string(), generation, incarnation };
        self.send_to_each(Sealed::Confirm, &suspicion, &requesters, COPIES);
    }

    /// `confirmer` says its probe of `suspect` failed at `life`: one more confirmation, which may bring our timer
    /// forward.
    fn count_confirmation(&mut self, confirmer: &Arc<str>, life: super::suspicion::Life, suspect: &NodeId) {
        if let Some((deadline, timer)) = self.suspicions.confirm(&suspect.name, life, confirmer) {
            tracing::debug!(member = %suspect.name, confirmer = %confirmer, "gossip: suspicion confirmed");
            // Never in the past: a timer that looks late would count against our own local health.
            self.timers.push(deadline.max(Instant::now()), Due::Foca(timer));
        }
    }

    /// A member's suspicion timed out: the suspect is down, as gossip would tell us a little later.
    pub(super) fn on_failed(&mut self, body: &[u8], from: SocketAddr) {
        let Some((sender, suspicion, suspect)) = self.checked_suspicion(body, from) else { return };
        tracing::debug!(member = %suspect.name, from = %sender, "gossip: told directly that a member failed");
        let down = foca::Member::new(suspect, suspicion.incarnation, foca::State::Down);
        if let Err(error) = self.with_foca(|foca, io| foca.apply_many(std::iter::once(down), true, io)) {
            tracing::debug!(%from, %error, "gossip: applying a failure");
        }
    }

    /// Our timer declared `id` down: tell the servers at once.
    pub(super) fn tell_servers_failed(&mut self, id: &NodeId, incarnation: u16) {
        let suspicion = Suspicion { name: id.name.to_string(), generation: id.generation, incarnation };
        let known = self.known.lock();
        let servers: Vec<SocketAddr> = self
            .foca
            .iter_members()
            .filter(|member| known.meta(&member.id().name).is_some_and(|(_, meta)| meta.role == Role::Server))
            .map(|member| member.id().addr)
            .collect();
        drop(known);
        tracing::debug!(member = %id.name, servers = servers.len(), "gossip: telling the servers a member failed");
        self.send_to_each(Sealed::Failed, &suspicion, &servers, COPIES);
    }

    /// Drops the suspicions foca no longer holds: the member is gone, down, in another life, or refuted.
    pub(super) fn reap_suspicions(&mut self) {
        let foca = &self.foca;
        self.suspicions.retain(|name, (generation, incarnation)| {
            foca.iter_membership_state().any(|member| {
                *member.id().name == *name
                    && member.id().generation == generation
                    && member.state() != foca::State::Down
                    && member.incarnation() <= incarnation
            })
        });
    }

    /// A confirmation or failure as we accept it: from a live member (its name) other than the suspect and us, about
    /// a life of the suspect foca holds, not down and not refuted past the counter named.
    fn checked_suspicion(&self, body: &[u8], from: SocketAddr) -> Option<(Arc<str>, Suspicion, NodeId)> {
        let Ok(suspicion) = postcard::from_bytes::<Suspicion>(body) else {
            tracing::debug!(%from, "gossip: dropped a malformed suspicion");
            return None;
        };
        if self.left || *self.foca.identity().name == suspicion.name {
            return None;
        }
        let sender = self.foca.iter_members().find(|member| member.id().addr == from)?.id().name.clone();
        let suspect = self.foca.iter_membership_state().find(|member| {
            *member.id().name == suspicion.name
                && member.id().generation == suspicion.generation
                && member.state() != foca::State::Down
                && member.incarnation() <= suspicion.incarnation
        })?;
        if *sender == suspicion.name {
            return None;
        }
        let suspect = suspect.id().clone();
        Some((sender, suspicion, suspect))
    }

    fn send_suspicion(&mut self, kind: Sealed, suspicion: &Suspicion, to: SocketAddr) {
        self.send_to_each(kind, suspicion, &[to], COPIES);
    }

    /// Sends `suspicion` as `kind` to each of `targets`, `copies` times.
    fn send_to_each(&mut self, kind: Sealed, suspicion: &Suspicion, targets: &[SocketAddr], copies: usize) {
        let encoded = match postcard::to_stdvec(suspicion) {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::warn!(%error, "gossip: cannot encode a suspicion");
                return;
            }
        };
        let mut buffer = Vec::new();
        let outbound = self.outbound();
        for to in targets {
            for _ in 0..copies {
                outbound.send(&mut buffer, kind, &encoded, *to, None);
            }
        }
    }
}

#[cfg(test)]
mod tests;
