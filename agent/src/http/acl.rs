//! `/v1/acl/*` and `/v1/agent/token/*`: bootstrap, tokens (`rules.rs`: policies, roles and templated policies; `auth.rs`:
//! auth methods, binding rules, login and logout), and the agent's own tokens, in Consul's shapes and status codes.
//!
//! Permission is the server's to decide: reads of the ACL tables need `acl:read`, writes `acl:write`, and the handlers
//! reach the state only through `read`/`write`, which carry the caller's token. With ACLs off every endpoint here answers
//! 401 "ACL support disabled", as Consul's do.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use roster_kv::{AclToken, Answer, Command, CommandResult, Query as StateQuery};
use serde_json::Value;

use super::caller;
use super::input::{Obj, parse_object};
use super::query::Query;
use super::reply::{ApiError, ApiResult, bool_reply, empty_ok, read_reply};
use super::{Api, read, unexpected, write};
use crate::acl::TokenKind;
use crate::clock::unix_ms;

mod auth;
mod json;
mod rules;

pub use auth::{
    login, logout, method_create, method_delete, method_list, method_read, method_update, rule_create, rule_delete,
    rule_list, rule_read, rule_update,
};

pub use rules::{
    policy_create, policy_delete, policy_list, policy_read, policy_read_by_name, policy_update, role_create,
    role_delete, role_list, role_read, role_read_by_name, role_update, templated_policy_list, templated_policy_preview,
    templated_policy_read,
};

/// The shortest and longest `ExpirationTTL` Consul accepts by default (`acl.token_min_expiration_ttl`, `..._max_...`).
const MIN_EXPIRATION_TTL: Duration = Duration::from_secs(60);
const MAX_EXPIRATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// IDs starting with this are Consul's built-ins; nobody may choose one.
const RESERVED_ID_PREFIX: &str = "00000000-0000-0000-0000-0000000000";

/// The name of the file whose index allows one more bootstrap.
const BOOTSTRAP_RESET_FILE: &str = "acl-bootstrap-reset";

fn enabled(api: &Api) -> Result<(), ApiError> {
    if api.acl.enabled() {
        Ok(())
    } else {
        Err(ApiError { status: StatusCode::UNAUTHORIZED, message: "ACL support disabled".into() })
    }
}

fn body_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    parse_object(body).map_err(ApiError::decode)
}

fn valid_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|u| u.hyphenated().to_string() == text.to_ascii_lowercase())
}

/// A caller-chosen AccessorID or SecretID: a UUID, not one of the reserved built-in IDs.
fn chosen_id(field: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Ok(uuid::Uuid::new_v4().to_string());
    }
    if !valid_uuid(&value) {
        return Err(ApiError::bad_request(format!("Invalid Token: {field} - not a valid UUID")));
    }
    if value.starts_with(RESERVED_ID_PREFIX) {
        return Err(ApiError::bad_request(format!(
            "Invalid Token: UUIDs with the prefix {RESERVED_ID_PREFIX:?} are reserved"
        )));
    }
    Ok(value)
}

/// Turns a rejected ACL write into Consul's status: a bootstrap refusal is a permission denial, the rest bad input.
fn rejected(why: String) -> ApiError {
    if why.starts_with("ACL bootstrap no longer allowed") {
        ApiError::forbidden(format!("Permission denied: {why}"))
    } else if why.starts_with("Invalid bootstrap reset index") {
        ApiError::internal(why)
    } else {
        ApiError::bad_request(why)
    }
}

async fn apply(api: &Api, cmd: Command) -> Result<(), ApiError> {
    match write(api, cmd).await? {
        CommandResult::Bool(_) => Ok(()),
        CommandResult::Rejected(why) => Err(rejected(why)),
    }
}

/// Every token, as the caller may see them (the server hides secrets from readers without `acl:write`).
async fn tokens(api: &Api, q: &Query) -> Result<(Vec<AclToken>, u64, roster_server::ReadMeta), ApiError> {
    let opts = q.read_opts(api)?;
    let (answer, index, meta) = read(api, &opts, &StateQuery::AclTokens).await?;
    let Answer::AclTokens(tokens) = answer else { return Err(unexpected()) };
    Ok((tokens, index, meta))
}

async fn names(api: &Api) -> Result<json::Names, ApiError> {
    let q = Query::parse(None);
    let (policies, _, _) = rules::policies(api, &q).await?;
    let (roles, _, _) = rules::roles(api, &q).await?;
    Ok(json::Names {
        policies: policies.into_iter().map(|p| (p.id, p.name)).collect(),
        roles: roles.into_iter().map(|r| (r.id, r.name)).collect(),
    })
}

/// A token read back after a write, with the indexes the write gave it.
async fn written_token(api: &Api, accessor_id: &str) -> ApiResult {
    let (tokens, index, meta) = tokens(api, &Query::parse(None)).await?;
    match tokens.iter().find(|t| t.accessor_id == accessor_id) {
        Some(token) => Ok(read_reply(&json::token(token), index, meta)),
        None => Err(ApiError::internal("the token was written but cannot be read back")),
    }
}

/// `PUT /v1/acl/bootstrap`: the first management token, once; again only with the index in the data dir's reset file.
pub async fn bootstrap(State(api): State<Api>, body: Bytes) -> ApiResult {
    enabled(&api)?;
    let map = body_object(&body)?;
    let secret = Obj(&map).str(&["BootstrapSecret"]).map_err(ApiError::decode)?;
    let reset_file = api.data_dir.as_ref().map(|dir| dir.join(BOOTSTRAP_RESET_FILE));
    let reset_index = reset_file.as_deref().map_or(0, read_reset_index);
    let mut token = AclToken {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: chosen_id("SecretID", secret)?,
        description: "Bootstrap Token (Global Management)".into(),
        create_time_ms: unix_ms(),
        ..AclToken::default()
    };
    token.policies = vec![roster_kv::AclLink {
        id: roster_kv::GLOBAL_MANAGEMENT_POLICY_ID.into(),
        name: roster_kv::GLOBAL_MANAGEMENT_POLICY_NAME.into(),
    }];
    token.hash = json::token_hash(&token);
    let (accessor_id, secret_id) = (token.accessor_id.clone(), token.secret_id.clone());
    // Bootstrapping is open to anyone until it is done, whatever token the request carries.
    match api.backend.write_as("", Command::AclBootstrap { token: Box::new(token), reset_index }).await? {
        CommandResult::Bool(_) => {}
        CommandResult::Rejected(why) => return Err(rejected(why)),
    }
    if reset_index > 0
        && let Some(path) = &reset_file
        && let Err(err) = std::fs::remove_file(path)
    {
        tracing::warn!(%err, path = %path.display(), "could not remove the ACL bootstrap reset file");
    }
    let (tokens, index, meta) = {
        let consistency = roster_server::Consistency::Default;
        let (answer, index, meta, _) =
            api.backend.query_as(&secret_id, consistency, 0, Duration::ZERO, &StateQuery::AclTokens).await?;
        let Answer::AclTokens(tokens) = answer else { return Err(unexpected()) };
        (tokens, index, meta)
    };
    let Some(token) = tokens.iter().find(|t| t.accessor_id == accessor_id) else {
        return Err(ApiError::internal("the bootstrap token was written but cannot be read back"));
    };
    let mut out = json::token(token);
    // Consul's legacy field, still read by older clients.
    out["ID"] = Value::String(secret_id);
    Ok(read_reply(&out, index, meta))
}

/// The reset index an operator wrote to the reset file: a decimal number at its start, 0 when there is none.
fn read_reset_index(path: &std::path::Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    let digits: String = text.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| {
        tracing::warn!(path = %path.display(), "failed to parse bootstrap reset index path");
        0
    })
}

/// The token a create or update body describes, over `base` (the existing token for an update).
async fn token_from_body(
    api: &Api,
    map: &serde_json::Map<String, Value>,
    base: AclToken,
) -> Result<AclToken, ApiError> {
    let body = Obj(map);
    if !body.str(&["AuthMethod"]).map_err(ApiError::decode)?.is_empty() {
        return Err(ApiError::bad_request("AuthMethod field is disallowed outside of login"));
    }
    let names = names(api).await?;
    let local = base.local || body.bool(&["Local"]).map_err(ApiError::decode)?;
    let (service_identities, node_identities, templated_policies) = json::identities(&body, local)?;
    let mut token = AclToken {
        description: body.str(&["Description"]).map_err(ApiError::decode)?,
        policies: names.policy_links(&body)?,
        roles: names.role_links(&body)?,
        service_identities,
        node_identities,
        templated_policies,
        local,
        ..base
    };
    if token.description.len() > roster_kv::MAX_ACL_DESCRIPTION_LEN {
        return Err(ApiError::bad_request("Description is too long"));
    }
    token.hash = json::token_hash(&token);
    Ok(token)
}

/// The expiry a create body asks for: `ExpirationTime`, or `ExpirationTTL` from now, within Consul's default bounds.
fn expiration(body: &Obj<'_>, now_ms: u64) -> Result<Option<u64>, ApiError> {
    if let Some(Value::String(text)) = body.get(&["ExpirationTTL"])
        && text.trim_start().starts_with('-')
    {
        return Err(ApiError::bad_request(format!("Token Expiration TTL '{text}' should be > 0")));
    }
    let ttl = body.duration(&["ExpirationTTL"]).map_err(ApiError::decode)?;
    let at = match body.str(&["ExpirationTime"]).map_err(ApiError::decode)? {
        text if text.is_empty() => None,
        text => Some(json::parse_time(&text)?),
    };
    let at = match (ttl, at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("Token Expiration TTL and Expiration Time cannot both be set"));
        }
        // Consul reads a zero TTL as "no expiry".
        (Some(ttl), None) if ttl.is_zero() => return Ok(None),
        (Some(ttl), None) => now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        (None, Some(at)) => at,
        (None, None) => return Ok(None),
    };
    if at < now_ms {
        return Err(ApiError::bad_request("ExpirationTime cannot be before CreateTime"));
    }
    let ahead = Duration::from_millis(at - now_ms);
    // Consul's texts print Go durations ("24h0m0s").
    let go = super::input::format_go_duration;
    if ahead > MAX_EXPIRATION_TTL {
        return Err(ApiError::bad_request(format!(
            "ExpirationTime cannot be more than {} in the future (was {})",
            go(MAX_EXPIRATION_TTL),
            go(ahead)
        )));
    }
    if ahead < MIN_EXPIRATION_TTL {
        return Err(ApiError::bad_request(format!(
            "ExpirationTime cannot be less than {} in the future (was {})",
            go(MIN_EXPIRATION_TTL),
            go(ahead)
        )));
    }
    Ok(Some(at))
}

/// `PUT /v1/acl/token`.
pub async fn token_create(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let obj = Obj(&map);
    let now_ms = unix_ms();
    let accessor_id = chosen_id("AccessorID", obj.str(&["AccessorID"]).map_err(ApiError::decode)?)?;
    let secret_id = chosen_id("SecretID", obj.str(&["SecretID"]).map_err(ApiError::decode)?)?;
    let (existing, _, _) = tokens(&api, &Query::parse(None)).await?;
    if existing.iter().any(|t| t.accessor_id == accessor_id || t.secret_id == accessor_id) {
        return Err(ApiError::bad_request("Invalid Token: AccessorID is already in use"));
    }
    if existing.iter().any(|t| t.accessor_id == secret_id) {
        return Err(ApiError::bad_request("Invalid Token: SecretID is already in use"));
    }
    let base = AclToken {
        accessor_id: accessor_id.clone(),
        secret_id,
        create_time_ms: now_ms,
        expiration_time_ms: expiration(&obj, now_ms)?,
        ..AclToken::default()
    };
    let token = token_from_body(&api, &map, base).await?;
    apply(&api, Command::AclTokenSet(Box::new(token))).await?;
    written_token(&api, &accessor_id).await
}

/// `GET /v1/acl/token/:accessor_id`.
pub async fn token_read(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let q = Query::parse(uri.query());
    let (tokens, index, meta) = tokens(&api, &q).await?;
    let now_ms = unix_ms();
    match tokens.iter().find(|t| t.accessor_id == id && t.expiration_time_ms.is_none_or(|at| at > now_ms)) {
        Some(token) => Ok(read_reply(&json::token(token), index, meta)),
        None => Err(ApiError::not_found("Requested token does not exist: ACL not found")),
    }
}

/// `GET /v1/acl/token/self`: the caller's own token, which needs no permission.
pub async fn token_self(State(api): State<Api>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let secret = caller::secret();
    let query = StateQuery::AclResolve { secret_id: if secret.is_empty() { "anonymous".into() } else { secret } };
    let (answer, index, meta) = read(&api, &opts, &query).await?;
    match answer {
        Answer::AclResolved(Some(resolved)) => Ok(read_reply(&json::token(&resolved.token), index, meta)),
        Answer::AclResolved(None) => Err(ApiError::forbidden("ACL not found")),
        _ => Err(unexpected()),
    }
}

/// `PUT /v1/acl/token/:accessor_id`: replaces what the token grants; its secret, locality and expiry stay.
pub async fn token_update(State(api): State<Api>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let obj = Obj(&map);
    let in_body = obj.str(&["AccessorID"]).map_err(ApiError::decode)?;
    if !in_body.is_empty() && in_body != id {
        return Err(ApiError::bad_request("Token Accessor ID in URL and payload do not match"));
    }
    let (tokens, _, _) = tokens(&api, &Query::parse(None)).await?;
    let Some(existing) = tokens.into_iter().find(|t| t.accessor_id == id) else {
        return Err(ApiError::bad_request(format!("Cannot find token {id:?}")));
    };
    let secret = obj.str(&["SecretID"]).map_err(ApiError::decode)?;
    if !secret.is_empty() && secret != existing.secret_id {
        return Err(ApiError::bad_request("Changing a token's SecretID is not permitted"));
    }
    if obj.get(&["Local"]).is_some_and(|v| v.as_bool() != Some(existing.local)) {
        return Err(ApiError::bad_request(format!("Cannot toggle local mode of {id}")));
    }
    if obj.get(&["ExpirationTime", "ExpirationTTL"]).is_some() {
        let unchanged = existing.expiration_time_ms.map(json::time) == obj.get(&["ExpirationTime"]).cloned();
        if !unchanged {
            return Err(ApiError::bad_request(format!("Cannot change expiration time of {id}")));
        }
    }
    // A reader without acl:write sees "<hidden>"; the write itself needs acl:write, so the real secret is there.
    let token = token_from_body(&api, &map, existing).await?;
    apply(&api, Command::AclTokenSet(Box::new(token))).await?;
    written_token(&api, &id).await
}

/// `PUT /v1/acl/token/:accessor_id/clone`: a new token granting the same, with fresh IDs.
pub async fn token_clone(State(api): State<Api>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let description = Obj(&map).str(&["Description"]).map_err(ApiError::decode)?;
    let (tokens, _, _) = tokens(&api, &Query::parse(None)).await?;
    let now_ms = unix_ms();
    let Some(source) =
        tokens.into_iter().find(|t| t.accessor_id == id && t.expiration_time_ms.is_none_or(|at| at > now_ms))
    else {
        return Err(ApiError::forbidden("ACL not found"));
    };
    if !source.auth_method.is_empty() {
        return Err(ApiError::bad_request("Cannot clone a token created from an auth method"));
    }
    let mut clone = AclToken {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: uuid::Uuid::new_v4().to_string(),
        description: if description.is_empty() { source.description.clone() } else { description },
        create_time_ms: now_ms,
        create_index: 0,
        modify_index: 0,
        ..source
    };
    clone.hash = json::token_hash(&clone);
    let accessor_id = clone.accessor_id.clone();
    apply(&api, Command::AclTokenSet(Box::new(clone))).await?;
    written_token(&api, &accessor_id).await
}

/// `DELETE /v1/acl/token/:accessor_id`: `true`, also for a token that does not exist.
pub async fn token_delete(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let own = caller::secret();
    if !own.is_empty() {
        let (tokens, _, _) = tokens(&api, &Query::parse(None)).await?;
        if tokens.iter().any(|t| t.accessor_id == id && roster_kv::secret_matches(&t.secret_id, &own)) {
            return Err(ApiError::bad_request("Deletion of the request's authorization token is not permitted"));
        }
    }
    apply(&api, Command::AclTokenDelete { accessor_id: id }).await?;
    Ok(bool_reply(true))
}

/// `GET /v1/acl/tokens` with Consul's `policy`, `role`, `servicename` and `authmethod` filters; expired tokens are left out.
pub async fn token_list(State(api): State<Api>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let q = Query::parse(uri.query());
    let (policy, role) = (q.get("policy"), q.get("role"));
    let (service, method) = (q.get("servicename"), q.get("authmethod"));
    let (tokens, index, meta) = tokens(&api, &q).await?;
    let now_ms = unix_ms();
    let list: Vec<Value> = tokens
        .iter()
        .filter(|t| t.expiration_time_ms.is_none_or(|at| at > now_ms))
        .filter(|t| policy.is_none_or(|p| t.policies.iter().any(|l| l.id == p)))
        .filter(|t| role.is_none_or(|r| t.roles.iter().any(|l| l.id == r)))
        .filter(|t| service.is_none_or(|s| t.service_identities.iter().any(|i| i.service_name == s)))
        .filter(|t| method.is_none_or(|m| t.auth_method == m))
        .map(json::token)
        .collect();
    Ok(read_reply(&list, index, meta))
}

/// `PUT /v1/agent/token/:kind`: sets one of the agent's tokens (`{"Token": "..."}`); needs `agent:write` on this agent.
pub async fn agent_token(State(api): State<Api>, Path(kind): Path<String>, body: Bytes) -> ApiResult {
    enabled(&api)?;
    let access = caller::access(&api).await?;
    let node = api.info.node_name.as_str();
    access.require(
        access.authorizer().agent_write(node),
        roster_acl::Resource::Agent,
        roster_acl::AccessLevel::Write,
        Some(node),
    )?;
    let Some(kind) = TokenKind::parse(&kind) else {
        return Err(ApiError::not_found(format!("Token {kind:?} is unknown")));
    };
    let map = body_object(&body)?;
    let secret = Obj(&map).str(&["Token"]).map_err(ApiError::decode)?;
    if secret.len() > roster_kv::MAX_ACL_NAME_LEN {
        return Err(ApiError::bad_request("Token is too long"));
    }
    api.acl.set_token(kind, &secret).map_err(|err| ApiError::internal(format!("persisting the token: {err}")))?;
    if let crate::backend::Backend::Remote(remote) = &api.backend {
        remote.set_token(&api.acl.agent_secret());
    }
    tracing::info!(?kind, "agent ACL token updated");
    Ok(empty_ok().into_response())
}
