//! Certificate reload: on SIGHUP, and when a TLS file changes (its modification time or size, polled), the HTTPS
//! and RPC material is read again; new connections get it, open ones keep theirs, and a reload that fails keeps
//! the previous material and logs why.
//!
//! SIGHUP is Consul's reload signal. Only TLS material is reloaded so far; the handler says so, and, more
//! importantly, it replaces the default disposition, which would terminate the agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// How often the TLS files' modification times are compared.
const POLL_INTERVAL: Duration = Duration::from_secs(3);

/// One listener's material, named for the logs (`HTTPS`, `RPC`).
type Named = (&'static str, Arc<roster_tls::Tls>);

/// Watches for SIGHUP and for changed files of each of `all` until `token` is cancelled.
pub(crate) fn spawn(all: Vec<Named>, token: CancellationToken) {
    #[cfg(unix)]
    let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(err) => {
            tracing::warn!("cannot listen for SIGHUP ({err}); certificates reload only when their files change");
            None
        }
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup = hangup;
        let mut seen: Vec<_> = all.iter().map(|(_, tls)| stamps(&tls.files())).collect();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<Option<()>>();
            tokio::select! {
                () = token.cancelled() => return,
                _ = signalled => {
                    if all.is_empty() {
                        tracing::info!("SIGHUP: only TLS certificates are reloaded so far, and this agent has none");
                        continue;
                    }
                    tracing::info!("SIGHUP: reloading TLS certificates; other configuration is not reloaded yet");
                    for ((name, tls), seen) in all.iter().zip(seen.iter_mut()) {
                        *seen = stamps(&tls.files());
                        reload(name, tls, "SIGHUP");
                    }
                }
                _ = poll.tick() => {
                    for ((name, tls), seen) in all.iter().zip(seen.iter_mut()) {
                        let now = stamps(&tls.files());
                        if now != *seen {
                            *seen = now;
                            reload(name, tls, "a TLS file changed");
                        }
                    }
                }
            }
        }
    });
}

fn reload(name: &str, tls: &roster_tls::Tls, why: &str) {
    match tls.reload() {
        Ok(()) => tracing::info!("{why}: reloaded the {name} certificates; new connections use them"),
        Err(err) => tracing::error!("{why}: keeping the previous {name} certificates: {err}"),
    }
}

/// Each file's modification time and size; a file that cannot be read counts as a change when it comes back.
fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len()))))
        .collect()
}
