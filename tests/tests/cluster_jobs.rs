//! Cluster jobs (issue 18) through the HTTP API and the CLI of a dev agent: a job is accepted, versioned, reverted and
//! undeployed; one no node can take is pending with a reason per filter; bad specs are 400s naming the field, with nothing stored. Placement itself is the scheduler's table and
//! property tests; running allocations on nodes is the node side's.

use roster_tests::TestAgent;
use roster_tests::jobs::wait_job;
use serde_json::{Value, json};

fn spec(image_tag: &str, placement: Value) -> Value {
    json!({"name": "web", "placement": placement, "tasks": [{
        "name": "httpd", "driver": "exec", "command": "/bin/sleep", "args": [image_tag],
        "services": [{"name": "web"}],
    }]})
}

#[tokio::test]
async fn a_job_nobody_can_run_is_pending_with_reasons_then_versioned_reverted_and_undeployed() {
    let agent = TestAgent::dev("jobs-dev").await;
    let placement = json!({"constraints": [{"attribute": "node_meta.zone", "operator": "=", "value": "edge"}]});
    let res = agent.put_json("/v1/jobs", &spec("100", placement.clone())).await;
    assert_eq!(res.expect_status(200).json(), json!({"Name": "web", "Version": 1}));

    let job = wait_job(&agent, "web", |job| job["Status"] == "pending").await;
    let pending: Vec<String> = serde_json::from_value(job["Pending"].clone()).expect("reasons");
    assert_eq!(pending[0], "1 of 1 allocations not placed");
    assert!(pending.contains(&"node_meta.zone = edge: 0 of 1 nodes".to_owned()), "{pending:?}");
    assert_eq!(job["Allocations"], json!([]));
    assert_eq!(job["Spec"]["placement"]["constraints"][0]["value"], "edge", "the spec is stored as submitted");
    let list = agent.get("/v1/jobs").await.expect_status(200).json();
    assert_eq!((list[0]["Name"].clone(), list[0]["Status"].clone()), (json!("web"), json!("pending")));

    // The same spec again is not a new version; a changed one is.
    assert_eq!(agent.put_json("/v1/jobs", &spec("100", placement.clone())).await.json()["Version"], 1);
    assert_eq!(agent.put_json("/v1/jobs", &spec("200", placement.clone())).await.json()["Version"], 2);
    agent.put("/v1/job/web/revert?version=1", "").await.expect_status(200);
    let versions = agent.get("/v1/job/web/versions").await.expect_status(200).json();
    let numbers: Vec<u64> = versions.as_array().unwrap().iter().map(|v| v["Version"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!((versions[0]["RevertedFrom"].clone(), versions[0]["Current"].clone()), (json!(1), json!(true)));
    assert_eq!(versions[0]["Spec"]["tasks"][0]["args"], json!(["100"]));
    let missing = agent.put("/v1/job/web/revert?version=9", "").await;
    assert_eq!(missing.status, 400);
    assert!(missing.text().contains("has no version 9 (kept: 1, 2, 3)"), "{}", missing.text());

    let history = agent.cli(&["job", "history", "web"]).await;
    history.expect_success();
    let lines: Vec<&str> = history.stdout.lines().collect();
    assert!(lines[0].starts_with("Version  Current  Rollout"), "{}", history.stdout);
    assert!(lines[1].starts_with("3        true     in-progress  1"), "{}", history.stdout);
    let status = agent.cli(&["job", "status", "web"]).await;
    status.expect_success();
    assert!(status.stdout.contains("Status   pending"), "{}", status.stdout);
    assert!(status.stdout.contains("Pending: node_meta.zone = edge: 0 of 1 nodes"), "{}", status.stdout);
    assert!(
        status.stdout.contains("ID  Node  Version  Desired  Status  Healthy  Restarts  Tasks"),
        "{}",
        status.stdout
    );
    let hosts = agent.cli(&["hosts"]).await;
    // Whether this node is listed depends on the drivers its agent finds here (exec needs root, docker a daemon).
    let header: Vec<&str> = hosts.expect_success().stdout.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["Node", "Drivers", "Meta", "Allocations"]);

    let undeploy = agent.cli(&["job", "undeploy", "web"]).await;
    assert_eq!(undeploy.expect_success().stdout, "Undeployed job \"web\"\n");
    let job = wait_job(&agent, "web", |job| job["Status"] == "stopped" && job["Pending"] == json!([])).await;
    assert_eq!(job["Stopped"], true);
    agent.delete("/v1/job/web?purge").await.expect_status(200);
    assert_eq!(agent.get("/v1/job/web").await.status, 404);
    assert_eq!(agent.delete("/v1/job/web").await.status, 404);
}

#[tokio::test]
async fn bad_specs_are_refused_with_their_field_path_and_nothing_is_stored() {
    let agent = TestAgent::dev("jobs-bad").await;
    let cases = [
        (json!({"nodes": ["nowhere"]}), "placement.nodes[0]: no node named \"nowhere\" in the catalog"),
        (json!({"count": -1}), "placement.count: invalid value: integer `-1`"),
        (
            json!({"constraints": [{"attribute": "node.name", "operator": "~", "value": "a"}]}),
            "placement.constraints[0].operator: unknown variant `~`",
        ),
        (
            json!({"constraints": [{"attribute": "rack", "operator": "=", "value": "a"}]}),
            "placement.constraints[0].attribute: unknown attribute \"rack\"",
        ),
        (json!({"global": true, "count": 2}), "placement.global: a global job names no nodes and no count"),
    ];
    for (placement, want) in cases {
        let res = agent.put_json("/v1/jobs", &spec("1", placement.clone())).await;
        assert_eq!(res.status, 400, "{placement}: {}", res.text());
        assert!(res.text().contains(want), "{placement}: {:?} does not say {want:?}", res.text());
    }
    let res = agent.put_json("/v1/jobs", &json!({"name": "web", "tasks": [], "update": {"max_parallel": 0}})).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("update.max_parallel: must be at least 1"), "{}", res.text());
    assert_eq!(agent.get("/v1/jobs").await.expect_status(200).json(), json!([]));
    assert_eq!(agent.get("/v1/jobs?bogus=1").await.status, 400, "an unknown parameter is refused");
    // A job this agent runs alone has no placement to honour: the section is refused, not ignored.
    let res = agent.put_json("/v1/agent/job", &spec("1", json!({"count": 2}))).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("placement: only cluster jobs are placed"), "{}", res.text());

    // The CLI's -node goes into the placement, and an unknown node is the same 400.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("web.toml");
    std::fs::write(&file, "name = \"web\"\n[[tasks]]\nname = \"t\"\ndriver = \"exec\"\ncommand = \"/bin/true\"\n")
        .unwrap();
    let out = agent.cli(&["job", "deploy", "-node", "nowhere", file.to_str().unwrap()]).await;
    assert!(!out.success());
    assert!(out.stderr.contains("placement.nodes[0]: no node named \"nowhere\""), "{}", out.stderr);
    let out = agent.cli(&["job", "deploy", "-node", "jobs-bad", file.to_str().unwrap()]).await;
    assert_eq!(out.expect_success().stdout, "Deployed job \"web\" version 1\n");
    let job = agent.get("/v1/job/web").await.expect_status(200).json();
    assert_eq!(job["Spec"]["placement"]["nodes"], json!(["jobs-bad"]));
}
