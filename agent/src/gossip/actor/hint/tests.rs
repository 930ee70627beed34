//! Probes on hints against one real actor: the hinted member is a socket of the test's, which answers the ping or
//! stays silent.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use foca::Timer;
use tokio::time::Instant;

use super::super::super::wire::{self, CoordAck, CoordPing, Sealed};
use super::super::fixture::{SUSPECTED_AT, add_client_at, fixture, message, received, suspicion_deadlines};
use super::super::{Actor, Due};
use super::*;

const HINTED_IP: [u8; 4] = [127, 0, 0, 7];

/// The sequence numbers of the coordinate pings among `datagrams`.
fn pings(datagrams: &[Vec<u8>]) -> Vec<u64> {
    let mut side_envelope = wire::envelope("dc1");
    side_envelope[2] = wire::SIDE;
    datagrams
        .iter()
        .filter_map(|datagram| {
            let body = datagram.strip_prefix(side_envelope.as_slice())?.strip_prefix(&[Sealed::CoordPing as u8])?;
            postcard::from_bytes::<CoordPing>(body).ok().map(|ping| ping.seq)
        })
        .collect()
}

/// The queued hint-probe timers, as (deadline, ping sequence number); the actor's other timers are dropped.
fn hint_timers(actor: &mut Actor) -> Vec<(Instant, u64)> {
    let mut probes = Vec::new();
    while let Some((deadline, due)) = actor.timers.pop_due(Instant::now() + Duration::from_secs(3600)) {
        if let Due::HintProbe { seq } = due {
            probes.push((deadline, seq));
        }
    }
    probes
}

#[tokio::test]
async fn a_hinted_member_that_stays_silent_for_a_probe_period_becomes_suspect_and_is_told() {
    let mut fixture = fixture().await;
    let hinted = add_client_at(&mut fixture, "c7", HINTED_IP);
    let id = super::super::fixture::id("c7", &hinted);
    let hinted_at = Instant::now();
    fixture.actor.on_hint(IpAddr::from(HINTED_IP));
    // A second hint while the probe runs adds nothing; a hint for an address without members does nothing.
    fixture.actor.on_hint(IpAddr::from(HINTED_IP));
    fixture.actor.on_hint(IpAddr::from([127, 0, 0, 8]));
    let sent = received(&hinted);
    let seqs = pings(&sent);
    assert_eq!(seqs.len(), sent.len(), "only pings: {sent:?}");
    assert_eq!(seqs.len(), COPIES, "one probe, {COPIES} pings");
    assert!(seqs.iter().all(|seq| *seq == seqs[0]));
    let probes = hint_timers(&mut fixture.actor);
    assert_eq!(probes.len(), 1);
    let (deadline, seq) = probes[0];
    assert_eq!(seq, seqs[0]);
    assert!(deadline >= hinted_at + health::PROBE_PERIOD && deadline < hinted_at + health::PROBE_PERIOD * 2);

    fixture.actor.hint_probe_due(seq);
    assert_eq!(fixture.actor.member_state(&id), Some((foca::State::Suspect, 0)), "suspect at the counter probed");
    // The buddy system tells it, as after any failed probe, and our own suspicion timer runs.
    let told = message(Sealed::Suspected, &id, 0);
    assert!(received(&hinted).contains(&told), "the suspect is told");
    let max = health::foca_config(fixture.actor.cluster_size(), 1).suspect_to_down_after;
    let deadlines = suspicion_deadlines(&mut fixture.actor);
    assert_eq!(deadlines.len(), 1, "one suspicion timer");
    assert!(deadlines[0] >= hinted_at + max && deadlines[0] < Instant::now() + max + Duration::from_millis(100));
}

#[tokio::test]
async fn the_suspicion_timer_of_a_hinted_probe_declares_the_member_down_when_it_fires() {
    let mut fixture = fixture().await;
    let hinted = add_client_at(&mut fixture, "c7", HINTED_IP);
    let id = super::super::fixture::id("c7", &hinted);
    fixture.actor.on_hint(IpAddr::from(HINTED_IP));
    let (_, seq) = hint_timers(&mut fixture.actor)[0];
    fixture.actor.hint_probe_due(seq);
    received(&fixture.server);
    let mut timers = Vec::new();
    while let Some((_, due)) = fixture.actor.timers.pop_due(Instant::now() + Duration::from_secs(3600)) {
        if let Due::Foca(timer @ Timer::ChangeSuspectToDown { .. }) = due {
            timers.push(timer);
        }
    }
    assert_eq!(timers.len(), 1);
    // The timer carries foca's own token, so foca acts on it.
    fixture.actor.fire_foca_timer(timers.remove(0));
    assert_eq!(fixture.actor.member_state(&id), Some((foca::State::Down, 0)));
    let mut buf = vec![0u8; 2048];
    let (len, _) = fixture.server.recv_from(&mut buf).expect("the servers are told");
    assert_eq!(&buf[..len], message(Sealed::Failed, &id, 0).as_slice());
}

#[tokio::test]
async fn a_hinted_member_that_answers_stays_alive_and_nobody_is_told() {
    let mut fixture = fixture().await;
    let hinted = add_client_at(&mut fixture, "c7", HINTED_IP);
    let id = super::super::fixture::id("c7", &hinted);
    fixture.actor.on_hint(IpAddr::from(HINTED_IP));
    let seq = pings(&received(&hinted))[0];
    let ack = CoordAck { seq, node: "c7".into(), coord: fixture.actor.coords.client.coordinate().clone() };
    let mut datagram = wire::envelope("dc1").to_vec();
    datagram[2] = wire::SIDE;
    datagram.push(Sealed::CoordAck as u8);
    datagram.extend(postcard::to_stdvec(&ack).expect("encodes"));
    // An ack from another address is not the member's.
    let elsewhere: SocketAddr = fixture.client.local_addr().expect("bound");
    fixture.actor.on_datagram(&datagram, elsewhere);
    fixture.actor.on_datagram(&datagram, id.addr);
    let (_, due) = hint_timers(&mut fixture.actor)[0];
    fixture.actor.hint_probe_due(due);
    assert_eq!(fixture.actor.member_state(&id), Some((foca::State::Alive, 0)));
    assert!(received(&hinted).is_empty(), "nothing after the pings");
    assert!(received(&fixture.client).is_empty() && received(&fixture.server).is_empty(), "nobody told");
    assert!(suspicion_deadlines(&mut fixture.actor).is_empty());
}

#[tokio::test]
async fn a_member_already_suspect_is_not_probed_on_a_hint() {
    let mut fixture = fixture().await;
    let suspect_ip = match fixture.suspect.addr.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => unreachable!("the fixture binds IPv4 loopback"),
    };
    // The fixture's suspect shares 127.0.0.1 with the fixture's live members, which are probed; it is not.
    fixture.actor.on_hint(IpAddr::V4(suspect_ip));
    assert!(pings(&received(&fixture.suspect_socket)).is_empty(), "held suspect at {SUSPECTED_AT} already");
    assert_eq!(pings(&received(&fixture.client)).len(), COPIES, "a live member at that address is probed");
}
