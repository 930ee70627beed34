//! Tests of the restart state machine: a script of exits against the decisions expected.

use std::time::Duration;

use super::{Decision, RestartTracker, StayReason};
use crate::duration::GoDuration;
use crate::spec::{RestartPolicy, RestartSpec};

fn spec(policy: RestartPolicy, attempts: Option<u32>) -> RestartSpec {
    RestartSpec {
        policy,
        attempts,
        delay: GoDuration(Duration::from_secs(1)),
        max_delay: GoDuration(Duration::from_secs(10)),
        backoff: 2.0,
        reset_after: GoDuration(Duration::from_secs(30)),
    }
}

const QUICK: Duration = Duration::from_secs(1);

fn restart(secs: u64, attempt: u32) -> Decision {
    Decision::Restart { after: Duration::from_secs(secs), attempt }
}

/// Feeds `(exit_code, ran_for)` exits and compares every decision.
fn check(spec: RestartSpec, exits: &[(i64, Duration)], expect: &[Decision]) {
    let mut tracker = RestartTracker::new(spec);
    let got: Vec<Decision> = exits.iter().map(|(code, ran_for)| tracker.exited(*code, *ran_for)).collect();
    assert_eq!(got, expect);
}

#[test]
fn policy_no_never_restarts() {
    check(
        spec(RestartPolicy::No, None),
        &[(1, QUICK), (0, QUICK)],
        &[Decision::Stay(StayReason::PolicyNo), Decision::Stay(StayReason::PolicyNo)],
    );
}

#[test]
fn on_failure_restarts_failures_and_ignores_exit_zero() {
    check(
        spec(RestartPolicy::OnFailure, None),
        &[(1, QUICK), (137, QUICK), (0, QUICK)],
        &[restart(1, 1), restart(2, 2), Decision::Stay(StayReason::Succeeded)],
    );
}

#[test]
fn always_restarts_any_exit_with_backoff_capped() {
    let quick_zero = (0, QUICK);
    check(
        spec(RestartPolicy::Always, None),
        &[quick_zero; 6],
        &[restart(1, 1), restart(2, 2), restart(4, 3), restart(8, 4), restart(10, 5), restart(10, 6)],
    );
}

#[test]
fn attempts_limit_gives_up() {
    check(
        spec(RestartPolicy::OnFailure, Some(2)),
        &[(1, QUICK), (1, QUICK), (1, QUICK)],
        &[restart(1, 1), restart(2, 2), Decision::Stay(StayReason::GaveUp { attempts: 2 })],
    );
}

#[test]
fn zero_attempts_never_restarts() {
    check(spec(RestartPolicy::Always, Some(0)), &[(1, QUICK)], &[Decision::Stay(StayReason::GaveUp { attempts: 0 })]);
}

#[test]
fn long_run_resets_count_and_delay() {
    check(
        spec(RestartPolicy::OnFailure, Some(2)),
        &[(1, QUICK), (1, QUICK), (1, Duration::from_secs(30)), (1, QUICK), (1, QUICK)],
        &[
            restart(1, 1),
            restart(2, 2),
            restart(1, 1),
            restart(2, 2),
            Decision::Stay(StayReason::GaveUp { attempts: 2 }),
        ],
    );
}

#[test]
fn explicit_stop_is_final_until_reset() {
    let mut tracker = RestartTracker::new(spec(RestartPolicy::Always, None));
    assert_eq!(tracker.exited(1, QUICK), restart(1, 1));
    tracker.stop_requested();
    assert_eq!(tracker.exited(0, QUICK), Decision::Stay(StayReason::Stopped));
    assert_eq!(tracker.exited(143, QUICK), Decision::Stay(StayReason::Stopped));
    tracker.reset();
    assert_eq!(tracker.attempts(), 0);
    assert_eq!(tracker.exited(143, QUICK), restart(1, 1));
}

#[test]
fn huge_attempt_counts_saturate_at_max_delay() {
    let mut tracker = RestartTracker::new(RestartSpec { backoff: 10.0, ..spec(RestartPolicy::Always, None) });
    let mut last = Decision::Stay(StayReason::PolicyNo);
    for _ in 0..2000 {
        last = tracker.exited(1, QUICK);
    }
    assert_eq!(last, restart(10, 2000));
}

#[test]
fn fractional_backoff() {
    let spec = RestartSpec { backoff: 1.5, max_delay: GoDuration::from_secs(60), ..spec(RestartPolicy::Always, None) };
    let mut tracker = RestartTracker::new(spec);
    let waits: Vec<Duration> = (0..3)
        .map(|_| match tracker.exited(1, QUICK) {
            Decision::Restart { after, .. } => after,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(waits, [Duration::from_millis(1000), Duration::from_millis(1500), Duration::from_millis(2250)]);
}
