//! Tests of the Docker driver against the real engine, with a busybox image built offline (no pull), as
//! `docker_exec/tests.rs` does.
//!
//! Skipped, saying why, when no engine answers or busybox is missing; never skipped with `ROSTER_REQUIRE_DOCKER=1`.
//! Each test runs as its own node, so its containers are told apart by the `roster.node` label and names, and its
//! `Fixture` removes them, its image and its network however the test ends.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::DockerDriver;
use crate::driver::{DnsOptions, Driver, DriverEvent, StartOptions, TaskEventKind, TaskStatus};
use crate::error::Error;
use crate::spec::{JobSpec, TaskSpec};

/// One test's node, image and network, removed on drop.
struct Fixture {
    driver: DockerDriver,
    node: String,
    image: String,
    network: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let list = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=roster.node={}", self.node)])
            .output();
        if let Ok(list) = list {
            for id in String::from_utf8_lossy(&list.stdout).split_whitespace() {
                quiet(&["rm", "-f", id]);
            }
        }
        quiet(&["rmi", "-f", &self.image]);
        quiet(&["network", "rm", &self.network]);
    }
}

/// Runs the docker CLI, ignoring its output and outcome (cleanup only).
fn quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// `None` (after printing why) when the test must be skipped; panics instead under `ROSTER_REQUIRE_DOCKER=1`.
fn skip_or_fail<T>(reason: &str) -> Option<T> {
    if std::env::var("ROSTER_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("ROSTER_REQUIRE_DOCKER=1 but {reason}");
    }
    eprintln!("skipping the Docker driver test: {reason}");
    None
}

/// A unique name part per test run.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::UNIX_EPOCH.elapsed().map(|d| d.as_nanos()).unwrap_or(0);
    format!("{tag}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A driver for a fresh node whose engine answers, with a busybox image imported under a unique tag.
async fn setup(tag: &str) -> Option<Fixture> {
    let node = unique(tag);
    let driver = match DockerDriver::connect_local(&node) {
        Ok(driver) => driver,
        Err(err) => return skip_or_fail(&format!("no Docker client: {err}")),
    };
    if let Err(err) = driver.probe().await {
        return skip_or_fail(&format!("no Docker engine answers: {err}"));
    }
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|path| Path::new(path).exists()) else {
        return skip_or_fail("busybox is not installed (apt-get install -y busybox-static)");
    };
    let fixture =
        Fixture { driver, image: format!("roster-shim-test:{node}"), network: format!("roster-{node}"), node };
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("bin")).expect("bin");
    std::fs::copy(busybox, root.path().join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "sleep", "echo", "cat", "true"] {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).expect("symlink");
    }
    let script = format!("tar -C {} -c . | docker import - {} >/dev/null", root.path().display(), fixture.image);
    let output = Command::new("/bin/sh").args(["-c", &script]).output().expect("run docker CLI");
    assert!(output.status.success(), "importing the test image failed: {}", String::from_utf8_lossy(&output.stderr));
    Some(fixture)
}

/// A task on the fixture's image running `script` under sh, with a memory limit.
fn task(fixture: &Fixture, name: &str, script: &str) -> TaskSpec {
    let text = format!(
        "name = \"job\"\n[[tasks]]\nname = \"{name}\"\ndriver = \"docker\"\nimage = \"{}\"\ncommand = \"/bin/sh\"\n\
         args = [\"-c\", {script:?}]\nresources = {{ memory_mb = 48, pids = 32, cpu = 500 }}\n",
        fixture.image
    );
    JobSpec::from_toml(&text).expect("valid test job").tasks.remove(0)
}

/// Prints a line, then exits 0 on SIGTERM (checked every 200 ms, between sleeps).
const POLITE: &str = "echo hello-from-task; trap 'echo got-term; exit 0' TERM; while true; do sleep 0.2; done";

/// Polls `probe` every 100 ms until it is true or 10 s pass.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut probe: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn task_lifecycle_start_inspect_exec_logs_stop_recover() {
    let Some(fixture) = setup("life").await else { return };
    let driver = &fixture.driver;
    let logs = crate::spec::LogsSpec { max_size_kb: 512, max_files: 2 };
    let spec = TaskSpec { logs: Some(logs), ..task(&fixture, "web", POLITE) };
    driver.ensure_image(&spec).await.expect("the imported image is there");
    let options = StartOptions {
        dns: DnsOptions {
            servers: vec!["10.9.8.7".parse().expect("ip")],
            search: vec!["service.consul".to_string()],
            ndots: Some(2),
        },
        ..StartOptions::default()
    };

    let handle = driver.start("job", &spec, &options).await.expect("start");
    assert_eq!(handle.name, format!("roster-job.web.{}", fixture.node));
    let again = driver.start("job", &spec, &options).await.expect("second start");
    assert_eq!(again, handle, "a running task with the same spec is adopted, not started twice");

    let state = driver.inspect(&handle).await.expect("inspect");
    assert_eq!(state.status, TaskStatus::Running);
    assert!(state.started_at.is_some() && state.finished_at.is_none(), "{state:?}");
    assert!(state.addresses.get("bridge").is_some_and(|ip| !ip.is_unspecified()), "{state:?}");
    assert_eq!(state.health, None);

    // The limits reached the engine.
    let raw = bollard::Docker::connect_with_local_defaults().expect("client");
    let host = raw.inspect_container(&handle.id.0, None).await.expect("raw inspect").host_config.expect("host config");
    assert_eq!(host.memory, Some(48 * 1024 * 1024));
    assert_eq!((host.pids_limit, host.nano_cpus), (Some(32), Some(500_000_000)));
    // The spec's logs block is Docker's json-file rotation.
    let log_config = host.log_config.expect("log config");
    assert_eq!(log_config.typ.as_deref(), Some("json-file"));
    let log_options = log_config.config.expect("log options");
    assert_eq!((log_options["max-size"].as_str(), log_options["max-file"].as_str()), ("512k", "2"));

    let sh = |line: &str| vec!["/bin/sh".to_string(), "-c".to_string(), line.to_string()];
    let out = driver.exec(&handle, &sh("cat /etc/resolv.conf; echo oops >&2; exit 3"), Duration::from_secs(10)).await;
    let out = out.expect("exec");
    assert_eq!(out.exit_code, 3);
    let text = String::from_utf8_lossy(&out.output);
    for line in ["nameserver 10.9.8.7", "search service.consul", "options ndots:2", "oops"] {
        assert!(text.contains(line), "{line:?} not in {text:?}");
    }

    eventually("the task's first line in its logs", || async {
        driver.logs(&handle, 10).await.expect("logs") == ["hello-from-task"]
    })
    .await;

    let recovered = DockerDriver::connect_local(&fixture.node).expect("client").recover().await.expect("recover");
    assert_eq!(recovered, std::slice::from_ref(&handle), "a restarted agent finds its task by labels");

    let began = Instant::now();
    driver.stop(&handle, "SIGTERM", Duration::from_secs(10)).await.expect("stop");
    assert!(began.elapsed() < Duration::from_secs(5), "the trap ended it well within the grace");
    let state = driver.inspect(&handle).await.expect("inspect stopped");
    assert_eq!(state.status, TaskStatus::Exited { exit_code: 0 });
    assert!(state.ran_for().is_some());
    assert_eq!(driver.logs(&handle, 1).await.expect("logs"), ["got-term"]);
    driver.stop(&handle, "SIGTERM", Duration::from_secs(1)).await.expect("stopping a stopped task succeeds");

    // Starting the same spec again starts the same container; a changed spec replaces it.
    let restarted = driver.start("job", &spec, &options).await.expect("start again");
    assert_eq!(restarted.id, handle.id);
    assert!(driver.inspect(&restarted).await.expect("inspect").is_running());
    let mut changed = spec.clone();
    changed.env.insert("VERSION".to_string(), "2".to_string());
    let replaced = driver.start("job", &changed, &options).await.expect("start changed");
    assert_ne!(replaced.id, handle.id);
    assert_ne!(replaced.spec_hash, handle.spec_hash);
    assert!(matches!(driver.inspect(&handle).await, Err(Error::NotFound { .. })), "the old container is gone");

    driver.destroy(&replaced).await.expect("destroy");
    assert!(matches!(driver.inspect(&replaced).await, Err(Error::NotFound { .. })));
    driver.destroy(&replaced).await.expect("destroying a gone task succeeds");
    assert_eq!(driver.recover().await.expect("recover"), []);
}

#[tokio::test]
async fn stop_kills_a_task_that_ignores_its_signal() {
    let Some(fixture) = setup("stubborn").await else { return };
    let spec = task(&fixture, "stubborn", "trap '' TERM; while true; do sleep 0.2; done");
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    let began = Instant::now();
    fixture.driver.stop(&handle, "SIGTERM", Duration::from_secs(1)).await.expect("stop");
    assert!(began.elapsed() >= Duration::from_secs(1), "the grace was given");
    let state = fixture.driver.inspect(&handle).await.expect("inspect");
    assert_eq!(state.status, TaskStatus::Exited { exit_code: 137 });
}

#[tokio::test]
async fn events_report_a_docker_kill_as_died_137() {
    let Some(fixture) = setup("events").await else { return };
    // Made before the task starts, and polled only later: the stream still sees everything from its creation.
    let mut events = fixture.driver.events();
    let spec = task(&fixture, "victim", POLITE);
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    let status =
        Command::new("docker").args(["kill", &handle.id.0]).stdout(Stdio::null()).status().expect("docker kill");
    assert!(status.success());

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains(&TaskEventKind::Died { exit_code: 137 }) {
        let event = tokio::time::timeout_at(deadline, events.next()).await.expect("events in time").expect("endless");
        match event {
            DriverEvent::Task { id, job, task, kind } => {
                assert_eq!((id, job.as_str(), task.as_str()), (handle.id.clone(), "job", "victim"));
                seen.push(kind);
            }
            DriverEvent::Resync { reason } => panic!("unexpected resync: {reason}"),
        }
    }
    assert_eq!(seen, [TaskEventKind::Started, TaskEventKind::Died { exit_code: 137 }]);
}

#[tokio::test]
async fn missing_image_errors_with_a_build_hint() {
    let Some(fixture) = setup("noimage").await else { return };
    let mut spec = task(&fixture, "ghost", "true");
    spec.image = Some(format!("roster-missing/{}:1", fixture.node));
    let err = fixture.driver.ensure_image(&spec).await.expect_err("no such image");
    assert!(matches!(err, Error::ImageMissing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("docker build") && text.contains("docker import") && text.contains("pull = true"), "{text}");
    let err = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect_err("cannot create");
    assert!(matches!(err, Error::ImageMissing { .. }), "{err:?}");
}

#[tokio::test]
async fn tasks_join_their_named_network_which_must_exist() {
    let Some(fixture) = setup("net").await else { return };
    let mut spec = task(&fixture, "joined", POLITE);
    spec.network = Some(fixture.network.clone());
    let err = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect_err("no network yet");
    assert!(matches!(&err, Error::NetworkMissing { network } if *network == fixture.network), "{err:?}");

    assert!(fixture.driver.ensure_network(&fixture.network).await.expect("create network"));
    assert!(!fixture.driver.ensure_network(&fixture.network).await.expect("exists"), "created only once");
    let handle = fixture.driver.start("job", &spec, &StartOptions::default()).await.expect("start");
    let state = fixture.driver.inspect(&handle).await.expect("inspect");
    assert!(state.is_running(), "{state:?}");
    assert_eq!(state.addresses.keys().collect::<Vec<_>>(), [&fixture.network], "{state:?}");
    fixture.driver.destroy(&handle).await.expect("destroy");
}

#[tokio::test]
async fn a_missing_socket_is_reported_as_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = dir.path().join("gone.sock");
    let err = DockerDriver::connect_unix(gone.to_str().expect("utf-8"), "n1").expect_err("no socket");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("not found"), "{err}");

    // A socket file that nobody listens on any more: the daemon went away after the agent connected.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    let driver = DockerDriver::connect_unix(dead.to_str().expect("utf-8"), "n1").expect("path exists");
    let err = driver.probe().await.expect_err("nobody answers");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("onnection refused"), "{err}");

    // The event stream reports the break once and keeps retrying rather than ending.
    let mut events = driver.events();
    let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("in time");
    assert!(matches!(first, Some(DriverEvent::Resync { .. })), "{first:?}");
    let quiet = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(quiet.is_err(), "one resync per outage, then silence while reconnecting: {quiet:?}");
}

#[tokio::test]
async fn the_files_example_builds_offline_serves_and_turns_healthy() {
    let Some(fixture) = setup("example").await else { return };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/files");
    let image = format!("roster-example/files:{}", fixture.node);
    let _image_cleanup = ImageCleanup(image.clone());
    let output =
        Command::new("/bin/sh").arg(format!("{root}/build-image.sh")).arg(&image).output().expect("run script");
    assert!(output.status.success(), "build-image.sh failed: {}", String::from_utf8_lossy(&output.stderr));

    let text = std::fs::read_to_string(format!("{root}/job.toml")).expect("job.toml");
    let job = JobSpec::from_toml(&text).expect("valid example");
    let mut spec = job.tasks[0].clone();
    spec.image = Some(image);
    // No fixed host port (another test or program may hold 8080), the default bridge rather than the tour's
    // files-net, and a quick healthcheck.
    spec.ports[0].host_port = None;
    spec.network = None;
    if let Some(check) = spec.healthcheck.as_mut() {
        check.interval = Some(Duration::from_millis(200).into());
    }
    let mut events = fixture.driver.events();
    let handle = fixture.driver.start(&job.name, &spec, &StartOptions::default()).await.expect("start");
    let state = fixture.driver.inspect(&handle).await.expect("inspect");
    let ip = state.addresses["bridge"];

    let page = eventually_get(ip, spec.ports[0].container_port).await;
    assert!(page.starts_with("HTTP/1.") && page.contains("roster \"files\" example"), "{page}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let event = tokio::time::timeout_at(deadline, events.next()).await.expect("healthy in time").expect("endless");
        if let DriverEvent::Task { kind: TaskEventKind::Health(status), .. } = event {
            assert_eq!(status, crate::driver::HealthStatus::Healthy);
            break;
        }
    }
    let state = fixture.driver.inspect(&handle).await.expect("inspect");
    assert_eq!(state.health, Some(crate::driver::HealthStatus::Healthy));
}

/// Removes an image built outside the fixture.
struct ImageCleanup(String);

impl Drop for ImageCleanup {
    fn drop(&mut self) {
        quiet(&["rmi", "-f", &self.0]);
    }
}

/// `GET /` over plain TCP, retried until the server answers (10 s at most).
async fn eventually_get(ip: std::net::IpAddr, port: u32) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = u16::try_from(port).expect("valid port");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect((ip, port)).await {
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.expect("send");
            let mut page = String::new();
            stream.read_to_string(&mut page).await.expect("read");
            return page;
        }
        assert!(Instant::now() < deadline, "nothing answered at {ip}:{port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_bind_mount_outside_the_allowed_host_paths_is_refused_and_one_inside_is_mounted() {
    let Some(fixture) = setup("mounts").await else { return };
    let host = tempfile::tempdir().expect("tempdir");
    let data = host.path().join("data");
    std::fs::create_dir(&data).expect("data");
    std::fs::write(data.join("greeting"), "from the host\n").expect("file");
    std::fs::create_dir(host.path().join("data2")).expect("data2");
    let mounted = |source: &std::path::Path| {
        let text = format!(
            "name = \"job\"\n[[tasks]]\nname = \"reader\"\ndriver = \"docker\"\nimage = \"{}\"\ncommand = \"/bin/sh\"\n\
             args = [\"-c\", \"cat /m/greeting; sleep 1000\"]\n\
             mounts = [{{ source = \"{}\", target = \"/m\", read_only = true }}]\n",
            fixture.image,
            source.display()
        );
        JobSpec::from_toml(&text).expect("valid test job").tasks.remove(0)
    };

    // The driver's default allows no host path; the refusal comes before the engine is asked anything.
    let refused = fixture.driver.start("job", &mounted(&data), &StartOptions::default()).await;
    assert!(matches!(&refused, Err(Error::NotAllowed { .. })), "{refused:?}");

    let driver = fixture.driver.clone().with_host_mounts(crate::HostPaths::Under(vec![data.clone()]));
    let refused = driver.start("job", &mounted(&host.path().join("data2")), &StartOptions::default()).await;
    let Err(Error::NotAllowed { reason, .. }) = refused else { panic!("a sibling sharing the prefix: {refused:?}") };
    assert!(reason.starts_with("mounts[0].source: host path"), "{reason}");
    assert!(reason.contains("docker.host_mounts"), "{reason}");

    let handle = driver.start("job", &mounted(&data), &StartOptions::default()).await.expect("allowed");
    eventually("the mounted file in the logs", || async {
        driver.logs(&handle, 5).await.unwrap_or_default().iter().any(|line| line.contains("from the host"))
    })
    .await;
    driver.destroy(&handle).await.expect("destroy");
}
