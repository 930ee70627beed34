//! A throwaway single-member etcd for the benchmarks that compare roster with it, on loopback only.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use tempfile::TempDir;

use crate::{b64, http_client};

/// A running etcd, killed and reaped on drop; its data dir and log go with it.
pub struct EtcdProcess {
    child: Child,
    dir: TempDir,
}

impl EtcdProcess {
    /// Starts a single-member etcd on two free loopback ports and waits until it serves reads.
    pub async fn start(etcd_bin: &Path) -> anyhow::Result<(EtcdProcess, String)> {
        let dir = tempfile::tempdir().context("creating etcd's temp dir")?;
        let client_url = format!("http://127.0.0.1:{}", free_port()?);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let log = File::create(dir.path().join("etcd.log")).context("creating etcd's log file")?;
        let child = Command::new(etcd_bin)
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", etcd_bin.display()))?;
        let mut etcd = EtcdProcess { child, dir };
        etcd.wait_ready(&client_url).await?;
        Ok((etcd, client_url))
    }

    async fn wait_ready(&mut self, client_url: &str) -> anyhow::Result<()> {
        let client = http_client(1);
        let started = Instant::now();
        loop {
            let probe = client
                .post(format!("{client_url}/v3/kv/range"))
                .body(json!({"key": b64("probe")}).to_string())
                .send()
                .await;
            if probe.is_ok_and(|res| res.status().is_success()) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("etcd exited with {status}; log:\n{}", self.log());
            }
            if started.elapsed() > Duration::from_secs(15) {
                bail!("etcd not ready within 15 s; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// etcd's process id (benchmarks read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What etcd wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _already_exited = self.child.kill();
        let _status = self.child.wait();
    }
}

/// The etcd binary to use: the flag, else `etcd` on PATH.
pub fn find_etcd(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = flag {
        return Some(path.to_path_buf());
    }
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var).map(|dir| dir.join("etcd")).find(|candidate| candidate.is_file())
}

/// A loopback port that was free a moment ago; etcd cannot report ports it bound itself, so the
/// small race of picking one first is accepted.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral port")?;
    Ok(listener.local_addr()?.port())
}
