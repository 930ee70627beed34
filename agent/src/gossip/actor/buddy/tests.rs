//! The confirmation and failure messages against one real actor: its foca and timers driven directly, the members it
//! sends to played by sockets of the test's own.

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use foca::Timer;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::super::super::wire::{self, MetaRecord, Sealed, Suspicion};
use super::super::super::{MemberMeta, Role, Shared, health, keyring};
use super::super::{Actor, Due, Parts, Settings};
use super::*;

/// Test members' generation; the suspect's refutation counter is [`SUSPECTED_AT`].
const GENERATION: u64 = 5;
const SUSPECTED_AT: u16 = 3;

/// An actor named `a` on its own loopback socket, and the members it knows, each a socket of the test's.
///
/// The members' sockets are std's, non-blocking: a receive is a real system call, while tokio's `try_recv_from`
/// answers from the readiness its reactor last saw.
struct Fixture {
    actor: Actor,
    server: std::net::UdpSocket,
    client: std::net::UdpSocket,
    other_client: std::net::UdpSocket,
    suspect: NodeId,
    /// The suspect's own socket: what the actor sends it queues here, and nothing answers.
    suspect_socket: std::net::UdpSocket,
}

fn bind() -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    socket.set_nonblocking(true).expect("non-blocking");
    socket
}

fn id(name: &str, socket: &std::net::UdpSocket) -> NodeId {
    NodeId { name: name.into(), addr: socket.local_addr().expect("bound"), generation: GENERATION }
}

fn actor(socket: UdpSocket) -> Actor {
    let own = NodeId { name: "a".into(), addr: socket.local_addr().expect("bound"), generation: 1 };
    let shared = Arc::new(Shared {
        members: RwLock::new(Arc::new(Vec::new())),
        changes: tokio::sync::watch::Sender::new(0),
        counters: Arc::default(),
        local_health: AtomicU32::new(1),
        active_members: AtomicU32::new(1),
        left: AtomicBool::new(false),
        events: tokio::sync::broadcast::Sender::new(1),
        crypto: keyring::Crypto::new(None),
        coordinate: RwLock::new(roster_kv::Coordinate::new(&roster_coordinate::Config::default())),
    });
    let settings = Arc::new(Settings {
        datacenter: "dc1".into(),
        meta: MemberMeta::default(),
        reconnect_timeout: Duration::from_secs(60),
        tombstone_timeout: Duration::from_secs(60),
    });
    let (commands, _) = mpsc::channel(1);
    let parts = Parts {
        identity: own,
        settings,
        shared,
        socket: Arc::new(socket),
        commands,
        tasks: TaskTracker::new(),
        shutdown: CancellationToken::new(),
    };
    Actor::new(parts)
}

/// `a` knows a server, two clients and a suspect (held suspect at [`SUSPECTED_AT`]), all with their metadata.
async fn fixture() -> Fixture {
    let (server, client, other_client, suspect_socket) = (bind(), bind(), bind(), bind());
    let own = UdpSocket::bind("127.0.0.1:0").await.expect("a loopback socket");
    // The actor sends with `try_send_to`, which answers from the readiness tokio's reactor has seen.
    own.writable().await.expect("writable");
    let mut actor = actor(own);
    let suspect = id("v", &suspect_socket);
    let members = [
        (id("s1", &server), Role::Server, foca::State::Alive, 0),
        (id("c1", &client), Role::Client, foca::State::Alive, 0),
        (id("c2", &other_client), Role::Client, foca::State::Alive, 0),
        (suspect.clone(), Role::Client, foca::State::Suspect, SUSPECTED_AT),
    ];
    for (member, role, ..) in &members {
        let meta = MemberMeta { role: *role, ..MemberMeta::default() };
        let record = MetaRecord { name: member.name.to_string(), generation: GENERATION, meta };
        actor.known.lock().receive_meta(record, Instant::now());
    }
    let updates = members.map(|(member, _, state, incarnation)| foca::Member::new(member, incarnation, state));
    actor.with_foca(|foca, io| foca.apply_many(updates.into_iter(), false, io)).expect("members applied");
    actor.retune();
    Fixture { actor, server, client, other_client, suspect, suspect_socket }
}

/// A side-envelope datagram of `kind` about the suspect at `incarnation`.
fn message(kind: Sealed, suspect: &NodeId, incarnation: u16) -> Vec<u8> {
    let suspicion = Suspicion { name: suspect.name.to_string(), generation: suspect.generation, incarnation };
    let mut datagram = wire::envelope("dc1").to_vec();
    datagram[2] = wire::SIDE;
    datagram.push(kind as u8);
    datagram.extend(postcard::to_stdvec(&suspicion).expect("encodes"));
    datagram
}

/// Every queued `ChangeSuspectToDown` deadline, earliest first (the actor's other periodic work is dropped).
fn suspicion_deadlines(actor: &mut Actor) -> Vec<Instant> {
    let mut deadlines = Vec::new();
    while let Some((deadline, due)) = actor.timers.pop_due(Instant::now() + Duration::from_secs(3600)) {
        if let Due::Foca(Timer::ChangeSuspectToDown { .. }) = due {
            deadlines.push(deadline);
        }
    }
    deadlines
}

fn start_timer(fixture: &mut Fixture) -> (Instant, Duration) {
    let max = health::foca_config(fixture.actor.cluster_size(), 1).suspect_to_down_after;
    let timer = Timer::ChangeSuspectToDown { member_id: fixture.suspect.clone(), incarnation: SUSPECTED_AT, token: 0 };
    let before = Instant::now();
    fixture.actor.with_foca(|_, io| foca::Runtime::submit_after(io, timer, max));
    (before, max)
}

#[tokio::test]
async fn confirmations_from_members_bring_our_suspicion_timer_forward() {
    let mut fixture = fixture().await;
    let (started, max) = start_timer(&mut fixture);
    let client = fixture.client.local_addr().expect("bound");
    let other_client = fixture.other_client.local_addr().expect("bound");
    let confirm = message(Sealed::Confirm, &fixture.suspect, SUSPECTED_AT);
    fixture.actor.on_datagram(&confirm, client);
    fixture.actor.on_datagram(&confirm, client);
    fixture.actor.on_datagram(&message(Sealed::Confirm, &fixture.suspect, SUSPECTED_AT - 1), other_client);
    let deadlines = suspicion_deadlines(&mut fixture.actor);
    assert_eq!(deadlines.len(), 2, "the longest timer and one earlier copy: repeats and stale counters are ignored");
    let expected = health::confirmed_suspicion_timeout(max, 1, 2);
    let early = deadlines[0].duration_since(started);
    assert!(early >= expected && early < expected + Duration::from_millis(100), "{early:?} for one confirmation");

    fixture.actor.on_datagram(&confirm, other_client);
    let deadlines = suspicion_deadlines(&mut fixture.actor);
    let early = deadlines[0].duration_since(started);
    assert!(early >= max / 2 && early < max / 2 + Duration::from_millis(100), "{early:?} for two confirmations");
}

#[tokio::test]
async fn a_refuted_suspicion_loses_its_confirmations_at_the_next_reap() {
    let mut fixture = fixture().await;
    let client = fixture.client.local_addr().expect("bound");
    fixture.actor.on_datagram(&message(Sealed::Confirm, &fixture.suspect, SUSPECTED_AT), client);
    assert_eq!(fixture.actor.suspicions.len(), 1);
    let alive = foca::Member::new(fixture.suspect.clone(), SUSPECTED_AT + 1, foca::State::Alive);
    fixture.actor.with_foca(|foca, io| foca.apply_many(std::iter::once(alive), false, io)).expect("refuted");
    fixture.actor.reap_suspicions();
    assert_eq!(fixture.actor.suspicions.len(), 0);
    // A confirmation of the refuted counter is stale now, and an unknown sender counts for nothing.
    fixture.actor.on_datagram(&message(Sealed::Confirm, &fixture.suspect, SUSPECTED_AT), client);
    let stranger = bind().local_addr().expect("bound");
    fixture.actor.on_datagram(&message(Sealed::Confirm, &fixture.suspect, SUSPECTED_AT + 1), stranger);
    assert_eq!(fixture.actor.suspicions.len(), 0);
}

#[tokio::test]
async fn our_timer_declaring_a_suspect_down_tells_the_servers_directly() {
    let mut fixture = fixture().await;
    let timer = Timer::ChangeSuspectToDown { member_id: fixture.suspect.clone(), incarnation: SUSPECTED_AT, token: 0 };
    fixture.actor.fire_foca_timer(timer.clone());
    assert_eq!(fixture.actor.member_state(&fixture.suspect), Some((foca::State::Down, SUSPECTED_AT)));
    // Loopback delivers within the send, so what the actor sent is queued on the sockets already.
    let expected = message(Sealed::Failed, &fixture.suspect, SUSPECTED_AT);
    let mut buf = vec![0u8; 2048];
    for copy in 0..COPIES {
        let (len, from) = fixture.server.recv_from(&mut buf).unwrap_or_else(|_| panic!("copy {copy} queued"));
        assert_eq!((&buf[..len], from), (expected.as_slice(), fixture.actor.foca.identity().addr));
    }
    assert!(fixture.client.recv_from(&mut buf).is_err(), "clients are not told");
    // The copy queued at the longest timeout finds the member down and sends nothing more.
    fixture.actor.fire_foca_timer(timer);
    assert!(fixture.server.recv_from(&mut buf).is_err(), "told once");
}

#[tokio::test]
async fn a_server_told_a_member_failed_applies_it_as_gossip_would() {
    let mut fixture = fixture().await;
    let client = fixture.client.local_addr().expect("bound");
    let stale = message(Sealed::Failed, &fixture.suspect, SUSPECTED_AT - 1);
    fixture.actor.on_datagram(&stale, client);
    assert_eq!(fixture.actor.member_state(&fixture.suspect), Some((foca::State::Suspect, SUSPECTED_AT)));
    let stranger = bind().local_addr().expect("bound");
    fixture.actor.on_datagram(&message(Sealed::Failed, &fixture.suspect, SUSPECTED_AT), stranger);
    assert_eq!(fixture.actor.member_state(&fixture.suspect), Some((foca::State::Suspect, SUSPECTED_AT)));
    fixture.actor.on_datagram(&message(Sealed::Failed, &fixture.suspect, SUSPECTED_AT), client);
    assert_eq!(fixture.actor.member_state(&fixture.suspect), Some((foca::State::Down, SUSPECTED_AT)));
}

/// Adds an alive client `name` (with metadata) that `a` knows, played by a new socket of the test's.
fn add_client(fixture: &mut Fixture, name: &str) -> std::net::UdpSocket {
    let socket = bind();
    let member = id(name, &socket);
    let meta = MemberMeta { role: Role::Client, ..MemberMeta::default() };
    let record = MetaRecord { name: name.to_owned(), generation: GENERATION, meta };
    fixture.actor.known.lock().receive_meta(record, Instant::now());
    let alive = foca::Member::new(member, 0, foca::State::Alive);
    fixture.actor.with_foca(|foca, io| foca.apply_many(std::iter::once(alive), false, io)).expect("applied");
    fixture.actor.retune();
    socket
}

/// Every datagram queued on `socket`.
fn received(socket: &std::net::UdpSocket) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let mut datagrams = Vec::new();
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        datagrams.push(buf[..len].to_vec());
    }
    datagrams
}

/// The queued second-opinion checks, as (deadline, suspect, token); the actor's other timers are dropped.
fn verification_timers(actor: &mut Actor) -> Vec<(Instant, Arc<str>, u64)> {
    let mut checks = Vec::new();
    while let Some((deadline, due)) = actor.timers.pop_due(Instant::now() + Duration::from_secs(3600)) {
        if let Due::Verify { name, token } = due {
            checks.push((deadline, name, token));
        }
    }
    checks
}

#[tokio::test]
async fn a_failed_probe_tells_the_suspect_asks_three_members_to_verify_and_confirms_to_the_rest() {
    let mut fixture = fixture().await;
    let extra = [add_client(&mut fixture, "c3"), add_client(&mut fixture, "c4")];
    fixture.actor.tell_suspect(&fixture.suspect.clone());
    let probe = message(Sealed::Suspected, &fixture.suspect, SUSPECTED_AT);
    assert_eq!(received(&fixture.suspect_socket), vec![probe; COPIES], "the suspect is told (the buddy system)");
    let verify = message(Sealed::Verify, &fixture.suspect, SUSPECTED_AT);
    let confirm = message(Sealed::Confirm, &fixture.suspect, SUSPECTED_AT);
    let (mut verifiers, mut confirmers) = (0, 0);
    for socket in [&fixture.server, &fixture.client, &fixture.other_client, &extra[0], &extra[1]] {
        let got = received(socket);
        if got == vec![verify.clone(); COPIES] {
            verifiers += 1;
        } else {
            assert_eq!(got, vec![confirm.clone()], "a member not asked to verify gets one confirmation");
            confirmers += 1;
        }
    }
    assert_eq!((verifiers, confirmers), (VERIFIERS, 2));
}

#[tokio::test]
async fn a_verifier_probes_the_suspect_and_confirms_to_everyone_holding_a_timer_when_it_stays_silent() {
    let mut fixture = fixture().await;
    let suspect = fixture.suspect.clone();
    let (client, other_client) =
        (fixture.client.local_addr().expect("bound"), fixture.other_client.local_addr().expect("bound"));
    let asked = Instant::now();
    fixture.actor.on_datagram(&message(Sealed::Verify, &suspect, SUSPECTED_AT), client);
    // Asked again (the second copy), and confirmed by another member whose own probe failed.
    fixture.actor.on_datagram(&message(Sealed::Verify, &suspect, SUSPECTED_AT), client);
    fixture.actor.on_datagram(&message(Sealed::Confirm, &suspect, SUSPECTED_AT), other_client);
    let checks = verification_timers(&mut fixture.actor);
    assert_eq!(checks.len(), 1, "one check per suspicion");
    let (deadline, name, token) = checks.into_iter().next().expect("one check");
    assert!(deadline >= asked + VERIFY_TIMEOUT && deadline < asked + VERIFY_TIMEOUT + Duration::from_millis(100));
    assert_eq!(*name, *suspect.name);
    // The suspect got our probe, twice, and answers nothing.
    let probe = message(Sealed::Suspected, &suspect, SUSPECTED_AT);
    assert_eq!(received(&fixture.suspect_socket), vec![probe; COPIES]);

    fixture.actor.verification_due(&name, token);
    let confirm = message(Sealed::Confirm, &suspect, SUSPECTED_AT);
    assert_eq!(received(&fixture.client), vec![confirm.clone(); COPIES], "the member that asked");
    assert_eq!(received(&fixture.other_client), vec![confirm; COPIES], "the member that confirmed meanwhile");
    assert!(received(&fixture.server).is_empty(), "nobody else holds a timer for it");
    fixture.actor.verification_due(&name, token);
    assert!(received(&fixture.client).is_empty(), "told once");
}

#[tokio::test]
async fn a_suspect_that_answers_the_check_is_alive_and_not_confirmed() {
    let mut fixture = fixture().await;
    let suspect = fixture.suspect.clone();
    let client = fixture.client.local_addr().expect("bound");
    fixture.actor.on_datagram(&message(Sealed::Verify, &suspect, SUSPECTED_AT), client);
    let (_, name, token) = verification_timers(&mut fixture.actor).pop().expect("a check");
    // An answer from anyone but the suspect is not the suspect's.
    fixture.actor.on_datagram(&message(Sealed::Refuted, &suspect, SUSPECTED_AT + 1), client);
    assert_eq!(fixture.actor.member_state(&suspect), Some((foca::State::Suspect, SUSPECTED_AT)));
    fixture.actor.on_datagram(&message(Sealed::Refuted, &suspect, SUSPECTED_AT + 1), suspect.addr);
    assert_eq!(fixture.actor.member_state(&suspect), Some((foca::State::Alive, SUSPECTED_AT + 1)));
    fixture.actor.verification_due(&name, token);
    assert!(received(&fixture.client).is_empty(), "nothing confirmed");
}

#[tokio::test]
async fn a_verifier_in_poor_local_health_counts_the_confirmation_but_does_not_check() {
    let mut fixture = fixture().await;
    let (started, max) = start_timer(&mut fixture);
    let suspect = fixture.suspect.clone();
    fixture.actor.awareness.probe_failed();
    let client = fixture.client.local_addr().expect("bound");
    fixture.actor.on_datagram(&message(Sealed::Verify, &suspect, SUSPECTED_AT), client);
    assert!(received(&fixture.suspect_socket).is_empty(), "no probe of ours");
    let deadlines = suspicion_deadlines(&mut fixture.actor);
    let early = deadlines[0].duration_since(started);
    let expected = health::confirmed_suspicion_timeout(max, 1, 2);
    assert!(early >= expected && early < expected + Duration::from_millis(100), "{early:?}: the asker's probe counts");
    assert!(verification_timers(&mut fixture.actor).is_empty());
}
