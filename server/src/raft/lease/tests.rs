//! The lease decision against the facts openraft's own `LeaseRead` would weigh.

use std::time::Duration;

use super::{Lease, LeaseFacts};

const LENGTH: Duration = Duration::from_millis(600);

/// A leader in term 3 with two followers, acknowledged 100 ms ago, committed up to 40.
fn leader() -> LeaseFacts {
    LeaseFacts {
        term: 3,
        leading: true,
        self_quorum: false,
        quorum_ack_age: Some(Duration::from_millis(100)),
        committed: 40,
    }
}

#[test]
fn nothing_is_decided_before_openraft_answered_once_in_the_term() {
    let lease = Lease::new(LENGTH);
    assert_eq!(lease.read_index(&leader()), None);
    lease.record(2, 30);
    assert_eq!(lease.read_index(&leader()), None, "a floor from an earlier term says nothing of this one's noop");
}

#[test]
fn a_leader_within_its_lease_waits_for_the_higher_of_floor_and_committed() {
    let lease = Lease::new(LENGTH);
    lease.record(3, 35);
    assert_eq!(lease.read_index(&leader()), Some(40));
    lease.record(3, 45);
    assert_eq!(lease.read_index(&leader()), Some(45));
}

#[test]
fn an_acknowledgement_older_than_the_lease_leaves_the_read_to_openraft() {
    let lease = Lease::new(LENGTH);
    lease.record(3, 35);
    let stale = LeaseFacts { quorum_ack_age: Some(LENGTH), ..leader() };
    assert_eq!(lease.read_index(&stale), None, "the lease ends exactly at acknowledgement + length");
    let never = LeaseFacts { quorum_ack_age: None, ..leader() };
    assert_eq!(lease.read_index(&never), None);
    let alone = LeaseFacts { self_quorum: true, ..never };
    assert_eq!(lease.read_index(&alone), Some(40), "a single voter is its own quorum");
}

#[test]
fn a_follower_or_a_new_term_is_never_answered_here() {
    let lease = Lease::new(LENGTH);
    lease.record(3, 35);
    assert_eq!(lease.read_index(&LeaseFacts { leading: false, ..leader() }), None);
    assert_eq!(lease.read_index(&LeaseFacts { term: 4, ..leader() }), None);
}

#[test]
fn a_transfer_shuts_the_path_for_the_rest_of_its_term() {
    let lease = Lease::new(LENGTH);
    lease.record(3, 35);
    lease.forbid(3);
    assert_eq!(lease.read_index(&leader()), None);
    lease.record(3, 50);
    assert_eq!(lease.read_index(&leader()), None, "a read answered during the transfer reopens nothing");
    lease.record(5, 60);
    let later = LeaseFacts { term: 5, ..leader() };
    assert_eq!(lease.read_index(&later), Some(60), "leading again in a later term");
}

#[test]
fn an_answer_from_an_older_term_does_not_replace_a_newer_floor() {
    let lease = Lease::new(LENGTH);
    lease.record(4, 50);
    lease.record(3, 70);
    assert_eq!(lease.read_index(&LeaseFacts { term: 4, ..leader() }), Some(50));
}
