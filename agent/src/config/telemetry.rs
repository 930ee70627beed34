//! The `telemetry` block: Consul's keys for the metrics roster records, typed into `roster_metrics::Config`.
//! The sinks roster does not have (Circonus, statsite) and the keys that tune what it does not do are refused by name.

use std::net::{SocketAddr, ToSocketAddrs};

use roster_metrics::Config;
use serde_json::Value;

use super::duration::duration_from_json;

/// Keys Consul documents for sinks and features roster does not implement.
const UNSUPPORTED: &[&str] = &[
    "circonus_api_app",
    "circonus_api_token",
    "circonus_api_url",
    "circonus_broker_id",
    "circonus_broker_select_tag",
    "circonus_check_display_name",
    "circonus_check_force_metric_activation",
    "circonus_check_id",
    "circonus_check_instance_id",
    "circonus_check_search_tag",
    "circonus_check_tags",
    "circonus_submission_interval",
    "circonus_submission_url",
    "statsite_address",
    "enable_host_metrics",
    "disable_compat_1.9",
    "retry_failed_connection",
];

/// Reads the block; every problem goes to `errors`, naming the key. `hostname` is what gauge names carry unless
/// `disable_hostname` is set.
pub(super) fn telemetry_config(value: Option<&Value>, hostname: &str, errors: &mut Vec<String>) -> Config {
    let mut config = Config::default();
    let mut disable_hostname = false;
    if let Some(value) = value {
        let Value::Object(map) = value else {
            errors.push("telemetry: expected an object".into());
            return config;
        };
        for (key, value) in map {
            if let Err(why) = apply(&mut config, &mut disable_hostname, key, value) {
                errors.push(format!("telemetry.{key}: {why}"));
            }
        }
    }
    if !disable_hostname {
        config.hostname = Some(hostname.to_owned());
    }
    config
}

fn apply(config: &mut Config, disable_hostname: &mut bool, key: &str, value: &Value) -> Result<(), String> {
    match key {
        "prometheus_retention_time" => config.prometheus_retention = duration_from_json(value)?,
        "disable_hostname" => *disable_hostname = boolean(value)?,
        "metrics_prefix" => config.prefix = prefix(value)?,
        "statsd_address" => config.statsd = address(value)?,
        "dogstatsd_addr" => config.dogstatsd = address(value)?,
        "dogstatsd_tags" => config.dogstatsd_tags = strings(value)?,
        "filter_default" => config.filter_default = boolean(value)?,
        "prefix_filter" => {
            config.prefix_filter = strings(value)?.iter().map(|rule| filter_rule(rule)).collect::<Result<_, _>>()?
        }
        unsupported if UNSUPPORTED.contains(&unsupported) => {
            return Err("roster does not support this key (its metrics go to Prometheus, the in-memory sink, statsd \
                        and DogStatsD)"
                .to_owned());
        }
        _ => {
            return Err("unknown key; roster supports prometheus_retention_time, disable_hostname, metrics_prefix, \
                        statsd_address, dogstatsd_addr, dogstatsd_tags, filter_default and prefix_filter"
                .to_owned());
        }
    }
    Ok(())
}

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {value}"))
}

fn strings(value: &Value) -> Result<Vec<String>, String> {
    let list = value.as_array().ok_or_else(|| format!("expected a list of strings, got {value}"))?;
    list.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("expected a string, got {v}"))).collect()
}

fn prefix(value: &Value) -> Result<String, String> {
    let prefix = value.as_str().ok_or_else(|| format!("expected a string, got {value}"))?;
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        return Err(format!("{prefix:?} must be letters, digits, '_' and '.', and not empty"));
    }
    Ok(prefix.to_owned())
}

/// `+name` keeps metrics under `name`, `-name` drops them.
fn filter_rule(rule: &str) -> Result<(String, bool), String> {
    match (rule.strip_prefix('+'), rule.strip_prefix('-')) {
        (Some(prefix), _) if !prefix.is_empty() => Ok((prefix.to_owned(), true)),
        (_, Some(prefix)) if !prefix.is_empty() => Ok((prefix.to_owned(), false)),
        _ => Err(format!("{rule:?} must be a metric name prefix after + (keep) or - (drop)")),
    }
}

/// A `host:port` UDP destination, resolved once at load (an empty string is no sink, Consul's default).
fn address(value: &Value) -> Result<Option<SocketAddr>, String> {
    let addr = value.as_str().ok_or_else(|| format!("expected \"host:port\", got {value}"))?;
    if addr.is_empty() {
        return Ok(None);
    }
    let mut resolved = addr.to_socket_addrs().map_err(|e| format!("{addr:?} is not a reachable host:port: {e}"))?;
    resolved.next().map(Some).ok_or_else(|| format!("{addr:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::telemetry_config;

    fn load(value: serde_json::Value) -> (roster_metrics::Config, Vec<String>) {
        let mut errors = Vec::new();
        let config = telemetry_config(Some(&value), "host1", &mut errors);
        (config, errors)
    }

    #[test]
    fn the_supported_keys_are_honoured() {
        let (config, errors) = load(json!({
            "prometheus_retention_time": "60s", "disable_hostname": true, "metrics_prefix": "roster",
            "statsd_address": "127.0.0.1:8125", "dogstatsd_addr": "127.0.0.1:8126", "dogstatsd_tags": ["env:test"],
            "filter_default": false, "prefix_filter": ["+roster.raft", "-roster.raft.apply"],
        }));
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(config.prometheus_retention, Duration::from_secs(60));
        assert_eq!((config.hostname, config.prefix.as_str(), config.filter_default), (None, "roster", false));
        assert_eq!(config.statsd, Some("127.0.0.1:8125".parse().expect("addr")));
        assert_eq!(config.dogstatsd_tags, ["env:test"]);
        assert_eq!(config.prefix_filter, [("roster.raft".to_owned(), true), ("roster.raft.apply".to_owned(), false)]);
        let (defaults, _) = load(json!({}));
        assert_eq!(defaults.hostname.as_deref(), Some("host1"), "gauges carry the hostname unless disabled");
    }

    #[test]
    fn unsupported_unknown_and_bad_keys_are_refused_by_name() {
        let (_, errors) = load(json!({
            "statsite_address": "127.0.0.1:8125", "circonus_api_token": "x", "bogus": 1,
            "prefix_filter": ["consul.raft"], "prometheus_retention_time": "soon",
        }));
        let named: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap_or_default()).collect();
        assert_eq!(
            named,
            [
                "telemetry.bogus",
                "telemetry.circonus_api_token",
                "telemetry.prefix_filter",
                "telemetry.prometheus_retention_time",
                "telemetry.statsite_address"
            ],
            "{errors:#?}"
        );
        assert!(errors[1].contains("roster does not support"), "{}", errors[1]);
    }
}
