//! `/v1/status/leader` and `/v1/status/peers`: the Raft leader's and voters' RPC addresses, as this server (or the server a client agent uses) knows them.

use axum::extract::State;

use super::Api;
use super::reply::{ApiResult, local_reply};

pub async fn leader(State(api): State<Api>) -> ApiResult {
    let status = api.backend.status().await?;
    // Consul answers "" when there is no leader, not an error.
    let leader = status.leader.map(|a| a.to_string()).unwrap_or_default();
    local_reply(&api, &leader).await
}

pub async fn peers(State(api): State<Api>) -> ApiResult {
    let status = api.backend.status().await?;
    let peers: Vec<String> = status.servers.iter().filter(|s| s.voter).map(|s| s.addr.to_string()).collect();
    local_reply(&api, &peers).await
}
