//! The gossip pool over HTTP: `/v1/agent/members`, `/v1/agent/join/:addr`, `/v1/agent/leave`,
//! `/v1/agent/force-leave/:node`, and the Raft view `/v1/operator/raft/configuration`.

use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use roster_acl::{AccessLevel, Resource};

use super::agent::CONSUL_COMPAT_VERSION;
use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok, local_reply, read_reply};
use super::{Api, caller};
use crate::gossip::{Gossip, Member, Role};

/// Every member this agent's gossip knows, in Consul's `agent/members` shape, sorted by name.
///
/// `?wan=<anything non-empty>` asks for the WAN pool, as Consul reads it. Roster gossips only on the LAN, and in a
/// single datacenter Consul's WAN pool is exactly its servers, named `<node>.<dc>`: a server answers those (at their
/// gossip address: there is no separate WAN port), and a client agent, which is in no WAN pool, answers `null` as
/// Consul's does. `?segment=` other than empty or `_all` names a network segment (Enterprise), which roster has not.
pub async fn members(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let wan = q.get("wan").is_some_and(|v| !v.is_empty());
    match q.get("segment").unwrap_or_default() {
        "" | "_all" => {}
        _ if wan => return Err(ApiError::bad_request("Cannot provide a segment with wan=true")),
        other => return Err(ApiError::bad_request(format!("Network segments are not supported: {other:?}"))),
    }
    let mut members = gossip(&api)?.members();
    if wan {
        if !api.info.server {
            return local_reply(&api, &Value::Null).await;
        }
        members.retain(|m| m.meta.role == Role::Server);
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let access = caller::access(&api).await?;
    caller::keep_visible(&mut members, |m| access.authorizer().node_read(&m.name));
    let mut body: Vec<Value> = members.iter().map(member_json).collect();
    if wan {
        for (member, json) in members.iter().zip(&mut body) {
            json["Name"] = Value::String(format!("{}.{}", member.name, member.meta.datacenter));
        }
    }
    local_reply(&api, &body).await
}

/// Joins the pool through `addr`; 500 with the reason when it cannot be reached or refuses us.
pub async fn join(State(api): State<Api>, Path(addr): Path<String>, uri: Uri) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    caller::agent_write(&api).await?;
    gossip(&api)?.join(&[addr]).await.map_err(|err| ApiError::internal(err.to_string()))?;
    Ok(empty_ok())
}

/// Leaves the pool gracefully (a leader hands leadership over first), then shuts the agent down (the answer goes out first).
pub async fn leave(State(api): State<Api>, uri: Uri) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    caller::agent_write(&api).await?;
    if let Some(server) = api.backend.server() {
        crate::cluster::hand_over_leadership(server).await;
    }
    gossip(&api)?.leave().await.map_err(|err| ApiError::internal(err.to_string()))?;
    api.shutdown.cancel();
    Ok(empty_ok())
}

/// Marks a failed member as left (`?prune`: forgets it at once); the leader then deregisters it.
pub async fn force_leave(State(api): State<Api>, Path(node): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    caller::require(&api, Resource::Operator, AccessLevel::Write, None, |a| a.operator_write()).await?;
    let res = gossip(&api)?.force_leave(&node, q.flag("prune")).await;
    res.map_err(|err| match err {
        crate::gossip::GossipError::NoSuchMember(_) => {
            ApiError::not_found(format!("agent: No node found with name '{node}'"))
        }
        other => ApiError::internal(other.to_string()),
    })?;
    Ok(empty_ok())
}

/// The Raft configuration: every server with its node name (from gossip), ID, address, and which one leads.
pub async fn raft_configuration(State(api): State<Api>, uri: Uri) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    caller::require(&api, Resource::Operator, AccessLevel::Read, None, |a| a.operator_read()).await?;
    let status = api.backend.status().await?;
    let names = raft_node_names(&api);
    let servers: Vec<Value> = status
        .servers
        .iter()
        .map(|s| {
            json!({
                "ID": s.id.to_string(),
                "Node": names.get(&s.id).cloned().unwrap_or_default(),
                "Address": s.addr.to_string(),
                "Leader": status.leader == Some(s.addr),
                "Voter": s.voter,
                "ProtocolVersion": "3",
            })
        })
        .collect();
    let body = json!({"Servers": servers, "Index": status.applied_index});
    let meta = roster_server::ReadMeta { known_leader: status.leader.is_some(), last_contact_ms: 0, state_index: 0 };
    Ok(read_reply(&body, status.applied_index, meta))
}

/// The node name of each Raft server gossip knows, by Raft ID.
pub(super) fn raft_node_names(api: &Api) -> std::collections::BTreeMap<u64, String> {
    api.gossip
        .as_ref()
        .map(|g| g.members().into_iter().filter_map(|m| Some((m.meta.raft_id?, m.name))).collect())
        .unwrap_or_default()
}

fn gossip(api: &Api) -> Result<&Gossip, ApiError> {
    api.gossip.as_ref().ok_or_else(|| ApiError::internal("this agent runs without gossip (ports.serf_lan = -1)"))
}

/// One member as Consul's `agent/members` shows it.
pub fn member_json(m: &Member) -> Value {
    let meta = &m.meta;
    let mut tags = serde_json::Map::new();
    let mut tag = |k: &str, v: String| {
        tags.insert(k.to_owned(), Value::String(v));
    };
    tag("role", if meta.role == Role::Server { "consul" } else { "node" }.to_owned());
    tag("dc", meta.datacenter.clone());
    tag("segment", String::new());
    tag("build", format!("{CONSUL_COMPAT_VERSION}:{}", meta.build));
    tag("vsn", "2".to_owned());
    tag("vsn_min", "2".to_owned());
    tag("vsn_max", "3".to_owned());
    tag("id", meta.node_id.clone());
    if let Some(rpc) = meta.rpc_addr {
        tag("port", rpc.port().to_string());
        tag("raft_vsn", "3".to_owned());
    }
    if let Some(expect) = meta.bootstrap_expect {
        tag("expect", expect.to_string());
    }
    json!({
        "Name": m.name,
        "Addr": m.addr.ip().to_string(),
        "Port": m.addr.port(),
        "Tags": tags,
        "Status": m.status.serf_status(),
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}
