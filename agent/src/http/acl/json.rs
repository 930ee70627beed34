//! Consul's JSON shapes for ACL tokens, policies and roles: reading request bodies into records, and rendering records.
//!
//! Links to policies and roles may name an ID or a Name; `Links` turns names into IDs against the current tables, and an
//! unknown one is a 400 naming it.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use roster_kv::{
    AclLink, AclNodeIdentity, AclPolicy, AclRole, AclServiceIdentity, AclTemplatedPolicy, AclToken, MAX_ACL_LINKS,
};
use serde_json::{Map, Value, json};

use super::super::input::Obj;
use super::super::reply::ApiError;

/// Policy and role names by ID, to resolve links given by name and to show links' current names.
pub(super) struct Names {
    pub(super) policies: BTreeMap<String, String>,
    pub(super) roles: BTreeMap<String, String>,
}

impl Names {
    fn resolve(&self, kind: &str, by_id: &BTreeMap<String, String>, link: &Obj<'_>) -> Result<AclLink, ApiError> {
        let id = link.str(&["ID"]).map_err(ApiError::decode)?;
        let name = link.str(&["Name"]).map_err(ApiError::decode)?;
        if !id.is_empty() {
            return match by_id.get(&id) {
                Some(current) => Ok(AclLink { id, name: current.clone() }),
                None => Err(ApiError::bad_request(format!("No such ACL {kind} with ID {id:?}"))),
            };
        }
        match by_id.iter().find(|(_, n)| **n == name) {
            Some((id, name)) if !name.is_empty() => Ok(AclLink { id: id.clone(), name: name.clone() }),
            _ => Err(ApiError::bad_request(format!("No such ACL {kind} with name {name:?}"))),
        }
    }

    /// The `Policies` links of a body, deduplicated.
    pub(super) fn policy_links(&self, body: &Obj<'_>) -> Result<Vec<AclLink>, ApiError> {
        self.links(body, "Policies", "policy", &self.policies)
    }

    /// The `Roles` links of a body, deduplicated.
    pub(super) fn role_links(&self, body: &Obj<'_>) -> Result<Vec<AclLink>, ApiError> {
        self.links(body, "Roles", "role", &self.roles)
    }

    fn links(
        &self,
        body: &Obj<'_>,
        field: &str,
        kind: &str,
        by_id: &BTreeMap<String, String>,
    ) -> Result<Vec<AclLink>, ApiError> {
        let mut links: Vec<AclLink> = Vec::new();
        for item in objects(body, field)? {
            let link = self.resolve(kind, by_id, &Obj(item))?;
            if !links.iter().any(|l| l.id == link.id) {
                links.push(link);
            }
        }
        Ok(links)
    }
}

fn objects<'a>(body: &Obj<'a>, field: &str) -> Result<Vec<&'a Map<String, Value>>, ApiError> {
    let items = match body.get(&[field]) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::decode(format!("{field}: expected a list"))),
    };
    if items.len() > MAX_ACL_LINKS {
        return Err(ApiError::bad_request(format!("{field}: at most {MAX_ACL_LINKS} entries")));
    }
    items
        .iter()
        .map(|item| item.as_object().ok_or_else(|| ApiError::decode(format!("{field}: expected objects"))))
        .collect()
}

/// What a token or role grants besides its links: service identities, node identities and templated policies.
pub(super) type Identities = (Vec<AclServiceIdentity>, Vec<AclNodeIdentity>, Vec<AclTemplatedPolicy>);

/// Service identities, node identities and templated policies of a token or role body, validated as Consul validates them.
pub(super) fn identities(body: &Obj<'_>, local: bool) -> Result<Identities, ApiError> {
    let mut services = Vec::new();
    for item in objects(body, "ServiceIdentities")? {
        let item = Obj(item);
        let name = item.str(&["ServiceName"]).map_err(ApiError::decode)?;
        let datacenters = item.str_list(&["Datacenters"]).map_err(ApiError::decode)?;
        if name.is_empty() {
            return Err(ApiError::bad_request("Service identity is missing the service name field on this token"));
        }
        if local && !datacenters.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Service identity {name:?} cannot specify a list of datacenters on a local token"
            )));
        }
        if !roster_acl::valid_identity_name(&name) {
            return Err(ApiError::bad_request(format!(
                "Service identity {name:?} has an invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed"
            )));
        }
        services.push(AclServiceIdentity { service_name: name, datacenters });
    }
    let mut nodes = Vec::new();
    for item in objects(body, "NodeIdentities")? {
        let item = Obj(item);
        let name = item.str(&["NodeName"]).map_err(ApiError::decode)?;
        let datacenter = item.str(&["Datacenter"]).map_err(ApiError::decode)?;
        if name.is_empty() || datacenter.is_empty() {
            return Err(ApiError::bad_request("Node identity needs a NodeName and a Datacenter"));
        }
        if !roster_acl::valid_identity_name(&name) {
            return Err(ApiError::bad_request(format!(
                "Node identity {name:?} has an invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed"
            )));
        }
        nodes.push(AclNodeIdentity { node_name: name, datacenter });
    }
    let mut templated = Vec::new();
    for item in objects(body, "TemplatedPolicies")? {
        let item = Obj(item);
        let template_name = item.str(&["TemplateName"]).map_err(ApiError::decode)?;
        let name = match item.obj(&["TemplateVariables"]).map_err(ApiError::decode)? {
            Some(vars) => Some(vars.str(&["Name"]).map_err(ApiError::decode)?).filter(|n| !n.is_empty()),
            None => None,
        };
        roster_acl::render_templated_policy(&template_name, name.as_deref()).map_err(ApiError::bad_request)?;
        let datacenters = item.str_list(&["Datacenters"]).map_err(ApiError::decode)?;
        templated.push(AclTemplatedPolicy { template_name, name, datacenters });
    }
    Ok((services, nodes, templated))
}

/// Unix milliseconds as Consul's RFC 3339 time.
pub(super) fn time(ms: u64) -> Value {
    let at = i64::try_from(ms).ok().and_then(DateTime::<Utc>::from_timestamp_millis).unwrap_or_default();
    Value::String(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// An RFC 3339 time as Unix milliseconds.
pub(super) fn parse_time(text: &str) -> Result<u64, ApiError> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|err| ApiError::decode(format!("ExpirationTime: {text:?} is not an RFC 3339 time: {err}")))?;
    u64::try_from(at.timestamp_millis()).map_err(|_| ApiError::bad_request("ExpirationTime cannot be before 1970"))
}

fn links(links: &[AclLink]) -> Value {
    Value::Array(links.iter().map(|l| json!({"ID": l.id, "Name": l.name})).collect())
}

fn service_identities(ids: &[AclServiceIdentity]) -> Value {
    Value::Array(
        ids.iter()
            .map(|s| {
                let mut v = json!({"ServiceName": s.service_name});
                if !s.datacenters.is_empty() {
                    v["Datacenters"] = json!(s.datacenters);
                }
                v
            })
            .collect(),
    )
}

fn node_identities(ids: &[AclNodeIdentity]) -> Value {
    Value::Array(ids.iter().map(|n| json!({"NodeName": n.node_name, "Datacenter": n.datacenter})).collect())
}

fn templated_policies(ids: &[AclTemplatedPolicy]) -> Value {
    Value::Array(
        ids.iter()
            .map(|t| {
                let mut v = json!({"TemplateName": t.template_name});
                if let Some(name) = &t.name {
                    v["TemplateVariables"] = json!({"Name": name});
                }
                if !t.datacenters.is_empty() {
                    v["Datacenters"] = json!(t.datacenters);
                }
                v
            })
            .collect(),
    )
}

fn hash(bytes: &[u8]) -> Value {
    use base64::Engine;
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A token as Consul's token endpoints return it; list entries are the same fields.
pub(super) fn token(t: &AclToken) -> Value {
    let mut v = json!({
        "AccessorID": t.accessor_id,
        "SecretID": t.secret_id,
        "Description": t.description,
        "Local": t.local,
        "CreateTime": time(t.create_time_ms),
        "Hash": hash(&t.hash),
        "CreateIndex": t.create_index,
        "ModifyIndex": t.modify_index,
    });
    let fields = [
        ("Policies", links(&t.policies)),
        ("Roles", links(&t.roles)),
        ("ServiceIdentities", service_identities(&t.service_identities)),
        ("NodeIdentities", node_identities(&t.node_identities)),
        ("TemplatedPolicies", templated_policies(&t.templated_policies)),
    ];
    for (name, value) in fields {
        if value.as_array().is_some_and(|a| !a.is_empty()) {
            v[name] = value;
        }
    }
    if !t.auth_method.is_empty() {
        v["AuthMethod"] = json!(t.auth_method);
    }
    if let Some(at) = t.expiration_time_ms {
        v["ExpirationTime"] = time(at);
    }
    v
}

/// A policy; `with_rules` false gives the list form, which Consul sends without `Rules`.
pub(super) fn policy(p: &AclPolicy, with_rules: bool) -> Value {
    let mut v = json!({
        "ID": p.id,
        "Name": p.name,
        "Description": p.description,
        "Hash": hash(&p.hash),
        "CreateIndex": p.create_index,
        "ModifyIndex": p.modify_index,
    });
    if with_rules {
        v["Rules"] = json!(p.rules);
    }
    if !p.datacenters.is_empty() {
        v["Datacenters"] = json!(p.datacenters);
    }
    v
}

/// A role.
pub(super) fn role(r: &AclRole) -> Value {
    let mut v = json!({
        "ID": r.id,
        "Name": r.name,
        "Description": r.description,
        "Hash": hash(&r.hash),
        "CreateIndex": r.create_index,
        "ModifyIndex": r.modify_index,
    });
    let fields = [
        ("Policies", links(&r.policies)),
        ("ServiceIdentities", service_identities(&r.service_identities)),
        ("NodeIdentities", node_identities(&r.node_identities)),
        ("TemplatedPolicies", templated_policies(&r.templated_policies)),
    ];
    for (name, value) in fields {
        if value.as_array().is_some_and(|a| !a.is_empty()) {
            v[name] = value;
        }
    }
    v
}
