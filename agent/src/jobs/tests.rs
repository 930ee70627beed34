//! The resolver settings roster-launched containers get.

use std::net::SocketAddr;

use super::container_dns;

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
