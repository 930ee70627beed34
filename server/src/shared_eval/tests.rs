//! The shared answer is the exact answer: reused while the state stands still, recomputed after any apply.

use roster_kv::{Answer, Command, Query, State};

use super::SharedEvals;

fn set(key: &str, value: &str) -> Command {
    Command::KvSet { key: key.to_owned(), value: value.as_bytes().to_vec(), flags: 0 }
}

#[test]
fn one_evaluation_per_query_per_state() {
    let mut state = State::new();
    state.apply(1, &set("lb/web/1", "a"));
    let shared = SharedEvals::default();
    let prefix = Query::KvList { prefix: "lb/web/".to_owned() };
    let key = postcard::to_allocvec(&prefix).expect("encode");

    let first = shared.eval(&key, &prefix, &state);
    for _ in 0..1000 {
        assert_eq!(shared.eval(&key, &prefix, &state), first);
    }
    assert_eq!(shared.evaluations(), 1);

    // Another query is its own entry.
    let other = Query::KvList { prefix: "lb/".to_owned() };
    let other_key = postcard::to_allocvec(&other).expect("encode");
    shared.eval(&other_key, &other, &state);
    assert_eq!(shared.evaluations(), 2);

    // Any apply, even to an unrelated key, moves the state: the next answer is computed afresh and is exact.
    state.apply(2, &set("lb/web/2", "b"));
    let after = shared.eval(&key, &prefix, &state);
    assert_eq!(shared.evaluations(), 3);
    assert_eq!(after, prefix.eval(&state));
    assert_ne!(after, first);
    let Answer::Entries(entries) = after.0 else { panic!("a KV list answer, got {after:?}") };
    assert_eq!(entries.len(), 2);
}

#[test]
fn the_table_stays_bounded() {
    let mut state = State::new();
    state.apply(1, &set("k", "v"));
    let shared = SharedEvals::default();
    for n in 0..(super::MAX_ENTRIES + 10) {
        let query = Query::KvGet { key: format!("k{n}") };
        shared.eval(&postcard::to_allocvec(&query).expect("encode"), &query, &state);
    }
    let len = shared.entries.lock().expect("lock").len();
    assert!(len <= super::MAX_ENTRIES, "{len} entries");
}
