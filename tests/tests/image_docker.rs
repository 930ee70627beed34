//! The container image of `examples/image/build.sh`, built offline in the test (from the debug binary and the shared
//! libraries it links, through the script's `ROSTER_BIN`; the script's default is a static release build), started
//! with `--network host` and `-dev` on ports the OS picks: it answers `/v1/status/leader` and runs as the non-root
//! `roster` user. Needs Docker: skipped with the reason without an engine, a failure under `ROSTER_REQUIRE_DOCKER=1`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use roster_tests::docker::{docker, docker_or_skip};
use roster_tests::roster_bin;

/// Removes the test's container and image however the test ends.
struct Cleanup {
    container: Option<String>,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(container) = &self.container {
            let _ = docker(&["rm", "-f", container]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

#[tokio::test]
async fn the_image_built_offline_serves_dev_mode_as_a_non_root_user() {
    if !docker_or_skip("the_image_built_offline_serves_dev_mode_as_a_non_root_user") {
        return;
    }
    let image = format!("roster-image-test:{}", std::process::id());
    let mut cleanup = Cleanup { container: None, image: image.clone() };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/image/build.sh");
    let built = Command::new(&script).arg(&image).env("ROSTER_BIN", roster_bin()).output().expect("running build.sh");
    assert!(built.status.success(), "build.sh: {}", String::from_utf8_lossy(&built.stderr));
    assert_eq!(docker(&["image", "inspect", "--format", "{{.Config.User}}", &image]).expect("inspect"), "roster");

    let node = format!("image-test-{}", std::process::id());
    let ports = ["-http-port", "0", "-dns-port", "-1", "-server-port", "0", "-serf-lan-port", "0"];
    let mut args = vec!["run", "-d", "--network", "host", &image, "agent", "-dev", "-node", &node];
    args.extend_from_slice(&ports);
    let container = docker(&args).expect("docker run");
    cleanup.container = Some(container.clone());

    // The readiness line on the container's stdout names the port the OS chose.
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = loop {
        let logs = Command::new("docker").args(["logs", &container]).output().expect("docker logs");
        let stdout = String::from_utf8_lossy(&logs.stdout).into_owned();
        if let Some(addr) = stdout.lines().find_map(|line| {
            line.strip_prefix("roster: ready ")?.split_whitespace().find_map(|field| field.strip_prefix("http="))
        }) {
            break addr.to_owned();
        }
        assert!(Instant::now() < deadline, "no readiness line:\n{stdout}\n{}", String::from_utf8_lossy(&logs.stderr));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let client = roster_tests::http_client(1);
    let leader = loop {
        let answer = client.get(format!("http://{http}/v1/status/leader")).send().await;
        if let Ok(answer) = answer
            && let Ok(serde_json::Value::String(leader)) = answer.json::<serde_json::Value>().await
            && !leader.is_empty()
        {
            break leader;
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(leader.starts_with("127.0.0.1:"), "{leader}");

    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", &container]).expect("inspect");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent's /proc status");
    let uid = status.lines().find_map(|line| line.strip_prefix("Uid:")).expect("a Uid line");
    assert!(uid.split_whitespace().all(|id| id == "100"), "the agent runs as uid {uid}");
}
