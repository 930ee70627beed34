//! The private state directory: created 0700, refused when a symlink or someone else's or writable directory holds
//! its path, tightened when it is only readable.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use super::ensure_private_dir;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

#[test]
fn a_new_directory_is_created_with_mode_0700() {
    let parent = tempfile::tempdir().expect("dir");
    let dir = parent.path().join("exec");
    ensure_private_dir(&dir).expect("created");
    assert_eq!(mode(&dir), 0o700);
    ensure_private_dir(&dir).expect("an existing private directory is accepted");
}

#[test]
fn a_symlink_at_the_path_is_refused_and_its_target_left_alone() {
    let parent = tempfile::tempdir().expect("dir");
    let target = parent.path().join("elsewhere");
    std::fs::create_dir(&target).expect("target");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = parent.path().join("exec");
    std::os::unix::fs::symlink(&target, &dir).expect("symlink");
    let err = ensure_private_dir(&dir).expect_err("a symlink is refused");
    assert!(err.to_string().ends_with("is a symlink, not a directory"), "{err}");
    assert_eq!(mode(&target), 0o755, "the symlink's target is untouched");
}

#[test]
fn a_dangling_symlink_at_the_path_is_refused_and_nothing_is_created() {
    let parent = tempfile::tempdir().expect("dir");
    let target = parent.path().join("not-yet");
    let dir = parent.path().join("exec");
    std::os::unix::fs::symlink(&target, &dir).expect("symlink");
    let err = ensure_private_dir(&dir).expect_err("a dangling symlink is refused");
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(!target.exists(), "mkdir did not follow the link");
}

#[test]
fn a_group_or_world_writable_directory_is_refused() {
    let parent = tempfile::tempdir().expect("dir");
    let dir = parent.path().join("exec");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = ensure_private_dir(&dir).expect_err("refused");
    assert!(err.to_string().ends_with("is writable by group or others (mode 777)"), "{err}");
}

#[test]
fn a_readable_directory_from_an_older_roster_is_tightened() {
    let parent = tempfile::tempdir().expect("dir");
    let dir = parent.path().join("exec");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    ensure_private_dir(&dir).expect("accepted");
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn a_file_at_the_path_is_refused() {
    let parent = tempfile::tempdir().expect("dir");
    let dir = parent.path().join("exec");
    std::fs::write(&dir, "").expect("file");
    let err = ensure_private_dir(&dir).expect_err("refused");
    assert!(err.to_string().ends_with("exists and is not a directory"), "{err}");
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping the ownership refusal: only root can give a directory away");
        return;
    }
    let parent = tempfile::tempdir().expect("dir");
    let dir = parent.path().join("exec");
    std::fs::create_dir(&dir).expect("dir");
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
    let err = ensure_private_dir(&dir).expect_err("refused");
    assert!(err.to_string().contains("is owned by uid 65534"), "{err}");
}
