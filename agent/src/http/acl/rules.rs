//! `/v1/acl/policy*`, `/v1/acl/role*` and `/v1/acl/templated-polic*`: what tokens link to.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::IntoResponse;
use roster_kv::{AclPolicy, AclRole, Answer, Command, Query as StateQuery};
use serde_json::{Value, json};

use super::super::input::Obj;
use super::super::query::Query;
use super::super::reply::{ApiError, ApiResult, bool_reply, read_reply};
use super::super::{Api, caller, read, unexpected};
use super::{apply, body_object, enabled, json, names};

/// The longest policy or role name Consul accepts.
const MAX_NAME_LEN: usize = 128;

/// Consul's rule for policy and role names: letters, digits, `-` and `_`, 1 to 128 of them.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every policy, as the caller may see them.
pub(super) async fn policies(api: &Api, q: &Query) -> Result<(Vec<AclPolicy>, u64, roster_server::ReadMeta), ApiError> {
    let opts = q.read_opts(api)?;
    let (answer, index, meta) = read(api, &opts, &StateQuery::AclPolicies).await?;
    let Answer::AclPolicies(policies) = answer else { return Err(unexpected()) };
    Ok((policies, index, meta))
}

/// Every role, as the caller may see them.
pub(super) async fn roles(api: &Api, q: &Query) -> Result<(Vec<AclRole>, u64, roster_server::ReadMeta), ApiError> {
    let opts = q.read_opts(api)?;
    let (answer, index, meta) = read(api, &opts, &StateQuery::AclRoles).await?;
    let Answer::AclRoles(roles) = answer else { return Err(unexpected()) };
    Ok((roles, index, meta))
}

fn policy_from_body(map: &serde_json::Map<String, Value>, base: AclPolicy) -> Result<AclPolicy, ApiError> {
    let body = Obj(map);
    let mut policy = AclPolicy {
        name: body.str(&["Name"]).map_err(ApiError::decode)?,
        description: body.str(&["Description"]).map_err(ApiError::decode)?,
        rules: body.str(&["Rules"]).map_err(ApiError::decode)?,
        datacenters: body.str_list(&["Datacenters"]).map_err(ApiError::decode)?,
        ..base
    };
    if !valid_name(&policy.name) {
        return Err(ApiError::bad_request(
            "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed",
        ));
    }
    if policy.rules.len() > roster_kv::MAX_ACL_RULES_LEN {
        return Err(ApiError::bad_request(format!("Rules are larger than {} bytes", roster_kv::MAX_ACL_RULES_LEN)));
    }
    // The parse error names the line and the resource; the state parses again at apply.
    roster_acl::Policy::parse(&policy.rules).map_err(|err| ApiError::bad_request(err.to_string()))?;
    policy.hash = roster_kv::policy_hash(&policy);
    Ok(policy)
}

async fn written_policy(api: &Api, id: &str) -> ApiResult {
    let (policies, index, meta) = policies(api, &Query::parse(None)).await?;
    match policies.iter().find(|p| p.id == id) {
        Some(policy) => Ok(read_reply(&json::policy(policy, true), index, meta)),
        None => Err(ApiError::internal("the policy was written but cannot be read back")),
    }
}

/// `PUT /v1/acl/policy`.
pub async fn policy_create(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    if !Obj(&map).str(&["ID"]).map_err(ApiError::decode)?.is_empty() {
        return Err(ApiError::bad_request("Cannot specify the ID when creating a new policy"));
    }
    let policy = policy_from_body(&map, AclPolicy { id: uuid::Uuid::new_v4().to_string(), ..AclPolicy::default() })?;
    let id = policy.id.clone();
    apply(&api, Command::AclPolicySet(Box::new(policy))).await?;
    written_policy(&api, &id).await
}

async fn one_policy(api: &Api, uri: &Uri, found: impl Fn(&AclPolicy) -> bool) -> ApiResult {
    enabled(api)?;
    let (policies, index, meta) = policies(api, &Query::parse(uri.query())).await?;
    match policies.iter().find(|p| found(p)) {
        Some(policy) => Ok(read_reply(&json::policy(policy, true), index, meta)),
        None => Err(ApiError::not_found("Requested policy does not exist: ACL not found")),
    }
}

/// `GET /v1/acl/policy/:id`.
pub async fn policy_read(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    one_policy(&api, &uri, |p| p.id == id).await
}

/// `GET /v1/acl/policy/name/:name`.
pub async fn policy_read_by_name(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    one_policy(&api, &uri, |p| p.name == name).await
}

/// `PUT /v1/acl/policy/:id`.
pub async fn policy_update(State(api): State<Api>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let in_body = Obj(&map).str(&["ID"]).map_err(ApiError::decode)?;
    if !in_body.is_empty() && in_body != id {
        return Err(ApiError::bad_request("Policy ID in URL and payload do not match"));
    }
    let (policies, _, _) = policies(&api, &Query::parse(None)).await?;
    let Some(existing) = policies.into_iter().find(|p| p.id == id) else {
        return Err(ApiError::bad_request(format!("cannot find policy {id}")));
    };
    let policy = policy_from_body(&map, existing)?;
    apply(&api, Command::AclPolicySet(Box::new(policy))).await?;
    written_policy(&api, &id).await
}

/// `DELETE /v1/acl/policy/:id`.
pub async fn policy_delete(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    apply(&api, Command::AclPolicyDelete { id }).await?;
    Ok(bool_reply(true))
}

/// `GET /v1/acl/policies`: every policy without its rules.
pub async fn policy_list(State(api): State<Api>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let (policies, index, meta) = policies(&api, &Query::parse(uri.query())).await?;
    let list: Vec<Value> = policies.iter().map(|p| json::policy(p, false)).collect();
    Ok(read_reply(&list, index, meta))
}

async fn role_from_body(api: &Api, map: &serde_json::Map<String, Value>, base: AclRole) -> Result<AclRole, ApiError> {
    let body = Obj(map);
    let names = names(api).await?;
    let (service_identities, node_identities, templated_policies) = json::identities(&body, false)?;
    let mut role = AclRole {
        name: body.str(&["Name"]).map_err(ApiError::decode)?,
        description: body.str(&["Description"]).map_err(ApiError::decode)?,
        policies: names.policy_links(&body)?,
        service_identities,
        node_identities,
        templated_policies,
        ..base
    };
    if role.name.is_empty() {
        return Err(ApiError::bad_request("Invalid Role: no Name is set"));
    }
    if !valid_name(&role.name) {
        return Err(ApiError::bad_request(
            "Invalid Role: invalid Name. Only alphanumeric characters, '-' and '_' are allowed",
        ));
    }
    role.hash = roster_kv::role_hash(&role);
    Ok(role)
}

async fn written_role(api: &Api, id: &str) -> ApiResult {
    let (roles, index, meta) = roles(api, &Query::parse(None)).await?;
    match roles.iter().find(|r| r.id == id) {
        Some(role) => Ok(read_reply(&json::role(role), index, meta)),
        None => Err(ApiError::internal("the role was written but cannot be read back")),
    }
}

/// `PUT /v1/acl/role`.
pub async fn role_create(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    if !Obj(&map).str(&["ID"]).map_err(ApiError::decode)?.is_empty() {
        return Err(ApiError::bad_request("Cannot specify the ID when creating a new role"));
    }
    let role =
        role_from_body(&api, &map, AclRole { id: uuid::Uuid::new_v4().to_string(), ..AclRole::default() }).await?;
    let id = role.id.clone();
    apply(&api, Command::AclRoleSet(Box::new(role))).await?;
    written_role(&api, &id).await
}

async fn one_role(api: &Api, uri: &Uri, found: impl Fn(&AclRole) -> bool) -> ApiResult {
    enabled(api)?;
    let (roles, index, meta) = roles(api, &Query::parse(uri.query())).await?;
    match roles.iter().find(|r| found(r)) {
        Some(role) => Ok(read_reply(&json::role(role), index, meta)),
        None => Err(ApiError::not_found("Requested role does not exist: ACL not found")),
    }
}

/// `GET /v1/acl/role/:id`.
pub async fn role_read(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    one_role(&api, &uri, |r| r.id == id).await
}

/// `GET /v1/acl/role/name/:name`.
pub async fn role_read_by_name(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    one_role(&api, &uri, |r| r.name == name).await
}

/// `PUT /v1/acl/role/:id`.
pub async fn role_update(State(api): State<Api>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let in_body = Obj(&map).str(&["ID"]).map_err(ApiError::decode)?;
    if !in_body.is_empty() && in_body != id {
        return Err(ApiError::bad_request("Role ID in URL and payload do not match"));
    }
    let (roles, _, _) = roles(&api, &Query::parse(None)).await?;
    let Some(existing) = roles.into_iter().find(|r| r.id == id) else {
        return Err(ApiError::bad_request(format!("cannot find role {id}")));
    };
    let role = role_from_body(&api, &map, existing).await?;
    apply(&api, Command::AclRoleSet(Box::new(role))).await?;
    written_role(&api, &id).await
}

/// `DELETE /v1/acl/role/:id`.
pub async fn role_delete(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    apply(&api, Command::AclRoleDelete { id }).await?;
    Ok(bool_reply(true))
}

/// `GET /v1/acl/roles`, with Consul's `?policy=<id>` filter.
pub async fn role_list(State(api): State<Api>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let q = Query::parse(uri.query());
    let policy = q.get("policy");
    let (roles, index, meta) = roles(&api, &q).await?;
    let list: Vec<Value> =
        roles.iter().filter(|r| policy.is_none_or(|p| r.policies.iter().any(|l| l.id == p))).map(json::role).collect();
    Ok(read_reply(&list, index, meta))
}

/// Templated policies are compiled in, so reading them needs only the caller's `acl:read`, checked here.
async fn require_acl_read(api: &Api) -> Result<(), ApiError> {
    let access = caller::access(api).await?;
    Ok(access.require(
        access.authorizer().acl_read(),
        roster_acl::Resource::Acl,
        roster_acl::AccessLevel::Read,
        None,
    )?)
}

fn templated(t: &roster_acl::TemplatedPolicy) -> Value {
    json!({"TemplateName": t.name, "Schema": t.schema, "Template": t.template, "Description": t.description})
}

/// `GET /v1/acl/templated-policies`: every built-in template by name.
pub async fn templated_policy_list(State(api): State<Api>) -> ApiResult {
    enabled(&api)?;
    require_acl_read(&api).await?;
    let map: serde_json::Map<String, Value> =
        roster_acl::templated_policies().iter().map(|t| (t.name.to_owned(), templated(t))).collect();
    Ok(axum::Json(Value::Object(map)).into_response())
}

/// `GET /v1/acl/templated-policy/name/:name`.
pub async fn templated_policy_read(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    enabled(&api)?;
    require_acl_read(&api).await?;
    match roster_acl::templated_policies().iter().find(|t| t.name == name) {
        Some(t) => Ok(axum::Json(templated(t)).into_response()),
        None => Err(ApiError::not_found(format!("Invalid templated policy Name: {name}"))),
    }
}

/// `POST /v1/acl/templated-policy/preview/:name` with `{"Name": ...}`: the policy the template renders to.
pub async fn templated_policy_preview(State(api): State<Api>, Path(name): Path<String>, body: Bytes) -> ApiResult {
    enabled(&api)?;
    require_acl_read(&api).await?;
    let map = body_object(&body)?;
    let var = Obj(&map).str(&["Name"]).map_err(ApiError::decode)?;
    let rules = roster_acl::render_templated_policy(&name, (!var.is_empty()).then_some(var.as_str()))
        .map_err(ApiError::bad_request)?;
    let policy = AclPolicy {
        name: format!("synthetic-policy-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
        description: format!("synthetic policy generated from templated policy: {name}"),
        rules,
        ..AclPolicy::default()
    };
    Ok(axum::Json(json::policy(&policy, true)).into_response())
}
