//! The node side of cluster jobs, Helios-style on one server agent with the exec driver: the agent reports its
//! drivers (`roster hosts`), a job deployed to it by name (`roster job deploy FILE -node NAME`) runs as a local job
//! named after its allocation, registers its service on this node and is reported running and healthy
//! (`roster job status`), cannot be changed through `/v1/agent/job`, and `roster job undeploy` stops it.
//!
//! Needs root (namespaces, cgroups) and busybox-static: skipped with a printed reason otherwise, required under
//! `ROSTER_REQUIRE_EXEC=1` (CI).

use std::path::Path;
use std::time::Duration;

use roster_tests::etcd::free_port;
use roster_tests::exec::{busybox_rootfs, exec_or_skip};
use roster_tests::jobs::wait_job;
use roster_tests::{AgentMode, TestAgent, eventually};
use serde_json::{Value, json};

fn task_pid(data: &Path, local_job: &str) -> Option<i64> {
    let path = data.join(format!("exec/{local_job}.web/state.json"));
    let state: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    state["pid"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deployed_to_a_named_host_runs_there_is_reported_and_undeploys() {
    if !exec_or_skip("the allocation runner test") {
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let rootfs = tempfile::tempdir().expect("rootfs");
    busybox_rootfs(rootfs.path(), &["sh", "httpd"]);
    std::fs::create_dir_all(rootfs.path().join("www")).expect("www");
    std::fs::write(rootfs.path().join("www/index.html"), "allocated\n").expect("page");
    let node = "exec-alloc";
    let agent =
        TestAgent::start_with_config(node, AgentMode::Server { data_dir: data.path().to_path_buf() }, json!({}))
            .await
            .expect("agent");

    // The agent reported its drivers: it is a host that can run exec tasks.
    eventually("this node listed as an exec host", Duration::from_secs(20), || async {
        let hosts = agent.cli(&["hosts"]).await;
        (hosts.success() && hosts.stdout.lines().any(|l| l.contains(node) && l.contains("exec"))).then_some(())
    })
    .await;

    let port = free_port().expect("port");
    let job = format!("files-{}", std::process::id());
    let spec = json!({
        "name": job,
        "tasks": [{
            "name": "web",
            "driver": "exec",
            "rootfs": rootfs.path(),
            "command": "/bin/httpd",
            "args": ["-f", "-p", port.to_string(), "-h", "/www"],
            "stop_timeout": "2s",
            "ports": [{"label": "http", "container_port": port, "host_port": port}],
            "services": [{
                "name": "allocated",
                "port": "http",
                "checks": [{"http": "http://${address}:${port}/", "interval": "1s", "timeout": "1s"}],
            }],
        }],
    });
    let file = tempfile::NamedTempFile::with_suffix(".json").expect("job file");
    std::fs::write(file.path(), spec.to_string()).expect("write the job");
    let path = file.path().display().to_string();
    agent.cli(&["job", "deploy", &path, "-node", node]).await.expect_success();

    // Placed here, run here, and reported running and healthy.
    let placed = wait_job(&agent, &job, |job| {
        let allocation = &job["Allocations"][0];
        allocation["ClientStatus"] == "running" && allocation["Healthy"] == true
    })
    .await;
    let allocation = placed["Allocations"][0].clone();
    let id = allocation["ID"].as_str().expect("the allocation's ID").to_owned();
    assert_eq!(allocation["Node"], node);
    assert_eq!(allocation["Tasks"], json!([{"Name": "web", "State": "running", "Restarts": 0, "Failed": false}]));
    let instances = agent.get("/v1/health/service/allocated?passing").await.json();
    assert_eq!(instances.as_array().map(Vec::len), Some(1), "{instances}");
    assert_eq!(instances[0]["Node"]["Node"], node);
    assert_eq!(instances[0]["Service"]["ID"], format!("{node}:{id}:web:http"));
    let page =
        reqwest::get(format!("http://127.0.0.1:{port}/")).await.expect("GET the task").text().await.expect("body");
    assert_eq!(page, "allocated\n");
    let status = agent.cli(&["job", "status", &job]).await;
    assert!(status.expect_success().stdout.contains(&id), "{}", status.stdout);

    // The allocation's local job is the servers' to change.
    let local = agent.get(&format!("/v1/agent/job/{id}")).await.expect_status(200).json();
    assert_eq!(local["Tasks"][0]["State"], "running");
    let refused = agent.delete(&format!("/v1/agent/job/{id}")).await;
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("runs allocation"), "{}", refused.text());
    let pid = task_pid(data.path(), &id).expect("the task's pid");

    // Undeploying stops it on the node and removes its service.
    agent.cli(&["job", "undeploy", &job]).await.expect_success();
    wait_job(&agent, &job, |job| {
        job["Allocations"].as_array().is_some_and(|a| a.iter().all(|a| a["ClientStatus"] == "complete"))
    })
    .await;
    eventually("the service gone", Duration::from_secs(20), || async {
        (agent.get("/v1/catalog/service/allocated").await.json() == json!([])).then_some(())
    })
    .await;
    eventually("the task's process gone", Duration::from_secs(10), || async {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
    agent.get(&format!("/v1/agent/job/{id}")).await.expect_status(404);
}
