//! Tests of [`Root::resolve`] on a temporary directory standing in for a rootfs: planted symlinks (absolute,
//! climbing, dangling, looping) and `..` must all end inside it, and what is made must be made there. They need no
//! root: `openat2` and the `*at` calls work for any user.

use std::path::Path;

use super::{Create, Root, proc_path};

/// Resolves `path` in a rootfs holding `links` (link path → link text) and the host directory `/h` (a directory
/// outside the rootfs, `HOST` in link texts), and returns where it ended: `rootfs:<path>`, `host:<path>` or the
/// error, plus what the host directory then holds.
fn resolve(links: &[(&str, &str)], path: &str, create: Create) -> String {
    let rootfs = tempfile::tempdir().expect("rootfs");
    let host = tempfile::tempdir().expect("host dir");
    std::fs::create_dir(rootfs.path().join("dir")).expect("dir");
    std::fs::write(rootfs.path().join("dir/file"), "").expect("file");
    std::fs::write(host.path().join("marker"), "").expect("marker");
    for (link, text) in links {
        let text = text.replace("HOST", &host.path().display().to_string());
        std::os::unix::fs::symlink(text, rootfs.path().join(link)).expect("link");
    }
    let root = Root::open(rootfs.path()).expect("open root");
    let ended = match root.resolve(Path::new(path), create) {
        Ok(fd) => {
            let target = std::fs::read_link(proc_path(&fd)).expect("fd link");
            match target.strip_prefix(rootfs.path()) {
                Ok(inside) => format!("rootfs:/{}", inside.display()),
                Err(_) => format!("host:{}", target.display()),
            }
        }
        Err(err) => format!("error: {err}"),
    };
    let mut host_names: Vec<String> = std::fs::read_dir(host.path())
        .expect("host dir")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    host_names.sort();
    format!("{ended}; host dir holds {}", host_names.join(","))
}

fn check(links: &[(&str, &str)], path: &str, create: Create, expect: &str) {
    assert_eq!(resolve(links, path, create), expect, "{path}");
}

#[test]
fn existing_paths_resolve_in_place() {
    check(&[], "/dir", Create::Nothing, "rootfs:/dir; host dir holds marker");
    check(&[], "/dir/file", Create::File, "rootfs:/dir/file; host dir holds marker");
    check(&[], "/", Create::Nothing, "rootfs:/; host dir holds marker");
}

#[test]
fn missing_paths_are_made_inside_or_refused() {
    check(&[], "/a/b/c", Create::Dir, "rootfs:/a/b/c; host dir holds marker");
    check(&[], "/etc/resolv.conf", Create::File, "rootfs:/etc/resolv.conf; host dir holds marker");
    check(&[], "/a/b", Create::Nothing, "error: No such file or directory (os error 2); host dir holds marker");
}

#[test]
fn dot_dot_stops_at_the_rootfs() {
    check(&[], "/../../../dir/../x", Create::Dir, "rootfs:/x; host dir holds marker");
}

#[test]
fn absolute_symlinks_resolve_inside_the_rootfs() {
    // The link names an existing host directory; inside the rootfs that path does not exist yet, so it is made.
    let links = [("evil", "HOST")];
    let made = resolve(&links, "/evil", Create::Dir);
    assert!(made.starts_with("rootfs:/") && made.ends_with("; host dir holds marker"), "{made}");
    let below = resolve(&links, "/evil/sub/file", Create::File);
    assert!(below.starts_with("rootfs:/") && below.contains("/sub/file;"), "{below}");
    assert!(below.ends_with("; host dir holds marker"), "{below}");
}

#[test]
fn climbing_symlinks_resolve_inside_the_rootfs() {
    let links = [("climb", "../../../../../../../../../../HOST"), ("up", "dir/../../..")];
    let climbed = resolve(&links, "/climb/sub", Create::Dir);
    assert!(climbed.starts_with("rootfs:/") && climbed.ends_with("/sub; host dir holds marker"), "{climbed}");
    check(&links, "/up/dir/file", Create::Nothing, "rootfs:/dir/file; host dir holds marker");
}

#[test]
fn dangling_and_chained_symlinks_are_followed_and_made_inside() {
    let links = [("run", "/var/run-dir"), ("var-link", "run"), ("dev-null", "/dir/file")];
    check(&links, "/var-link/sock", Create::File, "rootfs:/var/run-dir/sock; host dir holds marker");
    check(&links, "/dev-null", Create::Nothing, "rootfs:/dir/file; host dir holds marker");
}

#[test]
fn symlink_loops_and_files_in_the_way_are_errors() {
    let links = [("a", "b"), ("b", "a")];
    check(&links, "/a/x", Create::Dir, "error: Too many levels of symbolic links (os error 40); host dir holds marker");
    check(&[], "/dir/file/x", Create::Dir, "error: Not a directory (os error 20); host dir holds marker");
}
