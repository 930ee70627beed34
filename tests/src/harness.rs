//! [`TestAgent`]: one real `roster agent` process on ephemeral loopback ports, owned by a test.
//!
//! The agent is configured the way docs/contracts.md prescribes: `-node NAME`, a JSON config file
//! with `{"ports":{"http":0,"dns":-1,"server":0}}`, and either `-dev` or
//! `-server -bootstrap-expect 1 -data-dir DIR`. It prints
//! `roster: ready http=<ip:port|off> https=<ip:port|off> dns=<ip:port|off> rpc=<ip:port|off> serf=<ip:port|off> node=<name>` on stdout once every
//! listener is bound; the harness reads the real ports from that line, then waits for a leader so
//! every test starts against a node that can serve writes.
//!
//! The process is killed (SIGKILL) and reaped on `Drop`, and its stderr is printed when the owning
//! test panics, so a failing test shows the agent's own view of what went wrong.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::http::{Resp, http_client};

/// How long the agent may take to print its readiness line; a debug build on a loaded 2-core
/// machine starts in well under a second, so 10 s only trips on a real hang.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long a started agent may take to report a leader (`-dev` promises one within a second).
const LEADER_DEADLINE: Duration = Duration::from_secs(10);
/// The most stderr kept per process; enough for the end of a panic or error log.
const STDERR_TAIL: usize = 256 * 1024;
/// When set, a directory that receives every agent's whole stderr, appended to `<node name>.log` (a restart appends to
/// the same file): the tail kept in memory is not enough to follow one event through hundreds of agents' logs.
const LOG_DIR_ENV: &str = "ROSTER_TEST_LOG_DIR";
/// CLI commands that take no subcommand word, so `-http-addr` goes right after them.
const SINGLE_WORD_COMMANDS: &[&str] =
    &["members", "leave", "join", "force-leave", "info", "reload", "version", "keyring"];

/// Which kind of agent to start.
#[derive(Debug, Clone)]
pub enum AgentMode {
    /// `roster agent -dev`: an in-memory single server.
    Dev,
    /// `roster agent -server -bootstrap-expect 1 -data-dir DIR -bind 127.0.0.1 -client 127.0.0.1`:
    /// a durable single server. `-bind` keeps the advertised address on loopback so the test works
    /// on machines without a private IPv4 address.
    Server {
        /// The data directory; it outlives restarts of the agent.
        data_dir: PathBuf,
    },
    /// `roster agent -data-dir DIR -bind 127.0.0.1 -client 127.0.0.1`: a client agent that joins nothing, so it
    /// reaches no server (the harness waits for no leader).
    LoneClient {
        /// The data directory; it outlives restarts of the agent.
        data_dir: PathBuf,
    },
    /// `roster agent ARGS...`, for cluster members: the caller gives every flag but `-node` and
    /// `-config-file`, and the harness does not wait for a leader (a cluster forms later).
    Args(Vec<String>),
    /// Like `Args`, run inside the network namespace `netns` (`ip netns exec NETNS roster agent ARGS...`), for the
    /// scale harness's namespace-per-agent mode.
    Netns {
        /// The namespace's name.
        netns: String,
        /// Every flag but `-node` and `-config-file`.
        args: Vec<String>,
    },
}

impl AgentMode {
    /// A cluster member (`Args`, `Netns`) or a lone client: the harness waits for no leader, since the cluster forms
    /// later or never.
    fn is_member(&self) -> bool {
        matches!(self, AgentMode::Args(_) | AgentMode::Netns { .. } | AgentMode::LoneClient { .. })
    }
}

/// A running roster agent owned by a test.
pub struct TestAgent {
    /// The `-node` name, reused across restarts.
    node_name: String,
    /// Dev or durable server; a restart starts the same mode again.
    mode: AgentMode,
    /// Holds the generated config file; deleted when the agent is dropped.
    config_dir: TempDir,
    /// The live process, `None` between `kill9` and `restart`.
    process: Option<Process>,
    /// The HTTP API address from the readiness line of the current process; `None` with `ports.http = -1`.
    http_addr: Option<SocketAddr>,
    /// The HTTPS API address from the readiness line, when `ports.https` is on.
    https_addr: Option<SocketAddr>,
    /// The server RPC address from the readiness line of the current process; `None` for a client.
    rpc_addr: Option<SocketAddr>,
    /// The DNS address (UDP and TCP) from the readiness line, when DNS is on.
    dns_addr: Option<SocketAddr>,
    /// The LAN gossip address from the readiness line, when gossip is on.
    serf_addr: Option<SocketAddr>,
    /// A keep-alive client for the HTTP API.
    client: reqwest::Client,
    /// Stderr of processes that were killed, kept for the panic report.
    past_stderr: String,
    /// Environment variables set on the agent process (every restart too).
    envs: Vec<(String, String)>,
    /// Set by `freeze`: the process is stopped (SIGSTOP) and counts as not running.
    frozen: bool,
}

/// The outcome of one CLI invocation.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The exit code, `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Everything the command printed on stdout.
    pub stdout: String,
    /// Everything the command printed on stderr.
    pub stderr: String,
}

impl CliOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with both streams unless the command exited with status 0.
    #[track_caller]
    pub fn expect_success(&self) -> &CliOutput {
        assert!(self.success(), "CLI failed with {:?}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr);
        self
    }
}

/// One spawned agent process and the buffers its pipe readers fill.
struct Process {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// The addresses announced by the readiness line.
struct Ready {
    /// None when plain HTTP is off (`http=off`).
    http: Option<SocketAddr>,
    /// None when HTTPS is off (`https=off`, or a build without the field).
    https: Option<SocketAddr>,
    /// None for a client agent (`rpc=off`).
    rpc: Option<SocketAddr>,
    /// None when the agent runs without DNS (`dns=off`).
    dns: Option<SocketAddr>,
    /// None when the agent runs without gossip (`serf=off`, or a build without the field).
    serf: Option<SocketAddr>,
}

impl TestAgent {
    /// Starts `roster agent -dev -node NAME`; panics with the agent's stderr if it does not come up.
    pub async fn dev(node_name: &str) -> TestAgent {
        TestAgent::start(node_name, AgentMode::Dev).await.unwrap_or_else(|err| panic!("starting dev agent: {err:#}"))
    }

    /// Starts a durable single server on `data_dir`; panics with the agent's stderr on failure.
    pub async fn server(node_name: &str, data_dir: &Path) -> TestAgent {
        let mode = AgentMode::Server { data_dir: data_dir.to_path_buf() };
        TestAgent::start(node_name, mode).await.unwrap_or_else(|err| panic!("starting server agent: {err:#}"))
    }

    /// Starts an agent of either mode, returning an error instead of panicking (the bench uses this).
    pub async fn start(node_name: &str, mode: AgentMode) -> anyhow::Result<TestAgent> {
        TestAgent::start_with_config(node_name, mode, serde_json::json!({})).await
    }

    /// Starts a dev agent with DNS on an OS-chosen loopback port and extra config keys merged in (e.g. `dns_config`, `recursors`).
    pub async fn dev_with_dns(node_name: &str, extra: Value) -> TestAgent {
        let mut config = serde_json::json!({"ports": {"dns": 0}});
        merge(&mut config, extra);
        TestAgent::start_with_config(node_name, AgentMode::Dev, config)
            .await
            .unwrap_or_else(|err| panic!("starting dev agent with DNS: {err:#}"))
    }

    /// Starts an agent whose config file is the test defaults (HTTP and RPC on port 0, DNS off) with `extra` merged over them.
    pub async fn start_with_config(node_name: &str, mode: AgentMode, extra: Value) -> anyhow::Result<TestAgent> {
        TestAgent::start_with_env(node_name, mode, extra, &[]).await
    }

    /// `start_with_config` with environment variables set on the agent process (debug-build test knobs).
    pub async fn start_with_env(
        node_name: &str,
        mode: AgentMode,
        extra: Value,
        envs: &[(&str, &str)],
    ) -> anyhow::Result<TestAgent> {
        let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let config_dir = tempfile::tempdir().context("creating the config dir")?;
        std::fs::write(config_path(&config_dir), test_config(extra).to_string()).context("writing the config file")?;
        let (process, ready) = spawn_agent(node_name, &mode, &config_path(&config_dir), &envs).await?;
        let agent = TestAgent {
            node_name: node_name.to_owned(),
            mode,
            config_dir,
            process: Some(process),
            frozen: false,
            http_addr: ready.http,
            https_addr: ready.https,
            rpc_addr: ready.rpc,
            dns_addr: ready.dns,
            serf_addr: ready.serf,
            client: http_client(16),
            past_stderr: String::new(),
            envs,
        };
        if !agent.mode.is_member() {
            agent.wait_for_leader().await?;
        }
        Ok(agent)
    }

    /// The DNS address; panics when the agent was started without DNS.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr.unwrap_or_else(|| panic!("{} was started without DNS (use dev_with_dns)", self.node_name))
    }

    /// The LAN gossip address (`-join` target); panics when the agent runs without gossip.
    pub fn serf_addr(&self) -> SocketAddr {
        self.serf_addr.unwrap_or_else(|| panic!("{} runs without gossip", self.node_name))
    }

    /// Whether the agent process is running (not killed by `kill9`/`terminate`, nor stopped by `freeze`).
    pub fn is_running(&self) -> bool {
        self.process.is_some() && !self.frozen
    }

    /// The agent's process id while it runs (benchmarks read its memory from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|process| process.child.id())
    }

    /// The `-node` name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The HTTP API address of the running process (it changes on restart).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr.unwrap_or_else(|| panic!("{} runs without plain HTTP (http=off)", self.node_name))
    }

    /// The HTTPS API address of the running process; panics when HTTPS is off.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr.unwrap_or_else(|| panic!("{} runs without HTTPS (https=off)", self.node_name))
    }

    /// Whether the running process serves plain HTTP.
    pub fn has_http(&self) -> bool {
        self.http_addr.is_some()
    }

    /// The server RPC address of the running process, which Consul reports as the leader address.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr.unwrap_or_else(|| panic!("{} is a client: it has no server RPC address", self.node_name))
    }

    /// The keep-alive client the helpers use, for requests that need custom headers.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `http://<http_addr><path>`; `path` starts with `/` and carries its own query string.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http_addr(), path)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// `GET path` on a task of its own (and a connection of its own while others are in flight): a blocking query
    /// the test parks before it writes. Panics, in the task, when the request cannot be sent.
    pub fn spawn_get(&self, path: &str) -> tokio::task::JoinHandle<Resp> {
        let (client, url) = (self.client.clone(), self.url(path));
        tokio::spawn(async move {
            let res = client.get(&url).send().await.unwrap_or_else(|err| panic!("GET {url}: {err}"));
            Resp::read(res).await.unwrap_or_else(|err| panic!("GET {url}: reading body: {err}"))
        })
    }

    /// How many blocking queries the agent has parked now: the `consul.<host>.rpc.queries_blocking` gauge of
    /// `/v1/agent/metrics`. The agent parks a few of its own, so tests compare it with a reading taken before.
    pub async fn parked_queries(&self) -> f64 {
        let res = self.get("/v1/agent/metrics").await;
        res.expect_status(200);
        let metrics = res.json();
        metrics["Gauges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|gauge| gauge["Name"].as_str().is_some_and(|name| name.ends_with(".rpc.queries_blocking")))
            .filter_map(|gauge| gauge["Value"].as_f64())
            .sum()
    }

    /// Waits until at least `at_least` blocking queries are parked, so a write the test makes next happens while
    /// they wait; panics after 60 s.
    pub async fn wait_parked(&self, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let parked = self.parked_queries().await;
            if parked >= at_least {
                return;
            }
            assert!(Instant::now() < deadline, "{parked} blocking queries parked after 60 s, waiting for {at_least}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `PUT path` with a raw body and no `Content-Type`, as the Go client and `curl -T` send it.
    pub async fn put(&self, path: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.request(reqwest::Method::PUT, path, Some(body.into())).await
    }

    /// `PUT path` with `value` serialized as JSON and, like the Go client, no `Content-Type`.
    pub async fn put_json(&self, path: &str, value: &Value) -> Resp {
        self.put(path, value.to_string()).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Resp {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// Any method with an optional raw body; panics when the request cannot be sent at all.
    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Resp {
        self.request_with_headers(method, path, &[], body).await
    }

    /// Any method with extra request headers (e.g. `X-Consul-Token`, `Authorization`) and an optional raw body;
    /// panics when the request cannot be sent at all.
    pub async fn request_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut builder = self.client.request(method.clone(), self.url(path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let res = builder.send().await;
        match res {
            Ok(res) => Resp::read(res).await.unwrap_or_else(|err| panic!("{method} {path}: reading body: {err}")),
            Err(err) => panic!("{method} {path}: {err}\nagent stderr:\n{}", self.stderr_tail()),
        }
    }

    /// Kills the agent with SIGKILL (no shutdown code runs) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(process) = self.process.take() {
            let stderr = process.kill_and_reap();
            self.past_stderr.push_str(&stderr);
        }
    }

    /// Stops the agent with SIGSTOP: it answers nothing from here on but every socket it holds stays open, so no
    /// peer sees a connection close, as with a host that lost power or a network cut. It counts as not running;
    /// `kill9` or dropping the agent ends the process.
    pub fn freeze(&mut self) {
        if let Some(process) = &self.process {
            let pid = process.child.id();
            let sent = Command::new("kill").args(["-STOP", &pid.to_string()]).status();
            assert!(sent.is_ok_and(|s| s.success()), "sending SIGSTOP to {pid} failed");
            // `kill` returns once the signal is queued, and on a loaded machine a thread of the agent can still
            // answer a request after that: wait until every thread shows the stopped state.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !crate::procfs::all_threads_stopped(pid) {
                assert!(Instant::now() < deadline, "{pid} not stopped 10 s after SIGSTOP");
                std::thread::sleep(Duration::from_millis(5));
            }
            self.frozen = true;
        }
    }

    /// Resumes an agent stopped by `freeze` (SIGCONT): it takes up where it was, its sockets as they were.
    pub fn thaw(&mut self) {
        if let Some(process) = &self.process
            && self.frozen
        {
            let pid = process.child.id().to_string();
            let sent = Command::new("kill").args(["-CONT", &pid]).status();
            assert!(sent.is_ok_and(|s| s.success()), "sending SIGCONT to {pid} failed");
            self.frozen = false;
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the agent to shut down by itself.
    /// Returns its exit status, or None when it was still running at the deadline (it is then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut process = self.process.take()?;
        let pid = process.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "sending SIGTERM to {pid} failed");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match process.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => break None,
            }
        };
        let stderr = if status.is_some() { process.stderr_text() } else { process.kill_and_reap() };
        self.past_stderr.push_str(&stderr);
        status
    }

    /// Replaces the config file the next `restart` reads: the test defaults with `extra` merged over them, as
    /// [`TestAgent::start_with_config`] writes it.
    pub fn rewrite_config(&self, extra: Value) {
        std::fs::write(config_path(&self.config_dir), test_config(extra).to_string())
            .expect("rewriting the config file");
    }

    /// Starts the agent again with the same node name, mode, data dir and config; kills it first
    /// (SIGKILL) if it is still running. Ports are new, since they come from port 0 again.
    pub async fn restart(&mut self) {
        if let Err(err) = self.try_restart().await {
            panic!("restarting {}: {err:#}", self.node_name);
        }
        if self.mode.is_member() {
            return;
        }
        if let Err(err) = self.wait_for_leader().await {
            panic!("restarted agent has no leader: {err:#}\nstderr:\n{}", self.stderr_tail());
        }
    }

    /// Starts the agent again like [`TestAgent::restart`] but waits for nothing past its readiness line, and returns
    /// the failure (with the agent's stderr) instead of panicking: for starts that are meant to be refused.
    pub async fn try_restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let (process, ready) =
            spawn_agent(&self.node_name, &self.mode, &config_path(&self.config_dir), &self.envs).await?;
        self.process = Some(process);
        self.frozen = false;
        self.http_addr = ready.http;
        self.https_addr = ready.https;
        self.rpc_addr = ready.rpc;
        self.dns_addr = ready.dns;
        self.serf_addr = ready.serf;
        Ok(())
    }

    /// Runs a CLI command against this agent, inserting `-http-addr=<addr>` after the command words
    /// (Go's flag parsing stops at the first positional argument, so the flag must come before them).
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        let n_command_words = match args.first() {
            Some(word) if SINGLE_WORD_COMMANDS.contains(word) => 1,
            // `operator raft list-peers`.
            Some(&"operator") => 3,
            _ => 2,
        };
        let split_idx = n_command_words.min(args.len());
        let http_flag = format!("-http-addr={}", self.http_addr());
        let mut full_args: Vec<&str> = args[..split_idx].to_vec();
        full_args.push(&http_flag);
        full_args.extend_from_slice(&args[split_idx..]);
        run_cli(&full_args, &[]).await
    }

    /// Runs a CLI command exactly as given, with extra environment variables (for
    /// `CONSUL_HTTP_ADDR` / `ROSTER_HTTP_ADDR`); inherited address variables are removed first.
    pub async fn cli_env(&self, args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
        run_cli(args, envs).await
    }

    /// The agent's stderr so far, of this and of killed earlier processes.
    pub fn stderr_tail(&self) -> String {
        let current = self.process.as_ref().map(Process::stderr_text).unwrap_or_default();
        format!("{}{}", self.past_stderr, current)
    }

    /// Polls `/v1/status/leader` until it names a leader, failing early if the process exits.
    pub async fn wait_for_leader(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let res = self.client.get(self.url("/v1/status/leader")).send().await;
            if let Ok(res) = res
                && res.status().is_success()
                && let Ok(Value::String(leader)) = res.json::<Value>().await
                && !leader.is_empty()
            {
                return Ok(());
            }
            if started.elapsed() > LEADER_DEADLINE {
                bail!("no leader after {LEADER_DEADLINE:?}; stderr:\n{}", self.stderr_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            let stderr = process.kill_and_reap();
            self.past_stderr.push_str(&stderr);
        }
        // A failing test is much easier to read with the agent's own log next to the assertion.
        if std::thread::panicking() && !self.past_stderr.is_empty() {
            eprintln!("--- stderr of agent {} ---\n{}\n--- end ---", self.node_name, self.past_stderr);
        }
    }
}

impl Process {
    fn stderr_text(&self) -> String {
        let bytes = self.stderr.lock().map(|buf| buf.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// SIGKILL and wait, so no zombie or port outlives the test; returns the stderr collected.
    fn kill_and_reap(mut self) -> String {
        let _already_exited = self.child.kill();
        let _status = self.child.wait();
        self.stderr_text()
    }
}

/// The path of the roster binary the tests run.
///
/// `ROSTER_BIN` wins when set. Otherwise the binary sits next to the running executable's profile
/// directory (`target/debug/deps/x` or `target/release/bench` → `target/<profile>/roster`), and it
/// is built with `cargo build --workspace --bin roster`: `CARGO_BIN_EXE_*` only exists for the
/// package that owns the binary, and a dev-dependency does not build another package's binaries, so
/// this is what keeps the binary in step with the source under test.
///
/// `--workspace`, not `-p roster-agent`: cargo resolves features over the packages a command
/// selects, so `-p` built the dependencies a second time with other features (minutes on a fresh
/// clone, after `cargo nextest run --workspace` had built them all), while the whole workspace's
/// selection finds the binary nextest's build made and does nothing.
///
/// nextest runs every test in a process of its own, so a per-process `OnceLock` alone would ask
/// cargo once per test (half a second each, queued on cargo's lock); within one nextest run
/// (`NEXTEST_RUN_ID`) the first test to get here builds, under a file lock, and the rest reuse it.
pub fn roster_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        locate_or_build_roster().unwrap_or_else(|err| panic!("cannot provide the roster binary: {err:#}"))
    })
    .clone()
}

fn locate_or_build_roster() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ROSTER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("locating the current executable")?;
    let mut profile_dir = exe.parent().context("executable has no parent dir")?.to_path_buf();
    if profile_dir.file_name().is_some_and(|name| name == "deps") {
        profile_dir.pop();
    }
    let target_dir = profile_dir.parent().context("profile dir has no parent")?;
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => bail!("cannot tell the cargo profile from {}", profile_dir.display()),
    };
    let bin = profile_dir.join("roster");
    let run = std::env::var("NEXTEST_RUN_ID").ok();
    let stamp = profile_dir.join(".roster-bin-run");
    let lock_path = profile_dir.join(".roster-bin-build.lock");
    let lock = std::fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    let built_this_run = run.as_deref().is_some_and(|run| std::fs::read_to_string(&stamp).is_ok_and(|s| s == run));
    if built_this_run && bin.exists() {
        return Ok(bin);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    strip_runner_env(&mut build);
    let output = build
        .args(["build", "--quiet", "--workspace", "--bin", "roster", "--profile", &profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .context("running cargo build for the roster binary")?;
    if !output.status.success() {
        bail!("cargo build --bin roster failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    anyhow::ensure!(bin.exists(), "cargo built the roster binary but {} does not exist", bin.display());
    if let Some(run) = run {
        std::fs::write(&stamp, run).with_context(|| format!("writing {}", stamp.display()))?;
    }
    Ok(bin)
}

/// Removes the variables the test runner sets (CARGO_PKG_*, CARGO_MANIFEST_DIR, NEXTEST_*, ...) from a
/// nested `cargo build`: build scripts track some of them with rerun-if-env-changed, so passing them
/// on would make cargo rebuild half the tree every run.
pub(crate) fn strip_runner_env(build: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        let runner_var =
            (name_text.starts_with("CARGO_") && name_text != "CARGO_HOME" && name_text != "CARGO_TARGET_DIR")
                || name_text.starts_with("NEXTEST")
                || name_text.starts_with("__NEXTEST")
                || name_text == "OUT_DIR"
                || name_text == "RUSTFLAGS";
        if runner_var {
            build.env_remove(&name);
        }
    }
}

/// The test defaults (HTTP, RPC and gossip on port 0, DNS off) with `extra` merged over them.
fn test_config(extra: Value) -> Value {
    let mut config = serde_json::json!({"ports": {"http": 0, "dns": -1, "server": 0, "serf_lan": 0}});
    merge(&mut config, extra);
    config
}

fn config_path(config_dir: &TempDir) -> PathBuf {
    config_dir.path().join("roster.json")
}

/// Spawns the agent and waits for its readiness line, killing it again if it never comes.
async fn spawn_agent(
    node_name: &str,
    mode: &AgentMode,
    config: &Path,
    envs: &[(String, String)],
) -> anyhow::Result<(Process, Ready)> {
    let mut command = match mode {
        AgentMode::Netns { netns, .. } => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns]).arg(roster_bin());
            command
        }
        _ => Command::new(roster_bin()),
    };
    command.envs(envs.iter().map(|(k, v)| (k, v)));
    command.arg("agent");
    match mode {
        AgentMode::Dev => {
            command.arg("-dev");
        }
        AgentMode::Server { data_dir } => {
            command.args(["-server", "-bootstrap-expect", "1", "-data-dir"]).arg(data_dir);
            command.args(["-bind", "127.0.0.1", "-client", "127.0.0.1"]);
        }
        AgentMode::LoneClient { data_dir } => {
            command.arg("-data-dir").arg(data_dir).args(["-bind", "127.0.0.1", "-client", "127.0.0.1"]);
        }
        AgentMode::Args(args) | AgentMode::Netns { args, .. } => {
            command.args(args);
        }
    }
    command.args(["-node", node_name, "-config-file"]).arg(config);
    // Opened before the spawn, so that a bad directory cannot leave a child nobody holds.
    let log_file = match std::env::var_os(LOG_DIR_ENV) {
        Some(dir) => {
            let path = Path::new(&dir).join(format!("{node_name}.log"));
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
            Some(file.with_context(|| format!("opening {} ({LOG_DIR_ENV})", path.display()))?)
        }
        None => None,
    };
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("spawning {}", roster_bin().display()))?;
    let stderr = Arc::new(Mutex::new(Vec::new()));
    drain_stderr(&mut child, Arc::clone(&stderr), log_file);
    let ready_rx = watch_stdout(&mut child);
    let mut process = Process { child, stderr };
    let outcome = tokio::time::timeout(READY_DEADLINE, ready_rx).await;
    let line = match outcome {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) | Ok(Err(_)) => {
            // Stdout closed without the line: the agent has exited or is about to.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let status = process.child.try_wait().ok().flatten();
            let stderr = process.kill_and_reap();
            bail!("agent closed stdout before the readiness line (exit {status:?}); stderr:\n{stderr}");
        }
        Err(_elapsed) => {
            let stderr = process.kill_and_reap();
            bail!("no readiness line within {READY_DEADLINE:?}; stderr:\n{stderr}");
        }
    };
    match parse_ready_line(&line) {
        Ok(ready) => Ok((process, ready)),
        Err(err) => {
            let stderr = process.kill_and_reap();
            Err(err.context(format!("bad readiness line {line:?}; stderr:\n{stderr}")))
        }
    }
}

/// Keeps the last `STDERR_TAIL` bytes of the child's stderr, and all of it in `log_file` when given; reading until EOF
/// also keeps the child from blocking on a full pipe.
fn drain_stderr(child: &mut Child, buffer: Arc<Mutex<Vec<u8>>>, mut log_file: Option<std::fs::File>) {
    let Some(mut pipe) = child.stderr.take() else { return };
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n_read) = pipe.read(&mut chunk) {
            if n_read == 0 {
                break;
            }
            if let Some(file) = log_file.as_mut()
                && file.write_all(&chunk[..n_read]).is_err()
            {
                // A full disk must not stop the drain (the child would block on its pipe): keep only the tail.
                log_file = None;
            }
            let Ok(mut buf) = buffer.lock() else { break };
            buf.extend_from_slice(&chunk[..n_read]);
            if buf.len() > STDERR_TAIL {
                let excess = buf.len() - STDERR_TAIL;
                buf.drain(..excess);
            }
        }
    });
}

/// Reads stdout lines on a thread: the first readiness line goes to the returned channel (`None`
/// at EOF without one), and everything after is drained so the agent never blocks writing.
fn watch_stdout(child: &mut Child) -> tokio::sync::oneshot::Receiver<Option<String>> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let Some(pipe) = child.stdout.take() else {
        let _receiver_gone = ready_tx.send(None);
        return ready_rx;
    };
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("roster: ready ")
                && let Some(tx) = ready_tx.take()
            {
                let _receiver_gone = tx.send(Some(line));
            }
        }
        if let Some(tx) = ready_tx.take() {
            let _receiver_gone = tx.send(None);
        }
    });
    ready_rx
}

/// Parses `roster: ready http=<ip:port|off> https=<ip:port|off> dns=<ip:port|off> rpc=<ip:port|off> serf=<ip:port|off>
/// node=<name>`; fields a build does not print (older builds have no `https=`) stay `None`.
fn parse_ready_line(line: &str) -> anyhow::Result<Ready> {
    let fields = line.trim_start_matches("roster: ready ").split_whitespace();
    let mut http = None;
    let mut https = None;
    let mut http_seen = false;
    let mut rpc = None;
    let mut dns = None;
    let mut serf = None;
    for field in fields {
        match field.split_once('=') {
            Some(("dns", "off")) => {}
            Some(("dns", addr)) => dns = Some(addr.parse::<SocketAddr>().context("dns address")?),
            Some(("http", "off")) => http_seen = true,
            Some(("http", addr)) => {
                http_seen = true;
                http = Some(addr.parse::<SocketAddr>().context("http address")?);
            }
            Some(("https", "off")) => {}
            Some(("https", addr)) => https = Some(addr.parse::<SocketAddr>().context("https address")?),
            Some(("rpc", "off")) => {}
            Some(("rpc", addr)) => rpc = Some(addr.parse::<SocketAddr>().context("rpc address")?),
            Some(("serf", "off")) => {}
            Some(("serf", addr)) => serf = Some(addr.parse::<SocketAddr>().context("serf address")?),
            _ => {}
        }
    }
    anyhow::ensure!(http_seen, "no http= field");
    Ok(Ready { http, https, rpc, dns, serf })
}

/// The flags a cluster member at `ip` shares with the others: its address for gossip, RPC and the client
/// listeners, and the servers to join (retried every second), as `TestCluster` and the scale harness start them.
pub(crate) fn member_args(ip: std::net::IpAddr, server_addrs: &[String]) -> Vec<String> {
    let ip = ip.to_string();
    let mut args = vec!["-bind".to_owned(), ip.clone(), "-client".to_owned(), ip, "-retry-interval".to_owned()];
    args.push("1s".to_owned());
    for addr in server_addrs {
        args.push("-retry-join".to_owned());
        args.push(addr.clone());
    }
    args
}

/// Merges `extra` into `base`, objects key by key, anything else replaced.
pub(crate) fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}

/// Runs `roster ARGS` with the address/token variables of the calling environment removed, so a
/// developer's `CONSUL_HTTP_ADDR` cannot redirect a test, and with `envs` added; no agent is needed
/// (offline commands, refused command lines).
pub async fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
    let mut command = tokio::process::Command::new(roster_bin());
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for name in ["CONSUL_HTTP_ADDR", "ROSTER_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "ROSTER_HTTP_TOKEN", "CONSUL_HTTP_SSL"] {
        command.env_remove(name);
    }
    command.envs(envs.iter().copied());
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("roster {args:?} did not finish within 30 s"))
        .unwrap_or_else(|err| panic!("running roster {args:?}: {err}"));
    CliOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[cfg(test)]
mod tests;
