//! Tests of the lock key's name and of reading who holds it.

use serde_json::json;

use super::key::{Holder, LOCK_FLAG_VALUE, holder, lock_key};

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
