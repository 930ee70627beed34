//! A gossip actor for unit tests: foca and timers driven directly, the members it knows played by sockets of the
//! test's own (`buddy` and `hint` tests).

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use foca::Timer;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::super::identity::NodeId;
use super::super::wire::{self, MetaRecord, Sealed, Suspicion};
use super::super::{MemberMeta, Role, Shared, keyring};
use super::{Actor, Due, Parts, Settings};

/// Test members' generation; the suspect's refutation counter is [`SUSPECTED_AT`].
pub(crate) const GENERATION: u64 = 5;
pub(crate) const SUSPECTED_AT: u16 = 3;

/// An actor named `a` on its own loopback socket, and the members it knows, each a socket of the test's.
///
/// The members' sockets are std's, non-blocking: a receive is a real system call, while tokio's `try_recv_from`
/// answers from the readiness its reactor last saw.
pub(crate) struct Fixture {
    pub(crate) actor: Actor,
    pub(crate) server: std::net::UdpSocket,
    pub(crate) client: std::net::UdpSocket,
    pub(crate) other_client: std::net::UdpSocket,
    pub(crate) suspect: NodeId,
    /// The suspect's own socket: what the actor sends it queues here, and nothing answers.
    pub(crate) suspect_socket: std::net::UdpSocket,
}

pub(crate) fn bind() -> std::net::UdpSocket {
    bind_at([127, 0, 0, 1])
}

/// A non-blocking socket on loopback address `ip`, any port.
pub(crate) fn bind_at(ip: [u8; 4]) -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind(std::net::SocketAddr::from((ip, 0))).expect("a loopback socket");
    socket.set_nonblocking(true).expect("non-blocking");
    socket
}

pub(crate) fn id(name: &str, socket: &std::net::UdpSocket) -> NodeId {
    NodeId { name: name.into(), addr: socket.local_addr().expect("bound"), generation: GENERATION }
}

pub(crate) fn actor(socket: UdpSocket) -> Actor {
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
pub(crate) async fn fixture() -> Fixture {
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
pub(crate) fn message(kind: Sealed, suspect: &NodeId, incarnation: u16) -> Vec<u8> {
    let suspicion = Suspicion { name: suspect.name.to_string(), generation: suspect.generation, incarnation };
    let mut datagram = wire::envelope("dc1").to_vec();
    datagram[2] = wire::SIDE;
    datagram.push(kind as u8);
    datagram.extend(postcard::to_stdvec(&suspicion).expect("encodes"));
    datagram
}

/// Every queued `ChangeSuspectToDown` deadline, earliest first (the actor's other periodic work is dropped).
pub(crate) fn suspicion_deadlines(actor: &mut Actor) -> Vec<Instant> {
    let mut deadlines = Vec::new();
    while let Some((deadline, due)) = actor.timers.pop_due(Instant::now() + Duration::from_secs(3600)) {
        if let Due::Foca(Timer::ChangeSuspectToDown { .. }) = due {
            deadlines.push(deadline);
        }
    }
    deadlines
}

/// Adds an alive client `name` (with metadata) that `a` knows, played by a new socket of the test's.
pub(crate) fn add_client(fixture: &mut Fixture, name: &str) -> std::net::UdpSocket {
    add_client_at(fixture, name, [127, 0, 0, 1])
}

/// [`add_client`] on loopback address `ip`.
pub(crate) fn add_client_at(fixture: &mut Fixture, name: &str, ip: [u8; 4]) -> std::net::UdpSocket {
    let socket = bind_at(ip);
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
pub(crate) fn received(socket: &std::net::UdpSocket) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let mut datagrams = Vec::new();
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        datagrams.push(buf[..len].to_vec());
    }
    datagrams
}
