//! Throwaway etcd processes for the benchmarks that compare roster with it: one member, or a cluster whose members
//! each have a loopback address of their own, as roster's test clusters do.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use tempfile::TempDir;

use crate::{b64, http_client};

/// How long a member may take to serve a linearizable read (a cluster must elect first).
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A running etcd member, killed and reaped on drop; its data dir and log go with it.
pub struct EtcdProcess {
    child: Child,
    dir: TempDir,
}

/// Where one member listens.
struct MemberAddrs {
    name: String,
    client_url: String,
    peer_url: String,
}

impl MemberAddrs {
    fn on(ip: IpAddr, name: String) -> anyhow::Result<MemberAddrs> {
        let client_url = format!("http://{ip}:{}", free_port_on(ip)?);
        let peer_url = format!("http://{ip}:{}", free_port_on(ip)?);
        Ok(MemberAddrs { name, client_url, peer_url })
    }
}

impl EtcdProcess {
    /// Starts a single-member etcd on two free loopback ports and waits until it serves reads.
    pub async fn start(etcd_bin: &Path) -> anyhow::Result<(EtcdProcess, String)> {
        let member = MemberAddrs::on(IpAddr::V4(Ipv4Addr::LOCALHOST), "bench".to_owned())?;
        let initial_cluster = format!("{}={}", member.name, member.peer_url);
        let mut etcd = EtcdProcess::spawn(etcd_bin, &member, &initial_cluster)?;
        etcd.wait_ready(&member.client_url).await?;
        Ok((etcd, member.client_url))
    }

    fn spawn(etcd_bin: &Path, member: &MemberAddrs, initial_cluster: &str) -> anyhow::Result<EtcdProcess> {
        let dir = tempfile::tempdir().context("creating etcd's temp dir")?;
        let log = File::create(dir.path().join("etcd.log")).context("creating etcd's log file")?;
        let child = Command::new(etcd_bin)
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={}", member.client_url))
            .arg(format!("--advertise-client-urls={}", member.client_url))
            .arg(format!("--listen-peer-urls={}", member.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", member.peer_url))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", etcd_bin.display()))?;
        Ok(EtcdProcess { child, dir })
    }

    /// Waits until the member answers a linearizable read, which needs an elected leader.
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
            if started.elapsed() > READY_DEADLINE {
                bail!("etcd not ready within {READY_DEADLINE:?}; log:\n{}", self.log());
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

/// An etcd cluster of `n` members, member `i` on `127.A.B.(1+i)`; every member is killed on drop.
pub struct EtcdCluster {
    /// The members, in start order.
    pub members: Vec<EtcdProcess>,
    /// Each member's client URL (`http://ip:port`), in the same order.
    pub client_urls: Vec<String>,
}

impl EtcdCluster {
    /// Starts `n` members that bootstrap together and waits until each serves linearizable reads.
    pub async fn start(etcd_bin: &Path, n: usize) -> anyhow::Result<EtcdCluster> {
        let [a, b] = loopback_subnet();
        let addrs = (0..n)
            .map(|idx| {
                let last = u8::try_from(idx + 1).context("at most 254 members")?;
                MemberAddrs::on(IpAddr::V4(Ipv4Addr::new(127, a, b, last)), format!("bench{idx}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let initial_cluster =
            addrs.iter().map(|member| format!("{}={}", member.name, member.peer_url)).collect::<Vec<_>>().join(",");
        // All members first: the first one cannot elect a leader, and so cannot become ready, alone.
        let mut members = Vec::new();
        for member in &addrs {
            members.push(EtcdProcess::spawn(etcd_bin, member, &initial_cluster)?);
        }
        for (process, member) in members.iter_mut().zip(&addrs) {
            process.wait_ready(&member.client_url).await?;
        }
        Ok(EtcdCluster { members, client_urls: addrs.into_iter().map(|member| member.client_url).collect() })
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
    free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn free_port_on(ip: IpAddr) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((ip, 0)).with_context(|| format!("binding an ephemeral port on {ip}"))?;
    Ok(listener.local_addr()?.port())
}

/// Two middle octets for a cluster's `127.A.B.0/24`, varied by process and time. Ports are picked free on each
/// address, so sharing a /24 with another run (or a roster test cluster) is harmless.
fn loopback_subnet() -> [u8; 2] {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mixed = nanos ^ std::process::id().rotate_left(16);
    let a = 1 + (mixed % 250) as u8;
    let b = 1 + ((mixed / 250) % 250) as u8;
    [a, b]
}
