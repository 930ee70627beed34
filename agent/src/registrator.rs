//! Registrator mode (`-watch-docker`): containers roster did not start are registered from their `SERVICE_*` labels
//! or env (the grammar is `roster_runtime_shim::registrations`) and deregistered when they stop.
//!
//! Level-triggered: every [`POLL`] the running containers are listed and compared with what was registered, so a
//! missed event, a Docker restart or an agent restart costs one poll, never a stale registration. A container is
//! inspected once, when first seen. Services are registered through `Local`, as `PUT /v1/agent/service/register`
//! would, under IDs `<node>:<container name>:<port>`, so an agent restart re-registers rather than duplicates; at
//! start, local services carrying the registrator meta whose container is gone are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use roster_runtime_shim::{DockerDriver, registrations};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::checks::Runner;
use crate::http::input::Obj;
use crate::local::Local;

/// How often the running containers are compared with the registrations.
pub const POLL: Duration = Duration::from_secs(1);

/// Service meta that marks a registration as registrator mode's, with the container's ID.
const META_CONTAINER: &str = "roster-container";

/// Follows the Docker engine until `shutdown`; logs and retries while it cannot be reached.
pub async fn run(node: String, host: IpAddr, local: Arc<Local>, runner: Arc<Runner>, shutdown: CancellationToken) {
    let docker = match DockerDriver::connect_local(node.clone()) {
        Ok(docker) => docker,
        Err(error) => {
            tracing::error!(%error, "-watch-docker: no Docker engine client; registrator mode is off");
            return;
        }
    };
    // container ID -> the service IDs registered for it. Seeded from local state so a restart cleans up.
    let mut registered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for service in local.snapshot().await.0 {
        if let Some(container) = service.meta.get(META_CONTAINER) {
            registered.entry(container.clone()).or_default().push(service.id.clone());
        }
    }
    let mut unreachable = false;
    loop {
        match docker.running_foreign().await {
            Ok(running) => {
                unreachable = false;
                let running: BTreeSet<String> = running.into_iter().collect();
                let gone: Vec<String> = registered.keys().filter(|id| !running.contains(*id)).cloned().collect();
                let mut changed = false;
                for id in gone {
                    for service in registered.remove(&id).unwrap_or_default() {
                        let _ = local.remove_service(&service).await;
                        changed = true;
                    }
                }
                let new: Vec<String> = running.iter().filter(|id| !registered.contains_key(*id)).cloned().collect();
                for id in &new {
                    let services = match docker.container_info(id).await {
                        Ok(info) => register(&node, host, &local, &info).await,
                        Err(error) => {
                            tracing::debug!(%id, %error, "inspecting a container");
                            continue;
                        }
                    };
                    changed |= !services.is_empty();
                    registered.insert(id.clone(), services);
                }
                if changed {
                    runner.sync().await;
                }
            }
            Err(error) if !unreachable => {
                unreachable = true;
                tracing::warn!(%error, "-watch-docker: the Docker engine is not reachable; retrying");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Registers what one container asks for; returns the service IDs registered.
async fn register(node: &str, host: IpAddr, local: &Local, info: &roster_runtime_shim::ContainerInfo) -> Vec<String> {
    let mut ids = Vec::new();
    for mut definition in registrations(node, host, info) {
        definition["Meta"][META_CONTAINER] = Value::String(info.id.clone());
        let map: Map<String, Value> = match definition {
            Value::Object(map) => map,
            _ => continue,
        };
        // Script checks run commands on this host: only as the agent's own settings allow.
        match crate::http::definition::service(Obj(&map), false) {
            Ok((service, checks)) => {
                let id = service.id.clone();
                match local.add_service(service, checks, true).await {
                    Ok(_) => ids.push(id),
                    Err(error) => tracing::error!(%id, %error, "registering a container's service failed"),
                }
            }
            Err(why) => {
                tracing::warn!(container = %info.name, %why, "a container's SERVICE_* keys do not make a valid service")
            }
        }
    }
    if !ids.is_empty() {
        tracing::info!(container = %info.name, services = ?ids, "registered a container");
    }
    ids
}
