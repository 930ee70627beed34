//! The Consul-compatible HTTP API: the axum router, the shared state its handlers read, and `serve`.
//!
//! # Layout
//! - `query`: query-string flags, blocking (`index`/`wait`) and consistency options, `?dc=`.
//! - `reply`: errors with Consul's status codes and texts, and the `X-Consul-*` headers every read sends.
//! - `input`: lenient JSON bodies (field names case- and `_`-insensitive, no Content-Type needed).
//! - `output`: Consul's exact JSON shapes for nodes, services, checks and KV entries.
//! - `params`: which query parameters each route takes (anything else is a 400), `?dc`/`ns`/`partition`/`peer`, `?pretty`, `X-Consul-Effective-Consistency`.
//! - `kv`, `session`, `txn`, `agent`, `catalog`, `health`, `status`, `keyring`, `operator`, `snapshot`,
//!   `prepared_query` (`/v1/query`): the endpoints.
//!
//! Handlers validate everything before proposing a write, so a rejected request changes nothing.
//! Reads are `roster_kv::Query` values sent to the `Backend` (this agent's server, or a server for a client agent) with the consistency the request asked for; a read with `?index` parks on the watch keys of exactly the data it returns.
//! Handlers render the owned `Answer` with `output`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use roster_kv::{Answer, Query};
use roster_server::{Consistency, ReadMeta};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
pub use agent::REVISION;
use reply::ApiError;
pub use serve::{HEADER_READ_TIMEOUT, ServeOptions};

mod acl;
mod agent;
mod agent_checks;
mod autopilot;
mod cache;
pub(crate) mod caller;
mod catalog;
mod central_config;
mod cluster_jobs;
mod config;
mod coordinate;
pub(crate) mod definition;
mod encoded;
mod event;
mod filter;
pub(crate) mod fuzz;
mod health;
mod host;
pub mod input;
mod job;
mod keyring;
mod kv;
mod layer;
mod members;
mod metrics;
mod monitor;
mod operator;
mod output;
mod params;
pub(crate) mod prepared_query;
mod query;
mod reply;
mod serve;
mod session;
mod snapshot;
mod stats;
mod status;
mod txn;
mod ui;

/// The largest request body the API reads, in bytes. KV values have their own, smaller limit (`roster_kv::MAX_VALUE_SIZE`) with Consul's 413 message.
pub const MAX_BODY_SIZE: usize = 4 * 1024 * 1024;

/// What the handlers know about the agent they serve for.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    /// This node's name.
    pub node_name: String,
    /// This node's UUID.
    pub node_id: String,
    /// The datacenter; requests for any other get "No path to datacenter".
    pub datacenter: String,
    /// The address other nodes reach this one at.
    pub advertise_addr: std::net::IpAddr,
    /// The gossip (Serf LAN) port, as reported in members.
    pub serf_port: u16,
    /// The server RPC port.
    pub rpc_port: u16,
    /// Whether this agent is a server.
    pub server: bool,
    /// Whether script checks may be registered.
    pub enable_script_checks: bool,
    /// The DNS domain.
    pub domain: String,
}

/// Shared state of every handler: one `Arc`, since axum clones the state for every request at every layer that
/// takes it, and a clone of the fields themselves was a dozen reference counts up and down per request.
#[derive(Clone)]
pub struct Api(Arc<ApiState>);

/// What every handler reads through `Api`.
#[derive(Clone)]
pub struct ApiState {
    /// Where reads and writes go: this agent's server, or the servers a client agent knows.
    pub(crate) backend: Backend,
    pub(crate) info: Arc<AgentInfo>,
    /// The agent's own registrations; agent endpoints change them through it.
    pub(crate) local: Arc<crate::local::Local>,
    /// Runs the agent's checks; told after every change to the local checks.
    pub(crate) runner: Arc<crate::checks::Runner>,
    /// Cancelled when the agent starts draining: parked blocking queries then answer at once, as at the end of their wait.
    pub(crate) draining: CancellationToken,
    /// This agent's gossip; `None` only for a `-dev` agent with `ports.serf_lan = -1`.
    pub(crate) gossip: Option<crate::gossip::Gossip>,
    /// Cancelling it stops the agent (after `/v1/agent/leave` has left the pool).
    pub(crate) shutdown: CancellationToken,
    /// The runtime shim's jobs; `None` until the agent attaches its manager.
    pub(crate) jobs: Option<crate::jobs::JobManager>,
    /// The user events this agent keeps; `None` until the agent attaches its store.
    pub(crate) events: Option<Arc<crate::events::EventStore>>,
    /// ACL enforcement: the agent's tokens and token resolution for its own endpoints.
    pub(crate) acl: Arc<crate::acl::Acl>,
    /// The agent's data dir (none for `-dev`), where an operator's `acl-bootstrap-reset` file is read.
    /// Shared, not owned: axum clones the state for every request.
    pub(crate) data_dir: Option<Arc<std::path::Path>>,
    /// The agent's config reload (`PUT /v1/agent/reload`); `None` until the agent attaches it.
    pub(crate) reloader: Option<Arc<crate::reload::Reloader>>,
    /// The `?cached` reads this agent keeps current (`cache`).
    pub(crate) cache: Arc<cache::Cache>,
    /// Encoded answers of repeated reads, while this server's state stays where they were computed (`encoded`).
    pub(crate) encoded: Arc<encoded::Encoded>,
    /// The web UI's content path (`/ui/`); `None` when the UI is off.
    pub(crate) ui_path: Option<Arc<str>>,
    /// The metrics recorder's read side (`/v1/agent/metrics`); `None` until the agent attaches it.
    pub(crate) metrics: Option<roster_metrics::Metrics>,
    /// The highest index answers made from the agent's own view have carried, one per kind of index they read
    /// (`reply::local_index`): what the next one of that kind carries when no server answers in time, so an index
    /// never goes back.
    pub(crate) local_index: Arc<[std::sync::atomic::AtomicU64; 3]>,
}

impl Api {
    /// Builds the API over a backend; `draining` is the token whose cancellation starts the shutdown.
    /// `gossip` is this agent's pool (None without one); cancelling `shutdown` stops the agent, as `/v1/agent/leave` does.
    pub fn new(
        backend: Backend,
        info: AgentInfo,
        local: Arc<crate::local::Local>,
        runner: Arc<crate::checks::Runner>,
        draining: CancellationToken,
        gossip: Option<crate::gossip::Gossip>,
        shutdown: CancellationToken,
    ) -> Api {
        // ACLs are off until the agent attaches its own (`with_acl`).
        let acl = Arc::new(crate::acl::Acl::new(&crate::config::AclConfig::default(), "", "", None));
        Api(Arc::new(ApiState {
            backend,
            info: Arc::new(info),
            local,
            runner,
            draining,
            gossip,
            shutdown,
            jobs: None,
            events: None,
            acl,
            data_dir: None,
            reloader: None,
            cache: Arc::default(),
            encoded: Arc::default(),
            ui_path: None,
            metrics: None,
            local_index: Arc::default(),
        }))
    }

    /// The state to change while the agent still builds the API (a clone only if it was shared already).
    fn state_mut(&mut self) -> &mut ApiState {
        Arc::make_mut(&mut self.0)
    }

    /// Serves the event endpoints from `events`.
    pub fn with_events(mut self, events: Arc<crate::events::EventStore>) -> Api {
        self.state_mut().events = Some(events);
        self
    }

    /// Enforces ACLs with the agent's tokens and settings.
    pub fn with_acl(mut self, acl: Arc<crate::acl::Acl>) -> Api {
        self.state_mut().acl = acl;
        self
    }

    /// Serves `PUT /v1/agent/reload` with `reloader`.
    pub fn with_reload(mut self, reloader: Arc<crate::reload::Reloader>) -> Api {
        self.state_mut().reloader = Some(reloader);
        self
    }

    /// Reads the ACL bootstrap reset file from `data_dir`.
    pub fn with_data_dir(mut self, data_dir: Option<&std::path::Path>) -> Api {
        self.state_mut().data_dir = data_dir.map(Arc::from);
        self
    }

    /// Serves the web UI under its content path when `ui` enables it.
    pub fn with_ui(mut self, ui: &crate::config::ui::UiConfig) -> Api {
        self.state_mut().ui_path = ui.enabled.then(|| Arc::from(ui.content_path.as_str()));
        self
    }

    /// Serves `/v1/agent/metrics` from `metrics`.
    pub fn with_metrics(mut self, metrics: roster_metrics::Metrics) -> Api {
        self.state_mut().metrics = Some(metrics);
        self
    }

    /// Serves the job endpoints from `jobs`.
    pub fn with_jobs(mut self, jobs: crate::jobs::JobManager) -> Api {
        self.state_mut().jobs = Some(jobs);
        self
    }
}

impl std::ops::Deref for Api {
    type Target = ApiState;

    fn deref(&self) -> &ApiState {
        &self.0
    }
}

/// The full router.
pub fn router(api: Api) -> Router {
    let timers = Arc::new(metrics::RouteTimers::default());
    let router = Router::new()
        .route("/v1/status/leader", get(status::leader))
        .route("/v1/status/peers", get(status::peers))
        .route("/v1/kv", get(kv::get).put(kv::put).delete(kv::delete))
        .route("/v1/kv/", get(kv::get).put(kv::put).delete(kv::delete))
        .route("/v1/kv/{*key}", get(kv::get).put(kv::put).delete(kv::delete))
        .route("/v1/session/create", put(session::create))
        .route("/v1/session/destroy/{id}", put(session::destroy))
        .route("/v1/session/renew/{id}", put(session::renew))
        .route("/v1/session/info/{id}", get(session::info))
        .route("/v1/session/node/{*node}", get(session::node))
        .route("/v1/session/list", get(session::list))
        .route("/v1/txn", put(txn::txn))
        .route("/v1/event/fire/{*name}", put(event::fire))
        .route("/v1/event/list", get(event::list))
        .route("/v1/agent/job", put(job::submit))
        .route("/v1/agent/jobs", get(job::list))
        .route("/v1/agent/job/{name}", get(job::status).delete(job::stop))
        .route("/v1/agent/job/{name}/logs", get(job::logs))
        .route("/v1/acl/bootstrap", put(acl::bootstrap))
        .route("/v1/acl/token", put(acl::token_create))
        .route("/v1/acl/token/self", get(acl::token_self))
        .route("/v1/acl/token/{id}", get(acl::token_read).put(acl::token_update).delete(acl::token_delete))
        .route("/v1/acl/token/{id}/clone", put(acl::token_clone))
        .route("/v1/acl/tokens", get(acl::token_list))
        .route("/v1/acl/policy", put(acl::policy_create))
        .route("/v1/acl/policy/name/{name}", get(acl::policy_read_by_name))
        .route("/v1/acl/policy/{id}", get(acl::policy_read).put(acl::policy_update).delete(acl::policy_delete))
        .route("/v1/acl/policies", get(acl::policy_list))
        .route("/v1/acl/role", put(acl::role_create))
        .route("/v1/acl/role/name/{name}", get(acl::role_read_by_name))
        .route("/v1/acl/role/{id}", get(acl::role_read).put(acl::role_update).delete(acl::role_delete))
        .route("/v1/acl/roles", get(acl::role_list))
        .route("/v1/acl/templated-policies", get(acl::templated_policy_list))
        .route("/v1/acl/templated-policy/name/{*name}", get(acl::templated_policy_read))
        .route("/v1/acl/templated-policy/preview/{*name}", axum::routing::post(acl::templated_policy_preview))
        .route("/v1/agent/token/{kind}", put(acl::agent_token))
        .route("/v1/acl/auth-method", put(acl::method_create))
        .route("/v1/acl/auth-method/{name}", get(acl::method_read).put(acl::method_update).delete(acl::method_delete))
        .route("/v1/acl/auth-methods", get(acl::method_list))
        .route("/v1/acl/binding-rule", put(acl::rule_create))
        .route("/v1/acl/binding-rule/{id}", get(acl::rule_read).put(acl::rule_update).delete(acl::rule_delete))
        .route("/v1/acl/binding-rules", get(acl::rule_list))
        .route("/v1/acl/login", axum::routing::post(acl::login))
        .route("/v1/acl/logout", axum::routing::post(acl::logout))
        .route("/v1/agent/self", get(agent::self_))
        .route("/v1/agent/metrics", get(metrics::metrics))
        .route("/v1/agent/metrics/stream", get(metrics::stream))
        .route("/v1/agent/members", get(members::members))
        .route("/v1/agent/join/{*addr}", put(members::join))
        .route("/v1/agent/leave", put(members::leave))
        .route("/v1/agent/reload", put(agent::reload))
        .route("/v1/agent/monitor", get(monitor::monitor))
        .route("/v1/agent/host", get(host::host))
        .route("/v1/agent/force-leave/{*node}", put(members::force_leave))
        .route("/v1/operator/raft/configuration", get(members::raft_configuration))
        .route("/v1/operator/raft/peer", axum::routing::delete(operator::raft_peer_delete))
        .route("/v1/operator/raft/transfer-leader", axum::routing::post(operator::transfer_leader))
        .route("/v1/operator/usage", get(operator::usage))
        .route("/v1/coordinate/datacenters", get(coordinate::datacenters))
        .route("/v1/coordinate/nodes", get(coordinate::nodes))
        .route("/v1/coordinate/node/{node}", get(coordinate::node))
        .route("/v1/coordinate/update", put(coordinate::update))
        .route(
            "/v1/operator/autopilot/configuration",
            get(autopilot::get_configuration).put(autopilot::put_configuration),
        )
        .route("/v1/operator/autopilot/health", get(autopilot::health))
        .route("/v1/operator/autopilot/state", get(autopilot::state))
        .route(
            "/v1/snapshot",
            get(snapshot::save).put(snapshot::restore).layer(DefaultBodyLimit::max(snapshot::MAX_ARCHIVE_SIZE)),
        )
        .route(
            "/v1/operator/keyring",
            get(keyring::keyring).post(keyring::keyring).put(keyring::keyring).delete(keyring::keyring),
        )
        .route("/v1/jobs", get(cluster_jobs::list).put(cluster_jobs::submit))
        .route("/v1/job/{name}", get(cluster_jobs::get).delete(cluster_jobs::stop))
        .route("/v1/job/{name}/versions", get(cluster_jobs::versions))
        .route("/v1/job/{name}/revert", put(cluster_jobs::revert))
        .route("/v1/node/{node}/allocations", get(cluster_jobs::node_allocations))
        .route("/v1/hosts", get(cluster_jobs::hosts))
        .route("/v1/config", put(config::apply))
        .route("/v1/config/{kind}", get(config::list))
        .route("/v1/config/{kind}/{name}", get(config::get).delete(config::delete))
        .route("/v1/agent/services", get(agent::services))
        .route("/v1/agent/service/{*id}", get(agent::service))
        .route("/v1/agent/service/register", put(agent::register))
        .route("/v1/agent/service/deregister/{*id}", put(agent::deregister))
        .route("/v1/agent/checks", get(agent::checks))
        .route("/v1/agent/check/register", put(agent_checks::register))
        .route("/v1/agent/check/deregister/{*id}", put(agent_checks::deregister))
        .route("/v1/agent/check/pass/{*id}", put(agent_checks::pass))
        .route("/v1/agent/check/warn/{*id}", put(agent_checks::warn))
        .route("/v1/agent/check/fail/{*id}", put(agent_checks::fail))
        .route("/v1/agent/check/update/{*id}", put(agent_checks::update))
        .route("/v1/agent/maintenance", put(agent_checks::node_maintenance))
        .route("/v1/agent/service/maintenance/{*id}", put(agent_checks::service_maintenance))
        .route("/v1/agent/health/service/name/{*name}", get(agent_checks::health_by_name))
        .route("/v1/agent/health/service/id/{*id}", get(agent_checks::health_by_id))
        .route("/v1/catalog/datacenters", get(catalog::datacenters))
        .route("/v1/catalog/nodes", get(catalog::nodes))
        .route("/v1/catalog/services", get(catalog::services))
        .route("/v1/catalog/service/{*name}", get(catalog::service))
        .route("/v1/catalog/node/{*name}", get(catalog::node))
        .route("/v1/catalog/node-services/{*name}", get(catalog::node_services))
        .route("/v1/catalog/register", put(catalog::register))
        .route("/v1/catalog/deregister", put(catalog::deregister))
        .route("/v1/health/service/{*name}", get(health::service))
        .route("/v1/health/checks/{*name}", get(health::checks))
        .route("/v1/health/node/{*name}", get(health::node))
        .route("/v1/health/state/{state}", get(health::state))
        .route("/v1/health/connect/{*name}", get(health::empty))
        .route("/v1/health/ingress/{*name}", get(health::empty))
        .route("/v1/query", get(prepared_query::list).post(prepared_query::create))
        .route("/v1/query/{id}", get(prepared_query::get).put(prepared_query::update).delete(prepared_query::delete))
        .route("/v1/query/{id}/execute", get(prepared_query::execute))
        .route("/v1/query/{id}/explain", get(prepared_query::explain))
        // After every route: each request is timed, and its parameters checked against its route's list before its
        // handler runs.
        .route_layer(layer::ApiLayer::api(api.info.clone(), timers.clone()))
        // The web UI's routes have their own instance of the layer, since they sit under a configurable path.
        .merge(ui::routes(&api, timers))
        .fallback(reply::not_found)
        .method_not_allowed_fallback(reply::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_SIZE));
    // With ACLs off the caller layer would only pass each request on, so it is left out rather than paid for.
    let router = if api.acl.enabled() { router.layer(caller::CallerLayer::new(api.acl.clone())) } else { router };
    router.with_state(api)
}

/// Serves the API on an already-bound listener until `shutdown` fires, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> std::io::Result<()> {
    serve::serve_router(listener, router(api), shutdown, options).await
}

/// Runs a read with the request's consistency, as the request's caller (the server authorizes and filters it); with
/// `?index`, parks on the query's watch keys until the answer's index passes it or the wait ends.
pub(crate) async fn read(
    api: &Api,
    opts: &query::ReadOpts,
    query: &Query,
) -> Result<(Answer, u64, ReadMeta), ApiError> {
    let secret = caller::secret();
    let (answer, index, meta, filtered) = if opts.min_index == 0 || api.draining.is_cancelled() {
        api.backend.query_as(&secret, opts.consistency, 0, Duration::ZERO, query).await?
    } else {
        tokio::select! {
            res = api.backend.query_as(&secret, opts.consistency, opts.min_index, opts.wait, query) => res?,
            () = api.draining.cancelled() => {
                // Shutting down: answer with what is there now, exactly as a wait that ran out would.
                api.backend.query_as(&secret, Consistency::Stale, 0, Duration::ZERO, query).await?
            }
        }
    };
    if filtered {
        caller::note_filtered();
    }
    Ok((answer, index, meta))
}

/// The error for an answer of the wrong kind, which only a server that does not speak this agent's queries can send.
pub(crate) fn unexpected() -> ApiError {
    ApiError::internal("unexpected answer from the server")
}

/// Proposes a write as the request's caller (the server authorizes it) and waits until it is durable and applied.
pub(crate) async fn write(api: &Api, cmd: roster_kv::Command) -> Result<roster_kv::CommandResult, ApiError> {
    Ok(api.backend.write_as(&caller::secret(), cmd).await?)
}

/// The catalog node record an agent registers for itself.
pub fn agent_node(info: &AgentInfo) -> roster_kv::Node {
    agent::self_node(info)
}
