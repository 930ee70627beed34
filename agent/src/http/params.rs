//! Which query parameters each endpoint honours, in one table, checked by a route layer before any handler runs: a
//! parameter roster does not implement is a 400 naming it, never a silently wrong answer.
//!
//! The layer also does what every endpoint shares, so no handler can forget it: `?dc=` must name this datacenter,
//! `?ns=`/`?partition=` (Enterprise) must be `default` or empty, `?peer=` (cluster peering) must be empty, `?stale`,
//! `?consistent` and `?cached` must not conflict, `?pretty` indents the JSON body as Consul does, and a read of the
//! replicated state says which consistency served it (`X-Consul-Effective-Consistency`).
//!
//! A route missing from the table accepts only the parameters every endpoint takes, so a new route that forgets its
//! entry refuses its own parameters in its first test; `every_route_has_a_parameter_list` checks the router against the
//! table as well.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use super::AgentInfo;
use super::query::Query;
use super::reply::ApiError;

/// Every endpoint takes these: the token (read by `caller`), the datacenter, the Enterprise and peering tenancy (only
/// the default exists here) and `?pretty`.
const COMMON: &[&str] = &["dc", "token", "ns", "partition", "peer", "pretty"];

/// A read of the replicated state: blocking, consistency modes, and the agent cache (`?cached`: answered fresh where
/// the endpoint has no cache, as Consul's non-cacheable endpoints do).
const READ: &[&str] = &["index", "wait", "stale", "consistent", "leader", "cached"];

/// What the agent answers from its own view: it blocks on the catalog but is always served locally.
const AGENT: &[&str] = &["index", "wait"];

/// The header naming the consistency a read was served with, made once rather than parsed per reply.
const X_CONSUL_EFFECTIVE_CONSISTENCY: HeaderName = HeaderName::from_static("x-consul-effective-consistency");

/// How an endpoint is served, which decides the effective-consistency header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A read of the replicated state with the request's consistency.
    Read,
    /// Anything else: writes, the agent's own view, cluster facts.
    Other,
}

/// One endpoint: its methods, its route as the router spells it, and the parameters it takes beyond `COMMON`.
struct Endpoint {
    methods: &'static [Method],
    route: &'static str,
    kind: Kind,
    sets: &'static [&'static [&'static str]],
}

const GET: &[Method] = &[Method::GET];
const PUT: &[Method] = &[Method::PUT];
const POST: &[Method] = &[Method::POST];
const DELETE: &[Method] = &[Method::DELETE];
const ANY: &[Method] = &[Method::GET, Method::PUT, Method::POST, Method::DELETE];

const fn read(route: &'static str, sets: &'static [&'static [&'static str]]) -> Endpoint {
    Endpoint { methods: GET, route, kind: Kind::Read, sets }
}

const fn other(methods: &'static [Method], route: &'static str, sets: &'static [&'static [&'static str]]) -> Endpoint {
    Endpoint { methods, route, kind: Kind::Other, sets }
}

#[rustfmt::skip]
const TABLE: &[Endpoint] = &[
    // status
    other(GET, "/v1/status/leader", &[]),
    other(GET, "/v1/status/peers", &[]),
    // kv
    read("/v1/kv", &[READ, &["recurse", "raw", "keys", "separator"]]),
    read("/v1/kv/", &[READ, &["recurse", "raw", "keys", "separator"]]),
    read("/v1/kv/{*key}", &[READ, &["recurse", "raw", "keys", "separator"]]),
    other(PUT, "/v1/kv", &[&["flags", "cas", "acquire", "release"]]),
    other(PUT, "/v1/kv/", &[&["flags", "cas", "acquire", "release"]]),
    other(PUT, "/v1/kv/{*key}", &[&["flags", "cas", "acquire", "release"]]),
    other(DELETE, "/v1/kv", &[&["recurse", "cas"]]),
    other(DELETE, "/v1/kv/", &[&["recurse", "cas"]]),
    other(DELETE, "/v1/kv/{*key}", &[&["recurse", "cas"]]),
    // sessions, transactions, events
    other(PUT, "/v1/session/create", &[]),
    other(PUT, "/v1/session/destroy/{id}", &[]),
    other(PUT, "/v1/session/renew/{id}", &[]),
    read("/v1/session/info/{id}", &[READ]),
    read("/v1/session/node/{*node}", &[READ]),
    read("/v1/session/list", &[READ]),
    // A read-only transaction takes the consistency modes; it never blocks (Consul's).
    other(PUT, "/v1/txn", &[&["stale", "consistent"]]),
    other(PUT, "/v1/event/fire/{*name}", &[&["node", "service", "tag"]]),
    other(GET, "/v1/event/list", &[&["name", "index", "wait"]]),
    // jobs (roster's own)
    other(PUT, "/v1/agent/job", &[]),
    other(GET, "/v1/agent/jobs", &[]),
    other(&[Method::GET, Method::DELETE], "/v1/agent/job/{name}", &[]),
    other(GET, "/v1/agent/job/{name}/logs", &[&["task", "lines"]]),
    // ACLs
    other(PUT, "/v1/acl/bootstrap", &[]),
    other(PUT, "/v1/acl/token", &[]),
    read("/v1/acl/token/self", &[READ]),
    read("/v1/acl/token/{id}", &[READ]),
    other(&[Method::PUT, Method::DELETE], "/v1/acl/token/{id}", &[]),
    other(PUT, "/v1/acl/token/{id}/clone", &[]),
    read("/v1/acl/tokens", &[READ, &["policy", "role", "servicename", "authmethod"]]),
    other(PUT, "/v1/acl/policy", &[]),
    read("/v1/acl/policy/name/{name}", &[READ]),
    read("/v1/acl/policy/{id}", &[READ]),
    other(&[Method::PUT, Method::DELETE], "/v1/acl/policy/{id}", &[]),
    read("/v1/acl/policies", &[READ]),
    other(PUT, "/v1/acl/role", &[]),
    read("/v1/acl/role/name/{name}", &[READ]),
    read("/v1/acl/role/{id}", &[READ]),
    other(&[Method::PUT, Method::DELETE], "/v1/acl/role/{id}", &[]),
    read("/v1/acl/roles", &[READ, &["policy"]]),
    other(GET, "/v1/acl/templated-policies", &[]),
    other(GET, "/v1/acl/templated-policy/name/{*name}", &[]),
    other(POST, "/v1/acl/templated-policy/preview/{*name}", &[]),
    other(PUT, "/v1/agent/token/{kind}", &[]),
    other(PUT, "/v1/acl/auth-method", &[]),
    read("/v1/acl/auth-method/{name}", &[READ]),
    other(&[Method::PUT, Method::DELETE], "/v1/acl/auth-method/{name}", &[]),
    read("/v1/acl/auth-methods", &[READ]),
    other(PUT, "/v1/acl/binding-rule", &[]),
    read("/v1/acl/binding-rule/{id}", &[READ]),
    other(&[Method::PUT, Method::DELETE], "/v1/acl/binding-rule/{id}", &[]),
    read("/v1/acl/binding-rules", &[READ, &["authmethod"]]),
    other(POST, "/v1/acl/login", &[]),
    other(POST, "/v1/acl/logout", &[]),
    // the agent and the gossip pool
    other(GET, "/v1/agent/self", &[]),
    other(GET, "/v1/agent/metrics", &[&["format"]]),
    other(GET, "/v1/agent/metrics/stream", &[]),
    other(GET, "/v1/agent/members", &[&["wan", "segment"]]),
    // No WAN pool to join or leave (`?wan` there is refused).
    other(PUT, "/v1/agent/join/{*addr}", &[]),
    other(PUT, "/v1/agent/leave", &[]),
    other(PUT, "/v1/agent/reload", &[]),
    other(GET, "/v1/agent/monitor", &[&["loglevel", "logjson"]]),
    other(GET, "/v1/agent/host", &[]),
    other(PUT, "/v1/agent/force-leave/{*node}", &[&["prune"]]),
    // operator
    other(GET, "/v1/operator/raft/configuration", &[&["stale"]]),
    other(DELETE, "/v1/operator/raft/peer", &[&["id", "address"]]),
    other(POST, "/v1/operator/raft/transfer-leader", &[&["id"]]),
    read("/v1/operator/usage", &[READ]),
    read("/v1/operator/autopilot/configuration", &[READ]),
    other(PUT, "/v1/operator/autopilot/configuration", &[&["cas"]]),
    other(GET, "/v1/operator/autopilot/health", &[]),
    other(GET, "/v1/operator/autopilot/state", &[]),
    // network coordinates
    other(GET, "/v1/coordinate/datacenters", &[]),
    read("/v1/coordinate/nodes", &[READ, &["segment"]]),
    read("/v1/coordinate/node/{node}", &[READ, &["segment"]]),
    other(PUT, "/v1/coordinate/update", &[]),
    // prepared queries (`connect` is read to refuse it by name)
    other(POST, "/v1/query", &[]),
    read("/v1/query", &[READ]),
    read("/v1/query/{id}", &[READ]),
    other(&[Method::PUT, Method::DELETE], "/v1/query/{id}", &[]),
    read("/v1/query/{id}/execute", &[&["stale", "consistent", "limit", "near", "connect"]]),
    read("/v1/query/{id}/explain", &[&["stale", "consistent"]]),
    // cluster jobs (roster's own)
    read("/v1/jobs", &[READ]),
    other(PUT, "/v1/jobs", &[]),
    read("/v1/job/{name}", &[READ]),
    other(DELETE, "/v1/job/{name}", &[&["purge"]]),
    read("/v1/job/{name}/versions", &[READ]),
    other(PUT, "/v1/job/{name}/revert", &[&["version"]]),
    read("/v1/node/{node}/allocations", &[READ]),
    read("/v1/hosts", &[READ]),
    // config entries
    other(PUT, "/v1/config", &[&["cas"]]),
    read("/v1/config/{kind}", &[READ]),
    read("/v1/config/{kind}/{name}", &[READ]),
    other(DELETE, "/v1/config/{kind}/{name}", &[&["cas"]]),
    other(GET, "/v1/snapshot", &[&["stale"]]),
    other(PUT, "/v1/snapshot", &[]),
    other(ANY, "/v1/operator/keyring", &[&["relay-factor", "local-only"]]),
    // the agent's services and checks
    other(GET, "/v1/agent/services", &[AGENT, &["filter"]]),
    other(GET, "/v1/agent/service/{*id}", &[&["hash", "wait", "merge-central-config"]]),
    other(PUT, "/v1/agent/service/register", &[&["replace-existing-checks"]]),
    other(PUT, "/v1/agent/service/deregister/{*id}", &[]),
    other(GET, "/v1/agent/checks", &[AGENT, &["filter"]]),
    other(PUT, "/v1/agent/check/register", &[]),
    other(PUT, "/v1/agent/check/deregister/{*id}", &[]),
    other(PUT, "/v1/agent/check/pass/{*id}", &[&["note"]]),
    other(PUT, "/v1/agent/check/warn/{*id}", &[&["note"]]),
    other(PUT, "/v1/agent/check/fail/{*id}", &[&["note"]]),
    other(PUT, "/v1/agent/check/update/{*id}", &[]),
    other(PUT, "/v1/agent/maintenance", &[&["enable", "reason"]]),
    other(PUT, "/v1/agent/service/maintenance/{*id}", &[&["enable", "reason"]]),
    other(GET, "/v1/agent/health/service/name/{*name}", &[&["format"]]),
    other(GET, "/v1/agent/health/service/id/{*id}", &[&["format"]]),
    // catalog
    other(GET, "/v1/catalog/datacenters", &[&["cached"]]),
    read("/v1/catalog/nodes", &[READ, &["filter", "node-meta", "near"]]),
    read("/v1/catalog/services", &[READ, &["filter", "node-meta"]]),
    read("/v1/catalog/service/{*name}", &[READ, &["tag", "filter", "node-meta", "near", "merge-central-config"]]),
    read("/v1/catalog/node/{*name}", &[READ, &["filter"]]),
    read("/v1/catalog/node-services/{*name}", &[READ, &["filter"]]),
    other(PUT, "/v1/catalog/register", &[]),
    other(PUT, "/v1/catalog/deregister", &[]),
    // health
    read("/v1/health/service/{*name}", &[READ, &["tag", "passing", "filter", "node-meta", "near", "merge-central-config"]]),
    read("/v1/health/checks/{*name}", &[READ, &["filter", "node-meta", "near"]]),
    read("/v1/health/node/{*name}", &[READ, &["filter"]]),
    read("/v1/health/state/{state}", &[READ, &["filter", "node-meta", "near"]]),
    // No mesh: every answer is empty, which is right whatever these select.
    read("/v1/health/connect/{*name}", &[READ, &["tag", "passing", "filter", "node-meta", "near"]]),
    read("/v1/health/ingress/{*name}", &[READ, &["tag", "passing", "filter", "node-meta", "near"]]),
    // the web UI (`ui.rs`), `{ui}` standing for its content path: `/` redirects to it; a panel is a blocking read
    other(GET, "/", &[]),
    other(GET, "{ui}", &[]),
    other(GET, "{ui}-/panel/{*rest}", &[AGENT]),
    other(GET, "{ui}-/assets/{name}", &[]),
    other(GET, "{ui}{*rest}", &[]),
];

/// The table entry for a request, if its route has one.
fn endpoint(method: &Method, route: &str) -> Option<&'static Endpoint> {
    // HEAD is answered by the GET handler.
    let method = if method == Method::HEAD { &Method::GET } else { method };
    TABLE.iter().find(|e| e.route == route && e.methods.contains(method))
}

/// Whether `name` is one of the parameters `endpoint` takes.
fn takes(endpoint: Option<&Endpoint>, name: &str) -> bool {
    COMMON.contains(&name) || endpoint.is_some_and(|e| e.sets.iter().any(|set| set.contains(&name)))
}

/// Every check that does not need the handler, in Consul's order and words.
fn check(info: &AgentInfo, endpoint: Option<&Endpoint>, q: &Query, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(name) = q.names().find(|name| !takes(endpoint, name)) {
        return Err(ApiError::bad_request(format!("Unsupported query parameter {name:?}")));
    }
    q.check_datacenter(&info.datacenter)?;
    tenancy(q, headers)?;
    if q.flag("cached") && q.flag("consistent") {
        return Err(ApiError::bad_request("Cannot specify ?cached with ?consistent, conflicting semantics."));
    }
    Ok(())
}

/// Namespaces and admin partitions (Enterprise) and peers (cluster peering): only the default tenancy exists here, so
/// `default` or empty is accepted and anything else refused in Consul CE's words.
fn tenancy(q: &Query, headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = |what: &str, feature: &str| {
        ApiError::bad_request(format!("Invalid {what} - {feature} are a Consul Enterprise feature"))
    };
    let not_default = |value: &str| !value.is_empty() && value != "default";
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if q.get("ns").is_some_and(not_default) {
        return Err(refused("query parameter: \"ns\"", "Namespaces"));
    }
    if not_default(&header("X-Consul-Namespace")) {
        return Err(refused("header: \"X-Consul-Namespace\"", "Namespaces"));
    }
    if q.get("partition").is_some_and(not_default) {
        return Err(refused("query parameter: \"partition\"", "Partitions"));
    }
    if not_default(&header("X-Consul-Partition")) {
        return Err(refused("header: \"X-Consul-Partition\"", "Partitions"));
    }
    match q.get("peer") {
        Some(peer) if !peer.is_empty() => Err(ApiError::bad_request(format!(
            "Invalid query parameter: \"peer\" - roster has no cluster peering ({peer:?})"
        ))),
        _ => Ok(()),
    }
}

/// What the parameter check decided for a request it let through: the consistency header to add to a read's reply,
/// and whether to indent the body.
pub(super) struct Admitted {
    consistency: Option<&'static str>,
    pretty: bool,
}

/// The check the route layer (`layer.rs`) runs before the handler: refuses what the endpoint does not take.
/// `route` is the matched route; a web UI route has its content path given as `ui_path`, since the table spells
/// those routes with `{ui}` in its place.
pub(super) fn admit(
    info: &AgentInfo,
    route: &str,
    ui_path: Option<&str>,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Admitted, ApiError> {
    let route = match ui_path {
        None => std::borrow::Cow::Borrowed(route),
        Some(content_path) => match route.strip_prefix(content_path) {
            Some(rest) => format!("{{ui}}{rest}").into(),
            // The content path without its trailing slash redirects to the UI, taking what its front page takes.
            None if content_path.strip_suffix('/') == Some(route) => "{ui}".into(),
            None => route.into(),
        },
    };
    let endpoint = endpoint(method, &route);
    let q = Query::parse(query);
    check(info, endpoint, &q, headers)?;
    Ok(Admitted {
        consistency: endpoint.filter(|e| e.kind == Kind::Read).map(|_| effective_consistency(&q)),
        pretty: q.get("pretty").is_some(),
    })
}

/// What the layer does to an admitted request's reply: the effective consistency of a read, and `?pretty`.
pub(super) async fn finish(admitted: Admitted, mut response: Response) -> Response {
    if let Some(level) = admitted.consistency
        && response.headers().contains_key(super::reply::X_CONSUL_INDEX)
    {
        response.headers_mut().insert(X_CONSUL_EFFECTIVE_CONSISTENCY, HeaderValue::from_static(level));
    }
    if admitted.pretty && is_json(&response) {
        response = indented(response).await;
    }
    response
}

/// Consul's name for the consistency a read was asked for (`QueryOptions.ConsistencyLevel`).
fn effective_consistency(q: &Query) -> &'static str {
    if q.flag("consistent") {
        "consistent"
    } else if q.flag("stale") {
        "stale"
    } else {
        "leader"
    }
}

fn is_json(response: &Response) -> bool {
    response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// The response with its JSON body indented.
async fn indented(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // Every JSON body roster sends is built in memory and bounded by what the state holds.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::internal("reading the reply failed").into_response();
    };
    let text = indent_json(&bytes);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

/// Re-indents compact JSON text as Go's `json.MarshalIndent(v, "", "    ")` plus a newline, which is what Consul
/// sends for `?pretty`. Works on the text, so key order and number spelling stay exactly as rendered.
pub(crate) fn indent_json(compact: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 4));
    };
    let mut bytes = compact.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b'{' | b'[' => {
                out.push(b);
                while bytes.peek().is_some_and(u8::is_ascii_whitespace) {
                    bytes.next();
                }
                if matches!(bytes.peek(), Some(b'}' | b']')) {
                    // An empty object or array stays `{}`/`[]`.
                    out.extend(bytes.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b if b.is_ascii_whitespace() => {}
            b => out.push(b),
        }
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    //! The table against the router, and the pure checks.
    use super::*;

    fn info() -> AgentInfo {
        AgentInfo {
            node_name: "n1".into(),
            node_id: String::new(),
            datacenter: "dc1".into(),
            advertise_addr: std::net::IpAddr::from([127, 0, 0, 1]),
            serf_port: 0,
            rpc_port: 0,
            server: true,
            enable_script_checks: false,
            domain: "consul.".into(),
        }
    }

    fn checked(method: Method, route: &str, query: &str) -> Result<(), String> {
        check(&info(), endpoint(&method, route), &Query::parse(Some(query)), &HeaderMap::new()).map_err(|e| e.message)
    }

    #[test]
    fn every_route_has_a_parameter_list() {
        // The router's routes as `http.rs` spells them: each must have an entry for each of its methods.
        let source = include_str!("../http.rs");
        let mut missing = Vec::new();
        let mut n_routes = 0;
        for chunk in source.split(".route(").skip(1) {
            let Some(route) = chunk.trim_start().strip_prefix('"').and_then(|rest| rest.split('"').next()) else {
                continue;
            };
            n_routes += 1;
            let handlers = chunk.split(".route(").next().unwrap_or_default();
            for (method, word) in
                [(Method::GET, "get("), (Method::PUT, "put("), (Method::DELETE, "delete("), (Method::POST, "post(")]
            {
                let named = handlers.contains(&format!("({word}"))
                    || handlers.contains(&format!(".{word}"))
                    || handlers.contains(&format!("::{word}"));
                if named && endpoint(&method, route).is_none() {
                    missing.push(format!("{method} {route}"));
                }
            }
        }
        assert!(n_routes > 80, "the scan found only {n_routes} routes in http.rs");
        assert!(missing.is_empty(), "routes without a parameter list in params.rs: {missing:?}");
    }

    #[test]
    fn every_ui_route_has_a_parameter_list() {
        for route in super::super::ui::ROUTES.into_iter().chain(["/"]) {
            assert!(endpoint(&Method::GET, route).is_some(), "the UI route {route} has no parameter list");
        }
        assert_eq!(checked(Method::GET, "{ui}-/panel/{*rest}", "index=4&wait=1s&token=t"), Ok(()));
        assert!(checked(Method::GET, "{ui}{*rest}", "index=4").is_err());
    }

    #[test]
    fn unknown_parameters_are_named() {
        assert_eq!(
            checked(Method::GET, "/v1/catalog/nodes", "bogus=1"),
            Err("Unsupported query parameter \"bogus\"".to_owned())
        );
        assert_eq!(checked(Method::GET, "/v1/catalog/nodes", "filter=Node%3D%3Dx&node-meta=a:b&stale"), Ok(()));
        // A read parameter on a write is refused.
        assert_eq!(checked(Method::PUT, "/v1/kv/{*key}", "raw"), Err("Unsupported query parameter \"raw\"".to_owned()));
        // A route without an entry takes only what every endpoint takes.
        assert_eq!(checked(Method::GET, "/v1/unlisted", "token=x&pretty"), Ok(()));
        assert!(checked(Method::GET, "/v1/unlisted", "index=3").is_err());
    }

    #[test]
    fn tenancy_and_datacenter_accept_only_the_default() {
        assert_eq!(checked(Method::GET, "/v1/catalog/nodes", "ns=default&partition="), Ok(()));
        assert_eq!(
            checked(Method::GET, "/v1/catalog/nodes", "ns=team"),
            Err("Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature".to_owned())
        );
        assert!(checked(Method::GET, "/v1/catalog/nodes", "partition=p1").is_err());
        assert!(checked(Method::GET, "/v1/catalog/nodes", "peer=other").is_err());
        let mut headers = HeaderMap::new();
        headers.insert("X-Consul-Namespace", HeaderValue::from_static("team"));
        assert!(check(&info(), None, &Query::parse(None), &headers).is_err());
        assert_eq!(checked(Method::GET, "/v1/catalog/nodes", "dc=dc1"), Ok(()));
        assert_eq!(
            checked(Method::GET, "/v1/catalog/nodes", "dc=dc2"),
            Err("No path to datacenter \"dc2\"".to_owned())
        );
        assert_eq!(
            checked(Method::GET, "/v1/catalog/services", "cached&consistent"),
            Err("Cannot specify ?cached with ?consistent, conflicting semantics.".to_owned())
        );
    }

    #[test]
    fn consistency_is_named_as_consul_names_it() {
        assert_eq!(effective_consistency(&Query::parse(None)), "leader");
        assert_eq!(effective_consistency(&Query::parse(Some("stale"))), "stale");
        assert_eq!(effective_consistency(&Query::parse(Some("consistent"))), "consistent");
    }

    #[test]
    fn pretty_json_is_indented_as_go_indents_it() {
        let compact = br#"{"a":[1,{"b":"x,:{y"}],"e":{},"f":[],"g":"q\"]"}"#;
        let expected = "{\n    \"a\": [\n        1,\n        {\n            \"b\": \"x,:{y\"\n        }\n    ],\n    \"e\": {},\n    \"f\": [],\n    \"g\": \"q\\\"]\"\n}\n";
        assert_eq!(String::from_utf8(indent_json(compact)).unwrap(), expected);
        assert_eq!(indent_json(b"true"), b"true\n");
    }
}
