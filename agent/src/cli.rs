//! The `roster` command line: Consul-style subcommands and flags, parsed with clap.
//!
//! Consul's CLI uses Go's `flag` package, so its users write long flags with one dash
//! (`-data-dir d`, `-node=n1`). clap only knows `--long`, so [`parse`] first rewrites every
//! single-dash argument that names one of our long flags into its double-dash form, leaving
//! `-h`, lone `-` (stdin), negative numbers and everything after `--` untouched.
//! Boolean flags also take Go's `-flag=false` form.
//!
//! `roster agent` becomes a [`crate::config::Config`] through [`crate::config::load`]; every
//! other subcommand is an HTTP client of a running agent, run by [`run_client`].

mod acl;
mod client;
mod cluster_job;
mod config;
mod event;
mod http_tls;
mod info;
mod job;
mod keyring;
mod kv_io;
mod lock;
mod maint;
mod members;
mod operator;
mod output;
mod rtt;
mod snapshot;
mod tls;
mod validate;
mod watch;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use acl::AclCommand;
pub use client::{resolve_http_addr, resolve_token, run_client};
pub use event::EventArgs;
pub use info::InfoArgs;
pub use keyring::KeyringArgs;
pub use kv_io::{KvExportArgs, KvImportArgs, KvScopeArgs};
pub use lock::LockArgs;
pub use maint::MaintArgs;
pub use rtt::RttArgs;
pub use snapshot::{SnapshotCommand, SnapshotInspectArgs, SnapshotRestoreArgs, SnapshotSaveArgs};
pub use validate::ValidateArgs;
pub use watch::{WatchArgs, WatchType};

/// The whole command line.
#[derive(Debug, Clone, Parser)]
#[command(name = "roster", version, about = "A Consul-compatible service-discovery agent", args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, named and shaped like Consul's.
// Built once per process, so the size of the `Agent` variant costs nothing worth a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run an agent (client by default, `-server` for a server, `-dev` for a throwaway server).
    Agent(AgentArgs),
    /// List the members of the LAN gossip pool.
    Members(MembersArgs),
    /// Tell the agent to join the gossip pool through one or more existing members.
    Join(JoinArgs),
    /// Make the agent leave the cluster gracefully and shut down.
    Leave(LeaveArgs),
    /// Mark a failed member as left (with -prune, forget it at once).
    ForceLeave(ForceLeaveArgs),
    /// Make the agent read its configuration files again and apply what changed (as SIGHUP does).
    Reload(LeaveArgs),
    /// Cluster operator commands.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Read and write the key/value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Register and deregister services with the local agent.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// Read the catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Print the roster version and the Consul version it is compatible with.
    Version,
    /// Watch a view of the catalog, KV or events and run a handler on every change.
    Watch(WatchArgs),
    /// Run a command while holding a lock on a KV prefix.
    Lock(LockArgs),
    /// Submit a job spec (TOML or JSON) to the agent's runtime shim.
    Run(RunArgs),
    /// Show, stop or read the logs of the agent's jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Manage ACL tokens, policies, roles, auth methods, binding rules and the agent's own tokens.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Print a new random gossip encryption key (32 bytes, base64).
    Keygen,
    /// List, install, use or remove gossip encryption keys on every member.
    Keyring(KeyringArgs),
    /// Create the agent CA and agent certificates (Consul's `tls ca create`, `tls cert create`).
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// Log in through an ACL auth method and write the new token's secret to a file.
    Login(acl::LoginArgs),
    /// Delete the login token given by -token (or the environment).
    Logout(acl::LogoutArgs),
    /// Put the node or a service into maintenance mode, take it out, or list what is in maintenance.
    Maint(MaintArgs),
    /// Check config files and directories with the agent's loader, without starting anything.
    Validate(ValidateArgs),
    /// Fire a user event, optionally filtered to nodes, services and tags.
    Event(EventArgs),
    /// Print the agent's, Raft's, gossip's and the runtime's debugging statistics.
    Info(InfoArgs),
    /// Estimate the round trip between two nodes from their network coordinates.
    Rtt(RttArgs),
    /// Save, restore or inspect snapshots of the servers' state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Write, read, list and delete config entries (`service-defaults`, `proxy-defaults`).
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// The nodes that can run cluster jobs: their drivers, node meta and running allocations.
    Hosts(cluster_job::HostsArgs),
}

/// `roster run FILE`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The job spec: TOML (`.toml`) or JSON.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `roster job ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum JobCommand {
    /// A cluster job's allocations (node, version, desired and reported status, health, restarts, tasks); without a
    /// cluster job of that name, the job this agent runs alone; without a name, every job this agent runs.
    Status {
        /// Agent address and token.
        #[command(flatten)]
        http: HttpArgs,
        /// The job (default: all).
        name: Option<String>,
    },
    /// Deregister a job's services, then stop and remove its tasks.
    Stop {
        /// Agent address and token.
        #[command(flatten)]
        http: HttpArgs,
        /// The job.
        name: String,
    },
    /// The last lines a task wrote.
    Logs {
        /// Agent address and token.
        #[command(flatten)]
        http: HttpArgs,
        /// The task (default: the job's first).
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// How many lines.
        #[arg(short = 'n', default_value_t = 100)]
        lines: usize,
        /// The job.
        name: String,
    },
    /// Deploy a cluster job (TOML or JSON) through the servers: placed by its `[placement]`, or on the `-node`s given.
    Deploy {
        /// Agent address and token.
        #[command(flatten)]
        http: HttpArgs,
        /// Run exactly on this node (one allocation each); may repeat.
        #[arg(long = "node", value_name = "NAME")]
        nodes: Vec<String>,
        /// The job spec: TOML (`.toml`) or JSON.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Stop every allocation of a cluster job (`-purge`: forget the job and its history too).
    Undeploy {
        /// Agent address and token.
        #[command(flatten)]
        http: HttpArgs,
        /// Remove the job instead of keeping it stopped.
        #[arg(long)]
        purge: bool,
        /// The job.
        name: String,
    },
    /// A cluster job's kept versions.
    History {
        /// Agent address and token.
        #[command(flatten)]
        http: HttpArgs,
        /// The job.
        name: String,
    },
    /// Roll a cluster job back to a kept version (as a new version).
    Revert {
        /// Agent address and token.
        #[command(flatten)]
        http: HttpArgs,
        /// The job.
        name: String,
        /// The version to go back to.
        version: u64,
    },
}

/// Flags of `roster agent`. Every field is optional so that config files are only overridden
/// by flags actually given; [`crate::config::load`] turns them into the top config layer.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentArgs {
    /// Single in-memory server on loopback, bootstrapped at once (for trying roster and for tests).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub dev: Option<bool>,
    /// JSON config file to load; may repeat, later files win.
    #[arg(long, value_name = "FILE")]
    pub config_file: Vec<PathBuf>,
    /// Directory whose `*.json` files are loaded in lexical order, after the config files; may repeat.
    #[arg(long, value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
    /// Node name (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Node ID, a UUID (default: generated and kept in the data dir).
    #[arg(long, value_name = "UUID")]
    pub node_id: Option<String>,
    /// Node metadata as key:value; may repeat.
    #[arg(long, value_name = "KEY:VALUE")]
    pub node_meta: Vec<String>,
    /// Directory for durable state; required for servers outside -dev.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run as a server.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub server: Option<bool>,
    /// Elect this server leader without waiting for others (only ever on one server).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub bootstrap: Option<bool>,
    /// Number of servers to wait for before bootstrapping.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub bootstrap_expect: Option<i64>,
    /// Address for gossip and server RPC.
    #[arg(long, value_name = "IP")]
    pub bind: Option<String>,
    /// Address advertised to other nodes.
    #[arg(long, value_name = "IP")]
    pub advertise: Option<String>,
    /// Address(es) for HTTP and DNS, space-separated.
    #[arg(long, value_name = "IP")]
    pub client: Option<String>,
    /// Datacenter name.
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
    /// DNS domain (default consul).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Additional DNS domain.
    #[arg(long, value_name = "DOMAIN")]
    pub alt_domain: Option<String>,
    /// Log level: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Upstream DNS server (IP or IP:port); may repeat.
    #[arg(long, value_name = "ADDR")]
    pub recursor: Vec<String>,
    /// Address of an agent to join at start; may repeat.
    #[arg(long, value_name = "ADDR")]
    pub join: Vec<String>,
    /// Address of an agent to join at start, retried until it answers; may repeat.
    #[arg(long, value_name = "ADDR")]
    pub retry_join: Vec<String>,
    /// Time between -retry-join attempts (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub retry_interval: Option<String>,
    /// Give up -retry-join after this many attempts (default 0: never).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub retry_max: Option<i64>,
    /// Allow script checks (lets HTTP API users run commands on this host).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub enable_script_checks: Option<bool>,
    /// Allow script checks from local config files only.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub enable_local_script_checks: Option<bool>,
    /// Registrator mode: register containers roster did not start from their `SERVICE_*` labels or env.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub watch_docker: Option<bool>,
    /// HTTP API port (-1 disables, 0 picks a free port).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub http_port: Option<i64>,
    /// HTTPS API port (-1 disables).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub https_port: Option<i64>,
    /// DNS port (-1 disables, 0 picks a free port).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub dns_port: Option<i64>,
    /// LAN gossip port.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub serf_lan_port: Option<i64>,
    /// WAN gossip port.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub serf_wan_port: Option<i64>,
    /// Server RPC and Raft port.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub server_port: Option<i64>,
    /// gRPC port (-1 disables).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub grpc_port: Option<i64>,
    /// Gossip encryption key: base64 of 16, 24 or 32 bytes (see `roster keygen`); seeds an empty keyring.
    #[arg(long, value_name = "KEY")]
    pub encrypt: Option<String>,
    /// Accepted for Consul compatibility; roster has no web UI.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub ui: Option<bool>,
}

/// How client subcommands reach the agent.
#[derive(Debug, Clone, Default, Args)]
pub struct HttpArgs {
    /// Agent HTTP address (default: $CONSUL_HTTP_ADDR, $ROSTER_HTTP_ADDR, then 127.0.0.1:8500).
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// ACL token (default: $CONSUL_HTTP_TOKEN, then $ROSTER_HTTP_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// File holding the ACL token; wins over -token, as in Consul (default: $CONSUL_HTTP_TOKEN_FILE).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle the agent's HTTPS certificate must chain to (default: $CONSUL_CACERT).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Directory of PEM CA certificates, as -ca-file (default: $CONSUL_CAPATH).
    #[arg(long, value_name = "DIR")]
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate, for an agent with verify_incoming (default: $CONSUL_CLIENT_CERT).
    #[arg(long, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// PEM key of -client-cert (default: $CONSUL_CLIENT_KEY).
    #[arg(long, value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Name the agent's certificate must carry, instead of the -http-addr host (default: $CONSUL_TLS_SERVER_NAME).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

/// `roster members`.
#[derive(Debug, Clone, Default, Args)]
pub struct MembersArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Print every tag of every member instead of the summary table.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub detailed: bool,
    /// Only members whose status (alive, leaving, left, failed) matches this regular expression.
    #[arg(long, default_value = ".*", value_name = "REGEX")]
    pub status: String,
    /// Consul's WAN pool; refused, since roster runs a single datacenter.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub wan: bool,
    /// Consul Enterprise's network segments; refused by name.
    #[arg(long, hide = true, value_name = "SEGMENT")]
    pub segment: Option<String>,
    /// Consul Enterprise's admin partitions; refused by name.
    #[arg(long, hide = true, value_name = "PARTITION")]
    pub partition: Option<String>,
    /// A `?filter=` on the members list, which roster's agent does not evaluate; refused by name.
    #[arg(long, hide = true, value_name = "EXPRESSION")]
    pub filter: Option<String>,
}

/// `roster join`.
#[derive(Debug, Clone, Default, Args)]
pub struct JoinArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Gossip addresses of existing members (`host` or `host:port`, default port 8301).
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
}

/// `roster leave` and `roster reload`, which take only the agent's address and token.
#[derive(Debug, Clone, Default, Args)]
pub struct LeaveArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `roster force-leave`.
#[derive(Debug, Clone, Default, Args)]
pub struct ForceLeaveArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Remove the member from the member list at once instead of keeping it as left.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub prune: bool,
    /// The node name of the member.
    #[arg(value_name = "NODE")]
    pub node: String,
}

/// `roster operator ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum OperatorCommand {
    /// Raft commands.
    #[command(subcommand)]
    Raft(OperatorRaftCommand),
    /// Autopilot commands.
    #[command(subcommand)]
    Autopilot(operator::OperatorAutopilotCommand),
}

/// `roster operator raft ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum OperatorRaftCommand {
    /// Print the Raft servers: node, ID, address, state, voter.
    ListPeers(ListPeersArgs),
    /// Remove a server (one that is gone) from the Raft configuration.
    RemovePeer(operator::RemovePeerArgs),
    /// Hand Raft leadership to another voter.
    TransferLeader(operator::TransferLeaderArgs),
}

/// `roster operator raft list-peers`.
#[derive(Debug, Clone, Default, Args)]
pub struct ListPeersArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Ask any server, not only the leader.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub stale: bool,
}

/// `roster kv ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum KvCommand {
    /// Print the value of a key (or, with -recurse, every key under a prefix).
    Get(KvGetArgs),
    /// Write a value (`-` reads stdin, `@FILE` reads a file).
    Put(KvPutArgs),
    /// Delete a key (or, with -recurse, a prefix).
    Delete(KvDeleteArgs),
    /// Print every entry under a prefix as Consul's export JSON.
    Export(KvExportArgs),
    /// Write the entries of Consul's export JSON (`@FILE`, `-` for stdin, or the JSON itself).
    Import(KvImportArgs),
}

/// `roster kv get`.
#[derive(Debug, Clone, Default, Args)]
pub struct KvGetArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Print every key under the prefix as `key:value`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub recurse: bool,
    /// Print only the key names under the prefix, up to the separator.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub keys: bool,
    /// Separator for -keys.
    #[arg(long, default_value = "/", value_name = "SEP")]
    pub separator: String,
    /// Print every field of the entry, not just the value.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub detailed: bool,
    /// Print values base64-encoded.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub base64: bool,
    /// The key, or the prefix with -recurse / -keys.
    pub key: Option<String>,
}

/// `roster kv put`.
#[derive(Debug, Clone, Default, Args)]
pub struct KvPutArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Opaque flags stored with the entry.
    #[arg(long, value_name = "N")]
    pub flags: Option<u64>,
    /// Write only if the entry's ModifyIndex equals -modify-index (0: only if absent).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub cas: bool,
    /// The ModifyIndex expected by -cas.
    #[arg(long, value_name = "N")]
    pub modify_index: Option<u64>,
    /// The value is base64 and is decoded before writing.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub base64: bool,
    /// The key to write.
    pub key: String,
    /// The value: literal text, `-` for stdin, `@FILE` for a file's bytes; empty when omitted.
    pub value: Option<String>,
}

/// `roster kv delete`.
#[derive(Debug, Clone, Default, Args)]
pub struct KvDeleteArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Delete every key under the prefix.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub recurse: bool,
    /// The key, or the prefix with -recurse.
    pub key: Option<String>,
}

/// `roster services ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ServicesCommand {
    /// Register the services of Consul service definition files (`{"service":{..}}` or `{"services":[..]}`).
    Register(ServicesRegisterArgs),
    /// Deregister a service by ID.
    Deregister(ServicesDeregisterArgs),
}

/// `roster services register`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServicesRegisterArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// JSON service definition files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `roster services deregister`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServicesDeregisterArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The service ID, Consul's way (`-id=ID`).
    #[arg(long = "id", value_name = "ID", conflicts_with = "service_id")]
    pub id: Option<String>,
    /// The service ID, given positionally.
    #[arg(value_name = "ID", required_unless_present = "id")]
    pub service_id: Option<String>,
}

impl ServicesDeregisterArgs {
    /// The ID to deregister, whichever way it was given.
    pub fn service_id(&self) -> &str {
        self.id.as_deref().or(self.service_id.as_deref()).unwrap_or_default()
    }
}

/// `roster catalog ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum CatalogCommand {
    /// List service names.
    Services(CatalogServicesArgs),
    /// List nodes.
    Nodes(CatalogNodesArgs),
    /// List the known datacenters.
    Datacenters(CatalogDatacentersArgs),
}

/// `roster catalog datacenters`.
#[derive(Debug, Clone, Default, Args)]
pub struct CatalogDatacentersArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `roster catalog services`.
#[derive(Debug, Clone, Default, Args)]
pub struct CatalogServicesArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Also print each service's tags.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub tags: bool,
}

/// `roster catalog nodes`.
#[derive(Debug, Clone, Default, Args)]
pub struct CatalogNodesArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Parses a full argument list (program name first), accepting Consul's single-dash long flags.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut rewritten = rewrite_single_dash(args.clone(), &known_long_flags());
    // A child command (`roster lock PREFIX cmd -x`, `roster watch ... handler -y`) keeps its own
    // flags as written: as with Go's flag package, flags end where the command begins.
    if let Some(start) = child_command_start(&rewritten) {
        rewritten.truncate(start);
        rewritten.extend(args.into_iter().skip(start));
    }
    Cli::try_parse_from(rewritten)
}

/// Where the trailing child command of `lock` or `watch` starts in `args`, if there is one.
fn child_command_start(args: &[OsString]) -> Option<usize> {
    let matches = <Cli as clap::CommandFactory>::command().try_get_matches_from(args).ok()?;
    let (name, sub) = matches.subcommand()?;
    if !matches!(name, "lock" | "watch") {
        return None;
    }
    sub.index_of("child")
}

/// Every long flag name and alias of every subcommand, plus clap's own `help` and `version`.
pub fn known_long_flags() -> BTreeSet<String> {
    fn walk(command: &clap::Command, names: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                names.insert(long.to_owned());
            }
            // Consul's deprecated spellings (`lock -try`) are written with one dash too.
            names.extend(arg.get_all_aliases().unwrap_or_default().into_iter().map(str::to_owned));
        }
        for sub in command.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names = BTreeSet::from(["help".to_owned(), "version".to_owned()]);
    walk(&<Cli as clap::CommandFactory>::command(), &mut names);
    names
}

/// Rewrites `-flag`, `-flag=value` into `--flag`, `--flag=value` when `flag` is in `known`.
///
/// The first element (the program name) and everything after a bare `--` are left alone, as
/// are `-h`, `-` and arguments that name no known flag (so a value like `-1` survives).
pub fn rewrite_single_dash(args: Vec<OsString>, known: &BTreeSet<String>) -> Vec<OsString> {
    let mut past_separator = false;
    args.into_iter()
        .enumerate()
        .map(|(idx, arg)| {
            if idx == 0 || past_separator {
                return arg;
            }
            let Some(text) = arg.to_str() else {
                return arg;
            };
            if text == "--" {
                past_separator = true;
                return arg;
            }
            let Some(body) = text.strip_prefix('-').filter(|body| !body.starts_with('-')) else {
                return arg;
            };
            let name = body.split_once('=').map_or(body, |(name, _)| name);
            if name.chars().count() >= 2 && known.contains(name) { OsString::from(format!("-{text}")) } else { arg }
        })
        .collect()
}

#[cfg(test)]
mod tests;
