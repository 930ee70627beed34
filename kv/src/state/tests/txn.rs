//! Tests for transactions: all-or-nothing application, Consul's error texts, catalog operations and read-only transactions.

use super::*;
use crate::command::Outcome;
use crate::txn::{CatalogVerb, KvVerb, TxnError, TxnOp, TxnOutcome, TxnResult};

fn txn(ops: Vec<TxnOp>) -> Command {
    Command::Txn { ops, now_ms: 0 }
}

fn kv(verb: KvVerb, key: &str, value: &str, index: u64) -> TxnOp {
    TxnOp::Kv { verb, key: key.into(), value: value.as_bytes().to_vec(), flags: 0, index, session: String::new() }
}

fn errors(result: &Outcome) -> Vec<(u64, String)> {
    match result {
        Outcome::Txn(TxnOutcome::RolledBack(errors)) => {
            errors.iter().map(|TxnError { op_index, what }| (*op_index, what.clone())).collect()
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[test]
fn a_failing_op_rolls_back_every_write_and_reports_each_error() {
    let (mut state, _) = run(&[set("x", "old")]);
    let before = state.encode_snapshot();
    let cmd = txn(vec![
        kv(KvVerb::Set, "x", "new", 0),
        kv(KvVerb::Delete, "x", "", 0),
        kv(KvVerb::Cas, "y", "v", 7),
        kv(KvVerb::Get, "missing", "", 0),
        kv(KvVerb::Set, "", "v", 0),
    ]);
    let (result, changes) = state.apply_command(2, &cmd);
    assert_eq!(
        errors(&result),
        [
            (2, "failed to set key \"y\", index is stale".to_string()),
            (3, "key \"missing\" doesn't exist".to_string()),
            (4, "Must provide key".to_string()),
        ]
    );
    assert!(changes.is_empty(), "a rolled-back transaction wakes nobody");
    state.index = 1;
    assert_eq!(state.encode_snapshot(), before, "nothing but the applied index moved");
}

#[test]
fn successful_txn_applies_in_order_and_blanks_values_of_writes() {
    let (mut state, _) = run(&[set("a", "1")]);
    let cmd = txn(vec![
        kv(KvVerb::CheckIndex, "a", "", 1),
        kv(KvVerb::Set, "b", "2", 0),
        kv(KvVerb::Cas, "b", "3", 2),
        kv(KvVerb::Get, "b", "", 0),
        kv(KvVerb::CheckNotExists, "c", "", 0),
        kv(KvVerb::GetTree, "a", "", 0),
        kv(KvVerb::DeleteCas, "a", "", 1),
    ]);
    let (result, changes) = state.apply_command(2, &cmd);
    let Outcome::Txn(TxnOutcome::Applied(results)) = result else { panic!("applied: {result:?}") };
    let shown: Vec<(String, Vec<u8>)> = results
        .iter()
        .map(|r| match r {
            TxnResult::Kv(e) => (e.key.clone(), e.value.clone()),
            other => panic!("kv only: {other:?}"),
        })
        .collect();
    let want = [("a", ""), ("b", ""), ("b", ""), ("b", "3"), ("a", "1")];
    assert_eq!(shown, want.map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())));
    assert!(changes.touches(&WatchKey::Key("a".into())) && changes.touches(&WatchKey::Key("b".into())));
    assert_eq!(state.kv_get("a"), (None, 2));
    assert_eq!(state.kv_get("b").0.map(|e| e.value.clone()), Some(b"3".to_vec()));
}

#[test]
fn lock_ops_in_a_txn_follow_the_session_rules() {
    let (mut state, _) =
        run(&[register("n1", None, vec![]), session_create("a", "n1", &[]), session_create("b", "n1", &[])]);
    let with_session = |verb, session: &str| TxnOp::Kv {
        verb,
        key: "k".into(),
        value: b"v".to_vec(),
        flags: 0,
        index: 0,
        session: session.into(),
    };
    let (ok, _) =
        state.apply_command(4, &txn(vec![with_session(KvVerb::Lock, "a"), with_session(KvVerb::CheckSession, "a")]));
    assert!(matches!(ok, Outcome::Txn(TxnOutcome::Applied(_))), "{ok:?}");
    let (held, _) = state.apply_command(5, &txn(vec![with_session(KvVerb::Lock, "b")]));
    assert_eq!(errors(&held), [(0, "failed to lock key \"k\", lock is already held".to_string())]);
    let (bad, _) =
        state.apply_command(6, &txn(vec![with_session(KvVerb::Unlock, "b"), with_session(KvVerb::Lock, "zz")]));
    assert_eq!(
        errors(&bad),
        [
            (0, "failed to unlock key \"k\", lock isn't held, or is held by another session".to_string()),
            (1, "invalid session \"zz\"".to_string()),
        ]
    );
}

#[test]
fn catalog_ops_register_cas_and_delete_and_invalidate_sessions() {
    let (mut state, _) = run(&[
        register("n1", None, vec![check("serfHealth", "", CheckStatus::Passing)]),
        session_create("s", "n1", &["serfHealth"]),
    ]);
    let mut failing = check("serfHealth", "", CheckStatus::Critical);
    failing.node = "n1".into();
    let ops = vec![
        TxnOp::Node { verb: CatalogVerb::Set, node: node("n2") },
        TxnOp::Service { verb: CatalogVerb::Set, node: "n2".into(), service: service("web-1", "web", &[]) },
        TxnOp::Check { verb: CatalogVerb::Set, check: failing },
    ];
    let (result, _) = state.apply_command(3, &txn(ops));
    let Outcome::Txn(TxnOutcome::Applied(results)) = result else { panic!("applied: {result:?}") };
    assert!(
        matches!(&results[..], [TxnResult::Node(_), TxnResult::Service(s), TxnResult::Check(_)] if s.modify_index == 3)
    );
    assert!(state.sessions().0.is_empty(), "the critical check took the session with it");

    let mut stale = service("web-1", "web", &["v2"]);
    stale.modify_index = 1;
    let (result, _) = state.apply_command(
        4,
        &txn(vec![
            TxnOp::Service { verb: CatalogVerb::Cas, node: "n2".into(), service: stale },
            TxnOp::Node { verb: CatalogVerb::Set, node: Node { node: "n3".into(), ..Node::default() } },
            TxnOp::Service { verb: CatalogVerb::Set, node: "ghost".into(), service: service("x", "x", &[]) },
        ]),
    );
    assert_eq!(
        errors(&result),
        [
            (0, "failed to set service \"web-1\" on node \"n2\", index is stale".to_string()),
            (1, "Must provide address if SkipNodeUpdate is not set".to_string()),
            (2, "Missing node registration".to_string()),
        ]
    );
    let (deleted, _) = state.apply_command(5, &txn(vec![TxnOp::Node { verb: CatalogVerb::Delete, node: node("n2") }]));
    assert_eq!(deleted, Outcome::Txn(TxnOutcome::Applied(vec![])));
    assert!(state.node("n2").0.is_none());
}

#[test]
fn read_only_txn_reads_without_writing() {
    let (state, _) = run(&[set("a", "1"), register("n1", None, vec![])]);
    let ops = vec![kv(KvVerb::Get, "a", "", 0), TxnOp::Node { verb: CatalogVerb::Get, node: node("n1") }];
    let TxnOutcome::Applied(results) = state.txn_read(&ops) else { panic!("reads succeed") };
    assert_eq!(results.len(), 2);
    let TxnOutcome::RolledBack(errors) = state.txn_read(&[kv(KvVerb::Set, "a", "2", 0)]) else {
        panic!("a write fails")
    };
    assert_eq!(errors[0].op_index, 0);
    assert_eq!(state.kv_get("a").0.map(|e| e.value.clone()), Some(b"1".to_vec()));
}

/// Any write operation on the KV store or the catalog, over the keys, nodes and names `arb_command` uses, so that
/// it meets the sessions, locks, instances and checks a random history left behind.
fn arb_write_op() -> impl Strategy<Value = TxnOp> {
    let key = prop::sample::select(vec!["a", "a/b", "b", "ab"]).prop_map(String::from);
    let node_name = prop::sample::select(vec!["n1", "n2"]).prop_map(String::from);
    let name = prop::sample::select(vec!["web", "db", "cache"]).prop_map(String::from);
    let status = prop::sample::select(vec![CheckStatus::Passing, CheckStatus::Critical]);
    let kv_verb = prop::sample::select(vec![
        KvVerb::Set,
        KvVerb::Cas,
        KvVerb::Lock,
        KvVerb::Unlock,
        KvVerb::Delete,
        KvVerb::DeleteTree,
        KvVerb::DeleteCas,
    ]);
    let catalog_verb = prop::sample::select(vec![CatalogVerb::Set, CatalogVerb::Delete]);
    let session = prop::sample::select(vec!["s1", "s2"]).prop_map(String::from);
    prop_oneof![
        (kv_verb, key, any::<Vec<u8>>(), 0..20u64, session).prop_map(|(verb, key, value, index, session)| TxnOp::Kv {
            verb,
            key,
            value,
            flags: 0,
            index,
            session
        }),
        (catalog_verb.clone(), node_name.clone()).prop_map(|(verb, name)| TxnOp::Node { verb, node: node(&name) }),
        (catalog_verb.clone(), node_name.clone(), name.clone()).prop_map(|(verb, node, name)| TxnOp::Service {
            verb,
            node,
            service: service(&format!("{name}-1"), &name, &["t"])
        }),
        (catalog_verb, node_name, name, status).prop_map(|(verb, node, name, status)| TxnOp::Check {
            verb,
            check: HealthCheck { node, ..check("c1", &format!("{name}-1"), status) }
        }),
    ]
}

proptest! {
    /// The journal undoes whatever the operations did before the failing one: the state equals the one before the
    /// transaction (but for the index, which every entry moves) and encodes to the same snapshot.
    #[test]
    fn a_rolled_back_txn_leaves_the_state_exactly_as_it_was(
        history in prop::collection::vec(arb_command(), 0..40),
        mut ops in prop::collection::vec(arb_write_op(), 1..12),
        now_ms in 0..40_000u64,
    ) {
        let (mut state, _) = run(&history);
        let index = state.last_index() + 1;
        let mut expected = state.clone();
        expected.apply_noop(index);
        ops.push(kv_op(KvVerb::Get, "never-written"));
        let (outcome, changes) = state.apply_command(index, &txn_at(ops, now_ms));
        prop_assert!(matches!(outcome, Outcome::Txn(TxnOutcome::RolledBack(_))), "{:?}", outcome);
        prop_assert_eq!(changes, Changes::default());
        prop_assert_eq!(state.encode_snapshot(), expected.encode_snapshot());
        prop_assert_eq!(state, expected);
    }
}

fn txn_at(ops: Vec<TxnOp>, now_ms: u64) -> Command {
    Command::Txn { ops, now_ms }
}
