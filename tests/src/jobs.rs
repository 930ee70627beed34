//! Cluster jobs as a test waits on them: `/v1/job/<name>` read with blocking queries until it reaches a state, and
//! the process an exec task of an allocation runs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::TestAgent;

/// How long [`wait_job`] waits for a state before it fails the test: a rollout with a deadline and a rollback on a
/// loaded machine fits well within it.
const WAIT_JOB_LIMIT: Duration = Duration::from_secs(180);

/// Reads `/v1/job/<name>` with blocking queries until `done` holds, returning the job: waits on the job's index,
/// never on a clock (the limit only bounds a test that would otherwise hang).
pub async fn wait_job(agent: &TestAgent, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    let mut index = 0;
    let mut last = Value::Null;
    while started.elapsed() < WAIT_JOB_LIMIT {
        let res = agent.get(&format!("/v1/job/{name}?index={index}&wait=30s")).await;
        let job = res.expect_status(200).json();
        if done(&job) {
            return job;
        }
        index = res.index();
        last = job;
    }
    panic!("job {name} did not reach the state asked for within {WAIT_JOB_LIMIT:?}; last seen: {last:#}");
}

/// The allocations of a job (as `/v1/job/<name>` lists them) the servers want running.
pub fn wanted_running(job: &Value) -> Vec<&Value> {
    job["Allocations"].as_array().into_iter().flatten().filter(|a| a["DesiredStatus"] == "run").collect()
}

/// The main process ID of exec task `task` of the local job `local_job` (an allocation's ID), from the supervisor's
/// state file under the agent's data dir.
pub fn exec_task_pid(data_dir: &Path, local_job: &str, task: &str) -> Option<i64> {
    let path = data_dir.join(format!("exec/{local_job}.{task}/state.json"));
    let state: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    state["pid"].as_i64()
}

/// Whether process `pid` exists.
pub fn process_alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
