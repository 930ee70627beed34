//! Running the unmodified Python Consul client (`py-consul`) scripts of `tests/py/` against an agent.
//!
//! `.ci/run` installs py-consul; elsewhere a test that needs it says why it skips.

use std::path::Path;
use std::process::Command;

use crate::TestAgent;

/// Whether a py-consul test may run: outside CI a missing py-consul skips it with the reason printed; in CI
/// (`CI` set) a missing py-consul fails the test, so the client is never silently left out.
pub fn may_run() -> bool {
    let available =
        Command::new("python3").args(["-c", "import consul"]).output().is_ok_and(|out| out.status.success());
    if available {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have py-consul installed (see .ci/run)");
    println!("skipped: python3 with the py-consul package is not installed (pip install py-consul)");
    false
}

/// Runs `tests/py/<script>` against `agent` with `extra_args` after host and port; returns its stdout once it
/// exited 0, and fails the test with both outputs otherwise.
pub async fn run_script(agent: &TestAgent, script: &str, extra_args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(script);
    let addr = agent.http_addr();
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .args(extra_args)
        .output()
        .await
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "py-consul steps failed:\n{stdout}\n{stderr}");
    stdout
}
