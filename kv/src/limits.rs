//! The size limits every command is held to, at the HTTP edge and again when it is applied.
//!
//! The agent checks a request against these before proposing it, with the texts below, so an HTTP client learns what it broke.
//! `State::apply` checks the same functions again, because a command can also arrive from a peer on the RPC port (or from an agent of another build), and the state machine is the only place every command passes through.
//! A command over a limit is refused there deterministically and changes nothing, so every replica refuses it alike.
//!
//! Keeping the numbers and the checks in one place is what keeps the two layers from disagreeing: the edge calls these functions instead of restating them.

use std::collections::BTreeMap;

/// The largest KV value the store accepts, in bytes (Consul's limit).
pub const MAX_VALUE_SIZE: usize = 512 * 1024;

/// The longest KV key (or delete-tree prefix) the store accepts, in bytes.
///
/// Consul states no key limit; its keys are bounded only by the request size.
/// 64 KiB is far beyond any key path in practice, is about the longest request target an HTTP/1 server accepts anyway (so `PUT /v1/kv/<key>` and a transaction agree), and bounds what one key costs every structure that holds or compares it.
pub const MAX_KEY_LEN: usize = 64 * 1024;

/// The most `Meta` pairs one service may carry (Consul's `metaMaxKeyPairs`).
pub const MAX_META_PAIRS: usize = 64;
/// The longest `Meta` key, in bytes (Consul's `metaKeyMaxLength`).
pub const MAX_META_KEY_LEN: usize = 128;
/// The longest `Meta` value, in bytes (Consul's `metaValueMaxLength`).
pub const MAX_META_VALUE_LEN: usize = 512;

/// Why a KV key is refused: over `MAX_KEY_LEN`.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_LEN {
        return Err(format!("Key too long ({} bytes), max size: {MAX_KEY_LEN} bytes", key.len()));
    }
    Ok(())
}

/// Why a KV value is refused: over `MAX_VALUE_SIZE` (Consul's text for a too large body).
pub fn check_value(value: &[u8]) -> Result<(), String> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(format!("Request body({} bytes) too large, max size: {MAX_VALUE_SIZE} bytes", value.len()));
    }
    Ok(())
}

/// Why a service's `Meta` is refused, with Consul's texts: too many pairs, a key empty, too long, not `[A-Za-z0-9_-]` or under the reserved `consul-` prefix, or a value too long.
pub fn check_service_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    if meta.len() > MAX_META_PAIRS {
        return Err(format!(
            "Invalid Service Meta: Node metadata cannot contain more than {MAX_META_PAIRS} key/value pairs"
        ));
    }
    for (key, value) in meta {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("Invalid Service Meta: Key contains invalid characters: {key:?}"));
        }
        if key.len() > MAX_META_KEY_LEN {
            return Err(format!("Invalid Service Meta: Key is too long (limit: {MAX_META_KEY_LEN} characters)"));
        }
        if key.starts_with("consul-") {
            return Err(format!("Invalid Service Meta: Key prefix 'consul-' is reserved for internal use: {key:?}"));
        }
        if value.len() > MAX_META_VALUE_LEN {
            return Err(format!("Invalid Service Meta: Value is too long (limit: {MAX_META_VALUE_LEN} characters)"));
        }
    }
    Ok(())
}
