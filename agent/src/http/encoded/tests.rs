//! The stored answers' keys, stamps and bounds.

use super::*;

fn entry(at: u64, len: usize) -> Entry {
    Entry { at, index: at, body: Bytes::from(vec![b'x'; len]), filtered: false }
}

#[test]
fn the_key_leaves_out_only_how_long_to_block() {
    let plain = key("", "/v1/health/service/web", Some("passing"));
    assert_eq!(plain, key("", "/v1/health/service/web", Some("index=7&passing&wait=5s")));
    assert_eq!(plain, key("", "/v1/health/service/web", Some("passing&index")));
    assert_ne!(plain, key("", "/v1/health/service/web", None));
    assert_ne!(plain, key("", "/v1/health/service/web", Some("passing&tag=a")));
    assert_ne!(plain, key("", "/v1/health/service/api", Some("passing")));
    // Parameters whose names merely start like the blocking ones are part of the question.
    assert_ne!(plain, key("", "/v1/health/service/web", Some("passing&indexes=1")));
}

#[test]
fn each_caller_has_its_own_answers() {
    let (a, b) = (key("secret-a", "/v1/catalog/service/web", None), key("secret-b", "/v1/catalog/service/web", None));
    assert_ne!(a, b);
    // The separator keeps a secret from running into the path.
    assert_ne!(key("a", "/b", None), key("a/", "b", None));
}

#[test]
fn an_entry_answers_only_at_the_state_it_was_computed_on() {
    let cache = Encoded::default();
    cache.put("k".into(), entry(10, 3));
    assert_eq!(cache.get("k", 10).map(|e| e.body.len()), Some(3));
    assert!(cache.get("k", 11).is_none(), "a write moved the state: the stored answer may be wrong");
    assert!(cache.get("other", 10).is_none());
    cache.put("k".into(), entry(11, 5));
    assert_eq!(cache.get("k", 11).map(|e| e.index), Some(11));
    assert_eq!(cache.len(), (1, 5), "a replaced entry's bytes are no longer counted");
}

#[test]
fn making_room_drops_older_states_first() {
    let cache = Encoded::default();
    for i in 0..MAX_ENTRIES - 1 {
        cache.put(format!("old{i}"), entry(1, 1));
    }
    cache.put("current".into(), entry(2, 1));
    assert_eq!(cache.len().0, MAX_ENTRIES);
    cache.put("new".into(), entry(2, 1));
    assert_eq!(cache.len(), (2, 2), "only the entries of the current state are kept");
    assert!(cache.get("current", 2).is_some() && cache.get("new", 2).is_some());
}

#[test]
fn full_of_the_current_state_starts_over() {
    let cache = Encoded::default();
    for i in 0..MAX_ENTRIES {
        cache.put(format!("k{i}"), entry(5, 1));
    }
    cache.put("one more".into(), entry(5, 1));
    assert_eq!(cache.len(), (1, 1));
}

#[test]
fn bodies_are_bounded_one_by_one_and_altogether() {
    let cache = Encoded::default();
    cache.put("huge".into(), entry(1, MAX_BODY + 1));
    assert_eq!(cache.len(), (0, 0), "a body over the limit is not kept");
    let per = MAX_BODY;
    for i in 0..MAX_BYTES / per {
        cache.put(format!("k{i}"), entry(1, per));
    }
    assert_eq!(cache.len(), (MAX_BYTES / per, MAX_BYTES));
    cache.put("over".into(), entry(1, 1));
    let (entries, bytes) = cache.len();
    assert!(bytes <= MAX_BYTES && entries == 1, "{entries} entries, {bytes} bytes");
}

/// The size of the future an async handler of three extractors returns.
fn handler_future_size<A, B, C, F>(_handler: impl Fn(A, B, C) -> F) -> usize {
    std::mem::size_of::<F>()
}

/// The same for a handler of two.
fn handler2_future_size<A, B, F>(_handler: impl Fn(A, B) -> F) -> usize {
    std::mem::size_of::<F>()
}

/// A parked watcher holds its handler's whole future for as long as it waits, so what that future carries beside
/// the wait is paid per watcher: it once held a server's full read barrier, a client's failover call, the paths of
/// `?cached`, `?near` and storing an answer, and the computation twice (a future argument that is awaited takes two
/// slots): 16 KB for a health watch in all, 2.5 KB since. The bounds leave room for the compiler, not for another
/// such branch.
#[test]
fn a_parked_watchers_handler_carries_no_unused_kilobytes() {
    let health = handler_future_size(super::super::health::service);
    let catalog = handler_future_size(super::super::catalog::service);
    let kv = handler2_future_size(super::super::kv::get);
    assert!(health <= 3072, "a health watcher's handler future is {health} bytes");
    assert!(catalog <= 3072, "a catalog watcher's handler future is {catalog} bytes");
    assert!(kv <= 2304, "a KV watcher's handler future is {kv} bytes");
}
