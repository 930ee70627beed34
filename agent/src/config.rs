//! The agent's whole configuration: one [`Config`], built in layers and validated before any port is bound.
//!
//! Layers, later wins: built-in defaults → `-dev` defaults → `-config-file` files (in the order
//! given) → `-config-dir` directories (every `*.json` and `*.hcl`, lexical order) → `ROSTER_*`
//! environment variables → command-line flags → `-hcl` snippets (Consul's order).
//! Scalars are replaced by later layers; lists (`retry_join`, `start_join`, `recursors`,
//! `services`, `checks`, `exec.host_mounts`, `docker.host_mounts`) are concatenated, as Consul's config merge does.
//!
//! Every layer is first read into a loose [`source`] shape (unknown keys rejected, values kept
//! raw), then the merged result is checked in one pass in [`build`], so a user sees every
//! mistake at once instead of fixing them one restart at a time.
//! Subsystem crates never read files or the environment; `main` hands them pieces of `Config`.

mod acl;
mod autopilot;
mod build;
mod consul_keys;
mod dns;
pub mod duration;
mod env;
mod hcl;
mod logging;
mod reload;
mod source;
mod telemetry;
mod tls;
pub mod ui;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use acl::{AclConfig, AclTokens, DefaultPolicy, DownPolicy};
pub use duration::{duration_from_json, format_go_duration, parse_go_duration};
pub use env::{EmptyEnv, EnvSource, ProcessEnv};
pub use reload::restart_required;
pub use tls::{Limits, TlsConfig};

use crate::cli::AgentArgs;
pub use dns::DnsSettings;
pub use logging::{DEFAULT_LOG_FILE_NAME, LogFileConfig, LoggingConfig};

/// The validated configuration of one `roster agent` process.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Datacenter this agent belongs to (`datacenter`, `-datacenter`; default `dc1`).
    /// Lowercase letters, digits, `-` and `_` only, because it appears in DNS names.
    pub datacenter: String,
    /// This node's name in the catalog and in gossip (`node_name`, `-node`; default the hostname).
    /// It must be unique in the cluster; a clash makes gossip flap between the two hosts.
    pub node_name: String,
    /// Fixed node ID (`node_id`, `-node-id`); `None` lets the agent generate one and keep it in
    /// `data_dir`, so a client without a data dir gets a new ID on every start.
    pub node_id: Option<uuid::Uuid>,
    /// Node metadata (`node_meta`, `-node-meta key:value`), served as DNS TXT records and in the catalog.
    pub node_meta: BTreeMap<String, String>,
    /// Directory for durable state (`data_dir`, `-data-dir`).
    /// Required for servers outside `-dev`; `None` means in-memory, so everything is lost on exit.
    pub data_dir: Option<PathBuf>,
    /// `-dev`: a single in-memory server on loopback, for trying roster and for tests.
    pub dev: bool,
    /// Run as a server (`server`, `-server`): hold a Raft replica of the catalog and KV store.
    /// Servers cost disk and CPU; run 3 or 5 of them, everything else as clients.
    pub server: bool,
    /// Elect this server leader on its own (`bootstrap`, `-bootstrap`, or `bootstrap_expect` = 1).
    /// Only ever set it on one server: two bootstrapped servers make two clusters.
    pub bootstrap: bool,
    /// Wait for this many servers before bootstrapping the cluster (`bootstrap_expect`, `-bootstrap-expect`).
    /// `None` when unset (Consul's 0); never `Some(0)`.
    pub bootstrap_expect: Option<u32>,
    /// Address gossip and server RPC listen on (`bind_addr`, `-bind`; default `0.0.0.0`, `-dev` `127.0.0.1`).
    pub bind_addr: IpAddr,
    /// Address advertised to other nodes (`advertise_addr`, `-advertise`); `None` advertises `bind_addr`,
    /// or a private address of the host when `bind_addr` is unspecified.
    pub advertise_addr: Option<IpAddr>,
    /// Addresses the client interfaces (HTTP, DNS) listen on (`client_addr`, space-separated; `-client`).
    /// The default, loopback only, keeps the unauthenticated API off the network.
    pub client_addrs: Vec<IpAddr>,
    /// Per-interface overrides of `client_addrs` (`addresses.*`).
    pub addresses: Addresses,
    /// Listening ports (`ports.*`).
    pub ports: Ports,
    /// Addresses to join at start; failures are fatal (`start_join`, `-join`).
    pub start_join: Vec<String>,
    /// Addresses to join at start, retried until one answers (`retry_join`, `-retry-join`).
    pub retry_join: Vec<String>,
    /// Upstream DNS servers for names outside the domain (`recursors`, `-recursor`); port 53 unless given.
    /// Empty means such queries are refused at once.
    pub recursors: Vec<SocketAddr>,
    /// Allow script checks registered over HTTP and from config (`enable_script_checks`).
    /// This lets anyone who can reach the HTTP API run commands on the host, so it is off by default.
    pub enable_script_checks: bool,
    /// Allow script checks only from config files and the local agent (`enable_local_script_checks`).
    pub enable_local_script_checks: bool,
    /// Registrator mode (`watch_docker`, `-watch-docker`, a roster extension): containers roster did not start are
    /// registered from their `SERVICE_*` labels or env and deregistered when they stop.
    pub watch_docker: bool,
    /// The exec driver's bridge for `network = "bridge"` tasks (`exec { bridge, bridge_cidr }`, a roster
    /// extension; default `roster0` with `10.89.0.1/24`): its device name, and its own address, which is the tasks'
    /// gateway, with the prefix of the subnet their addresses come from.
    pub exec_bridge: roster_runtime_shim::BridgeConfig,
    /// What of the host jobs may reach (roster extensions, both checked at `PUT /v1/agent/job` and again at every
    /// task start, so saved jobs cannot bypass them).
    /// `exec { allow_host_rootfs }` (default false, `-dev` true): exec tasks without a `rootfs` run on the host's
    /// filesystem as root, which hands root on the host to anyone who can reach the HTTP API.
    /// `exec { host_mounts }` and `docker { host_mounts }` (default none, `-dev` any): the host paths exec and Docker
    /// tasks may bind-mount, each an absolute path without `..`; a mount is allowed at or below one, component by
    /// component, after symlinks. An exec task's rootfs does not contain it: mounting `/` into it reaches the host.
    pub host_access: roster_runtime_shim::HostAccess,
    /// DNS domain answered authoritatively (`domain`, `-domain`; default `consul`), without dots at either end.
    pub domain: String,
    /// A second domain answered like `domain` (`alt_domain`, `-alt-domain`), without dots at either end.
    pub alt_domain: Option<String>,
    /// DNS answer tuning (`dns_config.*`).
    pub dns: DnsConfig,
    /// Raft timing scale (`performance.raft_multiplier`, 1–10; default 5, `-dev` 1).
    /// Higher values tolerate slow disks and networks at the cost of slower leader failover.
    pub raft_multiplier: u8,
    /// Log verbosity (`log_level`, `-log-level`; default `info`).
    pub log_level: LogLevel,
    /// Leave the cluster gracefully on SIGTERM (`leave_on_terminate`); defaults to true for
    /// clients and false for servers, because a leaving server shrinks the Raft quorum.
    pub leave_on_terminate: bool,
    /// Leave the cluster gracefully on SIGINT unless set (`skip_leave_on_interrupt`); defaults to
    /// true for servers and false for clients, as in Consul.
    pub skip_leave_on_interrupt: bool,
    /// Time between `retry_join` attempts (`retry_interval`, `-retry-interval`; default 30s).
    pub retry_interval: Duration,
    /// Attempts before `retry_join` gives up and the agent exits (`retry_max`, `-retry-max`); 0 retries forever.
    pub retry_max: u32,
    /// How long a failed node is kept (failed) in the member list and catalog before it is reaped
    /// (`reconnect_timeout`; default 72h, at least 8h).
    pub reconnect_timeout: Duration,
    /// How often a check's output alone is sent to the catalog (`check_update_interval`; default 5m,
    /// 0 sends every change). Status changes are always sent at once.
    pub check_update_interval: Duration,
    /// How often this agent sends its network coordinate to the servers (`sync_coordinate_interval_min`,
    /// `sync_coordinate_rate_target`, `disable_coordinates`).
    pub coordinate_sync: crate::coordinate_sync::SyncSettings,
    /// Service definitions from config files (`service` / `services`), kept raw for the agent to register.
    pub services: Vec<serde_json::Value>,
    /// Check definitions from config files (`check` / `checks`), kept raw for the agent to register.
    pub checks: Vec<serde_json::Value>,
    /// The `acl` block, deep-merged across layers, then typed: ACL enforcement and the agent's own tokens.
    pub acl: AclConfig,
    /// TLS settings of the HTTPS API and of server RPC (`tls.*` and Consul's legacy top-level TLS keys), their
    /// files checked at load.
    pub tls: TlsConfig,
    /// Connection limits (`limits.*`).
    pub limits: Limits,
    /// The `autopilot` block: what a leader seeds the replicated autopilot configuration with when none is stored.
    pub autopilot: roster_kv::AutopilotConfig,
    /// The `telemetry` block: metric names (`metrics_prefix`, the hostname in gauge names), `prefix_filter`, and the
    /// sinks beyond the in-memory one (`prometheus_retention_time`, `statsd_address`, `dogstatsd_addr`).
    pub telemetry: roster_metrics::Config,
    /// Gossip encryption key (`encrypt`, `-encrypt`): base64 of 16, 24 or 32 bytes (`roster keygen` makes one).
    /// It only seeds an empty keyring: once `data_dir/serf/local.keyring` exists, that file wins and keys change
    /// through `roster keyring`. `None` with no keyring file gossips in plaintext.
    pub encrypt: Option<crate::gossip::Key>,
    /// Drop plaintext gossip (`encrypt_verify_incoming`; default true). Off only while enabling encryption on a
    /// running cluster, when some members still send plaintext.
    pub encrypt_verify_incoming: bool,
    /// Seal outgoing gossip (`encrypt_verify_outgoing`; default true). Off only while enabling encryption, before
    /// every member has the key.
    pub encrypt_verify_outgoing: bool,
    /// Config files actually read, in order, so the agent can log where its settings came from.
    pub config_files: Vec<PathBuf>,
    /// The web UI (`ui_config`, `ui`, `-ui`, `-ui-content-path`).
    pub ui: ui::UiConfig,
    /// The log format, the log file and its rotation, and the pid file (`config/logging.rs`).
    pub logging: LoggingConfig,
}

/// Listening ports. `None` means the listener is disabled (`-1` in config); `Some(0)` lets the OS choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// HTTP API (`ports.http`, `-http-port`; default 8500).
    pub http: Option<u16>,
    /// HTTPS API (`ports.https`, `-https-port`; default disabled).
    pub https: Option<u16>,
    /// DNS over UDP and TCP (`ports.dns`, `-dns-port`; default 8600).
    pub dns: Option<u16>,
    /// LAN gossip over UDP and TCP on `bind_addr` (`ports.serf_lan`, `-serf-lan-port`; default 8301).
    pub serf_lan: Option<u16>,
    /// WAN gossip between datacenters (`ports.serf_wan`, `-serf-wan-port`): always off, since roster runs one
    /// datacenter; only `-1` is accepted.
    pub serf_wan: Option<u16>,
    /// Server RPC and Raft on `bind_addr` (`ports.server`, `-server-port`; default 8300).
    pub server: Option<u16>,
    /// gRPC (`ports.grpc`, `ports.grpc_tls`, `-grpc-port`): always off, since roster has no gRPC server; only `-1`
    /// is accepted.
    pub grpc: Option<u16>,
}

/// Per-interface listen addresses; each falls back to [`Config::client_addrs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    /// `addresses.http` (space-separated).
    pub http: Option<Vec<ListenAddr>>,
    /// `addresses.https` (space-separated).
    pub https: Option<Vec<ListenAddr>>,
    /// `addresses.dns` (space-separated).
    pub dns: Option<Vec<ListenAddr>>,
}

/// One entry of `addresses.*`: an IP, or (a roster extension) `IP:port` / `[v6]:port`.
///
/// The port form exists for DNS on a container network's gateway: resolv.conf cannot name a port, so
/// containers need port 53 there while the agent keeps 8600 on loopback, all in one listener set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The address to bind.
    pub ip: IpAddr,
    /// This address's own port; `None` takes the interface's `ports.*` value.
    pub port: Option<u16>,
}

/// DNS answer tuning (`dns_config.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// TTL of node lookups (`node_ttl`; default 0, so clients always re-ask and never see stale nodes).
    pub node_ttl: Duration,
    /// TTL of service lookups by service name; `*` is the fallback and `web*` a prefix match (`service_ttl`).
    pub service_ttl: BTreeMap<String, Duration>,
    /// Leave out instances whose checks are warning, not just critical (`only_passing`).
    pub only_passing: bool,
    /// Set the TC bit when a UDP answer was trimmed, so clients retry over TCP (`enable_truncate`).
    pub enable_truncate: bool,
    /// How stale a non-leader read may be before DNS refuses it (`max_stale`; default 10 years,
    /// i.e. prefer a stale answer to none).
    pub max_stale: Duration,
    /// Maximum records in a UDP answer (`udp_answer_limit`; default 3).
    pub udp_answer_limit: u32,
    /// The other `dns_config` keys: staleness and caching of lookups, `a_record_limit`, `soa`, the recursors'
    /// strategy and timeout, node meta TXT records, compression.
    pub settings: DnsSettings,
}

/// Log verbosity, as Consul spells it (`trace`, `debug`, `info`, `warn`, `err`/`error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything, including per-request detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Only problems.
    Warn,
    /// Only errors.
    Error,
}

/// Every problem found while loading the configuration, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

/// Reads every layer for `args`, merges them and validates the result, reporting all errors at once.
pub fn load(args: &AgentArgs, env: &dyn EnvSource) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let (merged, config_files) = source::collect(args, env, &mut errors);
    let config = build::build(merged, args.dev.unwrap_or(false), config_files, &mut errors);
    if errors.is_empty() { Ok(config) } else { Err(ConfigErrors(errors)) }
}

/// This host's name, the default `node_name`; falls back to `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl Config {
    /// Addresses the HTTP API listens on; empty when `ports.http` is disabled.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.listen_addrs(self.addresses.http.as_ref(), self.ports.http)
    }

    /// Addresses the HTTPS API listens on; empty when `ports.https` is disabled.
    pub fn https_addrs(&self) -> Vec<SocketAddr> {
        self.listen_addrs(self.addresses.https.as_ref(), self.ports.https)
    }

    /// Addresses DNS listens on (UDP and TCP); empty when `ports.dns` is disabled.
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        self.listen_addrs(self.addresses.dns.as_ref(), self.ports.dns)
    }

    /// Server RPC and Raft listen address; `None` when the server port is disabled.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.ports.server.map(|port| SocketAddr::new(self.bind_addr, port))
    }

    /// LAN gossip listen address; `None` when the gossip port is disabled.
    pub fn serf_lan_addr(&self) -> Option<SocketAddr> {
        self.ports.serf_lan.map(|port| SocketAddr::new(self.bind_addr, port))
    }

    /// Pairs the interface's own addresses (or `client_addrs`) with its port; a disabled port (-1)
    /// turns the interface off, including addresses that name their own port.
    fn listen_addrs(&self, own: Option<&Vec<ListenAddr>>, port: Option<u16>) -> Vec<SocketAddr> {
        let Some(port) = port else {
            return Vec::new();
        };
        match own {
            Some(own) => own.iter().map(|addr| SocketAddr::new(addr.ip, addr.port.unwrap_or(port))).collect(),
            None => self.client_addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
        }
    }
}

impl LogLevel {
    /// The level as a `tracing_subscriber::EnvFilter` directive.
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// Parses Consul's spelling, case-insensitively.
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "trace" => Some(LogLevel::Trace),
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "err" | "error" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [only] => write!(f, "invalid configuration: {only}"),
            all => {
                write!(f, "invalid configuration ({} errors):", all.len())?;
                for message in all {
                    write!(f, "\n  * {message}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests;
