//! `roster members` (with Consul's `-detailed` and `-status`) and `roster catalog datacenters`.

use anyhow::Context as _;
use serde_json::Value;

use super::client::{AgentClient, print_stdout};
use super::output::{columnize, members_table};
use super::{CatalogDatacentersArgs, MembersArgs};
use crate::config::EnvSource;

/// Runs `roster members`: 0 with the table, 2 when no member's status matches `-status`, 1 on errors.
pub(super) async fn run(args: &MembersArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    if args.wan {
        eprintln!("-wan: roster has no WAN gossip pool (it runs a single datacenter), so there are no WAN members");
        return Ok(1);
    }
    let unsupported = [
        ("segment", &args.segment, "roster has no network segments"),
        ("partition", &args.partition, "roster has no admin partitions"),
        ("filter", &args.filter, "roster's agent does not filter the members list"),
    ];
    if let Some((flag, _, why)) = unsupported.iter().find(|(_, value, _)| value.is_some()) {
        eprintln!("-{flag} is not supported: {why}");
        return Ok(1);
    }
    let status_filter = match regex::Regex::new(&args.status) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!("Failed to compile status regexp: {err}");
            return Ok(1);
        }
    };
    let agent = AgentClient::new(&args.http, env)?;
    let Some(members) = agent.get_json_or_report("/v1/agent/members", "Error retrieving members").await else {
        return Ok(1);
    };
    let members: Vec<Value> = members
        .as_array()
        .context("unexpected /v1/agent/members answer: not a list")?
        .iter()
        .filter(|member| status_filter.is_match(status_name(member)))
        .cloned()
        .collect();
    if members.is_empty() {
        return Ok(2);
    }
    let text = if args.detailed { detailed_table(&members) } else { members_table(&Value::Array(members))? };
    print_stdout(text.as_bytes())
}

/// Runs `roster catalog datacenters`: one name per line, nearest first (roster knows only its own).
pub(super) async fn datacenters(args: &CatalogDatacentersArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let agent = AgentClient::new(&args.http, env)?;
    let Some(datacenters) = agent.get_json_or_report("/v1/catalog/datacenters", "Error listing datacenters").await
    else {
        return Ok(1);
    };
    let names: Vec<&str> = datacenters.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if names.is_empty() {
        eprintln!("No datacenters found");
        return Ok(1);
    }
    print_stdout(names.iter().map(|name| format!("{name}\n")).collect::<String>().as_bytes())
}

/// Serf's name for a member's status code.
fn status_name(member: &Value) -> &'static str {
    match member["Status"].as_u64() {
        Some(1) => "alive",
        Some(2) => "leaving",
        Some(3) => "left",
        Some(4) => "failed",
        _ => "none",
    }
}

/// `-detailed`: `Node Address Status Tags`, every tag as `k=v` sorted by key; servers first, then by node name, as
/// Consul orders them. Consul's command fills in the partition and segment tags of the default partition, so they
/// are shown here too.
fn detailed_table(members: &[Value]) -> String {
    let mut rows: Vec<(bool, Vec<String>)> = members
        .iter()
        .map(|member| {
            let mut tags: std::collections::BTreeMap<String, String> = member["Tags"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect();
            let is_server = tags.get("role").is_some_and(|role| role == "consul");
            tags.entry("partition".to_owned()).or_insert_with(|| "default".to_owned());
            let segment = tags.entry("segment".to_owned()).or_default();
            if is_server {
                *segment = "<all>".to_owned();
            } else if segment.is_empty() {
                *segment = "<default>".to_owned();
            }
            let tags: Vec<String> = tags.iter().map(|(key, value)| format!("{key}={value}")).collect();
            let row = vec![
                member["Name"].as_str().unwrap_or_default().to_owned(),
                address(member),
                status_name(member).to_owned(),
                tags.join(","),
            ];
            (!is_server, row)
        })
        .collect();
    rows.sort();
    let header = ["Node", "Address", "Status", "Tags"].map(str::to_owned).to_vec();
    columnize(&std::iter::once(header).chain(rows.into_iter().map(|(_, row)| row)).collect::<Vec<_>>())
}

/// `ip:port`, with IPv6 addresses bracketed, as Go's `net.TCPAddr` prints them.
fn address(member: &Value) -> String {
    let addr = member["Addr"].as_str().unwrap_or_default();
    let port = member["Port"].as_u64().unwrap_or(0);
    if addr.contains(':') { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detailed_rows_list_every_tag_sorted_with_partition_and_segment() {
        let members = [
            json!({"Name": "s1", "Addr": "10.0.0.1", "Port": 8301, "Status": 1,
                   "Tags": {"role": "consul", "dc": "dc1", "segment": ""}}),
            json!({"Name": "c1", "Addr": "::1", "Port": 8301, "Status": 4, "Tags": {"role": "node", "dc": "dc1"}}),
        ];
        // Servers first, whatever their names.
        let want = [
            "Node  Address        Status  Tags",
            "s1    10.0.0.1:8301  alive   dc=dc1,partition=default,role=consul,segment=<all>",
            "c1    [::1]:8301     failed  dc=dc1,partition=default,role=node,segment=<default>",
        ];
        assert_eq!(detailed_table(&members), want.map(|line| format!("{line}\n")).concat());
    }
}
