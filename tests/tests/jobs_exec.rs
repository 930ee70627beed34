//! The exec driver through the agent: a busybox rootfs task with a memory limit and an HTTP check is registered
//! once it serves, survives an agent restart as the same process (adopted, not relaunched), and stopping the job
//! deregisters it and ends the process; a task on the roster bridge is registered at its own address.
//!
//! Needs root (namespaces, cgroups): skipped with a printed reason otherwise, required under `ROSTER_REQUIRE_EXEC=1` (CI).

use std::path::Path;
use std::time::Duration;

use roster_tests::etcd::free_port;
use roster_tests::{AgentMode, TestAgent, eventually};
use serde_json::{Value, json};

/// A rootfs holding busybox and one page.
fn busybox_rootfs(dir: &Path) {
    roster_tests::exec::busybox_rootfs(dir, &["sh", "httpd", "sleep", "cat"]);
    std::fs::create_dir_all(dir.join("www")).expect("www");
    std::fs::write(dir.join("www/index.html"), "served from an exec task\n").expect("page");
}

fn exec_or_skip() -> bool {
    roster_tests::exec::exec_or_skip("the exec-driver job test")
}

/// `Some` once exactly one `static` instance passes.
async fn one_passing(agent: &TestAgent) -> Option<()> {
    let health = agent.get("/v1/health/service/static?passing").await.json();
    (health.as_array().map_or(0, Vec::len) == 1).then_some(())
}

/// The task's main process ID, from the supervisor's state file.
fn task_pid(data: &Path, job: &str) -> Option<i64> {
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join(format!("exec/{job}.web/state.json"))).ok()?).ok()?;
    state["pid"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_task_is_registered_adopted_across_agent_restarts_and_stopped() {
    if !exec_or_skip() {
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let rootfs = tempfile::tempdir().expect("rootfs");
    busybox_rootfs(rootfs.path());
    let port = free_port().expect("port");
    let job = format!("static-{}", std::process::id());
    let mut agent = TestAgent::start_with_config(
        "exec-agent",
        AgentMode::Server { data_dir: data.path().to_path_buf() },
        json!({}),
    )
    .await
    .expect("agent");

    let spec = json!({
        "name": job,
        "tasks": [{
            "name": "web",
            "driver": "exec",
            "rootfs": rootfs.path(),
            "command": "/bin/httpd",
            "args": ["-f", "-p", port.to_string(), "-h", "/www"],
            "resources": {"memory_mb": 32, "pids": 16},
            "restart": {"policy": "on-failure"},
            "stop_timeout": "2s",
            "services": [{
                "name": "static",
                "port": "http",
                "checks": [{"http": "http://${address}:${port}/", "interval": "1s", "timeout": "1s"}],
            }],
            "ports": [{"label": "http", "container_port": port, "host_port": port}],
        }],
    });
    let submitted = agent.put_json("/v1/agent/job", &spec).await;
    submitted.expect_status(200);
    eventually("the exec task passing", Duration::from_secs(20), || one_passing(&agent)).await;
    let pid = task_pid(data.path(), &job).expect("the task's pid");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("the task's cgroups");
    assert!(cgroups.contains(&format!("roster/exec-agent/{job}.web")), "in its own cgroup: {cgroups}");

    // An agent restart adopts the running task: the same process keeps serving.
    agent.restart().await;
    eventually("passing after the restart", Duration::from_secs(20), || one_passing(&agent)).await;
    assert_eq!(task_pid(data.path(), &job), Some(pid), "adopted, not relaunched");
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
    assert_eq!(agent.get("/v1/catalog/service/static").await.json(), json!([]));
    eventually("the task's process gone", Duration::from_secs(10), || async {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_task_shows_its_exit_code_and_last_lines_and_leaves_passing() {
    if !exec_or_skip() {
        return;
    }
    let rootfs = tempfile::tempdir().expect("rootfs");
    busybox_rootfs(rootfs.path());
    let agent = TestAgent::dev("exec-crash").await;
    let job = format!("crash-{}", std::process::id());
    let spec = json!({
        "name": job,
        "tasks": [{
            "name": "web",
            "driver": "exec",
            "rootfs": rootfs.path(),
            "command": "/bin/sh",
            "args": ["-c", "echo starting; sleep 1; echo boom: cannot open config; exit 3"],
            "restart": {"policy": "no"},
            "services": [{"name": "crashy"}],
        }],
    });
    agent.put_json("/v1/agent/job", &spec).await.expect_status(200);
    let task = eventually("the task exited", Duration::from_secs(15), || async {
        let task = agent.get(&format!("/v1/agent/job/{job}")).await.json()["Tasks"][0].clone();
        (task["LastExitCode"] == 3).then_some(task)
    })
    .await;
    let logs: Vec<&str> = task["LastLogs"].as_array().expect("logs").iter().filter_map(Value::as_str).collect();
    assert!(logs.iter().any(|l| l.contains("boom: cannot open config")), "{logs:?}");
    // Policy "no": it stays down and its service is deregistered.
    eventually("the service gone", Duration::from_secs(5), || async {
        (agent.get("/v1/catalog/service/crashy").await.json() == json!([])).then_some(())
    })
    .await;
    let status = agent.cli(&["job", "status", &job]).await;
    assert!(status.stdout.contains("boom: cannot open config"), "{}", status.stdout);
    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_bridge_task_is_registered_and_served_at_its_own_address() {
    if !exec_or_skip() {
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let rootfs = tempfile::tempdir().expect("rootfs");
    busybox_rootfs(rootfs.path());
    let agent = TestAgent::start_with_config(
        "exec-bridge",
        AgentMode::Server { data_dir: data.path().to_path_buf() },
        json!({}),
    )
    .await
    .expect("agent");
    let job = format!("bridged-{}", std::process::id());
    // Port 80 inside the task's own network namespace: no host port is taken, so no conflict with the host.
    let spec = json!({
        "name": job,
        "tasks": [{
            "name": "web",
            "driver": "exec",
            "network": "bridge",
            "rootfs": rootfs.path(),
            "command": "/bin/httpd",
            "args": ["-f", "-p", "80", "-h", "/www"],
            "stop_timeout": "1s",
            "services": [{
                "name": "bridged",
                "port": "http",
                "address_mode": "container",
                "checks": [{"http": "http://${address}:${port}/", "interval": "1s", "timeout": "1s"}],
            }],
            "ports": [{"label": "http", "container_port": 80}],
        }],
    });
    agent.put_json("/v1/agent/job", &spec).await.expect_status(200);
    let passing = eventually("the bridge task passing", Duration::from_secs(20), || async {
        let health = agent.get("/v1/health/service/bridged?passing").await.json();
        health.as_array().filter(|instances| instances.len() == 1).map(|instances| instances[0].clone())
    })
    .await;

    // The registered address is the one the driver allocated and recorded for the task.
    let task: Value = serde_json::from_slice(
        &std::fs::read(data.path().join(format!("exec/{job}.web/task.json"))).expect("the task's task.json"),
    )
    .expect("task.json");
    let address = task["network"]["address"].as_str().expect("a bridge address").to_string();
    assert!(address.starts_with("10.89.0."), "{address}");
    assert_eq!(passing["Service"]["Address"], json!(address));
    assert_eq!(passing["Service"]["Port"], json!(80));
    let page = reqwest::get(format!("http://{address}:80/")).await.expect("GET the task").text().await.expect("body");
    assert_eq!(page, "served from an exec task\n");

    let veth = task["network"]["host_veth"].as_str().expect("the host veth").to_string();
    assert!(Path::new("/sys/class/net").join(&veth).exists(), "{veth} is on the host");
    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
    assert_eq!(agent.get("/v1/catalog/service/bridged").await.json(), json!([]));
    eventually("the veth gone", Duration::from_secs(10), || async {
        (!Path::new("/sys/class/net").join(&veth).exists()).then_some(())
    })
    .await;
}
