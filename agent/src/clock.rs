//! The wall clock in Unix milliseconds: what lock-delays, token creation times and token expiry are measured against.

/// Now, in Unix milliseconds (0 before the epoch, saturating far after it).
pub(crate) fn unix_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}
