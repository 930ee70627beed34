//! Certificate reload when a TLS file changes (its modification time or size, polled): the HTTPS and RPC material
//! is read again; new connections get it, open ones keep theirs, and a reload that fails keeps the previous
//! material and logs why.
//!
//! SIGHUP reloads the certificates too, as part of the whole configuration reload (`reload.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// How often the TLS files' modification times are compared.
const POLL_INTERVAL: Duration = Duration::from_secs(3);

/// One listener's material, named for the logs (`HTTPS`, `RPC`).
pub(crate) type Named = (&'static str, Arc<roster_tls::Tls>);

/// Watches for changed files of each of `all` until `token` is cancelled.
pub(crate) fn spawn(all: Vec<Named>, token: CancellationToken) {
    if all.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut seen: Vec<_> = all.iter().map(|(_, tls)| stamps(&tls.files())).collect();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = poll.tick() => {
                    for ((name, tls), seen) in all.iter().zip(seen.iter_mut()) {
                        let now = stamps(&tls.files());
                        if now != *seen {
                            *seen = now;
                            match tls.reload() {
                                Ok(()) => tracing::info!("a TLS file changed: reloaded the {name} certificates; new connections use them"),
                                Err(err) => tracing::error!("a TLS file changed: keeping the previous {name} certificates: {err}"),
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Each file's modification time and size; a file that cannot be read counts as a change when it comes back.
fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len()))))
        .collect()
}
