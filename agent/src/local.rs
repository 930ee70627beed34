//! The agent's own services and checks: this agent is authoritative for them, keeps them in its data dir, and pushes every change to the catalog.
//!
//! Consul agents hold their registrations locally and sync them to the servers (anti-entropy); roster does the same, so that a registration survives an agent restart with its check states (a TTL check that was passing comes back passing), and so that the catalog can be repaired from the agent after a server loss.
//! Every change is pushed to the catalog first and written to `local.json` second, so a 200 means the change is both in the catalog and on this agent's disk.
//! When no server can take the write (a client that has not found one yet, an election), the change is kept locally and the
//! 200 still goes out, as Consul's agent does; anti-entropy pushes it as soon as a server answers.
//! The file is replaced atomically (write, fsync, rename, fsync the directory); a `-dev` agent keeps it in memory only.
//!
//! Anti-entropy ([`Local::sync_full`], run by [`Local::run_anti_entropy`]): at start, after a deferred write, and
//! periodically (every minute, stretched for large clusters, with jitter), the agent reads the catalog's view of its
//! node, writes the node record, services and checks that are missing there or differ, and deregisters what the catalog
//! holds for its node that the agent does not know, except the leader-owned `serfHealth` check and `consul` service.
//! An idle pass writes nothing (`local/sync.rs`). Each pass counts `roster.agent.anti_entropy.syncs_total` and the
//! writes it made in `roster.agent.anti_entropy.writes_total`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roster_kv::{CheckStatus, Command, CommandResult, HealthCheck, Node, Registration, Service};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use roster_kv::{Answer, Query};
use roster_server::Consistency;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;

/// Check ID of node maintenance mode (Consul's).
pub const NODE_MAINTENANCE: &str = "_node_maintenance";
/// Prefix of a service maintenance check ID (Consul's).
pub const SERVICE_MAINTENANCE_PREFIX: &str = "_service_maintenance:";

/// What can go wrong changing local state; each maps to Consul's status code at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No such service or check on this agent (404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot apply (400).
    #[error("{0}")]
    Invalid(String),
    /// The catalog write failed (500).
    #[error(transparent)]
    Server(#[from] roster_server::Error),
    /// `local.json` could not be written (500).
    #[error("saving the agent's local state to {path}: {source}")]
    Persist {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The agent's local registrations.
pub struct Local {
    /// Where catalog writes go: this agent's server, or the servers of a client agent.
    backend: Backend,
    node: Node,
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
    /// Set when a catalog write was deferred because no server could take it.
    out_of_sync: AtomicBool,
    /// Wakes the anti-entropy loop early (after a deferred write).
    kick: Notify,
    /// When each check's output last went to the catalog (`check_update_interval`).
    output_pushed: std::sync::Mutex<BTreeMap<String, std::time::Instant>>,
    /// Checks whose newer output waits for its interval to end.
    output_pending: std::sync::Mutex<BTreeSet<String>>,
    /// Services defined in config files (a copy of `Inner::config_services` readable while `inner` is locked), and
    /// the token their catalog writes carry from a client agent (`acl.tokens.config_file_service_registration`, else
    /// the agent token); `None` until the agent sets it.
    config_services: std::sync::Mutex<(BTreeSet<String>, Option<std::sync::Arc<crate::acl::Acl>>)>,
    /// Moves on every change of the local services or a check's status, for those who wait on one (the job
    /// manager starts a task once the checks of the tasks it starts after pass).
    changes: tokio::sync::watch::Sender<u64>,
}

/// The base anti-entropy period (Consul's), for clusters up to 128 nodes.
const SYNC_PERIOD: Duration = Duration::from_secs(60);
/// Pause before retrying a full sync that failed.
const SYNC_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Inner {
    services: BTreeMap<String, Service>,
    checks: BTreeMap<String, HealthCheck>,
    /// The IDs of the services and checks that came from config files, as Consul tracks each one's source: a reload
    /// adds, changes and removes only these, never what was registered through the API.
    config_services: BTreeSet<String>,
    config_checks: BTreeSet<String>,
}

/// The format of `local.json`. The config-source sets were added within version 1; a file without them reads as
/// holding no config-file registrations, which is what an agent of that time would have treated them as.
#[derive(Serialize, Deserialize)]
struct Persisted {
    version: u32,
    services: Vec<Service>,
    checks: Vec<HealthCheck>,
    #[serde(default)]
    config_services: BTreeSet<String>,
    #[serde(default)]
    config_checks: BTreeSet<String>,
}

/// The services (each with its checks) and the checks that the config files define, already validated.
#[derive(Debug, Clone, Default)]
pub struct ConfigDefinitions {
    /// `services`, each with the checks its definition embeds.
    pub services: Vec<(Service, Vec<HealthCheck>)>,
    /// `checks`, on the node or naming a service.
    pub checks: Vec<HealthCheck>,
}

impl ConfigDefinitions {
    /// The IDs of the services defined.
    fn service_ids(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|(service, _)| service.id.as_str())
    }

    /// The IDs of the checks defined, in service definitions and on their own.
    fn check_ids(&self) -> impl Iterator<Item = &str> {
        self.services.iter().flat_map(|(_, checks)| checks.iter()).chain(&self.checks).map(|c| c.check_id.as_str())
    }
}

/// What applying the config files' definitions changes (IDs), worked out before anything changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPlan {
    /// Config-file checks no longer defined (their service stays, or was not from config).
    pub remove_checks: Vec<String>,
    /// Config-file services no longer defined; their checks go with them.
    pub remove_services: Vec<String>,
    /// Services defined now that are missing here or differ from their definition.
    pub upsert_services: Vec<String>,
    /// Checks defined now (outside a service definition) that are missing here or differ from their definition.
    pub upsert_checks: Vec<String>,
}

impl ConfigPlan {
    /// True when the agent already holds exactly what the config files define.
    pub fn is_empty(&self) -> bool {
        self.remove_checks.is_empty()
            && self.remove_services.is_empty()
            && self.upsert_services.is_empty()
            && self.upsert_checks.is_empty()
    }
}

const FORMAT_VERSION: u32 = 1;

impl Local {
    /// Loads `data_dir/local.json` when there is one (`None`: in memory only, for `-dev`).
    pub fn load(backend: Backend, node: Node, data_dir: Option<&Path>) -> anyhow::Result<Local> {
        let path = data_dir.map(|dir| dir.join("local.json"));
        let mut inner = Inner::default();
        if let Some(path) = path.as_deref().filter(|p| p.exists()) {
            let bytes = std::fs::read(path)?;
            let persisted: Persisted = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{} is not a roster local state file: {e}", path.display()))?;
            anyhow::ensure!(
                persisted.version == FORMAT_VERSION,
                "{}: unknown format version {}",
                path.display(),
                persisted.version
            );
            inner.services = persisted.services.into_iter().map(|s| (s.id.clone(), s)).collect();
            inner.checks = persisted.checks.into_iter().map(|c| (c.check_id.clone(), c)).collect();
            inner.config_services = persisted.config_services;
            inner.config_checks = persisted.config_checks;
            forget_allocation_services(&mut inner);
        }
        let marked = (inner.config_services.clone(), None);
        Ok(Local {
            backend,
            node,
            path,
            inner: Mutex::new(inner),
            out_of_sync: AtomicBool::new(false),
            kick: Notify::new(),
            output_pushed: std::sync::Mutex::default(),
            output_pending: std::sync::Mutex::default(),
            config_services: std::sync::Mutex::new(marked),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Sets the ACL state whose `config_file_service_registration` token (else the agent token) the catalog writes
    /// of config-file services carry from a client agent, as Consul's anti-entropy does.
    pub fn set_config_acl(&self, acl: &std::sync::Arc<crate::acl::Acl>) {
        plain_lock(&self.config_services).1 = Some(acl.clone());
    }

    /// Makes the services and checks that came from config files exactly `wanted`: adds what is new, replaces what
    /// changed, removes config-file registrations no longer defined, and leaves API registrations and unchanged
    /// definitions (with their check states) alone. `wanted` is checked against the local state before anything
    /// changes; a check naming a service that neither `wanted` nor the API registered is refused.
    pub async fn apply_config(&self, wanted: ConfigDefinitions) -> Result<ConfigPlan, LocalError> {
        // One lock, one copy of the state and one save for the whole set: a client starting with a hundred
        // config-file services used to copy and fsync its whole local state once per service (and warn once per
        // service that no server was known yet), which took seconds before its readiness line.
        let mut inner = self.inner.lock().await;
        let plan = plan(&inner, &wanted);
        let defined: BTreeSet<&str> = wanted.service_ids().collect();
        for check in &wanted.checks {
            let kept =
                inner.services.contains_key(&check.service_id) && !plan.remove_services.contains(&check.service_id);
            if !check.service_id.is_empty() && !defined.contains(check.service_id.as_str()) && !kept {
                return Err(LocalError::Invalid(format!(
                    "check {:?}: ServiceID {:?} does not exist",
                    check.check_id, check.service_id
                )));
            }
        }
        // Writes of services about to be added already carry the config-file token.
        plain_lock(&self.config_services).0.extend(wanted.service_ids().map(str::to_owned));
        let mut next = inner.clone();
        let mut writes = Writes::default();
        let staged = self.stage_config(&mut next, &wanted, &plan, &mut writes).await;
        if let Err(err) = staged {
            // What was written before the failure stays, as it would have one change at a time.
            if writes.staged > 0 {
                self.commit(&mut inner, next)?;
            }
            return Err(err);
        }
        next.config_services = wanted.service_ids().map(str::to_owned).collect();
        next.config_checks = wanted.check_ids().map(str::to_owned).collect();
        // Nothing to save (the usual start): no fsync.
        let sources_changed =
            next.config_services != inner.config_services || next.config_checks != inner.config_checks;
        if writes.staged > 0 || sources_changed {
            self.commit(&mut inner, next)?;
        }
        Ok(plan)
    }

    /// Makes `plan`'s changes to `next`, each after its catalog write.
    async fn stage_config(
        &self,
        next: &mut Inner,
        wanted: &ConfigDefinitions,
        plan: &ConfigPlan,
        writes: &mut Writes,
    ) -> Result<(), LocalError> {
        for id in &plan.remove_checks {
            ignore_missing(self.stage_remove_check(next, id, writes).await)?;
        }
        for id in &plan.remove_services {
            ignore_missing(self.stage_remove_service(next, id, writes).await.map(drop))?;
        }
        for (service, checks) in &wanted.services {
            if plan.upsert_services.contains(&service.id) {
                self.stage_service(next, service.clone(), checks.clone(), false, writes).await?;
            }
        }
        for check in &wanted.checks {
            if plan.upsert_checks.contains(&check.check_id) {
                let mut check = check.clone();
                // As for a service's checks, a changed definition keeps the status its check has reached.
                if let Some(existing) = next.checks.get(&check.check_id).filter(|e| e.service_id == check.service_id) {
                    check.status = existing.status;
                    check.output.clone_from(&existing.output);
                }
                self.stage_check(next, check, writes).await?;
            }
        }
        Ok(())
    }

    /// The token a catalog write of this agent carries when it is not the agent token: a config-file service's.
    fn token_for(&self, cmd: &Command) -> Option<String> {
        let Command::Register(reg) = cmd else { return None };
        let service = reg.service.as_ref()?;
        let marked = self.config_services.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let acl = marked.1.as_ref().filter(|_| marked.0.contains(&service.id))?;
        Some(acl.config_file_secret())
    }

    /// This agent's node record.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Every local service and check, as stored.
    pub async fn snapshot(&self) -> (Vec<Service>, Vec<HealthCheck>) {
        let inner = self.inner.lock().await;
        (inner.services.values().cloned().collect(), inner.checks.values().cloned().collect())
    }

    /// A receiver that sees [`Local`]'s change counter move on every change of a service or a check's status.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// One local check.
    pub async fn check(&self, check_id: &str) -> Option<HealthCheck> {
        self.inner.lock().await.checks.get(check_id).cloned()
    }

    /// Adds or replaces a service with its checks; `replace_existing_checks` removes the service's other checks.
    /// Returns the checks that were removed, so their runners can stop.
    pub async fn add_service(
        &self,
        service: Service,
        checks: Vec<HealthCheck>,
        replace_existing_checks: bool,
    ) -> Result<Vec<String>, LocalError> {
        let mut inner = self.inner.lock().await;
        let mut next = inner.clone();
        let removed =
            self.stage_service(&mut next, service, checks, replace_existing_checks, &mut Writes::default()).await?;
        self.commit(&mut inner, next)?;
        Ok(removed)
    }

    /// Removes a service and its checks; returns the removed check IDs.
    pub async fn remove_service(&self, service_id: &str) -> Result<Vec<String>, LocalError> {
        let mut inner = self.inner.lock().await;
        let mut next = inner.clone();
        let removed = self.stage_remove_service(&mut next, service_id, &mut Writes::default()).await?;
        self.commit(&mut inner, next)?;
        Ok(removed)
    }

    /// Adds or replaces a check; a check naming a service needs that service on this agent.
    pub async fn add_check(&self, check: HealthCheck) -> Result<(), LocalError> {
        let mut inner = self.inner.lock().await;
        let mut next = inner.clone();
        self.stage_check(&mut next, check, &mut Writes::default()).await?;
        self.commit(&mut inner, next)
    }

    /// Removes a check.
    pub async fn remove_check(&self, check_id: &str) -> Result<(), LocalError> {
        let mut inner = self.inner.lock().await;
        let mut next = inner.clone();
        self.stage_remove_check(&mut next, check_id, &mut Writes::default()).await?;
        self.commit(&mut inner, next)
    }

    /// [`Local::add_service`]'s change to `next`, made once the catalog has taken it: nothing changes when it fails.
    async fn stage_service(
        &self,
        next: &mut Inner,
        service: Service,
        checks: Vec<HealthCheck>,
        replace_existing_checks: bool,
        writes: &mut Writes,
    ) -> Result<Vec<String>, LocalError> {
        let stale: Vec<String> = if replace_existing_checks {
            let keep: Vec<&str> = checks.iter().map(|c| c.check_id.as_str()).collect();
            next.checks
                .values()
                .filter(|c| c.service_id == service.id && !keep.contains(&c.check_id.as_str()))
                .map(|c| c.check_id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let mut added = Vec::with_capacity(checks.len());
        for mut check in checks {
            check.node.clone_from(&self.node.node);
            // A re-registered check keeps the status it has reached rather than starting over.
            if let Some(existing) = next.checks.get(&check.check_id).filter(|e| e.service_id == check.service_id) {
                check.status = existing.status;
                check.output.clone_from(&existing.output);
            }
            added.push(check);
        }
        // The service's checks as they will be: the ones it keeps, with the new definitions in their place.
        let mut after: BTreeMap<&str, &HealthCheck> = next
            .checks
            .values()
            .filter(|c| c.service_id == service.id && !stale.contains(&c.check_id))
            .map(|c| (c.check_id.as_str(), c))
            .collect();
        for check in &added {
            after.insert(&check.check_id, check);
        }
        let pushed: Vec<HealthCheck> = after.into_values().filter(|c| c.service_id == service.id).cloned().collect();
        self.write(writes, push(&self.node, Some(service.clone()), pushed)).await?;
        for id in &stale {
            let cmd =
                Command::Deregister { node: self.node.node.clone(), service_id: None, check_id: Some(id.clone()) };
            self.write(writes, cmd).await?;
        }
        for id in &stale {
            next.checks.remove(id);
        }
        for check in added {
            next.checks.insert(check.check_id.clone(), check);
        }
        next.services.insert(service.id.clone(), service);
        writes.staged += 1;
        Ok(stale)
    }

    /// [`Local::remove_service`]'s change to `next`, made once the catalog has taken it.
    async fn stage_remove_service(
        &self,
        next: &mut Inner,
        service_id: &str,
        writes: &mut Writes,
    ) -> Result<Vec<String>, LocalError> {
        if !next.services.contains_key(service_id) {
            return Err(LocalError::NotFound(format!(
                "Unknown service ID {service_id:?}. Ensure that the service ID is passed, not the service name."
            )));
        }
        let cmd = Command::Deregister {
            node: self.node.node.clone(),
            service_id: Some(service_id.to_owned()),
            check_id: None,
        };
        self.write(writes, cmd).await?;
        next.services.remove(service_id);
        let removed: Vec<String> =
            next.checks.values().filter(|c| c.service_id == service_id).map(|c| c.check_id.clone()).collect();
        next.checks.retain(|_, c| c.service_id != service_id);
        writes.staged += 1;
        Ok(removed)
    }

    /// [`Local::add_check`]'s change to `next`, made once the catalog has taken it.
    async fn stage_check(
        &self,
        next: &mut Inner,
        mut check: HealthCheck,
        writes: &mut Writes,
    ) -> Result<(), LocalError> {
        if !check.service_id.is_empty() && !next.services.contains_key(&check.service_id) {
            return Err(LocalError::Invalid(format!("ServiceID {:?} does not exist", check.service_id)));
        }
        check.node.clone_from(&self.node.node);
        self.write(writes, push(&self.node, None, vec![check.clone()])).await?;
        next.checks.insert(check.check_id.clone(), check);
        writes.staged += 1;
        Ok(())
    }

    /// [`Local::remove_check`]'s change to `next`, made once the catalog has taken it.
    async fn stage_remove_check(
        &self,
        next: &mut Inner,
        check_id: &str,
        writes: &mut Writes,
    ) -> Result<(), LocalError> {
        if !next.checks.contains_key(check_id) {
            return Err(LocalError::NotFound(format!(
                "Unknown check ID {check_id:?}. Ensure that the check ID is passed, not the check name."
            )));
        }
        let cmd =
            Command::Deregister { node: self.node.node.clone(), service_id: None, check_id: Some(check_id.to_owned()) };
        self.write(writes, cmd).await?;
        next.checks.remove(check_id);
        writes.staged += 1;
        Ok(())
    }

    /// Records a check's new status and output (from its runner or a TTL update); a no-op when nothing changed.
    ///
    /// Only a TTL check's status is saved to disk: nothing else can restore it after a restart, whereas a probed check is simply probed again.
    /// Runner results therefore cost a catalog write and no fsync, and no copy of the whole local state.
    pub async fn set_status(&self, check_id: &str, status: CheckStatus, output: String) -> Result<(), LocalError> {
        let mut inner = self.inner.lock().await;
        let Some(current) = inner.checks.get(check_id) else {
            return Err(LocalError::NotFound(format!("Unknown check ID {check_id:?}")));
        };
        if current.status == status && current.output == output {
            return Ok(());
        }
        let changed = current.status != status;
        let mut check = current.clone();
        check.status = status;
        check.output = output;
        self.push(None, vec![check.clone()]).await?;
        if changed {
            crate::telemetry::check_status_changed(&check.check_type, status);
        }
        if check.check_type == "ttl" {
            let mut next = inner.clone();
            next.checks.insert(check_id.to_owned(), check);
            return self.commit(&mut inner, next);
        }
        inner.checks.insert(check_id.to_owned(), check);
        self.changes.send_modify(|count| *count += 1);
        Ok(())
    }

    /// A probe's result under Consul's `check_update_interval`: a status change goes to the catalog at
    /// once; a change of output alone is kept here and sent at most once per `interval` (0: every
    /// time), so a check whose output carries a timestamp or a counter does not cost a Raft write per probe.
    pub async fn set_probe_result(
        self: &Arc<Self>,
        check_id: &str,
        status: CheckStatus,
        output: String,
        interval: Duration,
    ) -> Result<(), LocalError> {
        if !interval.is_zero() {
            let mut inner = self.inner.lock().await;
            let Some(current) = inner.checks.get_mut(check_id) else {
                return Err(LocalError::NotFound(format!("Unknown check ID {check_id:?}")));
            };
            if current.status == status {
                if current.output == output {
                    return Ok(());
                }
                let last = plain_lock(&self.output_pushed).get(check_id).copied();
                if let Some(last) = last.filter(|last| last.elapsed() < interval) {
                    current.output = output;
                    if plain_lock(&self.output_pending).insert(check_id.to_owned()) {
                        let (local, id) = (self.clone(), check_id.to_owned());
                        let delay = interval.saturating_sub(last.elapsed());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            local.flush_output(&id).await;
                        });
                    }
                    return Ok(());
                }
            }
        }
        self.set_status(check_id, status, output).await?;
        plain_lock(&self.output_pushed).insert(check_id.to_owned(), std::time::Instant::now());
        Ok(())
    }

    /// Sends a check's current state once its output interval has passed.
    async fn flush_output(&self, check_id: &str) {
        plain_lock(&self.output_pending).remove(check_id);
        let Some(check) = self.check(check_id).await else { return };
        if let Err(err) = self.push(None, vec![check]).await {
            tracing::warn!(check = %check_id, "sending deferred check output failed: {err}");
        }
        plain_lock(&self.output_pushed).insert(check_id.to_owned(), std::time::Instant::now());
    }

    /// Turns maintenance mode on or off for one service (`Some(id)`) or the whole node (`None`).
    pub async fn set_maintenance(
        &self,
        service_id: Option<&str>,
        enable: bool,
        reason: &str,
    ) -> Result<(), LocalError> {
        let check_id = match service_id {
            Some(id) => {
                if !self.inner.lock().await.services.contains_key(id) {
                    return Err(LocalError::NotFound(format!("Unknown service ID {id:?}")));
                }
                format!("{SERVICE_MAINTENANCE_PREFIX}{id}")
            }
            None => NODE_MAINTENANCE.to_owned(),
        };
        if !enable {
            return match self.remove_check(&check_id).await {
                Err(LocalError::NotFound(_)) | Ok(()) => Ok(()),
                Err(other) => Err(other),
            };
        }
        let (what, name) = match service_id {
            Some(_) => ("service", "Service Maintenance Mode"),
            None => ("node", "Node Maintenance Mode"),
        };
        let notes = if reason.is_empty() {
            format!(
                "Maintenance mode is enabled for this {what}, but no reason was provided. This is a default message."
            )
        } else {
            reason.to_owned()
        };
        let check = HealthCheck {
            node: self.node.node.clone(),
            check_id,
            name: name.to_owned(),
            status: CheckStatus::Critical,
            notes,
            output: String::new(),
            service_id: service_id.unwrap_or_default().to_owned(),
            service_name: String::new(),
            service_tags: Vec::new(),
            check_type: "maintenance".to_owned(),
            interval: String::new(),
            timeout: String::new(),
            definition_json: String::new(),
            create_index: 0,
            modify_index: 0,
        };
        self.add_check(check).await
    }

    async fn push(&self, service: Option<Service>, checks: Vec<HealthCheck>) -> Result<(), LocalError> {
        self.write(&mut Writes::default(), push(&self.node, service, checks)).await
    }

    /// A change's catalog write. When no server can take it, the change still applies locally and
    /// anti-entropy delivers it later; refusals and other errors go back to the caller.
    ///
    /// Within one batch of changes, once a write has found no server the rest are left to anti-entropy too, rather
    /// than each finding the same (and warning about it) in turn.
    async fn write(&self, writes: &mut Writes, cmd: Command) -> Result<(), LocalError> {
        if writes.deferred {
            return Ok(());
        }
        match self.catalog_strict(cmd).await {
            Err(LocalError::Server(err)) if unavailable(&err) => {
                tracing::warn!("catalog unreachable ({err}); keeping the change locally until the next sync");
                self.out_of_sync.store(true, Ordering::SeqCst);
                self.kick.notify_one();
                writes.deferred = true;
                Ok(())
            }
            other => other,
        }
    }

    async fn catalog_strict(&self, cmd: Command) -> Result<(), LocalError> {
        let written = match self.token_for(&cmd) {
            Some(secret) => self.backend.write_as_agent(&secret, cmd).await?,
            None => self.backend.write(cmd).await?,
        };
        match written {
            CommandResult::Bool(_) => Ok(()),
            CommandResult::Rejected(why) => Err(LocalError::Invalid(why)),
        }
    }

    /// Makes the catalog's view of this node exactly the agent's: the node record, every local
    /// service and check, and no service or check the agent does not know (leader-owned ones aside).
    ///
    /// The catalog's view is read first and only what differs is written ([`sync::plan`]), so a pass over an
    /// unchanged node costs two reads and no Raft write.
    pub async fn sync_full(&self) -> Result<(), LocalError> {
        // Held throughout, so no local change interleaves with the comparison below.
        let inner = self.inner.lock().await;
        let name = self.node.node.clone();
        let (services, _, _) = self
            .backend
            .query(Consistency::Default, 0, Duration::ZERO, &Query::NodeServices { name: name.clone() })
            .await?;
        let (checks, _, _) = self
            .backend
            .query(Consistency::Default, 0, Duration::ZERO, &Query::NodeChecks { name: name.clone() })
            .await?;
        let (catalog_node, catalog_services) = match services {
            Answer::NodeServices { node, services } => (node, services),
            _ => (None, Vec::new()),
        };
        let catalog_checks = match checks {
            Answer::Checks(checks) => checks,
            _ => Vec::new(),
        };
        let plan = sync::plan(
            &self.node,
            &inner.services,
            &inner.checks,
            catalog_node.as_ref(),
            &catalog_services,
            &catalog_checks,
        );
        if plan.node {
            let node =
                Registration { node: self.node.clone(), skip_node_update: false, service: None, checks: Vec::new() };
            self.catalog_strict(Command::Register(Box::new(node))).await?;
        }
        for id in &plan.services {
            let Some(service) = inner.services.get(id) else { continue };
            let checks = inner.checks.values().filter(|c| c.service_id == service.id).cloned().collect();
            let reg = Registration {
                node: self.node.clone(),
                skip_node_update: true,
                service: Some(service.clone()),
                checks,
            };
            self.catalog_strict(Command::Register(Box::new(reg))).await?;
        }
        if !plan.checks.is_empty() {
            let checks = plan.checks.iter().filter_map(|id| inner.checks.get(id)).cloned().collect();
            let reg = Registration { node: self.node.clone(), skip_node_update: true, service: None, checks };
            self.catalog_strict(Command::Register(Box::new(reg))).await?;
        }
        for id in &plan.remove_services {
            tracing::info!(service = %id, "removing a catalog service this agent does not know");
            let cmd = Command::Deregister { node: name.clone(), service_id: Some(id.clone()), check_id: None };
            self.catalog_strict(cmd).await?;
        }
        for id in &plan.remove_checks {
            tracing::info!(check = %id, "removing a catalog check this agent does not know");
            let cmd = Command::Deregister { node: name.clone(), service_id: None, check_id: Some(id.clone()) };
            self.catalog_strict(cmd).await?;
        }
        self.out_of_sync.store(false, Ordering::SeqCst);
        let n_writes = plan.n_writes();
        // Counted so that what a pass costs can be measured from outside (the anti-entropy test, the scale bench).
        metrics::counter!("roster.agent.anti_entropy.syncs_total").increment(1);
        metrics::counter!("roster.agent.anti_entropy.writes_total").increment(n_writes as u64);
        Ok(())
    }

    /// Runs anti-entropy until `token` is cancelled: a full sync now, again after every deferred
    /// write, and every `SYNC_PERIOD` (scaled by `cluster_size()` as Consul scales it, plus up to
    /// half a period of jitter so a thousand agents do not sync in step). Failures retry after a second.
    pub async fn run_anti_entropy(&self, cluster_size: impl Fn() -> usize, token: CancellationToken) {
        loop {
            let wait = match self.sync_full().await {
                Ok(()) => match test_sync_period() {
                    Some(period) => period,
                    None => {
                        let period = SYNC_PERIOD.mul_f64(scale_factor(cluster_size()));
                        period + period.mul_f64(rand::random::<f64>() / 2.0)
                    }
                },
                Err(err) => {
                    tracing::debug!("anti-entropy sync failed, retrying: {err}");
                    SYNC_RETRY
                }
            };
            tokio::select! {
                () = token.cancelled() => return,
                () = self.kick.notified() => tokio::time::sleep(SYNC_RETRY / 10).await,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Makes `next` the local state, on disk first.
    fn commit(&self, inner: &mut Inner, next: Inner) -> Result<(), LocalError> {
        if let Some(path) = &self.path {
            save(path, &next).map_err(|source| LocalError::Persist { path: path.clone(), source })?;
        }
        if next.config_services != inner.config_services {
            plain_lock(&self.config_services).0.clone_from(&next.config_services);
        }
        *inner = next;
        self.changes.send_modify(|count| *count += 1);
        Ok(())
    }
}

/// The catalog writes of one batch of local changes (one API call, or a config file's whole set).
#[derive(Default)]
struct Writes {
    /// A write found no server: the batch's remaining changes go to the catalog with the next anti-entropy pass.
    deferred: bool,
    /// Changes made to the batch's copy of the state so far.
    staged: usize,
}

/// The catalog registration of `service` (or of node-level checks) with `checks`, for this agent's node.
fn push(node: &Node, service: Option<Service>, checks: Vec<HealthCheck>) -> Command {
    Command::Register(Box::new(Registration { node: node.clone(), skip_node_update: true, service, checks }))
}

/// A removal of something already gone (deregistered through the API meanwhile) is no failure of a reload.
fn ignore_missing(done: Result<(), LocalError>) -> Result<(), LocalError> {
    match done {
        Err(LocalError::NotFound(_)) => Ok(()),
        other => other,
    }
}

/// What making the config-file registrations `wanted` changes, from the local state `inner`.
fn plan(inner: &Inner, wanted: &ConfigDefinitions) -> ConfigPlan {
    let service_ids: BTreeSet<&str> = wanted.service_ids().collect();
    let check_ids: BTreeSet<&str> = wanted.check_ids().collect();
    let remove_services: Vec<String> = inner
        .config_services
        .iter()
        .filter(|id| !service_ids.contains(id.as_str()) && inner.services.contains_key(*id))
        .cloned()
        .collect();
    let remove_checks = inner
        .config_checks
        .iter()
        .filter(|id| !check_ids.contains(id.as_str()))
        .filter(|id| inner.checks.get(*id).is_some_and(|c| !remove_services.contains(&c.service_id)))
        .cloned()
        .collect();
    let upsert_services = wanted
        .services
        .iter()
        .filter(|(service, checks)| {
            inner.services.get(&service.id) != Some(service)
                || checks.iter().any(|check| !same_check(inner.checks.get(&check.check_id), check))
        })
        .map(|(service, _)| service.id.clone())
        .collect();
    let upsert_checks = wanted
        .checks
        .iter()
        .filter(|check| !same_check(inner.checks.get(&check.check_id), check))
        .map(|check| check.check_id.clone())
        .collect();
    ConfigPlan { remove_checks, remove_services, upsert_services, upsert_checks }
}

/// Whether the check held here is `defined`, apart from what running it changes (status, output) and what the
/// agent and the catalog fill in (node, indexes).
fn same_check(held: Option<&HealthCheck>, defined: &HealthCheck) -> bool {
    let Some(held) = held else { return false };
    let mut held = held.clone();
    held.status = defined.status;
    held.output.clone_from(&defined.output);
    held.node.clone_from(&defined.node);
    held.create_index = defined.create_index;
    held.modify_index = defined.modify_index;
    held == *defined
}

fn plain_lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Errors that mean "no server could take this now", as opposed to a refusal.
fn unavailable(err: &roster_server::Error) -> bool {
    use roster_server::Error as E;
    matches!(err, E::NoServers | E::NoLeader | E::NotLeader { .. } | E::Rpc { .. } | E::Timeout(_))
}

/// The anti-entropy period the debug-build test knob `ROSTER_TEST_ANTI_ENTROPY_MS` sets (no jitter), so a test can
/// watch many passes in seconds rather than minutes; always `None` in release builds.
fn test_sync_period() -> Option<Duration> {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("ROSTER_TEST_ANTI_ENTROPY_MS").ok().and_then(|v| v.parse().ok()) {
        return Some(Duration::from_millis(ms));
    }
    None
}

/// Consul's anti-entropy scale: 1 up to 128 nodes, then one more period per doubling.
fn scale_factor(nodes: usize) -> f64 {
    const THRESHOLD: f64 = 128.0;
    let nodes = nodes as f64;
    if nodes <= THRESHOLD { 1.0 } else { (nodes.log2() - THRESHOLD.log2()).ceil() + 1.0 }
}

/// Drops the saved services of cluster-job allocations (tagged `roster_kv::ALLOC_META`) and their checks at load.
/// The job manager registers them again once the servers confirm the allocation is still this node's; kept here,
/// the first anti-entropy sync would put back in the catalog a replica that moved elsewhere while this agent was
/// down. Without them, that sync removes any such copy the catalog still holds.
fn forget_allocation_services(inner: &mut Inner) {
    let ids: BTreeSet<String> = (inner.services.values())
        .filter(|service| service.meta.contains_key(roster_kv::ALLOC_META))
        .map(|service| service.id.clone())
        .collect();
    inner.services.retain(|id, _| !ids.contains(id));
    inner.checks.retain(|_, check| !ids.contains(&check.service_id));
}

fn save(path: &Path, inner: &Inner) -> std::io::Result<()> {
    let persisted = Persisted {
        version: FORMAT_VERSION,
        services: inner.services.values().cloned().collect(),
        checks: inner.checks.values().cloned().collect(),
        config_services: inner.config_services.clone(),
        config_checks: inner.config_checks.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&persisted).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

mod sync;

#[cfg(test)]
mod tests;
