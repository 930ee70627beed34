//! Network coordinates end to end: a dev server and two client agents on loopback, one of them behind a slow link
//! (the debug-build knob `ROSTER_TEST_COORDINATE_DELAY_MS` holds back every coordinate datagram it sends, as
//! `tc netem` would on a real interface). Gossip round trips move the coordinates, agents send them to the server,
//! and then `?near` orders the slow member last, `roster rtt` estimates it farther, `/v1/agent/self` carries the
//! agent's own coordinate, and py-consul reads `/v1/coordinate/*` unchanged.

use std::path::Path;
use std::time::Duration;

use roster_tests::{AgentMode, TestAgent, eventually};
use serde_json::{Value, json};

/// What every agent of the test runs with: coordinates sent every 1–2 s instead of 15–30 s.
fn fast_sync() -> Value {
    json!({"sync_coordinate_interval_min": "1s"})
}

async fn client(name: &str, hub: &TestAgent, data_dir: &Path, envs: &[(&str, &str)]) -> TestAgent {
    let serf = hub.serf_addr().to_string();
    let dir = data_dir.join(name).display().to_string();
    let args = ["-data-dir", &dir, "-retry-join", &serf, "-bind", "127.0.0.1", "-client", "127.0.0.1"]
        .map(str::to_owned)
        .to_vec();
    TestAgent::start_with_env(name, AgentMode::Args(args), fast_sync(), envs).await.expect("client starts")
}

fn names(body: &Value, field: &str) -> Vec<String> {
    body.as_array().expect("a list").iter().map(|v| v[field].as_str().unwrap_or_default().to_owned()).collect()
}

fn nodes_of_health(body: &Value) -> Vec<String> {
    body.as_array().expect("a list").iter().map(|e| e["Node"]["Node"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The milliseconds of `roster rtt`'s line.
fn rtt_ms(stdout: &str) -> f64 {
    let after = stdout.split("rtt: ").nth(1).unwrap_or_else(|| panic!("no estimate in {stdout:?}"));
    after.split(' ').next().and_then(|ms| ms.parse().ok()).unwrap_or_else(|| panic!("no number in {stdout:?}"))
}

#[tokio::test]
async fn near_sorts_a_slow_member_last_and_rtt_estimates_it_farther() {
    let hub = TestAgent::start_with_config("hub", AgentMode::Dev, fast_sync()).await.expect("dev agent starts");
    let dirs = tempfile::tempdir().expect("temp dir");
    let near = client("near", &hub, dirs.path(), &[]).await;
    let far = client("far", &hub, dirs.path(), &[("ROSTER_TEST_COORDINATE_DELAY_MS", "40")]).await;
    for agent in [&near, &far] {
        let body = json!({"Name": "web", "ID": format!("web-{}", agent.node_name()), "Port": 80});
        agent.put_json("/v1/agent/service/register", &body).await.expect_status(200);
    }

    // Until the coordinates have converged: the server holds all three, and from the hub the slow member is the
    // farthest by a clear margin (40 ms against well under a millisecond on loopback).
    eventually("coordinates that put the slow member far away", Duration::from_secs(90), || async {
        let out = hub.cli(&["rtt", "hub", "far"]).await;
        let near_out = hub.cli(&["rtt", "hub", "near"]).await;
        if !out.success() || !near_out.success() {
            return None;
        }
        (rtt_ms(&out.stdout) > 20.0 && rtt_ms(&near_out.stdout) < 10.0).then_some(())
    })
    .await;

    // `roster rtt` in Consul's words, with one node (the agent's own is the other) or two.
    let out = hub.cli(&["rtt", "far"]).await;
    out.expect_success();
    assert!(out.stdout.starts_with("Estimated far <-> hub rtt: "), "{}", out.stdout);
    assert!(out.stdout.trim_end().ends_with(" ms (using LAN coordinates)"), "{}", out.stdout);
    let missing = hub.cli(&["rtt", "hub", "nobody"]).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("Could not find a coordinate for node \"nobody\""), "{}", missing.stderr);

    // `?near` on the catalog and health endpoints: the slow member last, `_agent` meaning the agent asked.
    let nodes = hub.get("/v1/catalog/nodes?near=hub").await.json();
    assert_eq!(names(&nodes, "Node").last().map(String::as_str), Some("far"), "{nodes}");
    let nodes = hub.get("/v1/catalog/nodes?near=_agent").await.json();
    assert_eq!(names(&nodes, "Node").last().map(String::as_str), Some("far"), "{nodes}");
    let health = near.get("/v1/health/service/web?near=_agent").await.json();
    assert_eq!(nodes_of_health(&health), ["near", "far"], "{health}");
    let catalog = hub.get("/v1/catalog/service/web?near=near").await.json();
    assert_eq!(names(&catalog, "Node"), ["near", "far"], "{catalog}");
    // A `?near` naming no node is refused rather than answered unsorted (a typo would look sorted).
    let unknown = hub.get("/v1/catalog/nodes?near=nobody").await;
    unknown.expect_status(400);
    assert!(unknown.text().contains("Unknown ?near node \"nobody\""), "{}", unknown.text());
    hub.get("/v1/health/service/web?near=nobody").await.expect_status(400);

    // The coordinate endpoints and the agent's own coordinate.
    let rows = hub.get("/v1/coordinate/nodes").await.json();
    let mut listed = names(&rows, "Node");
    listed.sort();
    assert_eq!(listed, ["far", "hub", "near"], "{rows}");
    let one = hub.get("/v1/coordinate/node/far").await;
    one.expect_status(200);
    assert_eq!(names(&one.json(), "Node"), ["far"]);
    hub.get("/v1/coordinate/node/nobody").await.expect_status(404);
    let me = far.get("/v1/agent/self").await.json();
    assert_eq!(me["Coord"]["Vec"].as_array().map(Vec::len), Some(8), "{}", me["Coord"]);
    assert!(me["Coord"]["Error"].as_f64().is_some_and(|e| e < 1.5), "it has measured something: {}", me["Coord"]);

    // py-consul's coordinate API through the real client.
    if roster_tests::py_consul::may_run() {
        let stdout =
            roster_tests::py_consul::run_script(&hub, "py_consul_coordinate.py", &["far", "hub", "near"]).await;
        assert!(stdout.contains("all py-consul coordinate steps passed"), "{stdout}");
    }
}

#[tokio::test]
async fn a_coordinate_update_is_checked_and_stored() {
    // With its own sync off, nothing but this test writes the agent's coordinate.
    let config = json!({"disable_coordinates": true});
    let agent = TestAgent::start_with_config("coord-update", AgentMode::Dev, config).await.expect("dev agent starts");
    let coord = json!({"Vec": [0.001, 0, 0, 0, 0, 0, 0, 0], "Error": 0.3, "Adjustment": 0.0, "Height": 0.0001});
    let res = agent.put_json("/v1/coordinate/update", &json!({"Node": "coord-update", "Coord": coord})).await;
    res.expect_status(200);
    // The server queues updates and writes them in batches every 5 s, as Consul's do.
    let rows = eventually("the update is stored", Duration::from_secs(20), || async {
        let res = agent.get("/v1/coordinate/node/coord-update").await;
        (res.status == 200).then(|| res.json())
    })
    .await;
    assert_eq!(rows[0]["Coord"]["Vec"][0], 0.001, "{rows}");
    assert_eq!(rows[0]["Segment"], "");

    // Four dimensions, a segment, a broken body: refused, and the stored coordinate stays.
    let short = json!({"Node": "coord-update", "Coord": {"Vec": [0, 0, 0, 0], "Error": 0.3}});
    let res = agent.put_json("/v1/coordinate/update", &short).await;
    assert_eq!(res.status, 500, "{}", res.text());
    // Refused at the edge, before any queue: the stored coordinate below is still the first one.
    assert!(res.text().contains("rejected bad coordinate"), "{}", res.text());
    let segment = json!({"Node": "coord-update", "Segment": "alpha", "Coord": coord});
    assert_eq!(agent.put_json("/v1/coordinate/update", &segment).await.status, 500);
    let res = agent.put("/v1/coordinate/update", "{").await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(agent.get("/v1/coordinate/nodes?segment=alpha").await.status == 400);
    let rows = agent.get("/v1/coordinate/node/coord-update").await.json();
    assert_eq!(rows[0]["Coord"]["Vec"][0], 0.001, "{rows}");
}
