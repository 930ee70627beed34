//! Certificate reload: on SIGHUP, and when a TLS file changes (its modification time or size, polled), the HTTPS
//! listener's material is read again; new connections get it, open ones keep theirs, and a reload that fails keeps
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

/// Watches for SIGHUP and for changed files of `tls` until `token` is cancelled.
pub(crate) fn spawn(tls: Option<Arc<roster_tls::Tls>>, token: CancellationToken) {
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
        let mut seen = tls.as_ref().map(|tls| stamps(&tls.files())).unwrap_or_default();
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
                _ = signalled => match &tls {
                    Some(tls) => {
                        tracing::info!("SIGHUP: reloading TLS certificates; other configuration is not reloaded yet");
                        seen = stamps(&tls.files());
                        reload(tls, "SIGHUP");
                    }
                    None => tracing::info!(
                        "SIGHUP: only TLS certificates are reloaded so far, and this agent serves no HTTPS; nothing to do"
                    ),
                },
                _ = poll.tick() => {
                    let Some(tls) = &tls else { continue };
                    let now = stamps(&tls.files());
                    if now != seen {
                        seen = now;
                        reload(tls, "a TLS file changed");
                    }
                }
            }
        }
    });
}

fn reload(tls: &roster_tls::Tls, why: &str) {
    match tls.reload() {
        Ok(()) => tracing::info!("{why}: reloaded the HTTPS certificates; new connections use them"),
        Err(err) => tracing::error!("{why}: keeping the previous HTTPS certificates: {err}"),
    }
}

/// Each file's modification time and size; a file that cannot be read counts as a change when it comes back.
fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len()))))
        .collect()
}
