//! `/v1/operator/autopilot/*`: the replicated autopilot configuration (GET, and PUT with `?cas`), and the leader's
//! server health (`health`, 429 when the cluster is unhealthy, as Consul) and state (`state`), in Consul's shapes.
//!
//! The configuration is a `Query::AutopilotConfig` read and a `Command::AutopilotSet` write, so the server that
//! serves them checks `operator:read`/`operator:write`; health and state are an `OperatorRequest` answered by the
//! leader from its last autopilot pass.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use chrono::{DateTime, SecondsFormat, Utc};
use roster_kv::{Answer, AutopilotConfig, Command, CommandResult, Query as StateQuery};
use roster_server::{AutopilotHealth, OperatorReply, OperatorRequest, ServerHealth};
use serde_json::{Map, Value, json};

use super::input::{Obj, format_go_duration, parse_object};
use super::query::Query;
use super::reply::{ApiError, ApiResult, bool_reply, read_reply};
use super::{Api, caller, read, unexpected, write};

/// `GET /v1/operator/autopilot/configuration`.
pub async fn get_configuration(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let (answer, index, meta) = read(&api, &opts, &StateQuery::AutopilotConfig).await?;
    let Answer::Autopilot(config) = answer else { return Err(unexpected()) };
    // A leader stores one within a reconcile pass of taking office; until then the defaults are what it acts on.
    Ok(read_reply(&config_json(&config.unwrap_or_default()), index, meta))
}

/// `PUT /v1/operator/autopilot/configuration` (`?cas=<ModifyIndex>`: answers `false` when another write came first).
/// Fields left out take Consul's defaults, as its API client's `NewAutopilotConfiguration` does.
pub async fn put_configuration(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let cas = match q.get("cas") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|e| ApiError::bad_request(format!("Error parsing cas value: {e}")))?),
    };
    let map = parse_object(&body).map_err(|e| ApiError::bad_request(format!("Error parsing autopilot config: {e}")))?;
    let config =
        parse_config(Obj(&map)).map_err(|e| ApiError::bad_request(format!("Error parsing autopilot config: {e}")))?;
    match write(&api, Command::AutopilotSet { config, cas }).await? {
        CommandResult::Bool(done) => Ok(bool_reply(cas.is_none() || done)),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}

/// `GET /v1/operator/autopilot/health`: 429 with the same body when any server is unhealthy.
pub async fn health(State(api): State<Api>, uri: Uri) -> ApiResult {
    let health = leader_health(&api, &uri).await?;
    let status = if health.healthy { StatusCode::OK } else { StatusCode::TOO_MANY_REQUESTS };
    Ok((status, axum::Json(health_json(&health))).into_response())
}

/// `GET /v1/operator/autopilot/state`.
pub async fn state(State(api): State<Api>, uri: Uri) -> ApiResult {
    let health = leader_health(&api, &uri).await?;
    Ok(axum::Json(state_json(&health)).into_response())
}

async fn leader_health(api: &Api, uri: &Uri) -> Result<AutopilotHealth, ApiError> {
    Query::parse(uri.query()).check_dc(api)?;
    match api.backend.operator_as(&caller::secret(), &OperatorRequest::AutopilotHealth).await? {
        OperatorReply::Health(health) => Ok(*health),
        _ => Err(unexpected()),
    }
}

/// The body of a PUT, Consul's field names (any case, `_` ignored); enterprise fields refused unless at their default.
pub(crate) fn parse_config(obj: Obj<'_>) -> Result<AutopilotConfig, String> {
    let mut config = AutopilotConfig::default();
    if obj.get(&["CleanupDeadServers"]).is_some() {
        config.cleanup_dead_servers = obj.bool(&["CleanupDeadServers"])?;
    }
    if let Some(d) = obj.duration(&["LastContactThreshold"])? {
        config.last_contact_threshold_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }
    if let Some(n) = obj.int(&["MaxTrailingLogs"], 0, i64::MAX)? {
        config.max_trailing_logs = n.unsigned_abs();
    }
    if let Some(n) = obj.int(&["MinQuorum"], 0, i64::from(u32::MAX))? {
        config.min_quorum = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(d) = obj.duration(&["ServerStabilizationTime"])? {
        config.server_stabilization_time_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }
    for tag in ["RedundancyZoneTag", "UpgradeVersionTag"] {
        if !obj.str(&[tag])?.is_empty() {
            return Err(format!("{tag}: a Consul Enterprise feature roster does not implement"));
        }
    }
    if obj.bool(&["DisableUpgradeMigration"])? {
        return Err("DisableUpgradeMigration: a Consul Enterprise feature roster does not implement".into());
    }
    Ok(config)
}

/// Consul's `AutopilotConfiguration` JSON.
pub(crate) fn config_json(config: &AutopilotConfig) -> Value {
    json!({
        "CleanupDeadServers": config.cleanup_dead_servers,
        "LastContactThreshold": millis(config.last_contact_threshold_ms),
        "MaxTrailingLogs": config.max_trailing_logs,
        "MinQuorum": config.min_quorum,
        "ServerStabilizationTime": millis(config.server_stabilization_time_ms),
        "RedundancyZoneTag": "",
        "DisableUpgradeMigration": false,
        "UpgradeVersionTag": "",
        "CreateIndex": config.create_index,
        "ModifyIndex": config.modify_index,
    })
}

fn millis(ms: u64) -> String {
    format_go_duration(std::time::Duration::from_millis(ms))
}

/// Unix milliseconds as Consul shows `StableSince`: RFC 3339 in UTC, to the second.
fn stable_since(ms: u64) -> String {
    let at = i64::try_from(ms / 1000 * 1000).ok().and_then(DateTime::<Utc>::from_timestamp_millis).unwrap_or_default();
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `LastContact` as a Go duration; a server the leader never heard from shows `-1ns`, since `0s` would claim contact.
fn last_contact(server: &ServerHealth) -> String {
    server.last_contact_ms.map_or_else(|| "-1ns".to_owned(), millis)
}

/// Consul's `OperatorHealthReply`.
pub(crate) fn health_json(health: &AutopilotHealth) -> Value {
    let servers: Vec<Value> = health
        .servers
        .iter()
        .map(|s| {
            json!({
                "ID": s.id.to_string(),
                "Name": s.name,
                "Address": s.address.to_string(),
                "SerfStatus": s.serf_status.as_str(),
                "Version": s.version,
                "Leader": s.leader,
                "LastContact": last_contact(s),
                "LastTerm": s.last_term,
                "LastIndex": s.last_index,
                "Healthy": s.healthy,
                "Voter": s.voter,
                "StableSince": stable_since(s.stable_since_ms),
            })
        })
        .collect();
    json!({"Healthy": health.healthy, "FailureTolerance": health.failure_tolerance, "Servers": servers})
}

/// Consul's `AutopilotState`, as far as it applies (no redundancy zones, read replicas or upgrades).
pub(crate) fn state_json(health: &AutopilotHealth) -> Value {
    let mut servers = Map::new();
    for s in &health.servers {
        let status = if s.leader {
            "leader"
        } else if s.voter {
            "voter"
        } else {
            "non-voter"
        };
        servers.insert(
            s.id.to_string(),
            json!({
                "ID": s.id.to_string(),
                "Name": s.name,
                "Address": s.address.to_string(),
                "NodeStatus": s.serf_status.as_str(),
                "Version": s.version,
                "LastContact": last_contact(s),
                "LastTerm": s.last_term,
                "LastIndex": s.last_index,
                "Healthy": s.healthy,
                "StableSince": stable_since(s.stable_since_ms),
                "Status": status,
                "Meta": {},
                "NodeType": "voter",
            }),
        );
    }
    let voters: Vec<String> = health.servers.iter().filter(|s| s.voter).map(|s| s.id.to_string()).collect();
    json!({
        "Healthy": health.healthy,
        "FailureTolerance": health.failure_tolerance,
        "OptimisticFailureTolerance": health.optimistic_failure_tolerance,
        "Servers": servers,
        "Leader": health.leader.to_string(),
        "Voters": voters,
    })
}

#[cfg(test)]
mod tests {
    //! Body parsing and the JSON shapes.
    use super::*;

    fn parse(body: &str) -> Result<AutopilotConfig, String> {
        let map = parse_object(body.as_bytes())?;
        parse_config(Obj(&map))
    }

    #[test]
    fn put_body_takes_consuls_fields_and_defaults_the_rest() {
        let config = parse(r#"{"CleanupDeadServers": false, "LastContactThreshold": "1s", "MinQuorum": 3}"#).unwrap();
        assert!(!config.cleanup_dead_servers);
        assert_eq!((config.last_contact_threshold_ms, config.min_quorum), (1000, 3));
        assert_eq!((config.max_trailing_logs, config.server_stabilization_time_ms), (250, 10_000));
        let config = parse(r#"{"ServerStabilizationTime": 3000000000, "RedundancyZoneTag": ""}"#).unwrap();
        assert_eq!(config.server_stabilization_time_ms, 3000);
        let err = parse(r#"{"RedundancyZoneTag": "zone"}"#).unwrap_err();
        assert!(err.starts_with("RedundancyZoneTag: a Consul Enterprise"), "{err}");
        assert!(parse(r#"{"DisableUpgradeMigration": true}"#).is_err());
        assert!(parse(r#"{"MinQuorum": -1}"#).is_err());
        assert!(parse(r#"{"LastContactThreshold": "soon"}"#).is_err());
    }

    #[test]
    fn configuration_json_is_consuls_shape() {
        let body = config_json(&AutopilotConfig { create_index: 4, modify_index: 9, ..AutopilotConfig::default() });
        assert_eq!(
            body,
            json!({"CleanupDeadServers": true, "LastContactThreshold": "200ms", "MaxTrailingLogs": 250, "MinQuorum": 0,
                   "ServerStabilizationTime": "10s", "RedundancyZoneTag": "", "DisableUpgradeMigration": false,
                   "UpgradeVersionTag": "", "CreateIndex": 4, "ModifyIndex": 9})
        );
        assert_eq!(stable_since(1_489_038_706_789), "2017-03-09T05:51:46Z");
    }
}
