//! `roster rtt [-wan] node-a [node-b]`: the round trip two nodes' network coordinates estimate, printed as Consul's
//! `rtt` prints it. With one node, the other is the agent's own; `-wan` reads `/v1/coordinate/datacenters`, where
//! servers are named `<node>.<dc>`.

use anyhow::Context as _;
use clap::Args;
use roster_kv::Coordinate;
use serde_json::Value;

use super::HttpArgs;
use super::client::AgentClient;
use crate::config::EnvSource;

/// `roster rtt`.
#[derive(Debug, Clone, Default, Args)]
pub struct RttArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Use WAN coordinates (servers, named `<node>.<dc>`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub wan: bool,
    /// One or two node names.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// Runs `roster rtt`: 0 with the estimate, 1 when a node has no coordinate or the agent cannot be asked.
pub(super) async fn run(args: &RttArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    if args.nodes.is_empty() || args.nodes.len() > 2 {
        eprintln!("One or two node names must be specified");
        return Ok(1);
    }
    let agent = AgentClient::new(&args.http, env)?;
    let mut nodes = args.nodes.clone();
    if nodes.len() == 1 {
        let Some(me) = agent.get_json_or_report("/v1/agent/self", "Unable to look up agent info").await else {
            return Ok(1);
        };
        let config = me.get("Config").context("the agent's self answer has no Config")?;
        let name = config.get("NodeName").and_then(Value::as_str).unwrap_or_default();
        let dc = config.get("Datacenter").and_then(Value::as_str).unwrap_or_default();
        nodes.push(if args.wan { format!("{name}.{dc}") } else { name.to_owned() });
    }
    let (path, source) = if args.wan { ("/v1/coordinate/datacenters", "WAN") } else { ("/v1/coordinate/nodes", "LAN") };
    let Some(answer) = agent.get_json_or_report(path, "Error getting coordinates").await else { return Ok(1) };
    let rows = if args.wan { wan_rows(&answer) } else { answer.as_array().cloned().unwrap_or_default() };
    let (a, b) = match (coordinate_of(&rows, &nodes[0]), coordinate_of(&rows, &nodes[1])) {
        (Some(a), Some(b)) => (a, b),
        (None, _) => return not_found(&nodes[0]),
        (_, None) => return not_found(&nodes[1]),
    };
    let Some(seconds) = a.distance_seconds(&b) else {
        eprintln!("Coordinates of {} and {} have different dimensions", nodes[0], nodes[1]);
        return Ok(1);
    };
    println!("{}", estimate_line(&nodes[0], &nodes[1], seconds, source));
    Ok(0)
}

fn not_found(node: &str) -> anyhow::Result<i32> {
    eprintln!("Could not find a coordinate for node {node:?}");
    Ok(1)
}

/// Every datacenter's server rows, flattened.
fn wan_rows(answer: &Value) -> Vec<Value> {
    let areas = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    areas.iter().filter_map(|dc| dc.get("Coordinates")?.as_array().cloned()).flatten().collect()
}

/// The default segment's coordinate of `node` among `rows` (`{Node, Segment?, Coord}`).
fn coordinate_of(rows: &[Value], node: &str) -> Option<Coordinate> {
    rows.iter()
        .filter(|row| row.get("Node").and_then(Value::as_str) == Some(node))
        .filter(|row| row.get("Segment").and_then(Value::as_str).unwrap_or("").is_empty())
        .find_map(|row| serde_json::from_value(row.get("Coord")?.clone()).ok())
}

/// Consul's line: milliseconds with three decimals.
fn estimate_line(a: &str, b: &str, seconds: f64, source: &str) -> String {
    format!("Estimated {a} <-> {b} rtt: {:.3} ms (using {source} coordinates)", seconds * 1000.0)
}

#[cfg(test)]
mod tests {
    //! Finding the coordinates and printing the estimate.
    use super::*;
    use serde_json::json;

    #[test]
    fn the_estimate_is_printed_as_consul_prints_it() {
        let coord = |x: f64| json!({"Vec": [x, 0, 0, 0, 0, 0, 0, 0], "Error": 0.2, "Adjustment": 0.0, "Height": 0.0});
        let rows = vec![
            json!({"Node": "a", "Segment": "", "Coord": coord(0.0)}),
            json!({"Node": "b", "Coord": coord(0.0015)}),
        ];
        let (a, b) = (coordinate_of(&rows, "a").unwrap(), coordinate_of(&rows, "b").unwrap());
        let line = estimate_line("a", "b", a.distance_seconds(&b).unwrap(), "LAN");
        assert_eq!(line, "Estimated a <-> b rtt: 1.500 ms (using LAN coordinates)");
        assert!(coordinate_of(&rows, "c").is_none());
        let wan =
            json!([{"Datacenter": "dc1", "AreaID": "WAN", "Coordinates": [{"Node": "s1.dc1", "Coord": coord(0.0)}]}]);
        assert!(coordinate_of(&wan_rows(&wan), "s1.dc1").is_some());
    }
}
