//! Binding DNS: with `ports.dns = 0` a number taken for one protocol is given up for another, deterministically
//! shown by injecting a first candidate whose TCP side the test holds.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use super::{DNS_PORT_ATTEMPTS, bind_dns_addr};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

/// A port whose TCP side this test holds (the listener), while its UDP side is free.
fn tcp_taken() -> (TcpListener, u16) {
    loop {
        let listener = TcpListener::bind(loopback(0)).expect("bind TCP");
        let port = listener.local_addr().expect("addr").port();
        // Make sure the UDP side is free, so the first attempt gets as far as TCP.
        if UdpSocket::bind(loopback(port)).is_ok() {
            return (listener, port);
        }
    }
}

#[test]
fn port_zero_gives_up_a_number_whose_tcp_side_is_taken_and_binds_both_on_another() {
    let (_held, taken) = tcp_taken();
    let candidates = std::iter::once(taken).chain(std::iter::repeat(0));
    let (udp, tcp) = bind_dns_addr(loopback(0), 2, candidates).expect("bound on another port");
    let port = tcp.local_addr().expect("addr").port();
    assert_ne!(port, taken);
    assert_eq!(udp.len(), 2);
    for socket in &udp {
        assert_eq!(socket.local_addr().expect("addr").port(), port, "UDP and TCP share the number");
    }
}

#[test]
fn port_zero_gives_up_a_number_whose_udp_side_is_taken() {
    let held = UdpSocket::bind(loopback(0)).expect("bind UDP");
    let taken = held.local_addr().expect("addr").port();
    let candidates = std::iter::once(taken).chain(std::iter::repeat(0));
    let (_udp, tcp) = bind_dns_addr(loopback(0), 1, candidates).expect("bound on another port");
    assert_ne!(tcp.local_addr().expect("addr").port(), taken);
}

#[test]
fn port_zero_stops_after_a_bounded_number_of_attempts_with_a_clear_error() {
    let (_held, taken) = tcp_taken();
    let err = bind_dns_addr(loopback(0), 1, std::iter::repeat(taken)).expect_err("every candidate is taken");
    let message = format!("{err:#}");
    assert!(message.contains(&format!("no port found free for both UDP and TCP in {DNS_PORT_ATTEMPTS} attempts")));
}

#[test]
fn a_fixed_port_taken_for_tcp_fails_naming_the_protocol_and_the_address() {
    let (_held, taken) = tcp_taken();
    let err = bind_dns_addr(loopback(taken), 1, std::iter::repeat(0)).expect_err("fixed port is taken");
    let message = format!("{err:#}");
    assert!(message.starts_with(&format!("binding DNS (TCP) on 127.0.0.1:{taken}: ")), "{message}");
}
