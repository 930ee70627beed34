//! Issue 18's multi-host tier: 3 servers and client agents on distinct loopback addresses, only the clients
//! eligible (`node_meta.role = worker` and a constraint on it), exec tasks from a busybox root filesystem.
//!
//! - Helios through the CLI: `roster hosts`, `job deploy FILE -node <client>`, `job status`, the task's process on
//!   that client (adopted, and its service back, across the client's restart), `job undeploy` ends it and removes
//!   its service.
//! - `count = 3, distinct_hosts`: one allocation per client, each service on the node running it and in DNS; a
//!   client killed with SIGKILL has its allocation moved within the job's grace plus failure detection, DNS follows,
//!   and once it returns it stops what moved while the job never has more than `count` allocations running nor
//!   more than `count` instances passing.
//! - `global`: reaches a client that joins later.
//! - A rolling update to a version whose check fails rolls back to the last good one, and the passing instances
//!   never drop below `count - max_parallel`.
//! - An allocation whose task runs out of restarts is replaced.
//!
//! Needs root (namespaces, cgroups) and busybox-static: skipped with a printed reason otherwise, required under
//! `ROSTER_REQUIRE_EXEC=1` (CI). Each test forms its own cluster.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use roster_tests::dig::{dig, rdata};
use roster_tests::exec::{busybox_rootfs, exec_or_skip};
use roster_tests::jobs::{exec_task_pid, process_alive, wait_job, wanted_running};
use roster_tests::{TestAgent, TestCluster, eventually};
use serde_json::{Value, json};
use tempfile::TempDir;

const SERVERS: usize = 3;
/// The task every job here runs.
const TASK: &str = "main";
/// How long after its node is killed an allocation may take to move: gossip's failure detection, the 2 s grace
/// the jobs set, the leader's plan and the new node's start, on a loaded machine.
const MOVE_WITHIN: Duration = Duration::from_secs(40);

/// A cluster whose clients can run exec tasks, and the root filesystem those tasks run in.
struct Setup {
    cluster: TestCluster,
    rootfs: TempDir,
}

/// What every client adds to its config: the metadata the jobs' constraint selects, and script checks (the rolling
/// update's checks run `/bin/true` or `/bin/false`).
fn worker_config() -> Value {
    json!({"node_meta": {"role": "worker"}, "enable_script_checks": true})
}

/// Starts 3 servers (with DNS) and `clients` workers, and waits until every worker is a host that runs exec tasks.
async fn start(clients: usize) -> Option<Setup> {
    if !exec_or_skip("the multi-host job tests") {
        return None;
    }
    let rootfs = tempfile::tempdir().expect("rootfs");
    busybox_rootfs(rootfs.path(), &["sh", "sleep"]);
    let cluster = TestCluster::try_start_roles(SERVERS, clients, json!({"ports": {"dns": 0}}), worker_config())
        .await
        .expect("the cluster");
    let setup = Setup { cluster, rootfs };
    for client in &setup.cluster.clients {
        setup.wait_host(client.node_name()).await;
    }
    Some(setup)
}

impl Setup {
    fn s1(&self) -> &TestAgent {
        &self.cluster.servers[0]
    }

    /// Waits until the servers list `node` as a host with the exec driver.
    async fn wait_host(&self, node: &str) {
        eventually(&format!("{node} listed as an exec host"), Duration::from_secs(60), || async {
            let hosts = self.s1().get("/v1/hosts").await.json();
            let listed = hosts.as_array().into_iter().flatten().any(|host| {
                host["Node"] == node && host["Drivers"].as_array().is_some_and(|d| d.contains(&json!("exec")))
            });
            listed.then_some(())
        })
        .await;
    }

    /// The index (among the clients) of the client named `node`.
    fn client_idx(&self, node: &str) -> usize {
        self.cluster.clients.iter().position(|c| c.node_name() == node).unwrap_or_else(|| panic!("no client {node}"))
    }

    /// The data dir of client `idx`.
    fn client_data(&self, idx: usize) -> &std::path::Path {
        self.cluster.data_dir(SERVERS + idx)
    }

    /// The address of client `idx`.
    fn client_ip(&self, idx: usize) -> String {
        self.cluster.ip(SERVERS + idx).to_string()
    }

    /// A job running `args` under `/bin/sh -c` (or a long sleep), registering service `service` with `checks`.
    fn spec(&self, name: &str, service: &str, placement: Value, command: Option<&str>, checks: Value) -> Value {
        let mut placement = placement;
        placement["constraints"] = json!([{"attribute": "node_meta.role", "operator": "=", "value": "worker"}]);
        let (command, args) = match command {
            Some(script) => ("/bin/sh", json!(["-c", script])),
            None => ("/bin/sleep", json!(["3600"])),
        };
        json!({
            "name": name,
            "placement": placement,
            "tasks": [{
                "name": TASK,
                "driver": "exec",
                "rootfs": self.rootfs.path(),
                "command": command,
                "args": args,
                "stop_timeout": "2s",
                "services": [{"name": service, "checks": checks}],
            }],
        })
    }
}

/// Whether every allocation the servers want running runs, and there are `n` of them.
fn all_running(job: &Value, n: usize) -> bool {
    let run = wanted_running(job);
    run.len() == n && run.iter().all(|a| a["ClientStatus"] == "running" && a["Healthy"] == true)
}

fn nodes_of(allocations: &[&Value]) -> BTreeSet<String> {
    allocations.iter().map(|a| a["Node"].as_str().expect("a node").to_owned()).collect()
}

/// The `web` addresses the servers' DNS answers, sorted.
fn dns_addresses(agent: &TestAgent, service: &str) -> Vec<String> {
    rdata(&dig(agent, &[&format!("{service}.service.consul"), "A"]).answer)
}

/// The instances of `service` passing, as (node, address).
async fn passing(agent: &TestAgent, service: &str) -> Vec<(String, String)> {
    let instances = agent.get(&format!("/v1/health/service/{service}?passing")).await.json();
    let mut out: Vec<(String, String)> = (instances.as_array().into_iter().flatten())
        .map(|i| {
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (text(&i["Node"]["Node"]), text(&i["Service"]["Address"]))
        })
        .collect();
    out.sort();
    out
}

/// What a [`Sampler`] saw.
#[derive(Debug, Clone, Copy)]
struct Samples {
    taken: usize,
    min_passing: usize,
    max_passing: usize,
    /// The most allocations the servers wanted running that their nodes reported running at once.
    max_running: usize,
}

/// Reads a job's allocations and its service's passing instances from a server over and over, in the
/// background, until stopped: the bounds of what a watcher of the job or the service could see meanwhile.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Samples>,
}

impl Sampler {
    fn start(agent: &TestAgent, job: &str, service: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let client = agent.client().clone();
        let job_url = agent.url(&format!("/v1/job/{job}"));
        let health_url = agent.url(&format!("/v1/health/service/{service}?passing"));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Samples { taken: 0, min_passing: usize::MAX, max_passing: 0, max_running: 0 };
            while !flag.load(Ordering::SeqCst) {
                let read = |url: String| {
                    let client = client.clone();
                    async move { client.get(url).send().await.ok()?.json::<Value>().await.ok() }
                };
                if let (Some(job), Some(health)) = (read(job_url.clone()).await, read(health_url.clone()).await) {
                    let running = wanted_running(&job).iter().filter(|a| a["ClientStatus"] == "running").count();
                    let passing = health.as_array().map_or(0, Vec::len);
                    seen.taken += 1;
                    seen.min_passing = seen.min_passing.min(passing);
                    seen.max_passing = seen.max_passing.max(passing);
                    seen.max_running = seen.max_running.max(running);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        });
        Sampler { stop, task }
    }

    async fn finish(self) -> Samples {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self.task.await.expect("the sampler");
        assert!(seen.taken > 0, "the sampler read nothing");
        seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helios_flow_deploys_to_a_named_client_through_the_cli_and_undeploys() {
    let Some(setup) = start(3).await else { return };
    let s1 = setup.s1();

    let hosts = s1.cli(&["hosts"]).await;
    for client in &setup.cluster.clients {
        let line = hosts.stdout.lines().find(|l| l.starts_with(client.node_name()));
        let line = line.unwrap_or_else(|| panic!("{} not in roster hosts:\n{}", client.node_name(), hosts.stdout));
        assert!(line.contains("exec") && line.contains("role=worker"), "{line}");
    }

    let target = setup.cluster.clients[1].node_name().to_owned();
    let file = tempfile::NamedTempFile::with_suffix(".json").expect("job file");
    let spec = setup.spec("helios", "helios", json!({}), None, json!([]));
    std::fs::write(file.path(), spec.to_string()).expect("write the job");
    s1.cli(&["job", "deploy", &file.path().display().to_string(), "-node", &target]).await.expect_success();

    let job = wait_job(s1, "helios", |job| all_running(job, 1)).await;
    let allocation = wanted_running(&job)[0].clone();
    assert_eq!(allocation["Node"], target.as_str());
    let id = allocation["ID"].as_str().expect("the allocation's ID").to_owned();
    let status = s1.cli(&["job", "status", "helios"]).await;
    let line = status.expect_success().stdout.lines().find(|l| l.starts_with(&id)).map(str::to_owned);
    let line = line.unwrap_or_else(|| panic!("{id} not in job status:\n{}", status.stdout));
    assert!(line.contains(&target) && line.contains("running"), "{line}");

    // The task runs on that client, and its service is registered there.
    let pid = exec_task_pid(setup.client_data(1), &id, TASK).expect("the task's pid on the named client");
    assert!(process_alive(pid));
    for other in [0, 2] {
        assert_eq!(exec_task_pid(setup.client_data(other), &id, TASK), None, "nothing runs on other clients");
    }
    let instances = passing(s1, "helios").await;
    assert_eq!(instances, [(target.clone(), setup.client_ip(1))]);

    // The client restarts: it adopts the task (same process) and, once the servers confirm the allocation is
    // still its own, registers its service again.
    let mut setup = setup;
    setup.cluster.clients[1].restart().await;
    let s1 = setup.s1();
    eventually("the service passing again after the client's restart", Duration::from_secs(60), || async {
        (passing(s1, "helios").await == instances).then_some(())
    })
    .await;
    assert_eq!(exec_task_pid(setup.client_data(1), &id, TASK), Some(pid), "adopted, not started again");
    assert!(process_alive(pid));
    let job = s1.get("/v1/job/helios").await.json();
    assert_eq!(wanted_running(&job).iter().map(|a| a["ID"].clone()).collect::<Vec<_>>(), [json!(id)]);

    s1.cli(&["job", "undeploy", "helios"]).await.expect_success();
    wait_job(s1, "helios", |job| {
        job["Allocations"].as_array().is_some_and(|a| a.iter().all(|a| a["ClientStatus"] == "complete"))
    })
    .await;
    eventually("the task's process gone", Duration::from_secs(20), || async { (!process_alive(pid)).then_some(()) })
        .await;
    eventually("the service gone from the catalog", Duration::from_secs(20), || async {
        (s1.get("/v1/catalog/service/helios").await.json() == json!([])).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_move_off_a_killed_client_and_never_double_when_it_returns() {
    let Some(mut setup) = start(4).await else { return };
    let placement = json!({"count": 3, "distinct_hosts": true, "reschedule_grace": "2s"});
    let spec = setup.spec("web", "web", placement, None, json!([]));
    setup.s1().put_json("/v1/jobs", &spec).await.expect_status(200);

    // One allocation per client, each registered on its node and answered by DNS.
    let job = wait_job(setup.s1(), "web", |job| all_running(job, 3)).await;
    let run = wanted_running(&job);
    let placed = nodes_of(&run);
    assert_eq!(placed.len(), 3, "distinct hosts: {placed:?}");
    let ip_of: std::collections::BTreeMap<String, String> = (0..setup.cluster.clients.len())
        .map(|idx| (setup.cluster.clients[idx].node_name().to_owned(), setup.client_ip(idx)))
        .collect();
    let ips = |nodes: &BTreeSet<String>| -> Vec<String> {
        let mut ips: Vec<String> = nodes.iter().map(|n| ip_of[n].clone()).collect();
        ips.sort();
        ips
    };
    let want: Vec<(String, String)> = placed.iter().map(|n| (n.clone(), ip_of[n].clone())).collect();
    eventually("each instance passing on the node that runs it", Duration::from_secs(30), || async {
        (passing(setup.s1(), "web").await == want).then_some(())
    })
    .await;
    eventually("DNS answers the three", Duration::from_secs(30), || async {
        (dns_addresses(setup.s1(), "web") == ips(&placed)).then_some(())
    })
    .await;

    // Kill one client outright: its task keeps running (its supervisor is not the agent's child), as on a host
    // cut off from the cluster.
    let victim = run[0]["Node"].as_str().expect("a node").to_owned();
    let victim_alloc = run[0]["ID"].as_str().expect("an ID").to_owned();
    let victim_idx = setup.client_idx(&victim);
    let victim_pid = exec_task_pid(setup.client_data(victim_idx), &victim_alloc, TASK).expect("the victim's task");
    let sampler = Sampler::start(setup.s1(), "web", "web");
    setup.cluster.clients[victim_idx].kill9();
    let killed = Instant::now();

    let job = wait_job(setup.s1(), "web", |job| {
        all_running(job, 3) && wanted_running(job).iter().all(|a| a["Node"] != victim.as_str())
    })
    .await;
    let moved_in = killed.elapsed();
    println!("allocation moved off the killed client {moved_in:?} after the kill");
    assert!(moved_in < MOVE_WITHIN, "moved in {moved_in:?}");
    let now_placed = nodes_of(&wanted_running(&job));
    assert!(!now_placed.contains(&victim) && now_placed.len() == 3, "{now_placed:?}");
    eventually("DNS follows the move", Duration::from_secs(30), || async {
        (dns_addresses(setup.s1(), "web") == ips(&now_placed)).then_some(())
    })
    .await;
    assert!(process_alive(victim_pid), "the cut-off client's task still runs until its agent returns");

    // The client returns: it learns its allocation moved, stops the task, and never registers it again.
    setup.cluster.clients[victim_idx].restart().await;
    eventually("the returned client stopped what moved", Duration::from_secs(60), || async {
        (!process_alive(victim_pid)).then_some(())
    })
    .await;
    let returned = &setup.cluster.clients[victim_idx];
    eventually("the returned client registers no web instance", Duration::from_secs(30), || async {
        let services = returned.get("/v1/agent/services").await.json();
        let any_web = services.as_object().is_some_and(|s| s.values().any(|svc| svc["Service"] == "web"));
        (!any_web).then_some(())
    })
    .await;
    eventually("the returned client alive to the servers", Duration::from_secs(30), || async {
        roster_tests::alive_members(setup.s1()).await.contains(&victim).then_some(())
    })
    .await;
    let seen = sampler.finish().await;
    println!("while the client was away and back: {seen:?}");
    assert!(seen.max_running <= 3, "more than count running: {seen:?}");
    assert!(seen.max_passing <= 3, "more than count passing: {seen:?}");
    let catalog = setup.s1().get(&format!("/v1/catalog/node-services/{victim}")).await.json();
    let on_victim = catalog["Services"].as_array().map_or(0, |s| s.iter().filter(|s| s["Service"] == "web").count());
    assert_eq!(on_victim, 0, "{catalog}");
    let job = setup.s1().get("/v1/job/web").await.json();
    assert!(all_running(&job, 3) && nodes_of(&wanted_running(&job)) == now_placed, "{job:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_job_reaches_a_client_that_joins_later() {
    let Some(setup) = start(2).await else { return };
    let spec = setup.spec("agentd", "agentd", json!({"global": true}), None, json!([]));
    setup.s1().put_json("/v1/jobs", &spec).await.expect_status(200);
    let job = wait_job(setup.s1(), "agentd", |job| all_running(job, 2)).await;
    let clients: BTreeSet<String> = setup.cluster.clients.iter().map(|c| c.node_name().to_owned()).collect();
    assert_eq!(nodes_of(&wanted_running(&job)), clients, "one per eligible node, none on the servers");

    let data = tempfile::tempdir().expect("data dir");
    let late = setup
        .cluster
        .start_outsider(SERVERS + 2, "c-late", Vec::new(), data.path(), &worker_config())
        .await
        .expect("the late client");
    let job = wait_job(setup.s1(), "agentd", |job| all_running(job, 3)).await;
    let on_late: Vec<&Value> = wanted_running(&job).into_iter().filter(|a| a["Node"] == "c-late").collect();
    assert_eq!(on_late.len(), 1, "{job:#}");
    let id = on_late[0]["ID"].as_str().expect("an ID");
    let pid = exec_task_pid(data.path(), id, TASK).expect("the task on the late client");
    assert!(process_alive(pid));
    drop(late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_to_a_failing_check_rolls_back_and_keeps_count_minus_max_parallel_passing() {
    let Some(setup) = start(3).await else { return };
    let s1 = setup.s1();
    let update = json!({"max_parallel": 1, "min_healthy_time": "1s", "healthy_deadline": "15s", "auto_revert": true});
    let version = |check: &str| {
        let mut spec = setup.spec(
            "web",
            "web",
            json!({"count": 3, "distinct_hosts": true}),
            None,
            json!([{"args": [check], "interval": "1s", "timeout": "1s"}]),
        );
        spec["update"] = update.clone();
        spec
    };
    s1.put_json("/v1/jobs", &version("/bin/true")).await.expect_status(200);
    wait_job(s1, "web", |job| job["Rollout"] == "healthy" && all_running(job, 3)).await;
    eventually("three passing", Duration::from_secs(30), || async {
        (passing(s1, "web").await.len() == 3).then_some(())
    })
    .await;

    let sampler = Sampler::start(s1, "web", "web");
    s1.put_json("/v1/jobs", &version("/bin/false")).await.expect_status(200);
    let job = wait_job(s1, "web", |job| {
        job["Version"] == 3
            && job["Rollout"] == "healthy"
            && all_running(job, 3)
            && wanted_running(job).iter().all(|a| a["Version"] == 3)
    })
    .await;
    eventually("three passing again", Duration::from_secs(30), || async {
        (passing(s1, "web").await.len() == 3).then_some(())
    })
    .await;
    let seen = sampler.finish().await;
    println!("during the update and its rollback: {seen:?}");
    assert!(seen.min_passing >= 2, "passing dropped below count - max_parallel: {seen:?}");

    let versions = s1.get("/v1/job/web/versions").await.json();
    let by_number = |n: u64| versions.as_array().and_then(|v| v.iter().find(|v| v["Version"] == n)).cloned();
    let failed = by_number(2).expect("version 2");
    assert_eq!(failed["Rollout"], "failed", "{failed:#}");
    assert!(failed["RolloutMessage"].as_str().is_some_and(|m| m.contains("not healthy within 15s")), "{failed:#}");
    let reverted = by_number(3).expect("version 3");
    assert_eq!((reverted["RevertedFrom"].clone(), reverted["Current"].clone()), (json!(1), json!(true)));
    assert_eq!(reverted["Spec"]["tasks"][0]["services"][0]["checks"][0]["args"], json!(["/bin/true"]));
    assert_eq!(job["Rollout"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_whose_task_runs_out_of_restarts_is_replaced() {
    let Some(setup) = start(3).await else { return };
    let s1 = setup.s1();
    let mut spec = setup.spec("crashy", "crashy", json!({}), Some("exit 3"), json!([]));
    spec["tasks"][0]["restart"] = json!({"policy": "on-failure", "attempts": 1, "delay": "100ms"});
    let sampler = Sampler::start(s1, "crashy", "crashy");
    s1.put_json("/v1/jobs", &spec).await.expect_status(200);

    let failed = wait_job(s1, "crashy", |job| job["Allocations"][0]["ClientStatus"] == "failed").await;
    let first = failed["Allocations"][0].clone();
    assert_eq!(first["Tasks"][0]["Restarts"], 1, "{first:#}");
    let first_id = first["ID"].as_str().expect("an ID").to_owned();
    let failed_at = Instant::now();

    // Replaced: the failed one stopped (and removed once its node ended it), a new one placed and started.
    let job = wait_job(s1, "crashy", |job| {
        let run = wanted_running(job);
        let replaced = run.len() == 1 && run[0]["ID"] != first_id.as_str();
        let started = run.first().is_some_and(|a| a["Tasks"].as_array().is_some_and(|t| !t.is_empty()));
        let first_gone_or_stopped = (job["Allocations"].as_array().into_iter().flatten())
            .filter(|a| a["ID"] == first_id.as_str())
            .all(|a| a["DesiredStatus"] == "stop");
        replaced && started && first_gone_or_stopped
    })
    .await;
    let waited = failed_at.elapsed();
    println!("replaced {waited:?} after the failure was seen: {}", job["Allocations"]);
    let seen = sampler.finish().await;
    assert!(seen.max_running <= 1, "{seen:?}");
    let status = s1.cli(&["job", "status", "crashy"]).await;
    assert!(!status.expect_success().stdout.is_empty());
}
