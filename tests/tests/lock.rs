//! `roster lock` against a dev agent: two processes on one prefix run their commands one after
//! the other; the command's exit code comes back; destroying the holder's session kills the
//! holder's command and hands the lock to the waiter. With `-n 2` (Consul's semaphore) two
//! commands run at once in Consul's key layout, a third waits, a limit mismatch is an error, and
//! a holder whose session is destroyed loses its slot to the waiter.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use roster_tests::{TestAgent, eventually, roster_bin, unb64};
use serde_json::{Value, json};

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
    let parked = agent.parked_queries().await;
    let mut waiter = Lock::start(&agent, &[], "jobs/leader", &waiter_cmd, dir.path(), "waiter");
    // Once its blocking query on the lock is parked, the waiter is waiting: it must not have run its command.
    agent.wait_parked(parked + 1.0).await;
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

/// A command that logs `<name>-start`, waits until the file `<name>.go` exists, then logs
/// `<name>-end`; its shell's pid goes to `<name>.pid`.
fn gated(dir: &Path, name: &str) -> String {
    let dir = dir.display();
    format!(
        "echo $$ > {dir}/{name}.pid; echo {name}-start >> {dir}/log; \
         while [ ! -e {dir}/{name}.go ]; do sleep 0.1; done; echo {name}-end >> {dir}/log"
    )
}

/// Lets the gated command `name` finish.
fn open_gate(dir: &Path, name: &str) {
    std::fs::write(dir.join(format!("{name}.go")), "").expect("gate file");
}

/// The decoded JSON value of the semaphore's `.lock` key at `prefix`.
async fn semaphore_value(agent: &TestAgent, prefix: &str) -> Value {
    let entry = agent.get(&format!("/v1/kv/{prefix}/.lock")).await.json();
    let value = unb64(entry[0]["Value"].as_str().expect("the .lock key has a value"));
    serde_json::from_slice(&value).expect("the .lock value is JSON")
}

/// The IDs of the sessions whose names are in `names`, in that order.
async fn session_ids(agent: &TestAgent, names: &[&str]) -> Vec<String> {
    let sessions = agent.get("/v1/session/list").await.json();
    let id_of = |name: &str| {
        let session = sessions.as_array().into_iter().flatten().find(|session| session["Name"] == name);
        session
            .and_then(|session| session["ID"].as_str())
            .unwrap_or_else(|| panic!("no session {name}: {sessions}"))
            .to_owned()
    };
    names.iter().map(|name| id_of(name)).collect()
}

/// Starts `roster lock -n 2 -name=<name> jobs/pool` with the gated command `name`.
fn join_pool(agent: &TestAgent, dir: &Path, name: &str) -> Lock {
    let session_name = format!("-name={name}");
    Lock::start(agent, &["-n", "2", &session_name], "jobs/pool", &gated(dir, name), dir, name)
}

/// Starts holders `a` and `b` of the two-slot `jobs/pool` and waits until both commands run.
async fn fill_pool(agent: &TestAgent, dir: &Path) -> (Lock, Lock) {
    let holders = (join_pool(agent, dir, "a"), join_pool(agent, dir, "b"));
    wait_for_text(&dir.join("log"), "a-start").await;
    wait_for_text(&dir.join("log"), "b-start").await;
    holders
}

#[tokio::test]
async fn semaphore_of_two_runs_two_commands_at_once_and_the_third_waits() {
    let agent = TestAgent::dev("lock-semaphore").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("log");
    let (mut first, mut second) = fill_pool(&agent, dir.path()).await;

    // Consul's shape, so a Go `api.Semaphore` on this prefix counts these two holders.
    let ids = session_ids(&agent, &["a", "b"]).await;
    let holders: serde_json::Map<String, Value> = ids.iter().map(|id| (id.clone(), Value::Bool(true))).collect();
    assert_eq!(semaphore_value(&agent, "jobs/pool").await, json!({"Limit": 2, "Holders": holders}));
    for id in &ids {
        let contender = agent.get(&format!("/v1/kv/jobs/pool/{id}")).await.json();
        assert_eq!(contender[0]["Session"], id.as_str(), "each holder's contender key is locked by its session");
    }

    let parked = agent.parked_queries().await;
    let mut third = join_pool(&agent, dir.path(), "c");
    agent.wait_parked(parked + 1.0).await;
    assert!(third.running() && !read(&log).contains("c-start"), "both slots are taken: {}", third.stderr());

    open_gate(dir.path(), "a");
    assert!(first.exit(Duration::from_secs(20)).await.success(), "{}", first.stderr());
    wait_for_text(&log, "c-start").await;
    assert!(second.running(), "b keeps its slot while c takes a's");
    let third_id = session_ids(&agent, &["c"]).await.remove(0);
    let holders = semaphore_value(&agent, "jobs/pool").await["Holders"].clone();
    assert_eq!(holders, json!({ids[1].clone(): true, third_id: true}), "a left the holders");

    open_gate(dir.path(), "b");
    assert!(second.exit(Duration::from_secs(20)).await.success(), "{}", second.stderr());
    open_gate(dir.path(), "c");
    assert!(third.exit(Duration::from_secs(20)).await.success(), "{}", third.stderr());
    agent.get("/v1/kv/jobs/pool?recurse").await.expect_status(404);
    assert_eq!(agent.get("/v1/session/list").await.json(), json!([]), "sessions destroyed");
}

#[tokio::test]
async fn a_contender_with_another_limit_gets_an_error_naming_both() {
    let agent = TestAgent::dev("lock-limit").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("log");
    let mut holder = Lock::start(&agent, &["-n", "2"], "jobs/pool", &gated(dir.path(), "a"), dir.path(), "a");
    wait_for_text(&log, "a-start").await;

    let mut other = Lock::start(&agent, &["-n", "3"], "jobs/pool", "true", dir.path(), "other");
    assert_eq!(other.exit(Duration::from_secs(10)).await.code(), Some(1), "{}", other.stderr());
    assert!(other.stderr().contains("semaphore limit conflict (lock: 2, local: 3)"), "{}", other.stderr());
    assert!(holder.running(), "the conflict does not disturb the holder");
    assert_eq!(
        agent.get("/v1/session/list").await.json().as_array().map(Vec::len),
        Some(1),
        "the loser's session is gone"
    );

    // A plain lock on the same prefix recognises the semaphore's key and stays away from it.
    let mut lock = Lock::start(&agent, &[], "jobs/pool", "true", dir.path(), "lock");
    assert_eq!(lock.exit(Duration::from_secs(10)).await.code(), Some(1), "{}", lock.stderr());
    assert!(lock.stderr().contains("Existing key does not match lock use"), "{}", lock.stderr());

    open_gate(dir.path(), "a");
    assert!(holder.exit(Duration::from_secs(20)).await.success(), "{}", holder.stderr());
}

#[tokio::test]
async fn destroying_a_holders_session_frees_its_slot_for_the_waiter() {
    let agent = TestAgent::dev("lock-semaphore-handover").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("log");
    let (mut doomed, mut survivor) = fill_pool(&agent, dir.path()).await;
    let doomed_pid: u32 = read(&dir.path().join("a.pid")).trim().parse().expect("a pid");
    let parked = agent.parked_queries().await;
    let mut waiter = join_pool(&agent, dir.path(), "c");
    agent.wait_parked(parked + 1.0).await;
    assert!(waiter.running() && !read(&log).contains("c-start"), "the waiter must wait: {}", waiter.stderr());

    let doomed_session = session_ids(&agent, &["a"]).await.remove(0);
    agent.put(&format!("/v1/session/destroy/{doomed_session}"), "").await.expect_status(200);

    let status = doomed.exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "losing the slot is a failure: {}", doomed.stderr());
    assert!(doomed.stderr().contains("Lock lost, killing child"), "{}", doomed.stderr());
    assert!(!Path::new(&format!("/proc/{doomed_pid}")).exists(), "the holder's command was killed");
    assert!(!read(&log).contains("a-end"), "the command was stopped, not finished");

    wait_for_text(&log, "c-start").await;
    let holders = semaphore_value(&agent, "jobs/pool").await["Holders"].clone();
    assert!(holders.get(&doomed_session).is_none(), "the dead holder was pruned: {holders}");
    assert!(survivor.running(), "the other holder keeps its slot");

    open_gate(dir.path(), "b");
    open_gate(dir.path(), "c");
    assert!(survivor.exit(Duration::from_secs(20)).await.success(), "{}", survivor.stderr());
    assert!(waiter.exit(Duration::from_secs(20)).await.success(), "{}", waiter.stderr());
}
