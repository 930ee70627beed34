//! Tests for sessions and KV locks: creation checks, lock acquisition and hand-over, lock-delay, invalidation by the catalog, and the snapshot round trip with sessions.

use super::*;
use crate::model::{Session, SessionBehavior};
use crate::watch::Table;

fn lock(key: &str, value: &str, session: &str, now_ms: u64) -> Command {
    Command::KvLock { key: key.into(), value: value.as_bytes().to_vec(), flags: 0, session: session.into(), now_ms }
}

fn unlock(key: &str, session: &str) -> Command {
    Command::KvUnlock { key: key.into(), value: Vec::new(), flags: 0, session: session.into() }
}

fn destroy(id: &str, now_ms: u64) -> Command {
    Command::SessionDestroy { id: id.into(), now_ms }
}

/// Node `n1` with a passing `serfHealth` check.
fn healthy_node() -> Command {
    register("n1", None, vec![check("serfHealth", "", CheckStatus::Passing)])
}

fn with_delay(mut s: Session, delay_ms: u64, behavior: SessionBehavior) -> Command {
    s.lock_delay_ns = delay_ms * 1_000_000;
    s.behavior = behavior;
    Command::SessionCreate(Box::new(s))
}

fn holder(state: &State, key: &str) -> Option<(String, u64)> {
    state.kv_get(key).0.and_then(|e| e.session.clone().map(|s| (s, e.lock_index)))
}

#[test]
fn create_needs_a_registered_node_and_healthy_named_checks() {
    let (state, results) = run(&[
        session_create("s0", "ghost", &[]),
        healthy_node(),
        register("n1", None, vec![check("bad", "", CheckStatus::Critical)]),
        session_create("s1", "n1", &["missing"]),
        session_create("s2", "n1", &["bad"]),
        session_create("s3", "n1", &["serfHealth"]),
        session_create("s3", "n1", &[]),
    ]);
    assert_eq!(results[0], CommandResult::Rejected("Missing node registration".into()));
    assert_eq!(results[3], CommandResult::Rejected("Missing check 'missing' registration".into()));
    assert_eq!(results[4], CommandResult::Rejected("Check 'bad' is in critical state".into()));
    assert_eq!(results[5], CommandResult::Bool(true));
    assert!(matches!(&results[6], CommandResult::Rejected(m) if m.contains("already exists")));
    let (sessions, index) = state.sessions();
    assert_eq!(sessions.iter().map(|s| (s.id.as_str(), s.create_index)).collect::<Vec<_>>(), [("s3", 6)]);
    assert_eq!(index, 6, "rejected creations leave the sessions index alone");
}

#[test]
fn lock_is_exclusive_counts_acquisitions_and_is_released_only_by_its_holder() {
    let (state, results) = run(&[
        healthy_node(),
        session_create("a", "n1", &[]),
        session_create("b", "n1", &[]),
        lock("k", "1", "a", 0),
        lock("k", "2", "b", 0),
        lock("k", "3", "a", 0),
        unlock("k", "b"),
        unlock("k", "a"),
        lock("k", "4", "b", 0),
        lock("k", "5", "nope", 0),
    ]);
    let bools: Vec<_> = results[3..9].to_vec();
    let t = CommandResult::Bool(true);
    let f = CommandResult::Bool(false);
    assert_eq!(bools, [t.clone(), f.clone(), t.clone(), f, t.clone(), t]);
    assert_eq!(results[9], CommandResult::Rejected("invalid session \"nope\"".into()));
    // a acquired once (its re-acquire does not count), then b: two acquisitions.
    assert_eq!(holder(&state, "k"), Some(("b".into(), 2)));
    assert_eq!(state.kv_get("k").0.map(|e| e.value.clone()), Some(b"4".to_vec()));
}

#[test]
fn destroying_the_holder_releases_its_locks_and_wakes_their_watchers() {
    let (mut state, _) = run(&[healthy_node(), session_create("a", "n1", &[]), lock("k", "v", "a", 0)]);
    let (result, changes) = state.apply(4, &destroy("a", 10));
    assert_eq!(result, CommandResult::Bool(true));
    assert!(changes.touches(&WatchKey::Key("k".into())));
    assert!(changes.touches(&WatchKey::Table(Table::Sessions)));
    let entry = state.kv_get("k").0.expect("release keeps the key").clone();
    assert_eq!((entry.session, entry.modify_index, entry.lock_index), (None, 4, 1));
    assert!(state.sessions().0.is_empty());
    assert_eq!(state.apply(5, &destroy("a", 10)).0, CommandResult::Bool(true), "destroy is idempotent");
}

#[test]
fn delete_behavior_deletes_held_keys() {
    let (state, _) = run(&[
        healthy_node(),
        with_delay(session("a", "n1", &[]), 0, SessionBehavior::Delete),
        lock("k", "v", "a", 0),
        set("other", "x"),
        destroy("a", 0),
    ]);
    assert_eq!(state.kv_get("k"), (None, 5));
    assert!(state.kv_get("other").0.is_some());
}

#[test]
fn lock_delay_blocks_other_sessions_until_it_passes() {
    let (mut state, _) = run(&[
        healthy_node(),
        with_delay(session("a", "n1", &[]), 15_000, SessionBehavior::Release),
        session_create("b", "n1", &[]),
        lock("k", "v", "a", 1_000),
        destroy("a", 2_000),
    ]);
    assert_eq!(state.apply(6, &lock("k", "v", "b", 16_999)).0, CommandResult::Bool(false));
    assert_eq!(holder(&state, "k"), None);
    assert_eq!(state.apply(7, &lock("k", "v", "b", 17_000)).0, CommandResult::Bool(true));
    assert_eq!(holder(&state, "k"), Some(("b".into(), 2)));
}

#[test]
fn a_check_going_critical_destroys_its_sessions_in_the_same_apply() {
    let (mut state, _) = run(&[
        healthy_node(),
        register("n2", None, vec![check("serfHealth", "", CheckStatus::Passing)]),
        session_create("a", "n1", &["serfHealth"]),
        session_create("other", "n2", &["serfHealth"]),
        lock("k", "v", "a", 0),
    ]);
    let (_, changes) = state.apply(6, &register("n1", None, vec![check("serfHealth", "", CheckStatus::Critical)]));
    assert!(changes.touches(&WatchKey::Key("k".into())), "the released key's watchers wake");
    assert_eq!(holder(&state, "k"), None);
    assert_eq!(state.sessions().0.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["other"]);
    assert_eq!(state.sessions().1, 6);
}

#[test]
fn deregistering_a_named_check_or_the_node_destroys_sessions() {
    let (mut state, _) = run(&[
        register("n1", None, vec![check("serfHealth", "", CheckStatus::Passing), check("x", "", CheckStatus::Passing)]),
        session_create("by-check", "n1", &["x"]),
        session_create("by-node", "n1", &[]),
    ]);
    state.apply(4, &Command::Deregister { node: "n1".into(), service_id: None, check_id: Some("x".into()) });
    assert_eq!(state.sessions().0.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["by-node"]);
    state.apply(5, &Command::Deregister { node: "n1".into(), service_id: None, check_id: None });
    assert!(state.sessions().0.is_empty());
}

#[test]
fn delay_from_a_catalog_invalidation_starts_at_the_next_lock_attempt() {
    let (mut state, _) = run(&[
        healthy_node(),
        with_delay(session("a", "n1", &["serfHealth"]), 1_000, SessionBehavior::Release),
        session_create("b", "n1", &[]),
        lock("k", "v", "a", 0),
        register("n1", None, vec![check("serfHealth", "", CheckStatus::Critical)]),
    ]);
    // "b" names no check, so it survives; the first attempt anchors the delay.
    assert_eq!(state.apply(6, &lock("k", "v", "b", 50_000)).0, CommandResult::Bool(false));
    assert_eq!(state.apply(7, &lock("k", "v", "b", 50_999)).0, CommandResult::Bool(false));
    assert_eq!(state.apply(8, &lock("k", "v", "b", 51_000)).0, CommandResult::Bool(true));
}

#[test]
fn snapshot_keeps_sessions_locks_and_delays_and_reads_version_one() {
    let (state, _) = run(&[
        healthy_node(),
        with_delay(session("a", "n1", &["serfHealth"]), 5_000, SessionBehavior::Delete),
        session_create("b", "n1", &[]),
        lock("k", "v", "a", 0),
        lock("j", "v", "b", 0),
        destroy("a", 100),
    ]);
    let decoded = State::decode_snapshot(&state.encode_snapshot()).expect("decodes");
    assert_eq!(decoded, state);
    assert_eq!(decoded.sessions().1, 6);

    // A version-1 snapshot is version 2's body without the session part.
    let mut v1 = state.encode_snapshot();
    v1[7] = 1;
    let session_tail = postcard::to_allocvec(&(
        state.sessions.values().cloned().collect::<Vec<_>>(),
        state.lock_delays.iter().map(|(k, d)| (k.clone(), d.start_ms, d.delay_ms)).collect::<Vec<_>>(),
        6u64,
    ))
    .expect("encodes");
    v1.truncate(v1.len() - session_tail.len());
    let old = State::decode_snapshot(&v1).expect("version 1 decodes");
    assert!(old.sessions().0.is_empty());
    assert_eq!(old.kv_list("").0, state.kv_list("").0);
}
