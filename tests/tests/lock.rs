//! `roster lock` against a dev agent: two processes on one prefix run their commands one after
//! the other; the command's exit code comes back; destroying the holder's session kills the
//! holder's command and hands the lock to the waiter.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use roster_tests::{TestAgent, eventually, roster_bin};
use serde_json::Value;

/// A `roster lock` process whose stderr goes to a file; killed and reaped on drop.
struct Lock {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Lock {
    /// Starts `roster lock -http-addr=<agent> FLAGS... PREFIX COMMAND`.
    fn start(agent: &TestAgent, flags: &[&str], prefix: &str, command: &str, dir: &Path, name: &str) -> Lock {
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new(roster_bin())
            .arg("lock")
            .arg(format!("-http-addr={}", agent.http_addr()))
            .args(flags)
            .args([prefix, command])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawning roster lock");
        Lock { child, stderr }
    }

    /// Waits for the process to exit, panicking after `timeout`.
    async fn exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(started.elapsed() < timeout, "roster lock still running after {timeout:?}: {}", self.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process still runs.
    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// What it printed on stderr.
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The file's text, empty when it does not exist yet.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `path` contains `needle`.
async fn wait_for_text(path: &Path, needle: &str) {
    eventually(&format!("{needle:?} in {}", path.display()), Duration::from_secs(20), || async {
        read(path).contains(needle).then_some(())
    })
    .await;
}

#[tokio::test]
async fn second_lock_runs_its_command_only_after_the_first_exits() {
    let agent = TestAgent::dev("lock-order").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("log");
    let first_cmd = format!("echo first-start >> {0}; sleep 2; echo first-end >> {0}", log.display());
    let mut first = Lock::start(&agent, &[], "jobs/deploy", &first_cmd, dir.path(), "first");
    wait_for_text(&log, "first-start").await;

    let second_cmd = format!("echo second >> {}", log.display());
    let mut second = Lock::start(&agent, &[], "jobs/deploy", &second_cmd, dir.path(), "second");
    assert!(first.exit(Duration::from_secs(20)).await.success(), "{}", first.stderr());
    assert!(second.exit(Duration::from_secs(20)).await.success(), "{}", second.stderr());
    assert_eq!(read(&log), "first-start\nfirst-end\nsecond\n", "the second waited for the first to finish");

    let lock_key = agent.get("/v1/kv/jobs/deploy/.lock").await.json();
    assert_eq!(lock_key[0].get("Session"), None, "released after use: {lock_key}");
    assert_eq!(agent.get("/v1/session/list").await.json(), Value::Array(Vec::new()), "sessions destroyed");
}

#[tokio::test]
async fn lock_propagates_the_command_exit_code_and_sets_consul_lock_held() {
    let agent = TestAgent::dev("lock-exit").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let held = dir.path().join("held");
    let command = format!("echo $CONSUL_LOCK_HELD > {}; exit 7", held.display());
    let mut lock = Lock::start(&agent, &["-timeout=10s"], "jobs/exit", &command, dir.path(), "exit");
    assert_eq!(lock.exit(Duration::from_secs(20)).await.code(), Some(7), "{}", lock.stderr());
    assert_eq!(read(&held), "true\n");
}

#[tokio::test]
async fn destroying_the_holders_session_kills_its_command_and_hands_the_lock_over() {
    let agent = TestAgent::dev("lock-handover").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("holder.pid");
    // `exec` makes the pid in the file the long-running command itself.
    let holder_cmd = format!("echo $$ > {}; exec sleep 600", pid_file.display());
    let mut holder = Lock::start(&agent, &["-lock-delay=1s"], "jobs/leader", &holder_cmd, dir.path(), "holder");
    wait_for_text(&pid_file, "\n").await;
    let holder_pid: u32 = read(&pid_file).trim().parse().expect("a pid");

    let taken = dir.path().join("taken");
    let waiter_cmd = format!("echo taken > {}", taken.display());
    let mut waiter = Lock::start(&agent, &[], "jobs/leader", &waiter_cmd, dir.path(), "waiter");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(waiter.running() && read(&taken).is_empty(), "the waiter must wait: {}", waiter.stderr());

    let lock_key = agent.get("/v1/kv/jobs/leader/.lock").await.json();
    let session = lock_key[0]["Session"].as_str().expect("the holder's session").to_owned();
    agent.put(&format!("/v1/session/destroy/{session}"), "").await.expect_status(200);

    let status = holder.exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "losing the lock is a failure: {}", holder.stderr());
    assert!(holder.stderr().contains("Lock lost, killing child"), "{}", holder.stderr());
    assert!(!Path::new(&format!("/proc/{holder_pid}")).exists(), "the holder's command was killed");

    assert!(waiter.exit(Duration::from_secs(20)).await.success(), "{}", waiter.stderr());
    assert_eq!(read(&taken), "taken\n", "the waiter ran once the lock-delay passed");
}

#[tokio::test]
async fn lock_refuses_a_semaphore_clearly() {
    let agent = TestAgent::dev("lock-semaphore").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut lock = Lock::start(&agent, &["-n", "3"], "jobs/pool", "true", dir.path(), "semaphore");
    assert!(!lock.exit(Duration::from_secs(10)).await.success());
    assert!(lock.stderr().contains("-n 3 asks for a semaphore"), "{}", lock.stderr());
}
