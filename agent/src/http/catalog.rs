//! `/v1/catalog/*`: datacenters, nodes, services, a service's instances, a node's services, and direct catalog register/deregister.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use roster_kv::{Answer, Command, CommandResult, Node, Query as StateQuery, Registration};
use serde_json::{Value, json};

use super::filter::{Filter, keep, schema};
use super::input::{Obj, parse_object};
use super::query::Query;
use super::reply::{ApiError, ApiResult, bool_reply, local_reply, read_reply};
use super::{Api, cache, definition, encoded, output, read, unexpected, write};

mod services_filtered;

pub async fn datacenters(State(api): State<Api>, uri: Uri) -> ApiResult {
    let reply = local_reply(&api, &json!([api.info.datacenter])).await?;
    // The agent knows its one datacenter itself: a `?cached` read is always served without asking a server.
    let cached = Query::parse(uri.query()).flag("cached");
    Ok(if cached { cache::Status::Hit { age_secs: 0 }.mark(reply) } else { reply })
}

pub async fn nodes(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let filter = q.filter(&schema::NODE)?;
    let (answer, index, meta) = read(&api, &opts, &q.with_node_meta(StateQuery::Nodes)).await?;
    let Answer::Nodes(mut nodes) = answer else { return Err(unexpected()) };
    super::coordinate::sort_near(&api, &opts, super::coordinate::near_node(&api, &q), &mut nodes, |n| &n.node).await?;
    Ok(read_reply(&kept(filter.as_ref(), nodes.iter().map(output::node)), index, meta))
}

pub async fn services(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    if let Some(filter) = q.filter(&schema::CATALOG_SERVICE)? {
        return services_filtered::reply(&api, &opts, &q, &filter).await;
    }
    let (answer, index, meta, cached) = cache::read(&api, &opts, &q, &q.with_node_meta(StateQuery::Services)).await?;
    let Answer::ServiceTags(names) = answer else { return Err(unexpected()) };
    Ok(cached.mark(read_reply(&names, index, meta)))
}

pub async fn service(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let filter = q.filter(&schema::CATALOG_SERVICE)?;
    super::central_config::refuse_blocking_merge(&q)?;
    let query = q.with_node_meta(StateQuery::ServiceNodes { name, tags: q.all("tag") });
    let slot = encoded::Slot::new(&api, uri.path(), uri.query(), &q, &opts);
    let compute = std::pin::pin!(async {
        let (answer, index, meta, cached) = cache::read(&api, &opts, &q, &query).await?;
        if let Some(reply) = slot.reuse(&api, index, meta) {
            return Ok(reply);
        }
        let Answer::ServiceNodes(mut instances) = answer else { return Err(unexpected()) };
        let near = super::coordinate::near_node(&api, &q);
        super::coordinate::sort_near(&api, &opts, near, &mut instances, |(n, _)| &n.node).await?;
        super::central_config::merge_central_config(&api, &q, instances.iter_mut().map(|(_, svc)| svc).collect())
            .await?;
        if filter.is_none() {
            let body: Vec<output::CatalogServiceOut> =
                instances.iter().map(|(n, svc)| output::CatalogServiceOut::new(n, svc)).collect();
            return Ok(cached.mark(read_reply(&body, index, meta)));
        }
        let body = kept(filter.as_ref(), instances.iter().map(|(n, svc)| output::catalog_service(n, svc)));
        Ok(cached.mark(read_reply(&body, index, meta)))
    });
    encoded::read(&api, &slot, &opts, compute).await
}

pub async fn node(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    // Consul filters the node's services here, not the node.
    let filter = q.filter(&schema::NODE_SERVICE)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::NodeServices { name }).await?;
    let Answer::NodeServices { node, services } = answer else { return Err(unexpected()) };
    let body = match node {
        None => Value::Null,
        Some(n) => {
            let services: BTreeMap<&str, Value> = services
                .iter()
                .map(|svc| (svc.id.as_str(), output::node_service(svc)))
                .filter(|(_, body)| keep(filter.as_ref(), body))
                .collect();
            json!({"Node": output::node(&n), "Services": services})
        }
    };
    Ok(read_reply(&body, index, meta))
}

pub async fn node_services(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let filter = q.filter(&schema::NODE_SERVICE)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::NodeServices { name }).await?;
    let Answer::NodeServices { node, services } = answer else { return Err(unexpected()) };
    let body = match node {
        None => json!({"Node": null, "Services": []}),
        Some(n) => {
            let services = kept(filter.as_ref(), services.iter().map(output::node_service));
            json!({"Node": output::node(&n), "Services": services})
        }
    };
    Ok(read_reply(&body, index, meta))
}

/// The rendered elements the filter keeps, as a JSON array.
fn kept(filter: Option<&Filter>, items: impl Iterator<Item = Value>) -> Value {
    Value::Array(items.filter(|item| keep(filter, item)).collect())
}

pub async fn register(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let map = parse_object(&body).map_err(ApiError::decode)?;
    let reg = registration(&api, Obj(&map)).map_err(ApiError::bad_request)?;
    match write(&api, Command::Register(Box::new(reg))).await? {
        CommandResult::Bool(b) => Ok(bool_reply(b)),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}

/// Parses a `catalog/register` body: the node fields at top level, plus optional `Service`, `Check` and `Checks`.
fn registration(api: &Api, o: Obj<'_>) -> Result<Registration, String> {
    let dc = o.str(&["Datacenter"])?;
    if !dc.is_empty() && dc != api.info.datacenter {
        return Err(format!("No path to datacenter {dc:?}"));
    }
    let node = Node {
        id: o.str(&["ID"])?,
        node: o.str(&["Node"])?,
        address: o.str(&["Address"])?,
        datacenter: api.info.datacenter.clone(),
        tagged_addresses: o.str_map(&["TaggedAddresses"])?,
        meta: o.str_map(&["NodeMeta"])?,
        create_index: 0,
        modify_index: 0,
    };
    let service = match o.obj(&["Service"])? {
        None => None,
        // Checks come separately in a catalog registration; any nested ones are not Consul's shape here.
        Some(svc) => Some(definition::service(svc, true)?.0),
    };
    let mut checks = Vec::new();
    let mut defs: Vec<Obj<'_>> = o.obj(&["Check"])?.into_iter().collect();
    if let Some(Value::Array(items)) = o.get(&["Checks"]) {
        defs.extend(items.iter().filter_map(Value::as_object).map(Obj));
    }
    for def in defs {
        // The catalog stores what it is told; check runners live on agents, so scripts are not this endpoint's concern.
        let mut check = definition::check(def, true).map_err(|e| format!("Invalid check: {e}"))?;
        if check.check_id.is_empty() {
            check.check_id = check.name.clone();
        }
        checks.push(check);
    }
    Ok(Registration { node, skip_node_update: o.bool(&["SkipNodeUpdate"])?, service, checks })
}

pub async fn deregister(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let map = parse_object(&body).map_err(ApiError::decode)?;
    let o = Obj(&map);
    let node = o.str(&["Node"]).map_err(ApiError::decode)?;
    if node.is_empty() {
        return Err(ApiError::bad_request("Must provide node"));
    }
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let service_id = non_empty(o.str(&["ServiceID"]).map_err(ApiError::decode)?);
    let check_id = non_empty(o.str(&["CheckID"]).map_err(ApiError::decode)?);
    match write(&api, Command::Deregister { node, service_id, check_id }).await? {
        CommandResult::Bool(b) => Ok(bool_reply(b)),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}
