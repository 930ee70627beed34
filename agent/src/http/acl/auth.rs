//! `/v1/acl/auth-method*`, `/v1/acl/binding-rule*`, `/v1/acl/login` and `/v1/acl/logout`, in Consul's shapes and status codes.
//!
//! Methods and rules are checked here before they are proposed (so a bad one is a 400 naming the problem) and again at apply.
//! Login and logout go to a server (`Backend::login`), which verifies the bearer token and mints the token: a client agent
//! only forwards them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::IntoResponse;
use roster_kv::{AclAuthMethod, AclBindingRule, Answer, Command, Query as StateQuery};
use serde_json::{Map, Value, json};

use super::super::input::{Obj, format_go_duration};
use super::super::query::Query;
use super::super::reply::{ApiError, ApiResult, bool_reply, read_reply};
use super::super::{Api, caller, read, unexpected};
use super::{apply, body_object, enabled, json};

/// The fields of an auth method a request may carry (compared as `Obj` does: case and `_` ignored).
const METHOD_FIELDS: [&str; 9] = [
    "Name",
    "Type",
    "DisplayName",
    "Description",
    "MaxTokenTTL",
    "TokenLocality",
    "Config",
    "CreateIndex",
    "ModifyIndex",
];
/// The fields of a binding rule a request may carry.
const RULE_FIELDS: [&str; 9] =
    ["ID", "Description", "AuthMethod", "Selector", "BindType", "BindName", "BindVars", "CreateIndex", "ModifyIndex"];

/// Refuses a body field roster does not implement (Enterprise's `Namespace`, `NamespaceRules`, ...), naming it.
fn refuse_unknown(map: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), ApiError> {
    let normalise = |s: &str| s.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect::<String>();
    let known: Vec<String> = known.iter().map(|k| normalise(k)).collect();
    match map.iter().find(|(key, value)| !value.is_null() && !known.contains(&normalise(key))) {
        Some((key, _)) => Err(ApiError::bad_request(format!("{what}: field {key:?} is not supported by roster"))),
        None => Ok(()),
    }
}

/// Every auth method, as the caller may see them (needs `acl:read`).
async fn methods(api: &Api, q: &Query) -> Result<(Vec<AclAuthMethod>, u64, roster_server::ReadMeta), ApiError> {
    let opts = q.read_opts(api)?;
    let (answer, index, meta) = read(api, &opts, &StateQuery::AclAuthMethods).await?;
    let Answer::AclAuthMethods(methods) = answer else { return Err(unexpected()) };
    Ok((methods, index, meta))
}

/// Every binding rule, as the caller may see them (needs `acl:read`).
async fn rules(api: &Api, q: &Query) -> Result<(Vec<AclBindingRule>, u64, roster_server::ReadMeta), ApiError> {
    let opts = q.read_opts(api)?;
    let (answer, index, meta) = read(api, &opts, &StateQuery::AclBindingRules).await?;
    let Answer::AclBindingRules(rules) = answer else { return Err(unexpected()) };
    Ok((rules, index, meta))
}

/// Consul's `ACLAuthMethod` JSON; the list shows stubs without `Config`.
fn method_json(m: &AclAuthMethod, with_config: bool) -> Value {
    let mut v = json!({
        "Name": m.name, "Type": m.method_type, "DisplayName": m.display_name, "Description": m.description,
        "TokenLocality": m.token_locality, "CreateIndex": m.create_index, "ModifyIndex": m.modify_index,
    });
    if m.max_token_ttl_ms > 0 {
        v["MaxTokenTTL"] = json!(format_go_duration(std::time::Duration::from_millis(m.max_token_ttl_ms)));
    }
    if with_config {
        v["Config"] = serde_json::from_str(&m.config_json).unwrap_or_else(|_| json!({}));
    }
    v
}

/// Consul's `ACLBindingRule` JSON.
fn rule_json(r: &AclBindingRule) -> Value {
    let mut v = json!({
        "ID": r.id, "Description": r.description, "AuthMethod": r.auth_method, "Selector": r.selector,
        "BindType": r.bind_type, "BindName": r.bind_name, "CreateIndex": r.create_index, "ModifyIndex": r.modify_index,
    });
    if let Some(name) = &r.bind_var_name {
        v["BindVars"] = json!({ "Name": name });
    }
    v
}

fn method_from_body(map: &Map<String, Value>, base: AclAuthMethod) -> Result<AclAuthMethod, ApiError> {
    refuse_unknown(map, &METHOD_FIELDS, "Invalid Auth Method")?;
    let body = Obj(map);
    let text = |names: &[&str], current: &str| -> Result<String, ApiError> {
        match body.get(names) {
            Some(_) => body.str(names).map_err(ApiError::decode),
            None => Ok(current.to_owned()),
        }
    };
    let ttl = match body.get(&["MaxTokenTTL"]) {
        Some(_) => body.duration(&["MaxTokenTTL"]).map_err(ApiError::decode)?.map_or(0, |d| d.as_millis()),
        None => u128::from(base.max_token_ttl_ms),
    };
    let config_json = match body.get(&["Config"]) {
        Some(config @ Value::Object(_)) => config.to_string(),
        Some(_) => return Err(ApiError::bad_request("Invalid Auth Method: Config must be a JSON object")),
        None => base.config_json.clone(),
    };
    let method = AclAuthMethod {
        name: text(&["Name"], &base.name)?,
        method_type: text(&["Type"], &base.method_type)?,
        display_name: text(&["DisplayName"], &base.display_name)?,
        description: text(&["Description"], &base.description)?,
        max_token_ttl_ms: u64::try_from(ttl).unwrap_or(u64::MAX),
        token_locality: text(&["TokenLocality"], &base.token_locality)?,
        config_json,
        ..base
    };
    if method.name.is_empty() {
        return Err(ApiError::bad_request("Invalid Auth Method: no Name is set"));
    }
    if method.method_type.is_empty() {
        return Err(ApiError::bad_request("Invalid Auth Method: no Type is set"));
    }
    if method.method_type == "jwt" {
        roster_kv::jwt_config(&method.config_json)
            .map_err(|why| ApiError::bad_request(format!("Invalid Auth Method: {why}")))?;
    }
    Ok(method)
}

async fn written_method(api: &Api, name: &str) -> ApiResult {
    let (methods, index, meta) = methods(api, &Query::parse(None)).await?;
    match methods.iter().find(|m| m.name == name) {
        Some(method) => Ok(read_reply(&method_json(method, true), index, meta)),
        None => Err(ApiError::internal("the auth method was written but cannot be read back")),
    }
}

/// `PUT /v1/acl/auth-method`.
pub async fn method_create(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let method = method_from_body(&map, AclAuthMethod::default())?;
    let (existing, _, _) = methods(&api, &Query::parse(None)).await?;
    if existing.iter().any(|m| m.name == method.name) {
        return Err(ApiError::bad_request(format!("Invalid Auth Method: Name {:?} is already in use", method.name)));
    }
    let name = method.name.clone();
    apply(&api, Command::AclAuthMethodSet(Box::new(method))).await?;
    written_method(&api, &name).await
}

/// `GET /v1/acl/auth-method/:name`.
pub async fn method_read(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let (methods, index, meta) = methods(&api, &Query::parse(uri.query())).await?;
    match methods.iter().find(|m| m.name == name) {
        Some(method) => Ok(read_reply(&method_json(method, true), index, meta)),
        None => Err(ApiError::not_found("Requested auth method does not exist: ACL not found")),
    }
}

/// `PUT /v1/acl/auth-method/:name`: the fields given replace the stored ones; the type cannot change.
pub async fn method_update(State(api): State<Api>, Path(name): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let in_body = Obj(&map).str(&["Name"]).map_err(ApiError::decode)?;
    if !in_body.is_empty() && in_body != name {
        return Err(ApiError::bad_request("Auth method name in URL and payload do not match"));
    }
    let (methods, _, _) = methods(&api, &Query::parse(None)).await?;
    let Some(existing) = methods.into_iter().find(|m| m.name == name) else {
        return Err(ApiError::bad_request(format!("Invalid Auth Method: cannot find auth method {name:?}")));
    };
    let method_type = existing.method_type.clone();
    let method = method_from_body(&map, existing)?;
    if method.method_type != method_type {
        return Err(ApiError::bad_request("Invalid Auth Method: the Type of an auth method cannot change"));
    }
    apply(&api, Command::AclAuthMethodSet(Box::new(method))).await?;
    written_method(&api, &name).await
}

/// `DELETE /v1/acl/auth-method/:name`: with its binding rules and every token it minted; `true`, also for no such method.
pub async fn method_delete(State(api): State<Api>, Path(name): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    apply(&api, Command::AclAuthMethodDelete { name }).await?;
    Ok(bool_reply(true))
}

/// `GET /v1/acl/auth-methods`.
pub async fn method_list(State(api): State<Api>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let (methods, index, meta) = methods(&api, &Query::parse(uri.query())).await?;
    let list: Vec<Value> = methods.iter().map(|m| method_json(m, false)).collect();
    Ok(read_reply(&list, index, meta))
}

fn rule_from_body(map: &Map<String, Value>, base: AclBindingRule) -> Result<AclBindingRule, ApiError> {
    refuse_unknown(map, &RULE_FIELDS, "Invalid Binding Rule")?;
    let body = Obj(map);
    let text = |names: &[&str], current: &str| -> Result<String, ApiError> {
        match body.get(names) {
            Some(_) => body.str(names).map_err(ApiError::decode),
            None => Ok(current.to_owned()),
        }
    };
    let bind_var_name = match body.obj(&["BindVars"]).map_err(ApiError::decode)? {
        Some(vars) => {
            refuse_unknown(vars.0, &["Name"], "Invalid Binding Rule: BindVars")?;
            Some(vars.str(&["Name"]).map_err(ApiError::decode)?)
        }
        None => base.bind_var_name.clone(),
    };
    Ok(AclBindingRule {
        description: text(&["Description"], &base.description)?,
        auth_method: text(&["AuthMethod"], &base.auth_method)?,
        selector: text(&["Selector"], &base.selector)?,
        bind_type: text(&["BindType"], &base.bind_type)?,
        bind_name: text(&["BindName"], &base.bind_name)?,
        bind_var_name,
        ..base
    })
}

async fn written_rule(api: &Api, id: &str) -> ApiResult {
    let (rules, index, meta) = rules(api, &Query::parse(None)).await?;
    match rules.iter().find(|r| r.id == id) {
        Some(rule) => Ok(read_reply(&rule_json(rule), index, meta)),
        None => Err(ApiError::internal("the binding rule was written but cannot be read back")),
    }
}

/// `PUT /v1/acl/binding-rule`.
pub async fn rule_create(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    if !Obj(&map).str(&["ID"]).map_err(ApiError::decode)?.is_empty() {
        return Err(ApiError::bad_request("Cannot specify the ID when creating a new binding rule"));
    }
    let base = AclBindingRule { id: uuid::Uuid::new_v4().to_string(), ..AclBindingRule::default() };
    let rule = rule_from_body(&map, base)?;
    let id = rule.id.clone();
    apply(&api, Command::AclBindingRuleSet(Box::new(rule))).await?;
    written_rule(&api, &id).await
}

/// `GET /v1/acl/binding-rule/:id`.
pub async fn rule_read(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let (rules, index, meta) = rules(&api, &Query::parse(uri.query())).await?;
    match rules.iter().find(|r| r.id == id) {
        Some(rule) => Ok(read_reply(&rule_json(rule), index, meta)),
        None => Err(ApiError::not_found("Requested binding rule does not exist: ACL not found")),
    }
}

/// `PUT /v1/acl/binding-rule/:id`.
pub async fn rule_update(State(api): State<Api>, Path(id): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    let in_body = Obj(&map).str(&["ID"]).map_err(ApiError::decode)?;
    if !in_body.is_empty() && in_body != id {
        return Err(ApiError::bad_request("Binding Rule ID in URL and payload do not match"));
    }
    let (rules, _, _) = rules(&api, &Query::parse(None)).await?;
    let Some(existing) = rules.into_iter().find(|r| r.id == id) else {
        return Err(ApiError::bad_request(format!("Invalid Binding Rule: cannot find binding rule {id:?}")));
    };
    let rule = rule_from_body(&map, existing)?;
    apply(&api, Command::AclBindingRuleSet(Box::new(rule))).await?;
    written_rule(&api, &id).await
}

/// `DELETE /v1/acl/binding-rule/:id`: `true`, also for no such rule.
pub async fn rule_delete(State(api): State<Api>, Path(id): Path<String>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    apply(&api, Command::AclBindingRuleDelete { id }).await?;
    Ok(bool_reply(true))
}

/// `GET /v1/acl/binding-rules`, with Consul's `authmethod` filter.
pub async fn rule_list(State(api): State<Api>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    let q = Query::parse(uri.query());
    let method = q.get("authmethod");
    let (rules, index, meta) = rules(&api, &q).await?;
    let list: Vec<Value> = rules.iter().filter(|r| method.is_none_or(|m| r.auth_method == m)).map(rule_json).collect();
    Ok(read_reply(&list, index, meta))
}

/// `POST /v1/acl/login`: `{"AuthMethod", "BearerToken", "Meta"}` → the minted token, in Consul's token JSON.
pub async fn login(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let map = body_object(&body)?;
    refuse_unknown(&map, &["AuthMethod", "BearerToken", "Meta"], "Invalid login")?;
    let obj = Obj(&map);
    let login = roster_server::Login {
        auth_method: obj.str(&["AuthMethod"]).map_err(ApiError::decode)?,
        bearer_token: obj.str(&["BearerToken"]).map_err(ApiError::decode)?,
        meta: obj.str_map(&["Meta"]).map_err(ApiError::decode)?,
    };
    if login.auth_method.is_empty() {
        return Err(ApiError::bad_request("Missing auth method name"));
    }
    if login.bearer_token.is_empty() {
        return Err(ApiError::bad_request("Missing bearer token"));
    }
    let token = api.backend.login(&login).await?;
    Ok(Json(json::token(&token)).into_response())
}

/// `POST /v1/acl/logout`: deletes the caller's token if a login created it.
pub async fn logout(State(api): State<Api>, uri: Uri) -> ApiResult {
    enabled(&api)?;
    Query::parse(uri.query()).check_dc(&api)?;
    let secret = caller::secret();
    if secret.is_empty() {
        return Err(ApiError::forbidden("ACL not found"));
    }
    api.backend.logout(&secret).await?;
    Ok(bool_reply(true))
}
