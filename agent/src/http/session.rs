//! `/v1/session/*`: create, destroy, renew, and the blocking reads info, node and list.
//!
//! The session ID is a random UUID chosen here, before the command is proposed, so that applying it stays deterministic on every server.
//! Create's refusals come from the servers in Consul (its RPC errors), so they are 500s here too, with Consul's texts.
//! Renewal is not a write: it goes to the leader's timer (`Server::renew_session`), through a server for a client agent.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::IntoResponse;
use roster_kv::{Answer, Command, CommandResult, Query as StateQuery, ServiceCheckRef, Session, SessionBehavior};
use serde_json::{Value, json};

use super::input::{Obj, parse_object};
use super::output;
use super::query::Query;
use super::reply::{ApiError, ApiResult, bool_reply, read_reply};
use super::{Api, read, unexpected, write};
use crate::config::duration::duration_from_json;

/// Consul's default lock-delay.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
/// A lock-delay below this many nanoseconds is a number of seconds, as Consul reads it (`lockDelayMinThreshold`).
const LOCK_DELAY_SECONDS_BELOW: u64 = 1000;

pub async fn create(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let map = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        parse_object(&body).map_err(ApiError::decode)?
    };
    let mut session = session_from(&api, Obj(&map))?;
    session.id = uuid::Uuid::new_v4().to_string();
    let id = session.id.clone();
    match write(&api, Command::SessionCreate(Box::new(session))).await? {
        CommandResult::Rejected(why) => Err(ApiError::internal(why)),
        _ => Ok(axum::Json(json!({ "ID": id })).into_response()),
    }
}

/// Reads a create body over Consul's defaults: this agent's node, `serfHealth`, 15 s lock-delay, release.
fn session_from(api: &Api, o: Obj<'_>) -> Result<Session, ApiError> {
    let decode = ApiError::decode;
    let node = match o.str(&["Node"]).map_err(decode)? {
        node if node.is_empty() => api.info.node_name.clone(),
        node => node,
    };
    // `Checks` is the pre-1.7 name of `NodeChecks`; with neither, the session hangs on the node's gossip health.
    let node_checks = match (o.get(&["NodeChecks"]), o.get(&["Checks"])) {
        (None, None) => vec!["serfHealth".to_owned()],
        (Some(_), _) => o.str_list(&["NodeChecks"]).map_err(decode)?,
        (None, Some(_)) => o.str_list(&["Checks"]).map_err(decode)?,
    };
    let mut service_checks = Vec::new();
    if let Some(Value::Array(items)) = o.get(&["ServiceChecks"]) {
        for item in items.iter().filter_map(Value::as_object).map(Obj) {
            let id = item.str(&["ID"]).map_err(decode)?;
            service_checks.push(ServiceCheckRef { id, namespace: item.str(&["Namespace"]).map_err(decode)? });
        }
    }
    let behavior = match o.str(&["Behavior"]).map_err(decode)?.as_str() {
        "" | "release" => SessionBehavior::Release,
        "delete" => SessionBehavior::Delete,
        other => return Err(ApiError::internal(format!("Invalid Behavior setting '{other}'"))),
    };
    let ttl = o.str(&["TTL"]).map_err(decode)?;
    validate_ttl(&ttl)?;
    Ok(Session {
        id: String::new(),
        name: o.str(&["Name"]).map_err(decode)?,
        node,
        node_checks,
        service_checks,
        lock_delay_ns: lock_delay(o)?,
        behavior,
        ttl,
        create_index: 0,
        modify_index: 0,
    })
}

/// `LockDelay`: a Go duration or nanoseconds, where a value under 1000 means seconds.
fn lock_delay(o: Obj<'_>) -> Result<u64, ApiError> {
    let Some(value) = o.get(&["LockDelay"]) else { return Ok(DEFAULT_LOCK_DELAY.as_nanos() as u64) };
    let nanos = duration_from_json(value).map_err(|e| ApiError::decode(format!("LockDelay: {e}")))?.as_nanos();
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    Ok(if nanos < LOCK_DELAY_SECONDS_BELOW { nanos * 1_000_000_000 } else { nanos })
}

/// A TTL is empty, zero, or 10 s to 24 h, with Consul's texts (its server's, hence 500).
/// The rule and the parser are `roster_kv::session_ttl`, the ones apply and the leader's timer use, so the edge refuses exactly
/// what they would: this agent's config parser trims whitespace, and a TTL it accepted could be one the timer cannot read.
fn validate_ttl(ttl: &str) -> Result<(), ApiError> {
    roster_kv::session_ttl(ttl).map(|_| ()).map_err(ApiError::internal)
}

pub async fn destroy(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    match write(&api, Command::SessionDestroy { id, now_ms: crate::clock::unix_ms() }).await? {
        CommandResult::Rejected(why) => Err(ApiError::internal(why)),
        _ => Ok(bool_reply(true)),
    }
}

pub async fn renew(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    Query::parse(uri.query()).check_dc(&api)?;
    let renewed = api.backend.renew_session_as(&super::caller::secret(), &id).await?;
    match renewed {
        Some(session) => Ok(axum::Json(json!([output::session(&session)])).into_response()),
        None => Err(ApiError::not_found(format!("Session id '{id}' not found"))),
    }
}

pub async fn info(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    sessions(&api, &uri, StateQuery::SessionInfo { id }).await
}

pub async fn node(State(api): State<Api>, Path(node): Path<String>, uri: Uri) -> ApiResult {
    sessions(&api, &uri, StateQuery::SessionNode { node }).await
}

pub async fn list(State(api): State<Api>, uri: Uri) -> ApiResult {
    sessions(&api, &uri, StateQuery::SessionList).await
}

/// A blocking read answering a list of sessions (`[]` when none).
async fn sessions(api: &Api, uri: &Uri, query: StateQuery) -> ApiResult {
    let opts = Query::parse(uri.query()).read_opts(api)?;
    let (answer, index, meta) = read(api, &opts, &query).await?;
    let Answer::Sessions(sessions) = answer else { return Err(unexpected()) };
    Ok(read_reply(&Value::Array(sessions.iter().map(output::session).collect()), index, meta))
}
