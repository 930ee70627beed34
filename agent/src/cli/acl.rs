//! `roster acl ...`: Consul's ACL command line over the agent's `/v1/acl/*` and
//! `/v1/agent/token/*` endpoints.
//!
//! Flag names, defaults and output follow Consul's `command/acl` so scripts written for
//! `consul acl` keep working: `-accessor-id` (with the older `-id`), repeatable `-policy-id`,
//! `-policy-name`, `-service-identity NAME[:DC1,DC2]`, `-node-identity NAME:DC`, `-format
//! pretty|json` and `-meta`.
//!
//! Layout: the argument types are here, [`run`] executes them (`acl/run.rs`), and the text
//! formats are pure functions of the agent's JSON (`acl/format.rs`). Auth methods, binding
//! rules, `roster login` and `roster logout` have their flags, runs and formats in `acl/auth.rs`.

mod auth;
mod format;
mod run;

pub use auth::{AuthMethodCommand, BindingRuleCommand, LoginArgs, LogoutArgs};
pub(super) use auth::{login, logout};

use clap::{Args, Subcommand, ValueEnum};

pub(super) use run::{report, run};

use super::HttpArgs;

/// `roster acl ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AclCommand {
    /// Create the initial management token (once per cluster).
    Bootstrap(BootstrapArgs),
    /// Create, list, read, update, clone and delete tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, list, read, update and delete policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Create, list, read, update and delete roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Set one of the tokens the agent itself uses: `set-agent-token TYPE TOKEN`.
    SetAgentToken(SetAgentTokenArgs),
    /// List, read and preview the built-in templated policies.
    #[command(subcommand)]
    TemplatedPolicy(TemplatedPolicyCommand),
    /// Create, list, read, update and delete auth methods.
    #[command(subcommand)]
    AuthMethod(AuthMethodCommand),
    /// Create, list, read, update and delete binding rules.
    #[command(subcommand)]
    BindingRule(BindingRuleCommand),
}

/// `-format`: Consul's two output formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned `Field: value` lines.
    #[default]
    Pretty,
    /// The agent's JSON, indented.
    Json,
}

/// `-format` and `-meta`, shared by every command that prints ACL objects.
#[derive(Debug, Clone, Default, Args)]
pub struct FormatArgs {
    /// Output format: pretty or json.
    #[arg(long, value_enum, default_value_t = OutputFormat::Pretty, value_name = "FORMAT")]
    pub format: OutputFormat,
    /// Also show the content hash and Raft indexes.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub meta: bool,
}

/// `roster acl bootstrap`.
#[derive(Debug, Clone, Default, Args)]
pub struct BootstrapArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
}

/// `roster acl token ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create a token linked to policies, roles, identities or a templated policy.
    Create(TokenCreateArgs),
    /// Print every token.
    List(TokenListArgs),
    /// Print one token, by accessor ID (or prefix) or the caller's own with -self.
    Read(TokenReadArgs),
    /// Change a token's description and links.
    Update(TokenUpdateArgs),
    /// Copy a token's links into a new token with new IDs.
    Clone(TokenCloneArgs),
    /// Delete a token.
    Delete(TokenDeleteArgs),
}

/// The links a token or role may have, as repeatable flags.
#[derive(Debug, Clone, Default, Args)]
pub struct LinkArgs {
    /// ID (or unique ID prefix) of a policy to link; may repeat.
    #[arg(long, value_name = "ID")]
    pub policy_id: Vec<String>,
    /// Name of a policy to link; may repeat.
    #[arg(long, value_name = "NAME")]
    pub policy_name: Vec<String>,
    /// Service identity `NAME` or `NAME:DC1,DC2`; may repeat.
    #[arg(long, value_name = "NAME[:DCS]")]
    pub service_identity: Vec<String>,
    /// Node identity `NAME:DC`; may repeat.
    #[arg(long, value_name = "NAME:DC")]
    pub node_identity: Vec<String>,
}

/// `roster acl token create`.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenCreateArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// Policies and identities.
    #[command(flatten)]
    pub links: LinkArgs,
    /// ID (or unique ID prefix) of a role to link; may repeat.
    #[arg(long, value_name = "ID")]
    pub role_id: Vec<String>,
    /// Name of a role to link; may repeat.
    #[arg(long, value_name = "NAME")]
    pub role_name: Vec<String>,
    /// A templated policy to link, e.g. `builtin/service`, with its variables from -var.
    #[arg(long, value_name = "NAME")]
    pub templated_policy: Option<String>,
    /// A templated policy variable `name:value`; may repeat.
    #[arg(long = "var", value_name = "NAME:VALUE")]
    pub vars: Vec<String>,
    /// A description of the token.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// How long the token is valid, as a Go duration (`1h30m`).
    #[arg(long, value_name = "DURATION")]
    pub expires_ttl: Option<String>,
    /// Make the token local to this datacenter.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub local: bool,
    /// The accessor ID to create the token with (a UUID; generated when omitted).
    #[arg(long, value_name = "UUID")]
    pub accessor: Option<String>,
    /// The secret ID to create the token with (a UUID; generated when omitted).
    #[arg(long, value_name = "UUID")]
    pub secret: Option<String>,
}

/// `roster acl token list`.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenListArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
}

/// `roster acl token read`.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenReadArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// Accessor ID (or unique prefix) of the token; `-id` is Consul's older spelling.
    #[arg(long, alias = "id", value_name = "ID")]
    pub accessor_id: Option<String>,
    /// Read the token the request is made with (`-token`, `CONSUL_HTTP_TOKEN`...).
    #[arg(long = "self", num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub self_token: bool,
    /// Also print the contents of every linked policy and role.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub expanded: bool,
}

/// `roster acl token update`.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenUpdateArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// Accessor ID (or unique prefix) of the token; `-id` is Consul's older spelling.
    #[arg(long, alias = "id", value_name = "ID")]
    pub accessor_id: Option<String>,
    /// A new description (the old one stays when omitted).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Replacement policies and identities: each list given replaces the token's list.
    #[command(flatten)]
    pub links: LinkArgs,
    /// Replacement role IDs; may repeat.
    #[arg(long, value_name = "ID")]
    pub role_id: Vec<String>,
    /// Replacement role names; may repeat.
    #[arg(long, value_name = "NAME")]
    pub role_name: Vec<String>,
    /// A policy ID to add, keeping the token's policies; may repeat.
    #[arg(long, value_name = "ID")]
    pub append_policy_id: Vec<String>,
    /// A policy name to add, keeping the token's policies; may repeat.
    #[arg(long, value_name = "NAME")]
    pub append_policy_name: Vec<String>,
    /// A role ID to add, keeping the token's roles; may repeat.
    #[arg(long, value_name = "ID")]
    pub append_role_id: Vec<String>,
    /// A role name to add, keeping the token's roles; may repeat.
    #[arg(long, value_name = "NAME")]
    pub append_role_name: Vec<String>,
    /// A service identity to add or replace by name, keeping the others; may repeat.
    #[arg(long, value_name = "NAME[:DCS]")]
    pub append_service_identity: Vec<String>,
    /// A node identity to add, keeping the others; may repeat.
    #[arg(long, value_name = "NAME:DC")]
    pub append_node_identity: Vec<String>,
}

/// `roster acl token clone`.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenCloneArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// Accessor ID (or unique prefix) of the token to clone.
    #[arg(long, alias = "id", value_name = "ID")]
    pub accessor_id: Option<String>,
    /// The clone's description (default: the original's).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

/// `roster acl token delete`.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenDeleteArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Accessor ID (or unique prefix) of the token to delete.
    #[arg(long, alias = "id", value_name = "ID")]
    pub accessor_id: Option<String>,
}

/// `roster acl policy ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum PolicyCommand {
    /// Create a policy from rules text, `@FILE` or `-` (stdin).
    Create(PolicyCreateArgs),
    /// Print every policy.
    List(PolicyListArgs),
    /// Print one policy by -id or -name.
    Read(PolicyReadArgs),
    /// Change a policy's name, description, rules or datacenters.
    Update(PolicyUpdateArgs),
    /// Delete a policy by -id or -name.
    Delete(PolicySelectArgs),
}

/// `roster acl policy create`.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyCreateArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The policy's name (required).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A description of the policy.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The rules: literal text, `@FILE` or `-` for stdin.
    #[arg(long, value_name = "RULES")]
    pub rules: Option<String>,
    /// A datacenter the policy is valid in (default: all); may repeat.
    #[arg(long, value_name = "DC")]
    pub valid_datacenter: Vec<String>,
}

/// `roster acl policy list`.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyListArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
}

/// Which policy or role a command names: `-id` (or a unique prefix) or `-name`.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectArgs {
    /// The ID, or a unique prefix of it.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `roster acl policy read`.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyReadArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The policy.
    #[command(flatten)]
    pub select: SelectArgs,
}

/// `roster acl policy delete` and `roster acl role delete`.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicySelectArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The policy or role.
    #[command(flatten)]
    pub select: SelectArgs,
}

/// `roster acl policy update`: `-id` names the policy (then `-name` renames it), or `-name` alone does.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyUpdateArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The policy, and with -id a new name.
    #[command(flatten)]
    pub select: SelectArgs,
    /// A new description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// New rules: literal text, `@FILE` or `-` for stdin.
    #[arg(long, value_name = "RULES")]
    pub rules: Option<String>,
    /// Replacement datacenters; may repeat.
    #[arg(long, value_name = "DC")]
    pub valid_datacenter: Vec<String>,
    /// Replace every field instead of keeping the ones not given.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub no_merge: bool,
}

/// `roster acl role ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum RoleCommand {
    /// Create a role linked to policies and identities.
    Create(RoleCreateArgs),
    /// Print every role.
    List(PolicyListArgs),
    /// Print one role by -id or -name.
    Read(PolicyReadArgs),
    /// Change a role's name, description or links.
    Update(RoleUpdateArgs),
    /// Delete a role by -id or -name.
    Delete(PolicySelectArgs),
}

/// `roster acl role create`.
#[derive(Debug, Clone, Default, Args)]
pub struct RoleCreateArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The role's name (required).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A description of the role.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Policies and identities.
    #[command(flatten)]
    pub links: LinkArgs,
}

/// `roster acl role update`: links given are added to the role's, or replace them with -no-merge.
#[derive(Debug, Clone, Default, Args)]
pub struct RoleUpdateArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The role, and with -id a new name.
    #[command(flatten)]
    pub select: SelectArgs,
    /// A new description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Policies and identities.
    #[command(flatten)]
    pub links: LinkArgs,
    /// Replace the role's fields instead of adding to them.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub no_merge: bool,
}

/// `roster acl set-agent-token TYPE TOKEN`.
#[derive(Debug, Clone, Default, Args)]
pub struct SetAgentTokenArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// default, agent, agent_recovery (recovery), replication, config_file_service_registration,
    /// dns, or a legacy name (acl_token, acl_agent_token, agent_master, acl_agent_master_token,
    /// acl_replication_token).
    #[arg(value_name = "TYPE")]
    pub kind: String,
    /// The token: literal, `@FILE` or `-` for stdin.
    #[arg(value_name = "TOKEN")]
    pub token_value: String,
}

/// `roster acl templated-policy ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TemplatedPolicyCommand {
    /// List the templated policies' names.
    List(PolicyListArgs),
    /// Describe one templated policy.
    Read(TemplatedPolicyArgs),
    /// Print the policy a templated policy renders to for the given -var values.
    Preview(TemplatedPolicyArgs),
}

/// `roster acl templated-policy read|preview`.
#[derive(Debug, Clone, Default, Args)]
pub struct TemplatedPolicyArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output format.
    #[command(flatten)]
    pub output: FormatArgs,
    /// The templated policy's name, e.g. `builtin/service`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A template variable `name:value` (preview); may repeat.
    #[arg(long = "var", value_name = "NAME:VALUE")]
    pub vars: Vec<String>,
}

#[cfg(test)]
mod tests;
