//! Tests that `apply` refuses every command over a limit of `limits.rs` and leaves the state exactly as a no-op entry at that index would.

use std::collections::BTreeMap;

use super::*;
use crate::limits::{MAX_KEY_LEN, MAX_META_KEY_LEN, MAX_META_PAIRS, MAX_META_VALUE_LEN, MAX_VALUE_SIZE};
use crate::txn::{CatalogVerb, KvVerb, MAX_TXN_OPS, TxnOp, TxnOutcome};

/// A state with a node, a service, a session and a key, so that a refused command has something it could have changed.
fn populated() -> State {
    let mut state = State::new();
    let setup =
        [register("n1", Some(service("web", "web", &[])), Vec::new()), session_create("s1", "n1", &[]), set("k", "v")];
    for (offset, cmd) in setup.iter().enumerate() {
        let (result, _) = state.apply(offset as u64 + 1, cmd);
        assert_eq!(result, CommandResult::Bool(true), "setup {cmd:?}");
    }
    state
}

/// Applies `cmd` at the next index and checks that it was refused with a text containing `expect`, woke nobody, and left
/// the snapshot byte-identical to the same state after a no-op entry at that index.
fn check_refused(cmd: &Command, expect: &str) {
    let mut state = populated();
    let index = state.last_index() + 1;
    let mut unchanged = state.clone();
    unchanged.apply_noop(index);
    let (outcome, changes) = state.apply_command(index, cmd);
    let why = match outcome {
        Outcome::Result(CommandResult::Rejected(why)) => why,
        Outcome::Txn(TxnOutcome::RolledBack(errors)) => {
            errors.iter().map(|e| e.what.clone()).collect::<Vec<_>>().join("; ")
        }
        other => panic!("{cmd:?} was not refused: {other:?}"),
    };
    assert!(why.contains(expect), "{why:?} does not say {expect:?}");
    assert!(changes.is_empty(), "a refused command reported changes: {changes:?}");
    assert_eq!(state.encode_snapshot(), unchanged.encode_snapshot(), "a refused command changed the state");
}

fn long_key() -> String {
    "k".repeat(MAX_KEY_LEN + 1)
}

fn big_value() -> Vec<u8> {
    vec![b'x'; MAX_VALUE_SIZE + 1]
}

fn kv_txn_op(verb: KvVerb, key: &str, value: Vec<u8>, session: &str) -> TxnOp {
    TxnOp::Kv { verb, key: key.into(), value, flags: 0, index: 0, session: session.into() }
}

fn txn(ops: Vec<TxnOp>) -> Command {
    Command::Txn { ops, now_ms: 0 }
}

fn service_with_meta(meta: BTreeMap<String, String>) -> Service {
    Service { meta, ..service("web", "web", &[]) }
}

#[test]
fn kv_commands_over_the_key_limit_are_refused_at_apply() {
    let key = long_key();
    let value = b"v".to_vec();
    let commands = [
        Command::KvSet { key: key.clone(), value: value.clone(), flags: 0 },
        Command::KvCas { key: key.clone(), value: value.clone(), flags: 0, index: 0 },
        Command::KvLock { key: key.clone(), value: value.clone(), flags: 0, session: "s1".into(), now_ms: 0 },
        Command::KvUnlock { key: key.clone(), value, flags: 0, session: "s1".into() },
        Command::KvDelete { key: key.clone() },
        Command::KvDeleteCas { key: key.clone(), index: 0 },
        Command::KvDeleteTree { prefix: key },
    ];
    for cmd in &commands {
        check_refused(cmd, &format!("max size: {MAX_KEY_LEN} bytes"));
    }
}

#[test]
fn a_key_of_exactly_the_limit_is_accepted() {
    let mut state = populated();
    let cmd = Command::KvSet { key: "k".repeat(MAX_KEY_LEN), value: Vec::new(), flags: 0 };
    assert_eq!(state.apply(10, &cmd).0, CommandResult::Bool(true));
}

#[test]
fn kv_commands_over_the_value_limit_are_refused_at_apply() {
    let commands = [
        Command::KvSet { key: "k".into(), value: big_value(), flags: 0 },
        Command::KvCas { key: "k".into(), value: big_value(), flags: 0, index: 3 },
        Command::KvLock { key: "k".into(), value: big_value(), flags: 0, session: "s1".into(), now_ms: 0 },
        Command::KvUnlock { key: "k".into(), value: big_value(), flags: 0, session: "s1".into() },
    ];
    for cmd in &commands {
        check_refused(cmd, &format!("max size: {MAX_VALUE_SIZE} bytes"));
    }
}

#[test]
fn a_txn_over_the_op_limit_is_refused_whole() {
    let ops = (0..=MAX_TXN_OPS).map(|n| kv_txn_op(KvVerb::Set, &format!("t/{n}"), Vec::new(), "")).collect();
    check_refused(&txn(ops), &format!("({} > {MAX_TXN_OPS})", MAX_TXN_OPS + 1));
}

#[test]
fn a_txn_op_over_a_kv_limit_fails_and_nothing_is_applied() {
    let good = kv_txn_op(KvVerb::Set, "t/ok", b"v".to_vec(), "");
    check_refused(&txn(vec![good.clone(), kv_txn_op(KvVerb::Set, &long_key(), Vec::new(), "")]), "Key too long");
    check_refused(&txn(vec![good.clone(), kv_txn_op(KvVerb::Delete, &long_key(), Vec::new(), "")]), "Key too long");
    check_refused(&txn(vec![good, kv_txn_op(KvVerb::Cas, "k", big_value(), "")]), "too large");
}

#[test]
fn service_meta_over_a_limit_is_refused_at_apply_and_in_a_txn() {
    let too_many: BTreeMap<String, String> = (0..=MAX_META_PAIRS).map(|n| (format!("m{n}"), "v".into())).collect();
    let cases = [
        (too_many, "more than 64 key/value pairs"),
        (BTreeMap::from([("k".repeat(MAX_META_KEY_LEN + 1), "v".into())]), "Key is too long"),
        (BTreeMap::from([("k".into(), "v".repeat(MAX_META_VALUE_LEN + 1))]), "Value is too long"),
        (BTreeMap::from([("bad key".into(), "v".into())]), "invalid characters"),
        (BTreeMap::from([("consul-x".into(), "v".into())]), "reserved"),
    ];
    for (meta, expect) in cases {
        let svc = service_with_meta(meta);
        check_refused(&register("n1", Some(svc.clone()), Vec::new()), expect);
        check_refused(&txn(vec![TxnOp::Service { verb: CatalogVerb::Set, node: "n1".into(), service: svc }]), expect);
    }
}

#[test]
fn sessions_with_a_ttl_the_timer_could_not_honour_are_refused_at_apply() {
    let with_ttl = |ttl: &str| {
        let mut created = session("s2", "n1", &[]);
        created.ttl = ttl.into();
        Command::SessionCreate(Box::new(created))
    };
    check_refused(&with_ttl("15s "), "Session TTL '15s ' invalid");
    check_refused(&with_ttl("9s"), "must be between [10s=24h0m0s]");
    check_refused(&with_ttl("24h1s"), "must be between [10s=24h0m0s]");
    check_refused(&with_ttl("99999999999999999999h"), "too large");
    for accepted in ["", "0s", "10s", "24h"] {
        let mut state = populated();
        assert_eq!(state.apply(10, &with_ttl(accepted)).0, CommandResult::Bool(true), "TTL {accepted:?}");
    }
}
