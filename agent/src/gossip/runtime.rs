//! Foca's runtime: how one call into foca reaches the world.
//!
//! Datagrams go straight out with `try_send_to` (a full socket buffer drops the datagram, as the network could),
//! timers go into the actor's queue, stretched by the local-health multiplier where Lifeguard says so, and the few
//! notifications the actor acts on are collected for it to handle once foca's call has returned.

use std::net::SocketAddr;
use std::time::Duration;

use foca::{Notification, Timer};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::Counters;
use super::actor::Due;
use super::actor::Suspicions;
use super::identity::NodeId;
use super::keyring::{Crypto, Key};
use super::timers::TimerQueue;
use super::wire::{ENVELOPE_LEN, Sealed};

/// A notification the actor acts on after the call.
pub(crate) enum Note {
    /// Our probe of this member got no ack, direct or indirect.
    ProbeFailed(NodeId),
    /// The cluster declared us down and we came back as this new identity.
    Rejoin(NodeId),
    /// We are down and will not come back (after a graceful leave).
    Defunct,
}

/// The runtime for one foca call; it borrows the actor's I/O state.
pub(crate) struct Io<'a> {
    pub(crate) out_socket: Outbound<'a>,
    pub(crate) timers: &'a mut TimerQueue<Due>,
    /// Confirmed suspicions, which may hand a `ChangeSuspectToDown` over earlier than foca asked.
    pub(crate) suspicions: &'a mut Suspicions,
    /// The local-health multiplier, fixed for the call so a probe's two timers are stretched alike.
    pub(crate) multiplier: u32,
    pub(crate) notes: &'a mut Vec<Note>,
    /// Reused buffer for outgoing datagrams (envelope + foca's packet).
    pub(crate) out: &'a mut Vec<u8>,
    /// The highest refutation counter foca put on a packet it sent during the call.
    pub(crate) sent_incarnation: Option<u16>,
    /// Foca's timer token, noted from every probe timer it submits (it changes when our identity does).
    pub(crate) foca_token: &'a mut Option<foca::TimerToken>,
}

/// Where datagrams leave: the socket, how to wrap them, and the counters.
pub(crate) struct Outbound<'a> {
    pub(crate) socket: &'a UdpSocket,
    pub(crate) crypto: &'a Crypto,
    /// The plaintext envelope.
    pub(crate) envelope: &'a [u8; ENVELOPE_LEN],
    /// The envelope of sealed datagrams, which is also their associated data.
    pub(crate) sealed_envelope: &'a [u8; ENVELOPE_LEN],
    pub(crate) counters: &'a Counters,
}

impl Outbound<'_> {
    /// Sends one datagram of `kind` to `to`: sealed (with `with`, else the primary key) when encryption says so; a
    /// foca packet or a coordinate message in plaintext otherwise. Keyring messages never go out in plaintext.
    pub(crate) fn send(&self, out: &mut Vec<u8>, kind: Sealed, data: &[u8], to: SocketAddr, with: Option<&Key>) {
        out.clear();
        let plain_side = kind.is_side() && !self.crypto.seals_outgoing();
        let datagram = if plain_side {
            out.extend_from_slice(self.envelope);
            out[2] = super::wire::SIDE;
            out.push(kind as u8);
            out.extend_from_slice(data);
            std::mem::take(out)
        } else if self.crypto.seals_outgoing() || kind != Sealed::Foca {
            out.push(kind as u8);
            out.extend_from_slice(data);
            match self.crypto.seal(self.sealed_envelope, out, with) {
                Some(sealed) => sealed,
                None => {
                    self.counters.udp_send_failed();
                    tracing::debug!(%to, "gossip: datagram not sent: nothing to seal it with");
                    return;
                }
            }
        } else {
            out.extend_from_slice(self.envelope);
            out.extend_from_slice(data);
            std::mem::take(out)
        };
        match self.socket.try_send_to(&datagram, to) {
            Ok(sent) => self.counters.udp_sent(sent),
            Err(error) => {
                self.counters.udp_send_failed();
                tracing::debug!(%to, %error, "gossip: datagram not sent");
            }
        }
        // Keep the buffer's allocation for the next plaintext datagram.
        if out.capacity() == 0 {
            *out = datagram;
        }
    }
}

impl foca::Runtime<NodeId> for Io<'_> {
    fn notify(&mut self, notification: Notification<'_, NodeId>) {
        match notification {
            // Our counter only moves when we refute a suspicion; every packet we send carries it.
            Notification::DataSent(header) => {
                self.sent_incarnation = Some(self.sent_incarnation.unwrap_or(0).max(header.src_incarnation));
            }
            Notification::ProbeFailed(_, id) => self.notes.push(Note::ProbeFailed(id.clone())),
            Notification::Rejoin(id) => self.notes.push(Note::Rejoin(id.clone())),
            Notification::Defunct => self.notes.push(Note::Defunct),
            Notification::Rename(old, new) => tracing::debug!(?old, ?new, "gossip: member renamed"),
            // Membership changes are logged from the view, which also knows left from failed.
            Notification::MemberUp(_)
            | Notification::MemberDown(_)
            | Notification::Active
            | Notification::Idle
            | Notification::DataReceived(_) => {}
        }
    }

    fn send_to(&mut self, to: NodeId, data: &[u8]) {
        self.out_socket.send(self.out, Sealed::Foca, data, to.addr, None);
    }

    fn submit_after(&mut self, event: Timer<NodeId>, after: Duration) {
        if let Timer::ProbeRandomMember(token) = event {
            *self.foca_token = Some(token);
        }
        // Lifeguard: a node in poor local health probes less often and waits longer for acks. Both timers of a probe
        // are submitted in the same call, so they keep their order.
        let after = match event {
            Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. } => after * self.multiplier,
            _ => after,
        };
        let now = Instant::now();
        // Lifeguard's dynamic suspicion: foca asked for the longest timeout; confirmations that already arrived
        // hand it the same timer earlier too (the later one then finds the member down and is skipped).
        if matches!(event, Timer::ChangeSuspectToDown { .. })
            && let Some(early) = self.suspicions.start(&event, after, now)
        {
            self.timers.push(early.max(now), Due::Foca(event.clone()));
        }
        self.timers.push(now + after, Due::Foca(event));
    }
}
