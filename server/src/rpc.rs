//! The server-to-server RPC transport: request/response frames multiplexed over one stream per peer.
//!
//! This layer moves opaque byte bodies; `raft::wire` gives them meaning.
//! It knows nothing of openraft, so the message schema can change without touching the transport.
//!
//! # Frame
//! `len: u32 BE | version: u8 | request id: u64 BE | body`, where `len` counts everything after itself.
//! A response carries the id of its request, so many requests can be in flight on one connection and
//! a slow one (a snapshot install, a forwarded write waiting for commit) does not hold up the others.
//! A frame with an unknown version closes the connection: the peer runs an incompatible build.
//!
//! # Streams
//! Both ends are generic over `AsyncRead + AsyncWrite`, so mutual TLS can later wrap the TCP stream
//! in `client::Peer::dial` and `listener::serve` without changing the framing.

pub(crate) mod client;
pub(crate) mod frame;
pub(crate) mod listener;

pub(crate) use client::{Peer, RpcError};
pub(crate) use listener::{Handler, serve};
