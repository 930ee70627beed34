//! `roster acl auth-method ...`, `roster acl binding-rule ...`, `roster login` and `roster logout`: Consul's commands of those
//! names over `/v1/acl/auth-method*`, `/v1/acl/binding-rule*`, `/v1/acl/login` and `/v1/acl/logout`.
//!
//! Only the `jwt` type exists, so the type-specific flags of Consul's other methods (`-kubernetes-host`, ...) are unknown
//! flags here; a `jwt` method is configured with `-config` (JSON text, `@FILE` or `-`), as in Consul.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::FormatArgs;
use super::run::{Acl, read_data_source, show, show_list};
use crate::cli::HttpArgs;
use crate::cli::client::segment;
use crate::config::EnvSource;

/// `roster acl auth-method ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuthMethodCommand {
    /// Create an auth method.
    Create(AuthMethodArgs),
    /// Print every auth method.
    List(AuthMethodListArgs),
    /// Print one auth method by -name.
    Read(AuthMethodNameArgs),
    /// Change an auth method's fields.
    Update(AuthMethodArgs),
    /// Delete an auth method by -name, with its binding rules and the tokens it minted.
    Delete(AuthMethodNameArgs),
}

/// `roster acl auth-method create|update`.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthMethodArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The method's type (create): `jwt`.
    #[arg(long = "type", value_name = "TYPE")]
    pub method_type: Option<String>,
    /// The method's name (required).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A name to show in UIs.
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// A description of the method.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The lifetime of tokens a login mints, as a Go duration (`1h`); none by default.
    #[arg(long, value_name = "DURATION")]
    pub max_token_ttl: Option<String>,
    /// `local` or `global`: where minted tokens are valid.
    #[arg(long, value_name = "LOCALITY")]
    pub token_locality: Option<String>,
    /// The method's config as JSON: literal, `@FILE` or `-` for stdin.
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// Update: replace every field instead of keeping the ones not given.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub no_merge: bool,
}

/// `roster acl auth-method list`.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthMethodListArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
}

/// `roster acl auth-method read|delete`.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthMethodNameArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The method's name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `roster acl binding-rule ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum BindingRuleCommand {
    /// Create a binding rule for an auth method.
    Create(BindingRuleArgs),
    /// Print every binding rule, or one method's with -method.
    List(BindingRuleListArgs),
    /// Print one binding rule by -id (or a unique prefix).
    Read(BindingRuleIdArgs),
    /// Change a binding rule's fields.
    Update(BindingRuleArgs),
    /// Delete a binding rule by -id.
    Delete(BindingRuleIdArgs),
}

/// `roster acl binding-rule create|update`.
#[derive(Debug, Clone, Default, Args)]
pub struct BindingRuleArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// Update: the rule's ID (or a unique prefix).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The auth method the rule belongs to (create).
    #[arg(long, value_name = "NAME")]
    pub method: Option<String>,
    /// A description of the rule.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// A filter over the login's claims (`value.role == "web"`); empty matches every login.
    #[arg(long, value_name = "EXPR")]
    pub selector: Option<String>,
    /// What the rule binds: service, node, role, policy or templated-policy.
    #[arg(long, value_name = "TYPE")]
    pub bind_type: Option<String>,
    /// The name bound, with `${value.NAME}` interpolations.
    #[arg(long, value_name = "NAME")]
    pub bind_name: Option<String>,
    /// A templated policy's variable `name=VALUE` (VALUE may interpolate); templated-policy only.
    #[arg(long, value_name = "name=VALUE")]
    pub bind_vars: Option<String>,
    /// Update: replace every field instead of keeping the ones not given.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub no_merge: bool,
}

/// `roster acl binding-rule list`.
#[derive(Debug, Clone, Default, Args)]
pub struct BindingRuleListArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// Only this auth method's rules.
    #[arg(long, value_name = "NAME")]
    pub method: Option<String>,
}

/// `roster acl binding-rule read|delete`.
#[derive(Debug, Clone, Default, Args)]
pub struct BindingRuleIdArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The rule's ID, or a unique prefix of it.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// `roster login`.
#[derive(Debug, Clone, Default, Args)]
pub struct LoginArgs {
    /// Agent address (a token is not needed to log in).
    #[command(flatten)]
    pub http: HttpArgs,
    /// The auth method to log in through.
    #[arg(long, value_name = "NAME")]
    pub method: Option<String>,
    /// The file holding the bearer token (the JWT).
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// Where to write the new token's SecretID (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub token_sink_file: Option<PathBuf>,
    /// Metadata `key=value` recorded in the token's description; may repeat.
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
}

/// `roster logout`.
#[derive(Debug, Clone, Default, Args)]
pub struct LogoutArgs {
    /// Agent address and the login token to delete (`-token`, `-token-file`, `CONSUL_HTTP_TOKEN`).
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Runs `roster acl auth-method ...`.
pub(super) async fn auth_method(command: &AuthMethodCommand, env: &dyn EnvSource) -> anyhow::Result<String> {
    match command {
        AuthMethodCommand::Create(args) => {
            let acl = Acl::new(&args.http, env)?;
            let body = method_body(args, Map::new(), true).await.context("Failed to create auth method")?;
            let method = acl
                .call(Method::PUT, "/v1/acl/auth-method", Some(body))
                .await
                .context("Failed to create new auth method")?;
            show(&args.output, &method, method_pretty)
        }
        AuthMethodCommand::List(args) => {
            let acl = Acl::new(&args.http, env)?;
            let methods = acl
                .call(Method::GET, "/v1/acl/auth-methods", None)
                .await
                .context("Failed to retrieve the auth method list")?;
            show_list(&args.output, &methods, method_list_pretty)
        }
        AuthMethodCommand::Read(args) => {
            let name = args.name.as_deref().context("Must specify the -name parameter")?;
            let acl = Acl::new(&args.http, env)?;
            let path = format!("/v1/acl/auth-method/{}", segment(name));
            let method = acl
                .call(Method::GET, &path, None)
                .await
                .with_context(|| format!("Error reading auth method {name:?}"))?;
            show(&args.output, &method, method_pretty)
        }
        AuthMethodCommand::Update(args) => {
            let name =
                args.name.as_deref().context("Cannot update an auth method without specifying the -name parameter")?;
            let acl = Acl::new(&args.http, env)?;
            let path = format!("/v1/acl/auth-method/{}", segment(name));
            let base = if args.no_merge {
                Map::new()
            } else {
                let current =
                    acl.call(Method::GET, &path, None).await.context("Error retrieving current auth method")?;
                current.as_object().cloned().unwrap_or_default()
            };
            let body = method_body(args, base, args.no_merge).await.context("Failed to update auth method")?;
            let method = acl
                .call(Method::PUT, &path, Some(body))
                .await
                .with_context(|| format!("Failed to update auth method {name}"))?;
            show(&args.output, &method, method_pretty)
        }
        AuthMethodCommand::Delete(args) => {
            let name = args.name.as_deref().context("Must specify the -name parameter")?;
            let acl = Acl::new(&args.http, env)?;
            let path = format!("/v1/acl/auth-method/{}", segment(name));
            acl.call(Method::DELETE, &path, None)
                .await
                .with_context(|| format!("Error deleting auth method {name:?}"))?;
            Ok(format!("Auth method {name:?} deleted successfully\n"))
        }
    }
}

/// The body of an auth-method create or update: the flags given, over `base`; `full` requires the type and name.
async fn method_body(args: &AuthMethodArgs, mut body: Map<String, Value>, full: bool) -> anyhow::Result<Value> {
    if full && args.method_type.is_none() && !body.contains_key("Type") {
        bail!("Missing required '-type' flag");
    }
    if args.name.is_none() {
        bail!("Missing required '-name' flag");
    }
    for (key, value) in [
        ("Type", &args.method_type),
        ("Name", &args.name),
        ("DisplayName", &args.display_name),
        ("Description", &args.description),
        ("MaxTokenTTL", &args.max_token_ttl),
        ("TokenLocality", &args.token_locality),
    ] {
        if let Some(value) = value {
            body.insert(key.to_owned(), json!(value));
        }
    }
    if let Some(source) = &args.config {
        let text = read_data_source(source).await.context("Failed to read -config")?;
        let config: Value = serde_json::from_str(&text).context("Failed to parse -config as JSON")?;
        body.insert("Config".to_owned(), config);
    }
    for read_only in ["CreateIndex", "ModifyIndex"] {
        body.remove(read_only);
    }
    Ok(Value::Object(body))
}

/// Runs `roster acl binding-rule ...`.
pub(super) async fn binding_rule(command: &BindingRuleCommand, env: &dyn EnvSource) -> anyhow::Result<String> {
    match command {
        BindingRuleCommand::Create(args) => {
            let acl = Acl::new(&args.http, env)?;
            if args.method.is_none() {
                bail!("Missing required '-method' flag");
            }
            let body = rule_body(args, Map::new()).context("Failed to create binding rule")?;
            let rule = acl
                .call(Method::PUT, "/v1/acl/binding-rule", Some(body))
                .await
                .context("Failed to create new binding rule")?;
            show(&args.output, &rule, rule_pretty)
        }
        BindingRuleCommand::List(args) => {
            let acl = Acl::new(&args.http, env)?;
            let path = match &args.method {
                Some(method) => format!("/v1/acl/binding-rules?authmethod={}", segment(method)),
                None => "/v1/acl/binding-rules".to_owned(),
            };
            let rules = acl.call(Method::GET, &path, None).await.context("Failed to retrieve the binding rule list")?;
            show_list(&args.output, &rules, rule_list_pretty)
        }
        BindingRuleCommand::Read(args) => {
            let acl = Acl::new(&args.http, env)?;
            let id = rule_id(&acl, args.id.as_deref()).await?;
            let path = format!("/v1/acl/binding-rule/{}", segment(&id));
            let rule = acl
                .call(Method::GET, &path, None)
                .await
                .with_context(|| format!("Error reading binding rule {id:?}"))?;
            show(&args.output, &rule, rule_pretty)
        }
        BindingRuleCommand::Update(args) => {
            let acl = Acl::new(&args.http, env)?;
            let id = rule_id(&acl, args.id.as_deref()).await?;
            let path = format!("/v1/acl/binding-rule/{}", segment(&id));
            let current = acl.call(Method::GET, &path, None).await.context("Error retrieving current binding rule")?;
            let mut base = current.as_object().cloned().unwrap_or_default();
            if args.no_merge {
                base.retain(|key, _| key == "AuthMethod");
            }
            let body = rule_body(args, base).with_context(|| format!("Failed to update binding rule {id}"))?;
            let rule = acl
                .call(Method::PUT, &path, Some(body))
                .await
                .with_context(|| format!("Failed to update binding rule {id}"))?;
            show(&args.output, &rule, rule_pretty)
        }
        BindingRuleCommand::Delete(args) => {
            let acl = Acl::new(&args.http, env)?;
            let id = rule_id(&acl, args.id.as_deref()).await?;
            let path = format!("/v1/acl/binding-rule/{}", segment(&id));
            acl.call(Method::DELETE, &path, None)
                .await
                .with_context(|| format!("Error deleting binding rule {id:?}"))?;
            Ok(format!("Binding rule {id:?} deleted successfully\n"))
        }
    }
}

async fn rule_id(acl: &Acl, partial: Option<&str>) -> anyhow::Result<String> {
    let partial = partial.context("Must specify the -id parameter")?;
    acl.full_id(partial, "/v1/acl/binding-rules", "ID", "binding rule")
        .await
        .context("Error determining binding rule ID")
}

/// The body of a binding-rule create or update: the flags given, over `base`.
fn rule_body(args: &BindingRuleArgs, mut body: Map<String, Value>) -> anyhow::Result<Value> {
    for (key, value) in [
        ("AuthMethod", &args.method),
        ("Description", &args.description),
        ("Selector", &args.selector),
        ("BindType", &args.bind_type),
        ("BindName", &args.bind_name),
    ] {
        if let Some(value) = value {
            body.insert(key.to_owned(), json!(value));
        }
    }
    if let Some(vars) = &args.bind_vars {
        let Some(("name", value)) = vars.split_once('=') else {
            bail!("-bind-vars must be name=VALUE, got {vars:?}");
        };
        body.insert("BindVars".to_owned(), json!({ "Name": value }));
    }
    for read_only in ["CreateIndex", "ModifyIndex"] {
        body.remove(read_only);
    }
    Ok(Value::Object(body))
}

/// Runs `roster login`: the bearer token goes to the agent, the new token's secret into the sink file (0600).
pub(in crate::cli) async fn login(args: &LoginArgs, env: &dyn EnvSource) -> anyhow::Result<String> {
    let method = args.method.as_deref().context("Missing required '-method' flag")?;
    let bearer_file = args.bearer_token_file.as_deref().context("Missing required '-bearer-token-file' flag")?;
    let sink = args.token_sink_file.as_deref().context("Missing required '-token-sink-file' flag")?;
    let bearer = tokio::fs::read_to_string(bearer_file)
        .await
        .with_context(|| format!("Error reading bearer token file {}", bearer_file.display()))?;
    let mut meta = Map::new();
    for pair in &args.meta {
        let (key, value) = pair.split_once('=').with_context(|| format!("-meta must be key=value, got {pair:?}"))?;
        meta.insert(key.to_owned(), json!(value));
    }
    let acl = Acl::new(&args.http, env)?;
    let body = json!({ "AuthMethod": method, "BearerToken": bearer.trim(), "Meta": meta });
    let token = acl.call(Method::POST, "/v1/acl/login", Some(body)).await.context("Error logging in")?;
    let secret = token["SecretID"].as_str().context("Error logging in: the agent's answer has no SecretID")?;
    write_private(sink, secret).await.with_context(|| format!("Error writing token to file {}", sink.display()))?;
    Ok(String::new())
}

/// Runs `roster logout` with the token the flags or environment give.
pub(in crate::cli) async fn logout(args: &LogoutArgs, env: &dyn EnvSource) -> anyhow::Result<String> {
    let acl = Acl::new(&args.http, env)?;
    acl.call(Method::POST, "/v1/acl/logout", None).await.context("Error destroying token")?;
    Ok(String::new())
}

/// Writes `secret` to `path` readable by its owner only, replacing the file atomically so no reader sees half a token.
async fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("the sink path names no file")?.to_string_lossy().into_owned();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let (temp_path, secret) = (temp.clone(), secret.to_owned());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp_path)?;
        file.write_all(secret.as_bytes())?;
        file.sync_all()
    })
    .await??;
    tokio::fs::rename(&temp, path).await?;
    Ok(())
}

/// One auth method: Consul's `FormatAuthMethod`.
fn method_pretty(method: &Value, meta: bool) -> String {
    let mut out = String::new();
    method_fields(&mut out, method, meta, "");
    let _ = writeln!(out, "Config:");
    out.push_str(&serde_json::to_string_pretty(&method["Config"]).unwrap_or_default());
    out
}

fn method_fields(out: &mut String, method: &Value, meta: bool, indent: &str) {
    let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let _ = writeln!(out, "{indent}Name:          {}", field(&method["Name"]));
    let _ = writeln!(out, "{indent}Type:          {}", field(&method["Type"]));
    if !field(&method["DisplayName"]).is_empty() {
        let _ = writeln!(out, "{indent}Display Name:  {}", field(&method["DisplayName"]));
    }
    let _ = writeln!(out, "{indent}Description:   {}", field(&method["Description"]));
    if !field(&method["MaxTokenTTL"]).is_empty() {
        let _ = writeln!(out, "{indent}MaxTokenTTL:   {}", field(&method["MaxTokenTTL"]));
    }
    if !field(&method["TokenLocality"]).is_empty() {
        let _ = writeln!(out, "{indent}TokenLocality: {}", field(&method["TokenLocality"]));
    }
    if meta {
        let _ = writeln!(out, "{indent}Create Index:  {}", method["CreateIndex"].as_u64().unwrap_or(0));
        let _ = writeln!(out, "{indent}Modify Index:  {}", method["ModifyIndex"].as_u64().unwrap_or(0));
    }
}

/// `auth-method list`: a `Name:` heading and the stub's fields indented.
fn method_list_pretty(methods: &Value, meta: bool) -> anyhow::Result<String> {
    let methods = methods.as_array().context("unexpected /v1/acl/auth-methods answer: not a list")?;
    let mut out = String::new();
    for method in methods {
        let _ = writeln!(out, "{}:", method["Name"].as_str().unwrap_or_default());
        method_fields(&mut out, method, meta, "   ");
    }
    Ok(out)
}

/// One binding rule: Consul's `FormatBindingRule`.
fn rule_pretty(rule: &Value, meta: bool) -> String {
    let mut out = String::new();
    rule_fields(&mut out, rule, meta, "");
    out
}

fn rule_fields(out: &mut String, rule: &Value, meta: bool, indent: &str) {
    let field = |name: &str| rule[name].as_str().unwrap_or_default().to_owned();
    let _ = writeln!(out, "{indent}ID:           {}", field("ID"));
    let _ = writeln!(out, "{indent}AuthMethod:   {}", field("AuthMethod"));
    let _ = writeln!(out, "{indent}Description:  {}", field("Description"));
    let _ = writeln!(out, "{indent}BindType:     {}", field("BindType"));
    let _ = writeln!(out, "{indent}BindName:     {}", field("BindName"));
    if let Some(name) = rule["BindVars"]["Name"].as_str() {
        let _ = writeln!(out, "{indent}BindVars:     name={name}");
    }
    let _ = writeln!(out, "{indent}Selector:     {}", field("Selector"));
    if meta {
        let _ = writeln!(out, "{indent}Create Index: {}", rule["CreateIndex"].as_u64().unwrap_or(0));
        let _ = writeln!(out, "{indent}Modify Index: {}", rule["ModifyIndex"].as_u64().unwrap_or(0));
    }
}

/// `binding-rule list`: the rule's ID as heading and its fields indented.
fn rule_list_pretty(rules: &Value, meta: bool) -> anyhow::Result<String> {
    let rules = rules.as_array().context("unexpected /v1/acl/binding-rules answer: not a list")?;
    let mut out = String::new();
    for rule in rules {
        let _ = writeln!(out, "{}:", rule["ID"].as_str().unwrap_or_default());
        rule_fields(&mut out, rule, meta, "   ");
    }
    Ok(out)
}
