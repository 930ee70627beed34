//! The upstream file as a pure function of the service's healthy instances and the KV settings.
//!
//! Templates use a deliberately tiny syntax (see the README): `{{name}}` placeholders,
//! `{{#each backends}}...{{/each}}` repeated per backend, and `{{#empty}}...{{/empty}}` kept only
//! when there is no backend. Every value that reaches the file is validated first, because a
//! stray `;` or `}` from a KV write would make nginx refuse the whole configuration on reload.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::Value;

/// The template used without `-template`: one nginx `upstream` block. nginx refuses an upstream
/// with no server, so an empty set renders one `down` server and nginx answers 502.
pub const DEFAULT_TEMPLATE: &str = "\
# Written by roster-lb-helper for service {{service}}; changes here are overwritten.
upstream {{service}} {
{{#each backends}}    server {{address}}:{{port}} weight={{weight}} max_fails={{max_fails}} fail_timeout={{fail_timeout}};
{{/each}}{{#empty}}    server 127.0.0.1:9 down;
{{/empty}}}
";

/// One healthy instance, as the template sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    /// Address nginx connects to (IPv6 in brackets).
    pub address: String,
    /// Service port.
    pub port: u16,
    /// Service ID, the key of its `weight/<id>` setting.
    pub id: String,
    /// Node name.
    pub node: String,
    /// Weight from the service registration (`Weights.Passing`), before KV overrides.
    pub weight: u32,
}

/// Settings read from the KV prefix; absent or invalid values fall back to nginx's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `max_fails` (nginx default 1).
    pub max_fails: u32,
    /// `fail_timeout` (nginx default 10s).
    pub fail_timeout: String,
    /// `weight/<service id>` overrides.
    pub weights: BTreeMap<String, u32>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { max_fails: 1, fail_timeout: "10s".to_owned(), weights: BTreeMap::new() }
    }
}

/// Reads `/v1/health/service/<name>?passing`: one backend per instance, sorted so the same set
/// always renders the same text. Instances with an unusable address are left out, with a warning.
pub fn backends(entries: &Value) -> anyhow::Result<Vec<Backend>> {
    let entries = entries.as_array().context("the health answer is not a list")?;
    let mut backends = Vec::new();
    for entry in entries {
        let service = &entry["Service"];
        let address = match service["Address"].as_str() {
            Some(address) if !address.is_empty() => address,
            _ => entry["Node"]["Address"].as_str().unwrap_or_default(),
        };
        let id = service["ID"].as_str().unwrap_or_default().to_owned();
        let port = service["Port"].as_u64().and_then(|port| u16::try_from(port).ok()).unwrap_or(0);
        let Some(address) = nginx_address(address).filter(|_| port != 0) else {
            eprintln!("roster-lb-helper: skipping {id}: unusable address {address:?} port {port}");
            continue;
        };
        let weight = service["Weights"]["Passing"].as_u64().and_then(|w| u32::try_from(w).ok()).unwrap_or(1).max(1);
        let node = entry["Node"]["Node"].as_str().unwrap_or_default().to_owned();
        backends.push(Backend { address, port, id, node, weight });
    }
    backends.sort();
    Ok(backends)
}

/// Reads `/v1/kv/<prefix>?recurse` (or `null` for an empty prefix) into settings.
pub fn settings(entries: &Value, prefix: &str) -> Settings {
    let mut settings = Settings::default();
    for entry in entries.as_array().into_iter().flatten() {
        let Some(key) = entry["Key"].as_str().and_then(|key| key.strip_prefix(prefix)) else { continue };
        let value =
            entry["Value"].as_str().and_then(|value| base64::engine::general_purpose::STANDARD.decode(value).ok());
        let value = String::from_utf8_lossy(&value.unwrap_or_default()).trim().to_owned();
        let applied = match key.split_once('/') {
            None if key == "max_fails" => value.parse().map(|n| settings.max_fails = n).is_ok(),
            None if key == "fail_timeout" && nginx_time(&value) => {
                settings.fail_timeout = value.clone();
                true
            }
            None if key == "fail_timeout" => false,
            Some(("weight", id)) => match value.parse::<u32>() {
                Ok(weight) if weight >= 1 => {
                    settings.weights.insert(id.to_owned(), weight);
                    true
                }
                _ => false,
            },
            _ => true,
        };
        if !applied {
            eprintln!("roster-lb-helper: ignoring {prefix}{key} = {value:?}: not a valid value");
        }
    }
    settings
}

/// Renders `template` for `service`; fails on an unknown placeholder or unbalanced block.
pub fn render(template: &str, service: &str, backends: &[Backend], settings: &Settings) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").context("a `{{` without its `}}`")?;
        let tag = after[..end].trim();
        rest = &after[end + 2..];
        match tag {
            "#each backends" | "#empty" => {
                let closing = if tag == "#empty" { "{{/empty}}" } else { "{{/each}}" };
                let body_end = rest.find(closing).with_context(|| format!("`{{{{{tag}}}}}` without `{closing}`"))?;
                let body = &rest[..body_end];
                rest = &rest[body_end + closing.len()..];
                if tag == "#empty" {
                    if backends.is_empty() {
                        out.push_str(&render(body, service, &[], settings)?);
                    }
                    continue;
                }
                for backend in backends {
                    out.push_str(&render_backend(body, backend, settings)?);
                }
            }
            "service" => out.push_str(&safe_word(service)),
            "max_fails" => out.push_str(&settings.max_fails.to_string()),
            "fail_timeout" => out.push_str(&settings.fail_timeout),
            other => bail!("unknown placeholder `{{{{{other}}}}}` outside `{{{{#each backends}}}}`"),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One repetition of an `{{#each backends}}` body.
fn render_backend(body: &str, backend: &Backend, settings: &Settings) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").context("a `{{` without its `}}`")?;
        let weight = settings.weights.get(&backend.id).copied().unwrap_or(backend.weight);
        match after[..end].trim() {
            "address" => out.push_str(&backend.address),
            "port" => out.push_str(&backend.port.to_string()),
            "id" => out.push_str(&safe_word(&backend.id)),
            "node" => out.push_str(&safe_word(&backend.node)),
            "weight" => out.push_str(&weight.to_string()),
            "max_fails" => out.push_str(&settings.max_fails.to_string()),
            "fail_timeout" => out.push_str(&settings.fail_timeout),
            other => bail!("unknown placeholder `{{{{{other}}}}}` inside `{{{{#each backends}}}}`"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An address nginx accepts in `server`: a host name or IPv4 as is, IPv6 in brackets.
fn nginx_address(address: &str) -> Option<String> {
    let plain = address.trim_start_matches('[').trim_end_matches(']');
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if plain.is_empty() || !plain.chars().all(allowed) {
        return None;
    }
    Some(if plain.contains(':') { format!("[{plain}]") } else { plain.to_owned() })
}

/// nginx's time syntax: digits with an optional unit.
fn nginx_time(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(unit, "" | "ms" | "s" | "m" | "h" | "d")
}

/// Text that cannot end an nginx directive or block: anything but `[A-Za-z0-9_.-]` becomes `_`.
fn safe_word(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests;
