//! `/v1/operator/usage`: how many nodes, services and instances the datacenter's catalog holds, in Consul's shape.
//!
//! The counts are one `Query::Usage` read, so the server that serves it checks `operator:read` and the read
//! honours `?stale`/`?consistent` and blocks on `?index` like every catalog read.

use axum::extract::State;
use axum::http::Uri;
use roster_kv::{Answer, Query as StateQuery, Usage};
use roster_server::Consistency;
use serde_json::{Value, json};

use super::query::Query;
use super::reply::{ApiResult, read_reply};
use super::{Api, read, unexpected};

/// The service kinds Consul always lists under `ConnectServiceInstances`, 0 when none is registered.
const CONNECT_KINDS: [&str; 5] =
    ["connect-native", "connect-proxy", "ingress-gateway", "mesh-gateway", "terminating-gateway"];

/// `GET /v1/operator/usage` (`?global` is accepted: this datacenter is the only one roster knows).
pub async fn usage(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Usage).await?;
    let Answer::Usage(usage) = answer else { return Err(unexpected()) };
    let consistency = match opts.consistency {
        Consistency::Default => "leader",
        Consistency::Consistent => "consistent",
        Consistency::Stale => "stale",
    };
    let body = json!({
        "Usage": { api.info.datacenter.as_str(): usage_json(&usage) },
        "Index": index,
        "LastContact": meta.last_contact_ms,
        "KnownLeader": meta.known_leader,
        "ConsistencyLevel": consistency,
        "NotModified": false,
        "Backend": 0,
        "ResultsFilteredByACLs": false,
    });
    Ok(read_reply(&body, index, meta))
}

/// One datacenter's `ServiceUsage`.
fn usage_json(usage: &Usage) -> Value {
    let mut connect: serde_json::Map<String, Value> =
        CONNECT_KINDS.iter().map(|kind| ((*kind).to_owned(), json!(0))).collect();
    for (kind, n_instances) in &usage.kind_instances {
        connect.insert(kind.clone(), json!(n_instances));
    }
    json!({
        "Nodes": usage.nodes,
        "Services": usage.services,
        "ServiceInstances": usage.service_instances,
        "ConnectServiceInstances": connect,
        "BillableServiceInstances": usage.billable_instances,
    })
}
