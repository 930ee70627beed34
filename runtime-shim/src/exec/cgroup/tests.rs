//! Layout detection on mountinfo texts of the three layouts (taken from real hosts: Debian 12 on v2, a hybrid
//! systemd host, a v1-only container host), and the limit files each layout gets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{CgroupDirs, Kind, Layout, LimitWrite, detect, oom_kill_count};
use crate::spec::Resources;

const V2: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 28 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
";

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

const V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";

fn v1_map(entries: &[(&str, &str)]) -> BTreeMap<String, PathBuf> {
    entries.iter().map(|(controller, mount)| (controller.to_string(), PathBuf::from(mount))).collect()
}

#[test]
fn detect_v2_is_one_unified_hierarchy() {
    let layout = detect(V2).expect("v2");
    assert_eq!(layout, Layout { kind: Kind::V2, unified: Some("/sys/fs/cgroup".into()), v1: BTreeMap::new() });
}

#[test]
fn detect_hybrid_has_v1_controllers_and_the_unified_tree() {
    let layout = detect(HYBRID).expect("hybrid");
    let v1 = v1_map(&[
        ("cpu", "/sys/fs/cgroup/cpu,cpuacct"),
        ("memory", "/sys/fs/cgroup/memory"),
        ("pids", "/sys/fs/cgroup/pids"),
    ]);
    assert_eq!(layout, Layout { kind: Kind::Hybrid, unified: Some("/sys/fs/cgroup/unified".into()), v1 });
}

#[test]
fn detect_v1_has_controllers_only() {
    let layout = detect(V1).expect("v1");
    let v1 =
        v1_map(&[("cpu", "/sys/fs/cgroup/cpu"), ("memory", "/sys/fs/cgroup/memory"), ("pids", "/sys/fs/cgroup/pids")]);
    assert_eq!(layout, Layout { kind: Kind::V1, unified: None, v1 });
}

#[test]
fn detect_without_cgroups_is_an_error() {
    let text = "28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n";
    assert_eq!(detect(text), Err("no cgroup filesystem is mounted".to_string()));
}

#[test]
fn detect_unescapes_mount_points() {
    let text = "26 28 0:25 / /mnt/cgroup\\040two rw - cgroup2 cgroup2 rw\n";
    assert_eq!(detect(text).expect("v2").unified, Some(PathBuf::from("/mnt/cgroup two")));
}

#[test]
fn dirs_name_each_hierarchy_once() {
    let hybrid = detect(HYBRID).expect("hybrid").dirs("roster/n1/web.httpd");
    let expected: Vec<PathBuf> = [
        "/sys/fs/cgroup/unified/roster/n1/web.httpd",
        "/sys/fs/cgroup/cpu,cpuacct/roster/n1/web.httpd",
        "/sys/fs/cgroup/memory/roster/n1/web.httpd",
        "/sys/fs/cgroup/pids/roster/n1/web.httpd",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(hybrid.all(), expected);
    let v2 = detect(V2).expect("v2").dirs("roster/n1/web.httpd");
    assert_eq!(v2.all(), vec![PathBuf::from("/sys/fs/cgroup/roster/n1/web.httpd")]);
}

/// The limit writes as `(path, value, optional)` for compact expectations.
fn writes(dirs: &CgroupDirs, resources: Resources) -> Vec<(String, String, bool)> {
    let writes = dirs.limit_writes(&resources).expect("limits");
    writes
        .into_iter()
        .map(|LimitWrite { path, value, optional }| (path.display().to_string(), value, optional))
        .collect()
}

fn all_limits() -> Resources {
    Resources { memory_mb: Some(64), cpu: Some(250), pids: Some(32) }
}

#[test]
fn limits_on_v2_use_the_unified_files() {
    let dirs = detect(V2).expect("v2").dirs("roster/n1/web.httpd");
    let group = "/sys/fs/cgroup/roster/n1/web.httpd";
    let expected = vec![
        (format!("{group}/memory.max"), "67108864".to_string(), false),
        (format!("{group}/memory.swap.max"), "0".to_string(), true),
        (format!("{group}/pids.max"), "32".to_string(), false),
        (format!("{group}/cpu.max"), "25000 100000".to_string(), false),
    ];
    assert_eq!(writes(&dirs, all_limits()), expected);
}

#[test]
fn limits_on_v1_and_hybrid_use_each_controllers_files() {
    for text in [V1, HYBRID] {
        let dirs = detect(text).expect("layout").dirs("roster/n1/web.httpd");
        let cpu = dirs.v1["cpu"].join("roster/n1/web.httpd").display().to_string();
        let expected = vec![
            (
                "/sys/fs/cgroup/memory/roster/n1/web.httpd/memory.limit_in_bytes".to_string(),
                "67108864".to_string(),
                false,
            ),
            (
                "/sys/fs/cgroup/memory/roster/n1/web.httpd/memory.memsw.limit_in_bytes".to_string(),
                "67108864".to_string(),
                true,
            ),
            ("/sys/fs/cgroup/pids/roster/n1/web.httpd/pids.max".to_string(), "32".to_string(), false),
            (format!("{cpu}/cpu.cfs_period_us"), "100000".to_string(), false),
            (format!("{cpu}/cpu.cfs_quota_us"), "25000".to_string(), false),
        ];
        assert_eq!(writes(&dirs, all_limits()), expected);
    }
}

#[test]
fn limits_absent_write_nothing_and_tiny_cpu_gets_the_minimum_quota() {
    let dirs = detect(V2).expect("v2").dirs("g");
    assert!(writes(&dirs, Resources::default()).is_empty());
    let tiny = writes(&dirs, Resources { cpu: Some(1), ..Resources::default() });
    assert_eq!(tiny, vec![("/sys/fs/cgroup/g/cpu.max".to_string(), "1000 100000".to_string(), false)]);
}

#[test]
fn limits_without_their_controller_are_refused() {
    let layout = Layout { kind: Kind::V1, unified: None, v1: v1_map(&[("memory", "/sys/fs/cgroup/memory")]) };
    let err = layout.dirs("g").limit_writes(&Resources { pids: Some(8), ..Resources::default() });
    assert_eq!(err, Err("the pids controller is not mounted (v1 cgroup layout)".to_string()));
}

#[test]
fn oom_kill_count_reads_events_and_oom_control() {
    let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
    assert_eq!(oom_kill_count(events), 1);
    let control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
    assert_eq!(oom_kill_count(control), 3);
    assert_eq!(oom_kill_count(""), 0);
}
