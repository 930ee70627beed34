//! The runtime shim end to end on the real Docker engine: `roster run` launches the `files` example, a container
//! resolves `files.service` through the agent's DNS on its network's gateway and fetches the page, a killed task
//! leaves `?passing` and is restarted by its policy, a restarted agent adopts the task instead of relaunching it,
//! and stopping the job deregisters and removes everything.
//!
//! Skipped with a printed reason when no engine answers; required under `ROSTER_REQUIRE_DOCKER=1` (CI).

use std::path::{Path, PathBuf};
use std::time::Duration;

use roster_tests::docker::{Network, docker, docker_or_skip};
use roster_tests::{AgentMode, TestAgent, eventually};
use serde_json::{Value, json};

/// Removes the job's containers and the test image however the test ends.
struct Cleanup {
    job: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=roster.job={}", self.job);
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &filter]) {
            for id in ids.lines() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Builds the files example's image under `image` with its own offline script.
fn build_files_image(image: &str) {
    let built = std::process::Command::new("sh")
        .arg(repo_root().join("examples/files/build-image.sh"))
        .arg(image)
        .output()
        .expect("running build-image.sh");
    assert!(built.status.success(), "build-image.sh: {}", String::from_utf8_lossy(&built.stderr));
}

fn passing(agent_health: &Value) -> usize {
    agent_health.as_array().map_or(0, Vec::len)
}

async fn passing_files(agent: &TestAgent) -> usize {
    passing(&agent.get("/v1/health/service/files?passing").await.json())
}

/// The job's one task, as `GET /v1/agent/job/:name` reports it.
async fn task_status(agent: &TestAgent, job: &str) -> Value {
    let res = agent.get(&format!("/v1/agent/job/{job}")).await;
    res.expect_status(200);
    res.json()["Tasks"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_runs_files_and_containers_find_it_by_name_through_kills_and_agent_restarts() {
    if !docker_or_skip("the runtime shim test") {
        return;
    }
    let suffix = format!("{}", std::process::id());
    let job = format!("files-{suffix}");
    let image = format!("roster-test/files:{suffix}");
    let _cleanup = Cleanup { job: job.clone(), image: image.clone() };
    build_files_image(&image);

    let network = Network::create("jobs").expect("network");
    let gateway = docker(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", &network.name])
        .expect("the network's gateway");
    let data = tempfile::tempdir().expect("data dir");
    let mut agent = TestAgent::start_with_config(
        "jobs-agent",
        AgentMode::Server { data_dir: data.path().to_path_buf() },
        json!({"ports": {"dns": 0}, "addresses": {"dns": format!("127.0.0.1 {gateway}:53")}}),
    )
    .await
    .expect("agent");

    // The user's step: `roster run job.toml`, with the example's task on the test network.
    let spec = format!(
        r#"name = "{job}"
[[tasks]]
name = "httpd"
driver = "docker"
image = "{image}"
network = "{network}"
ports = [{{ label = "http", container_port = 80 }}]
restart = {{ policy = "always", delay = "1s" }}
stop_timeout = "2s"
[[tasks.services]]
name = "files"
port = "http"
address_mode = "container"
checks = [{{ http = "http://${{address}}:${{port}}/", interval = "1s", timeout = "1s" }}]
"#,
        network = network.name
    );
    let spec_file = data.path().join("job.toml");
    std::fs::write(&spec_file, spec).expect("job file");
    let submitted = agent.cli(&["run", spec_file.to_str().expect("utf-8")]).await;
    submitted.expect_success();
    assert!(submitted.stdout.contains("running"), "{}", submitted.stdout);

    eventually("files passing", Duration::from_secs(20), || async { (passing_files(&agent).await == 1).then_some(()) })
        .await;
    let task = task_status(&agent, &job).await;
    let container = task["ID"].as_str().expect("a container ID").to_owned();
    let status = agent.cli(&["job", "status", &job]).await;
    assert!(status.stdout.contains("running") && status.stdout.contains(&job), "{}", status.stdout);

    // A container roster launched resolves the bare name through the agent's DNS and gets the page.
    let page = docker(&["exec", &container, "wget", "-qO-", "http://files/"]).expect("wget files");
    assert!(page.contains("roster \"files\" example"), "{page}");
    // So does any container on the network pointed at the gateway, with `files.service`.
    let fetched = docker(&[
        "run",
        "--rm",
        "--network",
        &network.name,
        "--dns",
        &gateway,
        "--dns-search",
        "service.consul",
        &image,
        "wget",
        "-qO-",
        "http://files.service/",
    ])
    .expect("wget files.service from another container");
    assert!(fetched.contains("roster \"files\" example"), "{fetched}");

    // docker kill: out of ?passing at once, then the policy restarts it and it passes again.
    docker(&["kill", &container]).expect("docker kill");
    eventually("files leaves ?passing", Duration::from_secs(5), || async {
        (passing_files(&agent).await == 0).then_some(())
    })
    .await;
    eventually("files restarted and passing", Duration::from_secs(20), || async {
        (passing_files(&agent).await == 1 && task_status(&agent, &job).await["Restarts"] == 1).then_some(())
    })
    .await;
    let task = task_status(&agent, &job).await;
    assert_eq!(task["LastExitCode"], 137);
    let container = task["ID"].as_str().expect("ID").to_owned();

    // Agent restart: the running task is adopted, not launched again.
    let started_before = docker(&["inspect", "-f", "{{.State.StartedAt}}", &container]).expect("inspect");
    agent.restart().await;
    eventually("files passing after the agent restart", Duration::from_secs(20), || async {
        (passing_files(&agent).await == 1).then_some(())
    })
    .await;
    assert_eq!(task_status(&agent, &job).await["ID"].as_str(), Some(container.as_str()), "same container");
    let started_after = docker(&["inspect", "-f", "{{.State.StartedAt}}", &container]).expect("inspect");
    assert_eq!(started_before, started_after, "the container was not restarted");
    let instances = agent.get("/v1/catalog/service/files").await.json();
    assert_eq!(passing(&instances), 1, "one registration, not two: {instances}");

    // Stopping the job deregisters the service and removes the container.
    agent.cli(&["job", "stop", &job]).await.expect_success();
    assert_eq!(passing(&agent.get("/v1/catalog/service/files").await.json()), 0);
    assert!(docker(&["inspect", &container]).is_err(), "the container is gone");
    agent.get(&format!("/v1/agent/job/{job}")).await.expect_status(404);
}

#[tokio::test]
async fn invalid_specs_and_missing_images_are_clear_errors() {
    if !docker_or_skip("the runtime shim error test") {
        return;
    }
    let agent = TestAgent::dev("jobs-errors").await;
    let bad = agent
        .put_json(
            "/v1/agent/job",
            &json!({"name": "x", "tasks": [{"name": "t", "driver": "docker", "image": "a", "restart": {"policy": "sometimes"}}]}),
        )
        .await;
    bad.expect_status(400);
    assert!(bad.text().contains("restart.policy"), "{}", bad.text());

    let missing = agent
        .put_json(
            "/v1/agent/job",
            &json!({"name": "x", "tasks": [{"name": "t", "driver": "docker", "image": "roster-test/never-built:1"}]}),
        )
        .await;
    missing.expect_status(400);
    assert!(missing.text().contains("roster-test/never-built:1"), "{}", missing.text());
    agent.get("/v1/agent/job/x").await.expect_status(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_docker_registers_labelled_containers_and_deregisters_them_when_they_stop() {
    if !docker_or_skip("the registrator-mode test") {
        return;
    }
    let suffix = format!("reg-{}", std::process::id());
    let image = format!("roster-test/files:{suffix}");
    let container = format!("roster-test-labelled-{suffix}");
    // The Cleanup guard removes containers by this label (no roster.node label, so they stay foreign to roster).
    let cleanup_label = format!("roster.job={suffix}");
    let _cleanup = Cleanup { job: suffix.clone(), image: image.clone() };
    build_files_image(&image);
    let agent = TestAgent::start_with_config("registrator", AgentMode::Dev, json!({"watch_docker": true}))
        .await
        .expect("agent");

    // A container nobody told roster about, carrying registrator's labels; and one with none, which stays unknown.
    docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "--label",
        &cleanup_label,
        "--label",
        "SERVICE_NAME=labelled",
        "--label",
        "SERVICE_TAGS=a,b",
        "--label",
        "SERVICE_CHECK_HTTP=/",
        "--label",
        "SERVICE_CHECK_INTERVAL=1s",
        "--label",
        "SERVICE_OWNER=ops",
        &image,
    ])
    .expect("docker run");
    let unlabelled = format!("{container}-plain");
    docker(&["run", "-d", "--name", &unlabelled, "--label", &cleanup_label, &image]).expect("docker run");

    let ip = docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &container]).expect("inspect");
    let entry = eventually("the labelled container passing", Duration::from_secs(20), || async {
        let health = agent.get("/v1/health/service/labelled?passing").await.json();
        health.as_array().and_then(|a| a.first()).cloned()
    })
    .await;
    assert_eq!(entry["Service"]["Address"], ip.as_str());
    assert_eq!(entry["Service"]["Port"], 80);
    assert_eq!(entry["Service"]["Tags"], json!(["a", "b"]));
    assert_eq!(entry["Service"]["Meta"]["owner"], "ops");
    let services = agent.get("/v1/agent/services").await.json();
    assert_eq!(services.as_object().map_or(0, |s| s.len()), 1, "only the labelled container: {services}");

    docker(&["rm", "-f", &container]).expect("docker rm");
    eventually("the service deregistered", Duration::from_secs(10), || async {
        agent.get("/v1/agent/services").await.json().as_object().is_some_and(|s| s.is_empty()).then_some(())
    })
    .await;
}
