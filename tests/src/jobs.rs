//! Cluster jobs as a test waits on them: `/v1/job/<name>` read with blocking queries until it reaches a state.

use serde_json::Value;

use crate::TestAgent;

/// Reads `/v1/job/<name>` with blocking queries until `done` holds, returning the job: waits on the job's index,
/// never on a clock.
pub async fn wait_job(agent: &TestAgent, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut index = 0;
    for _ in 0..50 {
        let res = agent.get(&format!("/v1/job/{name}?index={index}&wait=30s")).await;
        let job = res.expect_status(200).json();
        if done(&job) {
            return job;
        }
        index = res.index();
    }
    panic!("job {name} never reached the state asked for");
}
