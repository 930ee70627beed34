//! `roster kv export` and `roster kv import`: a KV subtree as Consul's JSON (`[{"key","flags","value"}]`, values
//! base64), read with one `?recurse` GET and written back one PUT per key through the KV HTTP API.
//!
//! The export is byte-for-byte what Consul's command prints (tab indentation, Go's escaping of `<`, `>`, `&`), so
//! files move between Consul and roster clusters in either direction.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use percent_encoding::utf8_percent_encode;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncReadExt as _;

use super::HttpArgs;
use super::client::{AgentClient, KEY_ESCAPES, segment};
use super::output::kv_value_bytes;
use crate::config::EnvSource;

/// `roster kv export`.
#[derive(Debug, Clone, Default, Args)]
pub struct KvExportArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Let any server answer, not only the leader (the export may then lag).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub stale: bool,
    /// Datacenter, namespace and partition.
    #[command(flatten)]
    pub scope: KvScopeArgs,
    /// The prefix to export (default: everything).
    #[arg(value_name = "KEY_OR_PREFIX")]
    pub prefix: Vec<String>,
}

/// `roster kv import`.
#[derive(Debug, Clone, Default, Args)]
pub struct KvImportArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Prepended to every imported key (`-prefix=sub/dir/`).
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub prefix: String,
    /// Datacenter, namespace and partition.
    #[command(flatten)]
    pub scope: KvScopeArgs,
    /// The JSON: `@FILE` reads a file, `-` reads stdin, anything else is the JSON itself.
    #[arg(value_name = "DATA", allow_hyphen_values = true)]
    pub data: Vec<String>,
}

/// Where the KV commands read and write: Consul's `-datacenter`, and the Enterprise flags roster refuses.
#[derive(Debug, Clone, Default, Args)]
pub struct KvScopeArgs {
    /// The datacenter (roster serves only its own; the agent refuses any other).
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
    /// Consul Enterprise's namespaces; refused by name.
    #[arg(long, hide = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Consul Enterprise's admin partitions; refused by name.
    #[arg(long, hide = true, value_name = "PARTITION")]
    pub partition: Option<String>,
}

impl KvScopeArgs {
    /// The refusal of an Enterprise flag roster has nothing behind.
    fn unsupported(&self) -> Option<String> {
        let flag = if self.namespace.is_some() { "namespace" } else { self.partition.as_ref().map(|_| "partition")? };
        Some(format!("-{flag} is not supported: roster has no namespaces or admin partitions"))
    }

    /// `&dc=...` for the request's query string, or nothing.
    fn dc_query(&self) -> String {
        self.datacenter.as_ref().map(|datacenter| format!("&dc={}", segment(datacenter))).unwrap_or_default()
    }
}

/// One exported entry, in Consul's field names and order. Reading is as lenient as Go's decoder: missing fields
/// are zero, and capitalised names are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    #[serde(alias = "Key")]
    key: String,
    #[serde(default, alias = "Flags")]
    flags: u64,
    #[serde(default, alias = "Value")]
    value: String,
}

/// Runs `roster kv export`: prints the entries under the prefix as a JSON array (`[]` when there are none).
pub(super) async fn export(args: &KvExportArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    if let Some(problem) = args.scope.unsupported() {
        eprintln!("{problem}");
        return Ok(1);
    }
    if args.prefix.len() > 1 {
        eprintln!("Too many arguments (expected 1, got {})", args.prefix.len());
        return Ok(1);
    }
    // Keys cannot start with `/`; users write `/foo` anyway, as Consul's command forgives.
    let prefix = args.prefix.first().map_or("", |prefix| prefix.strip_prefix('/').unwrap_or(prefix));
    let agent = AgentClient::new(&args.http, env)?;
    let mut path = format!("/v1/kv/{}?recurse", utf8_percent_encode(prefix, KEY_ESCAPES));
    if args.stale {
        path.push_str("&stale");
    }
    path.push_str(&args.scope.dc_query());
    let (status, body) = agent.send(Method::GET, &path, None).await?;
    let entries = match status {
        StatusCode::NOT_FOUND => Vec::new(),
        status if status.is_success() => {
            let answer: Value = serde_json::from_slice(&body).context("the agent's answer is not valid JSON")?;
            exported(&answer)?
        }
        status => {
            let answer = String::from_utf8_lossy(&body);
            eprintln!("Error querying Consul agent: Unexpected response code: {} ({})", status.as_u16(), answer.trim());
            return Ok(1);
        }
    };
    println!("{}", to_consul_json(&entries)?);
    Ok(0)
}

/// Runs `roster kv import`: writes every entry, printing `Imported: KEY` for each, and stops at the first failure.
pub(super) async fn import(args: &KvImportArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    if let Some(problem) = args.scope.unsupported() {
        eprintln!("{problem}");
        return Ok(1);
    }
    let data = match read_data(&args.data).await {
        Ok(data) => data,
        Err(err) => {
            eprintln!("Error! {err:#}");
            return Ok(1);
        }
    };
    let entries: Vec<Entry> = match serde_json::from_str(&data) {
        Ok(entries) => entries,
        Err(err) => {
            eprintln!("Cannot unmarshal data: {err}");
            return Ok(1);
        }
    };
    // Every value is decoded before the first write, so bad input never leaves half an import behind.
    let mut decoded = Vec::with_capacity(entries.len());
    for entry in &entries {
        match BASE64.decode(&entry.value) {
            Ok(value) => decoded.push((format!("{}{}", args.prefix, entry.key), entry.flags, value)),
            Err(err) => {
                eprintln!("Error base 64 decoding value for key {}: {err}", entry.key);
                return Ok(1);
            }
        }
    }
    let agent = AgentClient::new(&args.http, env)?;
    for (key, flags, value) in decoded {
        let mut path = format!("/v1/kv/{}?flags={flags}", utf8_percent_encode(&key, KEY_ESCAPES));
        path.push_str(&args.scope.dc_query());
        let (status, body) = agent.send(Method::PUT, &path, Some(value)).await?;
        let written = status.is_success() && body.trim_ascii() == b"true";
        if !written {
            let answer = String::from_utf8_lossy(&body);
            eprintln!(
                "Error! Failed writing data for key {key}: Unexpected response code: {} ({})",
                status.as_u16(),
                answer.trim()
            );
            return Ok(1);
        }
        println!("Imported: {key}");
    }
    Ok(0)
}

/// The agent's `?recurse` answer as export entries, in its (key) order.
fn exported(answer: &Value) -> anyhow::Result<Vec<Entry>> {
    let entries = answer.as_array().context("unexpected KV answer: not a list")?;
    entries
        .iter()
        .map(|entry| {
            Ok(Entry {
                key: entry["Key"].as_str().context("a KV entry without a Key")?.to_owned(),
                flags: entry["Flags"].as_u64().unwrap_or(0),
                value: BASE64.encode(kv_value_bytes(entry)?),
            })
        })
        .collect()
}

/// Go's `json.MarshalIndent(entries, "", "\t")`: tab indentation and `<`, `>`, `&`, U+2028, U+2029 escaped.
/// Those characters can only occur inside JSON strings, so replacing them in the text is exact.
fn to_consul_json(entries: &[Entry]) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut bytes, serde_json::ser::PrettyFormatter::with_indent(b"\t"));
    entries.serialize(&mut serializer)?;
    let text = String::from_utf8(bytes)?;
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

/// The import's JSON text: `@FILE`, `-` for stdin, or the argument itself, with Consul's refusals.
async fn read_data(args: &[String]) -> anyhow::Result<String> {
    let data = match args {
        [] => anyhow::bail!("Missing DATA argument"),
        [data] => data,
        more => anyhow::bail!("Too many arguments (expected 1, got {})", more.len()),
    };
    if data.is_empty() {
        anyhow::bail!("Empty DATA argument");
    }
    if let Some(path) = data.strip_prefix('@') {
        return tokio::fs::read_to_string(path).await.context("Failed to read file");
    }
    if data == "-" {
        let mut text = String::new();
        tokio::io::stdin().read_to_string(&mut text).await.context("Failed to read stdin")?;
        return Ok(text);
    }
    Ok(data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn export_matches_consuls_json_text() -> anyhow::Result<()> {
        let answer = json!([
            {"Key": "a<b", "Flags": 42, "Value": "AAH/", "LockIndex": 0, "CreateIndex": 5, "ModifyIndex": 5},
            {"Key": "dir/", "Flags": 0, "Value": null, "LockIndex": 0, "CreateIndex": 6, "ModifyIndex": 6},
        ]);
        let text = to_consul_json(&exported(&answer)?)?;
        let want = "[\n\t{\n\t\t\"key\": \"a\\u003cb\",\n\t\t\"flags\": 42,\n\t\t\"value\": \"AAH/\"\n\t},\n\t{\n\t\t\"key\": \"dir/\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"\"\n\t}\n]";
        assert_eq!(text, want);
        assert_eq!(to_consul_json(&[])?, "[]");
        Ok(())
    }

    #[tokio::test]
    async fn import_data_refusals_are_consuls() {
        let message = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            async move { read_data(&args).await.err().map(|err| err.to_string()) }
        };
        assert_eq!(message(&[]).await.as_deref(), Some("Missing DATA argument"));
        assert_eq!(message(&["a", "b"]).await.as_deref(), Some("Too many arguments (expected 1, got 2)"));
        assert_eq!(message(&[""]).await.as_deref(), Some("Empty DATA argument"));
        assert_eq!(message(&["[]"]).await, None);
    }
}
