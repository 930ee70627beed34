//! Configuration reload, the one path behind SIGHUP, `PUT /v1/agent/reload` and `roster reload`.
//!
//! The config is read again exactly as at start (the same `-config-file`/`-config-dir` sources, the environment,
//! then the flags, which still win) and validated whole before anything changes. A changed key the running agent
//! cannot take (a port, an address, the data dir, ...) fails the reload naming it; nothing is applied then, so a
//! key is never accepted and dropped. What Consul reloads and roster has is then applied: the TLS certificates,
//! the services and checks defined in config files (API registrations untouched), the log level,
//! `limits.http_max_conns_per_client`, `dns_config` (handed to the DNS threads, which read it per query), and `leave_on_terminate`/`skip_leave_on_interrupt`, read at shutdown.
//! Reloads are serialized; each one compares against the config the previous one installed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::checks::Runner;
use crate::cli::AgentArgs;
use crate::config::{self, Config, EnvSource};
use crate::dns_view::ServerView;
use crate::http;
use crate::local::{ConfigDefinitions, Local};
use crate::tls_reload::Named;

/// Everything a reload reads again and what it applies to.
pub struct Reloader {
    args: AgentArgs,
    env: Box<dyn EnvSource + Send + Sync>,
    /// The config in force: the start-up one, then each successful reload's.
    current: Mutex<Arc<Config>>,
    /// Held through a whole reload, so two never interleave.
    serial: tokio::sync::Mutex<()>,
    local: Arc<Local>,
    runner: Arc<Runner>,
    tls: Vec<Named>,
    http_max_conns_per_client: Arc<AtomicU32>,
    dns: Option<(roster_dns::SharedConfig, Arc<ServerView>)>,
    notifier: crate::init_system::Notifier,
}

/// Why a reload changed nothing (or, for [`ReloadError::Apply`], stopped part way).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config does not load or validate.
    #[error("{0}")]
    Invalid(String),
    /// The new config changes keys that take effect only after a restart.
    #[error("changing {} requires a restart; nothing was reloaded", .0.join(", "))]
    RestartRequired(Vec<&'static str>),
    /// Applying failed (a catalog write was refused, a certificate went bad since it was checked). What was
    /// applied before stays; the next reload starts from the agent's actual state.
    #[error("{0:#}")]
    Apply(anyhow::Error),
}

/// The parts of the running agent a reload touches.
pub struct Parts {
    /// The agent's own services and checks.
    pub local: Arc<Local>,
    /// Its check runner, told after the config-file checks change.
    pub runner: Arc<Runner>,
    /// Each listener's TLS material, named for the logs.
    pub tls: Vec<Named>,
    /// The limit the HTTP(S) accept loops read for every new connection.
    pub http_max_conns_per_client: Arc<AtomicU32>,
    /// The DNS threads' settings and the catalog view they read; `None` with DNS off.
    pub dns: Option<(roster_dns::SharedConfig, Arc<ServerView>)>,
    /// Tells systemd a reload is under way (`RELOADING=1`, then `READY=1`).
    pub(crate) notifier: crate::init_system::Notifier,
}

impl Reloader {
    /// A reloader that reads `args` and `env` again, starting from `config`, which they produced at start.
    pub fn new(args: AgentArgs, env: Box<dyn EnvSource + Send + Sync>, config: Config, parts: Parts) -> Reloader {
        Reloader {
            args,
            env,
            current: Mutex::new(Arc::new(config)),
            serial: tokio::sync::Mutex::new(()),
            local: parts.local,
            runner: parts.runner,
            tls: parts.tls,
            http_max_conns_per_client: parts.http_max_conns_per_client,
            dns: parts.dns,
            notifier: parts.notifier,
        }
    }

    /// The config in force.
    pub fn current(&self) -> Arc<Config> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the config again and applies it; returns what changed, one line each.
    pub async fn reload(&self) -> Result<Vec<String>, ReloadError> {
        let _serial = self.serial.lock().await;
        self.notifier.reloading();
        let outcome = self.reload_serialized().await;
        self.notifier.ready();
        outcome
    }

    /// [`Reloader::reload`] under its lock.
    async fn reload_serialized(&self) -> Result<Vec<String>, ReloadError> {
        let new =
            config::load(&self.args, self.env.as_ref()).map_err(|errors| ReloadError::Invalid(errors.to_string()))?;
        let old = self.current();
        let restart = config::restart_required(&old, &new);
        if !restart.is_empty() {
            return Err(ReloadError::RestartRequired(restart));
        }
        let definitions = config_definitions(&new).map_err(|err| ReloadError::Invalid(format!("{err:#}")))?;
        let mut changed = Vec::new();
        for (name, tls) in &self.tls {
            tls.reload().with_context(|| format!("reloading the {name} certificates")).map_err(ReloadError::Apply)?;
            changed.push(format!("reloaded the {name} certificates"));
        }
        let plan = self.local.apply_config(definitions).await.map_err(|err| ReloadError::Apply(err.into()))?;
        self.runner.sync().await;
        let listed = |what: &str, ids: &[String]| (!ids.is_empty()).then(|| format!("{what}: {}", ids.join(", ")));
        changed.extend(
            [
                listed("services added or changed", &plan.upsert_services),
                listed("services removed", &plan.remove_services),
                listed("checks added or changed", &plan.upsert_checks),
                listed("checks removed", &plan.remove_checks),
            ]
            .into_iter()
            .flatten(),
        );
        if new.log_level != old.log_level {
            match crate::logging::set_level(new.log_level).map_err(|why| ReloadError::Apply(anyhow::anyhow!(why)))? {
                crate::logging::LevelChange::Applied => {
                    changed.push(format!("log_level {}", new.log_level.as_filter()))
                }
                crate::logging::LevelChange::KeptRustLog => {
                    changed.push("log_level not changed: RUST_LOG is set and chooses the log filter".to_owned());
                }
                crate::logging::LevelChange::NotInstalled => {}
            }
        }
        let conns = new.limits.http_max_conns_per_client;
        if conns != old.limits.http_max_conns_per_client {
            self.http_max_conns_per_client.store(conns, Ordering::Relaxed);
            changed.push(format!("limits.http_max_conns_per_client {conns}"));
        }
        let dns_changed = new.dns != old.dns || new.recursors != old.recursors;
        if let Some((settings, view)) = self.dns.as_ref().filter(|_| dns_changed) {
            settings.update(crate::run::dns_config(&new)).map_err(|why| ReloadError::Apply(anyhow::anyhow!(why)))?;
            view.set_max_stale(&new.dns);
            changed.push("dns_config".to_owned());
        }
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
        Ok(changed)
    }

    /// Reloads on every SIGHUP `hangup` reports, logging the outcome, until `token` is cancelled. A SIGHUP that
    /// arrived while the agent was starting is acted on here, once start-up is done.
    #[cfg(unix)]
    pub fn spawn_on_hangup(self: Arc<Self>, mut hangup: tokio::signal::unix::Signal, token: CancellationToken) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    received = hangup.recv() => if received.is_none() { return },
                }
                self.reload_logged("SIGHUP").await;
            }
        });
    }

    /// One reload whose outcome goes to the log rather than to a caller.
    pub async fn reload_logged(&self, why: &str) {
        tracing::info!("{why}: reloading the configuration");
        match self.reload().await {
            Ok(changed) if changed.is_empty() => tracing::info!("{why}: configuration reloaded; nothing changed"),
            Ok(changed) => tracing::info!("{why}: configuration reloaded: {}", changed.join("; ")),
            Err(err) => tracing::error!("{why}: configuration reload failed: {err}"),
        }
    }
}

/// The `services` and `checks` of the config files as local registrations; an invalid one is reported with its
/// position and reason. Config files are written by the operator, so local script checks count here.
pub(crate) fn config_definitions(config: &Config) -> anyhow::Result<ConfigDefinitions> {
    let scripts = config.enable_script_checks || config.enable_local_script_checks;
    let mut definitions = ConfigDefinitions::default();
    for (idx, value) in config.services.iter().enumerate() {
        let map = value.as_object().with_context(|| format!("services[{idx}] is not an object"))?;
        let service = http::definition::service(http::input::Obj(map), scripts)
            .map_err(|why| anyhow::anyhow!("services[{idx}]: {why}"))?;
        definitions.services.push(service);
    }
    for (idx, value) in config.checks.iter().enumerate() {
        let map = value.as_object().with_context(|| format!("checks[{idx}] is not an object"))?;
        let mut check = http::definition::check(http::input::Obj(map), scripts)
            .map_err(|why| anyhow::anyhow!("checks[{idx}]: {why}"))?;
        if check.check_id.is_empty() {
            check.check_id = check.name.clone();
        }
        anyhow::ensure!(!check.check_id.is_empty(), "checks[{idx}]: a check needs a Name or an ID");
        definitions.checks.push(check);
    }
    Ok(definitions)
}
