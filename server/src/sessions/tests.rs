//! Tests for the leader's session timers, on instants the test chooses.

use super::*;

fn ttl_session(id: &str, ttl: &str) -> Session {
    Session { id: id.into(), ttl: ttl.into(), ..Session::default() }
}

#[test]
fn ttls_parse_as_go_durations_and_zero_means_none() {
    assert_eq!(ttl_of(&ttl_session("a", "10s")), Some(Duration::from_secs(10)));
    assert_eq!(ttl_of(&ttl_session("a", "1m30s")), Some(Duration::from_secs(90)));
    assert_eq!(ttl_of(&ttl_session("a", "1.5h")), Some(Duration::from_secs(5400)));
    assert_eq!(ttl_of(&ttl_session("a", "")), None);
    assert_eq!(ttl_of(&ttl_session("a", "0s")), None);
    assert_eq!(ttl_of(&ttl_session("a", "10 s")), None);
}

#[test]
fn a_session_expires_at_twice_its_ttl_unless_renewed() {
    let timers = SessionTimers::default();
    let start = Instant::now();
    let ten = Duration::from_secs(10);
    timers.reconcile(start, &[("a".into(), ten), ("b".into(), ten)]);
    assert_eq!(timers.next_deadline(), Some(start + Duration::from_secs(20)));
    assert!(timers.take_expired(start + Duration::from_secs(19)).is_empty());

    // Renewing b at 15 s moves its deadline to 35 s; a reconcile does not undo that.
    timers.renew(start + Duration::from_secs(15), "b", ten);
    timers.reconcile(start + Duration::from_secs(16), &[("a".into(), ten), ("b".into(), ten)]);
    assert_eq!(timers.take_expired(start + Duration::from_secs(20)), ["a"]);
    assert!(timers.take_expired(start + Duration::from_secs(34)).is_empty());
    assert_eq!(timers.take_expired(start + Duration::from_secs(35)), ["b"]);
    assert_eq!(timers.len(), 0);
}

#[test]
fn reconcile_drops_timers_of_destroyed_sessions_and_clear_drops_all() {
    let timers = SessionTimers::default();
    let now = Instant::now();
    timers.reconcile(now, &[("a".into(), Duration::from_secs(10)), ("b".into(), Duration::from_secs(10))]);
    timers.reconcile(now, &[("b".into(), Duration::from_secs(10))]);
    assert_eq!(timers.len(), 1);
    timers.clear();
    assert_eq!(timers.next_deadline(), None);
}

#[test]
fn ttls_the_kv_parser_refuses_are_not_armed() {
    // "15s " once passed the edge, which trimmed it, and was then unreadable here: a session that never expired.
    // Apply now refuses it; a timer sees it only in a state stored before that, and cannot read it either way.
    assert_eq!(ttl_of(&ttl_session("a", "15s ")), None);
    assert_eq!(ttl_of(&ttl_session("a", "9999999999999999999999h")), None);
}

#[test]
fn deadlines_of_the_max_ttl_and_beyond_never_overflow() {
    let timers = SessionTimers::default();
    let now = Instant::now();
    assert_eq!(timers.deadline(now, roster_kv::SESSION_TTL_MAX), now + Duration::from_secs(2 * 86_400));
    // Longer TTLs (stored before apply checked them, or any Duration at all) wait no longer than the max TTL's grace.
    let longest = ttl_of(&ttl_session("a", "2562047h")).expect("Go's largest hour count parses");
    for ttl in [longest, Duration::MAX] {
        assert_eq!(timers.deadline(now, ttl), now + Duration::from_secs(2 * 86_400));
        timers.renew(now, "a", ttl);
        timers.reconcile(now, &[("a".into(), ttl), ("b".into(), ttl)]);
    }
    assert_eq!(timers.next_deadline(), Some(now + Duration::from_secs(2 * 86_400)));
}
