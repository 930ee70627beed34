//! Fitting in with init systems: the `pid_file`, and systemd's readiness protocol (`sd_notify`) for `Type=notify`
//! units.
//!
//! sd_notify is a datagram of `KEY=value` lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for
//! the abstract namespace). The agent sends `READY=1` once it serves, `RELOADING=1` then `READY=1` around a
//! configuration reload, and `STOPPING=1` when it starts draining. Without `$NOTIFY_SOCKET` nothing is sent; a send
//! that fails is logged and never stops the agent, since the service manager's view is not the agent's health.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where systemd listens for this process's state changes.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`'s value; `None` (not run by systemd) sends nothing.
    pub fn new(socket: Option<String>) -> Notifier {
        Notifier { socket: socket.filter(|path| !path.is_empty()) }
    }

    /// The notifier of this process's environment.
    pub fn from_env() -> Notifier {
        Notifier::new(std::env::var("NOTIFY_SOCKET").ok())
    }

    /// `READY=1`: the agent serves.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving\n");
    }

    /// `RELOADING=1`: a configuration reload started; [`Notifier::ready`] follows when it ends, whatever its outcome.
    pub fn reloading(&self) {
        self.send("RELOADING=1\nSTATUS=reloading the configuration\n");
    }

    /// `STOPPING=1`: the agent is draining and will exit.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining\n");
    }

    fn send(&self, state: &str) {
        let Some(socket) = &self.socket else { return };
        if let Err(err) = send_to(socket, state.as_bytes()) {
            tracing::warn!("sd_notify to {socket}: {err}");
        }
    }
}

/// One datagram to a socket path, or to the abstract name after a leading `@`.
fn send_to(socket: &str, message: &[u8]) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sender.send_to_addr(message, &addr)?;
        }
        None => {
            sender.send_to(message, socket)?;
        }
    }
    Ok(())
}

/// The pid file while the agent runs: written at start, removed when this is dropped (a clean shutdown or a failed
/// start; a killed process leaves it, as every daemon's does).
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's ID to `path` (replacing what is there) through a temporary file and a rename, so a
    /// reader never sees a half-written number. The file is 0644: anyone may read which process to signal.
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        let tmp = path.with_extension("pid.tmp");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(PidFile { path: path.to_path_buf() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own pid is removed: another agent may have taken the path over since.
        let ours =
            std::fs::read_to_string(&self.path).ok().is_some_and(|text| text.trim() == std::process::id().to_string());
        if ours && let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!("removing the pid file {}: {err}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_socket_by_path_and_by_abstract_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        Notifier::new(Some(path.display().to_string())).ready();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving\n");

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("roster-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        Notifier::new(Some(format!("@{name}"))).stopping();
        let n = listener.recv(&mut buf).expect("recv");
        assert!(buf[..n].starts_with(b"STOPPING=1\n"));
    }

    #[test]
    fn a_pid_file_holds_this_pid_until_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("roster.pid");
        let pid_file = PidFile::create(&path).expect("create");
        assert_eq!(std::fs::read_to_string(&path).expect("read").trim(), std::process::id().to_string());
        drop(pid_file);
        assert!(!path.exists());
    }
}
