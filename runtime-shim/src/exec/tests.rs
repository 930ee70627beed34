//! Tests of the exec driver on this host's kernel: real namespaces, cgroups (whatever layout the host has; the
//! others are covered by `cgroup/tests.rs`) and supervisors, with a busybox root filesystem made in a temporary
//! directory.
//!
//! They need root, writable cgroups, busybox (`apt-get install -y busybox-static`) and the `exec-supervisor`
//! example, which `cargo test`/`cargo nextest` build; without them each test prints why and passes, unless
//! `ROSTER_REQUIRE_EXEC=1`, which makes it fail instead. Each test is its own node (so its own cgroup subtree
//! below `roster-test/`), and its `Fixture` kills and removes whatever it started however the test ends.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::net::{self, NetworkFile, netlink::Netlink};
use super::wire::{self, TASK_FILE, TaskFile};
use super::{BridgeConfig, ExecConfig, ExecDriver, resolv_conf, tail_lines};
use crate::driver::{DnsOptions, Driver, DriverEvent, StartOptions, TaskEventKind, TaskHandle, TaskStatus};
use crate::error::Error;
use crate::host_access::HostPaths;
use crate::spec::{DriverKind, JobSpec, MountSpec, Resources, TaskSpec};

/// The busybox applets the test rootfs links.
const APPLETS: [&str; 14] =
    ["sh", "sleep", "cat", "echo", "hostname", "dd", "seq", "ls", "true", "grep", "wc", "head", "httpd", "wget"];
/// The page the bridge tests' `httpd` serves from `/www`.
const PAGE: &str = "served over the bridge";

/// One test's driver, state directory and rootfs; kills and removes its tasks on drop.
struct Fixture {
    driver: ExecDriver,
    config: ExecConfig,
    rootfs: tempfile::TempDir,
    _state: tempfile::TempDir,
    /// Whether the test made its own bridge (`config.bridge`), to delete on drop; never the default `roster0`.
    owns_bridge: bool,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.config.state_dir) else { return };
        for entry in entries.flatten() {
            let Ok(Some(task)) = wire::read::<TaskFile>(&entry.path().join(TASK_FILE)) else { continue };
            for _ in 0..100 {
                task.cgroup.kill_all();
                if task.cgroup.remove().is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            task.cgroup.remove_parent_if_empty();
            let _ = net::remove_host_veth(&task.network);
        }
        if self.owns_bridge {
            let _ = Netlink::open().and_then(|mut link| link.delete_link(&self.config.bridge.name));
        }
    }
}

/// `None` (after printing why) when the test must be skipped; panics instead under `ROSTER_REQUIRE_EXEC=1`.
fn skip_or_fail<T>(reason: &str) -> Option<T> {
    if std::env::var("ROSTER_REQUIRE_EXEC").as_deref() == Ok("1") {
        panic!("ROSTER_REQUIRE_EXEC=1 but {reason}");
    }
    eprintln!("skipping the exec driver test: {reason}");
    None
}

/// The `exec-supervisor` example next to this test binary (`target/<profile>/deps/..` → `examples/`).
fn supervisor_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples/exec-supervisor");
    path.exists().then_some(path)
}

/// A driver for a fresh node that probed fine, and a busybox rootfs.
async fn setup(tag: &str) -> Option<Fixture> {
    let Some(supervisor) = supervisor_binary() else {
        return skip_or_fail(
            "the exec-supervisor example is not built (cargo build -p roster-runtime-shim --examples)",
        );
    };
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|path| Path::new(path).exists()) else {
        return skip_or_fail("busybox is not installed (apt-get install -y busybox-static)");
    };
    let state = tempfile::tempdir().expect("state dir");
    let nanos = std::time::SystemTime::UNIX_EPOCH.elapsed().map(|d| d.subsec_nanos()).unwrap_or(0);
    let node = format!("{tag}-{}-{nanos}", std::process::id());
    let mut config = ExecConfig::new(node, state.path().join("exec"), [supervisor]);
    config.cgroup_prefix = "roster-test".to_string();
    config.poll_interval = Duration::from_millis(50);
    let driver = ExecDriver::new(config.clone());
    if let Err(err) = driver.probe().await {
        return skip_or_fail(&format!("the exec driver cannot run here: {err}"));
    }
    let rootfs = tempfile::tempdir().expect("rootfs");
    for dir in ["bin", "etc", "tmp"] {
        std::fs::create_dir(rootfs.path().join(dir)).expect("rootfs dir");
    }
    std::fs::copy(busybox, rootfs.path().join("bin/busybox")).expect("copy busybox");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.path().join("bin").join(applet)).expect("applet link");
    }
    std::fs::create_dir(rootfs.path().join("www")).expect("www dir");
    std::fs::write(rootfs.path().join("www/index.html"), PAGE).expect("page");
    Some(Fixture { driver, config, rootfs, _state: state, owns_bridge: false })
}

/// [`setup`] with a bridge of the test's own, `rt-<tag>` on 10.89.`<octet>`.0/24, so tests running in parallel
/// neither share addresses nor touch the default `roster0`.
async fn setup_bridge(tag: &str, octet: u8) -> Option<Fixture> {
    let mut fixture = setup(tag).await?;
    fixture.config.bridge =
        BridgeConfig { name: format!("rt-{tag}"), address: Ipv4Addr::new(10, 89, octet, 1), prefix_len: 24 };
    fixture.driver = ExecDriver::new(fixture.config.clone());
    fixture.owns_bridge = true;
    Some(fixture)
}

impl Fixture {
    /// An exec task running `sh -c script` in the busybox rootfs.
    fn shell_task(&self, name: &str, script: &str) -> TaskSpec {
        let rootfs = self.rootfs.path().display();
        let text = format!(
            r#"{{"name": "job", "tasks": [{{"name": "{name}", "driver": "exec", "rootfs": "{rootfs}",
                "command": "sh", "args": ["-c", {script:?}], "env": {{"GREETING": "hello"}}}}]}}"#
        );
        let job = JobSpec::from_json(&text).expect("valid job");
        job.tasks.into_iter().next().expect("one task")
    }

    /// An exec task on `network` running `script`.
    fn network_task(&self, name: &str, network: &str, script: &str) -> TaskSpec {
        TaskSpec { network: Some(network.to_string()), ..self.shell_task(name, script) }
    }

    /// Starts a bridge task that only sleeps.
    async fn start_sleeper(&self, name: &str) -> TaskHandle {
        let spec = self.network_task(name, "bridge", "exec sleep 1000");
        self.driver.start("job", &spec, &StartOptions::default()).await.expect("start")
    }

    /// Runs `command` in the task and returns its output, asserting it succeeded.
    async fn exec_ok(&self, handle: &TaskHandle, command: &[&str]) -> String {
        let command: Vec<String> = command.iter().map(|arg| arg.to_string()).collect();
        let output = self.driver.exec(handle, &command, Duration::from_secs(10)).await.expect("exec");
        let text = String::from_utf8_lossy(&output.output).into_owned();
        assert_eq!(output.exit_code, 0, "{command:?}: {text}");
        text
    }

    /// The task's bridge address as `task.json` records it.
    fn bridge_address(&self, handle: &TaskHandle) -> Ipv4Addr {
        self.task_file(handle).network.address().expect("a bridge address")
    }

    /// The saved task file of a task.
    fn task_file(&self, handle: &TaskHandle) -> TaskFile {
        let path = self.driver.task_dir(&handle.job, &handle.task).join(TASK_FILE);
        wire::read(&path).expect("task file").expect("task file exists")
    }

    /// Waits until the task's log has a line containing `needle`, or panics with the log.
    async fn wait_log(&self, handle: &TaskHandle, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.driver.logs(handle, 100).await.expect("logs");
            if lines.iter().any(|line| line.contains(needle)) {
                return lines;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in the log: {lines:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the task has exited, or panics.
    async fn wait_exit(&self, handle: &TaskHandle) -> (i64, bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.driver.inspect(handle).await.expect("inspect");
            if let TaskStatus::Exited { exit_code } = state.status {
                return (exit_code, state.oom_killed);
            }
            assert!(Instant::now() < deadline, "the task did not exit: {state:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The task's main PID from its state file.
    fn main_pid(&self, handle: &TaskHandle) -> i32 {
        let path = self.driver.task_dir(&handle.job, &handle.task).join(wire::STATE_FILE);
        wire::read::<wire::StateFile>(&path).expect("state").expect("state exists").pid.expect("pid")
    }
}

#[tokio::test]
async fn exec_task_is_pid_1_with_its_hostname_env_and_limits() {
    let Some(fixture) = setup("pid1").await else { return };
    let mut spec = fixture.shell_task("web", "echo pid=$$ host=$(hostname) greeting=$GREETING; exec sleep 1000");
    spec.resources = Resources { memory_mb: Some(32), cpu: Some(500), pids: Some(16) };
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    assert_eq!(handle.id.0, "job.web");
    fixture.wait_log(&handle, "pid=1 host=web greeting=hello").await;
    assert!(fixture.driver.inspect(&handle).await.expect("inspect").is_running());

    // The limits are in the cgroup files, whichever layout this host has.
    let file = fixture.task_file(&handle);
    for write in file.cgroup.limit_writes(&spec.resources).expect("limits") {
        match std::fs::read_to_string(&write.path) {
            Ok(text) => assert_eq!(text.trim(), write.value, "{}", write.path.display()),
            Err(_) if write.optional => {}
            Err(err) => panic!("{}: {err}", write.path.display()),
        }
    }
    let main_pid = fixture.main_pid(&handle);
    assert!(file.cgroup.procs().contains(&main_pid), "the task is in its cgroup");

    // exec runs inside the task's namespaces and root.
    let timeout = Duration::from_secs(10);
    let cmdline = fixture.driver.exec(&handle, &["cat".into(), "/proc/1/cmdline".into()], timeout).await;
    let cmdline = cmdline.expect("exec cat");
    assert_eq!(cmdline.exit_code, 0);
    assert_eq!(String::from_utf8_lossy(&cmdline.output), "sleep\u{0}1000\u{0}");
    let hostname = fixture.driver.exec(&handle, &["hostname".into()], timeout).await.expect("exec hostname");
    assert_eq!(String::from_utf8_lossy(&hostname.output).trim(), "web");
    let failing = ["sh".to_string(), "-c".to_string(), "echo out; echo err >&2; exit 3".to_string()];
    let failing = fixture.driver.exec(&handle, &failing, timeout).await.expect("exec exit 3");
    assert_eq!((failing.exit_code, String::from_utf8_lossy(&failing.output).into_owned()), (3, "out\nerr\n".into()));

    // `sleep` as PID 1 has no SIGTERM handler, so the kernel drops the signal and the grace ends in a kill.
    let stopping = Instant::now();
    fixture.driver.stop(&handle, "SIGTERM", Duration::from_millis(500)).await.expect("stop");
    assert!(stopping.elapsed() >= Duration::from_millis(500));
    assert_eq!(fixture.wait_exit(&handle).await, (137, false));
    let refused = fixture.driver.exec(&handle, &["true".into()], timeout).await;
    assert!(matches!(refused, Err(Error::Runtime { op: "exec", .. })), "{refused:?}");
    fixture.driver.destroy(&handle).await.expect("destroy");
    assert!(!fixture.driver.task_dir("job", "web").exists());
    assert!(file.cgroup.all().iter().all(|dir| !dir.exists()), "the cgroup is removed");
    assert!(matches!(fixture.driver.inspect(&handle).await, Err(Error::NotFound { .. })));
    fixture.driver.destroy(&handle).await.expect("destroying a gone task succeeds");
}

#[tokio::test]
async fn exec_stop_signal_reaches_a_handler_before_the_grace_ends() {
    let Some(fixture) = setup("trap").await else { return };
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; sleep 1000 & wait";
    let spec = fixture.shell_task("trap", script);
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    fixture.wait_log(&handle, "ready").await;
    let stopping = Instant::now();
    fixture.driver.stop(&handle, "TERM", Duration::from_secs(10)).await.expect("stop");
    assert!(stopping.elapsed() < Duration::from_secs(5), "the handler ended it, not the kill");
    assert_eq!(fixture.wait_exit(&handle).await, (7, false));
    fixture.wait_log(&handle, "got-term").await;
    fixture.driver.stop(&handle, "TERM", Duration::from_secs(1)).await.expect("stopping a stopped task succeeds");
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_memory_hog_is_oom_killed_and_reported() {
    let Some(fixture) = setup("oom").await else { return };
    let mut events = fixture.driver.events();
    let mut spec = fixture.shell_task("hog", "exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    spec.resources.memory_mb = Some(16);
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    assert_eq!(fixture.wait_exit(&handle).await, (137, true));
    let mut kinds = Vec::new();
    while kinds.last().is_none_or(|kind| !matches!(kind, TaskEventKind::Died { .. })) {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("an event");
        if let Some(DriverEvent::Task { job, task, kind, .. }) = event {
            assert_eq!((job.as_str(), task.as_str()), ("job", "hog"));
            kinds.push(kind);
        }
    }
    assert_eq!(kinds, [TaskEventKind::Started, TaskEventKind::Oom, TaskEventKind::Died { exit_code: 137 }]);
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_pids_limit_stops_forks() {
    let Some(fixture) = setup("pids").await else { return };
    // busybox sh gives up at the first fork the limit refuses, so the task ends before it says "forked".
    let script = "for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; echo forked; exec sleep 1000";
    let mut spec = fixture.shell_task("forker", script);
    spec.resources.pids = Some(4);
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    let (exit_code, _) = fixture.wait_exit(&handle).await;
    assert_ne!(exit_code, 0);
    let lines = fixture.driver.logs(&handle, 10).await.expect("logs");
    assert!(lines.iter().any(|line| line.contains("can't fork: Resource temporarily unavailable")), "{lines:?}");
    assert!(!lines.iter().any(|line| line.contains("forked")), "{lines:?}");
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_tasks_survive_a_driver_restart_and_are_recovered() {
    let Some(fixture) = setup("recover").await else { return };
    let options = StartOptions::default();
    let long = fixture.shell_task("long", "echo up; exec sleep 1000");
    let short = fixture.shell_task("short", "echo bye; exit 42");
    let long_handle = fixture.driver.start("job", &long, &options).await.expect("start long");
    let short_handle = fixture.driver.start("job", &short, &options).await.expect("start short");
    fixture.wait_log(&long_handle, "up").await;
    fixture.wait_exit(&short_handle).await;
    let pid = fixture.main_pid(&long_handle);
    let state_path = fixture.driver.task_dir("job", "long").join(wire::STATE_FILE);
    let supervisor = wire::read::<wire::StateFile>(&state_path).expect("state").expect("state exists").supervisor_pid;
    let stat = std::fs::read_to_string(format!("/proc/{supervisor}/stat")).expect("supervisor stat");
    let parent: u32 =
        stat[stat.rfind(')').expect("comm") + 1..].split_whitespace().nth(1).expect("ppid").parse().expect("ppid");
    assert_ne!(parent, std::process::id(), "the supervisor is detached from the agent");
    drop(fixture.driver.clone());

    // A new driver instance is what a restarted agent has: it knows only the state directory.
    let restarted = ExecDriver::new(fixture.config.clone());
    let recovered = restarted.recover().await.expect("recover");
    assert_eq!(recovered, [long_handle.clone(), short_handle.clone()]);
    assert!(restarted.inspect(&long_handle).await.expect("inspect").is_running());
    assert_eq!(fixture.main_pid(&long_handle), pid, "the same process runs on");
    let short_state = restarted.inspect(&short_handle).await.expect("inspect short");
    assert_eq!(short_state.status, TaskStatus::Exited { exit_code: 42 });
    assert!(short_state.ran_for().is_some());
    let again = restarted.start("job", &long, &options).await.expect("adopt");
    assert_eq!((again, fixture.main_pid(&long_handle)), (long_handle.clone(), pid), "an unchanged spec is adopted");

    // Another node's driver on the same directory sees none of it.
    let other = ExecDriver::new(ExecConfig { node: "someone-else".into(), ..fixture.config.clone() });
    assert!(other.recover().await.expect("recover other").is_empty());

    restarted.stop(&long_handle, "SIGKILL", Duration::from_secs(1)).await.expect("stop");
    assert_eq!(fixture.wait_exit(&long_handle).await, (137, false));
    // A stopped task with an unchanged spec is started again; a changed one is replaced.
    restarted.start("job", &long, &options).await.expect("restart");
    fixture.wait_log(&long_handle, "up").await;
    assert_ne!(fixture.main_pid(&long_handle), pid);
    let mut changed = long.clone();
    changed.args = vec!["-c".into(), "echo changed; exec sleep 1000".into()];
    let replaced = restarted.start("job", &changed, &options).await.expect("replace");
    assert_ne!(replaced.spec_hash, long_handle.spec_hash);
    fixture.wait_log(&replaced, "changed").await;
    for handle in [replaced, short_handle] {
        restarted.destroy(&handle).await.expect("destroy");
    }
    assert!(restarted.recover().await.expect("recover after destroy").is_empty());
}

#[tokio::test]
async fn exec_logs_return_the_tail_and_events_follow_runs() {
    let Some(fixture) = setup("logs").await else { return };
    let mut events = fixture.driver.events();
    let spec = fixture.shell_task("counter", "seq 1 500; echo done >&2");
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    assert_eq!(fixture.wait_exit(&handle).await, (0, false));
    let lines = fixture.driver.logs(&handle, 3).await.expect("logs");
    assert_eq!(lines, ["499", "500", "done"]);
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("an event");
        if let Some(DriverEvent::Task { kind, .. }) = event {
            kinds.push(kind);
        }
    }
    assert_eq!(kinds, [TaskEventKind::Started, TaskEventKind::Died { exit_code: 0 }]);
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_output_is_rotated_within_the_spec_limits_and_nothing_before_exit_is_lost() {
    let Some(fixture) = setup("rotate").await else { return };
    // About 1.2 MiB on stdout and a last line on stderr just before exiting, through a 16 KiB x 3 bound.
    let script =
        "i=0; while [ $i -lt 30000 ]; do echo \"line $i of the task output\"; i=$((i+1)); done; echo last-words >&2";
    let spec = TaskSpec {
        logs: Some(crate::spec::LogsSpec { max_size_kb: 16, max_files: 3 }),
        ..fixture.shell_task("chatty", script)
    };
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    assert_eq!(fixture.wait_exit(&handle).await, (0, false));
    let dir = fixture.driver.task_dir(&handle.job, &handle.task);
    let mut kept: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .expect("task dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("output.log"))
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.metadata().expect("meta").len()))
        .collect();
    kept.sort();
    let names: Vec<&str> = kept.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["output.log", "output.log.1", "output.log.2"]);
    assert!(kept.iter().all(|(_, len)| *len <= 16 * 1024), "every file within 16 KiB: {kept:?}");
    let lines = fixture.driver.logs(&handle, 2).await.expect("logs");
    assert_eq!(lines, ["line 29999 of the task output", "last-words"], "stdout and stderr, the end all there");
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_without_rootfs_sees_the_host_files_with_its_own_proc_and_resolv_conf() {
    let Some(fixture) = setup("hostfs").await else { return };
    let mut spec = fixture.shell_task("hostfs", "echo pid=$$; cat /etc/resolv.conf; exec sleep 1000");
    spec.rootfs = None;
    spec.command = Some("/bin/sh".into());
    let dns = DnsOptions { servers: vec!["10.9.8.7".parse().expect("ip")], search: vec!["consul".into()], ndots: None };
    let options = StartOptions { dns, ..StartOptions::default() };
    let refused = fixture.driver.start("job", &spec, &options).await;
    assert!(matches!(&refused, Err(Error::NotAllowed { .. })), "refused by default: {refused:?}");
    let driver = ExecDriver::new(ExecConfig { allow_host_rootfs: true, ..fixture.config.clone() });
    let handle = driver.start("job", &spec, &options).await.expect("start");
    let lines = fixture.wait_log(&handle, "search consul").await;
    assert!(lines.contains(&"pid=1".to_string()) && lines.contains(&"nameserver 10.9.8.7".to_string()), "{lines:?}");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert!(!host_resolv.contains("10.9.8.7"), "the host's resolv.conf is untouched");
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_mounts_into_a_rootfs_are_refused_at_start_outside_host_mounts() {
    let Some(fixture) = setup("mounts").await else { return };
    let allowed = tempfile::tempdir().expect("allowed host dir");
    std::fs::write(allowed.path().join("note"), "from the host\n").expect("note");
    let mount = |source: &Path| MountSpec {
        source: source.display().to_string(),
        target: "/mnt/host".to_string(),
        read_only: true,
    };
    let mut spec = fixture.shell_task("mounts", "cat /mnt/host/note; exec sleep 1000");
    spec.mounts = vec![mount(Path::new("/"))];
    let refused = fixture.driver.start("job", &spec, &StartOptions::default()).await;
    let Err(Error::NotAllowed { reason, .. }) = refused else { panic!("not refused: {refused:?}") };
    assert!(reason.starts_with("mounts[0].source: host path / is not at or below"), "{reason}");
    assert!(reason.ends_with("add it to exec.host_mounts in the agent config"), "{reason}");
    assert!(!fixture.driver.task_dir("job", "mounts").exists(), "refused before anything was written");

    let host_mounts = HostPaths::Under(vec![allowed.path().to_path_buf()]);
    let driver = ExecDriver::new(ExecConfig { host_mounts, ..fixture.config.clone() });
    let refused = driver.start("job", &spec, &StartOptions::default()).await;
    assert!(matches!(&refused, Err(Error::NotAllowed { .. })), "/ is not below the allowed dir: {refused:?}");
    spec.mounts = vec![mount(allowed.path())];
    let handle = driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    fixture.wait_log(&handle, "from the host").await;
    driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_probe_reports_a_broken_supervisor() {
    let Some(fixture) = setup("probe").await else { return };
    let info = fixture.driver.probe().await.expect("probe");
    assert_eq!(info.driver, "exec");
    assert!(info.version.starts_with("linux ") && info.version.contains("cgroup "), "{}", info.version);
    let broken =
        ExecDriver::new(ExecConfig { supervisor: vec!["/nonexistent/roster".into()], ..fixture.config.clone() });
    assert!(matches!(broken.probe().await, Err(Error::Unavailable { driver: "exec", .. })));
}

#[tokio::test]
async fn exec_refuses_docker_tasks_and_missing_rootfs() {
    let config = ExecConfig::new("n1", "/nonexistent/state", ["/nonexistent/supervisor"]);
    let driver = ExecDriver::new(config);
    let mut spec = TaskSpec {
        driver: DriverKind::Docker,
        ..JobSpec::from_json(r#"{"name":"j","tasks":[{"name":"t","driver":"exec","command":"sh"}]}"#)
            .expect("job")
            .tasks
            .remove(0)
    };
    let refused = driver.start("j", &spec, &StartOptions::default()).await;
    assert!(matches!(refused, Err(Error::Unsupported(_))), "{refused:?}");
    spec.driver = DriverKind::Exec;
    spec.rootfs = Some("/nonexistent/rootfs".into());
    assert!(matches!(driver.ensure_image(&spec).await, Err(Error::ImageMissing { .. })));
    spec.rootfs = None;
    driver.ensure_image(&spec).await.expect("the host's root is always there");
    // Refused before the driver touches anything (the state directory here does not even exist).
    let refused = driver.start("j", &spec, &StartOptions::default()).await;
    let Err(Error::NotAllowed { reason, .. }) = refused else { panic!("not refused: {refused:?}") };
    assert!(reason.starts_with("rootfs: an exec task without a rootfs runs on the host's filesystem as root"));
    assert!(reason.contains("exec.allow_host_rootfs"), "{reason}");
}

#[test]
fn exec_resolv_conf_is_written_only_with_dns_options() {
    assert_eq!(resolv_conf(&StartOptions::default()), None);
    let dns = DnsOptions {
        servers: vec!["172.17.0.1".parse().expect("ip")],
        search: vec!["service.consul".into(), "consul".into()],
        ndots: Some(2),
    };
    let text = resolv_conf(&StartOptions { dns, ..StartOptions::default() });
    let expected = "nameserver 172.17.0.1\nsearch service.consul consul\noptions ndots:2\n";
    assert_eq!(text.as_deref(), Some(expected));
}

#[test]
fn exec_tail_lines_reads_backwards_across_blocks() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("output.log");
    let text: String = (0..20_000).map(|idx| format!("line {idx}\n")).collect();
    std::fs::write(&path, &text).expect("write");
    let tail = tail_lines(&path, 3).expect("tail");
    assert_eq!(tail, ["line 19997", "line 19998", "line 19999"]);
    assert_eq!(tail_lines(&path, 20_000).expect("all").len(), 20_000);
    assert_eq!(tail_lines(&path, 30_000).expect("more than there is").len(), 20_000);
    assert!(tail_lines(&dir.path().join("missing"), 3).expect("missing").is_empty());
    std::fs::write(&path, "no newline at the end").expect("write");
    assert_eq!(tail_lines(&path, 5).expect("one line"), ["no newline at the end"]);
}

/// The interface names in a `/proc/net/dev`, sorted.
fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut names: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect();
    names.sort();
    names
}

/// The host end of a bridge task's veth pair.
fn host_veth(file: &TaskFile) -> String {
    match &file.network {
        NetworkFile::Bridge { host_veth, .. } => host_veth.clone(),
        other => panic!("not a bridge task: {other:?}"),
    }
}

/// Whether the host has an interface of this name.
fn host_has_link(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The body of `GET /` from `address:port` over plain HTTP, retried until a deadline (the server may still be
/// starting), or panics.
async fn http_get(address: Ipv4Addr, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect((address, port)).await?;
            stream.write_all(b"GET / HTTP/1.0\r\nHost: task\r\n\r\n").await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            std::io::Result::Ok(response)
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(response)) => return response,
            Ok(Err(err)) => assert!(Instant::now() < deadline, "GET http://{address}:{port}/: {err}"),
            Err(_) => assert!(Instant::now() < deadline, "GET http://{address}:{port}/ timed out"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn exec_bridge_task_serves_at_its_address_and_sees_only_lo_and_eth0() {
    let Some(fixture) = setup_bridge("serve", 101).await else { return };
    let spec = fixture.network_task("web", "bridge", "exec httpd -f -p 8080 -h /www");
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    let address = fixture.bridge_address(&handle);
    assert_eq!(address, Ipv4Addr::new(10, 89, 101, 2), "the lowest free address after the bridge's");
    let state = fixture.driver.inspect(&handle).await.expect("inspect");
    assert_eq!(state.addresses, [("bridge".to_string(), address.into())].into());

    // The host reaches the task through the bridge's connected route.
    let response = http_get(address, 8080).await;
    assert!(response.starts_with("HTTP/1.") && response.ends_with(PAGE), "{response}");

    let dev = fixture.exec_ok(&handle, &["cat", "/proc/net/dev"]).await;
    assert_eq!(interfaces(&dev), ["eth0", "lo"], "{dev}");
    // /proc/net/route: the default route (destination 0) leaves eth0 via the bridge's address (little-endian hex).
    let routes = fixture.exec_ok(&handle, &["cat", "/proc/net/route"]).await;
    let gateway = format!("{:08X}", u32::from_le_bytes(fixture.config.bridge.address.octets()));
    let default =
        routes.lines().map(|line| line.split_whitespace().take(3).collect::<Vec<_>>()).find(|f| f[1] == "00000000");
    assert_eq!(default, Some(vec!["eth0", "00000000", gateway.as_str()]), "{routes}");

    let veth = host_veth(&fixture.task_file(&handle));
    let master = std::fs::read_link(Path::new("/sys/class/net").join(&veth).join("master")).expect("enslaved");
    assert!(master.ends_with(&fixture.config.bridge.name), "{}", master.display());
    fixture.driver.destroy(&handle).await.expect("destroy");
    assert!(!host_has_link(&veth), "the host end is deleted with the task");
}

#[tokio::test]
async fn exec_bridge_tasks_get_different_addresses_and_reach_each_other() {
    // Tasks on one bridge talk through the host's bridge code, which, where br_netfilter is loaded, passes their
    // packets through the host's iptables FORWARD chain: on a Docker host (policy DROP) they are dropped, and roster
    // leaves the firewall to the operator. So this test runs its driver, bridge and tasks in a network namespace of
    // its own, which has no firewall rules; the host-facing tests run in the host's. Only this thread (the
    // current-thread runtime's, which spawns the supervisors) moves.
    super::sys::unshare_network().expect("a network namespace for the test");
    let Some(fixture) = setup_bridge("pair", 102).await else { return };
    let server = fixture.network_task("server", "bridge", "exec httpd -f -p 8080 -h /www");
    let server = fixture.driver.start("job", &server, &StartOptions::default()).await.expect("start server");
    let client = fixture.network_task("client", "bridge", "exec sleep 1000");
    let client = fixture.driver.start("job", &client, &StartOptions::default()).await.expect("start client");
    let (server_address, client_address) = (fixture.bridge_address(&server), fixture.bridge_address(&client));
    assert_eq!((server_address, client_address), (Ipv4Addr::new(10, 89, 102, 2), Ipv4Addr::new(10, 89, 102, 3)));
    http_get(server_address, 8080).await;
    let url = format!("http://{server_address}:8080/");
    let page = fixture.exec_ok(&client, &["wget", "-q", "-O", "-", &url]).await;
    assert_eq!(page, PAGE);
    fixture.driver.destroy(&server).await.expect("destroy server");
    fixture.driver.destroy(&client).await.expect("destroy client");
}

#[tokio::test]
async fn exec_none_task_has_only_a_working_loopback() {
    let Some(fixture) = setup("nonet").await else { return };
    let spec = fixture.network_task("alone", "none", "httpd -p 127.0.0.1:8080 -h /www; exec sleep 1000");
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    assert_eq!(fixture.task_file(&handle).network, NetworkFile::None);
    let dev = fixture.exec_ok(&handle, &["cat", "/proc/net/dev"]).await;
    assert_eq!(interfaces(&dev), ["lo"], "{dev}");
    let page = fixture.exec_ok(&handle, &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]).await;
    assert_eq!(page, PAGE, "lo is up");
    assert!(fixture.driver.inspect(&handle).await.expect("inspect").addresses.is_empty());
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_host_network_task_keeps_the_host_interfaces() {
    let Some(fixture) = setup("hostnet").await else { return };
    let spec = fixture.network_task("hosted", "host", "exec sleep 1000");
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    let dev = fixture.exec_ok(&handle, &["cat", "/proc/net/dev"]).await;
    let host = interfaces(&std::fs::read_to_string("/proc/net/dev").expect("the host's /proc/net/dev"));
    assert_eq!(interfaces(&dev), host);
    assert!(fixture.driver.inspect(&handle).await.expect("inspect").addresses.is_empty());
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn exec_stop_and_destroy_leave_no_veth_and_free_the_address_for_the_next_task() {
    let Some(fixture) = setup_bridge("reuse", 103).await else { return };
    let first = fixture.start_sleeper("first").await;
    let second = fixture.start_sleeper("second").await;
    assert_eq!(fixture.bridge_address(&first), Ipv4Addr::new(10, 89, 103, 2));
    assert_eq!(fixture.bridge_address(&second), Ipv4Addr::new(10, 89, 103, 3));
    let (first_veth, second_veth) = (host_veth(&fixture.task_file(&first)), host_veth(&fixture.task_file(&second)));
    assert!(host_has_link(&first_veth) && host_has_link(&second_veth));

    // A new driver instance (a restarted agent) reports the address task.json kept.
    let recovered = ExecDriver::new(fixture.config.clone());
    assert_eq!(recovered.recover().await.expect("recover").len(), 2);
    let state = recovered.inspect(&second).await.expect("inspect");
    assert_eq!(state.addresses.get("bridge"), Some(&Ipv4Addr::new(10, 89, 103, 3).into()));

    // A stopped task's supervisor deletes the host end as it records the exit.
    fixture.driver.stop(&first, "SIGKILL", Duration::from_secs(1)).await.expect("stop");
    fixture.wait_exit(&first).await;
    assert!(!host_has_link(&first_veth), "no veth left after a stop");
    fixture.driver.destroy(&first).await.expect("destroy first");

    // Destroying the first task freed the lowest address; the next task takes it.
    let third = fixture.start_sleeper("third").await;
    assert_eq!(fixture.bridge_address(&third), Ipv4Addr::new(10, 89, 103, 2));
    fixture.driver.destroy(&second).await.expect("destroy second");
    assert!(!host_has_link(&second_veth), "no veth left after a destroy");
    fixture.driver.destroy(&third).await.expect("destroy third");
}
