//! `/v1/coordinate/*`: the network coordinates gossip computes and agents store (`Query::Coordinates`,
//! `Query::NodeCoordinate`, `Command::CoordinateBatchUpdate`), in Consul's shapes; and `?near`, which sorts
//! catalog and health answers by the estimated round trip from a node (`roster_kv::sort_by_distance`).
//!
//! Reads are filtered by `node:read` and an update needs `node:write` on its node, both decided by the server.
//! `/v1/coordinate/datacenters` has no WAN pool to read from: with one datacenter, the WAN pool would hold exactly
//! its servers, so it lists the servers' LAN coordinates under their WAN names (`<node>.<dc>`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::IntoResponse;
use roster_kv::{Answer, Command, CommandResult, Coordinate, NodeCoordinate, Query as StateQuery};
use roster_server::Consistency;
use serde_json::{Value, json};

use super::input::{Obj, parse_object};
use super::query::{Query, ReadOpts};
use super::reply::{ApiError, ApiResult, empty_ok, read_not_found, read_reply};
use super::{Api, read, unexpected, write};

/// One row in Consul's JSON (`structs.Coordinate`).
fn row(c: &NodeCoordinate) -> Value {
    json!({"Node": c.node, "Segment": c.segment, "Coord": c.coord})
}

/// `GET /v1/coordinate/datacenters`: this datacenter's servers, no ACL needed (as in Consul).
pub async fn datacenters(State(api): State<Api>) -> ApiResult {
    let servers: Vec<String> = match &api.gossip {
        Some(gossip) => gossip
            .members()
            .into_iter()
            .filter(|m| m.meta.role == crate::gossip::Role::Server && m.meta.datacenter == api.info.datacenter)
            .map(|m| m.name)
            .collect(),
        None => vec![api.info.node_name.clone()],
    };
    let query = StateQuery::Coordinates;
    let (answer, _, _) = api.backend.query(Consistency::Stale, 0, Duration::ZERO, &query).await?;
    let Answer::Coordinates(rows) = answer else { return Err(unexpected()) };
    let coordinates: Vec<Value> = rows
        .iter()
        .filter(|c| servers.contains(&c.node))
        .map(|c| json!({"Node": format!("{}.{}", c.node, api.info.datacenter), "Coord": c.coord}))
        .collect();
    let body = json!([{"Datacenter": api.info.datacenter, "AreaID": "WAN", "Coordinates": coordinates}]);
    Ok(axum::Json(body).into_response())
}

/// `GET /v1/coordinate/nodes`: every node's LAN coordinate (blocking, consistency modes).
pub async fn nodes(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    refuse_segment(&q)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Coordinates).await?;
    let Answer::Coordinates(rows) = answer else { return Err(unexpected()) };
    Ok(read_reply(&rows.iter().map(row).collect::<Vec<_>>(), index, meta))
}

/// `GET /v1/coordinate/node/:node`: that node's coordinates, 404 when it has none.
pub async fn node(State(api): State<Api>, Path(node): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    refuse_segment(&q)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::NodeCoordinate { node }).await?;
    let Answer::Coordinates(rows) = answer else { return Err(unexpected()) };
    if rows.is_empty() {
        return Ok(read_not_found(index, meta));
    }
    Ok(read_reply(&rows.iter().map(row).collect::<Vec<_>>(), index, meta))
}

/// `PUT /v1/coordinate/update`: stores one node's coordinate (`node:write` on it). A node not in the catalog is
/// accepted and dropped, as Consul's batch does.
pub async fn update(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let update = parse_update(&body).map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
    // Consul's own texts for a coordinate it will not take (500s there: its RPC endpoint's errors).
    if !update.coord.is_valid() {
        return Err(ApiError::internal("invalid coordinate"));
    }
    if let Err(why) = roster_kv::check_coordinate_update(&update) {
        return Err(ApiError::internal(format!("rejected bad coordinate: {why}")));
    }
    match write(&api, Command::CoordinateBatchUpdate { updates: vec![update] }).await? {
        CommandResult::Rejected(why) => Err(ApiError::internal(why)),
        _ => Ok(empty_ok()),
    }
}

/// Network segments are Consul Enterprise; refusing the parameter beats answering for the default one.
fn refuse_segment(q: &Query) -> Result<(), ApiError> {
    match q.get("segment") {
        Some(segment) if !segment.is_empty() => {
            Err(ApiError::bad_request(format!("network segments are not supported (segment {segment:?})")))
        }
        _ => Ok(()),
    }
}

fn parse_update(body: &[u8]) -> Result<NodeCoordinate, String> {
    let map = parse_object(body)?;
    let obj = Obj(&map);
    let node = obj.str(&["Node"])?;
    if node.is_empty() {
        return Err("missing node name".into());
    }
    let segment = match obj.get(&["Segment"]) {
        None => String::new(),
        Some(_) => obj.str(&["Segment"])?,
    };
    let coord = obj.obj(&["Coord"])?.ok_or("missing coordinate (Coord)")?;
    let number = |name: &str| match coord.get(&[name]) {
        None => Ok(0.0),
        Some(v) => v.as_f64().ok_or(format!("Coord.{name}: expected a number")),
    };
    let vec = match coord.get(&["Vec"]) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| "Coord.Vec: expected numbers".to_owned()))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("Coord.Vec: expected a list of numbers".into()),
    };
    let coord =
        Coordinate { vec, error: number("Error")?, adjustment: number("Adjustment")?, height: number("Height")? };
    Ok(NodeCoordinate { node, segment, coord })
}

/// The node `?near` names: `_agent` is this agent's node; `None` when the parameter is absent or empty.
pub(crate) fn near_node(api: &Api, q: &Query) -> Option<String> {
    match q.get("near") {
        None | Some("") => None,
        Some("_agent") => Some(api.info.node_name.clone()),
        Some(node) => Some(node.to_owned()),
    }
}

/// Sorts `items` nearest first from `near`, as Consul does: nodes without a coordinate last, and nothing moves
/// when `near` itself has none yet. A `near` that names no node of the catalog is a 400 (Consul answers such a
/// typo unsorted, which looks like a sorted answer). The reads use the request's consistency, without blocking.
pub(crate) async fn sort_near<T>(
    api: &Api,
    opts: &ReadOpts,
    near: Option<String>,
    items: &mut [T],
    node_of: impl Fn(&T) -> &str,
) -> Result<(), ApiError> {
    let Some(near) = near else { return Ok(()) };
    // Boxed: `?near` is rare, and inline its reads would sit in the future of every read that may sort, each parked
    // watcher's among them.
    Box::pin(sort_by_distance_from(api, opts, near, items, node_of)).await
}

/// `sort_near`'s work once `?near` names a node: check the node exists, then sort by its coordinates.
async fn sort_by_distance_from<T>(
    api: &Api,
    opts: &ReadOpts,
    near: String,
    items: &mut [T],
    node_of: impl Fn(&T) -> &str,
) -> Result<(), ApiError> {
    let now = ReadOpts { consistency: opts.consistency, min_index: 0, wait: Duration::ZERO };
    let (answer, _, _) = read(api, &now, &StateQuery::NodeServices { name: near.clone() }).await?;
    let Answer::NodeServices { node, .. } = answer else { return Err(unexpected()) };
    if node.is_none() {
        return Err(ApiError::bad_request(format!("Unknown ?near node {near:?}: no such node in the catalog")));
    }
    if items.len() < 2 {
        return Ok(());
    }
    let (answer, _, _) = read(api, &now, &StateQuery::Coordinates).await?;
    let Answer::Coordinates(rows) = answer else { return Err(unexpected()) };
    let by_node: std::collections::HashMap<&str, &Coordinate> =
        rows.iter().filter(|c| c.segment.is_empty()).map(|c| (c.node.as_str(), &c.coord)).collect();
    roster_kv::sort_by_distance(&near, items, node_of, |node| by_node.get(node).copied());
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The update body.
    use super::*;

    #[test]
    fn an_update_body_takes_consuls_fields() {
        let body =
            br#"{"Node":"n1","Coord":{"Vec":[0.1,0,0,0,0,0,0,0],"Error":0.5,"Adjustment":-0.01,"Height":0.0001}}"#;
        let update = parse_update(body).unwrap();
        assert_eq!((update.node.as_str(), update.segment.as_str()), ("n1", ""));
        assert_eq!((update.coord.vec[0], update.coord.error, update.coord.adjustment), (0.1, 0.5, -0.01));
        assert!(parse_update(br#"{"Node":"n1"}"#).unwrap_err().contains("Coord"));
        assert!(parse_update(br#"{"Coord":{}}"#).is_err());
        assert!(parse_update(br#"{"Node":"n1","Coord":{"Vec":["x"]}}"#).is_err());
    }
}
