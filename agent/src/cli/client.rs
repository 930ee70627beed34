//! The client subcommands: each one is a few HTTP calls to a running agent and some printing.
//!
//! Errors that are the user's answer rather than a failure (a missing key, a failed CAS) are
//! printed here and give exit code 1; transport and protocol failures come back as `Err` for
//! `main` to print as `Error: ...`.

use std::io::Write;
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::output;
use super::{CatalogCommand, Command, HttpArgs, KvCommand, OperatorCommand, OperatorRaftCommand, ServicesCommand};
use super::{KvDeleteArgs, KvGetArgs, KvPutArgs};
use crate::config::EnvSource;

/// Characters escaped in a KV key: everything but unreserved characters and `/`, which keys keep.
pub(super) const KEY_ESCAPES: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
/// Characters escaped in one path segment or query value (a service ID may contain `/` or `#`).
const SEGMENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Runs a client subcommand and returns its exit code. `Command::Agent` is not a client command.
pub async fn run_client(command: &Command, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match command {
        Command::Agent(_) => bail!("`roster agent` runs the agent; it is not a client command"),
        Command::Version => print_stdout(output::version_text().as_bytes()),
        Command::Watch(args) => super::watch::run(args, env).await,
        Command::Lock(args) => super::lock::run(args, env).await,
        Command::Run(args) => super::job::run(args, env).await,
        Command::Job(command) => super::job::job(command, env).await,
        Command::Acl(command) => super::acl::run(command, env).await,
        Command::Keygen => super::keyring::keygen(),
        Command::Keyring(args) => super::keyring::run(args, env).await,
        Command::Tls(command) => super::tls::run(command),
        Command::Login(args) => super::acl::report(super::acl::login(args, env).await),
        Command::Logout(args) => super::acl::report(super::acl::logout(args, env).await),
        Command::Members(args) => super::members::run(args, env).await,
        Command::Maint(args) => super::maint::run(args, env).await,
        Command::Validate(args) => super::validate::run(args),
        Command::Event(args) => super::event::run(args, env).await,
        Command::Info(args) => super::info::run(args, env).await,
        Command::Rtt(args) => super::rtt::run(args, env).await,
        Command::Snapshot(command) => super::snapshot::run(command, env).await,
        Command::Config(command) => super::config::run(command, env).await,
        Command::Hosts(args) => super::cluster_job::hosts(args, env).await,
        Command::Kv(KvCommand::Export(args)) => super::kv_io::export(args, env).await,
        Command::Kv(KvCommand::Import(args)) => super::kv_io::import(args, env).await,
        Command::Catalog(CatalogCommand::Datacenters(args)) => super::members::datacenters(args, env).await,
        Command::Join(args) => {
            let agent = AgentClient::new(&args.http, env)?;
            let mut joined = 0;
            let mut failures = Vec::new();
            // Consul's CLI joins each address in its own call and reports the count that worked.
            for address in &args.addresses {
                let path = format!("/v1/agent/join/{}", segment(address));
                match agent.expect_ok(Method::PUT, &path, None).await {
                    Ok(_) => joined += 1,
                    Err(err) => failures.push(format!("{address}: {err:#}")),
                }
            }
            if joined == 0 {
                bail!("Error joining address(es): {}", failures.join("; "));
            }
            for failure in &failures {
                eprintln!("Could not join {failure}");
            }
            println!("Successfully joined cluster by contacting {joined} nodes.");
            Ok(0)
        }
        Command::Leave(args) => {
            let agent = AgentClient::new(&args.http, env)?;
            agent.expect_ok(Method::PUT, "/v1/agent/leave", None).await?;
            println!("Graceful leave complete");
            Ok(0)
        }
        Command::Reload(args) => {
            let agent = AgentClient::new(&args.http, env)?;
            // Consul's wording and exit code; the agent's answer says why a reload failed.
            if let Err(err) = agent.expect_ok(Method::PUT, "/v1/agent/reload", None).await {
                eprintln!("Error reloading: {err:#}");
                return Ok(1);
            }
            println!("Configuration reload triggered");
            Ok(0)
        }
        Command::ForceLeave(args) => {
            let agent = AgentClient::new(&args.http, env)?;
            let mut path = format!("/v1/agent/force-leave/{}", segment(&args.node));
            if args.prune {
                path.push_str("?prune");
            }
            agent.expect_ok(Method::PUT, &path, None).await?;
            Ok(0)
        }
        Command::Operator(OperatorCommand::Raft(OperatorRaftCommand::ListPeers(args))) => {
            let agent = AgentClient::new(&args.http, env)?;
            let path =
                if args.stale { "/v1/operator/raft/configuration?stale" } else { "/v1/operator/raft/configuration" };
            let config = agent.get_json(path).await?;
            print_stdout(output::raft_peers_table(&config)?.as_bytes())
        }
        Command::Operator(OperatorCommand::Raft(OperatorRaftCommand::RemovePeer(args))) => {
            super::operator::remove_peer(args, env).await
        }
        Command::Operator(OperatorCommand::Raft(OperatorRaftCommand::TransferLeader(args))) => {
            super::operator::transfer_leader(args, env).await
        }
        Command::Operator(OperatorCommand::Autopilot(command)) => super::operator::autopilot(command, env).await,
        Command::Kv(KvCommand::Get(args)) => kv_get(args, env).await,
        Command::Kv(KvCommand::Put(args)) => kv_put(args, env).await,
        Command::Kv(KvCommand::Delete(args)) => kv_delete(args, env).await,
        Command::Services(ServicesCommand::Register(args)) => {
            let agent = AgentClient::new(&args.http, env)?;
            for file in &args.files {
                let text =
                    tokio::fs::read_to_string(file).await.with_context(|| format!("cannot read {}", file.display()))?;
                let parsed: Value =
                    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))?;
                let definitions =
                    output::service_definitions(&parsed).with_context(|| format!("in {}", file.display()))?;
                for definition in definitions {
                    let body = serde_json::to_vec(&definition)?;
                    agent.expect_ok(Method::PUT, "/v1/agent/service/register", Some(body)).await?;
                    println!("Registered service: {}", output::service_name(&definition));
                }
            }
            Ok(0)
        }
        Command::Services(ServicesCommand::Deregister(args)) => {
            let agent = AgentClient::new(&args.http, env)?;
            let id = args.service_id();
            let path = format!("/v1/agent/service/deregister/{}", segment(id));
            agent.expect_ok(Method::PUT, &path, None).await?;
            println!("Deregistered service: {id}");
            Ok(0)
        }
        Command::Catalog(CatalogCommand::Services(args)) => {
            let agent = AgentClient::new(&args.http, env)?;
            let services = agent.get_json("/v1/catalog/services").await?;
            print_stdout(output::catalog_services_list(&services, args.tags)?.as_bytes())
        }
        Command::Catalog(CatalogCommand::Nodes(args)) => {
            let agent = AgentClient::new(&args.http, env)?;
            let nodes = agent.get_json("/v1/catalog/nodes").await?;
            print_stdout(output::catalog_nodes_table(&nodes)?.as_bytes())
        }
    }
}

/// The agent's base URL: `-http-addr`, else `CONSUL_HTTP_ADDR`, else `ROSTER_HTTP_ADDR`, else
/// `127.0.0.1:8500`; `http://` is added when no scheme is given (`https://` with `CONSUL_HTTP_SSL=true`).
pub fn resolve_http_addr(flag: Option<&str>, env: &dyn EnvSource) -> String {
    let addr = flag
        .map(str::to_owned)
        .or_else(|| env.var("CONSUL_HTTP_ADDR"))
        .or_else(|| env.var("ROSTER_HTTP_ADDR"))
        .map(|addr| addr.trim().to_owned())
        .filter(|addr| !addr.is_empty())
        .unwrap_or_else(|| "127.0.0.1:8500".to_owned());
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        return addr.to_owned();
    }
    let ssl = env
        .var("CONSUL_HTTP_SSL")
        .is_some_and(|flag| matches!(flag.trim().to_ascii_lowercase().as_str(), "1" | "true"));
    let scheme = if ssl { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// The ACL token, in the Consul API client's precedence (`api.NewClient`): `-token-file`, then
/// `-token`, then `CONSUL_HTTP_TOKEN_FILE`, then `CONSUL_HTTP_TOKEN`, then roster's own
/// `ROSTER_HTTP_TOKEN`. A token file is read whole and trimmed; an empty one (or an empty
/// variable) falls through to the next source, and an unreadable one is an error rather than
/// a silent anonymous request, as in Consul.
pub fn resolve_token(
    flag: Option<&str>,
    file_flag: Option<&Path>,
    env: &dyn EnvSource,
) -> anyhow::Result<Option<String>> {
    let non_empty = |token: String| Some(token).filter(|token| !token.is_empty());
    if let Some(token) = file_flag.map(read_token_file).transpose()?.and_then(non_empty) {
        return Ok(Some(token));
    }
    if let Some(token) = flag.map(str::to_owned).and_then(non_empty) {
        return Ok(Some(token));
    }
    let env_file = env.var("CONSUL_HTTP_TOKEN_FILE").filter(|path| !path.trim().is_empty());
    if let Some(token) = env_file.map(|path| read_token_file(Path::new(&path))).transpose()?.and_then(non_empty) {
        return Ok(Some(token));
    }
    Ok(env.var("CONSUL_HTTP_TOKEN").and_then(non_empty).or_else(|| env.var("ROSTER_HTTP_TOKEN").and_then(non_empty)))
}

/// A token file's content without surrounding whitespace (editors add a final newline).
fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("Error loading token file {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// `kv get`: one value, `-recurse` lines, `-keys` names or `-detailed` blocks.
async fn kv_get(args: &KvGetArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let key = normalize_key(args.key.as_deref());
    if key.is_empty() && !args.recurse && !args.keys {
        bail!("missing KEY argument");
    }
    let agent = AgentClient::new(&args.http, env)?;
    let mut path = format!("/v1/kv/{}", utf8_percent_encode(&key, KEY_ESCAPES));
    if args.keys {
        path.push_str(&format!("?keys&separator={}", segment(&args.separator)));
    } else if args.recurse {
        path.push_str("?recurse");
    }
    let (status, body) = agent.send(Method::GET, &path, None).await?;
    if status == StatusCode::NOT_FOUND {
        if args.recurse || args.keys {
            return Ok(0);
        }
        eprintln!("Error! No key exists at: {key}");
        return Ok(1);
    }
    let answer = json_or_error(status, &body)?;
    let printed = if args.keys {
        output::kv_keys_output(&answer)?.into_bytes()
    } else if args.detailed {
        output::kv_detailed_output(&answer, args.base64)?
    } else if args.recurse {
        output::kv_recurse_output(&answer, args.base64)?
    } else {
        output::kv_get_output(&answer, args.base64)?
    };
    print_stdout(&printed)
}

/// `kv put`: writes the value, honouring `-flags` and `-cas -modify-index`.
async fn kv_put(args: &KvPutArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let key = normalize_key(Some(&args.key));
    if key.is_empty() {
        bail!("missing KEY argument");
    }
    if args.cas && args.modify_index.is_none() {
        bail!("-cas needs -modify-index (0 writes only if the key does not exist)");
    }
    let mut value = read_value(args.value.as_deref()).await?;
    if args.base64 {
        value = base64::engine::general_purpose::STANDARD
            .decode(value.trim_ascii())
            .context("-base64 was given but the value is not base64")?;
    }
    let mut query = Vec::new();
    if let Some(flags) = args.flags {
        query.push(format!("flags={flags}"));
    }
    if let (true, Some(index)) = (args.cas, args.modify_index) {
        query.push(format!("cas={index}"));
    }
    let mut path = format!("/v1/kv/{}", utf8_percent_encode(&key, KEY_ESCAPES));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let agent = AgentClient::new(&args.http, env)?;
    let (status, body) = agent.send(Method::PUT, &path, Some(value)).await?;
    let written = json_or_error(status, &body)?;
    match (written.as_bool(), args.cas) {
        (Some(true), _) => {
            println!("Success! Data written to: {key}");
            Ok(0)
        }
        (_, true) => {
            eprintln!("Error! Did not write to {key}: CAS failed");
            Ok(1)
        }
        (_, false) => {
            eprintln!("Error! Failed writing data to: {key}");
            Ok(1)
        }
    }
}

/// `kv delete`: one key, or a prefix with `-recurse`.
async fn kv_delete(args: &KvDeleteArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let key = normalize_key(args.key.as_deref());
    if key.is_empty() && !args.recurse {
        bail!("missing KEY argument");
    }
    let mut path = format!("/v1/kv/{}", utf8_percent_encode(&key, KEY_ESCAPES));
    if args.recurse {
        path.push_str("?recurse");
    }
    let agent = AgentClient::new(&args.http, env)?;
    let (status, body) = agent.send(Method::DELETE, &path, None).await?;
    json_or_error(status, &body)?;
    if args.recurse {
        println!("Success! Deleted keys with prefix: {key}");
    } else {
        println!("Success! Deleted key: {key}");
    }
    Ok(0)
}

/// Consul's CLI drops a leading `/` from keys; the HTTP path already has one.
fn normalize_key(key: Option<&str>) -> String {
    key.unwrap_or_default().trim_start_matches('/').to_owned()
}

/// The bytes to write: literal text, `-` for stdin, `@FILE` for a file, nothing when omitted.
async fn read_value(value: Option<&str>) -> anyhow::Result<Vec<u8>> {
    match value {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut bytes = Vec::new();
            tokio::io::stdin().read_to_end(&mut bytes).await.context("cannot read the value from stdin")?;
            Ok(bytes)
        }
        Some(text) => match text.strip_prefix('@') {
            Some(path) => tokio::fs::read(path).await.with_context(|| format!("cannot read the value from {path}")),
            None => Ok(text.as_bytes().to_vec()),
        },
    }
}

/// Percent-encodes one path segment or query value.
pub(super) fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT_ESCAPES).to_string()
}

/// Parses a 2xx body as JSON, or turns any other status into Consul's "Unexpected response code" error.
fn json_or_error(status: StatusCode, body: &[u8]) -> anyhow::Result<Value> {
    if !status.is_success() {
        bail!("Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(body).trim());
    }
    serde_json::from_slice(body).context("the agent's answer is not valid JSON")
}

/// Writes to stdout and reports success as exit code 0.
pub(super) fn print_stdout(bytes: &[u8]) -> anyhow::Result<i32> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(0)
}

/// A connection to one agent's HTTP API.
pub(super) struct AgentClient {
    /// The same HTTP client `watch` and `lock` use, with a one-shot request timeout.
    http: super::watch::agent_http::AgentHttp,
}

impl AgentClient {
    /// Resolves the address and token and builds the HTTP client.
    pub(super) fn new(args: &HttpArgs, env: &dyn EnvSource) -> anyhow::Result<AgentClient> {
        install_crypto_provider();
        Ok(AgentClient { http: super::watch::agent_http::AgentHttp::with_timeout(args, env, Duration::from_secs(60))? })
    }

    /// Sends one request; only transport failures are errors, any status comes back.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let reply = self.http.send(method, path, body).await?;
        Ok((reply.status, reply.body))
    }

    /// GETs a JSON document; non-2xx answers are errors.
    pub(super) async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.send(Method::GET, path, None).await?;
        json_or_error(status, &body)
    }

    /// GETs a JSON document, or prints `{what}: {error}` as Consul's commands do and gives `None` (exit code 1).
    pub(super) async fn get_json_or_report(&self, path: &str, what: &str) -> Option<Value> {
        self.get_json(path).await.map_err(|err| eprintln!("{what}: {err:#}")).ok()
    }

    /// Sends a write whose body the agent leaves empty; non-2xx answers are errors.
    pub(super) async fn expect_ok(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<()> {
        let (status, answer) = self.send(method, path, body).await?;
        if !status.is_success() {
            bail!("Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(&answer).trim());
        }
        Ok(())
    }
}

/// reqwest is built without a default crypto provider; install ring's once per process.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error only means another part of the process installed one first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
