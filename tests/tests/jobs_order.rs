//! Ordered tasks on one agent, systemd-style, with the database + proxy example (`examples/ordered/job.toml`) on
//! the exec driver: the proxy (`after` and `requires` the database) starts only once the database passes its check,
//! is stopped when the database goes down for good, and starts again once a resubmission brings the database back
//! and it passes again. The order is read from the catalog's indexes: the proxy's service is created after the
//! database's check turned passing.
//!
//! Needs root (namespaces, cgroups) and busybox-static: skipped with a printed reason otherwise, required under
//! `ROSTER_REQUIRE_EXEC=1` (CI).

use std::path::Path;
use std::time::Duration;

use roster_tests::etcd::free_port;
use roster_tests::exec::{busybox_rootfs, exec_or_skip};
use roster_tests::{AgentMode, TestAgent, eventually};
use serde_json::{Value, json};

/// The example job for this test: its own job name, ports picked now, and `rootfs` as the root filesystem.
fn example_job(job: &str, rootfs: &Path) -> String {
    let db_port = free_port().expect("a port");
    let proxy_port = loop {
        let port = free_port().expect("a port");
        if port != db_port {
            break port;
        }
    };
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ordered/job.toml"))
        .expect("examples/ordered/job.toml");
    text.replacen("name = \"shop\"", &format!("name = \"{job}\""), 1)
        .replace("/srv/rootfs/busybox", &rootfs.display().to_string())
        .replace("5432", &db_port.to_string())
        .replace("8080", &proxy_port.to_string())
}

async fn submit(agent: &TestAgent, toml: &str) -> Value {
    let resp = agent
        .request_with_headers(
            reqwest::Method::PUT,
            "/v1/agent/job",
            &[("Content-Type", "application/toml")],
            Some(toml.as_bytes().to_vec()),
        )
        .await;
    resp.expect_status(200);
    resp.json()
}

/// The task of this name in a job status.
fn task<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["Tasks"].as_array().and_then(|tasks| tasks.iter().find(|t| t["Name"] == name)).expect("the task")
}

/// The database's `db ready` check, as the catalog holds it.
async fn db_check(agent: &TestAgent) -> Option<Value> {
    let checks = agent.get("/v1/health/checks/shop-db").await.json();
    checks.as_array()?.iter().find(|check| check["Name"] == "db ready").cloned()
}

/// `Some((proxy service CreateIndex, db check ModifyIndex))` once the proxy's service passes.
async fn proxy_passing(agent: &TestAgent) -> Option<(u64, u64)> {
    let passing = agent.get("/v1/health/service/shop?passing").await.json();
    let created = passing.as_array().filter(|list| list.len() == 1)?[0]["Service"]["CreateIndex"].as_u64()?;
    let db = db_check(agent).await?;
    (db["Status"] == "passing").then_some((created, db["ModifyIndex"].as_u64()?))
}

fn task_pid(data: &Path, job: &str, task: &str) -> Option<i64> {
    let path = data.join(format!("exec/{job}.{task}/state.json"));
    let state: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    state["pid"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_starts_once_the_database_passes_and_stops_when_it_is_down() {
    if !exec_or_skip("the ordered-tasks test") {
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let rootfs = tempfile::tempdir().expect("rootfs");
    busybox_rootfs(rootfs.path(), &["sh", "httpd"]);
    std::fs::create_dir_all(rootfs.path().join("srv/db")).expect("srv/db");
    std::fs::create_dir_all(rootfs.path().join("srv/www")).expect("srv/www");
    std::fs::write(rootfs.path().join("srv/www/index.html"), "shop\n").expect("page");
    let agent = TestAgent::start_with_config(
        "exec-order",
        AgentMode::Server { data_dir: data.path().to_path_buf() },
        json!({}),
    )
    .await
    .expect("agent");
    let job = format!("shop-{}", std::process::id());
    let spec = example_job(&job, rootfs.path());

    // The database starts; the proxy waits for it.
    let status = submit(&agent, &spec).await;
    assert_eq!(task(&status, "db")["State"], "running", "{status}");
    assert_eq!(task(&status, "proxy")["State"], "waiting", "{status}");

    // The database runs but does not answer /ready yet: once its check has been probed and failed, the proxy still
    // waits, for the database, and has registered nothing.
    eventually("the database's check probed and failing", Duration::from_secs(20), || async {
        let check = db_check(&agent).await?;
        (check["Status"] == "critical" && check["Output"].as_str()?.contains("404")).then_some(())
    })
    .await;
    let status = agent.get(&format!("/v1/agent/job/{job}")).await.json();
    let proxy = task(&status, "proxy");
    assert_eq!(proxy["State"], "waiting", "{status}");
    assert_eq!(proxy["Reason"], "waiting for db (checks not passing)", "{status}");
    assert_eq!(agent.get("/v1/catalog/service/shop").await.json(), json!([]));
    assert_eq!(task_pid(data.path(), &job, "proxy"), None, "the proxy was never started");

    // The database becomes ready: the proxy starts after its check passed, and serves.
    std::fs::write(rootfs.path().join("srv/db/ready"), "ok\n").expect("ready");
    let (created, db_passed) = eventually("the proxy passing", Duration::from_secs(20), || proxy_passing(&agent)).await;
    assert!(created > db_passed, "the proxy registered at {created}, after the database passed at {db_passed}");
    let proxy_pid = task_pid(data.path(), &job, "proxy").expect("the proxy's pid");

    // The database dies and its policy ("no") leaves it down: the proxy is stopped and its service removed.
    let db_pid = task_pid(data.path(), &job, "db").expect("the database's pid");
    let killed = std::process::Command::new("kill").args(["-9", &db_pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = eventually("the proxy stopped", Duration::from_secs(20), || async {
        let status = agent.get(&format!("/v1/agent/job/{job}")).await.json();
        (task(&status, "proxy")["State"] == "stopped").then_some(status)
    })
    .await;
    assert_eq!(task(&status, "db")["LastExitCode"], 137, "{status}");
    assert_eq!(task(&status, "proxy")["Reason"], "stopped: requires db, which is down", "{status}");
    assert_eq!(agent.get("/v1/catalog/service/shop").await.json(), json!([]));
    eventually("the proxy's process gone", Duration::from_secs(10), || async {
        (!Path::new(&format!("/proc/{proxy_pid}")).exists()).then_some(())
    })
    .await;

    // Submitting the job again brings the database back; the proxy follows once the database passes again.
    let status = submit(&agent, &spec).await;
    assert_eq!(task(&status, "db")["State"], "running", "{status}");
    assert_eq!(task(&status, "proxy")["State"], "waiting", "{status}");
    let (created, db_passed) =
        eventually("the proxy passing again", Duration::from_secs(20), || proxy_passing(&agent)).await;
    assert!(created > db_passed, "the proxy registered at {created}, after the database passed at {db_passed}");

    agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
    assert_eq!(agent.get("/v1/catalog/service/shop").await.json(), json!([]));
    assert_eq!(agent.get("/v1/catalog/service/shop-db").await.json(), json!([]));
}
