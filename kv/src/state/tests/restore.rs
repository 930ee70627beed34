//! Tests of snapshot restore through the log: staging survives snapshots, a commit replaces everything, and every
//! refusal leaves the state byte-identical.

use sha2::{Digest, Sha256};

use super::*;
use crate::state::restore::{MAX_RESTORE_CHUNK, MAX_RESTORE_LEN};

fn begin(id: &str, bytes: &[u8]) -> Command {
    Command::RestoreBegin { id: id.into(), len: bytes.len() as u64, sha256: Sha256::digest(bytes).into() }
}

/// The commands that restore `bytes` under `id`, in chunks of `chunk` bytes.
fn restore(id: &str, bytes: &[u8], chunk: usize) -> Vec<Command> {
    let mut cmds = vec![begin(id, bytes)];
    for (i, part) in bytes.chunks(chunk).enumerate() {
        cmds.push(Command::RestoreChunk { id: id.into(), offset: (i * chunk) as u64, bytes: part.to_vec() });
    }
    cmds.push(Command::RestoreCommit { id: id.into() });
    cmds
}

/// A state with a bit of everything, to restore from.
fn source() -> State {
    run(&[
        set("app/a", "from-snapshot"),
        set("app/b", "2"),
        register("n1", Some(service("web1", "web", &["v1"])), vec![check("c1", "web1", CheckStatus::Passing)]),
        session_create("s1", "n1", &[]),
    ])
    .0
}

/// Applies `cmds` to `state` from index `start` on, asserting each is accepted.
fn apply_all(state: &mut State, start: u64, cmds: &[Command]) -> Changes {
    let mut all = Changes::default();
    for (i, cmd) in cmds.iter().enumerate() {
        let (result, changes) = state.apply(start + i as u64, cmd);
        assert_eq!(result, CommandResult::Bool(true), "{cmd:?}");
        all.merge(changes);
    }
    all
}

#[test]
fn commit_replaces_every_table_and_moves_every_index_to_the_commit() {
    let snapshot = source();
    let bytes = snapshot.encode_snapshot();
    let (mut state, _) = run(&[set("app/a", "live"), set("other", "x"), register("n2", None, Vec::new())]);
    let cmds = restore("r1", &bytes, 7);
    let changes = apply_all(&mut state, 100, &cmds);
    let commit_index = 100 + cmds.len() as u64 - 1;
    assert!(changes.restored && changes.touches(&WatchKey::Key("unrelated".into())));
    assert_eq!(state.last_index(), commit_index);
    assert_eq!(state.kv_get("app/a").0.expect("restored").value, b"from-snapshot");
    assert!(state.kv_get("other").0.is_none() && state.node("n2").0.is_none());
    assert!(state.session("s1").is_some());
    // Records keep their own indexes; the tables' indexes move forward to the commit.
    assert_eq!(state.kv_get("app/a").0.expect("restored").modify_index, 1);
    for table in Table::ALL {
        assert_eq!(state.table(table), commit_index, "{table:?}");
    }
    assert!(state.restore_progress().is_none());
    // Apart from the indexes, exactly the snapshot's data.
    let mut expected = snapshot;
    expected.index = commit_index;
    for table in Table::ALL {
        expected.table_index.insert(table, commit_index);
    }
    assert_eq!(state, expected);
}

#[test]
fn a_staging_restore_travels_in_snapshots_and_finishes_on_the_decoded_state() {
    let bytes = source().encode_snapshot();
    let cmds = restore("r1", &bytes, 16);
    let (mut a, _) = run(&[set("k", "v")]);
    let half = cmds.len() / 2;
    apply_all(&mut a, 10, &cmds[..half]);
    let mut b = State::decode_snapshot(&a.encode_snapshot()).expect("decodes");
    assert_eq!(b, a);
    assert_eq!(b.restore_progress(), a.restore_progress());
    let start = 10 + half as u64;
    apply_all(&mut a, start, &cmds[half..]);
    apply_all(&mut b, start, &cmds[half..]);
    assert_eq!(a.encode_snapshot(), b.encode_snapshot());
    assert_eq!(a.kv_get("app/a").0.expect("restored").value, b"from-snapshot");
}

/// Applies `cmd` and asserts it is rejected having changed nothing but the applied index.
fn assert_refused(state: &State, index: u64, cmd: &Command, why: &str) {
    let mut after = state.clone();
    let (result, changes) = after.apply(index, cmd);
    match result {
        CommandResult::Rejected(text) => assert!(text.contains(why), "{text:?} should say {why:?}"),
        other => panic!("{cmd:?} applied: {other:?}"),
    }
    assert!(changes.is_empty());
    after.index = state.index;
    assert_eq!(after.encode_snapshot(), state.encode_snapshot());
}

#[test]
fn refusals_change_nothing() {
    let bytes = source().encode_snapshot();
    let (mut state, _) = run(&[set("k", "v")]);
    assert_refused(&state, 5, &Command::RestoreCommit { id: "nope".into() }, "no snapshot restore nope");
    assert_refused(&state, 5, &Command::RestoreChunk { id: "nope".into(), offset: 0, bytes: vec![1] }, "nope");
    let too_big = Command::RestoreBegin { id: "big".into(), len: MAX_RESTORE_LEN + 1, sha256: [0; 32] };
    assert_refused(&state, 5, &too_big, "too large");

    apply_all(&mut state, 10, &[begin("r1", &bytes)]);
    let chunk = |offset: u64, part: &[u8]| Command::RestoreChunk { id: "r1".into(), offset, bytes: part.to_vec() };
    assert_refused(&state, 11, &chunk(1, &bytes[..1]), "expected 0");
    assert_refused(&state, 11, &chunk(0, &vec![0; MAX_RESTORE_CHUNK + 1]), "limit");
    let mut longer = bytes.clone();
    longer.push(0);
    assert_refused(&state, 11, &chunk(0, &longer), "passes the announced");
    assert_refused(&state, 11, &Command::RestoreCommit { id: "r1".into() }, "0 of");
    assert_refused(&state, 11, &Command::RestoreCommit { id: "r2".into() }, "no snapshot restore r2");

    // Every byte staged, but not the bytes announced: the digest decides.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    apply_all(&mut state, 11, &[chunk(0, &flipped)]);
    assert_refused(&state, 12, &Command::RestoreCommit { id: "r1".into() }, "do not match their SHA-256");

    // Bytes that match their digest but are no snapshot.
    let junk = b"not a snapshot".to_vec();
    let (mut other, _) = run(&[set("k", "v")]);
    apply_all(&mut other, 10, &[begin("j", &junk), Command::RestoreChunk { id: "j".into(), offset: 0, bytes: junk }]);
    assert_refused(&other, 12, &Command::RestoreCommit { id: "j".into() }, "snapshot format not recognised");
    assert_eq!(other.kv_get("k").0.expect("kept").value, b"v");
}

#[test]
fn a_new_begin_replaces_an_unfinished_staging() {
    let bytes = source().encode_snapshot();
    let (mut state, _) = run(&[]);
    apply_all(&mut state, 1, &restore("r1", &bytes, 64)[..2]);
    apply_all(&mut state, 3, &restore("r2", &bytes, 64));
    assert_eq!(state.kv_get("app/a").0.expect("restored").value, b"from-snapshot");
    assert_refused(&state, 50, &Command::RestoreChunk { id: "r1".into(), offset: 64, bytes: vec![0] }, "r1");
}

#[test]
fn a_commit_wakes_every_watcher() {
    let bytes = source().encode_snapshot();
    let mut watchers = crate::Watchers::default();
    watchers.register(vec![WatchKey::Key("app/a".into())], 1);
    watchers.register(vec![WatchKey::Prefix("zzz/".into())], 2);
    watchers.register(vec![WatchKey::Service("nothing".into())], 3);
    let (mut state, _) = run(&[]);
    let changes = apply_all(&mut state, 1, &restore("r1", &bytes, 1 << 20));
    let mut woken = watchers.fire(&changes);
    woken.sort();
    assert_eq!(woken, [1, 2, 3]);
    assert!(watchers.is_empty());
}

proptest! {
    /// Chunked in any size, a restore lands on the same state.
    #[test]
    fn any_chunk_size_restores_the_same(chunk in 1usize..4096) {
        let bytes = source().encode_snapshot();
        let (mut a, _) = run(&[set("x", "y")]);
        let (mut b, _) = run(&[set("x", "y")]);
        let ca = restore("r", &bytes, chunk);
        let cb = restore("r", &bytes, bytes.len());
        apply_all(&mut a, 10, &ca);
        apply_all(&mut b, 10 + ca.len() as u64 - cb.len() as u64, &cb);
        prop_assert_eq!(a.encode_snapshot(), b.encode_snapshot());
    }
}
