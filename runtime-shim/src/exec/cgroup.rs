//! A task's control group on any of the three cgroup layouts a Linux host can have, found from
//! `/proc/self/mountinfo`:
//!
//! - **v2**: one `cgroup2` hierarchy (at `/sys/fs/cgroup`) holding every controller.
//! - **v1**: one `cgroup` hierarchy per controller (or per comounted set, `cpu,cpuacct`).
//! - **hybrid**: the v1 hierarchies plus a controller-less `cgroup2` (at `/sys/fs/cgroup/unified`). The limits go
//!   to v1; the task also joins a group in the unified tree, whose `cgroup.kill` ends every process at once.
//!
//! A task's group is the same relative path (`<prefix>/<node>/<job>.<task>`) in every hierarchy it uses: on v1 the
//! `memory`, `pids` and `cpu` ones, which are all roster limits. The paths are fixed when the task starts and saved
//! in its `task.json` ([`CgroupDirs`]), so the supervisor, `exec` and a restarted agent address the same groups
//! even if the host's layout or roster's configuration changes meanwhile.
//!
//! Every function here is plain file I/O on cgroupfs; the pure parts (layout detection, which file gets which
//! value) are separate so they are tested without a kernel.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::Resources;

/// The v1 controllers roster limits; a task joins each one's hierarchy.
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// The CFS period used for CPU limits: 100 ms, the kernel's and Docker's default.
const CPU_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts (1 ms).
const CPU_MIN_QUOTA_US: u64 = 1_000;

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Per-controller v1 hierarchies only.
    V1,
    /// v1 controllers plus a controller-less cgroup2 tree.
    Hybrid,
    /// The unified cgroup2 hierarchy with every controller.
    V2,
}

/// The host's cgroup mounts: what [`detect`] finds in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Which layout it is.
    pub(crate) kind: Kind,
    /// The cgroup2 mount point: the whole hierarchy on v2, the controller-less tree on hybrid.
    pub(crate) unified: Option<PathBuf>,
    /// Each v1 controller roster uses, by name, to its hierarchy's mount point.
    pub(crate) v1: BTreeMap<String, PathBuf>,
}

/// A task's groups as saved in its `task.json`: the layout's mount points and the path below each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CgroupDirs {
    /// The layout the task was started on.
    pub(crate) kind: Kind,
    /// The group's path relative to each hierarchy's mount point, `roster/<node>/<job>.<task>`.
    pub(crate) relative: PathBuf,
    /// The cgroup2 mount point, if any.
    pub(crate) unified: Option<PathBuf>,
    /// The v1 mount point of each controller roster uses.
    pub(crate) v1: BTreeMap<String, PathBuf>,
}

/// One file write that applies a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitWrite {
    /// The cgroup file.
    pub(crate) path: PathBuf,
    /// What to write.
    pub(crate) value: String,
    /// Whether a missing file is fine: swap limits exist only when the kernel accounts swap.
    pub(crate) optional: bool,
}

/// Finds the cgroup layout in the text of `/proc/self/mountinfo`.
/// v1 controllers win over cgroup2 (a controller bound to a v1 hierarchy is unavailable in cgroup2), so any v1
/// `memory`, `pids` or `cpu` hierarchy makes the layout v1, or hybrid when a cgroup2 is mounted too.
pub(crate) fn detect(mountinfo: &str) -> Result<Layout, String> {
    let mut unified: Option<PathBuf> = None;
    let mut v1 = BTreeMap::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(mount_point) = left.split(' ').nth(4) else { continue };
        let mut right = right.split(' ');
        let (Some(fs_type), Some(_source), Some(super_options)) = (right.next(), right.next(), right.next()) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        match fs_type {
            // Prefer the conventional mount point when a host has more than one cgroup2 mount.
            "cgroup2" if unified.is_none() || mount_point.starts_with("/sys/fs/cgroup") => {
                unified = Some(mount_point);
            }
            "cgroup" => {
                for option in super_options.split(',').filter(|option| V1_CONTROLLERS.contains(option)) {
                    v1.entry(option.to_string()).or_insert_with(|| mount_point.clone());
                }
            }
            _ => {}
        }
    }
    let kind = match (v1.is_empty(), &unified) {
        (false, Some(_)) => Kind::Hybrid,
        (false, None) => Kind::V1,
        (true, Some(_)) => Kind::V2,
        (true, None) => return Err("no cgroup filesystem is mounted".to_string()),
    };
    Ok(Layout { kind, unified, v1 })
}

/// Reads and detects this host's layout.
pub(crate) fn host_layout() -> Result<Layout, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|err| format!("reading /proc/self/mountinfo: {err}"))?;
    detect(&mountinfo)
}

impl Kind {
    /// The layout's name in messages: `v1`, `hybrid`, `v2`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::V1 => "v1",
            Kind::Hybrid => "hybrid",
            Kind::V2 => "v2",
        }
    }
}

impl Layout {
    /// The groups at `relative` below each of this layout's hierarchies.
    pub(crate) fn dirs(&self, relative: impl Into<PathBuf>) -> CgroupDirs {
        CgroupDirs {
            kind: self.kind,
            relative: relative.into(),
            unified: self.unified.clone(),
            v1: if self.kind == Kind::V2 { BTreeMap::new() } else { self.v1.clone() },
        }
    }
}

impl CgroupDirs {
    /// Every group directory, each once (comounted v1 controllers share one).
    pub(crate) fn all(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.unified.iter().map(|mount| mount.join(&self.relative)).collect();
        for mount in self.v1.values() {
            let dir = mount.join(&self.relative);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// The group a v1 controller's files are in (on v2, the one group).
    fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        match self.kind {
            Kind::V2 => self.unified.as_ref().map(|mount| mount.join(&self.relative)),
            Kind::V1 | Kind::Hybrid => self.v1.get(controller).map(|mount| mount.join(&self.relative)),
        }
    }

    /// The group whose `cgroup.procs` lists every process of the task: the cgroup2 one when there is one (it
    /// alone has `cgroup.kill`), else the memory (or any) v1 one.
    fn primary(&self) -> Option<PathBuf> {
        if let Some(mount) = &self.unified {
            return Some(mount.join(&self.relative));
        }
        let mount = self.v1.get("memory").or_else(|| self.v1.values().next())?;
        Some(mount.join(&self.relative))
    }

    /// The file writes that apply `resources`, in order (a v1 swap limit must follow the memory limit, since it
    /// may not be below it). An error names a limit this host has no controller for.
    pub(crate) fn limit_writes(&self, resources: &Resources) -> Result<Vec<LimitWrite>, String> {
        let mut writes = Vec::new();
        let dir = |controller: &str| {
            self.controller_dir(controller).ok_or_else(|| {
                format!("the {controller} controller is not mounted ({} cgroup layout)", self.kind.as_str())
            })
        };
        let write = |dir: &Path, file: &str, value: String, optional: bool| LimitWrite {
            path: dir.join(file),
            value,
            optional,
        };
        if let Some(memory_mb) = resources.memory_mb {
            let dir = dir("memory")?;
            let bytes = (memory_mb.saturating_mul(1024 * 1024)).to_string();
            // Swap is limited too, so `memory_mb` is the whole budget and the task is OOM-killed beyond it, as the
            // spec promises, rather than swapping.
            if self.kind == Kind::V2 {
                writes.push(write(&dir, "memory.max", bytes, false));
                writes.push(write(&dir, "memory.swap.max", "0".to_string(), true));
            } else {
                writes.push(write(&dir, "memory.limit_in_bytes", bytes.clone(), false));
                writes.push(write(&dir, "memory.memsw.limit_in_bytes", bytes, true));
            }
        }
        if let Some(pids) = resources.pids {
            writes.push(write(&dir("pids")?, "pids.max", pids.to_string(), false));
        }
        if let Some(millicores) = resources.cpu {
            let dir = dir("cpu")?;
            let quota = (millicores.saturating_mul(CPU_PERIOD_US) / 1000).max(CPU_MIN_QUOTA_US);
            if self.kind == Kind::V2 {
                writes.push(write(&dir, "cpu.max", format!("{quota} {CPU_PERIOD_US}"), false));
            } else {
                writes.push(write(&dir, "cpu.cfs_period_us", CPU_PERIOD_US.to_string(), false));
                writes.push(write(&dir, "cpu.cfs_quota_us", quota.to_string(), false));
            }
        }
        Ok(writes)
    }

    /// Creates the groups and applies `resources`. On v2 the controllers are enabled in every ancestor first
    /// (`cgroup.subtree_control`); the groups roster creates never hold processes of their own, so this is allowed.
    pub(crate) fn create(&self, resources: &Resources) -> io::Result<()> {
        let writes = self.limit_writes(resources).map_err(io::Error::other)?;
        if self.kind == Kind::V2
            && let Some(mount) = &self.unified
        {
            self.enable_controllers(mount, resources)?;
        }
        for dir in self.all() {
            std::fs::create_dir_all(&dir).map_err(|err| annotate(err, &dir))?;
        }
        for write in writes {
            match std::fs::write(&write.path, &write.value) {
                Ok(()) => {}
                Err(err) if write.optional && err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(annotate(err, &write.path)),
            }
        }
        Ok(())
    }

    /// Enables in every ancestor of the group the v2 controllers its limits need. Each controller is written on
    /// its own, since one unavailable controller fails a combined write.
    fn enable_controllers(&self, mount: &Path, resources: &Resources) -> io::Result<()> {
        let wanted = [
            ("memory", resources.memory_mb.is_some()),
            ("pids", resources.pids.is_some()),
            ("cpu", resources.cpu.is_some()),
        ];
        let mut ancestor = mount.to_path_buf();
        let mut parts = self.relative.components().peekable();
        loop {
            std::fs::create_dir_all(&ancestor).map_err(|err| annotate(err, &ancestor))?;
            let control = ancestor.join("cgroup.subtree_control");
            for (controller, _) in wanted.iter().filter(|(_, needed)| *needed) {
                std::fs::write(&control, format!("+{controller}")).map_err(|err| annotate(err, &control))?;
            }
            // Stop at the group's parent: the group itself is a leaf that holds the task.
            match parts.next() {
                Some(part) if parts.peek().is_some() => ancestor.push(part),
                _ => break,
            }
        }
        Ok(())
    }

    /// Moves the calling process into every group. `0` means "the writer", which also works from inside a PID
    /// namespace, where the process's own number would name another process.
    pub(crate) fn join_self(&self) -> io::Result<()> {
        for dir in self.all() {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, "0").map_err(|err| annotate(err, &procs))?;
        }
        Ok(())
    }

    /// The (host) PIDs of every process in the task's group; empty when the group is gone.
    pub(crate) fn procs(&self) -> Vec<i32> {
        let Some(dir) = self.primary() else { return Vec::new() };
        let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        text.lines().filter_map(|line| line.trim().parse().ok()).collect()
    }

    /// SIGKILLs every process in the group: at once through `cgroup.kill` where the kernel has it (cgroup2,
    /// Linux 5.14+), else one by one from `cgroup.procs`, several rounds since a process may fork meanwhile. The
    /// processes die asynchronously; callers wait for [`CgroupDirs::procs`] to empty.
    pub(crate) fn kill_all(&self) {
        if let Some(dir) = self.unified.as_ref().map(|mount| mount.join(&self.relative)) {
            let kill = dir.join("cgroup.kill");
            if kill.exists() && std::fs::write(&kill, "1").is_ok() {
                return;
            }
        }
        for _ in 0..4 {
            let pids = self.procs();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }

    /// How many processes the kernel has OOM-killed in the group: `oom_kill` of `memory.events` (v2) or of
    /// `memory.oom_control` (v1, Linux 4.13+); 0 when neither says.
    pub(crate) fn oom_kills(&self) -> u64 {
        let Some(dir) = self.controller_dir("memory") else { return 0 };
        let file = if self.kind == Kind::V2 { "memory.events" } else { "memory.oom_control" };
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        oom_kill_count(&text)
    }

    /// Removes the groups; a group already gone is fine. Fails with `EBUSY` while processes remain, so callers
    /// kill and wait first.
    pub(crate) fn remove(&self) -> io::Result<()> {
        for dir in self.all() {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(annotate(err, &dir)),
            }
        }
        Ok(())
    }

    /// Removes the node's parent group (`<prefix>/<node>`) if no task group is left in it; best effort, since
    /// another task of the node may be starting.
    pub(crate) fn remove_parent_if_empty(&self) {
        let Some(parent) = self.relative.parent().filter(|parent| !parent.as_os_str().is_empty()) else { return };
        let parent = CgroupDirs { relative: parent.to_path_buf(), ..self.clone() };
        let _ = parent.remove();
    }
}

/// The `oom_kill N` line of `memory.events` or `memory.oom_control`.
pub(crate) fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.strip_prefix("oom_kill "))
        .find_map(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Undoes mountinfo's octal escapes (`\040` for a space) in a path field.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        let octal = bytes.get(idx + 1..idx + 4).filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match (bytes[idx], octal) {
            (b'\\', Some(digits)) => {
                out.push(digits.iter().fold(0u8, |acc, digit| acc.wrapping_mul(8).wrapping_add(digit - b'0')));
                idx += 4;
            }
            (byte, _) => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An I/O error that names the file it happened on.
fn annotate(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests;
