//! `roster debug` against a real agent: the archive holds the member list, the host facts, the agent's self
//! description, index.json, a metrics capture (or the reason it failed) per interval and the log lines written during
//! the capture, and no secret from the agent's config appears anywhere in it.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::Duration;

use roster_tests::{AgentMode, TestAgent};
use serde_json::{Value, json};

const MANAGEMENT: &str = "5b1e4f4a-0f37-4c8e-9d1e-management00";
const AGENT_TOKEN: &str = "0d7c2a9e-6a55-4d42-8f0b-agent-token0";

/// Every file of a `.tar.gz`, by path.
fn untar(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).expect("the archive exists");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().expect("a path").display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        files.insert(name, bytes);
    }
    files
}

#[tokio::test]
async fn roster_debug_archives_members_host_agent_and_logs_without_secrets() {
    let config = json!({"acl": {"enabled": true, "default_policy": "deny",
                                 "tokens": {"initial_management": MANAGEMENT, "agent": AGENT_TOKEN}}});
    let agent = TestAgent::start_with_config("debug1", AgentMode::Dev, config).await.expect("starting the agent");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("capture");
    let output_flag = format!("-output={}", output.display());
    let agent_url = agent.url("/v1/agent/reload");
    let client = agent.client().clone();
    // Reloads log a line each, so the capture's log has something of this run in it.
    let reloads = tokio::spawn(async move {
        loop {
            let _ = client.put(&agent_url).header("X-Consul-Token", MANAGEMENT).send().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let flags = ["-token", MANAGEMENT, "-duration", "10s", "-interval", "5s", output_flag.as_str()];
    let capture = debug_cli(&agent, &flags).await;
    reloads.abort();
    capture.expect_success();
    assert!(capture.stdout.contains("Saved debug archive:"), "{}", capture.stdout);
    assert!(!output.exists(), "the directory is removed once archived");
    let files = untar(&dir.path().join("capture.tar.gz"));
    let json_of = |name: &str| -> Value {
        serde_json::from_slice(files.get(&format!("capture/{name}")).unwrap_or_else(|| panic!("no {name}: {files:?}")))
            .expect("JSON")
    };
    let members = json_of("members.json");
    assert!(members.as_array().is_some_and(|m| m.iter().any(|member| member["Name"] == "debug1")), "{members}");
    assert!(json_of("host.json")["Memory"]["total"].as_u64().is_some_and(|total| total > 0));
    assert_eq!(json_of("agent.json")["Config"]["NodeName"], "debug1");
    let index = json_of("index.json");
    assert_eq!(index["Version"], 1);
    assert_eq!(index["Duration"], "10s");
    assert_eq!(index["Targets"].as_array().map(Vec::len), Some(6));
    assert!(files.contains_key("capture/raft.json"), "{:?}", files.keys());
    let per_interval = |suffix: &str| files.keys().filter(|name| name.ends_with(suffix)).count();
    assert!(per_interval("/metrics.json") + per_interval("/metrics.error.txt") >= 2, "{:?}", files.keys());
    assert!(per_interval("/tasks.json") >= 2, "{:?}", files.keys());
    let log = String::from_utf8_lossy(&files["capture/consul.log"]).into_owned();
    assert!(log.contains("configuration reloaded"), "{log}");
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(AGENT_TOKEN) && !text.contains(MANAGEMENT), "a secret in {name}");
    }
}

/// `roster debug -http-addr=<agent> ARGS`.
async fn debug_cli(agent: &TestAgent, args: &[&str]) -> roster_tests::CliOutput {
    let http_addr = format!("-http-addr={}", agent.http_addr());
    let mut argv = vec!["debug", http_addr.as_str()];
    argv.extend_from_slice(args);
    agent.cli_env(&argv, &[]).await
}

#[tokio::test]
async fn roster_debug_refuses_bad_timing_unknown_targets_and_an_existing_output() {
    let agent = TestAgent::dev("debug2").await;
    let out = debug_cli(&agent, &["-duration", "5s"]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("duration must be longer than 10s"), "{}", out.stderr);
    let out = debug_cli(&agent, &["-capture", "bogus"]).await;
    assert!(out.stderr.contains("target not found: bogus"), "{}", out.stderr);
    let dir = tempfile::tempdir().expect("tempdir");
    let existing = format!("-output={}", dir.path().display());
    let out = debug_cli(&agent, &[existing.as_str()]).await;
    assert!(out.stderr.contains("output directory already exists"), "{}", out.stderr);
}
