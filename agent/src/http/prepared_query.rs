//! `/v1/query`: prepared queries (create, list, read, update, delete, `execute`, `explain`) in Consul's shapes.
//!
//! Definitions are read here (every Consul field roster cannot honour is refused by name: cluster peering, sameness
//! groups, Connect, namespaces and partitions), checked with
//! `roster_kv::check_prepared_query` (which apply runs again) and proposed as `Command::PreparedQuerySet`.
//! An execution is one `Query::PreparedQueryExecute`, resolved and filtered on the server under its read lock, so a
//! client agent makes one RPC; the instances are shuffled here (the replicated state draws no random numbers), then,
//! with `Near` or `?near`, stably sorted by estimated round trip from that node with the coordinates the answer
//! brought (the node itself first when among the first ten, as Consul does), and cut to `?limit`. With one
//! datacenter there is nowhere to fail over to: `Failovers` is always 0.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::Uri;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use rand::seq::SliceRandom;
use roster_kv::{
    Answer, Command, CommandResult, Coordinate, NodeCoordinate, PreparedQuery, PreparedQueryAnswer,
    Query as StateQuery, QueryDns, QueryFailover, QueryTemplate, ServiceEntry, ServiceQuery, check_prepared_query,
    sort_by_distance,
};
use roster_server::ReadMeta;
use serde_json::{Map, Value, json};

use super::input::{Obj, parse_object};
use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok, read_reply};
use super::{Api, output, read, unexpected, write};

/// Consul's text for an ID or name that resolves to nothing.
pub(crate) const NOT_FOUND: &str = "Query not found";

/// `POST /v1/query`: answers `{"ID": ...}`.
pub async fn create(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let mut query = parse_body(&body)?;
    if !query.id.is_empty() {
        return Err(ApiError::bad_request("ID must be empty when creating a new prepared query"));
    }
    query.id = uuid::Uuid::new_v4().to_string();
    propose(&api, query.clone(), true).await?;
    Ok(axum::Json(json!({ "ID": query.id })).into_response())
}

/// `GET /v1/query`: every query the caller may read.
pub async fn list(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::PreparedQueryList).await?;
    let Answer::PreparedQueries(queries) = answer else { return Err(unexpected()) };
    let body: Vec<Value> = queries.iter().map(query_json).collect();
    Ok(read_reply(&body, index, meta))
}

/// `GET /v1/query/:id`: a list of the one query, as Consul answers.
pub async fn get(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::PreparedQueryGet { id }).await?;
    match answer {
        Answer::PreparedQuery(PreparedQueryAnswer::Found(query)) => Ok(read_reply(&[query_json(&query)], index, meta)),
        Answer::PreparedQuery(PreparedQueryAnswer::NotFound) => Err(ApiError::not_found(NOT_FOUND)),
        _ => Err(unexpected()),
    }
}

/// `PUT /v1/query/:id`: replaces the query's definition (the path's ID wins over the body's).
pub async fn update(State(api): State<Api>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let query = PreparedQuery { id, ..parse_body(&body)? };
    propose(&api, query, false).await?;
    Ok(empty_ok())
}

/// `DELETE /v1/query/:id`.
pub async fn delete(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    match write(&api, Command::PreparedQueryDelete { id }).await? {
        CommandResult::Bool(_) => Ok(empty_ok()),
        CommandResult::Rejected(why) => Err(refusal(why)),
    }
}

/// `GET /v1/query/:id_or_name/execute` (`?limit`, `?near`: a node, `_agent` or `_ip`, the caller's address as
/// `X-Forwarded-For` or the connection gives it, as Consul takes it).
pub async fn execute(State(api): State<Api>, Path(id_or_name): Path<String>, parts: Parts) -> ApiResult {
    let q = Query::parse(parts.uri.query());
    if q.flag("connect") {
        return Err(ApiError::bad_request("?connect: roster has no Connect service mesh"));
    }
    let limit = q.u64("limit")?.unwrap_or(0);
    let opts = q.read_opts(&api)?;
    let forwarded = parts.headers.get("X-Forwarded-For").and_then(|v| v.to_str().ok());
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_string());
    let source_ip = forwarded
        .and_then(|list| list.split(',').next())
        .map(|first| first.trim().to_owned())
        .or(peer)
        .unwrap_or_default();
    let source = Source { near: q.get("near").unwrap_or("").to_owned(), source_ip };
    let (executed, index, meta) = run(&api, &opts, id_or_name, &source, limit).await?;
    Ok(read_reply(&execute_json(&executed, &api.info.datacenter, index, meta), index, meta))
}

/// `GET /v1/query/:id_or_name/explain`: the query as it would run, a template rendered for the name.
pub async fn explain(State(api): State<Api>, Path(id_or_name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::PreparedQueryExplain { id_or_name }).await?;
    let Answer::PreparedQuery(answer) = answer else { return Err(unexpected()) };
    match answer {
        PreparedQueryAnswer::Explained(query) => {
            let mut body = Map::new();
            body.insert("Query".into(), query_json(&query));
            query_meta(&mut body, index, meta);
            Ok(read_reply(&body, index, meta))
        }
        other => Err(resolve_error(other)),
    }
}

/// A query that ran: the rendered query and its instances, shuffled and limited.
pub(crate) struct Executed {
    /// The query as it ran.
    pub query: PreparedQuery,
    /// The instances, in answer order.
    pub nodes: Vec<ServiceEntry>,
}

/// Where an execution comes from.
pub(crate) struct Source {
    /// `?near`; empty: the query's own `Near`.
    pub near: String,
    /// The caller's address, for `_ip`.
    pub source_ip: String,
}

/// Resolves and runs a query as the request's caller, shuffles its instances, sorts them by distance when the query
/// or `source` asks, and applies `limit` (0: none).
pub(crate) async fn run(
    api: &Api,
    opts: &super::query::ReadOpts,
    id_or_name: String,
    source: &Source,
    limit: u64,
) -> Result<(Executed, u64, ReadMeta), ApiError> {
    let query = StateQuery::PreparedQueryExecute {
        id_or_name,
        agent: api.info.node_name.clone(),
        near: source.near.clone(),
        source_ip: source.source_ip.clone(),
    };
    let (answer, index, meta) = read(api, opts, &query).await?;
    let Answer::PreparedQuery(answer) = answer else { return Err(unexpected()) };
    match answer {
        PreparedQueryAnswer::Executed { query, mut nodes, origin, coordinates } => {
            arrange(&mut nodes, &origin, &coordinates, limit);
            Ok((Executed { query: *query, nodes }, index, meta))
        }
        other => Err(resolve_error(other)),
    }
}

/// What an execution does with the server's instances, which the replicated state may not do itself: shuffle them,
/// sort them by distance from `origin` when there is one, and keep the first `limit` (0: all).
pub(crate) fn arrange(nodes: &mut Vec<ServiceEntry>, origin: &str, coordinates: &[NodeCoordinate], limit: u64) {
    nodes.shuffle(&mut rand::rng());
    if !origin.is_empty() {
        sort_near(origin, nodes, coordinates);
    }
    if limit > 0 {
        nodes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
}

/// Consul's distance sort: nearest first (stable, so equally far instances stay shuffled), then the origin's own
/// instance moved to the front when it is among the first ten.
fn sort_near(origin: &str, nodes: &mut [ServiceEntry], coordinates: &[NodeCoordinate]) {
    let by_node: HashMap<&str, &Coordinate> = coordinates.iter().map(|c| (c.node.as_str(), &c.coord)).collect();
    sort_by_distance(origin, nodes, |entry| entry.node.node.as_str(), |node| by_node.get(node).copied());
    if let Some(at) = nodes.iter().take(10).position(|entry| entry.node.node == origin) {
        nodes.swap(0, at);
    }
}

fn resolve_error(answer: PreparedQueryAnswer) -> ApiError {
    match answer {
        PreparedQueryAnswer::NotFound => ApiError::not_found(NOT_FOUND),
        // Consul sends these as RPC errors, which its HTTP layer answers with a 500.
        PreparedQueryAnswer::Failed(why) => ApiError::internal(why),
        _ => unexpected(),
    }
}

async fn propose(api: &Api, query: PreparedQuery, create: bool) -> Result<(), ApiError> {
    check_prepared_query(&query).map_err(ApiError::bad_request)?;
    match write(api, Command::PreparedQuerySet { query: Box::new(query), create }).await? {
        CommandResult::Bool(_) => Ok(()),
        CommandResult::Rejected(why) => Err(refusal(why)),
    }
}

fn refusal(why: String) -> ApiError {
    if why.starts_with("Cannot modify non-existent prepared query") {
        ApiError::not_found(why)
    } else {
        ApiError::bad_request(why)
    }
}

/// Reads a definition: Consul's fields (any case), the ones roster cannot honour refused by name.
fn parse_body(body: &[u8]) -> Result<PreparedQuery, ApiError> {
    let map = parse_object(body).map_err(ApiError::decode)?;
    parse_query(Obj(&map)).map_err(ApiError::bad_request)
}

/// The fields of a definition body that are read back as they were sent or are set by the server.
const QUERY_FIELDS: [&str; 11] = [
    "ID",
    "Name",
    "Session",
    "Token",
    "Template",
    "Service",
    "DNS",
    "CreateIndex",
    "ModifyIndex",
    "Namespace",
    "Partition",
];

const SERVICE_FIELDS: [&str; 14] = [
    "Service",
    "Failover",
    "OnlyPassing",
    "IgnoreCheckIDs",
    "Near",
    "Tags",
    "NodeMeta",
    "ServiceMeta",
    "Peer",
    "SamenessGroup",
    "Connect",
    "Namespace",
    "Partition",
    "EnterpriseMeta",
];

/// Refuses a field not in `known`, naming it and where it was.
fn known_fields(obj: Obj<'_>, known: &[&str], within: &str) -> Result<(), String> {
    let normal =
        |name: &str| name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect::<String>();
    let known: Vec<String> = known.iter().map(|k| normal(k)).collect();
    match obj.0.keys().find(|key| !known.contains(&normal(key))) {
        Some(key) => Err(format!("Request decode failed: unknown field {within}{key:?}")),
        None => Ok(()),
    }
}

/// An enterprise-only or roster-unsupported string field: refused unless empty or Consul's default value.
fn unsupported_str(obj: Obj<'_>, name: &str, default: &str, why: &str) -> Result<(), String> {
    match obj.str(&[name])?.as_str() {
        "" => Ok(()),
        value if value == default => Ok(()),
        value => Err(format!("{name} {value:?} is not supported: {why}")),
    }
}

pub(crate) fn parse_query(obj: Obj<'_>) -> Result<PreparedQuery, String> {
    known_fields(obj, &QUERY_FIELDS, "")?;
    unsupported_str(obj, "Namespace", "default", "roster has no namespaces")?;
    unsupported_str(obj, "Partition", "default", "roster has no admin partitions")?;
    let template = match obj.obj(&["Template"])? {
        None => QueryTemplate::default(),
        Some(t) => {
            known_fields(t, &["Type", "Regexp", "RemoveEmptyTags"], "Template.")?;
            QueryTemplate {
                kind: t.str(&["Type"])?,
                regexp: t.str(&["Regexp"])?,
                remove_empty_tags: t.bool(&["RemoveEmptyTags"])?,
            }
        }
    };
    let dns = match obj.obj(&["DNS"])? {
        None => QueryDns::default(),
        Some(d) => {
            known_fields(d, &["TTL"], "DNS.")?;
            QueryDns { ttl: d.str(&["TTL"])? }
        }
    };
    let service = match obj.obj(&["Service"])? {
        None => ServiceQuery::default(),
        Some(s) => parse_service(s)?,
    };
    Ok(PreparedQuery {
        id: obj.str(&["ID"])?,
        name: obj.str(&["Name"])?,
        session: obj.str(&["Session"])?,
        token: obj.str(&["Token"])?,
        template,
        service,
        dns,
        create_index: 0,
        modify_index: 0,
    })
}

fn parse_service(s: Obj<'_>) -> Result<ServiceQuery, String> {
    known_fields(s, &SERVICE_FIELDS, "Service.")?;
    unsupported_str(s, "Peer", "", "roster has no cluster peering")?;
    unsupported_str(s, "SamenessGroup", "", "roster has no sameness groups")?;
    unsupported_str(s, "Namespace", "default", "roster has no namespaces")?;
    unsupported_str(s, "Partition", "default", "roster has no admin partitions")?;
    if s.bool(&["Connect"])? {
        return Err("Service.Connect is not supported: roster has no Connect service mesh".into());
    }
    if s.obj(&["EnterpriseMeta"])?.is_some_and(|meta| !meta.0.is_empty()) {
        return Err("Service.EnterpriseMeta is not supported: roster has no namespaces or partitions".into());
    }
    let near = s.str(&["Near"])?;
    let failover = match s.obj(&["Failover"])? {
        None => QueryFailover::default(),
        Some(f) => parse_failover(f)?,
    };
    Ok(ServiceQuery {
        service: s.str(&["Service"])?,
        failover,
        only_passing: s.bool(&["OnlyPassing"])?,
        ignore_check_ids: s.str_list(&["IgnoreCheckIDs"])?,
        near,
        tags: s.str_list(&["Tags"])?,
        node_meta: s.str_map(&["NodeMeta"])?,
        service_meta: s.str_map(&["ServiceMeta"])?,
    })
}

/// `Failover`: `NearestN` and `Datacenters` are kept (there is no other datacenter, so an execution never fails
/// over); `Targets` may name datacenters only.
fn parse_failover(f: Obj<'_>) -> Result<QueryFailover, String> {
    known_fields(f, &["NearestN", "Datacenters", "Targets"], "Service.Failover.")?;
    let mut targets = Vec::new();
    if let Some(value) = f.get(&["Targets"]) {
        let Value::Array(items) = value else { return Err("Service.Failover.Targets: expected a list".into()) };
        for (i, item) in items.iter().enumerate() {
            let Value::Object(map) = item else {
                return Err(format!("Service.Failover.Targets[{i}]: expected an object"));
            };
            let target = Obj(map);
            let within = format!("Service.Failover.Targets[{i}].");
            known_fields(target, &["Peer", "Datacenter", "Namespace", "Partition"], &within)?;
            if !target.str(&["Peer"])?.is_empty() {
                return Err(format!("{within}Peer is not supported: roster has no cluster peering"));
            }
            unsupported_str(target, "Namespace", "default", "roster has no namespaces")?;
            unsupported_str(target, "Partition", "default", "roster has no admin partitions")?;
            let datacenter = target.str(&["Datacenter"])?;
            if datacenter.is_empty() {
                return Err(format!("{within}Datacenter must be set (roster has no cluster peering)"));
            }
            targets.push(datacenter);
        }
    }
    Ok(QueryFailover {
        nearest_n: f.int(&["NearestN"], i64::from(i32::MIN), i64::from(i32::MAX))?.unwrap_or(0),
        datacenters: f.str_list(&["Datacenters"])?,
        targets,
    })
}

/// A stored or rendered query in Consul's shape.
pub(crate) fn query_json(query: &PreparedQuery) -> Value {
    let list = |items: &[String]| if items.is_empty() { Value::Null } else { json!(items) };
    let map = |items: &std::collections::BTreeMap<String, String>| {
        if items.is_empty() { Value::Null } else { json!(items) }
    };
    let service = &query.service;
    let targets: Vec<Value> = service.failover.targets.iter().map(|dc| json!({"Peer": "", "Datacenter": dc})).collect();
    json!({
        "ID": query.id,
        "Name": query.name,
        "Session": query.session,
        "Token": query.token,
        "Template": {
            "Type": query.template.kind,
            "Regexp": query.template.regexp,
            "RemoveEmptyTags": query.template.remove_empty_tags,
        },
        "Service": {
            "Service": service.service,
            "Failover": {
                "NearestN": service.failover.nearest_n,
                "Datacenters": list(&service.failover.datacenters),
                "Targets": if targets.is_empty() { Value::Null } else { Value::Array(targets) },
            },
            "OnlyPassing": service.only_passing,
            "IgnoreCheckIDs": list(&service.ignore_check_ids),
            "Near": service.near,
            "Tags": list(&service.tags),
            "NodeMeta": map(&service.node_meta),
            "ServiceMeta": map(&service.service_meta),
            "Peer": "",
            "Connect": false,
        },
        "DNS": { "TTL": query.dns.ttl },
        "CreateIndex": query.create_index,
        "ModifyIndex": query.modify_index,
    })
}

/// Consul's `PreparedQueryExecuteResponse`.
fn execute_json(executed: &Executed, datacenter: &str, index: u64, meta: ReadMeta) -> Value {
    let mut body = Map::new();
    body.insert("Service".into(), json!(executed.query.service.service));
    body.insert("Nodes".into(), Value::Array(executed.nodes.iter().map(output::health_entry).collect()));
    body.insert("DNS".into(), json!({ "TTL": executed.query.dns.ttl }));
    body.insert("Datacenter".into(), json!(datacenter));
    body.insert("Failovers".into(), json!(0));
    query_meta(&mut body, index, meta);
    Value::Object(body)
}

/// The `QueryMeta` fields Consul's Go structs embed in the execute and explain answers.
fn query_meta(body: &mut Map<String, Value>, index: u64, meta: ReadMeta) {
    body.insert("Index".into(), json!(index));
    body.insert("LastContact".into(), json!(meta.last_contact_ms * 1_000_000));
    body.insert("KnownLeader".into(), json!(meta.known_leader));
    body.insert("ConsistencyLevel".into(), json!(""));
    body.insert("NotModified".into(), json!(false));
    body.insert("Backend".into(), json!(0));
    body.insert("ResultsFilteredByACLs".into(), json!(super::caller::filtered()));
}

#[cfg(test)]
mod tests;
