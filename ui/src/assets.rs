//! The stylesheet and the script, embedded in the binary and served under names carrying a hash of their bytes
//! (`app.<hash>.css`), so a browser may cache them for a year and still never runs an old script against a new agent.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

const CSS: Asset = Asset { bytes: include_bytes!("../assets/app.css"), content_type: "text/css; charset=utf-8" };
const JS: Asset = Asset { bytes: include_bytes!("../assets/app.js"), content_type: "text/javascript; charset=utf-8" };

/// The served names, hashed once.
static NAMES: LazyLock<[(String, Asset); 2]> =
    LazyLock::new(|| [(hashed("app", "css", CSS.bytes), CSS), (hashed("app", "js", JS.bytes), JS)]);

fn hashed(stem: &str, extension: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{stem}.{hex}.{extension}")
}

/// The served name of the stylesheet (`"css"`) or the script (`"js"`).
pub fn asset_name(extension: &str) -> &'static str {
    NAMES.iter().find(|(name, _)| name.ends_with(&format!(".{extension}"))).map_or("", |(name, _)| name.as_str())
}

/// The asset served under `name`, if any.
pub fn asset(name: &str) -> Option<Asset> {
    NAMES.iter().find(|(served, _)| served == name).map(|(_, asset)| *asset)
}

#[cfg(test)]
mod tests {
    //! Names follow content.
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        let css = asset_name("css");
        assert!(css.starts_with("app.") && css.ends_with(".css") && css.len() == "app..css".len() + 12, "{css}");
        assert_eq!(asset(css).map(|a| a.content_type), Some("text/css; charset=utf-8"));
        assert!(asset(asset_name("js")).is_some());
        assert!(asset("app.css").is_none(), "only the hashed name is served");
    }
}
