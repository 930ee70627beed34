//! Tests of the tombstone reap and the bounded index maps (`state/graveyard.rs`): what a reap removes and keeps,
//! that no key, prefix, service or node index goes back when its entry is reaped or folded, and that the floors
//! survive a snapshot while an older snapshot reads with none.

use proptest::prelude::*;

use super::*;
use crate::query::{Answer, Query};

fn delete(key: &str) -> Command {
    Command::KvDelete { key: key.into() }
}

fn reap(reap_index: u64) -> Command {
    Command::TombstoneReap { reap_index, now_ms: 0 }
}

fn deregister(node: &str, service_id: Option<&str>) -> Command {
    Command::Deregister { node: node.into(), service_id: service_id.map(String::from), check_id: None }
}

#[test]
fn a_reap_removes_the_tombstones_up_to_its_index_and_keeps_later_ones() {
    // Index: 1..=4 writes, 5 deletes a/1, 6 deletes a/2, 7 deletes b, 8 reaps up to 6.
    let (mut state, _) = run(&[
        set("a/1", "x"),
        set("a/2", "x"),
        set("b", "x"),
        set("c", "x"),
        delete("a/1"),
        delete("a/2"),
        delete("b"),
    ]);
    assert_eq!(state.tombstones(), crate::Tombstones { count: 3, oldest_index: Some(5) });
    let (result, changes) = state.apply(8, &reap(6));
    assert_eq!(result, CommandResult::Bool(true));
    assert!(changes.is_empty(), "a reap changes no answer, so it wakes no watcher: {changes:?}");
    assert_eq!(state.kv_tombstones.keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(state.tombstones(), crate::Tombstones { count: 1, oldest_index: Some(7) });
    assert_eq!(state.reaped_index(), 6);
    // A reap past its own entry's index reaps no further than that index.
    state.apply(9, &reap(1_000));
    assert!(state.kv_tombstones.is_empty());
    assert_eq!(state.reaped_index(), 7);
    assert_eq!(state.kv_get("c").0.map(|e| e.modify_index), Some(4), "live keys are untouched");
}

#[test]
fn reaped_keys_and_prefixes_keep_their_index_and_a_blocking_query_sees_no_older_one() {
    let (mut state, _) = run(&[set("web/a", "1"), set("web/b", "1"), set("other", "1"), delete("web/b")]);
    let list = Query::KvList { prefix: "web/".into() };
    let get = Query::KvGet { key: "web/b".into() };
    let (list_answer, list_index) = list.eval(&state);
    let (_, get_index) = get.eval(&state);
    assert_eq!((list_index, get_index), (4, 4), "the deletion is the prefix's and the key's last change");
    state.apply(5, &reap(4));
    assert!(state.kv_tombstones.is_empty());
    // A watcher that saw index 4 and asks again must not be handed an older index (it would read a reset).
    let (after_answer, after_index) = list.eval(&state);
    assert_eq!(after_answer, list_answer);
    assert_eq!(after_index, 4, "the reap floor holds the prefix at its deletion index, not web/a's 1");
    assert_eq!(get.eval(&state), (Answer::Entry(None), 4));
    // A key never written, and a prefix with nothing under it, report the floor too, so they never go back either.
    assert_eq!(state.kv_get("never").1, 4);
    // A write after the reap moves the prefix past the floor as usual.
    state.apply(6, &set("web/c", "1"));
    assert_eq!(list.eval(&state).1, 6);
}

#[test]
fn removed_services_and_nodes_leave_no_index_entry_and_their_index_does_not_go_back() {
    let mut cmds = Vec::new();
    for n in 0..10 {
        for s in 0..5 {
            cmds.push(register(
                &format!("n{n}"),
                Some(service(&format!("svc{s}-{n}"), &format!("svc{s}"), &[])),
                vec![],
            ));
        }
    }
    let (mut state, _) = run(&cmds);
    assert_eq!((state.service_index.len(), state.node_index.len()), (5, 10));
    let mut index = state.last_index();
    let mut seen = state.service_health("svc0", &[], false).1;
    for n in 0..10 {
        index += 1;
        state.apply(index, &deregister(&format!("n{n}"), None));
        let now = state.service_health("svc0", &[], false).1;
        assert!(now >= seen, "svc0 went back from {seen} to {now}");
        seen = now;
    }
    assert!(state.service_index.is_empty() && state.node_index.is_empty(), "only live names are kept");
    assert_eq!(seen, index, "the last removal is the index a watcher of svc0 sees");
    assert_eq!((state.service_index_floor, state.node_index_floor), (index, index));
    // Registering a name again gives it an entry of its own, above the floor.
    state.apply(index + 1, &register("n0", Some(service("svc0-0", "svc0", &[])), vec![]));
    assert_eq!(state.service_health("svc0", &[], false).1, index + 1);
    assert_eq!(state.service_index.len(), 1);
}

#[test]
fn a_reap_forgets_lock_delays_that_ran_out_at_its_clock() {
    let mut state = State::new();
    state.lock_delays.insert("ended".into(), session::LockDelay { start_ms: Some(1_000), delay_ms: 500 });
    state.lock_delays.insert("running".into(), session::LockDelay { start_ms: Some(1_000), delay_ms: 15_000 });
    state.lock_delays.insert("unanchored".into(), session::LockDelay { start_ms: None, delay_ms: 500 });
    state.apply(1, &Command::TombstoneReap { reap_index: 0, now_ms: 2_000 });
    assert_eq!(state.lock_delays.keys().collect::<Vec<_>>(), ["running", "unanchored"]);
    state.apply(2, &Command::TombstoneReap { reap_index: 0, now_ms: 20_000 });
    assert!(state.lock_delays.is_empty(), "the first reap anchored the unanchored delay, the second saw it end");
}

#[test]
fn floors_survive_a_snapshot_and_a_version_10_snapshot_reads_with_none() {
    let (mut state, _) = run(&[set("a", "1"), delete("a"), register("n1", Some(service("w", "web", &[])), vec![])]);
    state.apply(4, &deregister("n1", None));
    state.apply(5, &reap(4));
    let bytes = state.encode_snapshot();
    assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), 11);
    let decoded = State::decode_snapshot(&bytes).expect("decodes");
    assert_eq!(decoded, state);
    assert_eq!((decoded.kv_reaped_index, decoded.service_index_floor, decoded.node_index_floor), (2, 4, 4));

    // A version-10 snapshot is version 11's body without the floors (three varints), and reads as nothing reaped.
    let floors_tail = postcard::to_allocvec(&(2u64, 4u64, 4u64)).expect("encodes");
    let mut v10 = bytes;
    v10[7] = 10;
    v10.truncate(v10.len() - floors_tail.len());
    let old = State::decode_snapshot(&v10).expect("version 10 decodes");
    assert_eq!((old.kv_reaped_index, old.service_index_floor, old.node_index_floor), (0, 0, 0));
    assert_eq!(State { kv_reaped_index: 2, service_index_floor: 4, node_index_floor: 4, ..old }, state);
}

#[test]
fn the_first_reap_folds_what_a_state_from_before_folding_still_holds() {
    // A state as version 10 left it: index entries of a service and a node long gone.
    let mut state = State::new();
    state.apply(1, &set("k", "v"));
    state.service_index.insert("gone".into(), 7);
    state.node_index.insert("gone-node".into(), 9);
    let before = state.service_health("gone", &[], false).1;
    state.apply(10, &reap(0));
    assert!(state.service_index.is_empty() && state.node_index.is_empty());
    assert_eq!(state.service_health("gone", &[], false).1, before);
}

proptest! {
    #[test]
    fn a_reap_keeps_exactly_the_tombstones_after_its_index_and_no_index_goes_back(
        cmds in prop::collection::vec(arb_command(), 1..80),
        reaps in prop::collection::vec(0..100u64, 1..4),
    ) {
        let keys = ["a", "a/b", "a/c", "b", "b/a", "ab", ""];
        let mut state = State::new();
        let mut index = 1;
        let mut reaps = reaps.into_iter();
        for (i, cmd) in cmds.iter().enumerate() {
            let before: Vec<(u64, u64)> = keys.iter().map(|k| (state.kv_get(k).1, state.kv_list(k).1)).collect();
            index += 1;
            // Every tenth command, a reap at an arbitrary (possibly future) index instead.
            let reap_index = if i % 10 == 9 { reaps.next() } else { None };
            let kept: Vec<(String, u64)> = match reap_index {
                Some(r) => state.kv_tombstones.iter().filter(|(_, d)| **d > r.min(index)).map(|(k, d)| (k.clone(), *d)).collect(),
                None => Vec::new(),
            };
            match reap_index {
                Some(r) => { state.apply(index, &reap(r)); }
                None => { state.apply(index, cmd); }
            }
            if reap_index.is_some() {
                let now: Vec<(String, u64)> = state.kv_tombstones.iter().map(|(k, d)| (k.clone(), *d)).collect();
                prop_assert_eq!(now, kept);
            }
            for (key, (get_before, list_before)) in keys.iter().zip(before) {
                prop_assert!(state.kv_get(key).1 >= get_before, "kv_get({:?}) went back", key);
                prop_assert!(state.kv_list(key).1 >= list_before, "kv_list({:?}) went back", key);
            }
        }
        // The floors ride in the snapshot: a restored replica answers with the same indexes.
        let decoded = State::decode_snapshot(&state.encode_snapshot()).expect("decodes");
        for key in keys {
            prop_assert_eq!(decoded.kv_list(key).1, state.kv_list(key).1);
        }
    }
}
