//! The text forms of ACL objects, as pure functions of the agent's JSON.
//!
//! The pretty formats are Consul's (`command/acl/{token,policy,role,templatedpolicy}/formatter.go`):
//! scripts grep `SecretID:` out of `acl bootstrap` and `acl token create`, so field names,
//! alignment and the order of sections matter more here than anywhere else in the CLI.
//! Times are shown the way Go prints a `time.Time` (`2024-05-01 10:00:00.5 +0000 UTC`), and
//! hashes in hex, because that is what Consul prints for the same JSON.

use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::Serialize as _;
use serde_json::{Value, json};

/// `-format json`: the value indented by four spaces, as Go's `json.MarshalIndent(v, "", "    ")`.
pub(super) fn json_text(value: &Value) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    value.serialize(&mut serializer).context("cannot render JSON")?;
    String::from_utf8(bytes).context("rendered JSON is not UTF-8")
}

/// One token: Consul's `FormatToken` (also used for each entry of `token list`).
pub(super) fn token_pretty(token: &Value, meta: bool) -> String {
    let mut out = token_header(token, meta);
    links_section(&mut out, "Policies:", &token["Policies"], "   ");
    links_section(&mut out, "Roles:", &token["Roles"], "   ");
    identities_sections(&mut out, token, "   ");
    templated_policies_section(&mut out, &token["TemplatedPolicies"], "   ");
    out
}

/// `token list`: every token in the token format, separated by blank lines.
pub(super) fn token_list_pretty(tokens: &Value, meta: bool) -> anyhow::Result<String> {
    let tokens = tokens.as_array().context("unexpected /v1/acl/tokens answer: not a list")?;
    Ok(tokens.iter().map(|token| token_pretty(token, meta)).collect::<Vec<_>>().join("\n"))
}

/// `token read -expanded`: the token with the policies and roles it links spelled out, then the
/// agent's defaults that apply when no rule matches (Consul's authorizer layers 0 and 2).
pub(super) fn token_expanded_pretty(token: &Value, meta: bool) -> String {
    let mut out = token_header(token, meta);
    let policies = items(&token["ExpandedPolicies"]);
    let roles = items(&token["ExpandedRoles"]);
    let find = |list: &[Value], id: &Value| list.iter().find(|item| item["ID"] == *id).cloned();
    if !items(&token["Policies"]).is_empty() {
        out.push_str("Policies:\n");
        for link in items(&token["Policies"]) {
            expanded_policy(&mut out, &find(&policies, &link["ID"]).unwrap_or_else(|| link.clone()), "\t");
        }
    }
    identities_sections(&mut out, token, "\t");
    if !items(&token["Roles"]).is_empty() {
        out.push_str("Roles:\n");
        for link in items(&token["Roles"]) {
            let role = find(&roles, &link["ID"]).unwrap_or_else(|| link.clone());
            let _ = writeln!(out, "\tRole Name: {}", text(&role["Name"]));
            let _ = writeln!(out, "\t\tID: {}", text(&role["ID"]));
            let _ = writeln!(out, "\t\tDescription: {}", text(&role["Description"]));
            if !items(&role["Policies"]).is_empty() {
                out.push_str("\t\tPolicies:\n");
                for policy_link in items(&role["Policies"]) {
                    let policy = find(&policies, &policy_link["ID"]).unwrap_or_else(|| policy_link.clone());
                    expanded_policy(&mut out, &policy, "\t\t\t");
                }
            }
            identities_sections(&mut out, &role, "\t\t\t");
        }
    }
    out.push_str("=== End of Authorizer Layer 0: Token ===\n");
    out.push_str("=== Start of Authorizer Layer 2: Agent Configuration Defaults (Inherited) ===\n");
    out.push_str("Description: Defined at request-time by the agent that resolves the ACL token; other agents may have different configuration defaults\n");
    let _ = writeln!(out, "Resolved By Agent: {:?}\n", text(&token["ResolvedByAgent"]));
    let _ = writeln!(out, "Default Policy: {}", text(&token["AgentACLDefaultPolicy"]));
    out.push_str("\tDescription: Backstop rule used if no preceding layer has a matching rule (refer to default_policy option in agent configuration)\n\n");
    let _ = writeln!(out, "Down Policy: {}", text(&token["AgentACLDownPolicy"]));
    out.push_str("\tDescription: Defines what to do if this Token's information cannot be read from the primary_datacenter (refer to down_policy option in agent configuration)\n\n");
    out
}

/// One policy: Consul's `FormatPolicy`; the rules end the block as written.
pub(super) fn policy_pretty(policy: &Value, meta: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ID:           {}", text(&policy["ID"]));
    let _ = writeln!(out, "Name:         {}", text(&policy["Name"]));
    let _ = writeln!(out, "Description:  {}", text(&policy["Description"]));
    let _ = writeln!(out, "Datacenters:  {}", joined(&policy["Datacenters"]));
    if meta {
        meta_lines(&mut out, policy, "", "Hash:         ", "Create Index: ", "Modify Index: ");
    }
    out.push_str("Rules:\n");
    out.push_str(&text(&policy["Rules"]));
    out
}

/// `policy list`: a `Name:` heading and indented fields per policy.
pub(super) fn policy_list_pretty(policies: &Value, meta: bool) -> anyhow::Result<String> {
    let policies = policies.as_array().context("unexpected /v1/acl/policies answer: not a list")?;
    let mut out = String::new();
    for policy in policies {
        let _ = writeln!(out, "{}:", text(&policy["Name"]));
        let _ = writeln!(out, "   ID:           {}", text(&policy["ID"]));
        let _ = writeln!(out, "   Description:  {}", text(&policy["Description"]));
        let _ = writeln!(out, "   Datacenters:  {}", joined(&policy["Datacenters"]));
        if meta {
            meta_lines(&mut out, policy, "   ", "Hash:         ", "Create Index: ", "Modify Index: ");
        }
    }
    Ok(out)
}

/// One role: Consul's `FormatRole`.
pub(super) fn role_pretty(role: &Value, meta: bool) -> String {
    let mut out = String::new();
    role_fields(&mut out, role, meta, "");
    out
}

/// `role list`: a `Name:` heading and the role's fields indented under it.
pub(super) fn role_list_pretty(roles: &Value, meta: bool) -> anyhow::Result<String> {
    let roles = roles.as_array().context("unexpected /v1/acl/roles answer: not a list")?;
    let mut out = String::new();
    for role in roles {
        let _ = writeln!(out, "{}:", text(&role["Name"]));
        role_fields(&mut out, role, meta, "   ");
    }
    Ok(out)
}

/// `templated-policy list`: the names, sorted.
pub(super) fn templated_policy_list_pretty(templates: &Value) -> anyhow::Result<String> {
    let templates = templates.as_object().context("unexpected /v1/acl/templated-policies answer: not an object")?;
    let mut names: Vec<String> = templates
        .iter()
        .map(|(key, template)| {
            Some(text(&template["TemplateName"])).filter(|name| !name.is_empty()).unwrap_or(key.clone())
        })
        .collect();
    names.sort();
    Ok(names.into_iter().map(|name| format!("{name}\n")).collect())
}

/// `templated-policy read`: the name, its variables and an example; with `meta`, the schema
/// and raw template too. The variables of the built-in templates are known, as in Consul,
/// because the agent does not describe them beyond the JSON schema.
pub(super) fn templated_policy_pretty(template: &Value, meta: bool) -> String {
    let name = text(&template["TemplateName"]);
    let mut out = format!("Name:            {name}\nInput variables:");
    let described = |what: &str, example: &str| {
        format!(
            "\n\tName: String - Required - {what}\nExample usage:\n\troster acl token create -templated-policy {name} {example}\n"
        )
    };
    match name.as_str() {
        "builtin/service" => out.push_str(&described("The name of the service.", "-var name:api")),
        "builtin/node" => out.push_str(&described("The node name.", "-var name:node-1")),
        "builtin/dns" => {
            let _ = write!(out, " None\nExample usage:\n\troster acl token create -templated-policy {name}\n");
        }
        _ => out.push_str("   None\n"),
    }
    if meta {
        let schema = text(&template["Schema"]);
        if !schema.is_empty() {
            let _ = write!(out, "Schema:\n{schema}\n\n");
        }
        let _ = writeln!(out, "Raw Template:\n{}", text(&template["Template"]));
    }
    out
}

/// `-service-identity NAME[:DC1,DC2]` as `{"ServiceName", "Datacenters"}`.
pub(super) fn service_identity(spec: &str) -> anyhow::Result<Value> {
    let (name, datacenters) = spec.split_once(':').unwrap_or((spec, ""));
    if name.trim().is_empty() {
        bail!("Service identity {spec:?} has no service name; expected NAME or NAME:DC1,DC2");
    }
    let datacenters: Vec<&str> = datacenters.split(',').map(str::trim).filter(|dc| !dc.is_empty()).collect();
    let mut identity = json!({ "ServiceName": name.trim() });
    if !datacenters.is_empty() {
        identity["Datacenters"] = json!(datacenters);
    }
    Ok(identity)
}

/// `-node-identity NAME:DC` as `{"NodeName", "Datacenter"}`; both parts are required.
pub(super) fn node_identity(spec: &str) -> anyhow::Result<Value> {
    match spec.split_once(':') {
        Some((name, datacenter)) if !name.trim().is_empty() && !datacenter.trim().is_empty() => {
            Ok(json!({ "NodeName": name.trim(), "Datacenter": datacenter.trim() }))
        }
        _ => bail!("Node identity {spec:?} is malformed; expected NODENAME:DATACENTER"),
    }
}

/// `-var name:value` flags as a templated policy's `TemplateVariables`; only `name` exists today.
pub(super) fn template_variables(vars: &[String]) -> anyhow::Result<Option<Value>> {
    let mut variables = serde_json::Map::new();
    for var in vars {
        let Some((key, value)) = var.split_once(':').filter(|(key, value)| !key.is_empty() && !value.is_empty()) else {
            bail!("-var {var:?} is malformed; expected name:value");
        };
        match key.to_ascii_lowercase().as_str() {
            "name" => variables.insert("Name".to_owned(), json!(value)),
            other => bail!("unknown templated policy variable {other:?}; the built-in templates take `name`"),
        };
    }
    Ok(if variables.is_empty() { None } else { Some(Value::Object(variables)) })
}

/// A Go `time.Time` as its `String()` shows it, from the RFC 3339 text the API sends:
/// `2024-05-01T10:00:00.500Z` → `2024-05-01 10:00:00.5 +0000 UTC`. Text that is not RFC 3339
/// is shown unchanged rather than dropped.
pub(super) fn go_time(rfc3339: &str) -> String {
    let Some((date, rest)) = rfc3339.split_once('T') else {
        return rfc3339.to_owned();
    };
    let (clock, offset) = if let Some(clock) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        (clock, None)
    } else if let Some(sign_idx) = rest.rfind(['+', '-']) {
        (&rest[..sign_idx], Some(&rest[sign_idx..]))
    } else {
        return rfc3339.to_owned();
    };
    // Go trims trailing zeros of the fraction and drops it when it is zero.
    let clock = match clock.split_once('.') {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => whole.to_owned(),
            fraction => format!("{whole}.{fraction}"),
        },
        None => clock.to_owned(),
    };
    let zone = match offset.map(|offset| offset.replace(':', "")) {
        None => "+0000 UTC".to_owned(),
        Some(offset) if offset == "+0000" || offset == "-0000" => "+0000 UTC".to_owned(),
        // A fixed zone without a name prints its offset twice in Go.
        Some(offset) => format!("{offset} {offset}"),
    };
    format!("{date} {clock} {zone}")
}

/// The lines every token form starts with, up to the links.
fn token_header(token: &Value, meta: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "AccessorID:       {}", text(&token["AccessorID"]));
    let _ = writeln!(out, "SecretID:         {}", text(&token["SecretID"]));
    let _ = writeln!(out, "Description:      {}", text(&token["Description"]));
    let _ = writeln!(out, "Local:            {}", token["Local"].as_bool().unwrap_or(false));
    let auth_method = text(&token["AuthMethod"]);
    if !auth_method.is_empty() {
        let _ = writeln!(out, "Auth Method:      {auth_method} (Namespace: {})", text(&token["AuthMethodNamespace"]));
    }
    let _ = writeln!(out, "Create Time:      {}", go_time(&text(&token["CreateTime"])));
    let expiration = text(&token["ExpirationTime"]);
    // Go's zero time means "never expires"; the API omits it or sends year 1.
    if !expiration.is_empty() && !expiration.starts_with("0001-01-01") {
        let _ = writeln!(out, "Expiration Time:  {}", go_time(&expiration));
    }
    if meta {
        meta_lines(&mut out, token, "", "Hash:             ", "Create Index:     ", "Modify Index:     ");
    }
    out
}

/// `Hash`, `Create Index` and `Modify Index` lines, the hash as hex like Go's `%x` of its bytes.
fn meta_lines(out: &mut String, object: &Value, indent: &str, hash: &str, create: &str, modify: &str) {
    let hash_hex = base64::engine::general_purpose::STANDARD
        .decode(text(&object["Hash"]))
        .map(|bytes| bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
        .unwrap_or_default();
    let _ = writeln!(out, "{indent}{hash}{hash_hex}");
    let _ = writeln!(out, "{indent}{create}{}", object["CreateIndex"].as_u64().unwrap_or(0));
    let _ = writeln!(out, "{indent}{modify}{}", object["ModifyIndex"].as_u64().unwrap_or(0));
}

/// A role's fields, indented by `indent` (empty for `role read`, three spaces in `role list`).
fn role_fields(out: &mut String, role: &Value, meta: bool, indent: &str) {
    let _ = writeln!(out, "{indent}ID:           {}", text(&role["ID"]));
    if indent.is_empty() {
        let _ = writeln!(out, "Name:         {}", text(&role["Name"]));
    }
    let _ = writeln!(out, "{indent}Description:  {}", text(&role["Description"]));
    if meta {
        meta_lines(out, role, indent, "Hash:         ", "Create Index: ", "Modify Index: ");
    }
    let nested = format!("{indent}   ");
    if !items(&role["Policies"]).is_empty() {
        let _ = writeln!(out, "{indent}Policies:");
        for link in items(&role["Policies"]) {
            let _ = writeln!(out, "{nested}{} - {}", text(&link["ID"]), text(&link["Name"]));
        }
    }
    let mut identities = String::new();
    identities_sections(&mut identities, role, &nested);
    templated_policies_section(&mut identities, &role["TemplatedPolicies"], &nested);
    // Section headings take the role's indent, their entries one level more.
    for line in identities.lines() {
        let heading = !line.starts_with(' ') && !line.starts_with('\t');
        let _ = writeln!(out, "{}{line}", if heading { indent } else { "" });
    }
}

/// `Policies:`/`Roles:` with one `   <id> - <name>` line per link; nothing when there are none.
fn links_section(out: &mut String, heading: &str, links: &Value, indent: &str) {
    let links = items(links);
    if links.is_empty() {
        return;
    }
    let _ = writeln!(out, "{heading}");
    for link in links {
        let _ = writeln!(out, "{indent}{} - {}", text(&link["ID"]), text(&link["Name"]));
    }
}

/// `Service Identities:` and `Node Identities:` sections of a token or role.
fn identities_sections(out: &mut String, object: &Value, indent: &str) {
    let services = items(&object["ServiceIdentities"]);
    if !services.is_empty() {
        out.push_str("Service Identities:\n");
        for identity in services {
            let datacenters = match joined(&identity["Datacenters"]) {
                list if list.is_empty() => "all".to_owned(),
                list => list,
            };
            let _ = writeln!(out, "{indent}{} (Datacenters: {datacenters})", text(&identity["ServiceName"]));
        }
    }
    let nodes = items(&object["NodeIdentities"]);
    if !nodes.is_empty() {
        out.push_str("Node Identities:\n");
        for identity in nodes {
            let _ = writeln!(
                out,
                "{indent}{} (Datacenter: {})",
                text(&identity["NodeName"]),
                text(&identity["Datacenter"])
            );
        }
    }
}

/// `Templated Policies:` with each template's name and its variables and datacenters beneath.
fn templated_policies_section(out: &mut String, templates: &Value, indent: &str) {
    let templates = items(templates);
    if templates.is_empty() {
        return;
    }
    out.push_str("Templated Policies:\n");
    for template in templates {
        let _ = writeln!(out, "{indent}{}", text(&template["TemplateName"]));
        let name = text(&template["TemplateVariables"]["Name"]);
        if !name.is_empty() {
            let _ = writeln!(out, "{indent}   Name: {name}");
        }
        let datacenters = match joined(&template["Datacenters"]) {
            list if list.is_empty() => "all".to_owned(),
            list => list,
        };
        let _ = writeln!(out, "{indent}   Datacenters: {datacenters}");
    }
}

/// One policy of `token read -expanded`, with its rules indented under it.
fn expanded_policy(out: &mut String, policy: &Value, indent: &str) {
    let _ = writeln!(out, "{indent}Policy Name: {}", text(&policy["Name"]));
    let _ = writeln!(out, "{indent}\tID: {}", text(&policy["ID"]));
    let _ = writeln!(out, "{indent}\tDescription: {}", text(&policy["Description"]));
    let _ = writeln!(out, "{indent}\tRules:");
    let rules_indent = format!("{indent}\t\t");
    let _ = write!(out, "{rules_indent}{}\n\n", text(&policy["Rules"]).replace('\n', &format!("\n{rules_indent}")));
}

/// The elements of a JSON list; `null` (Go's nil slice) and anything else is empty.
fn items(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

/// A list of strings joined by `, `, as Consul joins datacenters.
fn joined(value: &Value) -> String {
    items(value).iter().map(text).collect::<Vec<_>>().join(", ")
}

/// A JSON scalar as plain text (strings unquoted, null empty).
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
