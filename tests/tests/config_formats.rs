//! HCL config files and Consul's command-line errors, through the real binary: `roster validate` on HCL, an agent
//! configured by `-hcl`, and unknown or unsupported flags named whole with exit code 1.

use roster_tests::{AgentMode, TestAgent, run_cli};
use serde_json::json;

#[tokio::test]
async fn validate_reads_hcl_and_names_the_broken_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("consul.hcl"), "datacenter = \"east\"\nports {\n  grpc = -1\n}\n").expect("write");
    std::fs::write(dir.path().join("web.hcl"), "service {\n  name = \"web\"\n  port = 80\n}\n").expect("write");
    let path = dir.path().to_str().expect("utf-8 path");
    let valid = run_cli(&["validate", path], &[]).await;
    valid.expect_success();
    assert_eq!(valid.stdout, "Configuration is valid!\n");

    std::fs::write(dir.path().join("zz-broken.hcl"), "server = true\nports {\n  http = \n}\n").expect("write");
    let invalid = run_cli(&["validate", path], &[]).await;
    assert_eq!(invalid.code, Some(1), "{invalid:?}");
    assert!(invalid.stderr.contains("zz-broken.hcl: line 4, column 1: expected a value, got '}'"), "{invalid:?}");
}

#[tokio::test]
async fn an_agent_takes_hcl_snippets_from_the_command_line() {
    let args = vec!["-dev".to_owned(), "-hcl".to_owned(), "node_meta { rack = \"r9\" }".to_owned()];
    let agent = TestAgent::start_with_config("hcl-node", AgentMode::Args(args), json!({})).await.expect("agent starts");
    agent.wait_for_leader().await.expect("leader");
    let node = agent.get("/v1/catalog/node/hcl-node").await;
    assert_eq!(node.status, 200, "{node:?}");
    assert_eq!(node.json()["Node"]["Meta"]["rack"], "r9", "{node:?}");
}

#[tokio::test]
async fn unknown_and_unsupported_flags_are_named_whole_and_exit_1() {
    let unknown = run_cli(&["agent", "-dev", "-bogus"], &[]).await;
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(unknown.stderr.starts_with("flag provided but not defined: -bogus\n"), "{unknown:?}");
    assert!(unknown.stderr.contains("Usage: roster agent"), "{unknown:?}");
    let client = run_cli(&["kv", "get", "-bogus", "k"], &[]).await;
    assert_eq!(client.code, Some(1), "{client:?}");
    assert!(client.stderr.starts_with("flag provided but not defined: -bogus\n"), "{client:?}");
    let unsupported = run_cli(&["agent", "-dev", "-retry-join-wan", "10.0.0.1"], &[]).await;
    assert_eq!(unsupported.code, Some(1), "{unsupported:?}");
    assert!(
        unsupported.stderr.starts_with("roster does not support the Consul flag -retry-join-wan\n"),
        "{unsupported:?}"
    );
}
