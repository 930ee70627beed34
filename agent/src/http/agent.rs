//! `/v1/agent/*`: this agent's services and checks, its self description and its members.
//!
//! The agent's services and checks are answered from the agent's local state (`local.rs`), as Consul's agent answers
//! them: a probe's latest output shows before it reaches the catalog, and an agent that reaches no server still lists
//! what it holds. Their index and `?index` waits are those of this node's records in the catalog; a service's `?hash`
//! wait is on the local state, as Consul's is.
//! The `consul` service and the `serfHealth` check belong to the servers and gossip, not to the agent, so the agent endpoints leave them out, as Consul's do.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri};
use roster_kv::{Node, Query as StateQuery, Service};
use roster_server::{Consistency, ReadMeta};
use serde_json::{Value, json};

use super::filter::{keep, schema};
use super::input::{Obj, parse_object};
use super::query::{Query, ReadOpts};
use super::reply::{ApiError, ApiResult, empty_ok, local_index, local_reply, read_reply, within_local_wait};
use super::{Api, caller, definition, output};
use roster_acl::{AccessLevel, Resource};

/// The version string version-gated Consul clients see: the Consul API roster implements (`Config.Version`, which
/// the Go client's version checks read, and the first half of the gossip `build` tag).
pub const CONSUL_COMPAT_VERSION: &str = "1.22.0";

/// The git revision this binary was built from (`Config.Revision`, the second half of the `build` tag).
pub const REVISION: &str = env!("ROSTER_REVISION");

/// Service and check IDs that belong to the cluster, not to this agent's own registrations.
pub(super) const CLUSTER_SERVICE: &str = "consul";
pub(super) const GOSSIP_CHECK: &str = "serfHealth";

fn local(api: &Api, q: &Query) -> Result<ReadOpts, ApiError> {
    // The agent answers from its own view, which must not need a leader.
    let mut opts = q.read_opts(api)?;
    opts.consistency = Consistency::Stale;
    Ok(opts)
}

pub async fn services(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = local(&api, &q)?;
    let filter = q.filter(&schema::AGENT_SERVICE)?;
    let (mut services, index, meta) = own_services(&api, &opts).await?;
    let access = caller::access(&api).await?;
    caller::keep_visible(&mut services, |svc| access.authorizer().service_read(&svc.service));
    let map: BTreeMap<&str, Value> = services
        .iter()
        .filter(|svc| svc.id != CLUSTER_SERVICE)
        .map(|svc| (svc.id.as_str(), output::agent_service(svc, &api.info.datacenter)))
        .filter(|(_, body)| keep(filter.as_ref(), body))
        .collect();
    Ok(read_reply(&json!(map), index, meta))
}

/// This node's service instances from the agent's local state, as Consul's agent answers them (the agent endpoints
/// decide per service what the caller may see). The index, and a blocking read's wait, are those of the node's
/// services in the catalog, read as the agent itself; with no index given, an agent that reaches no server still
/// answers.
async fn own_services(api: &Api, opts: &ReadOpts) -> Result<(Vec<Service>, u64, ReadMeta), ApiError> {
    let query = StateQuery::NodeServices { name: api.info.node_name.clone() };
    let (index, meta) = catalog_index(api, opts, &query).await?;
    let (services, _) = api.local.snapshot().await;
    Ok((services, index, meta))
}

/// The index and read facts of `query` (this node's services or checks in the catalog), after waiting past
/// `opts.min_index`. A read that does not block waits for a server no longer than `LOCAL_SERVER_WAIT`, as
/// `local_reply` does (`local_index`): the answer is the agent's own. A blocking one waits on the catalog.
async fn catalog_index(api: &Api, opts: &ReadOpts, query: &StateQuery) -> Result<(u64, ReadMeta), ApiError> {
    if opts.min_index == 0 {
        return Ok(local_index(api, query).await);
    }
    let (_, index, meta) = api.backend.query(opts.consistency, opts.min_index, opts.wait, query).await?;
    Ok((index, meta))
}

pub async fn service(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    super::central_config::refuse_blocking_merge(&q)?;
    let opts = local(&api, &q)?;
    let wanted = q.get("hash").filter(|hash| !hash.is_empty());
    let deadline = tokio::time::Instant::now() + opts.wait;
    // Consul's hash blocking: answer at once without `?hash` or when the service no longer hashes to it; otherwise
    // wait on the agent's local state, as Consul's agent does, until it does or the wait ends. A wait that needs no
    // server: the service is the agent's own.
    let mut changes = api.local.changes();
    let mut waited = false;
    loop {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        // Marked seen before the read, so a change after it ends the wait below.
        changes.borrow_and_update();
        let read = ReadOpts { consistency: Consistency::Stale, min_index: 0, wait: std::time::Duration::ZERO };
        let (services, index, meta) = own_services(&api, &read).await?;
        let found = services.iter().find(|svc| svc.id == id && svc.id != CLUSTER_SERVICE);
        let Some(svc) = found else {
            return Err(ApiError::not_found(format!("unknown service ID: {id}")));
        };
        let name = &svc.service;
        caller::require(&api, Resource::Service, AccessLevel::Read, Some(name), |a| a.service_read(name)).await?;
        let svc = &mut svc.clone();
        super::central_config::merge_central_config(&api, &q, vec![&mut *svc]).await?;
        let mut body = output::agent_service(svc, &api.info.datacenter);
        let hash = content_hash(&body);
        let done = wanted != Some(hash.as_str()) || wait.is_zero() || waited || api.draining.is_cancelled();
        if !done {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { waited = true },
                () = tokio::time::sleep_until(deadline) => waited = true,
                () = api.draining.cancelled() => {}
            }
            continue;
        }
        if let Some(obj) = body.as_object_mut() {
            obj.insert("ContentHash".into(), json!(hash));
        }
        let mut response = read_reply(&body, index, meta);
        if let Ok(value) = HeaderValue::from_str(&hash) {
            response.headers_mut().insert("X-Consul-ContentHash", value);
        }
        return Ok(response);
    }
}

/// A stable hash of the service as shown, so clients can tell whether it changed (FNV-1a over the canonical JSON).
fn content_hash(body: &Value) -> String {
    let text = body.to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// The agent's own checks, from its local state as Consul's agent answers them: with the latest output of each probe
/// (which `check_update_interval` may be holding back from the catalog) and the checks not yet sent to a server.
/// The index, and a blocking read's wait, are those of this node's checks in the catalog; with no index given, an
/// agent that reaches no server still answers, as Consul's does.
pub async fn checks(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = local(&api, &q)?;
    let filter = q.filter(&schema::CHECK)?;
    let query = StateQuery::NodeChecks { name: api.info.node_name.clone() };
    let (index, meta) = catalog_index(&api, &opts, &query).await?;
    let (services, mut checks) = api.local.snapshot().await;
    // The catalog names a service check's service and tags when it stores it; the agent's copy is named here.
    let services: BTreeMap<&str, &Service> = services.iter().map(|svc| (svc.id.as_str(), svc)).collect();
    for check in &mut checks {
        if let Some(svc) = services.get(check.service_id.as_str()) {
            check.service_name.clone_from(&svc.service);
            check.service_tags.clone_from(&svc.tags);
        }
    }
    let access = caller::access(&api).await?;
    let authz = access.authorizer();
    caller::keep_visible(&mut checks, |c| {
        if c.service_name.is_empty() { authz.node_read(&c.node) } else { authz.service_read(&c.service_name) }
    });
    let map: BTreeMap<&str, Value> = checks
        .iter()
        .filter(|c| c.check_id != GOSSIP_CHECK)
        .map(|c| (c.check_id.as_str(), output::check(c)))
        .filter(|(_, body)| keep(filter.as_ref(), body))
        .collect();
    Ok(read_reply(&json!(map), index, meta))
}

pub async fn register(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let map = parse_object(&body).map_err(ApiError::decode)?;
    let (service, checks) = definition::service(Obj(&map), api.info.enable_script_checks).map_err(bad_registration)?;
    caller::service_write(&api, &service.service).await?;
    let (existing, _) = api.local.snapshot().await;
    if let Some(old) = existing.iter().find(|s| s.id == service.id && s.service != service.service) {
        caller::service_write(&api, &old.service).await?;
    }
    api.local.add_service(service, checks, q.flag("replace-existing-checks")).await.map_err(local_error)?;
    api.runner.sync().await;
    Ok(empty_ok())
}

/// Consul's status code for each way a local change can fail.
pub(super) fn local_error(err: crate::local::LocalError) -> ApiError {
    use crate::local::LocalError;
    match err {
        LocalError::NotFound(why) => ApiError::not_found(why),
        LocalError::Invalid(why) => ApiError::bad_request(why),
        LocalError::Server(err) => err.into(),
        other @ LocalError::Persist { .. } => ApiError::internal(other.to_string()),
    }
}

fn bad_registration(why: String) -> ApiError {
    // Consul words type errors as decode failures and semantic ones plainly.
    if why.contains(": expected") || why.contains("out of range") {
        ApiError::decode(why)
    } else {
        ApiError::bad_request(why)
    }
}

pub async fn deregister(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let (existing, _) = api.local.snapshot().await;
    let Some(service) = existing.iter().find(|s| s.id == id) else {
        return Err(ApiError::not_found(format!(
            "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
        )));
    };
    caller::service_write(&api, &service.service).await?;
    api.local.remove_service(&id).await.map_err(local_error)?;
    api.runner.sync().await;
    Ok(empty_ok())
}

/// The node record this agent registers for itself.
pub fn self_node(info: &super::AgentInfo) -> Node {
    let addr = info.advertise_addr.to_string();
    let tagged = ["lan", "lan_ipv4", "wan", "wan_ipv4"].into_iter().map(|k| (k.to_owned(), addr.clone())).collect();
    Node {
        id: info.node_id.clone(),
        node: info.node_name.clone(),
        address: addr,
        datacenter: info.datacenter.clone(),
        tagged_addresses: tagged,
        meta: [("consul-network-segment".to_owned(), String::new())].into(),
        create_index: 0,
        modify_index: 0,
    }
}

/// This agent as a gossip member: its own entry in the pool, or a description of itself when it runs without gossip.
fn member(api: &Api) -> Value {
    if let Some(gossip) = &api.gossip
        && let Some(me) = gossip.members().iter().find(|m| m.name == api.info.node_name)
    {
        return super::members::member_json(me);
    }
    let info = &api.info;
    json!({
        "Name": info.node_name,
        "Addr": info.advertise_addr.to_string(),
        "Port": info.serf_port,
        "Tags": {
            "role": if info.server { "consul" } else { "node" },
            "dc": info.datacenter,
            "port": info.rpc_port.to_string(),
            "build": format!("{CONSUL_COMPAT_VERSION}:roster-{}", env!("CARGO_PKG_VERSION")),
            "vsn": "2",
            "vsn_min": "2",
            "vsn_max": "3",
            "id": info.node_id,
        },
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

pub async fn self_(State(api): State<Api>) -> ApiResult {
    caller::agent_read(&api).await?;
    let info = &api.info;
    // The agent describes itself even when no server answers in time; the leader is then unknown.
    let leader_addr =
        within_local_wait("agent/self's cluster status", api.backend.status()).await.and_then(|s| s.leader);
    let is_leader = leader_addr.is_some() && api.backend.server().is_some_and(|server| server.is_leader());
    let leader = leader_addr.map(|a| a.to_string()).unwrap_or_default();
    let body = json!({
        "Config": {
            "Datacenter": info.datacenter,
            "PrimaryDatacenter": info.datacenter,
            "NodeName": info.node_name,
            "NodeID": info.node_id,
            "Revision": REVISION,
            "Server": info.server,
            "Version": CONSUL_COMPAT_VERSION,
            "BuildDate": env!("ROSTER_BUILD_DATE"),
        },
        "DebugConfig": {
            "Datacenter": info.datacenter,
            "NodeName": info.node_name,
            "ServerMode": info.server,
            "DNSDomain": info.domain,
            "EnableScriptChecks": info.enable_script_checks,
        },
        // This agent's LAN coordinate, as gossip computes it (null without gossip, as Consul with coordinates off).
        "Coord": api.gossip.as_ref().map(crate::gossip::Gossip::coordinate),
        "Member": member(&api),
        "Stats": super::stats::stats(&api, super::stats::LeaderView { is_leader, leader_addr: leader }).await,
        "Meta": {"consul-network-segment": ""},
        "xDS": null,
    });
    local_reply(&api, &body).await
}

/// `PUT /v1/agent/reload`: reads the configuration again and applies it, as SIGHUP does, with `agent:write` on
/// this node (Consul's rule). A reload that fails is Consul's 500 with the reason; nothing changed then, or, for a
/// failure while applying, the reason says what did not.
pub async fn reload(State(api): State<Api>) -> ApiResult {
    caller::agent_write(&api).await?;
    let Some(reloader) = api.reloader.clone() else {
        return Err(ApiError::internal("this agent cannot reload its configuration".to_owned()));
    };
    match reloader.reload().await {
        Ok(changed) => {
            tracing::info!(
                "configuration reloaded over HTTP: {}",
                if changed.is_empty() { "nothing changed".to_owned() } else { changed.join("; ") }
            );
            Ok(empty_ok())
        }
        Err(err) => {
            tracing::error!("configuration reload over HTTP failed: {err}");
            Err(ApiError::internal(err.to_string()))
        }
    }
}
