//! The unmodified Python Consul client (`py-consul`) against a dev agent: KV with CAS, recurse, keys and a blocking watch, agent service registration with a TTL check, health, catalog, self and members.
//! The client-side steps live in `tests/py/py_consul_client.py`; this test starts the agent and runs them.
//! `.ci/run` installs py-consul; elsewhere the test says why it skips when the module is missing.

use std::path::Path;
use std::process::Command;

use roster_tests::TestAgent;

fn py_consul_available() -> bool {
    Command::new("python3").args(["-c", "import consul"]).output().is_ok_and(|out| out.status.success())
}

#[tokio::test]
async fn py_consul_client_works_unchanged() {
    if !py_consul_available() {
        assert!(std::env::var_os("CI").is_none(), "CI must have py-consul installed (see .ci/run)");
        println!("skipped: python3 with the py-consul package is not installed (pip install py-consul)");
        return;
    }
    let agent = TestAgent::dev("py-consul").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/py_consul_client.py");
    let addr = agent.http_addr();
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .output()
        .await
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "py-consul steps failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all py-consul steps passed"), "{stdout}");
}
