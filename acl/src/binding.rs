//! Binding rules' bind names: the bind types, the `${value.name}` templates and the checks Consul makes of what they render.
//!
//! A bind name is text with `${...}` references to the login's projected variables (`value.<attribute>` for each `ClaimMappings`
//! attribute). Rendering lowercases the values, as Consul's `InterpolateHIL(.., true)` does, and refuses a value that had capitals
//! rather than bind a name the claims did not say. A rule is checked when it is written by rendering it with placeholder values,
//! so a template that references an unknown variable or can never give a valid name is refused then, not at every login.

use std::collections::BTreeMap;

/// What a binding rule grants a token that logs in through its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindType {
    /// A service identity named by the bind name.
    Service,
    /// A node identity named by the bind name, in the server's datacenter.
    Node,
    /// The role of that name, when it exists at login.
    Role,
    /// The policy of that name, when it exists at login.
    Policy,
    /// The built-in templated policy of that name, with `BindVars`.
    TemplatedPolicy,
}

impl BindType {
    /// Reads Consul's spelling (`service`, `node`, `role`, `policy`, `templated-policy`).
    pub fn parse(text: &str) -> Result<BindType, String> {
        match text {
            "service" => Ok(BindType::Service),
            "node" => Ok(BindType::Node),
            "role" => Ok(BindType::Role),
            "policy" => Ok(BindType::Policy),
            "templated-policy" => Ok(BindType::TemplatedPolicy),
            other => Err(format!("Invalid Binding Rule: unknown BindType {other:?}")),
        }
    }

    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BindType::Service => "service",
            BindType::Node => "node",
            BindType::Role => "role",
            BindType::Policy => "policy",
            BindType::TemplatedPolicy => "templated-policy",
        }
    }
}

/// Renders `template` with `vars`, lowercased; an unknown variable, an unclosed `${` or a value with capitals is an error.
pub fn render_bind_name(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end =
            after.find('}').ok_or_else(|| format!("error interpreting template: unclosed \"${{\" in {template:?}"))?;
        let name = after[..end].trim();
        let value =
            vars.get(name).ok_or_else(|| format!("error interpreting template: unknown variable accessed: {name}"))?;
        if value.chars().any(char::is_uppercase) {
            return Err(format!(
                "invalid bind name: the projected variables contain uppercase characters (interpolated as {value:?} \
                 before lowercasing), but bind names for this type must be lowercase"
            ));
        }
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders a rule's bind name and checks the result for its type: service and node names per Consul's identity-name rule,
/// role and policy names per Consul's name rule, a templated policy's name must be a built-in template and its `name`
/// variable (`bind_var_name`, itself a template) must render it.
pub fn bind_name_for(
    bind_type: BindType,
    bind_name: &str,
    bind_var_name: Option<&str>,
    vars: &BTreeMap<String, String>,
) -> Result<(String, Option<String>), String> {
    if bind_type == BindType::TemplatedPolicy {
        let var = bind_var_name.filter(|v| !v.is_empty()).map(|v| render_bind_name(v, vars)).transpose()?;
        crate::render_templated_policy(bind_name, var.as_deref())
            .map_err(|why| format!("templated policy failed validation: {why}"))?;
        return Ok((bind_name.to_owned(), var));
    }
    let rendered = render_bind_name(bind_name, vars)?;
    let valid = match bind_type {
        BindType::Service | BindType::Node => crate::valid_identity_name(&rendered),
        _ => valid_role_or_policy_name(&rendered),
    };
    if !valid {
        return Err(format!("invalid bind name: {rendered:?}"));
    }
    Ok((rendered, None))
}

/// Checks a rule as Consul does when it is written: rendered with a placeholder for every variable the method offers.
pub fn check_binding_rule<'a>(
    bind_type: BindType,
    bind_name: &str,
    bind_var_name: Option<&str>,
    available: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    if bind_name.is_empty() {
        return Err("Invalid Binding Rule: no BindName is set".into());
    }
    let fake: BTreeMap<String, String> = available.map(|name| (format!("value.{name}"), "fake".to_owned())).collect();
    bind_name_for(bind_type, bind_name, bind_var_name, &fake).map(|_| ()).map_err(|why| {
        format!("Invalid Binding Rule: invalid BindName: failed to validate bindType {:?}: {why}", bind_type.as_str())
    })
}

/// Consul's rule for role and policy names: 1 to 256 of letters, digits, `-` and `_`.
fn valid_role_or_policy_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests;
