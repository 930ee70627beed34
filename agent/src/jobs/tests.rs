//! The resolver settings roster-launched containers get, and where the exec driver's state directory is made.

use std::net::SocketAddr;

use std::os::unix::fs::MetadataExt as _;

use super::{container_dns, exec_state_dir};

#[test]
fn containers_resolve_through_the_gateway_listener_on_port_53() {
    let addrs: Vec<SocketAddr> =
        ["127.0.0.1:8600", "127.0.0.1:53", "172.18.0.1:53"].iter().map(|a| a.parse().expect("addr")).collect();
    let dns = container_dns(&addrs, "consul.");
    assert_eq!(dns.servers, ["172.18.0.1".parse::<std::net::IpAddr>().expect("ip")]);
    assert_eq!(dns.search, ["service.consul", "consul"]);
    assert_eq!(dns.ndots, Some(1));
}

#[test]
fn without_such_a_listener_containers_keep_the_runtime_default() {
    let addrs: Vec<SocketAddr> = vec!["127.0.0.1:8600".parse().expect("addr")];
    let dns = container_dns(&addrs, "consul");
    assert!(dns.servers.is_empty() && dns.search.is_empty() && dns.ndots.is_none());
}

#[test]
fn with_a_data_dir_the_exec_state_dir_is_data_dir_exec_with_mode_0700() {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().join("not-yet-made");
    let dir = exec_state_dir(Some(&data_dir), "n1").expect("state dir");
    assert_eq!(dir, data_dir.join("exec"));
    let meta = std::fs::symlink_metadata(&dir).expect("stat");
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o700);
}

#[test]
fn a_symlink_planted_at_the_exec_state_dir_is_refused() {
    let data = tempfile::tempdir().expect("data dir");
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    std::os::unix::fs::symlink(elsewhere.path(), data.path().join("exec")).expect("symlink");
    let err = exec_state_dir(Some(data.path()), "n1").expect_err("refused");
    assert!(err.to_string().ends_with("exec: is a symlink, not a directory"), "{err}");
}

#[test]
fn without_a_data_dir_the_exec_state_dir_is_private_and_not_in_a_shared_temp_path() {
    let node = format!("unit-{}", uuid::Uuid::new_v4().simple());
    let dir = exec_state_dir(None, &node).expect("state dir");
    let meta = std::fs::symlink_metadata(&dir).expect("stat");
    assert!(meta.is_dir() && meta.mode() & 0o7777 == 0o700, "{}: {:o}", dir.display(), meta.mode());
    if rustix::process::geteuid().is_root() {
        assert_eq!(dir, std::path::Path::new("/run/roster").join(format!("exec-{node}")));
        let run = std::fs::symlink_metadata("/run/roster").expect("stat /run/roster");
        assert_eq!((run.uid(), run.mode() & 0o7777), (0, 0o700));
    } else {
        let name = dir.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        assert!(name.starts_with("roster-exec-") && name != format!("roster-exec-{node}"), "{name}");
    }
    std::fs::remove_dir(&dir).expect("clean up");
}
