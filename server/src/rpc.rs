//! The server-to-server RPC transport: request/response frames multiplexed over one stream per peer.
//!
//! This layer moves opaque byte bodies; `raft::wire` gives them meaning (and the size limit of each message type,
//! which the handler reports from the body's first byte).
//! It knows nothing of openraft, so the message schema can change without touching the transport.
//!
//! # Frame
//! `len: u32 BE | version: u8 | request id: u64 BE | body`, where `len` counts everything after itself.
//! A response carries the id of its request, so many requests can be in flight on one connection and
//! a slow one (a snapshot install, a forwarded write waiting for commit) does not hold up the others.
//! A frame with an unknown version closes the connection: the peer runs an incompatible build.
//!
//! # Streams
//! Both ends are generic over `AsyncRead + AsyncWrite`: with TLS configured (`tls`), the listener peeks at the
//! first byte (0x16 starts a TLS handshake), runs the handshake, and classes the peer by its certificate
//! before the first frame; `client::Peer` dials through a `tls::Dialer`.

pub(crate) mod client;
pub(crate) mod frame;
pub(crate) mod listener;
pub(crate) mod tls;

pub(crate) use client::{Peer, RpcError};
pub(crate) use frame::FRAME_STALL_TIMEOUT;
pub(crate) use listener::{Handler, Settings, serve};
pub(crate) use tls::{Counters, Dialer, PeerClass, PeerInfo};
