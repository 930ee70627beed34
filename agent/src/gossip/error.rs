//! The gossip layer's errors. Their messages are read by people: they become HTTP 500 bodies and CLI errors.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What went wrong in the gossip layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GossipError {
    /// The node name is empty or too long to fit in gossip packets.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The node metadata does not fit in a gossip packet.
    #[error(
        "node metadata is {size} bytes when encoded; the limit is {limit} bytes (fewer or shorter node_meta entries?)"
    )]
    MetaTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Bound to an unspecified address without saying which address others should use.
    #[error("cannot advertise {ip} to other members: set an advertise address when binding to all interfaces")]
    NoAdvertiseAddr {
        /// The bind IP.
        ip: IpAddr,
    },
    /// The gossip port could not be bound.
    #[error("cannot bind the gossip port on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },
    /// A join address could not be parsed or resolved.
    #[error("cannot resolve {addr:?}: {reason}")]
    Resolve {
        /// The address given.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// The remote gossip port could not be reached.
    #[error("{reason}")]
    Unreachable {
        /// Why, e.g. "connection refused".
        reason: String,
    },
    /// The push/pull exchange took too long.
    #[error("no answer within {}s", .after.as_secs())]
    Timeout {
        /// The time allowed.
        after: Duration,
    },
    /// The remote side did not speak our gossip protocol.
    #[error("{reason}")]
    Protocol {
        /// What it did instead.
        reason: String,
    },
    /// The two agents are in different datacenters.
    #[error("datacenter mismatch: this agent is in {ours:?}, {addr} is in {theirs:?}")]
    DatacenterMismatch {
        /// Our datacenter.
        ours: String,
        /// Theirs.
        theirs: String,
        /// The remote gossip address.
        addr: SocketAddr,
    },
    /// Another live member already uses this node name.
    #[error("node name {name:?} is already in use by {addr}")]
    NameConflict {
        /// The contested name.
        name: String,
        /// The gossip address of the live member holding it.
        addr: SocketAddr,
    },
    /// The remote agent has left the cluster.
    #[error("the agent at {addr} has left the cluster")]
    RemoteLeft {
        /// Its gossip address.
        addr: SocketAddr,
    },
    /// Not a single join address worked; every failure is listed.
    #[error("{}", JoinFailures(.0))]
    JoinFailed(Vec<JoinFailure>),
    /// `join` was called with no address.
    #[error("no address to join")]
    NoAddresses,
    /// No member has this name.
    #[error("No node found with name {0:?}")]
    NoSuchMember(String),
    /// This agent has left the cluster, so it cannot take part in it again.
    #[error("this agent has left the cluster")]
    Left,
    /// The gossip layer has been shut down.
    #[error("the gossip layer is shut down")]
    Shutdown,
    /// A keyring operation on an agent that gossips in plaintext.
    #[error("{}", super::keyring::NOT_ENABLED)]
    EncryptionDisabled,
    /// The remote side's messages could not be authenticated, or were plaintext where only sealed ones are taken.
    #[error("{reason}")]
    Unauthenticated {
        /// Which of the two.
        reason: &'static str,
    },
}

/// Why joining through one address failed.
#[derive(Debug)]
pub struct JoinFailure {
    /// The address, resolved (`ip:port`) when resolution worked, as given otherwise.
    pub addr: String,
    /// What went wrong there.
    pub error: GossipError,
}

/// Formats failures as "Failed to join A: why; Failed to join B: why".
struct JoinFailures<'a>(&'a [JoinFailure]);

impl fmt::Display for JoinFailures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, failure) in self.0.iter().enumerate() {
            if idx > 0 {
                f.write_str("; ")?;
            }
            write!(f, "Failed to join {}: {}", failure.addr, failure.error)?;
        }
        Ok(())
    }
}

impl GossipError {
    /// An I/O error talking to a remote gossip port, worded for people ("connection refused", not "os error 111").
    pub(crate) fn unreachable(error: &io::Error) -> GossipError {
        let reason = match error.kind() {
            io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
            io::ErrorKind::TimedOut => "timed out".to_owned(),
            io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
            io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
            io::ErrorKind::UnexpectedEof => "connection closed before the exchange completed".to_owned(),
            _ => error.to_string(),
        };
        GossipError::Unreachable { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        let addr = SocketAddr::from(([127, 0, 0, 5], 8301));
        let mismatch = GossipError::DatacenterMismatch { ours: "dc1".into(), theirs: "dc2".into(), addr };
        assert_eq!(mismatch.to_string(), r#"datacenter mismatch: this agent is in "dc1", 127.0.0.5:8301 is in "dc2""#);
        let conflict = GossipError::NameConflict { name: "web1".into(), addr };
        assert_eq!(conflict.to_string(), r#"node name "web1" is already in use by 127.0.0.5:8301"#);
        let refused = GossipError::unreachable(&io::Error::from(io::ErrorKind::ConnectionRefused));
        let failed = GossipError::JoinFailed(vec![
            JoinFailure { addr: "127.0.0.9:8301".into(), error: refused },
            JoinFailure { addr: "127.0.0.5:8301".into(), error: mismatch },
        ]);
        assert_eq!(
            failed.to_string(),
            "Failed to join 127.0.0.9:8301: connection refused; \
             Failed to join 127.0.0.5:8301: datacenter mismatch: this agent is in \"dc1\", 127.0.0.5:8301 is in \"dc2\""
        );
    }
}
