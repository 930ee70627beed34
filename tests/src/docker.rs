//! The multi-host tier: roster in containers on Docker networks, for partitions (`docker network
//! disconnect`), node loss (`docker kill`) and restarts. Only networks and containers this module
//! creates (named `roster-test-*`) are ever touched, and they are removed on drop.
//!
//! No registry is needed: the image is the `roster` binary every other test runs ([`roster_bin`]),
//! the shared libraries `ldd` says it links (at the same paths), and a busybox for a shell, put in a
//! tar and `docker import`ed. The image tag is derived from the size and modification time of each
//! of those files, so an unchanged binary is imported once per machine.
//!
//! It used to be a separate fully static build (`+crt-static`, its own target dir): a second debug
//! build of the whole dependency tree, which the two cluster tests waited on for five to seven
//! minutes of a CI run while it shared the cores with the rest of the suite.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

use crate::roster_bin;

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

/// The tag of an image holding the suite's roster binary at `/bin/roster` (with the shared libraries
/// it links) and busybox's `/bin/sh`; built and imported on first use in this process.
pub fn roster_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| build_image().unwrap_or_else(|err| panic!("building the roster test image: {err:#}"))).clone()
}

fn build_image() -> anyhow::Result<String> {
    let bin = roster_bin();
    let libs = linked_libraries(&bin)?;
    // The libraries are in the tag too: an upgraded libc on the host must not pair with an image's old one.
    let mut stamp = DefaultHasher::new();
    for file in std::iter::once(&bin).chain(&libs) {
        let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
        (file, meta.len(), meta.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_nanos()).hash(&mut stamp);
    }
    let tag = format!("roster-test:{:016x}", stamp.finish());
    if docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
        return Ok(tag);
    }
    let root = tempfile::tempdir()?;
    let bin_dir = root.path().join("bin");
    std::fs::create_dir_all(&bin_dir)?;
    std::fs::create_dir_all(root.path().join("data"))?;
    std::fs::create_dir_all(root.path().join("tmp"))?;
    std::fs::copy(&bin, bin_dir.join("roster"))?;
    for lib in &libs {
        let relative = lib.strip_prefix("/").with_context(|| format!("ldd named a relative path {}", lib.display()))?;
        let into = root.path().join(relative);
        std::fs::create_dir_all(into.parent().context("a library path has a parent")?)?;
        // `copy` follows a symlink (`libc.so.6` is often one), so the image gets the file itself.
        std::fs::copy(lib, &into).with_context(|| format!("copying {}", lib.display()))?;
    }
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

/// The shared libraries `bin` loads, the dynamic loader among them, as `ldd` lists them; none for a static binary.
fn linked_libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(bin).output().context("running ldd")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // ldd fails on a static binary ("not a dynamic executable"): it brings nothing.
        if String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {}: {}", bin.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    parse_ldd(&listing)
}

/// The absolute paths in `ldd`'s listing: `name => /path (0x…)` and the loader's `/path (0x…)`; the vDSO
/// (`linux-vdso.so.1 (0x…)`) is no file. A library `ldd` could not find (`=> not found`) is an error here, rather
/// than a container that will not start.
fn parse_ldd(listing: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in listing.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if first.starts_with('/') {
            libs.push(PathBuf::from(first));
            continue;
        }
        if fields.next() != Some("=>") {
            continue;
        }
        match fields.next() {
            Some(path) if path.starts_with('/') => libs.push(PathBuf::from(path)),
            _ => bail!("the roster binary links {first}, which ldd did not find: {}", line.trim()),
        }
    }
    Ok(libs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_listing_gives_the_library_files_and_the_loader() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd6b5f2000)\n\
                       \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f3a1c000000)\n\
                       \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3a1be00000)\n\
                       \t/lib64/ld-linux-x86-64.so.2 (0x00007f3a1c100000)\n";
        let expected: Vec<PathBuf> =
            ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
                .into_iter()
                .map(PathBuf::from)
                .collect();
        assert_eq!(parse_ldd(listing).unwrap(), expected);
    }

    #[test]
    fn a_library_ldd_did_not_find_fails_the_image() {
        let listing = "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3a1be00000)\n\
                       \tlibmissing.so.2 => not found\n";
        let err = parse_ldd(listing).unwrap_err().to_string();
        assert!(err.contains("libmissing.so.2"), "{err}");
    }
}
