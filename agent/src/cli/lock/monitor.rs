//! Watching a held lock or semaphore slot: one blocking read after another until it is gone.
//!
//! Both kinds share the retry rule of `consul lock -monitor-retry`: an agent error is forgiven
//! `retries` times in a row (with a pause between tries), because a lock that cannot be read
//! cannot be vouched for either, but a brief agent restart should not kill the command.

use std::future::Future;
use std::time::Duration;

/// The pause between monitor retries after an agent error (Consul's `-monitor-retry` wait).
const MONITOR_RETRY_WAIT: Duration = Duration::from_secs(1);

/// Calls `read(wait_index)` until it reports the hold gone (`Ok(None)`) or fails more than
/// `retries` times in a row. `Ok(Some(index))` means still held; the next read blocks past `index`.
pub(super) async fn until_lost<F, Fut>(retries: u32, mut read: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<u64>>>,
{
    let mut wait_index = 0;
    let mut failures = 0;
    loop {
        match read(wait_index).await {
            Ok(Some(index)) => {
                failures = 0;
                wait_index = index;
            }
            Ok(None) => return,
            Err(err) => {
                failures += 1;
                if failures > retries {
                    eprintln!("roster lock: cannot monitor the lock: {err:#}");
                    return;
                }
                // A fresh read, not a blocking one: the error may have hidden a change.
                wait_index = 0;
                tokio::time::sleep(MONITOR_RETRY_WAIT).await;
            }
        }
    }
}
