//! `/v1/status/leader` and `/v1/status/peers`: the Raft leader's and voters' RPC addresses.

use axum::extract::State;

use super::Api;
use super::reply::{ApiResult, local_reply};

pub async fn leader(State(api): State<Api>) -> ApiResult {
    // Consul answers "" when there is no leader, not an error.
    let leader = api.server.leader_addr().map(|a| a.to_string()).unwrap_or_default();
    local_reply(&api, &leader).await
}

pub async fn peers(State(api): State<Api>) -> ApiResult {
    let peers: Vec<String> = api.server.peers().into_iter().map(|a| a.to_string()).collect();
    local_reply(&api, &peers).await
}
