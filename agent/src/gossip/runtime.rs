//! Foca's runtime: how one call into foca reaches the world.
//!
//! Datagrams go straight out with `try_send_to` (a full socket buffer drops the datagram, as the network could),
//! timers go into the actor's queue, stretched by the local-health multiplier where Lifeguard says so, and the few
//! notifications the actor acts on are collected for it to handle once foca's call has returned.

use std::time::Duration;

use foca::{Notification, Timer};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::Counters;
use super::actor::Due;
use super::identity::NodeId;
use super::timers::TimerQueue;
use super::wire::ENVELOPE_LEN;

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
    pub(crate) socket: &'a UdpSocket,
    pub(crate) envelope: &'a [u8; ENVELOPE_LEN],
    pub(crate) counters: &'a Counters,
    pub(crate) timers: &'a mut TimerQueue<Due>,
    /// The local-health multiplier, fixed for the call so a probe's two timers are stretched alike.
    pub(crate) multiplier: u32,
    pub(crate) notes: &'a mut Vec<Note>,
    /// Reused buffer for outgoing datagrams (envelope + foca's packet).
    pub(crate) out: &'a mut Vec<u8>,
    /// The highest refutation counter foca put on a packet it sent during the call.
    pub(crate) sent_incarnation: Option<u16>,
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
        self.out.clear();
        self.out.extend_from_slice(self.envelope);
        self.out.extend_from_slice(data);
        match self.socket.try_send_to(self.out, to.addr) {
            Ok(sent) => self.counters.udp_sent(sent),
            Err(error) => {
                self.counters.udp_send_failed();
                tracing::debug!(to = ?to, %error, "gossip: datagram not sent");
            }
        }
    }

    fn submit_after(&mut self, event: Timer<NodeId>, after: Duration) {
        // Lifeguard: a node in poor local health probes less often and waits longer for acks. Both timers of a probe
        // are submitted in the same call, so they keep their order.
        let after = match event {
            Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. } => after * self.multiplier,
            _ => after,
        };
        self.timers.push(Instant::now() + after, Due::Foca(event));
    }
}
