//! Tests of the bridge address allocator and the persisted network, without touching the host's network.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::{BridgeConfig, NetworkFile, allocate, host_veth_name, used_addresses};
use crate::exec::wire::{self, TASK_FILE, TaskFile};

fn bridge(address: [u8; 4], prefix_len: u8) -> BridgeConfig {
    BridgeConfig { name: "rtest0".to_string(), address: Ipv4Addr::from(address), prefix_len }
}

fn set(addresses: &[[u8; 4]]) -> BTreeSet<Ipv4Addr> {
    addresses.iter().copied().map(Ipv4Addr::from).collect()
}

#[test]
fn allocate_takes_the_lowest_free_host_address_and_skips_the_bridge() {
    let config = BridgeConfig::default();
    assert_eq!(allocate(&config, &set(&[])), Some(Ipv4Addr::new(10, 89, 0, 2)));
    assert_eq!(allocate(&config, &set(&[[10, 89, 0, 2], [10, 89, 0, 3]])), Some(Ipv4Addr::new(10, 89, 0, 4)));
    // A freed address in the middle is taken before the next unused one.
    assert_eq!(allocate(&config, &set(&[[10, 89, 0, 2], [10, 89, 0, 4]])), Some(Ipv4Addr::new(10, 89, 0, 3)));
    // A bridge address that is not the subnet's first host leaves the first host to a task.
    assert_eq!(allocate(&bridge([10, 1, 2, 9], 24), &set(&[])), Some(Ipv4Addr::new(10, 1, 2, 1)));
}

#[test]
fn allocate_never_hands_out_the_network_or_broadcast_address_and_reports_a_full_subnet() {
    // A /30 has two host addresses: the bridge's and one task's.
    let config = bridge([192, 168, 7, 1], 30);
    assert_eq!(allocate(&config, &set(&[])), Some(Ipv4Addr::new(192, 168, 7, 2)));
    assert_eq!(allocate(&config, &set(&[[192, 168, 7, 2]])), None);
    let all_used: Vec<[u8; 4]> = (2..=254).map(|host| [10, 89, 0, host]).collect();
    assert_eq!(allocate(&BridgeConfig::default(), &set(&all_used)), None);
}

#[test]
fn used_addresses_come_from_the_other_task_directories() {
    let state = tempfile::tempdir().expect("state dir");
    let write = |name: &str, network: NetworkFile| {
        let dir = state.path().join(name);
        std::fs::create_dir_all(&dir).expect("task dir");
        let text = format!(
            r#"{{"version": 1, "node": "n1", "job": "j", "task": "{name}", "spec_hash": "h", "hostname": "{name}",
                "rootfs": null, "command": "sh", "args": [], "env": {{}}, "mounts": [], "resources": {{}},
                "resolv_conf": null, "cgroup": {{"kind": "v2", "relative": "r", "unified": null, "v1": {{}}}},
                "supervisor_args": []}}"#
        );
        let mut file: TaskFile = serde_json::from_str(&text).expect("a task file from before networks");
        assert_eq!(file.network, NetworkFile::Host, "an old task file means the host's network");
        file.network = network;
        wire::write(&dir.join(TASK_FILE), &file).expect("write");
        dir
    };
    let config = BridgeConfig::default();
    let first = write("a", NetworkFile::bridge(&config, Ipv4Addr::new(10, 89, 0, 2), "n1", "j", "a"));
    write("b", NetworkFile::bridge(&config, Ipv4Addr::new(10, 89, 0, 3), "n1", "j", "b"));
    write("c", NetworkFile::Host);
    let used = used_addresses(state.path(), &state.path().join("new")).expect("scan");
    assert_eq!(used, set(&[[10, 89, 0, 2], [10, 89, 0, 3]]));
    // A task being restarted does not block its own old address.
    assert_eq!(used_addresses(state.path(), &first).expect("scan"), set(&[[10, 89, 0, 3]]));
    assert!(used_addresses(&state.path().join("missing"), &first).expect("no state dir").is_empty());
}

#[test]
fn host_veth_names_fit_the_kernel_limit_and_differ_per_task() {
    let name = host_veth_name("node-with-a-long-name", "job", "web");
    assert!(name.starts_with("veth") && name.len() <= 15, "{name}");
    assert_eq!(name, host_veth_name("node-with-a-long-name", "job", "web"), "stable across starts");
    assert_ne!(name, host_veth_name("node-with-a-long-name", "job", "api"));
}
