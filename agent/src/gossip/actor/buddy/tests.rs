//! The confirmation and failure messages against one real actor: its foca and timers driven directly, the members it
//! sends to played by sockets of the test's own.

use std::sync::Arc;
use std::time::Duration;

use foca::Timer;
use tokio::time::Instant;

use super::super::super::health;
use super::super::super::wire::Sealed;
use super::super::fixture::{Fixture, SUSPECTED_AT, add_client, bind, fixture, message, received, suspicion_deadlines};
use super::super::{Actor, Due};
use super::*;

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
async fn a_timer_of_a_refuted_suspicion_sends_the_suspect_nothing() {
    let mut fixture = fixture().await;
    let timer = Timer::ChangeSuspectToDown { member_id: fixture.suspect.clone(), incarnation: SUSPECTED_AT, token: 0 };
    let refuted = foca::Member::new(fixture.suspect.clone(), SUSPECTED_AT + 1, foca::State::Alive);
    fixture.actor.with_foca(|foca, io| foca.apply_many(std::iter::once(refuted), false, io)).expect("refuted");
    received(&fixture.suspect_socket);
    // Foca answers a timer whose suspicion was refuted by leaving the member alive, but still sends it the `TurnUndead`
    // it sends a member it declares down, and a live member that gets one rejoins under a new generation: a false
    // failure for every refuted suspicion whose timer was not cancelled (foca cannot cancel one).
    fixture.actor.fire_foca_timer(timer);
    assert_eq!(fixture.actor.member_state(&fixture.suspect), Some((foca::State::Alive, SUSPECTED_AT + 1)));
    assert_eq!(received(&fixture.suspect_socket), Vec::<Vec<u8>>::new(), "nothing sent to the refuted suspect");
    assert_eq!(received(&fixture.server), Vec::<Vec<u8>>::new(), "the servers are not told");

    // A new suspicion at the refuting counter is another suspicion: the old counter's timer still finds nothing.
    let suspected_again = foca::Member::new(fixture.suspect.clone(), SUSPECTED_AT + 1, foca::State::Suspect);
    fixture.actor.with_foca(|foca, io| foca.apply_many(std::iter::once(suspected_again), false, io)).expect("applied");
    let stale = Timer::ChangeSuspectToDown { member_id: fixture.suspect.clone(), incarnation: SUSPECTED_AT, token: 0 };
    fixture.actor.fire_foca_timer(stale);
    assert_eq!(fixture.actor.member_state(&fixture.suspect), Some((foca::State::Suspect, SUSPECTED_AT + 1)));
    assert_eq!(received(&fixture.suspect_socket), Vec::<Vec<u8>>::new(), "nothing sent for a stale counter");
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
