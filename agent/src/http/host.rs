//! `GET /v1/agent/host`: facts about the machine the agent runs on, in the shape of Consul's `debug.HostInfo`
//! (gopsutil's JSON names): `Memory`, `CPU`, `Host`, `Disk` (of `/`), `CollectionTime` (Unix nanoseconds) and
//! `Errors`. `operator:read`, as in Consul.
//!
//! Everything is read from `/proc`, `/sys`, `/etc/os-release`, `uname` and `statvfs`. A fact that cannot be read is
//! left out (its section `null`) and the reason is listed in `Errors` as a string; Consul lists Go errors there, which
//! its JSON renders as `{}`, so the text is the more useful form of the same field.

use std::collections::BTreeMap;

use axum::extract::State;
use roster_acl::{AccessLevel, Resource};
use serde_json::{Value, json};

use super::reply::{ApiError, ApiResult, local_reply};
use super::{Api, caller};

/// The handler: collected off the async workers, since it reads a dozen files.
pub async fn host(State(api): State<Api>) -> ApiResult {
    caller::require(&api, Resource::Operator, AccessLevel::Read, None, |a| a.operator_read()).await?;
    let info = tokio::task::spawn_blocking(collect)
        .await
        .map_err(|err| ApiError::internal(format!("collecting host facts: {err}")))?;
    local_reply(&api, &info).await
}

/// Every section, with the errors of those that could not be read.
pub(crate) fn collect() -> Value {
    let collected_at = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX));
    let mut errors = Vec::new();
    let mut section = |name: &str, reader: fn() -> Result<Value, String>| {
        reader().unwrap_or_else(|why| {
            errors.push(format!("{name}: {why}"));
            Value::Null
        })
    };
    let host = section("host", host_info);
    let memory = section("memory", memory);
    let disk = section("disk", || disk("/"));
    let cpu = section("cpu", cpu);
    json!({
        "Memory": memory,
        "CPU": cpu,
        "Host": host,
        "Disk": disk,
        "CollectionTime": collected_at,
        "Errors": if errors.is_empty() { Value::Null } else { json!(errors) },
    })
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|err| format!("{path}: {err}"))
}

/// `key: value` lines (`/proc/meminfo`, `/proc/cpuinfo` blocks) as a map.
fn colon_map(text: &str) -> BTreeMap<&str, &str> {
    text.lines().filter_map(|line| line.split_once(':')).map(|(key, value)| (key.trim(), value.trim())).collect()
}

/// gopsutil's `host.InfoStat`.
fn host_info() -> Result<Value, String> {
    let uname = rustix::system::uname();
    let os_release = read("/etc/os-release").unwrap_or_default();
    let release: BTreeMap<&str, String> = os_release
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key, value.trim().trim_matches('"').to_owned()))
        .collect();
    let uptime: f64 = read("/proc/uptime")?
        .split_whitespace()
        .next()
        .and_then(|secs| secs.parse().ok())
        .ok_or("/proc/uptime: unreadable")?;
    let stat = read("/proc/stat")?;
    let boot_time: u64 = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|secs| secs.trim().parse().ok())
        .ok_or("/proc/stat: no btime")?;
    let procs = std::fs::read_dir("/proc")
        .map_err(|err| format!("/proc: {err}"))?
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit())))
        .count();
    let host_id = read("/sys/class/dmi/id/product_uuid")
        .or_else(|_| read("/etc/machine-id"))
        .map(|id| id.trim().to_owned())
        .unwrap_or_default();
    let text = |value: &std::ffi::CStr| value.to_string_lossy().into_owned();
    Ok(json!({
        "hostname": text(uname.nodename()),
        "uptime": uptime as u64,
        "bootTime": boot_time,
        "procs": procs,
        "os": text(uname.sysname()).to_ascii_lowercase(),
        "platform": release.get("ID").cloned().unwrap_or_default(),
        "platformFamily": release.get("ID_LIKE").cloned().unwrap_or_default(),
        "platformVersion": release.get("VERSION_ID").cloned().unwrap_or_default(),
        "kernelVersion": text(uname.release()),
        "kernelArch": text(uname.machine()),
        "virtualizationSystem": "",
        "virtualizationRole": "",
        "hostId": host_id,
    }))
}

/// gopsutil's `mem.VirtualMemoryStat` (the Linux fields), in bytes.
fn memory() -> Result<Value, String> {
    let text = read("/proc/meminfo")?;
    let info = colon_map(&text);
    let kib = |key: &str| -> u64 {
        info.get(key).and_then(|value| value.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0) * 1024
    };
    let total = kib("MemTotal");
    if total == 0 {
        return Err("/proc/meminfo: no MemTotal".to_owned());
    }
    let available = kib("MemAvailable");
    let used = total.saturating_sub(kib("MemFree") + kib("Buffers") + kib("Cached") + kib("SReclaimable"));
    Ok(json!({
        "total": total,
        "available": available,
        "used": used,
        "usedPercent": used as f64 * 100.0 / total as f64,
        "free": kib("MemFree"),
        "active": kib("Active"),
        "inactive": kib("Inactive"),
        "buffers": kib("Buffers"),
        "cached": kib("Cached"),
        "shared": kib("Shmem"),
        "slab": kib("Slab"),
        "sreclaimable": kib("SReclaimable"),
        "sunreclaim": kib("SUnreclaim"),
        "swapTotal": kib("SwapTotal"),
        "swapFree": kib("SwapFree"),
        "swapCached": kib("SwapCached"),
        "dirty": kib("Dirty"),
        "writeBack": kib("Writeback"),
        "mapped": kib("Mapped"),
        "pageTables": kib("PageTables"),
        "commitLimit": kib("CommitLimit"),
        "committedAS": kib("Committed_AS"),
        "hugePagesTotal": kib("HugePages_Total") / 1024,
        "hugePagesFree": kib("HugePages_Free") / 1024,
        "hugePageSize": kib("Hugepagesize"),
    }))
}

/// gopsutil's `disk.UsageStat` of the filesystem holding `path`.
fn disk(path: &str) -> Result<Value, String> {
    let stat = rustix::fs::statvfs(path).map_err(|err| format!("statvfs {path}: {err}"))?;
    let block = stat.f_frsize;
    let total = stat.f_blocks * block;
    let free = stat.f_bavail * block;
    let used = (stat.f_blocks - stat.f_bfree) * block;
    let percent = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 };
    let inodes_used = stat.f_files.saturating_sub(stat.f_ffree);
    Ok(json!({
        "path": path,
        "fstype": "",
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": percent(used, used + free),
        "inodesTotal": stat.f_files,
        "inodesUsed": inodes_used,
        "inodesFree": stat.f_ffree,
        "inodesUsedPercent": percent(inodes_used, stat.f_files),
    }))
}

/// gopsutil's `cpu.InfoStat`, one per logical CPU of `/proc/cpuinfo`.
fn cpu() -> Result<Value, String> {
    let text = read("/proc/cpuinfo")?;
    let cpus: Vec<Value> = text
        .split("\n\n")
        .filter(|block| block.contains("processor"))
        .map(|block| {
            let info = colon_map(block);
            let field = |key: &str| info.get(key).copied().unwrap_or("").to_owned();
            let number = |key: &str| info.get(key).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
            json!({
                "cpu": number("processor"),
                "vendorId": field("vendor_id"),
                "family": field("cpu family"),
                "model": field("model"),
                "stepping": number("stepping"),
                "physicalId": field("physical id"),
                "coreId": field("core id"),
                "cores": number("cpu cores").max(1),
                "modelName": field("model name"),
                "mhz": info.get("cpu MHz").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0),
                "cacheSize": info.get("cache size").and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok()).unwrap_or(0),
                "flags": field("flags").split_whitespace().collect::<Vec<_>>(),
                "microcode": field("microcode"),
            })
        })
        .collect();
    if cpus.is_empty() {
        return Err("/proc/cpuinfo: no processor".to_owned());
    }
    Ok(Value::Array(cpus))
}
