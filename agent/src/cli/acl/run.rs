//! Runs the `roster acl` commands: builds each request from the flags, sends it, prints the answer.
//!
//! Every failure, from bad flags to an agent's refusal, is printed as Consul prints it, a
//! command-specific prefix then the cause (`Failed to create new token: Unexpected response code:
//! 403 (Permission denied)`), and gives exit code 1. Partial IDs are resolved against the list
//! endpoints as Consul's CLI does, so `-accessor-id 6a1b` works when the prefix is unique.

use anyhow::{Context as _, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;

use super::format;
use super::{AclCommand, FormatArgs, OutputFormat, PolicyCommand, RoleCommand, SelectArgs};
use super::{TemplatedPolicyCommand, TokenCommand};
use crate::cli::HttpArgs;
use crate::cli::client::{AgentClient, print_stdout, segment};
use crate::config::EnvSource;

/// The accessor ID Consul gives the anonymous token, which its CLI accepts as `anonymous`.
const ANONYMOUS_ACCESSOR_ID: &str = "00000000-0000-0000-0000-000000000002";
/// Length of a full UUID; anything shorter is taken as a prefix to look up.
const UUID_LEN: usize = 36;

/// Runs one `roster acl` command and returns its exit code.
pub(in crate::cli) async fn run(command: &AclCommand, env: &dyn EnvSource) -> anyhow::Result<i32> {
    report(execute(command, env).await)
}

/// Prints what a command printed, or its error with exit code 1.
pub(in crate::cli) fn report(outcome: anyhow::Result<String>) -> anyhow::Result<i32> {
    match outcome {
        Ok(printed) => print_stdout(printed.as_bytes()),
        Err(err) => {
            eprintln!("{err:#}");
            Ok(1)
        }
    }
}

/// The text a command prints on success; every error carries Consul's prefix as context.
async fn execute(command: &AclCommand, env: &dyn EnvSource) -> anyhow::Result<String> {
    match command {
        AclCommand::Bootstrap(args) => {
            let acl = Acl::new(&args.http, env)?;
            let token = acl.call(Method::PUT, "/v1/acl/bootstrap", None).await.context("Failed ACL bootstrapping")?;
            show(&args.output, &token, format::token_pretty)
        }
        AclCommand::Token(command) => token(command, env).await,
        AclCommand::Policy(command) => policy(command, env).await,
        AclCommand::Role(command) => role(command, env).await,
        AclCommand::SetAgentToken(args) => {
            let kind = agent_token_kind(&args.kind).with_context(|| format!("Unknown token type {:?}", args.kind))?;
            let value = read_data_source(&args.token_value).await.context("Error! Cannot read the token")?;
            let acl = Acl::new(&args.http, env)?;
            let path = format!("/v1/agent/token/{kind}");
            acl.call(Method::PUT, &path, Some(json!({ "Token": value })))
                .await
                .with_context(|| format!("Failed to set ACL token {:?}", args.kind))?;
            Ok(format!("ACL token {:?} set successfully\n", args.kind))
        }
        AclCommand::TemplatedPolicy(command) => templated_policy(command, env).await,
        AclCommand::AuthMethod(command) => super::auth::auth_method(command, env).await,
        AclCommand::BindingRule(command) => super::auth::binding_rule(command, env).await,
    }
}

/// `roster acl token ...`.
async fn token(command: &TokenCommand, env: &dyn EnvSource) -> anyhow::Result<String> {
    match command {
        TokenCommand::Create(args) => {
            let acl = Acl::new(&args.http, env)?;
            let body = token_create_body(&acl, args).await.context("Failed to create new token")?;
            let token =
                acl.call(Method::PUT, "/v1/acl/token", Some(body)).await.context("Failed to create new token")?;
            show(&args.output, &token, format::token_pretty)
        }
        TokenCommand::List(args) => {
            let acl = Acl::new(&args.http, env)?;
            let tokens =
                acl.call(Method::GET, "/v1/acl/tokens", None).await.context("Failed to retrieve the token list")?;
            show_list(&args.output, &tokens, format::token_list_pretty)
        }
        TokenCommand::Read(args) => {
            let acl = Acl::new(&args.http, env)?;
            let (id, path) = match (&args.accessor_id, args.self_token) {
                (_, true) => ("self".to_owned(), "/v1/acl/token/self".to_owned()),
                (Some(id), false) => {
                    let id = acl.token_id(id).await.context("Error determining token ID")?;
                    (id.clone(), format!("/v1/acl/token/{}", segment(&id)))
                }
                (None, false) => bail!("Must specify the -accessor-id parameter (or -self)"),
            };
            let path = if args.expanded { format!("{path}?expanded") } else { path };
            let token =
                acl.call(Method::GET, &path, None).await.with_context(|| format!("Error reading token {id:?}"))?;
            if args.expanded {
                show(&args.output, &token, format::token_expanded_pretty)
            } else {
                show(&args.output, &token, format::token_pretty)
            }
        }
        TokenCommand::Update(args) => {
            let id = args
                .accessor_id
                .as_deref()
                .context("Cannot update a token without specifying the -accessor-id parameter")?;
            let acl = Acl::new(&args.http, env)?;
            let id = acl.token_id(id).await.context("Error determining token ID")?;
            let path = format!("/v1/acl/token/{}", segment(&id));
            let current = acl.call(Method::GET, &path, None).await.context("Error when retrieving current token")?;
            let updated =
                update_token(&acl, current, args).await.with_context(|| format!("Failed to update token {id}"))?;
            let token = acl
                .call(Method::PUT, &path, Some(updated))
                .await
                .with_context(|| format!("Failed to update token {id}"))?;
            show(&args.output, &token, format::token_pretty)
        }
        TokenCommand::Clone(args) => {
            let id = args
                .accessor_id
                .as_deref()
                .context("Cannot clone a token without specifying the -accessor-id parameter")?;
            let acl = Acl::new(&args.http, env)?;
            let id = acl.token_id(id).await.context("Error determining token ID")?;
            let body = args.description.as_ref().map_or_else(|| json!({}), |text| json!({ "Description": text }));
            let path = format!("/v1/acl/token/{}/clone", segment(&id));
            let token = acl.call(Method::PUT, &path, Some(body)).await.context("Failed to clone token")?;
            show(&args.output, &token, format::token_pretty)
        }
        TokenCommand::Delete(args) => {
            let id = args.accessor_id.as_deref().context("Must specify the -accessor-id parameter")?;
            let acl = Acl::new(&args.http, env)?;
            let id = acl.token_id(id).await.context("Error determining token ID")?;
            let path = format!("/v1/acl/token/{}", segment(&id));
            acl.call(Method::DELETE, &path, None).await.with_context(|| format!("Error deleting token {id:?}"))?;
            Ok(format!("Token {id:?} deleted successfully\n"))
        }
    }
}

/// The body of `PUT /v1/acl/token` for `token create`.
async fn token_create_body(acl: &Acl, args: &super::TokenCreateArgs) -> anyhow::Result<Value> {
    let links = &args.links;
    let has_link = !(links.policy_id.is_empty()
        && links.policy_name.is_empty()
        && args.role_id.is_empty()
        && args.role_name.is_empty()
        && links.service_identity.is_empty()
        && links.node_identity.is_empty()
        && args.templated_policy.is_none());
    if !has_link {
        bail!(
            "Cannot create a token without specifying -policy-name, -policy-id, -role-name, -role-id, \
             -service-identity, -node-identity or -templated-policy at least once"
        );
    }
    let mut token = json!({
        "Description": args.description.clone().unwrap_or_default(),
        "Local": args.local,
        "Policies": acl.policy_links(&links.policy_id, &links.policy_name).await?,
        "Roles": acl.role_links(&args.role_id, &args.role_name).await?,
        "ServiceIdentities": parse_all(&links.service_identity, format::service_identity)?,
        "NodeIdentities": parse_all(&links.node_identity, format::node_identity)?,
    });
    if let Some(accessor) = &args.accessor {
        token["AccessorID"] = json!(accessor);
    }
    if let Some(secret) = &args.secret {
        token["SecretID"] = json!(secret);
    }
    if let Some(ttl) = &args.expires_ttl {
        let ttl = crate::config::parse_go_duration(ttl).map_err(|err| anyhow!("-expires-ttl: {err}"))?;
        if !ttl.is_zero() {
            token["ExpirationTTL"] = json!(crate::config::format_go_duration(ttl));
        }
    }
    if let Some(template) = &args.templated_policy {
        let mut templated = json!({ "TemplateName": template });
        if let Some(variables) = format::template_variables(&args.vars)? {
            templated["TemplateVariables"] = variables;
        }
        token["TemplatedPolicies"] = json!([templated]);
    } else if !args.vars.is_empty() {
        bail!("-var is only meaningful with -templated-policy");
    }
    Ok(token)
}

/// Applies `token update`'s flags to the token as read: a list given with the plain flag
/// replaces the token's list, the `-append-*` flags add to it, and what is not mentioned stays.
async fn update_token(acl: &Acl, mut token: Value, args: &super::TokenUpdateArgs) -> anyhow::Result<Value> {
    let links = &args.links;
    let conflict = |what: &str| anyhow!("Cannot combine -{what} flags with their -append-{what} variants");
    if let Some(description) = &args.description {
        // As in Consul, an empty -description cannot clear one: it is taken as "not given".
        if !description.is_empty() {
            token["Description"] = json!(description);
        }
    }
    let (policy_ids, policy_names) = (&links.policy_id, &links.policy_name);
    let appending_policies = !args.append_policy_id.is_empty() || !args.append_policy_name.is_empty();
    if !policy_ids.is_empty() || !policy_names.is_empty() {
        if appending_policies {
            return Err(conflict("policy-id/-policy-name"));
        }
        token["Policies"] = acl.policy_links(policy_ids, policy_names).await?;
    } else if appending_policies {
        let added = acl.policy_links(&args.append_policy_id, &args.append_policy_name).await?;
        append(&mut token["Policies"], added);
    }
    let appending_roles = !args.append_role_id.is_empty() || !args.append_role_name.is_empty();
    if !args.role_id.is_empty() || !args.role_name.is_empty() {
        if appending_roles {
            return Err(conflict("role-id/-role-name"));
        }
        token["Roles"] = acl.role_links(&args.role_id, &args.role_name).await?;
    } else if appending_roles {
        let added = acl.role_links(&args.append_role_id, &args.append_role_name).await?;
        append(&mut token["Roles"], added);
    }
    match (links.service_identity.is_empty(), args.append_service_identity.is_empty()) {
        (false, false) => return Err(conflict("service-identity")),
        (false, true) => token["ServiceIdentities"] = parse_all(&links.service_identity, format::service_identity)?,
        (true, false) => {
            for identity in
                parse_all(&args.append_service_identity, format::service_identity)?.as_array().into_iter().flatten()
            {
                upsert(&mut token["ServiceIdentities"], identity.clone(), &["ServiceName"]);
            }
        }
        (true, true) => {}
    }
    match (links.node_identity.is_empty(), args.append_node_identity.is_empty()) {
        (false, false) => return Err(conflict("node-identity")),
        (false, true) => token["NodeIdentities"] = parse_all(&links.node_identity, format::node_identity)?,
        (true, false) => {
            for identity in
                parse_all(&args.append_node_identity, format::node_identity)?.as_array().into_iter().flatten()
            {
                upsert(&mut token["NodeIdentities"], identity.clone(), &["NodeName", "Datacenter"]);
            }
        }
        (true, true) => {}
    }
    Ok(token)
}

/// `roster acl policy ...`.
async fn policy(command: &PolicyCommand, env: &dyn EnvSource) -> anyhow::Result<String> {
    match command {
        PolicyCommand::Create(args) => {
            let name = args.name.as_deref().filter(|name| !name.is_empty()).context("Missing required '-name' flag")?;
            let rules = match &args.rules {
                Some(source) => read_data_source(source).await.context("Error loading policy rules")?,
                None => String::new(),
            };
            let acl = Acl::new(&args.http, env)?;
            let body = json!({
                "Name": name,
                "Description": args.description.clone().unwrap_or_default(),
                "Rules": rules,
                "Datacenters": args.valid_datacenter,
            });
            let policy =
                acl.call(Method::PUT, "/v1/acl/policy", Some(body)).await.context("Failed to create new policy")?;
            show(&args.output, &policy, format::policy_pretty)
        }
        PolicyCommand::List(args) => {
            let acl = Acl::new(&args.http, env)?;
            let policies =
                acl.call(Method::GET, "/v1/acl/policies", None).await.context("Failed to retrieve the policy list")?;
            show_list(&args.output, &policies, format::policy_list_pretty)
        }
        PolicyCommand::Read(args) => {
            let acl = Acl::new(&args.http, env)?;
            let policy = acl.read_named(Kind::Policy, &args.select).await?;
            show(&args.output, &policy, format::policy_pretty)
        }
        PolicyCommand::Update(args) => {
            let acl = Acl::new(&args.http, env)?;
            let current = acl.read_named(Kind::Policy, &args.select).await?;
            let id = current["ID"].as_str().context("the agent's policy has no ID")?.to_owned();
            let mut updated = if args.no_merge { json!({ "ID": id }) } else { current };
            // With -id, -name is the new name; with -name alone it only named the policy.
            if let Some(name) = &args.select.name {
                updated["Name"] = json!(name);
            }
            if let Some(description) = &args.description {
                updated["Description"] = json!(description);
            }
            if let Some(source) = &args.rules {
                updated["Rules"] = json!(read_data_source(source).await.context("Error loading policy rules")?);
            }
            if args.no_merge || !args.valid_datacenter.is_empty() {
                updated["Datacenters"] = json!(args.valid_datacenter);
            }
            let path = format!("/v1/acl/policy/{}", segment(&id));
            let policy = acl
                .call(Method::PUT, &path, Some(updated))
                .await
                .with_context(|| format!("Failed to update policy {id}"))?;
            show(&args.output, &policy, format::policy_pretty)
        }
        PolicyCommand::Delete(args) => {
            let acl = Acl::new(&args.http, env)?;
            let id = acl.named_id(Kind::Policy, &args.select).await?;
            let path = format!("/v1/acl/policy/{}", segment(&id));
            acl.call(Method::DELETE, &path, None).await.with_context(|| format!("Error deleting policy {id:?}"))?;
            Ok(format!("Policy {id:?} deleted successfully\n"))
        }
    }
}

/// `roster acl role ...`.
async fn role(command: &RoleCommand, env: &dyn EnvSource) -> anyhow::Result<String> {
    match command {
        RoleCommand::Create(args) => {
            let name = args.name.as_deref().filter(|name| !name.is_empty()).context("Missing required '-name' flag")?;
            let links = &args.links;
            if links.policy_id.is_empty()
                && links.policy_name.is_empty()
                && links.service_identity.is_empty()
                && links.node_identity.is_empty()
            {
                bail!(
                    "Cannot create a role without specifying -policy-name, -policy-id, -service-identity \
                     or -node-identity at least once"
                );
            }
            let acl = Acl::new(&args.http, env)?;
            let body = json!({
                "Name": name,
                "Description": args.description.clone().unwrap_or_default(),
                "Policies": acl.policy_links(&links.policy_id, &links.policy_name).await?,
                "ServiceIdentities": parse_all(&links.service_identity, format::service_identity)?,
                "NodeIdentities": parse_all(&links.node_identity, format::node_identity)?,
            });
            let role = acl.call(Method::PUT, "/v1/acl/role", Some(body)).await.context("Failed to create new role")?;
            show(&args.output, &role, format::role_pretty)
        }
        RoleCommand::List(args) => {
            let acl = Acl::new(&args.http, env)?;
            let roles =
                acl.call(Method::GET, "/v1/acl/roles", None).await.context("Failed to retrieve the role list")?;
            show_list(&args.output, &roles, format::role_list_pretty)
        }
        RoleCommand::Read(args) => {
            let acl = Acl::new(&args.http, env)?;
            let role = acl.read_named(Kind::Role, &args.select).await?;
            show(&args.output, &role, format::role_pretty)
        }
        RoleCommand::Update(args) => {
            let acl = Acl::new(&args.http, env)?;
            let current = acl.read_named(Kind::Role, &args.select).await?;
            let id = current["ID"].as_str().context("the agent's role has no ID")?.to_owned();
            let updated =
                update_role(&acl, current, args).await.with_context(|| format!("Failed to update role {id}"))?;
            let path = format!("/v1/acl/role/{}", segment(&id));
            let role = acl
                .call(Method::PUT, &path, Some(updated))
                .await
                .with_context(|| format!("Failed to update role {id}"))?;
            show(&args.output, &role, format::role_pretty)
        }
        RoleCommand::Delete(args) => {
            let acl = Acl::new(&args.http, env)?;
            let id = acl.named_id(Kind::Role, &args.select).await?;
            let path = format!("/v1/acl/role/{}", segment(&id));
            acl.call(Method::DELETE, &path, None).await.with_context(|| format!("Error deleting role {id:?}"))?;
            Ok(format!("Role {id:?} deleted successfully\n"))
        }
    }
}

/// Applies `role update`'s flags: by default links are added to the role's (Consul's merge),
/// with `-no-merge` the role is exactly what the flags say.
async fn update_role(acl: &Acl, current: Value, args: &super::RoleUpdateArgs) -> anyhow::Result<Value> {
    let links = &args.links;
    let mut role = if args.no_merge {
        json!({ "ID": current["ID"], "Name": current["Name"], "Policies": [], "ServiceIdentities": [], "NodeIdentities": [] })
    } else {
        current
    };
    if let Some(name) = &args.select.name {
        role["Name"] = json!(name);
    }
    if let Some(description) = &args.description {
        role["Description"] = json!(description);
    }
    for link in acl.policy_links(&links.policy_id, &links.policy_name).await?.as_array().into_iter().flatten() {
        let known = role["Policies"].as_array().is_some_and(|policies| {
            policies.iter().any(|policy| {
                (link.get("ID").is_some() && policy["ID"] == link["ID"])
                    || (link.get("Name").is_some() && policy["Name"] == link["Name"])
            })
        });
        if !known {
            append(&mut role["Policies"], json!([link]));
        }
    }
    for identity in parse_all(&links.service_identity, format::service_identity)?.as_array().into_iter().flatten() {
        upsert(&mut role["ServiceIdentities"], identity.clone(), &["ServiceName"]);
    }
    for identity in parse_all(&links.node_identity, format::node_identity)?.as_array().into_iter().flatten() {
        upsert(&mut role["NodeIdentities"], identity.clone(), &["NodeName", "Datacenter"]);
    }
    Ok(role)
}

/// `roster acl templated-policy ...`.
async fn templated_policy(command: &TemplatedPolicyCommand, env: &dyn EnvSource) -> anyhow::Result<String> {
    match command {
        TemplatedPolicyCommand::List(args) => {
            let acl = Acl::new(&args.http, env)?;
            let templates = acl
                .call(Method::GET, "/v1/acl/templated-policies", None)
                .await
                .context("Failed to retrieve the templated policies list")?;
            match args.output.format {
                OutputFormat::Json => format::json_text(&templates).map(|text| text + "\n"),
                OutputFormat::Pretty => format::templated_policy_list_pretty(&templates),
            }
        }
        TemplatedPolicyCommand::Read(args) => {
            let name =
                args.name.as_deref().filter(|name| !name.is_empty()).context("Must specify the -name parameter")?;
            let acl = Acl::new(&args.http, env)?;
            // Template names keep their `/` (`builtin/service`): the route takes the rest of the path.
            let path = format!("/v1/acl/templated-policy/name/{}", template_path(name));
            let template = acl
                .call(Method::GET, &path, None)
                .await
                .with_context(|| format!("Error reading templated policy {name:?}"))?;
            show(&args.output, &template, format::templated_policy_pretty)
        }
        TemplatedPolicyCommand::Preview(args) => {
            let name =
                args.name.as_deref().filter(|name| !name.is_empty()).context("Must specify the -name parameter")?;
            let variables = format::template_variables(&args.vars)?.unwrap_or_else(|| json!({}));
            let acl = Acl::new(&args.http, env)?;
            let path = format!("/v1/acl/templated-policy/preview/{}", template_path(name));
            let policy = acl
                .call(Method::POST, &path, Some(variables))
                .await
                .with_context(|| format!("Failed to preview templated policy {name:?}"))?;
            show(&args.output, &policy, format::policy_pretty)
        }
    }
}

/// The path of `/v1/agent/token/<kind>` for a `set-agent-token` type, Consul's legacy names included.
pub(super) fn agent_token_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "default" | "acl_token" => "default",
        "agent" | "acl_agent_token" => "agent",
        "agent_recovery" | "recovery" | "agent_master" | "acl_agent_master_token" => "agent_recovery",
        "replication" | "acl_replication_token" => "replication",
        "config_file_service_registration" => "config_file_service_registration",
        "dns" => "dns",
        _ => return None,
    })
}

/// Percent-encodes each segment of a templated policy name but keeps the `/` between them.
fn template_path(name: &str) -> String {
    name.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// Prints one object pretty or as JSON; Consul's UI adds a newline after either.
pub(super) fn show(output: &FormatArgs, value: &Value, pretty: fn(&Value, bool) -> String) -> anyhow::Result<String> {
    let text = match output.format {
        OutputFormat::Json => format::json_text(value)?,
        OutputFormat::Pretty => pretty(value, output.meta),
    };
    Ok(text + "\n")
}

/// Prints a list pretty or as JSON.
pub(super) fn show_list(
    output: &FormatArgs,
    value: &Value,
    pretty: fn(&Value, bool) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let text = match output.format {
        OutputFormat::Json => format::json_text(value)?,
        OutputFormat::Pretty => pretty(value, output.meta)?,
    };
    Ok(text + "\n")
}

/// Parses every flag value of a list with `parse`, into a JSON array.
fn parse_all(specs: &[String], parse: fn(&str) -> anyhow::Result<Value>) -> anyhow::Result<Value> {
    Ok(Value::Array(specs.iter().map(|spec| parse(spec)).collect::<anyhow::Result<_>>()?))
}

/// Appends the elements of `added` (an array) to `list`, which may be `null`.
fn append(list: &mut Value, added: Value) {
    let mut items = list.as_array().cloned().unwrap_or_default();
    items.extend(added.as_array().cloned().unwrap_or_default());
    *list = Value::Array(items);
}

/// Replaces the element of `list` whose `keys` equal `item`'s, or appends `item`.
fn upsert(list: &mut Value, item: Value, keys: &[&str]) {
    let mut items = list.as_array().cloned().unwrap_or_default();
    match items.iter_mut().find(|existing| keys.iter().all(|key| existing[*key] == item[*key])) {
        Some(existing) => *existing = item,
        None => items.push(item),
    }
    *list = Value::Array(items);
}

/// A flag value that may be literal, `@FILE` or `-` (stdin), as Consul's `LoadDataSource`.
pub(super) async fn read_data_source(source: &str) -> anyhow::Result<String> {
    if source == "-" {
        let mut text = String::new();
        tokio::io::stdin().read_to_string(&mut text).await.context("Failed to read stdin")?;
        return Ok(text);
    }
    match source.strip_prefix('@') {
        Some(path) => tokio::fs::read_to_string(path).await.with_context(|| format!("Failed to read file {path:?}")),
        None => Ok(source.to_owned()),
    }
}

/// Policies or roles: what differs between their endpoints.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Policy,
    Role,
}

impl Kind {
    /// The singular path word and its list endpoint.
    fn paths(self) -> (&'static str, &'static str) {
        match self {
            Kind::Policy => ("policy", "/v1/acl/policies"),
            Kind::Role => ("role", "/v1/acl/roles"),
        }
    }
}

/// The agent, spoken to the way the ACL commands need.
pub(super) struct Acl {
    /// The shared one-shot client (address and token already resolved).
    agent: AgentClient,
}

impl Acl {
    /// Resolves `-http-addr`, `-token`, `-token-file` and their variables.
    pub(super) fn new(http: &HttpArgs, env: &dyn EnvSource) -> anyhow::Result<Acl> {
        Ok(Acl { agent: AgentClient::new(http, env).context("Error connecting to the agent")? })
    }

    /// Sends a JSON request; a non-2xx answer becomes Consul's `Unexpected response code` error.
    pub(super) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|body| serde_json::to_vec(&body)).transpose()?;
        let (status, answer) = self.agent.send(method, path, body).await?;
        if !status.is_success() {
            bail!("{}", unexpected_response(status, &answer));
        }
        if answer.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer).context("the agent's answer is not valid JSON")
    }

    /// A token's full accessor ID from a full ID, a unique prefix, or `anonymous`.
    async fn token_id(&self, partial: &str) -> anyhow::Result<String> {
        if partial == "anonymous" {
            return Ok(ANONYMOUS_ACCESSOR_ID.to_owned());
        }
        self.full_id(partial, "/v1/acl/tokens", "AccessorID", "token").await
    }

    /// The one ID in `list_path`'s answer that starts with `partial`, unless `partial` is a whole UUID.
    pub(super) async fn full_id(
        &self,
        partial: &str,
        list_path: &str,
        field: &str,
        what: &str,
    ) -> anyhow::Result<String> {
        if partial.len() == UUID_LEN {
            return Ok(partial.to_owned());
        }
        let list = self.call(Method::GET, list_path, None).await?;
        let mut matches = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item[field].as_str())
            .filter(|id| id.starts_with(partial));
        match (matches.next(), matches.next()) {
            (Some(id), None) => Ok(id.to_owned()),
            (Some(_), Some(_)) => bail!("Partial {what} ID is not unique"),
            (None, _) => bail!("No such {what} ID with prefix: {partial}"),
        }
    }

    /// `Policies` links: names as given (the agent resolves them), IDs completed from prefixes.
    async fn policy_links(&self, ids: &[String], names: &[String]) -> anyhow::Result<Value> {
        self.links(ids, names, Kind::Policy).await
    }

    /// `Roles` links, the same way.
    async fn role_links(&self, ids: &[String], names: &[String]) -> anyhow::Result<Value> {
        self.links(ids, names, Kind::Role).await
    }

    /// Links by name first, then by ID, in the order Consul's CLI builds them.
    async fn links(&self, ids: &[String], names: &[String], kind: Kind) -> anyhow::Result<Value> {
        let (word, list_path) = kind.paths();
        let mut links: Vec<Value> = names.iter().map(|name| json!({ "Name": name })).collect();
        for partial in ids {
            let id = self
                .full_id(partial, list_path, "ID", word)
                .await
                .with_context(|| format!("Error resolving {word} ID {partial}"))?;
            links.push(json!({ "ID": id }));
        }
        Ok(Value::Array(links))
    }

    /// The ID a policy or role command names, looking `-name` up when no `-id` is given.
    async fn named_id(&self, kind: Kind, select: &SelectArgs) -> anyhow::Result<String> {
        let (word, list_path) = kind.paths();
        match (&select.id, &select.name) {
            (Some(partial), _) => self
                .full_id(partial, list_path, "ID", word)
                .await
                .with_context(|| format!("Error determining {word} ID")),
            (None, Some(name)) => {
                let found = self.read_by_name(kind, name).await?;
                found["ID"].as_str().map(str::to_owned).with_context(|| format!("the agent's {word} has no ID"))
            }
            (None, None) => bail!("Must specify either the -id or -name parameters"),
        }
    }

    /// Reads the policy or role a command names (by `-id` when given, else by `-name`).
    async fn read_named(&self, kind: Kind, select: &SelectArgs) -> anyhow::Result<Value> {
        let (word, _) = kind.paths();
        match (&select.id, &select.name) {
            (None, Some(name)) => self.read_by_name(kind, name).await,
            _ => {
                let id = self.named_id(kind, select).await?;
                let path = format!("/v1/acl/{word}/{}", segment(&id));
                self.call(Method::GET, &path, None).await.with_context(|| format!("Error reading {word} {id:?}"))
            }
        }
    }

    /// `GET /v1/acl/<kind>/name/<name>`.
    async fn read_by_name(&self, kind: Kind, name: &str) -> anyhow::Result<Value> {
        let (word, _) = kind.paths();
        let path = format!("/v1/acl/{word}/name/{}", segment(name));
        self.call(Method::GET, &path, None).await.with_context(|| format!("Error reading {word} {name:?}"))
    }
}

/// Consul's API client error text for a refused request: `Unexpected response code: 403 (body)`.
pub(super) fn unexpected_response(status: StatusCode, body: &[u8]) -> String {
    format!("Unexpected response code: {} ({})", status.as_u16(), String::from_utf8_lossy(body).trim())
}
