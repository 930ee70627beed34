//! Tests of the lock key's name and of reading who holds it, of the semaphore's decisions on
//! one read of its prefix, and of the command line.

use base64::Engine;
use serde_json::{Value, json};

use super::key::{Holder, LOCK_FLAG_VALUE, holder, lock_key};
use super::semaphore::{LockValue, SEMAPHORE_FLAG_VALUE, Semaphore, Step, next_step};

#[test]
fn lock_key_is_prefix_slash_dot_lock() {
    assert_eq!(lock_key("service/web/leader"), "service/web/leader/.lock");
    assert_eq!(lock_key("/jobs/"), "jobs/.lock");
}

#[test]
fn holder_reads_the_session_of_a_lock_key() {
    let held = |session: &str| json!([{"Key": "p/.lock", "Flags": LOCK_FLAG_VALUE, "Session": session}]);
    assert_eq!(holder(&held("mine"), "mine").expect("a lock key"), Holder::Us);
    assert_eq!(holder(&held("theirs"), "mine").expect("a lock key"), Holder::Other);
    let released = json!([{"Key": "p/.lock", "Flags": LOCK_FLAG_VALUE}]);
    assert_eq!(holder(&released, "mine").expect("a lock key"), Holder::Nobody);
    assert_eq!(holder(&json!([]), "mine").expect("no key"), Holder::Nobody);
}

#[test]
fn a_key_without_the_lock_flag_is_refused() {
    let foreign = json!([{"Key": "p/.lock", "Flags": 0, "Session": "x"}]);
    let err = holder(&foreign, "mine").expect_err("not a lock key");
    assert_eq!(err.to_string(), "Existing key does not match lock use");
}

/// The `LockArgs` of a command line given as words.
fn lock_args(words: &[&str]) -> super::LockArgs {
    match crate::cli::parse(words.iter().copied()) {
        Ok(crate::cli::Cli { command: crate::cli::Command::Lock(args) }) => args,
        Ok(other) => panic!("{words:?} is not a lock command: {other:?}"),
        Err(err) => panic!("{words:?} did not parse: {err}"),
    }
}

#[test]
fn consul_style_flags_and_the_command_words_parse() {
    let args = lock_args(&["roster", "lock", "-n=1", "-timeout", "5s", "-name=deploy", "jobs/deploy", "sh", "-c", "x"]);
    assert_eq!((args.n, args.timeout.as_str(), args.name.as_deref()), (1, "5s", Some("deploy")));
    assert_eq!(args.prefix, "jobs/deploy");
    assert_eq!(args.child, ["sh", "-c", "x"], "flags after the prefix belong to the command");
    assert!(args.shell, "a shell by default");
    assert_eq!(lock_args(&["roster", "lock", "p", "true"]).lock_delay, "15s");
}

#[test]
fn the_commands_own_long_flags_are_not_rewritten() {
    // `-name` and `-timeout` are roster flags too; after the prefix they belong to the command.
    let args = lock_args(&["roster", "lock", "-name", "deploy", "jobs", "tool", "-name", "x", "-timeout=3"]);
    assert_eq!(args.name.as_deref(), Some("deploy"));
    assert_eq!(args.child, ["tool", "-name", "x", "-timeout=3"]);
    let watch = match crate::cli::parse(["roster", "watch", "-type", "key", "-key", "k", "handler", "-key", "y"]) {
        Ok(crate::cli::Cli { command: crate::cli::Command::Watch(args) }) => args,
        other => panic!("not a watch command: {other:?}"),
    };
    assert_eq!(watch.child, ["handler", "-key", "y"]);
}

/// A semaphore of `limit` slots at `pool`.
fn pool(limit: u32) -> Semaphore {
    Semaphore { prefix: "pool".to_owned(), limit }
}

/// A recursive listing of `pool/`: `.lock` with `lock_json` at ModifyIndex 9 (absent when
/// `None`), plus a live contender key for each session in `live`.
fn listing(lock_json: Option<Value>, live: &[&str]) -> Value {
    let mut entries: Vec<Value> = live
        .iter()
        .map(|session| json!({"Key": format!("pool/{session}"), "Flags": SEMAPHORE_FLAG_VALUE, "Session": session, "Value": null}))
        .collect();
    if let Some(lock_json) = lock_json {
        let encoded = base64::engine::general_purpose::STANDARD.encode(lock_json.to_string());
        entries.push(json!({"Key": "pool/.lock", "Flags": SEMAPHORE_FLAG_VALUE, "Value": encoded, "ModifyIndex": 9}));
    }
    Value::Array(entries)
}

/// What session `me` does next in a `limit`-slot semaphore that shows `entries`.
fn step(limit: u32, entries: &Value, me: &str) -> anyhow::Result<Step> {
    next_step(pool(limit).view(entries)?, me, limit)
}

/// The holder set written by a `Take`.
fn taken_holders(step: &Step) -> (Vec<&str>, u64) {
    match step {
        Step::Take { value, cas } => (value.holders.keys().map(String::as_str).collect(), *cas),
        other => panic!("expected a Take, got {other:?}"),
    }
}

#[test]
fn the_first_contender_creates_the_lock_key_with_cas_zero() {
    let taken = step(2, &listing(None, &["me"]), "me").expect("a fresh semaphore");
    assert_eq!(taken_holders(&taken), (vec!["me"], 0), "cas=0 creates .lock only if nobody did");
    let Step::Take { value, .. } = taken else { unreachable!() };
    assert_eq!(serde_json::to_value(&value).expect("encodes"), json!({"Limit": 2, "Holders": {"me": true}}));
}

#[test]
fn a_free_slot_is_taken_with_cas_on_the_lock_keys_index() {
    let entries = listing(Some(json!({"Limit": 2, "Holders": {"a": true}})), &["a", "me"]);
    assert_eq!(taken_holders(&step(2, &entries, "me").expect("a free slot")), (vec!["a", "me"], 9));
}

#[test]
fn a_full_semaphore_waits_and_a_holder_sees_itself_held() {
    let entries = listing(Some(json!({"Limit": 2, "Holders": {"a": true, "b": true}})), &["a", "b", "me"]);
    assert_eq!(step(2, &entries, "me").expect("full"), Step::Wait);
    assert_eq!(step(2, &entries, "a").expect("held"), Step::Held);
}

#[test]
fn a_holder_without_a_live_contender_key_is_pruned() {
    // `b`'s session ended, and its contender key went with it (behavior delete).
    let entries = listing(Some(json!({"Limit": 2, "Holders": {"a": true, "b": true}})), &["a", "me"]);
    assert_eq!(taken_holders(&step(2, &entries, "me").expect("b's slot is free")), (vec!["a", "me"], 9));
}

#[test]
fn a_different_limit_is_a_conflict_naming_both() {
    let entries = listing(Some(json!({"Limit": 2, "Holders": {}})), &["me"]);
    let err = step(3, &entries, "me").expect_err("limits disagree");
    assert_eq!(err.to_string(), "semaphore limit conflict (lock: 2, local: 3)");
}

#[test]
fn a_lock_key_of_a_lock_is_refused_by_the_semaphore_and_vice_versa() {
    let lock = json!([{"Key": "pool/.lock", "Flags": LOCK_FLAG_VALUE, "Session": "x", "Value": null}]);
    let err = pool(2).view(&lock).expect_err("a lock's key");
    assert_eq!(err.to_string(), "Existing key does not match semaphore use");
    let semaphore = listing(Some(json!({"Limit": 2, "Holders": {}})), &[]);
    let err = holder(&semaphore, "mine").expect_err("a semaphore's key");
    assert_eq!(err.to_string(), "Existing key does not match lock use");
}

#[test]
fn go_encodings_of_the_lock_value_decode() {
    // Go writes a nil map as null, and its decoder matches field names case-insensitively.
    let null_holders = listing(Some(json!({"Limit": 3, "Holders": null})), &[]);
    assert_eq!(pool(3).view(&null_holders).expect("decodes").lock, LockValue { limit: 3, holders: Default::default() });
    let lower = listing(Some(json!({"limit": 3, "holders": {"a": true}})), &["a"]);
    assert_eq!(pool(3).view(&lower).expect("decodes").lock.holders.len(), 1);
    let garbage = json!([{"Key": "pool/.lock", "Flags": SEMAPHORE_FLAG_VALUE, "Value": "bm90IGpzb24="}]);
    assert!(pool(3).view(&garbage).expect_err("not JSON").to_string().contains("lock decoding failed"));
}

#[test]
fn contender_and_lock_keys_sit_under_the_prefix() {
    assert_eq!(pool(2).contender_key("0b5e"), "pool/0b5e");
    assert_eq!(pool(2).lock_key(), "pool/.lock");
}

#[test]
fn n_and_the_deprecated_try_flag_parse() {
    let args = lock_args(&["roster", "lock", "-n", "3", "-try=2s", "-verbose", "pool", "true"]);
    assert_eq!((args.n, args.timeout.as_str(), args.verbose), (3, "2s", true));
}
