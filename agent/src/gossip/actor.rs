//! The gossip actor: the one task that owns [`foca::Foca`], its UDP socket and its timers.
//!
//! It reads a closed set of inputs — datagrams, due timers, [`Command`]s from handles and from the push/pull tasks —
//! and after each one republishes the member view when anything in it changed. Foca talks back through [`Io`], our
//! [`foca::Runtime`]: datagrams go straight out with `try_send_to` (a full socket buffer drops the datagram, as the
//! network could), timers go into the actor's [`TimerQueue`], and notifications feed local health and the logs.
//!
//! Before firing due timers the actor drains the datagrams already queued on the socket: after a stall, an ack that
//! arrived in time must be seen before the timer that would declare its probe failed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foca::{Foca, PostcardCodec, Timer};
use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod buddy;
mod coords;
#[cfg(test)]
mod fixture;
mod hint;
pub(crate) mod keyops;
mod suspicion;
mod verify;

pub(crate) use suspicion::Suspicions;

use super::broadcast::{Handler, Known, SharedKnown};
use super::error::GossipError;
use super::health::{self, Awareness};
use super::identity::NodeId;
use super::pushpull;
use super::runtime::{Io, Note, Outbound};
use super::timers::TimerQueue;
use super::view::{self, Transitions};
use super::wire::{
    Broadcast, Datagram, ENVELOPE_LEN, LeaveIntent, MetaRecord, PushPull, Refusal, Reply, Sealed, WireMember,
    WireState, open_datagram,
};
use super::{Member, MemberMeta, MemberStatus, Shared};

/// How often the actor reaps, repairs missing metadata and collects garbage.
const MAINTENANCE_PERIOD: Duration = Duration::from_millis(500);
/// How often pending custom broadcasts (metadata, leave intents) are sent on their own, as foca's periodic gossip
/// does for membership updates; nothing is sent when none are pending.
const BROADCAST_PERIOD: Duration = Duration::from_millis(200);
/// A live member whose metadata has not arrived by gossip after this long is asked for it directly (push/pull).
const META_REPAIR_AFTER: Duration = Duration::from_secs(1);
/// After a join, one more push/pull with a random member follows within this window (see [`Due::CatchUp`]).
const CATCH_UP_AFTER: std::ops::Range<u64> = 1000..3000;
/// How often a push/pull is tried with one random failed member (Serf's `reconnect_interval`, shorter: one exchange
/// with one member is cheap). A partition that healed leaves each side holding the other as failed, and SWIM never
/// probes a down member, so without this the two halves would stay apart until someone restarted or rejoined.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(10);
/// Being declared down twice within this long suggests another live agent uses our name.
const REJOIN_LOOP: Duration = Duration::from_secs(60);
/// How long to wait before asking the same member for its metadata again.
const META_REPAIR_BACKOFF: Duration = Duration::from_secs(10);
/// Metadata of a node foca does not know (it arrived before the node, or the node was forgotten) is dropped after this.
const ORPHAN_META_TTL: Duration = Duration::from_secs(300);
/// The largest datagram the socket loop reads; anything over foca's limit is refused by foca, not truncated.
const RECV_BUFFER: usize = 64 * 1024;
/// At most this many queued datagrams are handled before due timers fire.
const DRAIN_BEFORE_TIMERS: usize = 256;

type Swim = Foca<NodeId, PostcardCodec, StdRng, Handler>;

/// What handles and push/pull tasks ask of the actor.
pub(crate) enum Command {
    /// Our state, to send in a push/pull; refused once we have left.
    Snapshot { join: bool, reply: oneshot::Sender<Result<PushPull, GossipError>> },
    /// A responder's state, for us (the initiator) to check and merge; periodic exchanges pass no `reply`.
    Merge { from: SocketAddr, remote: PushPull, reply: Option<oneshot::Sender<Result<(), GossipError>>> },
    /// An initiator's state, for us (the responder) to check and merge; answered with our state from before the merge.
    Incoming { from: SocketAddr, remote: PushPull, reply: oneshot::Sender<Result<PushPull, Refusal>> },
    /// Start a graceful leave: broadcast our leave intent; answers how many active members there are to tell.
    AnnounceLeave { reply: oneshot::Sender<usize> },
    /// Send pending broadcasts and updates to a few random members now.
    Spread { reply: oneshot::Sender<()> },
    /// Finish a graceful leave: declare ourselves down and stop taking part.
    LeaveCluster { reply: oneshot::Sender<()> },
    /// Mark a failed member as left everywhere, and maybe forget it at once.
    ForceLeave { node: String, prune: bool, reply: oneshot::Sender<Result<(), GossipError>> },
    /// A periodic, repair or reconnect push/pull finished (after its `Merge`, if it got that far).
    PushPullDone {
        /// Whether it was a reconnect with a failed member.
        reconnect: bool,
    },
    /// Deliver a user event here and spread it to everyone.
    Fire { event: super::wire::UserEvent },
    /// Apply a keyring operation here and on every alive member.
    KeyOp { op: super::keyring::KeyOp, reply: oneshot::Sender<keyops::KeyringReport> },
    /// The agent at this address may be gone: probe the members there now (`hint`).
    Hint { ip: std::net::IpAddr },
}

/// What the actor's timers stand for.
pub(crate) enum Due {
    Foca(Timer<NodeId>),
    PushPull,
    /// One push/pull with a random member, a moment after joining. When many nodes join at once, each learns of
    /// those that joined after it only by gossip, which reaches every member with high probability but not always; a
    /// miss would otherwise last until the periodic push/pull or a probe from the missed member (up to 30 s).
    CatchUp,
    /// One push/pull with a random failed member (see [`RECONNECT_INTERVAL`]).
    Reconnect,
    Maintenance,
    Broadcast,
    /// Retry (or, past its deadline, finish) the keyring operation with this ID.
    KeyOp(u64),
    /// A probe on a hint (the coordinate ping with this sequence number) ends: unanswered, the member is suspect.
    HintProbe {
        seq: u64,
    },
    /// A second-opinion check of this suspect ends: confirm the suspicion unless it answered (`verify`).
    Verify {
        name: Arc<str>,
        token: u64,
    },
    /// Send a coordinate ping to a random member (every probe period).
    CoordinateProbe,
    /// Send a coordinate ping now (only under the debug-build test delay; see `coords`).
    CoordinatePing {
        to: SocketAddr,
        seq: u64,
    },
    /// Answer a coordinate ping now (likewise).
    CoordinateAck {
        to: SocketAddr,
        seq: u64,
    },
}

/// Fixed for the actor's life.
pub(crate) struct Settings {
    pub(crate) datacenter: String,
    pub(crate) meta: MemberMeta,
    pub(crate) reconnect_timeout: Duration,
    pub(crate) tombstone_timeout: Duration,
}

/// Since when a member has been down, and as what; reset when either changes.
struct DownSince {
    generation: u64,
    left: bool,
    since: Instant,
}

/// The actor's state. Fields are grouped: foca and what it shares, I/O, health, bookkeeping of the view.
pub(crate) struct Actor {
    /// The SWIM state machine.
    foca: Swim,
    /// Metadata and leave intents, shared with foca's broadcast handler.
    known: SharedKnown,
    settings: Arc<Settings>,
    /// What handles read: the member view, the change counter, the counters.
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    envelope: [u8; ENVELOPE_LEN],
    /// The envelope of sealed datagrams (their authenticated header).
    sealed_envelope: [u8; ENVELOPE_LEN],
    /// Keyring operations this agent started and is collecting answers for.
    key_ops: keyops::KeyOps,
    /// This node's network coordinate and the coordinate pings in flight.
    coords: coords::Coords,
    timers: TimerQueue<Due>,
    /// Notifications collected during one foca call.
    notes: Vec<Note>,
    /// Reused buffer for outgoing datagrams (envelope + foca's packet).
    out: Vec<u8>,
    awareness: Awareness,
    /// Suspicions and their confirmations, which shorten our suspicion timers (Lifeguard, `suspicion`).
    suspicions: suspicion::Suspicions,
    /// The suspects other members asked us to probe, and whom to tell if they stay silent (`verify`).
    verifications: verify::Verifications,
    /// Members probed on a hint, by ping (`hint`).
    hinted: hint::Hinted,
    /// Foca's current timer token, as its last probe timer carried it: a suspicion timer of our own needs it.
    foca_token: Option<foca::TimerToken>,
    /// Probe failures so far; compared around a probe tick to tell success from failure.
    probe_failures: u64,
    /// The (cluster size, health multiplier) foca's current config was built for.
    configured: (u32, u32),
    /// Our refutation counter, as last seen on an outgoing packet, and the generation it belongs to.
    incarnation: (u64, u16),
    /// Set once we have left gracefully: we no longer join, merge or answer push/pulls.
    left: bool,
    down_since: HashMap<Arc<str>, DownSince>,
    /// When to next ask a live member without metadata for it.
    meta_repair: HashMap<Arc<str>, Instant>,
    /// Whether a periodic, catch-up or repair push/pull is running (one at a time).
    push_pull_running: bool,
    /// Whether a reconnect push/pull with a failed member is running (one at a time, beside the others, since an
    /// unreachable member holds it until its timeout).
    reconnect_running: bool,
    /// Whether a catch-up push/pull is scheduled.
    catch_up_scheduled: bool,
    /// When foca last renewed our identity after the cluster declared us down.
    last_rejoin: Option<Instant>,
    /// Order-independent hash of everything the view is built from; the view is rebuilt when it changes.
    fingerprint: u64,
    /// The last published view's statuses, to log transitions.
    transitions: Transitions,
    rng: StdRng,
    /// For the tasks the actor spawns to report back.
    commands: mpsc::Sender<Command>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// Everything [`Actor::new`] needs.
pub(crate) struct Parts {
    pub(crate) identity: NodeId,
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

impl Actor {
    /// Builds the actor, with our metadata queued for broadcast and the periodic work scheduled.
    pub(crate) fn new(parts: Parts) -> Actor {
        let Parts { identity, settings, shared, socket, commands, tasks, shutdown } = parts;
        let known = SharedKnown::default();
        known.lock().events_out = Some(shared.events.clone());
        let config = health::foca_config(1, 1);
        let handler = Handler { known: known.clone() };
        let foca = Foca::with_custom_broadcast(identity.clone(), config, rand::make_rng(), PostcardCodec, handler);
        let now = Instant::now();
        let mut actor = Actor {
            foca,
            known,
            envelope: super::wire::envelope(&settings.datacenter),
            sealed_envelope: super::wire::sealed_envelope(&settings.datacenter),
            key_ops: keyops::KeyOps::default(),
            coords: coords::Coords::new(rand::random()),
            settings,
            shared,
            socket,
            timers: TimerQueue::new(),
            notes: Vec::new(),
            out: Vec::with_capacity(super::wire::MAX_DATAGRAM),
            awareness: Awareness::default(),
            suspicions: suspicion::Suspicions::default(),
            verifications: verify::Verifications::default(),
            hinted: hint::Hinted::default(),
            foca_token: None,
            probe_failures: 0,
            configured: (1, 1),
            incarnation: (identity.generation, 0),
            left: false,
            down_since: HashMap::new(),
            meta_repair: HashMap::new(),
            push_pull_running: false,
            reconnect_running: false,
            catch_up_scheduled: false,
            last_rejoin: None,
            fingerprint: 0,
            transitions: Transitions::default(),
            rng: rand::make_rng(),
            commands,
            tasks,
            shutdown,
        };
        actor.broadcast_own_meta();
        actor.timers.push(now + MAINTENANCE_PERIOD, Due::Maintenance);
        actor.timers.push(now + BROADCAST_PERIOD, Due::Broadcast);
        actor.timers.push(now + health::PROBE_PERIOD, Due::CoordinateProbe);
        // Stagger the first exchange so members started together do not all push/pull at once.
        let interval = health::push_pull_interval(1);
        let stagger = actor.rng.random_range(0..interval.as_millis().max(1) as u64);
        actor.timers.push(now + Duration::from_millis(stagger), Due::PushPull);
        actor.timers.push(now + RECONNECT_INTERVAL + Duration::from_millis(stagger), Due::Reconnect);
        actor
    }

    /// Runs until `shutdown`; dropping the actor closes the UDP socket.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let socket = self.socket.clone();
        let shutdown = self.shutdown.clone();
        let mut buf = vec![0u8; RECV_BUFFER];
        self.publish();
        loop {
            let deadline = self.timers.next_deadline();
            // A year away: the branch is disabled anyway when nothing is scheduled.
            let wake_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
            // Biased: timers and commands before datagrams, so a flood of datagrams cannot starve probes or callers.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = sleep_until(wake_at), if deadline.is_some() => {
                    let woke = Instant::now();
                    self.drain_socket(&socket, &mut buf);
                    self.fire_timers(woke);
                }
                Some(command) = commands.recv() => self.handle_command(command),
                received = socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.on_datagram(&buf[..len], from),
                    Err(error) => tracing::debug!(%error, "gossip: UDP receive failed"),
                },
            }
            self.settle();
        }
        tracing::debug!("gossip: actor stopped");
    }

    /// Brings foca's tuning and the published view up to date; done after every input, and before answering a
    /// command so that the caller reads its own effect in `members()`.
    fn settle(&mut self) {
        self.retune();
        self.publish();
    }

    /// Handles datagrams already waiting on the socket, without waiting for more.
    fn drain_socket(&mut self, socket: &UdpSocket, buf: &mut [u8]) {
        for _ in 0..DRAIN_BEFORE_TIMERS {
            match socket.try_recv_from(buf) {
                Ok((len, from)) => self.on_datagram(&buf[..len], from),
                Err(_) => break,
            }
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr) {
        self.shared.counters.udp_received(data.len());
        match open_datagram(&self.shared.crypto, &self.envelope, &self.sealed_envelope, data) {
            Datagram::Plain(packet) => self.handle_packet(packet, from),
            Datagram::Opened { kind: Sealed::Foca, body, .. } => self.handle_packet(&body, from),
            Datagram::Opened { kind: Sealed::KeyRequest, body, key_idx } => self.on_key_request(&body, from, key_idx),
            Datagram::Opened { kind: Sealed::KeyResponse, body, .. } => self.on_key_response(&body),
            Datagram::Opened { kind: Sealed::CoordPing, body, .. } => self.on_coordinate_ping(&body, from),
            Datagram::Opened { kind: Sealed::CoordAck, body, .. } => self.on_coordinate_ack(&body, from),
            Datagram::Side { kind: Sealed::CoordPing, body } => self.on_coordinate_ping(body, from),
            Datagram::Side { kind: Sealed::CoordAck, body } => self.on_coordinate_ack(body, from),
            Datagram::Opened { kind: Sealed::Suspected, body, .. } => self.on_suspected(&body, from),
            Datagram::Opened { kind: Sealed::Refuted, body, .. } => self.on_refuted(&body, from),
            Datagram::Side { kind: Sealed::Suspected, body } => self.on_suspected(body, from),
            Datagram::Side { kind: Sealed::Refuted, body } => self.on_refuted(body, from),
            Datagram::Opened { kind: Sealed::Confirm, body, .. } => self.on_confirm(&body, from),
            Datagram::Side { kind: Sealed::Confirm, body } => self.on_confirm(body, from),
            Datagram::Opened { kind: Sealed::Failed, body, .. } => self.on_failed(&body, from),
            Datagram::Side { kind: Sealed::Failed, body } => self.on_failed(body, from),
            Datagram::Opened { kind: Sealed::Verify, body, .. } => self.on_verify(&body, from),
            Datagram::Side { kind: Sealed::Verify, body } => self.on_verify(body, from),
            Datagram::Side { .. } => {
                tracing::debug!(%from, "gossip: dropped a plaintext datagram of a sealed-only kind")
            }
            Datagram::PlaintextRefused => {
                self.reject(from, "plaintext gossip refused: this agent requires encryption (encrypt_verify_incoming)")
            }
            Datagram::Unauthenticated => self
                .reject(from, "gossip message failed authentication: no installed key opens it (wrong `encrypt` key?)"),
            Datagram::UnknownKind => tracing::debug!(%from, "gossip: dropped a sealed datagram of an unknown kind"),
            Datagram::Foreign => {
                tracing::debug!(%from, len = data.len(), "gossip: dropped a datagram that is not this datacenter's gossip")
            }
        }
    }

    fn handle_packet(&mut self, packet: &[u8], from: SocketAddr) {
        if let Err(error) = self.with_foca(|foca, io| foca.handle_data(packet, io)) {
            tracing::debug!(%from, %error, "gossip: dropped a datagram");
        }
    }

    /// Drops a datagram that failed authentication: counted always, logged once per peer.
    fn reject(&self, from: SocketAddr, reason: &str) {
        self.shared.counters.udp_rejected();
        if self.shared.crypto.first_rejection(from.ip()) {
            tracing::warn!(%from, "gossip: dropped a datagram from {from}: {reason} (further ones are only counted)");
        }
    }

    /// Where datagrams leave, for sending outside a foca call.
    fn outbound(&self) -> Outbound<'_> {
        Outbound {
            socket: &self.socket,
            crypto: &self.shared.crypto,
            envelope: &self.envelope,
            sealed_envelope: &self.sealed_envelope,
            counters: &self.shared.counters,
        }
    }

    fn fire_timers(&mut self, woke: Instant) {
        while let Some((deadline, due)) = self.timers.pop_due(woke) {
            self.awareness.timer_fired(woke.saturating_duration_since(deadline), woke);
            match due {
                Due::Foca(timer) => self.fire_foca_timer(timer),
                Due::PushPull => self.periodic_push_pull(),
                Due::CatchUp => {
                    self.catch_up_scheduled = false;
                    self.push_pull_with_random_member();
                }
                Due::Reconnect => self.reconnect(),
                Due::Maintenance => self.maintenance(),
                Due::Broadcast => self.broadcast(),
                Due::KeyOp(id) => self.key_op_due(id, woke),
                Due::Verify { name, token } => self.verification_due(&name, token),
                Due::HintProbe { seq } => self.hint_probe_due(seq),
                Due::CoordinateProbe => self.coordinate_probe(woke),
                Due::CoordinatePing { to, seq } => self.send_coordinate_ping_now(to, seq),
                Due::CoordinateAck { to, seq } => self.send_coordinate_ack(to, seq),
            }
        }
    }

    fn fire_foca_timer(&mut self, timer: Timer<NodeId>) {
        // Foca cannot cancel a suspicion's timer, and when one fires it sends the member a `TurnUndead` whether or not
        // it declares it down: also when the suspicion was refuted meanwhile (the member is alive at a higher counter)
        // or the member is already down (confirmations queue the timer twice, see `suspicion`). A live member that
        // gets one rejoins under a new generation, which the cluster sees as a failure and a rejoin: under 5 % loss at
        // N = 200 that was every refuted suspicion, one every few seconds. So the timer reaches foca only while foca
        // still holds the member suspect at the counter the timer names.
        let suspected = match &timer {
            Timer::ChangeSuspectToDown { member_id, incarnation, .. } => match self.member_state(member_id) {
                Some((foca::State::Suspect, held)) if held == *incarnation => Some((member_id.clone(), *incarnation)),
                _ => return,
            },
            _ => None,
        };
        // A probe tick first settles the previous probe: it reports a failure, or the probe went fine.
        let probe_tick = matches!(timer, Timer::ProbeRandomMember(_));
        let failures_before = self.probe_failures;
        if let Err(error) = self.with_foca(|foca, io| foca.handle_timer(timer, io)) {
            tracing::debug!(%error, "gossip: timer");
        }
        if probe_tick && self.probe_failures == failures_before {
            self.awareness.probe_succeeded();
        }
        if let Some((id, incarnation)) = suspected
            && matches!(self.member_state(&id), Some((foca::State::Down, _)))
        {
            self.tell_servers_failed(&id, incarnation);
        }
    }

    /// How foca holds the member with exactly this identity: its state and refutation counter.
    fn member_state(&self, id: &NodeId) -> Option<(foca::State, u16)> {
        let member = self.foca.iter_membership_state().find(|member| member.id() == id)?;
        Some((member.state(), member.incarnation()))
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Snapshot { join, reply } => {
                let state = if self.left { Err(GossipError::Left) } else { Ok(self.snapshot(join)) };
                let _ = reply.send(state);
            }
            Command::Merge { from, remote, reply } => {
                // Only a join waits for the merge.
                let merged = self.merge_reply(from, remote, reply.is_some());
                self.settle();
                match reply {
                    Some(reply) => {
                        if merged.is_ok() && !self.catch_up_scheduled {
                            self.catch_up_scheduled = true;
                            let delay = Duration::from_millis(self.rng.random_range(CATCH_UP_AFTER));
                            self.timers.push(Instant::now() + delay, Due::CatchUp);
                        }
                        let _ = reply.send(merged);
                    }
                    None => {
                        if let Err(error) = merged {
                            tracing::warn!(%from, "gossip: periodic push/pull with {from} refused: {error}");
                        }
                    }
                }
            }
            Command::Incoming { from, remote, reply } => {
                let accepted = self.accept_request(from, remote);
                self.settle();
                let _ = reply.send(accepted);
            }
            Command::AnnounceLeave { reply } => {
                let _ = reply.send(self.announce_leave());
            }
            Command::Spread { reply } => {
                self.spread();
                let _ = reply.send(());
            }
            Command::LeaveCluster { reply } => {
                self.leave_cluster();
                self.settle();
                let _ = reply.send(());
            }
            Command::ForceLeave { node, prune, reply } => {
                let forced = self.force_leave(&node, prune);
                self.settle();
                let _ = reply.send(forced);
            }
            Command::PushPullDone { reconnect: false } => self.push_pull_running = false,
            Command::PushPullDone { reconnect: true } => self.reconnect_running = false,
            // foca hands the item to our own handler first, which delivers it here and marks it seen.
            Command::Fire { event } => self.add_broadcast(&super::wire::Broadcast::Event(event)),
            Command::KeyOp { op, reply } => self.start_key_op(op, reply),
            Command::Hint { ip } => self.on_hint(ip),
        }
    }

    /// Calls into foca with our runtime, then handles what it noted.
    fn with_foca<R>(&mut self, call: impl FnOnce(&mut Swim, &mut Io<'_>) -> R) -> R {
        let mut io = Io {
            out_socket: Outbound {
                socket: &self.socket,
                crypto: &self.shared.crypto,
                envelope: &self.envelope,
                sealed_envelope: &self.sealed_envelope,
                counters: &self.shared.counters,
            },
            timers: &mut self.timers,
            suspicions: &mut self.suspicions,
            multiplier: self.awareness.multiplier(),
            notes: &mut self.notes,
            out: &mut self.out,
            sent_incarnation: None,
            foca_token: &mut self.foca_token,
        };
        let result = call(&mut self.foca, &mut io);
        let sent_incarnation = io.sent_incarnation;
        self.handle_notes(sent_incarnation);
        result
    }

    fn handle_notes(&mut self, sent_incarnation: Option<u16>) {
        let generation = self.foca.identity().generation;
        if generation != self.incarnation.0 {
            // A new life starts counting refutations from zero again.
            self.incarnation = (generation, 0);
        }
        if let Some(incarnation) = sent_incarnation.filter(|sent| *sent > self.incarnation.1) {
            // Our counter only moves when we refute a suspicion about ourselves.
            tracing::debug!(incarnation, "gossip: refuted a suspicion about this node");
            self.incarnation.1 = incarnation;
            self.awareness.refuted();
        }
        for note in std::mem::take(&mut self.notes) {
            match note {
                Note::ProbeFailed(id) => {
                    tracing::debug!(member = ?id, "gossip: probe failed");
                    metrics::counter!("roster.memberlist.probe_failures_total").increment(1);
                    self.probe_failures += 1;
                    self.awareness.probe_failed();
                    self.tell_suspect(&id);
                }
                Note::Rejoin(id) => {
                    let now = Instant::now();
                    if self.last_rejoin.is_some_and(|last| now.duration_since(last) < REJOIN_LOOP) {
                        // Two live agents under one name keep declaring each other down; joins refuse that, but two
                        // pools that each admitted one of them and then merged can still get here.
                        tracing::warn!(
                            generation = id.generation,
                            "gossip: declared down again within a minute; is another agent using the node name {:?}?",
                            id.name
                        );
                    } else {
                        tracing::info!(
                            generation = id.generation,
                            "gossip: the cluster declared this node down; rejoined"
                        );
                    }
                    self.last_rejoin = Some(now);
                    self.broadcast_own_meta();
                }
                Note::Defunct if self.left => tracing::debug!("gossip: no longer part of the cluster"),
                Note::Defunct => tracing::warn!("gossip: the cluster declared this node down and it cannot rejoin"),
            }
        }
    }

    /// Queues a custom broadcast for dissemination (and records it in [`Known`] on the way).
    fn add_broadcast(&mut self, item: &Broadcast) {
        let added = postcard::to_stdvec(item)
            .map_err(|error| error.to_string())
            .and_then(|bytes| self.foca.add_broadcast(&bytes).map_err(|error| error.to_string()));
        if let Err(error) = added {
            tracing::warn!(%error, "gossip: cannot broadcast {item:?}");
        }
    }

    fn broadcast_own_meta(&mut self) {
        let id = self.foca.identity();
        let record =
            MetaRecord { name: id.name.to_string(), generation: id.generation, meta: self.settings.meta.clone() };
        self.add_broadcast(&Broadcast::Meta(record));
    }

    /// Sends pending custom broadcasts and cluster updates to a few random members at once.
    fn spread(&mut self) {
        if let Err(error) = self.with_foca(|foca, io| foca.broadcast(&mut *io).and_then(|()| foca.gossip(io))) {
            tracing::debug!(%error, "gossip: spreading updates");
        }
    }

    /// Our full state for a push/pull.
    fn snapshot(&self, join: bool) -> PushPull {
        let known = self.known.lock();
        PushPull {
            datacenter: self.settings.datacenter.clone(),
            sender: self.foca.identity().clone(),
            sender_incarnation: self.incarnation.1,
            join,
            members: self.foca.iter_membership_state().map(WireMember::from).collect(),
            metas: known
                .metas
                .iter()
                .map(|(name, (generation, meta, _))| MetaRecord {
                    name: name.clone(),
                    generation: *generation,
                    meta: meta.clone(),
                })
                .collect(),
            leaves: known.leaves.values().map(|(intent, _)| intent.clone()).collect(),
            events: known.recent_events.iter().cloned().collect(),
        }
    }

    /// The responder's side of a push/pull: check, answer with our state, merge theirs.
    fn accept_request(&mut self, from: SocketAddr, remote: PushPull) -> Result<PushPull, Refusal> {
        if self.left {
            return Err(Refusal::Left);
        }
        let own = self.foca.identity();
        let checked =
            pushpull::check_request(own, &self.settings.datacenter, self.foca.iter_membership_state(), &remote);
        if let Err(refusal) = checked {
            tracing::warn!(%from, "gossip: refused a push/pull from {from}: {}", pushpull::describe_refusal(&refusal, &remote));
            return Err(refusal);
        }
        tracing::debug!(%from, join = remote.join, members = remote.members.len(), "gossip: push/pull from {from}");
        let state = self.snapshot(false);
        self.merge(remote, true, false);
        Ok(state)
    }

    /// The initiator's side of a push/pull: check the responder's state, then merge it.
    fn merge_reply(&mut self, from: SocketAddr, remote: PushPull, join: bool) -> Result<(), GossipError> {
        if self.left {
            return Err(GossipError::Left);
        }
        pushpull::check_reply(self.foca.identity(), &self.settings.datacenter, from, &remote)?;
        tracing::debug!(%from, members = remote.members.len(), "gossip: merging the state of {from}");
        // Joining from nothing, everything we learn is old news to the cluster: keep it to ourselves.
        let spread = self.foca.num_members() > 0;
        self.merge(remote, spread, join);
        Ok(())
    }

    /// Merges a remote state that passed the checks; with `spread`, whatever is news to us is broadcast.
    ///
    /// Spreading is what memberlist does when it merges a push/pull: the responder tells the cluster about a joiner
    /// (its liveness and metadata), and a periodic exchange that repairs a gap repairs it for everyone. A node joining
    /// from nothing does not spread (to it, the whole cluster is news, to the cluster none of it is); when many nodes
    /// join at once, its catch-up exchange (see [`Due::CatchUp`]) covers what gossip missed.
    /// Foca and [`Known`] only report what changed their state, so a state we already share costs nothing.
    /// User events we have not seen are delivered and spread, except to an agent merging the reply to its own `join`,
    /// which takes them as already seen (Consul's `ignoreOld`).
    /// Down members we never heard of are skipped, as memberlist does: they would only come back as ghosts after we
    /// reaped them.
    fn merge(&mut self, remote: PushPull, spread: bool, join: bool) {
        let PushPull { sender, sender_incarnation, members, metas, leaves, events, .. } = remote;
        let events = if join {
            self.known.lock().ignore_events(events);
            Vec::new()
        } else {
            events
        };
        let items = leaves
            .into_iter()
            .map(Broadcast::Leave)
            .chain(metas.into_iter().map(Broadcast::Meta))
            .chain(events.into_iter().map(Broadcast::Event));
        if spread {
            // Through foca, which records each item in `Known` and queues the news for dissemination.
            for item in items {
                self.add_broadcast(&item);
            }
        } else {
            let now = Instant::now();
            let mut known = self.known.lock();
            for item in items {
                known.receive(item, now);
            }
        }
        let known_names: HashSet<Arc<str>> =
            self.foca.iter_membership_state().map(|member| member.id().name.clone()).collect();
        let updates: Vec<foca::Member<NodeId>> = members
            .into_iter()
            .filter(|member| member.state != WireState::Down || known_names.contains(&member.id.name))
            .map(foca::Member::from)
            .collect();
        let sender = foca::Member::new(sender, sender_incarnation, foca::State::Alive);
        let applied = self.with_foca(|foca, io| foca.apply_many(std::iter::once(sender).chain(updates), spread, io));
        if let Err(error) = applied {
            tracing::debug!(%error, "gossip: merging a push/pull state");
        }
    }

    fn announce_leave(&mut self) -> usize {
        if !self.left {
            let id = self.foca.identity();
            let intent = LeaveIntent {
                name: id.name.to_string(),
                generation: id.generation,
                incarnation: u16::MAX,
                prune: false,
            };
            tracing::info!("gossip: leaving the cluster");
            self.add_broadcast(&Broadcast::Leave(intent));
            self.spread();
        }
        if self.left { 0 } else { self.foca.num_members() }
    }

    fn leave_cluster(&mut self) {
        if self.left {
            return;
        }
        if let Err(error) = self.with_foca(|foca, io| foca.leave_cluster(io)) {
            tracing::warn!(%error, "gossip: announcing our leave");
        }
        self.left = true;
        self.shared.set_left();
        tracing::info!("gossip: left the cluster");
    }

    fn force_leave(&mut self, node: &str, prune: bool) -> Result<(), GossipError> {
        if *self.foca.identity().name == *node {
            tracing::info!("gossip: force-leave of this node itself ignored");
            return Ok(());
        }
        let Some(member) = self.foca.iter_membership_state().find(|member| *member.id().name == *node).cloned() else {
            return Err(GossipError::NoSuchMember(node.to_owned()));
        };
        if member.state() != foca::State::Down {
            // As in Consul: a live member would refute anyway, so there is nothing to do.
            tracing::info!(member = node, "gossip: force-leave of {node} ignored: it is alive");
            return Ok(());
        }
        let id = member.id().clone();
        // Keep the bound of a graceful leave already held, so adding `prune` does not narrow it.
        let held =
            self.known.lock().leave(node).filter(|held| held.generation == id.generation).map(|held| held.incarnation);
        let incarnation = held.unwrap_or(0).max(member.incarnation());
        let intent = LeaveIntent { name: node.to_owned(), generation: id.generation, incarnation, prune };
        tracing::info!(member = node, prune, "gossip: force-leave of {node}");
        self.add_broadcast(&Broadcast::Leave(intent));
        self.spread();
        if prune {
            self.forget(&id);
        }
        Ok(())
    }

    /// Removes a down member from foca and from the view (its leave intent stays, as a tombstone).
    fn forget(&mut self, id: &NodeId) {
        if let Err(error) = self.with_foca(|foca, io| foca.handle_timer(Timer::RemoveDown(id.clone()), io)) {
            tracing::debug!(%error, "gossip: removing {id:?}");
        }
        self.known.lock().forget_meta(&id.name);
        self.down_since.remove(&id.name);
        self.meta_repair.remove(&id.name);
    }

    fn periodic_push_pull(&mut self) {
        let interval = health::push_pull_interval(self.cluster_size());
        self.timers.push(Instant::now() + interval, Due::PushPull);
        self.push_pull_with_random_member();
    }

    fn push_pull_with_random_member(&mut self) {
        if let Some(target) = self.foca.iter_members().map(|member| member.id().addr).choose(&mut self.rng) {
            self.spawn_push_pull(target);
        }
    }

    /// Pushes and pulls with one random failed member (not one that left): if it answers, the merge tells each side
    /// that the other declared it down, both rejoin under a new generation, and the pool is whole again.
    fn reconnect(&mut self) {
        self.timers.push(Instant::now() + RECONNECT_INTERVAL, Due::Reconnect);
        if self.left || self.reconnect_running {
            return;
        }
        let known = self.known.lock();
        let failed: Vec<SocketAddr> = self
            .foca
            .iter_membership_state()
            .filter(|member| view::status_of(member, &known) == MemberStatus::Failed)
            .map(|member| member.id().addr)
            .collect();
        drop(known);
        if let Some(target) = failed.into_iter().choose(&mut self.rng) {
            tracing::debug!(%target, "gossip: trying to reconnect with a failed member");
            self.reconnect_running = true;
            self.spawn_exchange(target, true);
        }
    }

    /// Runs a push/pull with `target` in a task of its own, unless one is already running or we have left.
    fn spawn_push_pull(&mut self, target: SocketAddr) {
        if self.left || self.push_pull_running {
            return;
        }
        self.push_pull_running = true;
        self.spawn_exchange(target, false);
    }

    /// The exchange itself; `PushPullDone { reconnect }` clears the matching running flag when it ends.
    fn spawn_exchange(&mut self, target: SocketAddr, reconnect: bool) {
        let request = self.snapshot(false);
        let datacenter = self.settings.datacenter.clone();
        let (commands, shared, shutdown) = (self.commands.clone(), self.shared.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            let exchanged = tokio::select! {
                () = shutdown.cancelled() => return,
                exchanged = pushpull::exchange(target, &request, &shared) => exchanged,
            };
            match exchanged {
                Ok(Reply::Accepted(remote)) => {
                    let _ = commands.send(Command::Merge { from: target, remote, reply: None }).await;
                }
                Ok(Reply::Refused(refusal)) => {
                    let error = pushpull::refusal_error(refusal, &datacenter, target);
                    tracing::warn!(%target, "gossip: periodic push/pull refused by {target}: {error}");
                }
                Err(error) => tracing::debug!(%target, %error, "gossip: periodic push/pull with {target} failed"),
            }
            let _ = commands.send(Command::PushPullDone { reconnect }).await;
        });
    }

    fn maintenance(&mut self) {
        let now = Instant::now();
        self.timers.push(now + MAINTENANCE_PERIOD, Due::Maintenance);
        self.reap(now);
        self.reap_suspicions();
        self.repair_metadata(now);
        self.collect_garbage(now);
    }

    /// Sends pending custom broadcasts to a few random members. Foca also piggybacks them on every message, but after
    /// the membership updates, so during churn (a mass join) metadata would otherwise wait behind them.
    fn broadcast(&mut self) {
        self.timers.push(Instant::now() + BROADCAST_PERIOD, Due::Broadcast);
        if !self.left
            && self.foca.custom_broadcast_backlog() > 0
            && let Err(error) = self.with_foca(|foca, io| foca.broadcast(io))
        {
            tracing::debug!(%error, "gossip: broadcasting");
        }
    }

    /// Forgets members down for longer than their timeout: tombstone for left ones, reconnect for failed ones, none
    /// for pruned ones.
    fn reap(&mut self, now: Instant) {
        let mut expired = Vec::new();
        {
            let known = self.known.lock();
            for member in self.foca.iter_membership_state().filter(|member| member.state() == foca::State::Down) {
                let Some(down) = self.down_since.get(&member.id().name) else { continue };
                let intent =
                    known.leave(&member.id().name).filter(|intent| intent.covers(member.id(), member.incarnation()));
                let timeout = match intent {
                    Some(intent) if intent.prune => Duration::ZERO,
                    Some(_) => self.settings.tombstone_timeout,
                    None => self.settings.reconnect_timeout,
                };
                if now.duration_since(down.since) >= timeout {
                    expired.push(member.id().clone());
                }
            }
        }
        for id in expired {
            tracing::info!(member = %id.name, "gossip: forgetting member {}", id.name);
            self.forget(&id);
        }
    }

    /// Asks live members whose metadata never arrived for their state directly.
    fn repair_metadata(&mut self, now: Instant) {
        let mut target = None;
        {
            let known = self.known.lock();
            let mut still_missing = HashSet::new();
            for member in self.foca.iter_members() {
                let id = member.id();
                if known.meta(&id.name).is_some_and(|(generation, _)| generation >= id.generation) {
                    continue;
                }
                still_missing.insert(id.name.clone());
                let due = self.meta_repair.entry(id.name.clone()).or_insert(now + META_REPAIR_AFTER);
                if target.is_none() && now >= *due {
                    *due = now + META_REPAIR_BACKOFF;
                    target = Some(id.addr);
                }
            }
            self.meta_repair.retain(|name, _| still_missing.contains(name));
        }
        if let Some(target) = target {
            tracing::debug!(%target, "gossip: asking {target} for its metadata");
            self.spawn_push_pull(target);
        }
    }

    /// Drops leave intents past the tombstone timeout and metadata of nodes foca no longer knows.
    fn collect_garbage(&mut self, now: Instant) {
        let members: HashSet<Arc<str>> =
            self.foca.iter_membership_state().map(|member| member.id().name.clone()).collect();
        let own = self.foca.identity().name.clone();
        let tombstone = self.settings.tombstone_timeout;
        let mut known = self.known.lock();
        let (metas_before, leaves_before) = (known.metas.len(), known.leaves.len());
        known.leaves.retain(|_, (_, received)| now.duration_since(*received) < tombstone);
        known.metas.retain(|name, (_, _, received)| {
            **name == *own || members.contains(name.as_str()) || now.duration_since(*received) < ORPHAN_META_TTL
        });
        if (known.metas.len(), known.leaves.len()) != (metas_before, leaves_before) {
            known.version += 1;
        }
    }

    fn cluster_size(&self) -> u32 {
        u32::try_from(self.foca.num_members()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// Retunes foca when the cluster size or our local health changed.
    fn retune(&mut self) {
        let wanted = (self.cluster_size(), self.awareness.multiplier());
        if wanted == self.configured {
            return;
        }
        let config = health::foca_config(wanted.0, wanted.1);
        let suspicion = config.suspect_to_down_after;
        match self.foca.set_config(config) {
            Ok(()) => {
                if wanted.1 != self.configured.1 {
                    tracing::debug!(multiplier = wanted.1, ?suspicion, "gossip: local health changed");
                }
                self.configured = wanted;
                self.suspicions.set_expected(health::expected_confirmations(wanted.0));
                self.shared.set_tuning(wanted.0, wanted.1);
            }
            Err(error) => tracing::warn!(%error, "gossip: cannot retune the failure detector"),
        }
    }

    /// Rebuilds and publishes the member view if anything it is built from changed.
    fn publish(&mut self) {
        let known = self.known.lock();
        let own = self.foca.identity();
        let fingerprint =
            view::fingerprint(self.foca.iter_membership_state(), known.version, (own, self.incarnation.1, self.left));
        if fingerprint == self.fingerprint {
            return;
        }
        self.fingerprint = fingerprint;
        let own_member = Member {
            name: own.name.to_string(),
            addr: own.addr,
            meta: self.settings.meta.clone(),
            status: if self.left { MemberStatus::Left } else { MemberStatus::Alive },
            incarnation: own.version(self.incarnation.1),
        };
        let members = view::build(own_member, self.foca.iter_membership_state(), &known);
        track_down(&mut self.down_since, self.foca.iter_membership_state(), &known);
        drop(known);
        self.transitions.observe(&self.foca.identity().name, &members);
        self.shared.publish(members);
    }
}

/// Notes since when each member has been down, and as what (failed or left), for reaping. Members whose metadata
/// never arrived are tracked too, so they are reaped like the others.
fn track_down<'a>(
    down_since: &mut HashMap<Arc<str>, DownSince>,
    members: impl Iterator<Item = &'a foca::Member<NodeId>>,
    known: &Known,
) {
    let now = Instant::now();
    let mut down = HashSet::new();
    for member in members.filter(|member| member.state() == foca::State::Down) {
        let id = member.id();
        let left = view::status_of(member, known) == MemberStatus::Left;
        down.insert(id.name.clone());
        let fresh = DownSince { generation: id.generation, left, since: now };
        let since = down_since.entry(id.name.clone()).or_insert(fresh);
        if (since.generation, since.left) != (id.generation, left) {
            *since = DownSince { generation: id.generation, left, since: now };
        }
    }
    down_since.retain(|name, _| down.contains(name));
}
