//! Process facts, sampled every 10 s: resident memory, threads and open file descriptors from `/proc/self`, and the
//! tokio tasks alive, reported as Consul's `consul.runtime.num_goroutines` (the nearest thing roster has).

/// Sets the process gauges; a fact that cannot be read (no `/proc`) is left as it was.
pub(crate) fn sample() {
    if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
    {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("roster.process.resident_memory_bytes").set((pages * page_size()) as f64);
    }
    if let Some(threads) = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status.lines().find_map(|line| line.strip_prefix("Threads:")).and_then(|n| n.trim().parse::<u32>().ok())
    }) {
        metrics::gauge!("roster.process.threads").set(f64::from(threads));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("roster.process.open_fds").set(fds.count() as f64);
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("consul.runtime.num_goroutines").set(runtime.metrics().num_alive_tasks() as f64);
    }
}

fn page_size() -> u64 {
    u64::try_from(rustix::param::page_size()).unwrap_or(4096)
}
