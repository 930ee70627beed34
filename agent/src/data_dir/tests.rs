//! Tests of the data-dir format marker on real directories.

use std::path::Path;

use super::{FORMAT, MARKER, prepare};

fn marker(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(MARKER)).expect("the marker")
}

#[test]
fn a_new_or_empty_data_dir_is_marked_with_the_current_format() {
    let parent = tempfile::tempdir().unwrap();
    let new = parent.path().join("data");
    assert_eq!(prepare(&new).unwrap(), None);
    assert_eq!(marker(&new), format!("{FORMAT}\n"));

    let empty = tempfile::tempdir().unwrap();
    assert_eq!(prepare(empty.path()).unwrap(), None);
    assert_eq!(marker(empty.path()), format!("{FORMAT}\n"));
    // A marked dir is read as it is on the next start.
    assert_eq!(prepare(empty.path()).unwrap(), Some(FORMAT));
    assert!(!empty.path().join(format!("{MARKER}.tmp")).exists());
}

#[test]
fn the_layout_before_the_marker_is_format_1_and_is_upgraded_with_its_files_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let files = [("node-id", "0b3e4a36-8d3c-4b7e-9a59-9c1f0a6e2b11"), ("raft-log.redb", "log"), ("local.json", "{}")];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::create_dir(dir.path().join("snapshots")).unwrap();
    std::fs::create_dir_all(dir.path().join("serf")).unwrap();
    std::fs::write(dir.path().join("jobs.json.tmp"), "partial").unwrap();

    assert_eq!(prepare(dir.path()).unwrap(), Some(1));
    assert_eq!(marker(dir.path()), format!("{FORMAT}\n"));
    for (name, text) in files {
        assert_eq!(std::fs::read_to_string(dir.path().join(name)).unwrap(), text, "{name}");
    }
}

#[test]
fn a_newer_format_is_refused_naming_both_versions_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MARKER), format!("{}\n", FORMAT + 1)).unwrap();
    let err = format!("{:#}", prepare(dir.path()).unwrap_err());
    let expected =
        format!("has format {}, written by a newer roster; this roster reads formats up to {FORMAT}", FORMAT + 1);
    assert!(err.contains(&expected), "{err}");
    assert_eq!(marker(dir.path()), format!("{}\n", FORMAT + 1));
}

#[test]
fn an_unmarked_dir_with_foreign_contents_or_a_garbled_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node-id"), "x").unwrap();
    std::fs::create_dir_all(dir.path().join("raft")).unwrap();
    // A Consul data dir: roster cannot read its Raft files.
    std::fs::write(dir.path().join("checkpoint-signature"), "x").unwrap();
    std::fs::write(dir.path().join("raft").join("raft.db"), "x").unwrap();
    let err = format!("{:#}", prepare(dir.path()).unwrap_err());
    assert!(err.contains("has no roster-data-format and holds \"checkpoint-signature\""), "{err}");
    assert!(!dir.path().join(MARKER).exists(), "nothing written");

    let garbled = tempfile::tempdir().unwrap();
    for text in ["two\n", "0\n", ""] {
        std::fs::write(garbled.path().join(MARKER), text).unwrap();
        let err = format!("{:#}", prepare(garbled.path()).unwrap_err());
        assert!(err.contains("not a data-dir format number"), "{text:?}: {err}");
    }
}
