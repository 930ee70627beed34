//! Rules Consul synthesizes: service and node identities, the built-in policies, templated policies.
//!
//! From Consul's `agent/structs/acl.go` + `acl_ce.go` (identity templates, `builtin/global-read-only`),
//! `agent/structs/acl_templated_policy.go` + `acltemplatedpolicy/policies/ce/*.hcl` (templated
//! policies) and `acl/validation.go` (`IsValidServiceIdentityName`, `IsValidNodeIdentityName`).

/// Rules Consul synthesizes for a token's/role's service identity (`service "<name>" write`, its
/// sidecar proxy, read on all services and nodes). The name is not checked: see [`valid_identity_name`].
pub fn service_identity_rules(service_name: &str) -> String {
    SERVICE_TEMPLATE.replace(NAME, service_name)
}

/// Rules Consul synthesizes for a node identity (`node "<name>" write`, read on all services).
pub fn node_identity_rules(node_name: &str) -> String {
    NODE_TEMPLATE.replace(NAME, node_name)
}

/// The built-in read-only policy's rules (`builtin/global-read-only`).
pub const GLOBAL_READ_ONLY_RULES: &str = r#"
acl = "read"
agent_prefix "" {
	policy = "read"
}
event_prefix "" {
	policy = "read"
}
key_prefix "" {
	policy = "read"
}
keyring = "read"
node_prefix "" {
	policy = "read"
}
operator = "read"
mesh = "read"
peering = "read"
query_prefix "" {
	policy = "read"
}
service_prefix "" {
	policy = "read"
	intentions = "read"
}
session_prefix "" {
	policy = "read"
}"#;

/// The built-in management policy's rules (`global-management`).
pub const GLOBAL_MANAGEMENT_RULES: &str = r#"
acl = "write"
agent_prefix "" {
	policy = "write"
}
event_prefix "" {
	policy = "write"
}
key_prefix "" {
	policy = "write"
}
keyring = "write"
node_prefix "" {
	policy = "write"
}
operator = "write"
mesh = "write"
peering = "write"
query_prefix "" {
	policy = "write"
}
service_prefix "" {
	policy = "write"
	intentions = "write"
}
session_prefix "" {
	policy = "write"
}"#;

/// The placeholder in [`TemplatedPolicy::template`].
const NAME: &str = "${name}";

const SERVICE_TEMPLATE: &str = r#"
service "${name}" {
	policy = "write"
}
service "${name}-sidecar-proxy" {
	policy = "write"
}
service_prefix "" {
	policy = "read"
}
node_prefix "" {
	policy = "read"
}"#;

const NODE_TEMPLATE: &str = r#"
node "${name}" {
	policy = "write"
}
service_prefix "" {
	policy = "read"
}"#;

/// The JSON schema of templates that need a `name` (as Consul's `schemas/*.json`).
const NAME_SCHEMA: &str = r##"{
  "type": "object",
  "properties": {
    "name": { "type": "string", "$ref": "#/definitions/min-length-one" }
  },
  "required": ["name"],
  "definitions": {
    "min-length-one": {
      "type": "string",
      "minLength": 1
    }
  }
}"##;

/// One of Consul's built-in templated policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatedPolicy {
    /// Its name, e.g. `builtin/service`.
    pub name: &'static str,
    /// Consul's fixed ID, e.g. `00000000-0000-0000-0000-000000000003` for `builtin/service`.
    pub template_id: &'static str,
    /// The JSON schema of its variables as Consul returns it; `""` when it takes none.
    pub schema: &'static str,
    /// HCL rules with `${name}` placeholders.
    pub template: &'static str,
    /// Consul's description.
    pub description: &'static str,
}

static TEMPLATED: [TemplatedPolicy; 6] = [
    TemplatedPolicy {
        name: "builtin/service",
        template_id: "00000000-0000-0000-0000-000000000003",
        schema: NAME_SCHEMA,
        template: SERVICE_TEMPLATE,
        description: "Gives the token or role permissions to register a service and discover services in the Consul catalog. It also gives the specified service's sidecar proxy the permission to discover and route traffic to other services.",
    },
    TemplatedPolicy {
        name: "builtin/node",
        template_id: "00000000-0000-0000-0000-000000000004",
        schema: NAME_SCHEMA,
        template: NODE_TEMPLATE,
        description: "Gives the token or role permissions for a register an agent/node into the catalog. A node is typically a consul agent but can also be a physical server, cloud instance or a container.",
    },
    TemplatedPolicy {
        name: "builtin/dns",
        template_id: "00000000-0000-0000-0000-000000000005",
        schema: "",
        template: r#"
node_prefix "" {
	policy = "read"
}
service_prefix "" {
	policy = "read"
}
query_prefix "" {
	policy = "read"
}"#,
        description: "Gives the token or role permissions for the Consul DNS to query services in the network.",
    },
    TemplatedPolicy {
        name: "builtin/nomad-server",
        template_id: "00000000-0000-0000-0000-000000000006",
        schema: "",
        template: r#"
acl = "write"
agent_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "write"
}"#,
        description: "Gives the token or role permissions required for integration with a nomad server.",
    },
    TemplatedPolicy {
        name: "builtin/api-gateway",
        template_id: "00000000-0000-0000-0000-000000000008",
        schema: NAME_SCHEMA,
        template: r#"mesh = "read"
node_prefix "" {
	policy = "read"
}
service_prefix "" {
	policy = "read"
}
service "${name}" {
	policy = "write"
}"#,
        description: "Gives the token or role permissions for a Consul api gateway",
    },
    TemplatedPolicy {
        name: "builtin/nomad-client",
        template_id: "00000000-0000-0000-0000-000000000009",
        schema: "",
        template: r#"agent_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "write"
}
key_prefix "" {
  policy = "read"
}"#,
        description: "Gives the token or role permissions required for integration with a nomad client.",
    },
];

/// Consul's built-in templated policies, by ID.
pub fn templated_policies() -> &'static [TemplatedPolicy] {
    &TEMPLATED
}

/// Renders a templated policy with its `name` variable (ignored by templates that take none).
///
/// An unknown template, or a missing or invalid name where the template needs one, is an error
/// naming it. Names must pass [`valid_identity_name`] (Consul checks this for `builtin/service` and
/// `builtin/node`; roster also checks it for `builtin/api-gateway`, whose name lands in the rules).
pub fn render_templated_policy(template_name: &str, name: Option<&str>) -> std::result::Result<String, String> {
    let Some(template) = TEMPLATED.iter().find(|t| t.name == template_name) else {
        return Err(format!("acl templated policy does not exist: {template_name}"));
    };
    if template.schema.is_empty() {
        return Ok(template.template.to_owned());
    }
    let name = match name {
        None => return Err(format!("{template_name}: the variable \"name\" is required")),
        Some("") => return Err(format!("{template_name}: the variable \"name\" must not be empty")),
        Some(name) => name,
    };
    if !valid_identity_name(name) {
        return Err(format!(
            "{template_name}: name {name:?} is invalid. Only lowercase alphanumeric characters, '-' and '_' are allowed"
        ));
    }
    Ok(template.template.replace(NAME, name))
}

/// Consul's validity check for service-identity and node-identity names: 1 to 256 bytes of lowercase
/// alphanumerics, `-` and `_`, starting and ending with an alphanumeric.
pub fn valid_identity_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 256
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|b| alnum(b) || *b == b'-' || *b == b'_')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
