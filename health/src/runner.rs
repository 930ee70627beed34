//! The probes: one run of one check, doing its I/O and turning what it saw into a status and Consul's output text.
//!
//! A probe never fails as a Rust error: a refused connection, a timeout or a bad definition are all results (critical,
//! with a message saying why), because that is what the catalog must show.
//! Each probe enforces `spec.timeout` itself, so it can say what timed out and clean up (a script's process group).

mod grpc;
mod h2ping;
mod http;
mod net;
mod script;

use std::sync::Arc;
use std::time::Duration;

use crate::checks::ContainerExec;
use crate::spec::CheckSpec;
use crate::status::Status;

pub(crate) use http::HttpClients;

/// What probes share across checks: HTTP clients, the container exec backend, the script switch.
pub(crate) struct Runners {
    /// Pooled-by-settings HTTP clients for http and grpc probes (h2ping dials its own connection).
    pub(crate) http: HttpClients,
    /// The Docker exec backend; docker checks are critical without one.
    pub(crate) exec: Option<Arc<dyn ContainerExec>>,
    /// Consul's `enable_script_checks`: script checks run only when it is set.
    pub(crate) enable_script_checks: bool,
}

/// Keeps the last `max` bytes written and counts all of them (Consul's circular output buffer).
pub(crate) struct OutputBuffer {
    /// The most bytes kept.
    max: usize,
    /// The kept bytes; may briefly hold up to twice `max` so trimming is amortised.
    bytes: Vec<u8>,
    /// All bytes ever written.
    total: u64,
}

impl Runners {
    /// Runs one probe of `spec` (not TTL or alias, which have no probe).
    pub(crate) async fn probe(&self, spec: &CheckSpec) -> (Status, String) {
        use crate::spec::CheckKind;
        let max = spec.output_max_size;
        match &spec.kind {
            CheckKind::Http { .. } => self.http.probe(&spec.kind, spec.timeout, max).await,
            CheckKind::Tcp { addr } => net::tcp(addr, spec.timeout).await,
            CheckKind::Udp { addr } => net::udp(addr, spec.timeout).await,
            CheckKind::Grpc { target, use_tls, tls_skip_verify } => {
                grpc::probe(&self.http, target, *use_tls, *tls_skip_verify, spec.timeout).await
            }
            CheckKind::H2Ping { addr, use_tls, tls_skip_verify } => {
                h2ping::probe(addr, *use_tls, *tls_skip_verify, spec.timeout).await
            }
            CheckKind::Script { args } if self.enable_script_checks => script::run(args, spec.timeout, max).await,
            CheckKind::Script { .. } => {
                (Status::Critical, "Script checks are disabled on this agent (enable_script_checks)".to_string())
            }
            CheckKind::Docker { container_id, shell, args } => {
                self.docker(container_id, shell, args, spec.timeout, max).await
            }
            CheckKind::Ttl { .. } | CheckKind::Alias { .. } => {
                (Status::Critical, "internal error: TTL and alias checks are not probed".to_string())
            }
        }
    }

    async fn docker(
        &self,
        container_id: &str,
        shell: &str,
        args: &[String],
        timeout: Duration,
        max: usize,
    ) -> (Status, String) {
        let Some(exec) = &self.exec else {
            return (Status::Critical, "Docker checks need a container runtime, and this agent has none".to_string());
        };
        let res = tokio::time::timeout(timeout, exec.exec(container_id, shell, args, timeout)).await;
        match res {
            Err(_) => (Status::Critical, format!("Timed out ({}) running check", format_duration(timeout))),
            Ok(Err(err)) => (Status::Critical, err),
            Ok(Ok((exit_code, output))) => {
                let mut buffer = OutputBuffer::new(max);
                buffer.write(&output);
                (status_of_exit_code(exit_code), buffer.text_with_notice())
            }
        }
    }
}

/// Consul's exit code rule for script and docker checks.
pub(crate) fn status_of_exit_code(exit_code: i64) -> Status {
    match exit_code {
        0 => Status::Passing,
        1 => Status::Warning,
        _ => Status::Critical,
    }
}

/// A duration the way Go prints it for the durations checks use (`10s`, `1.5s`, `100ms`).
pub(crate) fn format_duration(duration: Duration) -> String {
    if duration >= Duration::from_secs(1) || duration.is_zero() {
        format!("{}s", duration.as_secs_f64())
    } else {
        format!("{}ms", duration.as_secs_f64() * 1000.0)
    }
}

/// An error with its sources, joined the way Go wraps errors (`outer: inner: root`).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

impl OutputBuffer {
    pub(crate) fn new(max: usize) -> OutputBuffer {
        OutputBuffer { max, bytes: Vec::new(), total: 0 }
    }

    pub(crate) fn write(&mut self, chunk: &[u8]) {
        self.total = self.total.saturating_add(chunk.len() as u64);
        // Only the tail of a huge chunk can survive, so copy only that.
        let keep_from = chunk.len().saturating_sub(self.max);
        self.bytes.extend_from_slice(&chunk[keep_from..]);
        if self.bytes.len() > self.max.saturating_mul(2).max(1024) {
            let cut = self.bytes.len() - self.max;
            self.bytes.drain(..cut);
        }
    }

    /// The kept tail as text (lossy UTF-8).
    pub(crate) fn text(&self) -> String {
        let start = self.bytes.len().saturating_sub(self.max);
        String::from_utf8_lossy(&self.bytes[start..]).into_owned()
    }

    /// The kept tail, prefixed with Consul's "Captured N of M bytes" notice when output was dropped.
    pub(crate) fn text_with_notice(&self) -> String {
        let kept = self.bytes.len().min(self.max);
        if self.total > kept as u64 {
            format!("Captured {kept} of {} bytes\n...\n{}", self.total, self.text())
        } else {
            self.text()
        }
    }
}

#[cfg(test)]
mod tests;
