//! The web UI's keys: `ui_config { enabled, content_path }`, the legacy top-level `ui` and `ui_content_path`, and the
//! `-ui`/`-ui-content-path` flags (which arrive here as those keys). Consul's other `ui_config` keys (custom asset
//! directories, metrics providers and proxies, dashboard links) are refused by name: roster serves only its built-in UI.

use serde_json::Value;

/// Consul's default path prefix of the UI.
pub const DEFAULT_CONTENT_PATH: &str = "/ui/";

/// Whether and where the agent serves its web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiConfig {
    /// Serve the UI (`ui_config.enabled`, legacy `ui`, `-ui`; default off, on under `-dev`, as in Consul).
    /// It shows whatever the caller's token may read, so it widens nothing, but it is one more thing listening.
    pub enabled: bool,
    /// The path prefix the UI lives under (`ui_config.content_path`, `ui_content_path`, `-ui-content-path`;
    /// default `/ui/`), always with a leading and a trailing `/`.
    pub content_path: String,
}

/// One layer's values of these keys; `None` means "not set by this layer".
#[derive(Debug, Default)]
pub(super) struct UiLayer {
    enabled: Option<bool>,
    content_path: Option<String>,
}

/// Whether `key` (dotted, from the top) is one of the keys [`UiLayer::apply`] reads.
pub(super) fn is_key(key: &str) -> bool {
    matches!(key, "ui" | "ui_config" | "ui_dir" | "ui_content_path")
}

impl UiLayer {
    /// Reads `key` (one of [`is_key`]'s) from `value`; the error says what is wrong, naming a sub-key when it is one.
    pub(super) fn apply(&mut self, key: &str, value: &Value) -> Result<(), String> {
        match key {
            "ui" => boolean(value).map(|v| self.enabled = Some(v)),
            "ui_content_path" => content_path(value).map(|v| self.content_path = Some(v)),
            "ui_dir" => Err(custom_assets()),
            "ui_config" => {
                let Value::Object(map) = value else { return Err("expected an object".to_owned()) };
                let mut problems = Vec::new();
                for (sub_key, value) in map {
                    let res = match sub_key.as_str() {
                        "enabled" => boolean(value).map(|v| self.enabled = Some(v)),
                        "content_path" => content_path(value).map(|v| self.content_path = Some(v)),
                        "dir" => Err(custom_assets()),
                        "metrics_provider"
                        | "metrics_provider_files"
                        | "metrics_provider_options_json"
                        | "metrics_proxy"
                        | "dashboard_url_templates" => {
                            Err("not implemented: roster's UI shows no metrics graphs or dashboard links".to_owned())
                        }
                        _ => Err("unknown key; roster supports enabled and content_path".to_owned()),
                    };
                    if let Err(why) = res {
                        problems.push(format!("ui_config.{sub_key}: {why}"));
                    }
                }
                if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
            }
            _ => Err(format!("not a UI key: {key}")),
        }
    }

    /// Overlays `later` key by key.
    pub(super) fn merge(&mut self, later: UiLayer) {
        if later.enabled.is_some() {
            self.enabled = later.enabled;
        }
        if later.content_path.is_some() {
            self.content_path = later.content_path;
        }
    }

    /// The UI settings with Consul's defaults: off, except under `-dev`.
    pub(super) fn build(self, dev: bool) -> UiConfig {
        UiConfig {
            enabled: self.enabled.unwrap_or(dev),
            content_path: self.content_path.unwrap_or_else(|| DEFAULT_CONTENT_PATH.to_owned()),
        }
    }
}

fn custom_assets() -> String {
    "not implemented: roster serves only the UI built into its binary".to_owned()
}

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {value}"))
}

/// A path prefix as Consul accepts it, normalized to `/prefix/`: not the root (the API lives there), not under `/v1/`,
/// and without a `v<digit>` segment, which Consul reserves for API versions.
fn content_path(value: &Value) -> Result<String, String> {
    let Value::String(text) = value else { return Err(format!("expected a path string, got {value}")) };
    let trimmed = text.trim_matches('/');
    if trimmed.is_empty() {
        return Err("must name a path below / (the HTTP API is served at the root)".to_owned());
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(format!("{text:?} has an empty, . or .. segment"));
    }
    let versioned = |s: &&str| s.len() > 1 && s.starts_with('v') && s[1..].starts_with(|c: char| c.is_ascii_digit());
    if segments.iter().any(versioned) {
        return Err(format!("cannot have 'v[0-9]'. received: {text:?}"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || matches!(c, '?' | '#' | '%' | '\\')) {
        return Err(format!("{text:?} may not contain spaces, ?, #, % or \\"));
    }
    Ok(format!("/{trimmed}/"))
}

#[cfg(test)]
mod tests {
    //! The keys as users write them.
    use serde_json::json;

    use super::*;

    fn read(pairs: &[(&str, Value)], dev: bool) -> Result<UiConfig, String> {
        let mut layer = UiLayer::default();
        for (key, value) in pairs {
            layer.apply(key, value)?;
        }
        Ok(layer.build(dev))
    }

    #[test]
    fn off_by_default_and_on_in_dev() {
        assert_eq!(read(&[], false).unwrap(), UiConfig { enabled: false, content_path: "/ui/".into() });
        assert!(read(&[], true).unwrap().enabled);
        assert!(!read(&[("ui", json!(false))], true).unwrap().enabled);
    }

    #[test]
    fn block_and_legacy_keys_agree() {
        let block = read(&[("ui_config", json!({"enabled": true, "content_path": "consul/ui"}))], false).unwrap();
        assert_eq!(block, UiConfig { enabled: true, content_path: "/consul/ui/".into() });
        let legacy = read(&[("ui", json!(true)), ("ui_content_path", json!("/consul/ui/"))], false).unwrap();
        assert_eq!(block, legacy);
    }

    #[test]
    fn unimplemented_and_unknown_sub_keys_are_named() {
        let err = read(&[("ui_config", json!({"metrics_provider": "prometheus", "bogus": 1}))], false).unwrap_err();
        assert!(err.contains("ui_config.metrics_provider: not implemented"), "{err}");
        assert!(err.contains("ui_config.bogus: unknown key"), "{err}");
        assert!(read(&[("ui_config", json!({"dir": "/srv/ui"}))], false).unwrap_err().contains("ui_config.dir"));
        assert!(read(&[("ui_dir", json!("/srv/ui"))], false).is_err());
    }

    #[test]
    fn content_paths_outside_the_api() {
        for bad in ["/", "", "/v1/ui", "/a//b", "/../x", "/a b/"] {
            assert!(content_path(&json!(bad)).is_err(), "{bad:?} was accepted");
        }
        assert!(content_path(&json!(7)).is_err());
        assert_eq!(content_path(&json!("/dash/")).unwrap(), "/dash/");
        assert_eq!(content_path(&json!("ops/ui")).unwrap(), "/ops/ui/");
    }
}
