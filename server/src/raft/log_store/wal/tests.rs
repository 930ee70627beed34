//! Tests of copying a log's records into a compaction's new file: whole, and stopped when the log closes.

use super::*;

/// A log file beside `dir/name` holding `entries` and nothing else.
fn written(dir: &Path, name: &str, entries: Vec<(u64, Vec<u8>)>) -> Written {
    let fresh = Fresh { salt: new_salt(), vote: None, committed: None, purged: None };
    write_beside(&dir.join(name), &fresh, entries.into_iter().map(Ok)).unwrap()
}

#[test]
fn copied_records_read_the_same_and_a_cancelled_copy_stops_before_writing_its_next_four_mib() {
    let dir = tempfile::tempdir().unwrap();
    // Ten entries of 1 MiB: a copy of them writes in more than two steps.
    let entries: Vec<(u64, Vec<u8>)> = (1..=10u8).map(|n| (u64::from(n), vec![n; 1 << 20])).collect();
    let old = written(dir.path(), "old.wal", entries.clone());
    let records = (HEADER_LEN, old.end);

    let mut stopped = written(dir.path(), "stopped.wal", Vec::new());
    let empty_end = stopped.end;
    let closed = AtomicBool::new(true);
    let err = stopped.copy_records(&old.file, old.salt, records, Some(&closed)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    assert_eq!(stopped.end, empty_end, "a copy cancelled before it started wrote nothing");

    let mut copy = written(dir.path(), "copy.wal", Vec::new());
    let open = AtomicBool::new(false);
    let moved = copy.copy_records(&old.file, old.salt, records, Some(&open)).unwrap();
    assert_eq!((moved.from, moved.to, moved.at), (HEADER_LEN, old.end, copy.end - (old.end - HEADER_LEN)));
    for (index, value) in &entries {
        let was = old.loc_of(*index).unwrap();
        let now = Loc { offset: was.offset - moved.from + moved.at, len: was.len };
        assert_eq!(read_at(&copy.file, now).unwrap(), read_at(&old.file, was).unwrap(), "entry {index}");
        assert!(read_at(&copy.file, now).unwrap().ends_with(value));
    }
}
