//! The `autopilot` block: Consul's keys, typed into the `roster_kv::AutopilotConfig` a leader seeds the replicated
//! configuration with when none is stored. Consul Enterprise's keys are refused by name unless they carry their
//! default (an empty tag, `false`), since nothing here would act on them.

use roster_kv::AutopilotConfig;
use serde_json::Value;

use super::duration::duration_from_json;

/// Reads the block; every problem goes to `errors`, naming the key.
pub(super) fn autopilot_config(value: Option<&Value>, errors: &mut Vec<String>) -> AutopilotConfig {
    let mut config = AutopilotConfig::default();
    let Some(value) = value else {
        return config;
    };
    let Value::Object(map) = value else {
        errors.push("autopilot: expected an object".into());
        return config;
    };
    for (key, value) in map {
        let res = match key.as_str() {
            "cleanup_dead_servers" => {
                value.as_bool().map(|v| config.cleanup_dead_servers = v).ok_or_else(|| bool_expected(value))
            }
            "last_contact_threshold" => millis(value).and_then(|ms| {
                if ms == 0 {
                    return Err("must be greater than 0".to_owned());
                }
                config.last_contact_threshold_ms = ms;
                Ok(())
            }),
            "max_trailing_logs" => {
                value.as_u64().map(|v| config.max_trailing_logs = v).ok_or_else(|| count_expected(value))
            }
            "min_quorum" => value
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(|v| config.min_quorum = v)
                .ok_or_else(|| count_expected(value)),
            "server_stabilization_time" => millis(value).map(|ms| config.server_stabilization_time_ms = ms),
            "redundancy_zone_tag" | "upgrade_version_tag" if value.as_str() == Some("") => Ok(()),
            "disable_upgrade_migration" if value.as_bool() == Some(false) => Ok(()),
            "redundancy_zone_tag" | "upgrade_version_tag" | "disable_upgrade_migration" => {
                Err("a Consul Enterprise feature roster does not implement".to_owned())
            }
            _ => Err("unknown key; roster supports cleanup_dead_servers, last_contact_threshold, max_trailing_logs, \
                      min_quorum and server_stabilization_time"
                .to_owned()),
        };
        if let Err(why) = res {
            errors.push(format!("autopilot.{key}: {why}"));
        }
    }
    config
}

fn millis(value: &Value) -> Result<u64, String> {
    duration_from_json(value).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn bool_expected(value: &Value) -> String {
    format!("expected true or false, got {value}")
}

fn count_expected(value: &Value) -> String {
    format!("expected a non-negative whole number, got {value}")
}

#[cfg(test)]
mod tests {
    //! The block's keys, defaults and refusals.
    use super::*;
    use serde_json::json;

    #[test]
    fn autopilot_block_reads_consuls_keys() {
        let mut errors = Vec::new();
        assert_eq!(autopilot_config(None, &mut errors), AutopilotConfig::default());
        let block = json!({
            "cleanup_dead_servers": false, "last_contact_threshold": "1s", "max_trailing_logs": 10,
            "min_quorum": 3, "server_stabilization_time": "3s", "redundancy_zone_tag": "", "disable_upgrade_migration": false
        });
        let config = autopilot_config(Some(&block), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!config.cleanup_dead_servers);
        assert_eq!((config.last_contact_threshold_ms, config.max_trailing_logs, config.min_quorum), (1000, 10, 3));
        assert_eq!(config.server_stabilization_time_ms, 3000);
    }

    #[test]
    fn enterprise_and_unknown_keys_are_refused_by_name() {
        let mut errors = Vec::new();
        let block = json!({"redundancy_zone_tag": "zone", "disable_upgrade_migration": true, "upgrade_version_tag": "v",
                           "last_contact_threshold": "0s", "min_quorum": -1, "bogus": 1});
        autopilot_config(Some(&block), &mut errors);
        errors.sort();
        assert_eq!(errors.len(), 6, "{errors:?}");
        for key in ["redundancy_zone_tag", "disable_upgrade_migration", "upgrade_version_tag"] {
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("autopilot.{key}: a Consul Enterprise"))),
                "{errors:?}"
            );
        }
        assert!(errors.iter().any(|e| e.starts_with("autopilot.bogus: unknown key")));
        assert!(errors.iter().any(|e| e.starts_with("autopilot.last_contact_threshold: must be greater")));
        assert!(errors.iter().any(|e| e.starts_with("autopilot.min_quorum:")));
    }
}
