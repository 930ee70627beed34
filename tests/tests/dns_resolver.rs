//! The container's view of DNS: the system resolver (glibc, through `getent`) with a resolv.conf whose nameserver is the agent resolves the bare `files.service`, and plain `files` through a `search service` line.
//! resolv.conf cannot name a port, so the agent's DNS listens on port 53 of a loopback address of its own; the test bind-mounts its resolv.conf in a private mount namespace (`unshare -m`), leaving the machine's untouched.
//! This needs root (CI runs as root); elsewhere it says why it skips.

use std::process::Command;

use roster_tests::{AgentMode, TestAgent};
use serde_json::json;

fn getent_in_namespace(resolv_conf: &std::path::Path, name: &str) -> std::process::Output {
    let script = format!("mount --bind '{}' /etc/resolv.conf && exec getent ahostsv4 '{name}'", resolv_conf.display());
    Command::new("unshare").args(["-m", "sh", "-c", &script]).output().expect("run unshare")
}

#[tokio::test]
async fn system_resolver_finds_files_service_through_the_agent() {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !is_root {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root and must run this test");
        println!("skipped: needs root for port 53 and a private mount namespace");
        return;
    }
    // A loopback address of this test's own, so port 53 is free whatever else runs.
    let ip = format!("127.0.53.{}", 10 + std::process::id() % 200);
    let extra = json!({"ports": {"dns": 53}, "addresses": {"dns": ip}});
    let agent =
        TestAgent::start_with_config("resolver", AgentMode::Dev, extra).await.expect("agent with DNS on port 53");
    assert_eq!(agent.dns_addr().to_string(), format!("{ip}:53"));
    let body = json!({
        "Node": "web-node", "Address": "192.0.2.10",
        "Service": {"Service": "files", "Port": 80},
        "Checks": [{"CheckID": "up", "Name": "up", "ServiceID": "files", "Status": "passing"}],
    });
    agent.put_json("/v1/catalog/register", &body).await.expect_status(200);

    let dir = tempfile::tempdir().expect("temp dir");
    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(&resolv_conf, format!("nameserver {ip}\nsearch service\noptions ndots:1 timeout:2 attempts:2\n"))
        .expect("write resolv.conf");

    for name in ["files.service", "files"] {
        let out = getent_in_namespace(&resolv_conf, name);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "getent {name} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.lines().any(|l| l.starts_with("192.0.2.10 ")), "{name} resolved to the instance: {stdout}");
    }

    // Once the instance turns critical the same lookup fails: containers only ever reach healthy instances.
    let critical = json!({
        "Node": "web-node", "Address": "192.0.2.10",
        "Checks": [{"CheckID": "up", "Name": "up", "ServiceID": "files", "Status": "critical"}],
    });
    agent.put_json("/v1/catalog/register", &critical).await.expect_status(200);
    let out = getent_in_namespace(&resolv_conf, "files.service");
    assert!(
        !out.status.success(),
        "a critical-only service does not resolve: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
