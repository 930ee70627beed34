//! The multi-host tier: roster in containers on Docker networks, for partitions (`docker network
//! disconnect`), node loss (`docker kill`) and restarts. Only networks and containers this module
//! creates (named `roster-test-*`) are ever touched, and they are removed on drop.
//!
//! No registry is needed: the image is a fully static `roster` binary (`+crt-static`, built for
//! the explicit host target so the flag stays off build scripts and proc-macros) plus a busybox
//! for a shell, put in a tar and `docker import`ed. The image tag is derived from the binary's
//! size and modification time, so an unchanged binary is imported once per machine.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

/// The target triple the static binary is built for.
const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Whether a Docker engine answers. Prints why a test is skipped when not, and panics instead when
/// `ROSTER_REQUIRE_DOCKER=1` (CI), where these tests must run.
pub fn docker_or_skip(test: &str) -> bool {
    let answered = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if answered {
        return true;
    }
    if std::env::var("ROSTER_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("ROSTER_REQUIRE_DOCKER=1 but no Docker engine answers (needed by {test})");
    }
    eprintln!("skipping {test}: no Docker engine answers `docker version`");
    false
}

/// Runs `docker ARGS` and returns its trimmed stdout, or an error carrying its stderr.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("docker").args(args).output().context("running the docker CLI")?;
    if !output.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The tag of an image holding the static roster binary at `/bin/roster` and busybox's `/bin/sh`;
/// built and imported on first use in this process.
pub fn roster_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| build_image().unwrap_or_else(|err| panic!("building the roster test image: {err:#}"))).clone()
}

fn build_image() -> anyhow::Result<String> {
    let bin = build_static_roster()?;
    let meta = std::fs::metadata(&bin)?;
    let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let tag = format!("roster-test-static:{:x}-{:x}", meta.len(), mtime);
    if docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
        return Ok(tag);
    }
    let root = tempfile::tempdir()?;
    let bin_dir = root.path().join("bin");
    std::fs::create_dir_all(&bin_dir)?;
    std::fs::create_dir_all(root.path().join("data"))?;
    std::fs::create_dir_all(root.path().join("tmp"))?;
    std::fs::copy(&bin, bin_dir.join("roster"))?;
    if let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists()) {
        std::fs::copy(busybox, bin_dir.join("busybox"))?;
        for applet in ["sh", "sleep", "wget", "cat", "ip"] {
            std::os::unix::fs::symlink("busybox", bin_dir.join(applet))?;
        }
    }
    let script = format!("tar -C {} -c . | docker import - {tag} >/dev/null", root.path().display());
    let output = Command::new("/bin/sh").args(["-c", &script]).output()?;
    if !output.status.success() {
        bail!("docker import: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(tag)
}

/// Builds the static binary into `target/static` (its own target dir, so the normal build's
/// artifacts are not invalidated by the different RUSTFLAGS).
fn build_static_roster() -> anyhow::Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let target_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    crate::harness::strip_runner_env(&mut build);
    let output = build
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--quiet", "-p", "roster-agent", "--bin", "roster", "--target", STATIC_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .output()
        .context("running cargo build for the static roster binary")?;
    if !output.status.success() {
        bail!("static build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(target_dir.join(STATIC_TARGET).join("debug/roster"))
}

/// A Docker network created for one test; removed (after its containers) on drop.
pub struct Network {
    /// The network's name.
    pub name: String,
}

impl Network {
    /// Creates a bridge network with a unique `roster-test-*` name.
    pub fn create(purpose: &str) -> anyhow::Result<Network> {
        let name = format!("roster-test-{purpose}-{}", unique_suffix());
        docker(&["network", "create", "--driver", "bridge", &name])?;
        Ok(Network { name })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}

/// A container started by a test; force-removed on drop (after printing its log if the test panicked).
pub struct Container {
    /// The container's name.
    pub name: String,
}

impl Container {
    /// `docker run -d --name NAME --network NET IMAGE ARGS...`.
    pub fn run(name_hint: &str, network: &Network, args: &[&str]) -> anyhow::Result<Container> {
        let name = format!("roster-test-{name_hint}-{}", unique_suffix());
        let image = roster_image();
        let mut full = vec!["run", "-d", "--name", &name, "--hostname", name_hint, "--network", &network.name];
        full.push(&image);
        full.extend_from_slice(args);
        docker(&full)?;
        Ok(Container { name })
    }

    /// The container's address on `network`.
    pub fn ip(&self, network: &Network) -> anyhow::Result<IpAddr> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", network.name);
        let text = docker(&["inspect", "--format", &format, &self.name])?;
        text.parse().with_context(|| format!("{} has no address on {}: {text:?}", self.name, network.name))
    }

    /// `docker kill` (SIGKILL).
    pub fn kill(&self) -> anyhow::Result<()> {
        docker(&["kill", &self.name]).map(drop)
    }

    /// `docker start` again after a kill; the container keeps its filesystem (the data dir).
    pub fn start(&self) -> anyhow::Result<()> {
        docker(&["start", &self.name]).map(drop)
    }

    /// Cuts the container off `network`.
    pub fn disconnect(&self, network: &Network) -> anyhow::Result<()> {
        docker(&["network", "disconnect", &network.name, &self.name]).map(drop)
    }

    /// Puts the container back on `network`.
    pub fn connect(&self, network: &Network) -> anyhow::Result<()> {
        docker(&["network", "connect", &network.name, &self.name]).map(drop)
    }

    /// The container's log so far.
    pub fn logs(&self) -> String {
        let output = Command::new("docker").args(["logs", "--tail", "200", &self.name]).output();
        output
            .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
            .unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}\n--- end ---", self.name, self.logs());
        }
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nth = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nth}", std::process::id())
}
