//! The exec-driver tier: whether this host can run exec tasks (root, for namespaces and cgroups, and a static
//! busybox to build root filesystems from), and busybox root filesystems for their tasks.

use std::path::Path;

/// Whether exec tasks can run here; otherwise prints why `test` is skipped, or panics under
/// `ROSTER_REQUIRE_EXEC=1` (CI), where a skip would hide a missing setup.
pub fn exec_or_skip(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    let busybox = Path::new("/bin/busybox").exists();
    if root && busybox {
        return true;
    }
    let reason = if root { "busybox-static is not installed" } else { "not running as root" };
    if std::env::var("ROSTER_REQUIRE_EXEC").as_deref() == Ok("1") {
        panic!("ROSTER_REQUIRE_EXEC=1 but {reason}");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

/// Makes `dir` a root filesystem holding `/bin/busybox` and each of `applets` as a link to it.
pub fn busybox_rootfs(dir: &Path, applets: &[&str]) {
    std::fs::create_dir_all(dir.join("bin")).expect("bin");
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("copy busybox");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).expect("symlink");
    }
}
