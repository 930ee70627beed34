//! The web UI over HTTP (`roster-ui` renders, this reads): the page shells under the content path (`/ui/` by
//! default), the embedded assets under `-/assets/`, and one HTML fragment per panel under `-/panel/`, each a read
//! with the caller's token that blocks on `?index` like any Consul read and answers `X-Consul-Index`. `/` redirects to
//! the UI. Every response carries a Content-Security-Policy that allows no inline script or style.
//!
//! A panel that shows several reads blocks on one query whose watch keys cover all of them and whose index is theirs
//! or newer (`catalog_signal` for the catalog's three tables), then reads the rest at once, and answers the blocking
//! query's own index: a server answers at once when a query's index is below the caller's, so answering a larger
//! index from another read would make the next request return at once, forever.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use roster_acl::{AccessLevel, Resource};
use roster_kv::{Answer, CheckStatus, Query as StateQuery};
use roster_server::ReadMeta;
use roster_ui::panel::{self, LogTail, NodeRow, RaftServer};

use super::layer::ApiLayer;
use super::metrics::RouteTimers;
use super::query::{Query, ReadOpts};
use super::reply::{ApiError, read_headers};
use super::{Api, caller, read, unexpected};

/// The UI's routes, `{ui}` standing for the content path; `params.rs` lists each in the same spelling.
pub(super) const ROUTES: [&str; 4] = ["{ui}", "{ui}-/panel/{*rest}", "{ui}-/assets/{name}", "{ui}{*rest}"];

/// No script, style, image or connection from anywhere but the agent itself, nothing inline, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The log lines the jobs page shows per task.
const LOG_TAIL_LINES: usize = 20;

/// The UI's routes under `api`'s content path, or none when the UI is off (then `/ui/...` and `/` are 404s).
pub(super) fn routes(api: &Api, timers: Arc<RouteTimers>) -> Router<Api> {
    let Some(path) = api.ui_path.clone() else {
        return Router::new();
    };
    let at = |route: &str| route.replace("{ui}", &path);
    Router::new()
        .route("/", get(redirect))
        // The content path without its trailing slash (`/ui`) goes to the UI too, as in Consul.
        .route(path.trim_end_matches('/'), get(redirect))
        .route(&at(ROUTES[0]), get(page))
        .route(&at(ROUTES[1]), get(panel))
        .route(&at(ROUTES[2]), get(asset))
        .route(&at(ROUTES[3]), get(page))
        .route_layer(ApiLayer::ui(api.info.clone(), timers, path.clone()))
        .layer(axum::middleware::map_response(secure_headers))
}

/// `/` (and the content path without its slash) on an agent serving the UI, as Consul answers it.
async fn redirect(State(api): State<Api>) -> Response {
    let path = api.ui_path.as_deref().unwrap_or("/ui/");
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, path.to_owned())]).into_response()
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// The part of the request path after `prefix` (the content path, plus `-/panel/` for panels).
fn rest_of<'a>(uri: &'a Uri, prefix: &str) -> &'a str {
    uri.path().strip_prefix(prefix).unwrap_or("")
}

async fn page(State(api): State<Api>, uri: Uri) -> Response {
    let root = api.ui_path.as_deref().unwrap_or("/ui/");
    match roster_ui::Page::parse(rest_of(&uri, root)) {
        Some(page) => html(StatusCode::OK, roster_ui::shell(root, &api.info.datacenter, &page)),
        None => ApiError::not_found(format!("404 page not found: {}", uri.path())).into_response(),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match roster_ui::asset(&name) {
        // The name carries the content's hash, so the bytes under it never change.
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => ApiError::not_found(format!("no UI asset named {name:?}")).into_response(),
    }
}

/// A rendered panel and the index of the read it blocks on (0: it does not block).
struct Fragment {
    html: String,
    index: u64,
    meta: ReadMeta,
}

impl Fragment {
    fn new(html: String, index: u64, meta: ReadMeta) -> Fragment {
        Fragment { html, index, meta }
    }

    /// Prefixes a note when the token could read only part of the list.
    fn noting_hidden(mut self, permission: &str) -> Fragment {
        if caller::filtered() {
            self.html = panel::hidden_note(permission) + &self.html;
        }
        self
    }
}

async fn panel(State(api): State<Api>, uri: Uri) -> Response {
    let root = api.ui_path.as_deref().unwrap_or("/ui/");
    let rest = rest_of(&uri, &format!("{root}-/panel/")).to_owned();
    let result = match Query::parse(uri.query()).read_opts(&api) {
        Ok(opts) => render(&api, root, &opts, &rest).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(fragment) => {
            let mut response = html(StatusCode::OK, fragment.html);
            if fragment.index > 0 {
                response.headers_mut().extend(read_headers(fragment.index, fragment.meta));
            }
            response
        }
        Err(err) if err.status == StatusCode::FORBIDDEN => {
            html(err.status, panel::denied(missing_permission(&err.message), &err.message))
        }
        Err(err) => html(err.status, panel::failed(&err.message)),
    }
}

/// The permission a "Permission denied" text names (`... lacks permission 'acl:read' ...`).
fn missing_permission(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("permission '")?;
    rest.split_once('\'').map(|(permission, _)| permission)
}

async fn render(api: &Api, root: &str, opts: &ReadOpts, rest: &str) -> Result<Fragment, ApiError> {
    let (kind, name) = match rest.split_once('/') {
        Some((kind, name)) => (kind, Some(name)),
        None => (rest, None),
    };
    let decoded =
        |name: Option<&str>| percent_encoding::percent_decode_str(name.unwrap_or("")).decode_utf8_lossy().into_owned();
    match (kind, name) {
        ("services", None) => services(api, root, opts).await,
        ("service", Some(name)) => service(api, root, opts, &decoded(Some(name))).await,
        ("nodes", None) => nodes(api, root, opts).await,
        ("node", Some(name)) => node(api, root, opts, &decoded(Some(name))).await,
        ("kv", name) => kv(api, root, opts, &decoded(name)).await,
        ("jobs", None) => jobs(api, opts).await,
        ("sessions", None) => sessions(api, root, opts).await,
        ("raft", None) => raft(api, opts).await,
        ("acl", Some(list)) => acl(api, opts, list).await,
        _ => Err(ApiError::not_found(format!("no UI panel named {rest:?}"))),
    }
}

/// The same read without blocking.
fn at_once(opts: &ReadOpts) -> ReadOpts {
    ReadOpts { min_index: 0, ..*opts }
}

/// A query that reads nothing of size and whose index is the newest of the nodes, services and checks tables, so
/// blocking on it wakes on any catalog or health change. No service has an empty name.
fn catalog_signal() -> StateQuery {
    StateQuery::ResolveService { name: String::new(), tag: None }
}

async fn services(api: &Api, root: &str, opts: &ReadOpts) -> Result<Fragment, ApiError> {
    let (_, index, meta) = read(api, opts, &catalog_signal()).await?;
    let now = at_once(opts);
    let (instances, _, _) = read(api, &now, &StateQuery::AllServiceNodes { node_meta: BTreeMap::new() }).await?;
    let (checks, _, _) = read(api, &now, &StateQuery::ChecksInState { state: None }).await?;
    let (Answer::ServiceNodes(instances), Answer::Checks(checks)) = (instances, checks) else {
        return Err(unexpected());
    };
    let html = panel::services(root, &roster_ui::summarize(&instances, &checks));
    Ok(Fragment::new(html, index, meta).noting_hidden("service:read"))
}

async fn service(api: &Api, root: &str, opts: &ReadOpts, name: &str) -> Result<Fragment, ApiError> {
    let query = StateQuery::ServiceHealth { name: name.to_owned(), tags: Vec::new(), passing: false };
    let (answer, index, meta) = read(api, opts, &query).await?;
    let Answer::Health(entries) = answer else { return Err(unexpected()) };
    Ok(Fragment::new(panel::service(root, name, &entries), index, meta).noting_hidden("service:read and node:read"))
}

async fn nodes(api: &Api, root: &str, opts: &ReadOpts) -> Result<Fragment, ApiError> {
    let (_, index, meta) = read(api, opts, &catalog_signal()).await?;
    let now = at_once(opts);
    let (nodes, _, _) = read(api, &now, &StateQuery::Nodes).await?;
    let (instances, _, _) = read(api, &now, &StateQuery::AllServiceNodes { node_meta: BTreeMap::new() }).await?;
    let (serf, _, _) = read(api, &now, &StateQuery::ChecksInState { state: None }).await?;
    let (Answer::Nodes(nodes), Answer::ServiceNodes(instances), Answer::Checks(checks)) = (nodes, instances, serf)
    else {
        return Err(unexpected());
    };
    let gossip: BTreeMap<String, String> = api
        .gossip
        .as_ref()
        .map(|g| g.members().into_iter().map(|m| (m.name, format!("{:?}", m.status).to_lowercase())).collect())
        .unwrap_or_default();
    let serf_health: BTreeMap<&str, CheckStatus> =
        checks.iter().filter(|c| c.check_id == "serfHealth").map(|c| (c.node.as_str(), c.status)).collect();
    let rows: Vec<NodeRow> = nodes
        .into_iter()
        .map(|node| {
            let mut services: Vec<String> =
                instances.iter().filter(|(n, _)| n.node == node.node).map(|(_, s)| s.service.clone()).collect();
            services.sort();
            services.dedup();
            NodeRow {
                gossip: gossip.get(&node.node).cloned(),
                serf_health: serf_health.get(node.node.as_str()).copied(),
                services,
                node,
            }
        })
        .collect();
    Ok(Fragment::new(panel::nodes(root, &rows), index, meta).noting_hidden("node:read"))
}

async fn node(api: &Api, root: &str, opts: &ReadOpts, name: &str) -> Result<Fragment, ApiError> {
    let (_, index, meta) = read(api, opts, &catalog_signal()).await?;
    let now = at_once(opts);
    let (services, _, _) = read(api, &now, &StateQuery::NodeServices { name: name.to_owned() }).await?;
    let (checks, _, _) = read(api, &now, &StateQuery::NodeChecks { name: name.to_owned() }).await?;
    let (Answer::NodeServices { node, services }, Answer::Checks(checks)) = (services, checks) else {
        return Err(unexpected());
    };
    let html = panel::node(root, name, node.as_ref(), &services, &checks);
    Ok(Fragment::new(html, index, meta).noting_hidden("node:read and service:read"))
}

/// A folder (empty or ending in `/`) lists its keys one level deep; anything else is one key.
async fn kv(api: &Api, root: &str, opts: &ReadOpts, path: &str) -> Result<Fragment, ApiError> {
    if path.is_empty() || path.ends_with('/') {
        let query = StateQuery::KvKeys { prefix: path.to_owned(), separator: Some("/".to_owned()) };
        let (answer, index, meta) = read(api, opts, &query).await?;
        let Answer::Keys(keys) = answer else { return Err(unexpected()) };
        return Ok(Fragment::new(panel::kv_folder(root, path, &keys), index, meta).noting_hidden("key:read"));
    }
    let (answer, index, meta) = read(api, opts, &StateQuery::KvGet { key: path.to_owned() }).await?;
    let Answer::Entry(entry) = answer else { return Err(unexpected()) };
    Ok(Fragment::new(panel::kv_key(root, path, entry.as_ref()), index, meta))
}

/// This agent's jobs; they are not replicated state, so the panel blocks on the catalog, where their tasks' checks
/// and services change.
async fn jobs(api: &Api, opts: &ReadOpts) -> Result<Fragment, ApiError> {
    caller::agent_read(api).await?;
    let (_, index, meta) = read(api, opts, &catalog_signal()).await?;
    let Some(manager) = api.jobs.as_ref() else {
        return Ok(Fragment::new(panel::jobs(&serde_json::Value::Null, &[]), index, meta));
    };
    let list = manager.list().await;
    let mut tails = Vec::new();
    for job in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        let job_name = job["Name"].as_str().unwrap_or_default();
        for task in job["Tasks"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let task_name = task["Name"].as_str().unwrap_or_default();
            let lines = manager.logs(job_name, Some(task_name), LOG_TAIL_LINES).await.map_err(|e| e.to_string());
            tails.push(LogTail { job: job_name.to_owned(), task: task_name.to_owned(), lines });
        }
    }
    Ok(Fragment::new(panel::jobs(&list, &tails), index, meta))
}

/// Sessions and the keys they lock; blocks on every table (the KV store and the sessions).
async fn sessions(api: &Api, root: &str, opts: &ReadOpts) -> Result<Fragment, ApiError> {
    let (_, index, meta) = read(api, opts, &StateQuery::MaxIndex).await?;
    let now = at_once(opts);
    let (sessions, _, _) = read(api, &now, &StateQuery::SessionList).await?;
    let (entries, _, _) = read(api, &now, &StateQuery::KvList { prefix: String::new() }).await?;
    let (Answer::Sessions(sessions), Answer::Entries(entries)) = (sessions, entries) else {
        return Err(unexpected());
    };
    let locks: Vec<roster_kv::KvEntry> = entries.into_iter().filter(|entry| entry.session.is_some()).collect();
    Ok(Fragment::new(panel::sessions(root, &sessions, &locks), index, meta).noting_hidden("session:read and key:read"))
}

/// The Raft servers, as `/v1/operator/raft/configuration` reports them (`operator:read`); blocks on the catalog,
/// whose `serfHealth` checks change when a server joins, fails or leaves.
async fn raft(api: &Api, opts: &ReadOpts) -> Result<Fragment, ApiError> {
    caller::require(api, Resource::Operator, AccessLevel::Read, None, |a| a.operator_read()).await?;
    let (_, index, meta) = read(api, opts, &catalog_signal()).await?;
    let status = api.backend.status().await?;
    let names = super::members::raft_node_names(api);
    let servers: Vec<RaftServer> = status
        .servers
        .iter()
        .map(|server| RaftServer {
            node: names.get(&server.id).cloned().unwrap_or_default(),
            id: server.id.to_string(),
            address: server.addr.to_string(),
            leader: status.leader == Some(server.addr),
            voter: server.voter,
        })
        .collect();
    Ok(Fragment::new(panel::raft(&servers), index, meta))
}

async fn acl(api: &Api, opts: &ReadOpts, list: &str) -> Result<Fragment, ApiError> {
    if !api.acl.enabled() {
        let meta = ReadMeta { known_leader: true, last_contact_ms: 0, state_index: 0 };
        return Ok(Fragment::new(panel::acl_disabled(), 0, meta));
    }
    let query = match list {
        "tokens" => StateQuery::AclTokens,
        "policies" => StateQuery::AclPolicies,
        "roles" => StateQuery::AclRoles,
        other => return Err(ApiError::not_found(format!("no UI panel named \"acl/{other}\""))),
    };
    let (answer, index, meta) = read(api, opts, &query).await?;
    let html = match answer {
        Answer::AclTokens(tokens) => panel::acl_tokens(&tokens),
        Answer::AclPolicies(policies) => panel::acl_policies(&policies),
        Answer::AclRoles(roles) => panel::acl_roles(&roles),
        _ => return Err(unexpected()),
    };
    Ok(Fragment::new(html, index, meta))
}

#[cfg(test)]
mod tests {
    //! The pure parts: the permission a denial names.
    use super::*;

    #[test]
    fn denials_name_their_permission() {
        let message = "Permission denied: token with AccessorID 'abc' lacks permission 'acl:read'";
        assert_eq!(missing_permission(message), Some("acl:read"));
        let anonymous = "Permission denied: anonymous token lacks permission 'service:read' on \"web\". The anonymous \
                         token is used implicitly when a request does not specify a token.";
        assert_eq!(missing_permission(anonymous), Some("service:read"));
        assert_eq!(missing_permission("ACL not found"), None);
    }
}
