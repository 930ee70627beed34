//! The exec driver's task networking: `host` (the default: the host's network namespace, as before), `none` (a
//! network namespace of the task's own with only `lo` up) and `bridge` (that, plus a veth pair to the node's
//! roster bridge), as Nomad's exec driver offers host networking by default and `bridge` on request.
//!
//! For a bridge task the driver, in the agent, picks the address ([`allocate`]: the lowest one in the bridge's
//! subnet that no task directory's `task.json` holds, under the driver's lock) and records it in `task.json`, so
//! recovery and adoption keep it and removing the task directory frees it. The supervisor then ([`enter`]), before
//! it spawns `init`:
//!
//! 1. opens a netlink socket in the host's namespace and makes sure the bridge exists, has its address and is up
//!    (whoever needs it first creates it; a later task reuses it);
//! 2. unshares a network namespace for itself and opens a second socket there;
//! 3. creates the veth pair from the host side, the host end (named for the task, [`host_veth_name`]) on the host
//!    and the peer, `eth0`, directly in the new namespace, and enslaves the host end to the bridge;
//! 4. inside the new namespace brings `lo` and `eth0` up, gives `eth0` the task's address and adds the default
//!    route via the bridge's address;
//!
//! and once `init` is spawned (inheriting the namespace) it moves itself back to the host's namespace
//! ([`TaskNamespace::leave`]), so nothing but the task holds the namespace. When the task's last process exits the
//! kernel destroys the namespace and with it the veth pair; the supervisor's cleanup and the driver's `destroy`
//! also delete the host end by name, so a stop never leaves one behind, even while the kernel's namespace teardown
//! (which is asynchronous) is still pending.
//!
//! Nothing here touches iptables or nftables, nor `net.ipv4.ip_forward`: the host reaches a bridge task through
//! the bridge's connected route, tasks on one bridge reach each other through it, and reaching further out is the
//! operator's routing and NAT to set up. Where `br_netfilter` is loaded, bridged packets also pass the host's
//! iptables `FORWARD` chain, so on a Docker host (whose policy there is `DROP`) tasks reach each other only once
//! the operator accepts `roster0`'s traffic (Docker's `DOCKER-USER` chain is the place for it).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::LinkNameSpaceType;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sys;
use super::wire::{self, TASK_FILE, TaskFile};

pub(crate) mod netlink;

use netlink::Netlink;

/// The network the exec driver puts bridge tasks on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The bridge device's name (default `roster0`), at most 15 bytes.
    pub name: String,
    /// The bridge's own address (default `10.89.0.1`): the tasks' default gateway, and with `prefix_len` the subnet
    /// tasks get their addresses from.
    pub address: Ipv4Addr,
    /// The subnet's prefix length (default 24, room for 253 tasks).
    pub prefix_len: u8,
}

/// A task's network as `task.json` records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub(crate) enum NetworkFile {
    /// The host's network namespace (and what a `task.json` from before networks were added means).
    #[default]
    Host,
    /// A network namespace of its own with only loopback.
    None,
    /// A network namespace of its own with `eth0` on the bridge.
    Bridge {
        /// The bridge's device name.
        bridge: String,
        /// The bridge's address, the task's default gateway.
        gateway: Ipv4Addr,
        /// The subnet's prefix length.
        prefix_len: u8,
        /// The task's address, allocated by the driver.
        address: Ipv4Addr,
        /// The host end of the task's veth pair.
        host_veth: String,
    },
}

/// The task's network namespace while the supervisor is in it, and the way back to the host's.
pub(crate) struct TaskNamespace {
    /// The supervisor's network namespace before it unshared, to return to.
    host: File,
}

impl Default for BridgeConfig {
    fn default() -> BridgeConfig {
        BridgeConfig { name: "roster0".to_string(), address: Ipv4Addr::new(10, 89, 0, 1), prefix_len: 24 }
    }
}

impl BridgeConfig {
    /// The subnet's first and last addresses (its network and broadcast addresses).
    fn bounds(&self) -> (u32, u32) {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len.min(32))).unwrap_or(0);
        let network = u32::from(self.address) & mask;
        (network, network | !mask)
    }
}

impl NetworkFile {
    /// A task's place on the bridge of `config`, at `address`.
    pub(crate) fn bridge(config: &BridgeConfig, address: Ipv4Addr, node: &str, job: &str, task: &str) -> NetworkFile {
        NetworkFile::Bridge {
            bridge: config.name.clone(),
            gateway: config.address,
            prefix_len: config.prefix_len,
            address,
            host_veth: host_veth_name(node, job, task),
        }
    }

    /// The task's address on its bridge, if it has one.
    pub(crate) fn address(&self) -> Option<Ipv4Addr> {
        match self {
            NetworkFile::Bridge { address, .. } => Some(*address),
            NetworkFile::Host | NetworkFile::None => None,
        }
    }
}

impl TaskNamespace {
    /// Returns the supervisor to the host's network namespace; the task keeps the one it was spawned in.
    pub(crate) fn leave(self) -> io::Result<()> {
        rustix::thread::move_into_link_name_space(self.host.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|err| context("returning to the host's network namespace", err.into()))
    }
}

/// The lowest address of the bridge's subnet that is neither its network, broadcast or bridge address nor in
/// `used`; `None` when the subnet is full.
pub(crate) fn allocate(config: &BridgeConfig, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (network, broadcast) = config.bounds();
    (network.saturating_add(1)..broadcast)
        .map(Ipv4Addr::from)
        .find(|candidate| *candidate != config.address && !used.contains(candidate))
}

/// The bridge addresses held by the tasks in `state_dir`, except the one in `except` (the task being
/// (re)started, whose old address is free for it to take again).
pub(crate) fn used_addresses(state_dir: &Path, except: &Path) -> io::Result<BTreeSet<Ipv4Addr>> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(err) => return Err(err),
    };
    let mut used = BTreeSet::new();
    for entry in entries.flatten().filter(|entry| entry.path() != except) {
        // An unreadable task file is skipped as `recover` skips it; its address may then be handed out again.
        if let Ok(Some(task)) = wire::read::<TaskFile>(&entry.path().join(TASK_FILE)) {
            used.extend(task.network.address());
        }
    }
    Ok(used)
}

/// The host end's name of a task's veth pair: `veth` and a hash of the task's identity, so it is the same on every
/// start (a stale one can be found and removed) and fits the kernel's 15-byte limit.
pub(crate) fn host_veth_name(node: &str, job: &str, task: &str) -> String {
    let digest = Sha256::digest(format!("{node}/{job}.{task}").as_bytes());
    let hex: String = digest.iter().take(5).map(|byte| format!("{byte:02x}")).collect();
    format!("veth{hex}")
}

/// Moves the supervisor into a new network namespace set up for the task (see the module doc); `None` for a
/// host-network task. On an error the supervisor is back in the host's namespace.
pub(crate) fn enter(network: &NetworkFile) -> io::Result<Option<TaskNamespace>> {
    if *network == NetworkFile::Host {
        return Ok(None);
    }
    let host = File::open("/proc/self/ns/net")?;
    let mut host_link = Netlink::open()?;
    if let NetworkFile::Bridge { bridge, gateway, prefix_len, .. } = network {
        ensure_bridge(&mut host_link, bridge, *gateway, *prefix_len)?;
    }
    sys::unshare_network().map_err(|err| context("unsharing the network namespace", err))?;
    let namespace = TaskNamespace { host };
    match configure(network, &mut host_link) {
        Ok(()) => Ok(Some(namespace)),
        Err(err) => {
            // Back out to the host's namespace so the caller's cleanup deletes the host end there.
            namespace.leave()?;
            Err(err)
        }
    }
}

/// Deletes the task's host veth end, if it has one and it still exists.
pub(crate) fn remove_host_veth(network: &NetworkFile) -> io::Result<()> {
    let NetworkFile::Bridge { host_veth, .. } = network else { return Ok(()) };
    match Netlink::open()?.delete_link(host_veth) {
        Err(err) if err.raw_os_error() != Some(rustix::io::Errno::NODEV.raw_os_error()) => {
            Err(context(&format!("deleting {host_veth}"), err))
        }
        _ => Ok(()),
    }
}

/// Creates the bridge if it is missing, and gives it its address and brings it up if it lacks them.
fn ensure_bridge(link: &mut Netlink, name: &str, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
    match link.create_bridge(name) {
        Err(err) if err.raw_os_error() != Some(rustix::io::Errno::EXIST.raw_os_error()) => {
            return Err(context(&format!("creating the bridge {name}"), err));
        }
        _ => {}
    }
    let index = link.index(name)?;
    link.add_address(index, address, prefix_len).map_err(|err| context(&format!("addressing {name}"), err))?;
    link.set_up(index, None).map_err(|err| context(&format!("bringing {name} up"), err))
}

/// Step 3 and 4 of the module doc, with the supervisor already in the task's new namespace.
fn configure(network: &NetworkFile, host_link: &mut Netlink) -> io::Result<()> {
    // This socket belongs to the task's namespace; it is dropped on return, so it does not keep the namespace alive.
    let mut task_link = Netlink::open()?;
    let loopback = task_link.index("lo")?;
    task_link.set_up(loopback, None).map_err(|err| context("bringing lo up", err))?;
    let NetworkFile::Bridge { bridge, gateway, prefix_len, address, host_veth } = network else { return Ok(()) };
    // A previous run's pair can outlive it while the kernel tears its namespace down.
    let _ = host_link.delete_link(host_veth);
    let task_namespace = File::open("/proc/self/ns/net")?;
    host_link
        .create_veth(host_veth, "eth0", task_namespace.as_fd())
        .map_err(|err| context(&format!("creating the veth pair {host_veth}"), err))?;
    let host_end = host_link.index(host_veth)?;
    let master = host_link.index(bridge)?;
    host_link.set_up(host_end, Some(master)).map_err(|err| context(&format!("attaching {host_veth}"), err))?;
    let eth0 = task_link.index("eth0")?;
    task_link.add_address(eth0, *address, *prefix_len).map_err(|err| context("addressing eth0", err))?;
    task_link.set_up(eth0, None).map_err(|err| context("bringing eth0 up", err))?;
    task_link.add_default_route(*gateway, eth0).map_err(|err| context("adding the default route", err))
}

/// An error with what was being done.
fn context(what: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

#[cfg(test)]
mod tests;
