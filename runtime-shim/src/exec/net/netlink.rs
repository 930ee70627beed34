//! A minimal route-netlink client: the handful of `RTM_*` requests the exec driver's networking sends, encoded by
//! hand over a rustix netlink socket.
//!
//! Hand-rolled rather than `netlink-packet-route` + `netlink-sys`: the driver sends seven fixed request shapes and
//! reads nothing back but acknowledgements, which is about a hundred lines of byte layout against a kernel ABI that
//! never changes, while those crates' typed message API is large and has changed shape between releases. rustix is
//! already the crate's syscall layer and its socket calls are safe, so this adds neither a dependency nor `unsafe`.
//!
//! Every request asks for an acknowledgement (`NLM_F_ACK`) and waits for it, so each call is synchronous and its
//! error is the kernel's errno. A socket acts in the network namespace it was opened in, whatever namespace its
//! user moves to later; the supervisor relies on that to talk to the host's and the task's namespaces.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// The size of `struct nlmsghdr`.
const HEADER_LEN: usize = 16;

/// A route-netlink socket bound to the network namespace it was opened in.
pub(crate) struct Netlink {
    /// The `NETLINK_ROUTE` socket.
    fd: OwnedFd,
    /// The sequence number of the last request, to match its acknowledgement.
    seq: u32,
}

impl Netlink {
    /// Opens a socket in the caller's current network namespace.
    pub(crate) fn open() -> io::Result<Netlink> {
        // NETLINK_ROUTE is protocol 0, which rustix spells as no protocol.
        let fd = rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// The index of the interface `name` in this socket's namespace.
    pub(crate) fn index(&self, name: &str) -> io::Result<u32> {
        // SIOCGIFINDEX works on any socket and looks the name up in that socket's namespace.
        rustix::net::netdevice::name_to_index(&self.fd, name).map_err(|err| context(&format!("finding {name}"), err))
    }

    /// Creates a bridge device (down, without addresses); `EEXIST` if the name is taken.
    pub(crate) fn create_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut message = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        message.bytes(&ifinfomsg(0, 0));
        message.attr(IFLA_IFNAME, &c_string(name));
        message.begin(IFLA_LINKINFO);
        message.attr(IFLA_INFO_KIND, b"bridge");
        message.end();
        self.request(message)
    }

    /// Creates a veth pair: `name` here, `peer` in the network namespace `peer_netns`.
    pub(crate) fn create_veth(&mut self, name: &str, peer: &str, peer_netns: BorrowedFd<'_>) -> io::Result<()> {
        let peer_fd = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&peer_netns)).map_err(io::Error::other)?;
        let mut message = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        message.bytes(&ifinfomsg(0, 0));
        message.attr(IFLA_IFNAME, &c_string(name));
        message.begin(IFLA_LINKINFO);
        message.attr(IFLA_INFO_KIND, b"veth");
        message.begin(IFLA_INFO_DATA);
        // The peer's attribute is a whole `ifinfomsg` followed by the peer's own attributes.
        message.begin(VETH_INFO_PEER);
        message.bytes(&ifinfomsg(0, 0));
        message.attr(IFLA_IFNAME, &c_string(peer));
        message.attr(IFLA_NET_NS_FD, &peer_fd.to_ne_bytes());
        message.end();
        message.end();
        message.end();
        self.request(message)
    }

    /// Brings the interface `index` up, enslaving it to the bridge `master` when one is given.
    pub(crate) fn set_up(&mut self, index: u32, master: Option<u32>) -> io::Result<()> {
        let mut message = Message::new(RTM_NEWLINK, 0);
        message.bytes(&ifinfomsg(index, IFF_UP));
        if let Some(master) = master {
            message.attr(IFLA_MASTER, &master.to_ne_bytes());
        }
        self.request(message)
    }

    /// Deletes the interface `name` (both ends, for a veth); `ENODEV` if there is none.
    pub(crate) fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut message = Message::new(RTM_DELLINK, 0);
        message.bytes(&ifinfomsg(0, 0));
        message.attr(IFLA_IFNAME, &c_string(name));
        self.request(message)
    }

    /// Gives the interface `index` the address `address/prefix_len`, replacing the same address if it has it.
    pub(crate) fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mut message = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
        let mut ifaddrmsg = vec![AF_INET, prefix_len, 0, RT_SCOPE_UNIVERSE];
        ifaddrmsg.extend_from_slice(&index.to_ne_bytes());
        message.bytes(&ifaddrmsg);
        message.attr(IFA_LOCAL, &address.octets());
        message.attr(IFA_ADDRESS, &address.octets());
        self.request(message)
    }

    /// Adds the IPv4 default route via `gateway` out of the interface `index`.
    pub(crate) fn add_default_route(&mut self, gateway: Ipv4Addr, index: u32) -> io::Result<()> {
        let mut message = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len 0 (the default route), src_len, tos, table, protocol, scope, type, flags.
        let rtmsg = [AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0, 0, 0, 0];
        message.bytes(&rtmsg);
        message.attr(RTA_GATEWAY, &gateway.octets());
        message.attr(RTA_OIF, &index.to_ne_bytes());
        self.request(message)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, message: Message) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = message.finish(self.seq);
        rustix::net::sendto(&self.fd, &bytes, SendFlags::empty(), &SocketAddrNetlink::new(0, 0))?;
        let mut buffer = vec![0u8; 8192];
        loop {
            let (_, received) = rustix::net::recv(&self.fd, &mut buffer[..], RecvFlags::empty())?;
            let received = received.min(buffer.len());
            if let Some(result) = acknowledgement(&buffer[..received], self.seq) {
                return result;
            }
        }
    }
}

/// A netlink message being built: the header (filled in by [`Message::finish`]), a fixed struct, attributes.
struct Message {
    /// The encoded bytes so far.
    buf: Vec<u8>,
    /// Where each open nested attribute starts, to write its length when it ends.
    open: Vec<usize>,
}

impl Message {
    /// A request of type `kind` with `flags` besides `NLM_F_REQUEST | NLM_F_ACK`.
    fn new(kind: u16, flags: u16) -> Message {
        let mut buf = vec![0u8; HEADER_LEN];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Message { buf, open: Vec::new() }
    }

    /// Appends raw bytes, padded to netlink's 4-byte alignment.
    fn bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    /// Appends an attribute.
    fn attr(&mut self, kind: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.bytes(payload);
    }

    /// Opens a nested attribute; the attributes up to the matching [`Message::end`] are its payload.
    fn begin(&mut self, kind: u16) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
    }

    /// Closes the innermost open nested attribute.
    fn end(&mut self) {
        if let Some(start) = self.open.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// The finished message with its length and sequence number.
    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A `struct ifinfomsg` for the interface `index` (0: named by `IFLA_IFNAME`), changing only the `flags` given.
fn ifinfomsg(index: u32, flags: u32) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[4..8].copy_from_slice(&index.to_ne_bytes());
    bytes[8..12].copy_from_slice(&flags.to_ne_bytes());
    bytes[12..16].copy_from_slice(&flags.to_ne_bytes());
    bytes
}

/// The result carried by the `NLMSG_ERROR` acknowledgement of request `seq` in `datagram`, if it has one.
fn acknowledgement(datagram: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut rest = datagram;
    while rest.len() >= HEADER_LEN {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let message_seq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < HEADER_LEN || len > rest.len() {
            return Some(Err(io::Error::other("a truncated netlink reply")));
        }
        if kind == NLMSG_ERROR && message_seq == seq && len >= HEADER_LEN + 4 {
            let errno = i32::from_ne_bytes(rest[HEADER_LEN..HEADER_LEN + 4].try_into().ok()?);
            return Some(if errno == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-errno)) });
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    None
}

/// A NUL-terminated interface name, as `IFLA_IFNAME` carries it.
fn c_string(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// An error with what was being done.
fn context(what: &str, err: rustix::io::Errno) -> io::Error {
    let err = io::Error::from(err);
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

#[cfg(test)]
mod tests;
