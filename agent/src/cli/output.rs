//! Text output of the client subcommands, as pure functions of the agent's JSON answers.
//!
//! The formats copy Consul's CLI (tables padded with two spaces, `key:value` lines for
//! `kv get -recurse`) because scripts parse them.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

/// Consul version whose API roster matches; `version` prints it for version-gated tooling.
pub(crate) const CONSUL_COMPAT_VERSION: &str = "1.22.0";

/// Pads every column but the last to its widest cell, joined by two spaces, one row per line.
pub(crate) fn columnize(rows: &[Vec<String>]) -> String {
    let n_columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n_columns)
        .map(|column_idx| {
            rows.iter().filter_map(|row| row.get(column_idx)).map(|cell| cell.chars().count()).max().unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column_idx, cell) in row.iter().enumerate() {
            if column_idx > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if column_idx + 1 < row.len() {
                let pad = widths[column_idx].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `roster members`: the `/v1/agent/members` array as a table sorted by node name.
pub(crate) fn members_table(members: &Value) -> anyhow::Result<String> {
    let members = members.as_array().context("unexpected /v1/agent/members answer: not a list")?;
    let mut rows: Vec<Vec<String>> = members.iter().map(member_row).collect();
    rows.sort();
    let header = ["Node", "Address", "Status", "Type", "Build", "Protocol", "DC"];
    rows.insert(0, header.map(str::to_owned).to_vec());
    Ok(columnize(&rows))
}

/// One member: `Node Address Status Type Build Protocol DC`.
fn member_row(member: &Value) -> Vec<String> {
    let tag = |name: &str| text(&member["Tags"][name]);
    let addr = text(&member["Addr"]);
    let port = member["Port"].as_u64().unwrap_or(0);
    let address = if addr.contains(':') { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") };
    let status = match member["Status"].as_u64() {
        Some(1) => "alive",
        Some(2) => "leaving",
        Some(3) => "left",
        Some(4) => "failed",
        _ => "none",
    };
    let role = match tag("role").as_str() {
        "consul" => "server",
        "node" => "client",
        _ => "unknown",
    };
    // Consul's build tag is `version:revision`; the table shows the version only.
    let build = tag("build");
    let build = build.split(':').next().unwrap_or_default().to_owned();
    vec![text(&member["Name"]), address, status.to_owned(), role.to_owned(), build, tag("vsn"), tag("dc")]
}

/// `roster operator raft list-peers`: `/v1/operator/raft/configuration` as
/// `Node ID Address State Voter RaftProtocol`, as Consul prints it.
pub(crate) fn raft_peers_table(config: &Value) -> anyhow::Result<String> {
    let servers = config["Servers"].as_array().context("unexpected /v1/operator/raft/configuration answer")?;
    let mut rows = vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"].map(str::to_owned).to_vec()];
    for server in servers {
        let state = if server["Leader"].as_bool() == Some(true) { "leader" } else { "follower" };
        let voter = server["Voter"].as_bool().unwrap_or(false).to_string();
        rows.push(vec![
            text(&server["Node"]),
            text(&server["ID"]),
            text(&server["Address"]),
            state.to_owned(),
            voter,
            text(&server["ProtocolVersion"]),
        ]);
    }
    Ok(columnize(&rows))
}

/// `roster catalog nodes`: `/v1/catalog/nodes` as `Node ID Address DC`, IDs shortened to 8 characters.
pub(crate) fn catalog_nodes_table(nodes: &Value) -> anyhow::Result<String> {
    let nodes = nodes.as_array().context("unexpected /v1/catalog/nodes answer: not a list")?;
    let mut rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            let id = text(&node["ID"]);
            vec![text(&node["Node"]), id.chars().take(8).collect(), text(&node["Address"]), text(&node["Datacenter"])]
        })
        .collect();
    rows.sort();
    rows.insert(0, ["Node", "ID", "Address", "DC"].map(str::to_owned).to_vec());
    Ok(columnize(&rows))
}

/// `roster catalog services`: names one per line, sorted; with `tags`, a second column of sorted tags.
pub(crate) fn catalog_services_list(services: &Value, tags: bool) -> anyhow::Result<String> {
    let services = services.as_object().context("unexpected /v1/catalog/services answer: not an object")?;
    // serde_json's map is sorted by key, so the names come out sorted.
    if !tags {
        return Ok(services.keys().map(|name| format!("{name}\n")).collect());
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|(name, service_tags)| {
            let mut tag_list: Vec<String> =
                service_tags.as_array().map(|items| items.iter().map(text).collect()).unwrap_or_default();
            tag_list.sort();
            tag_list.dedup();
            vec![name.clone(), tag_list.join(",")]
        })
        .collect();
    Ok(columnize(&rows))
}

/// The decoded bytes of one KV entry's `Value` (`null` is empty).
pub(crate) fn kv_value_bytes(entry: &Value) -> anyhow::Result<Vec<u8>> {
    match &entry["Value"] {
        Value::Null => Ok(Vec::new()),
        Value::String(encoded) => {
            BASE64.decode(encoded).with_context(|| format!("the agent sent a value that is not base64: {encoded:?}"))
        }
        other => bail!("unexpected KV value {other}"),
    }
}

/// The value as printed: raw bytes, or base64 text with `base64`.
fn shown_value(entry: &Value, base64: bool) -> anyhow::Result<Vec<u8>> {
    let bytes = kv_value_bytes(entry)?;
    Ok(if base64 { BASE64.encode(bytes).into_bytes() } else { bytes })
}

/// `roster kv get KEY`: the first entry's value followed by a newline, as Consul prints it.
pub(crate) fn kv_get_output(entries: &Value, base64: bool) -> anyhow::Result<Vec<u8>> {
    let entry = first_entry(entries)?;
    let mut out = shown_value(entry, base64)?;
    out.push(b'\n');
    Ok(out)
}

/// `roster kv get -recurse PREFIX`: one `key:value` line per entry, in the agent's (key) order.
pub(crate) fn kv_recurse_output(entries: &Value, base64: bool) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entry_list(entries)? {
        out.extend_from_slice(text(&entry["Key"]).as_bytes());
        out.push(b':');
        out.extend(shown_value(entry, base64)?);
        out.push(b'\n');
    }
    Ok(out)
}

/// `roster kv get -detailed`: every field of each entry as a two-column block, blocks separated by a blank line.
pub(crate) fn kv_detailed_output(entries: &Value, base64: bool) -> anyhow::Result<Vec<u8>> {
    let mut blocks = Vec::new();
    for entry in entry_list(entries)? {
        let session = match text(&entry["Session"]) {
            session if session.is_empty() => "-".to_owned(),
            session => session,
        };
        let value = String::from_utf8_lossy(&shown_value(entry, base64)?).into_owned();
        let rows: Vec<Vec<String>> = [
            ("CreateIndex", text(&entry["CreateIndex"])),
            ("Flags", text(&entry["Flags"])),
            ("Key", text(&entry["Key"])),
            ("LockIndex", text(&entry["LockIndex"])),
            ("ModifyIndex", text(&entry["ModifyIndex"])),
            ("Session", session),
            ("Value", value),
        ]
        .into_iter()
        .map(|(name, value)| vec![name.to_owned(), value])
        .collect();
        blocks.push(columnize(&rows));
    }
    Ok(blocks.join("\n").into_bytes())
}

/// `roster kv get -keys PREFIX`: one key per line.
pub(crate) fn kv_keys_output(keys: &Value) -> anyhow::Result<String> {
    let keys = keys.as_array().context("unexpected KV keys answer: not a list")?;
    Ok(keys.iter().map(|key| format!("{}\n", text(key))).collect())
}

/// `roster version`: the version, then the git revision and the commit date it was built from (as `consul version`
/// prints `Revision` and `Build Date`), then the Consul API it speaks.
pub(crate) fn version_text() -> String {
    format!(
        "roster v{}\nRevision {}\nBuild Date {}\nConsul API compatibility: v{CONSUL_COMPAT_VERSION}\n",
        env!("CARGO_PKG_VERSION"),
        env!("ROSTER_REVISION"),
        env!("ROSTER_BUILD_DATE"),
    )
}

/// The service definitions in a Consul service file: `{"service":{..}}` and/or `{"services":[..]}`.
pub(crate) fn service_definitions(file: &Value) -> anyhow::Result<Vec<Value>> {
    let object = file.as_object().context("a service definition file must hold a JSON object")?;
    let mut definitions = Vec::new();
    for (key, value) in object {
        match (key.to_ascii_lowercase().as_str(), value) {
            ("service", Value::Object(_)) => definitions.push(value.clone()),
            ("services", Value::Array(items)) => definitions.extend(items.iter().cloned()),
            ("service" | "services", _) => {
                bail!("\"{key}\" must be an object (service) or a list of objects (services)")
            }
            _ => bail!("unexpected key \"{key}\"; expected \"service\" or \"services\""),
        }
    }
    if definitions.is_empty() {
        bail!("no \"service\" or \"services\" key found");
    }
    Ok(definitions)
}

/// A service definition's name, whatever the key's casing.
pub(crate) fn service_name(definition: &Value) -> String {
    definition
        .as_object()
        .and_then(|object| object.iter().find(|(key, _)| key.eq_ignore_ascii_case("name")))
        .map(|(_, name)| text(name))
        .unwrap_or_default()
}

/// The list of KV entries in an answer.
fn entry_list(entries: &Value) -> anyhow::Result<&Vec<Value>> {
    entries.as_array().context("unexpected KV answer: not a list")
}

/// The first KV entry of an answer.
fn first_entry(entries: &Value) -> anyhow::Result<&Value> {
    entry_list(entries)?.first().context("unexpected KV answer: empty list")
}

/// A JSON scalar as plain text (strings unquoted, null empty).
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
