//! The RPC message schema between servers, and from client agents to servers (postcard bodies inside `rpc` frames).
//!
//! This is a persisted-compatibility surface like the log: add variants at the end, never reshape
//! one; an incompatible change bumps `rpc::frame::WIRE_VERSION`.
//!
//! # Client requests
//! `ClientQuery`, `ClientWrite` and `Status` come from `crate::Remote` and are served by any server:
//! a follower forwards the write to its leader and runs the read's barrier through it, exactly as for
//! its own HTTP API. A blocking `ClientQuery` parks on the server for up to its wait, so the caller's
//! timeout is the wait plus a margin, and the transport's request ids keep it from holding up others.

use serde::{Deserialize, Serialize};

use super::{TypeConfig, Vote};
use crate::config::{ClusterStatus, Consistency, ReadMeta};
use crate::login::Login;
use roster_kv::{AclToken, Answer, Command, CommandResult, Query, Session, TxnOp, TxnOutcome};

/// A request from one server to another.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum Request {
    /// Raft log replication and heartbeats.
    AppendEntries(openraft::raft::AppendEntriesRequest<TypeConfig>),
    /// A real election vote.
    Vote(openraft::raft::VoteRequest<TypeConfig>),
    /// A pre-vote: "would you vote for me?", which changes no state on the receiver.
    PreVote(openraft::raft::VoteRequest<TypeConfig>),
    /// A whole snapshot for a follower too far behind to catch up from the log.
    FullSnapshot {
        /// The sending leader's vote.
        vote: Vote,
        /// What the snapshot covers.
        meta: super::SnapshotMeta,
        /// `State::encode_snapshot` bytes.
        data: Vec<u8>,
    },
    /// Hand leadership to the receiver.
    TransferLeader(openraft::raft::TransferLeaderRequest<TypeConfig>),
    /// A client write forwarded by a follower; the leader proposes it and answers after apply.
    Forward(Command),
    /// A follower asks the leader for the index a linearizable read must wait for.
    ReadIndex(ReadPolicy),
    /// A client agent's read, evaluated by the receiver after the barrier `consistency` asks for.
    ClientQuery {
        /// The barrier.
        consistency: Consistency,
        /// Block until the answer's index exceeds this; 0 answers at once.
        min_index: u64,
        /// The longest the receiver may block, in milliseconds (it caps this itself).
        wait_ms: u64,
        /// The read.
        query: Query,
    },
    /// A client agent's write; the receiver proposes it, or forwards it to the leader.
    ClientWrite(Command),
    /// What the receiver knows of the cluster.
    Status,
    /// A renewal forwarded to the leader, which resets the session's timer; `NotLeader` anywhere else.
    SessionRenew(String),
    /// A client agent's renewal; the receiver renews it as leader or forwards it to the leader.
    ClientSessionRenew(String),
    /// A client agent's transaction; the receiver proposes it as `Command::Txn`, or forwards it to the leader.
    ClientTxn {
        /// The operations.
        ops: Vec<TxnOp>,
        /// The client's clock, for lock-delays.
        now_ms: u64,
    },
    /// `ClientQuery` on behalf of the caller holding `token` (empty: anonymous): the receiver authorizes and filters.
    /// The untokened client requests above are served as the anonymous token.
    ClientQueryAs {
        /// The caller's secret.
        token: String,
        /// The barrier.
        consistency: Consistency,
        /// Block until the answer's index exceeds this; 0 answers at once.
        min_index: u64,
        /// The longest the receiver may block, in milliseconds (it caps this itself).
        wait_ms: u64,
        /// The read.
        query: Query,
    },
    /// `ClientWrite` on behalf of the caller holding `token`.
    ClientWriteAs {
        /// The caller's secret.
        token: String,
        /// The write.
        cmd: Command,
    },
    /// `ClientTxn` on behalf of the caller holding `token`.
    ClientTxnAs {
        /// The caller's secret.
        token: String,
        /// The operations.
        ops: Vec<TxnOp>,
        /// The client's clock, for lock-delays.
        now_ms: u64,
    },
    /// `ClientSessionRenew` on behalf of the caller holding `token`.
    ClientSessionRenewAs {
        /// The caller's secret.
        token: String,
        /// The session ID.
        id: String,
    },
    /// A client agent's login: the receiver verifies it and mints the token (`Server::login`).
    ClientLogin(Login),
    /// A client agent's logout of the login token `token` (`Server::logout`); answered by `ClientWrite`.
    ClientLogout {
        /// The login token's secret.
        token: String,
    },
    /// A client agent's snapshot save (`GET /v1/snapshot`) for the caller holding `token`: the receiver checks the
    /// token, builds the archive once after the barrier, and keeps it under a handle (`crate::snapshot`).
    ClientSnapshotOpen {
        /// The caller's secret.
        token: String,
        /// The barrier before the state is read.
        consistency: Consistency,
    },
    /// Up to `snapshot::READ_CHUNK` bytes of an opened archive from `offset`.
    ClientSnapshotRead {
        /// The handle `ClientSnapshotOpen` answered.
        handle: String,
        /// Where to read from.
        offset: u64,
    },
}

/// The largest body of a frame for AppendEntries or FullSnapshot from a server: the whole frame limit, since a snapshot
/// travels in one frame and a batch of `max_payload_entries` (1024) entries of 512 KiB values approaches it.
pub(crate) const LARGE_BODY: usize = crate::rpc::frame::MAX_FRAME_LEN - crate::rpc::frame::HEADER_LEN;

/// The largest body of every other message, and of any message from a peer that is not a server: 5 MiB. Client
/// requests come from HTTP bodies of at most 4 MiB (a txn, a catalog registration, a KV value of 512 KiB);
/// votes, renewals and read indexes are tiny.
pub(crate) const SMALL_BODY: usize = 5 << 20;

/// postcard's tags (variant indexes, one varint byte below 128) of the two large messages.
const APPEND_ENTRIES_TAG: u8 = 0;
const FULL_SNAPSHOT_TAG: u8 = 3;

/// The largest body a peer may send in a frame whose body starts with `tag`, checked before the body is read.
/// The large messages are server-only, so from anyone else they are held to the small limit (and then refused).
pub(crate) fn body_limit(tag: u8, from_server: bool) -> usize {
    match tag {
        APPEND_ENTRIES_TAG | FULL_SNAPSHOT_TAG if from_server => LARGE_BODY,
        _ => SMALL_BODY,
    }
}

impl Request {
    /// Whether only an authenticated server may send this (when TLS is configured): Raft, and what a follower
    /// sends its leader. Everything else is what `Remote` sends for a client agent.
    pub(crate) fn server_only(&self) -> bool {
        match self {
            Request::AppendEntries(_)
            | Request::Vote(_)
            | Request::PreVote(_)
            | Request::FullSnapshot { .. }
            | Request::TransferLeader(_)
            | Request::Forward(_)
            | Request::ReadIndex(_)
            | Request::SessionRenew(_) => true,
            Request::ClientQuery { .. }
            | Request::ClientWrite(_)
            | Request::Status
            | Request::ClientSessionRenew(_)
            | Request::ClientTxn { .. }
            | Request::ClientQueryAs { .. }
            | Request::ClientWriteAs { .. }
            | Request::ClientTxnAs { .. }
            | Request::ClientSessionRenewAs { .. }
            | Request::ClientLogin(_)
            | Request::ClientLogout { .. }
            | Request::ClientSnapshotOpen { .. }
            | Request::ClientSnapshotRead { .. } => false,
        }
    }

    /// The request's name, for refusals and logs (never its contents: they can hold tokens).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Request::AppendEntries(_) => "AppendEntries",
            Request::Vote(_) => "Vote",
            Request::PreVote(_) => "PreVote",
            Request::FullSnapshot { .. } => "FullSnapshot",
            Request::TransferLeader(_) => "TransferLeader",
            Request::Forward(_) => "Forward",
            Request::ReadIndex(_) => "ReadIndex",
            Request::SessionRenew(_) => "SessionRenew",
            Request::ClientQuery { .. } => "ClientQuery",
            Request::ClientWrite(_) => "ClientWrite",
            Request::Status => "Status",
            Request::ClientSessionRenew(_) => "ClientSessionRenew",
            Request::ClientTxn { .. } => "ClientTxn",
            Request::ClientQueryAs { .. } => "ClientQueryAs",
            Request::ClientWriteAs { .. } => "ClientWriteAs",
            Request::ClientTxnAs { .. } => "ClientTxnAs",
            Request::ClientSessionRenewAs { .. } => "ClientSessionRenewAs",
            Request::ClientLogin(_) => "ClientLogin",
            Request::ClientLogout { .. } => "ClientLogout",
            Request::ClientSnapshotOpen { .. } => "ClientSnapshotOpen",
            Request::ClientSnapshotRead { .. } => "ClientSnapshotRead",
        }
    }
}

/// How the leader confirms its leadership for a forwarded read.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum ReadPolicy {
    /// Trust the leader lease (no network round).
    Lease,
    /// Confirm with a quorum round (ReadIndex).
    Quorum,
}

/// The answer to a `Request`, variant for variant.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum Response {
    /// Answer to `AppendEntries`.
    AppendEntries(openraft::raft::AppendEntriesResponse<TypeConfig>),
    /// Answer to `Vote` and `PreVote`.
    Vote(openraft::raft::VoteResponse<TypeConfig>),
    /// Answer to `FullSnapshot`.
    Snapshot(openraft::raft::SnapshotResponse<TypeConfig>),
    /// Answer to `TransferLeader`.
    TransferLeader(openraft::raft::TransferLeaderResponse<TypeConfig>),
    /// Answer to `Forward`: the apply result and the log index it was applied at.
    Forward {
        /// What `State::apply` returned.
        result: CommandResult,
        /// The entry's log index.
        index: u64,
    },
    /// Answer to `ReadIndex`: apply up to here, then read locally.
    ReadIndex(u64),
    /// The request could not be served.
    Error(WireError),
    /// Answer to `ClientQuery`.
    ClientQuery {
        /// The query's answer.
        answer: Answer,
        /// The index that covers it.
        index: u64,
        /// The answering server's leader facts.
        meta: ReadMeta,
    },
    /// Answer to `ClientWrite`: what `State::apply` returned.
    ClientWrite(CommandResult),
    /// Answer to `Status`.
    Status(ClusterStatus),
    /// Answer to `SessionRenew` and `ClientSessionRenew`: the session, or `None` when it does not exist.
    SessionRenew(Option<Session>),
    /// Answer to a `Forward` of a `Command::Txn`: the transaction's outcome and the log index it was applied at.
    ForwardTxn {
        /// What the transaction did.
        outcome: TxnOutcome,
        /// The entry's log index.
        index: u64,
    },
    /// Answer to `ClientTxn`.
    ClientTxn(TxnOutcome),
    /// Answer to `ClientQueryAs`: `ClientQuery`'s, and whether the caller's token kept anything out of the answer.
    ClientQueryAs {
        /// The query's answer, filtered.
        answer: Answer,
        /// The index that covers it.
        index: u64,
        /// The answering server's leader facts.
        meta: ReadMeta,
        /// Whether ACLs removed anything.
        filtered: bool,
    },
    /// Answer to `ClientLogin`: the minted token.
    ClientLogin(Box<AclToken>),
    /// Answer to `ClientSnapshotOpen`.
    ClientSnapshotOpened {
        /// The handle to read the archive through.
        handle: String,
        /// The archive's length in bytes.
        len: u64,
        /// The Raft index the snapshot covers.
        index: u64,
    },
    /// Answer to `ClientSnapshotRead`: the bytes, empty past the end.
    ClientSnapshotChunk(#[serde(with = "roster_kv::serde_bytes")] Vec<u8>),
}

/// Why a request failed on the receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WireError {
    /// The receiver is not the leader; `leader` is the RPC address it believes leads.
    NotLeader {
        /// The leader's RPC address, as advertised in the membership.
        leader: Option<String>,
    },
    /// The receiver's Raft core stopped or is stopping.
    Fatal(String),
    /// The body did not decode: an incompatible peer.
    BadRequest(String),
    /// A client write was refused deterministically; the text is for the client. Never retried.
    Rejected(String),
    /// A client write may or may not have been applied (a leader change displaced it, or forwarding
    /// it to the leader failed midway). Never retried.
    Indeterminate(String),
    /// The receiver could not serve a client request now (it is stopping, timed out, or failed to
    /// reach the leader). A read may be retried elsewhere; a write's outcome is unknown.
    Unavailable(String),
    /// The caller's token may not do this; Consul's text. Never retried.
    PermissionDenied(String),
    /// The caller's token does not exist or has expired. Never retried.
    AclNotFound,
    /// The caller sent a reserved name (`allow`, `deny`, `manage`) as its token. Never retried.
    AclRootDenied,
}

#[cfg(test)]
mod tests;
