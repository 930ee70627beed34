//! `/v1/operator/usage`: how many nodes, services and instances the datacenter's catalog holds, in Consul's shape;
//! and the Raft operator tools `DELETE /v1/operator/raft/peer` and `POST /v1/operator/raft/transfer-leader`.
//!
//! The counts are one `Query::Usage` read, so the server that serves it checks `operator:read` and the read
//! honours `?stale`/`?consistent` and blocks on `?index` like every catalog read. The Raft tools are
//! `OperatorRequest`s: the server that receives one checks `operator:write` for the caller's token and the leader
//! carries it out, refusing an unknown server by name (Consul's 500 and text) with nothing changed.

use axum::extract::State;
use axum::http::Uri;
use axum::response::IntoResponse;
use roster_kv::{Answer, Query as StateQuery, Usage};
use roster_server::Consistency;
use serde_json::{Value, json};

use roster_server::{OperatorRequest, PeerSelector};

use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok, read_reply};
use super::{Api, caller, read, unexpected};

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

/// `DELETE /v1/operator/raft/peer?id=` or `?address=`: removes a server from the Raft configuration.
pub async fn raft_peer_delete(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let selector = peer_selector(&q)?;
    api.backend.operator_as(&caller::secret(), &OperatorRequest::RemovePeer(selector)).await?;
    Ok(empty_ok())
}

/// `POST /v1/operator/raft/transfer-leader` (`?id=`: the voter to hand leadership to; without it, any caught-up voter).
pub async fn transfer_leader(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let request = transfer_request(&q);
    api.backend.operator_as(&caller::secret(), &request).await?;
    Ok(axum::Json(json!({ "Success": true })).into_response())
}

/// The server `?id` or `?address` names; exactly one of them, as Consul asks.
fn peer_selector(q: &Query) -> Result<PeerSelector, ApiError> {
    match (q.get("id"), q.get("address")) {
        (Some(id), None) => Ok(PeerSelector::Id(id.to_owned())),
        (None, Some(address)) => Ok(PeerSelector::Address(address.to_owned())),
        (None, None) => Err(ApiError::bad_request(
            "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
        )),
        (Some(_), Some(_)) => Err(ApiError::bad_request("Must specify only one of ?id or ?address")),
    }
}

/// `?id` present (even empty, which no server has) names the target; absent lets the leader choose.
fn transfer_request(q: &Query) -> OperatorRequest {
    OperatorRequest::TransferLeader { id: q.get("id").map(str::to_owned) }
}

#[cfg(test)]
mod tests {
    //! Parameter parsing of the Raft operator endpoints.
    use super::*;

    #[test]
    fn remove_peer_takes_exactly_one_of_id_and_address() {
        let q = Query::parse(Some("id=123"));
        assert_eq!(peer_selector(&q).unwrap(), PeerSelector::Id("123".into()));
        let q = Query::parse(Some("address=127.0.0.1%3A8300"));
        assert_eq!(peer_selector(&q).unwrap(), PeerSelector::Address("127.0.0.1:8300".into()));
        let err = peer_selector(&Query::parse(None)).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with("Must specify either ?id"), "{}", err.message);
        let err = peer_selector(&Query::parse(Some("id=1&address=a"))).unwrap_err();
        assert_eq!(err.message, "Must specify only one of ?id or ?address");
    }

    #[test]
    fn transfer_leader_id_is_optional() {
        assert_eq!(transfer_request(&Query::parse(None)), OperatorRequest::TransferLeader { id: None });
        assert_eq!(
            transfer_request(&Query::parse(Some("id=42"))),
            OperatorRequest::TransferLeader { id: Some("42".into()) }
        );
    }
}
