//! The scale harness at small N, so it stays working: 20 agents (1 server, 19 clients) on loopback addresses converge,
//! one `kill -9`ed client leaves `?passing` and every agent's DNS (the server probing it as soon as its RPC connection
//! closes), and one check going critical leaves every agent's DNS. The claims are the outcomes; the time bounds are only timeouts, generous for a loaded debug build (the
//! figures themselves are `scale_bench`'s to print).

use std::time::Duration;

use roster_tests::scale::{ScaleCluster, ScaleOptions, Start};

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_agents_converge_detect_a_kill_and_propagate_a_change() {
    let options = ScaleOptions { n_servers: 1, n_clients: 19, ..ScaleOptions::default() };
    let Start::Started(mut cluster) = ScaleCluster::start(&options).await.expect("starting 20 agents") else {
        unreachable!("the loopback placement never skips");
    };
    cluster.wait_converged(TIMEOUT).await.expect("every agent sees all 20 alive");
    cluster.register_services(TIMEOUT).await.expect("19 instances passing");

    let first_client = cluster.first_client();
    let (victim, target) = (first_client + 3, first_client + 7);
    cluster.wait_in_dns(victim, TIMEOUT).await.expect("the victim in every agent's DNS");
    cluster.wait_in_dns(target, TIMEOUT).await.expect("the target in every agent's DNS");
    let victim_name = cluster.agents()[victim].node_name().to_owned();

    let before_kill = std::time::SystemTime::now();
    cluster.kill_detection(victim, TIMEOUT).await.expect("the killed client leaves ?passing and DNS");
    // The server saw the victim's RPC connection close and its gossip heard of it (and probed it, unless a false
    // suspicion under load was already being settled), rather than waiting for a probe to reach it.
    let hinted = cluster.logged(&format!("gossip: a hint names a member: member={victim_name} "), before_kill);
    assert!(!hinted.is_empty(), "the server's gossip hears that the killed client's connection closed");
    let passing = cluster.agents()[0].get("/v1/health/service/scale?passing").await.json();
    let names: Vec<&str> =
        passing.as_array().expect("a list").iter().filter_map(|e| e["Node"]["Node"].as_str()).collect();
    assert_eq!(names.len(), 18, "the 18 live clients stay passing: {names:?}");
    assert!(!names.contains(&victim_name.as_str()));

    cluster.propagation(target, TIMEOUT).await.expect("the failed check leaves every agent's DNS");
    // The rest are untouched: a live, healthy client is still answered everywhere.
    cluster.wait_in_dns(first_client, TIMEOUT).await.expect("a healthy client still in every agent's DNS");
    assert_eq!(cluster.false_failed().await, 0, "no live agent is seen as failed");
}
