//! What of the host a job may reach, through the agent: an exec task without a rootfs and a bind mount (exec or
//! Docker) are refused with a 400 naming the field and the config key unless the config allows them (`-dev` allows
//! all); a saved job that a config change no longer allows fails to start, logged, while the agent serves on; and
//! the exec driver's state directory is `<data_dir>/exec`, mode 0700. Also here, because it needs the same images:
//! a job whose second task cannot start leaves nothing of itself running and the previous version as it was.
//!
//! The refusals need neither root nor Docker. Running what is allowed needs root (exec, skipped with a printed
//! reason, required under `ROSTER_REQUIRE_EXEC=1`) or an engine (Docker, required under `ROSTER_REQUIRE_DOCKER=1`).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use roster_tests::docker::{docker, docker_or_skip};
use roster_tests::{AgentMode, TestAgent, eventually};
use serde_json::{Value, json};

fn exec_or_skip(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    if root {
        return true;
    }
    if std::env::var("ROSTER_REQUIRE_EXEC").as_deref() == Ok("1") {
        panic!("ROSTER_REQUIRE_EXEC=1 but not running as root");
    }
    eprintln!("skipping {test}: not running as root");
    false
}

/// A job with one exec task running a host program, with no rootfs.
fn host_exec_job(name: &str) -> Value {
    json!({
        "name": name,
        "tasks": [{"name": "t", "driver": "exec", "command": "/bin/sh", "args": ["-c", "exec sleep 600"],
                   "stop_timeout": "1s"}],
    })
}

/// A job with one docker task bind-mounting `source`.
fn mounting_job(name: &str, image: &str, source: &Path) -> Value {
    json!({
        "name": name,
        "tasks": [{"name": "t", "driver": "docker", "image": image, "stop_timeout": "1s",
                   "mounts": [{"source": source, "target": "/mnt/host", "read_only": true}]}],
    })
}

/// A job with one exec task in `rootfs` that prints the mounted `note` and sleeps, mounting `source` at /mnt/host.
fn exec_mounting_job(name: &str, rootfs: &Path, source: &Path) -> Value {
    json!({
        "name": name,
        "tasks": [{"name": "t", "driver": "exec", "rootfs": rootfs, "command": "/bin/sh",
                   "args": ["-c", "cat /mnt/host/note; exec sleep 600"], "stop_timeout": "1s",
                   "mounts": [{"source": source, "target": "/mnt/host", "read_only": true}]}],
    })
}

/// A rootfs holding busybox as `sh`, `cat` and `sleep`, and an empty `/mnt/host` to mount on.
fn busybox_rootfs(dir: &Path, busybox: &str) {
    std::fs::create_dir_all(dir.join("bin")).expect("bin");
    std::fs::create_dir_all(dir.join("mnt/host")).expect("mnt/host");
    std::fs::copy(busybox, dir.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "cat", "sleep"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).expect("applet");
    }
}

fn busybox_or_skip(test: &str) -> Option<&'static str> {
    let found = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|path| Path::new(path).exists());
    if found.is_none() {
        if std::env::var("ROSTER_REQUIRE_DOCKER").as_deref() == Ok("1")
            || std::env::var("ROSTER_REQUIRE_EXEC").as_deref() == Ok("1")
        {
            panic!("ROSTER_REQUIRE_DOCKER=1 or ROSTER_REQUIRE_EXEC=1 but busybox is not installed");
        }
        eprintln!("skipping {test}: busybox is not installed");
    }
    found
}

async fn server(node: &str, data: &Path, extra: Value) -> TestAgent {
    TestAgent::start_with_config(node, AgentMode::Server { data_dir: data.to_path_buf() }, extra).await.expect("agent")
}

async fn task_state(agent: &TestAgent, job: &str) -> Option<String> {
    let status = agent.get(&format!("/v1/agent/job/{job}")).await.json();
    status["Tasks"][0]["State"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn an_exec_task_without_rootfs_is_refused_naming_the_config_key_and_nothing_runs() {
    let data = tempfile::tempdir().expect("data dir");
    let agent = server("host-refused", data.path(), json!({})).await;
    let refused = agent.put_json("/v1/agent/job", &host_exec_job("hostfs")).await;
    refused.expect_status(400);
    assert_eq!(
        refused.text().trim_end(),
        "Job not allowed by the agent's config: tasks[0].rootfs: an exec task without a rootfs runs on the host's \
         filesystem as root; give it a rootfs, or set exec.allow_host_rootfs = true in the agent config"
    );
    agent.get("/v1/agent/job/hostfs").await.expect_status(404);
    assert!(!data.path().join("exec/hostfs.t").exists(), "the driver was never asked");
    // The state directory is the data dir's, private to the agent.
    let meta = std::fs::symlink_metadata(data.path().join("exec")).expect("the exec state dir");
    assert!(meta.is_dir() && !meta.file_type().is_symlink());
    assert_eq!(meta.mode() & 0o7777, 0o700);
}

#[tokio::test]
async fn a_docker_mount_outside_the_allowed_host_paths_is_refused() {
    let data = tempfile::tempdir().expect("data dir");
    let host = tempfile::tempdir().expect("host paths");
    let allowed = host.path().join("data");
    std::fs::create_dir_all(&allowed).expect("data");
    std::fs::create_dir_all(host.path().join("data2")).expect("data2");
    let agent = server("mount-refused", data.path(), json!({"docker": {"host_mounts": [allowed]}})).await;
    let sources = [
        Path::new("/etc").to_path_buf(),
        // A prefix by string but not by component.
        host.path().join("data2"),
        // `..` is refused as written, wherever it would lead.
        allowed.join("../data2"),
        allowed.join("sub/.."),
    ];
    for source in sources {
        let refused = agent.put_json("/v1/agent/job", &mounting_job("mounts", "busybox:any", &source)).await;
        refused.expect_status(400);
        let text = refused.text().trim_end().to_owned();
        assert!(
            text.starts_with("Job not allowed by the agent's config: tasks[0].mounts[0].source: host path"),
            "{text}"
        );
        assert!(
            text.ends_with("add it to docker.host_mounts in the agent config") || text.contains("\"..\""),
            "{text}"
        );
    }
    agent.get("/v1/agent/job/mounts").await.expect_status(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_mount_inside_the_allowed_host_paths_is_mounted() {
    if !docker_or_skip("the allowed-mount test") {
        return;
    }
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|path| Path::new(path).exists()) else {
        if std::env::var("ROSTER_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("ROSTER_REQUIRE_DOCKER=1 but busybox is not installed");
        }
        eprintln!("skipping the allowed-mount test: busybox is not installed");
        return;
    };
    let image = format!("roster-mount-test:{}", std::process::id());
    let _image_cleanup = ImageCleanup(image.clone());
    import_busybox(busybox, &image);
    let data = tempfile::tempdir().expect("data dir");
    let host = tempfile::tempdir().expect("host paths");
    let allowed = host.path().join("data");
    std::fs::create_dir_all(allowed.join("site")).expect("data/site");
    let agent = server("mount-allowed", data.path(), json!({"docker": {"host_mounts": [allowed]}})).await;
    let job = format!("mounted-{}", std::process::id());
    let _cleanup = ContainerCleanup(job.clone());
    let mut spec = mounting_job(&job, &image, &allowed.join("site"));
    spec["tasks"][0]["command"] = json!("/bin/sleep");
    spec["tasks"][0]["args"] = json!(["600"]);
    let submitted = agent.put_json("/v1/agent/job", &spec).await;
    submitted.expect_status(200);
    let name = format!("roster-{job}.t.mount-allowed");
    let mounts = docker(&["inspect", "--format", "{{range .Mounts}}{{.Source}}->{{.Destination}} {{end}}", &name])
        .expect("inspect the container");
    assert_eq!(mounts.trim(), format!("{}->/mnt/host", allowed.join("site").display()));
    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_mount_outside_exec_host_mounts_is_refused_and_one_inside_is_seen_by_the_task() {
    let data = tempfile::tempdir().expect("data dir");
    let host = tempfile::tempdir().expect("host paths");
    let rootfs = tempfile::tempdir().expect("rootfs");
    let allowed = host.path().join("data");
    std::fs::create_dir_all(&allowed).expect("data");
    std::fs::write(allowed.join("note"), "mounted from the host\n").expect("note");
    // Docker's list does not extend to exec tasks.
    let config = json!({"exec": {"host_mounts": [allowed]}, "docker": {"host_mounts": ["/"]}});
    let agent = server("exec-mounts", data.path(), config).await;
    let job = format!("execmount-{}", std::process::id());
    for source in [Path::new("/").to_path_buf(), host.path().to_path_buf()] {
        let refused = agent.put_json("/v1/agent/job", &exec_mounting_job(&job, rootfs.path(), &source)).await;
        refused.expect_status(400);
        let text = refused.text().trim_end().to_owned();
        let head = format!(
            "Job not allowed by the agent's config: tasks[0].mounts[0].source: host path {} is not at or below a \
             path the agent allows (exec.host_mounts: {:?})",
            source.display(),
            allowed.display().to_string()
        );
        assert!(text.starts_with(&head), "{text}");
        assert!(text.ends_with("; add it to exec.host_mounts in the agent config"), "{text}");
    }
    agent.get(&format!("/v1/agent/job/{job}")).await.expect_status(404);
    assert!(!data.path().join(format!("exec/{job}.t")).exists(), "the driver was never asked");

    if !exec_or_skip("running an exec task with an allowed mount") {
        return;
    }
    let Some(busybox) = busybox_or_skip("running an exec task with an allowed mount") else { return };
    busybox_rootfs(rootfs.path(), busybox);
    agent.put_json("/v1/agent/job", &exec_mounting_job(&job, rootfs.path(), &allowed)).await.expect_status(200);
    eventually("the task printing the mounted note", Duration::from_secs(10), || async {
        let lines = agent.get(&format!("/v1/agent/job/{job}/logs")).await.json();
        lines.as_array().is_some_and(|lines| lines.iter().any(|l| l == "mounted from the host")).then_some(())
    })
    .await;
    assert_eq!(task_state(&agent, &job).await.as_deref(), Some("running"));
    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
}

/// A docker job of `tasks`, each `(name, command, service)` running `image` with `/bin/sleep` as its command.
fn docker_job(name: &str, image: &str, tasks: &[(&str, &str, &str)]) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|(task, args, service)| {
            json!({"name": task, "driver": "docker", "image": image, "command": "/bin/sleep", "args": [args],
                   "stop_timeout": "1s", "services": [{"name": service}]})
        })
        .collect();
    json!({"name": name, "tasks": tasks})
}

/// The IDs and commands of a job's containers (`docker ps -a`), however they run.
fn containers_of(job: &str) -> Vec<String> {
    let filter = format!("label=roster.job={job}");
    let ids = docker(&["ps", "-aq", "--no-trunc", "--filter", &filter]).expect("docker ps");
    ids.lines()
        .map(|id| {
            let shown = docker(&["inspect", "--format", "{{.Name}} {{.State.Status}} {{.Args}}", id]).expect("inspect");
            format!("{id} {}", shown.trim())
        })
        .collect()
}

async fn instances(agent: &TestAgent, service: &str) -> usize {
    agent.get(&format!("/v1/catalog/service/{service}")).await.json().as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_second_task_cannot_start_leaves_nothing_running_and_the_previous_version_as_it_was() {
    if !docker_or_skip("the all-or-nothing submission test") {
        return;
    }
    let Some(busybox) = busybox_or_skip("the all-or-nothing submission test") else { return };
    let pid = std::process::id();
    let image = format!("roster-rollback-test:{pid}");
    let _image_cleanup = ImageCleanup(image.clone());
    import_busybox(busybox, &image);
    let data = tempfile::tempdir().expect("data dir");
    let agent = server("rollback", data.path(), json!({})).await;
    let (first, second) = (format!("rb-a-{pid}"), format!("rb-b-{pid}"));
    // `/bin/sleep` with this argument exits at once; what cannot start is a command the image does not hold.
    let broken = |job: &str| {
        let mut spec = docker_job(job, &image, &[("a", "600", &first), ("b", "600", &second)]);
        spec["tasks"][1]["command"] = json!("/no/such/program");
        spec
    };

    // A new job: the first task starts, the second cannot; nothing of the job stays.
    let fresh = format!("rbfresh-{pid}");
    let _fresh_cleanup = ContainerCleanup(fresh.clone());
    let refused = agent.put_json("/v1/agent/job", &broken(&fresh)).await;
    assert_ne!(refused.status, 200, "{}", refused.text());
    assert!(refused.text().contains("/no/such/program"), "{}", refused.text());
    assert_eq!(containers_of(&fresh), Vec::<String>::new(), "no container of the job is left");
    agent.get(&format!("/v1/agent/job/{fresh}")).await.expect_status(404);
    assert_eq!((instances(&agent, &first).await, instances(&agent, &second).await), (0, 0));

    // A running version, then a new one whose second task cannot start: the old one runs on, untouched.
    let job = format!("rbjob-{pid}");
    let _job_cleanup = ContainerCleanup(job.clone());
    agent.put_json("/v1/agent/job", &docker_job(&job, &image, &[("a", "600", &first)])).await.expect_status(200);
    let before = containers_of(&job);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].ends_with(&format!("/roster-{job}.a.rollback running [600]")), "{before:?}");
    let refused = agent.put_json("/v1/agent/job", &broken(&job)).await;
    assert_ne!(refused.status, 200, "{}", refused.text());
    assert_eq!(containers_of(&job), before, "the same container, still running, and nothing else");
    assert_eq!((instances(&agent, &first).await, instances(&agent, &second).await), (1, 0));
    let status = agent.get(&format!("/v1/agent/job/{job}")).await.json();
    assert_eq!(status["Tasks"].as_array().map_or(0, Vec::len), 1, "{status}");

    // A new version that changes the first task is replaced in place by Docker's naming, so the rollback starts
    // the previous spec again: a new container, running the old arguments.
    let mut changed = broken(&job);
    changed["tasks"][0]["args"] = json!(["700"]);
    let refused = agent.put_json("/v1/agent/job", &changed).await;
    assert_ne!(refused.status, 200, "{}", refused.text());
    let after = containers_of(&job);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].ends_with(&format!("/roster-{job}.a.rollback running [600]")), "{after:?}");
    assert_eq!((instances(&agent, &first).await, instances(&agent, &second).await), (1, 0));
    assert_eq!(task_state(&agent, &job).await.as_deref(), Some("running"));
    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
    assert_eq!(containers_of(&job), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_allows_host_exec_and_any_mount() {
    let agent = TestAgent::dev("dev-host-access").await;
    // Any mount passes the policy under -dev: what refuses this one is only the missing image.
    let mount =
        agent.put_json("/v1/agent/job", &mounting_job("devmount", "roster-test/never-built:1", Path::new("/"))).await;
    assert!(!mount.text().contains("not allowed"), "{}", mount.text());
    if !exec_or_skip("running a host exec task under -dev") {
        return;
    }
    let job = format!("devhost-{}", std::process::id());
    agent.put_json("/v1/agent/job", &host_exec_job(&job)).await.expect_status(200);
    assert_eq!(task_state(&agent, &job).await.as_deref(), Some("running"));
    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_job_the_config_no_longer_allows_fails_to_start_and_the_agent_serves_on() {
    if !exec_or_skip("the saved-job refusal test") {
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let allow = json!({"exec": {"allow_host_rootfs": true}});
    let mut agent = server("saved-refused", data.path(), allow.clone()).await;
    let job = format!("saved-{}", std::process::id());
    agent.put_json("/v1/agent/job", &host_exec_job(&job)).await.expect_status(200);
    assert_eq!(task_state(&agent, &job).await.as_deref(), Some("running"));

    // The operator withdraws the permission; the saved job is started again at start-up and refused.
    agent.rewrite_config(json!({}));
    agent.restart().await;
    agent.get(&format!("/v1/agent/job/{job}")).await.expect_status(404);
    let log = agent.stderr_tail();
    let refusal = log
        .lines()
        .find(|line| line.contains("could not restart a saved job") && line.contains(&job))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(refusal.contains("tasks[0].rootfs") && refusal.contains("exec.allow_host_rootfs"), "{refusal}");
    agent.put_json("/v1/kv/still-serving", &json!("yes")).await.expect_status(200);

    // Allowed again, the saved job (still in jobs.json) comes back, adopting the task that kept running.
    agent.rewrite_config(allow);
    agent.restart().await;
    eventually("the saved job back", Duration::from_secs(10), || async {
        (task_state(&agent, &job).await.as_deref() == Some("running")).then_some(())
    })
    .await;
    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
}

/// Imports a one-binary busybox image under `image`, offline.
fn import_busybox(busybox: &str, image: &str) {
    let root = tempfile::tempdir().expect("image root");
    std::fs::create_dir(root.path().join("bin")).expect("bin");
    std::fs::copy(busybox, root.path().join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", root.path().join("bin/sleep")).expect("applet");
    let script = format!("tar -C {} -c . | docker import - {image} >/dev/null", root.path().display());
    let output = std::process::Command::new("/bin/sh").args(["-c", &script]).output().expect("docker CLI");
    assert!(output.status.success(), "docker import: {}", String::from_utf8_lossy(&output.stderr));
}

/// Removes the test image however the test ends.
struct ImageCleanup(String);

impl Drop for ImageCleanup {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// Removes a job's containers however the test ends.
struct ContainerCleanup(String);

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        let filter = format!("label=roster.job={}", self.0);
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &filter]) {
            for id in ids.lines() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
    }
}
