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
use crate::operator::{OperatorReply, OperatorRequest};
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
    /// A whole snapshot for a follower too far behind to catch up from the log, in one frame: what builds before
    /// `SnapshotChunk` sent. Still served (and sent to a peer that cannot decode `SnapshotChunk`) during a rolling
    /// upgrade, but held to the chunk's frame limit, so only a snapshot that fits one chunk arrives this way.
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
    /// One piece of a snapshot for a follower too far behind to catch up from the log; answered by `Snapshot`.
    SnapshotChunk(SnapshotChunk),
    /// An operator request on behalf of the caller holding `token`: the receiver authorizes it and carries it out as
    /// leader, or forwards it (the same request) to the leader, which authorizes it again.
    ClientOperator {
        /// The caller's secret.
        token: String,
        /// What to do.
        request: OperatorRequest,
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

/// One piece of a snapshot streamed to a follower (`raft::chunks` assembles them).
///
/// A stream is the chunks of one `(vote, id)`, sent one at a time, each after the previous was answered, at
/// contiguous offsets from 0; the last has `done`. A receiver assembles one stream at a time: a chunk at offset 0 of
/// another stream replaces the unfinished one, and any other chunk that does not continue the current stream is
/// refused with `WireError::SnapshotStream`, after which the sender starts over with a new id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct SnapshotChunk {
    /// The sending leader's vote, checked on every chunk.
    pub(crate) vote: Vote,
    /// What the whole snapshot covers; the same on every chunk of a stream.
    pub(crate) meta: super::SnapshotMeta,
    /// Names the stream: drawn at random by the sender for each attempt.
    pub(crate) id: u64,
    /// Where `data` starts in the snapshot.
    pub(crate) offset: u64,
    /// At most `SNAPSHOT_CHUNK` bytes of `State::encode_snapshot`.
    pub(crate) data: Vec<u8>,
    /// Whether this is the last chunk: the receiver installs the snapshot once it has it.
    pub(crate) done: bool,
}

/// The snapshot bytes a `SnapshotChunk` carries, at most.
pub(crate) const SNAPSHOT_CHUNK: usize = 4 << 20;

/// The encoded entries an AppendEntries carries, at most, unless a single entry is larger (it then goes alone).
/// `max_payload_entries` (1024) entries of 512 KiB values would be 512 MiB; the sender splits such a batch
/// (`raft::network`). Large enough that a full batch of small entries (under 8 KiB each) is never cut, and no larger:
/// a follower's Raft core waits for its log append (encode and fsync) before it handles anything else, heartbeats
/// included, so this bounds how long one batch stalls it.
pub(crate) const APPEND_BATCH_BYTES: usize = 8 << 20;

/// The largest body of every other message, and of any message from a peer that is not a server: 5 MiB. Client
/// requests come from HTTP bodies of at most 4 MiB (a txn, a catalog registration, a KV value of 512 KiB);
/// votes, renewals and read indexes are tiny.
pub(crate) const SMALL_BODY: usize = 5 << 20;

/// Room for what surrounds the payload of a chunk or a batch: the vote, log ids, the snapshot's meta (the
/// membership: a few addresses per server) and the encoding's lengths.
const FRAMING_SLACK: usize = 64 << 10;

/// The largest log entry: every command enters the log through a body of at most `SMALL_BODY` (a forwarded or
/// client write over the RPC, or an HTTP body of at most 4 MiB), and an entry adds only its log id to the command.
pub(crate) const MAX_ENTRY_BYTES: usize = SMALL_BODY;

/// The largest AppendEntries body from a server: a batch up to `APPEND_BATCH_BYTES` plus the one entry that may
/// cross it (`MAX_ENTRY_BYTES`), and the framing.
pub(crate) const APPEND_ENTRIES_BODY: usize = APPEND_BATCH_BYTES + MAX_ENTRY_BYTES + FRAMING_SLACK;

/// The largest `SnapshotChunk` (and `FullSnapshot`) body: one chunk and the framing.
pub(crate) const SNAPSHOT_CHUNK_BODY: usize = SNAPSHOT_CHUNK + FRAMING_SLACK;

/// postcard's tags (variant indexes, one varint byte below 128) of the large messages.
const APPEND_ENTRIES_TAG: u8 = 0;
const FULL_SNAPSHOT_TAG: u8 = 3;
pub(crate) const SNAPSHOT_CHUNK_TAG: u8 = 19;

/// The largest body a peer may send in a frame whose body starts with `tag`, checked before the body is read.
/// AppendEntries is large from servers only; from anyone else it is held to the small limit (and then refused, as
/// the snapshot messages are: they are server-only).
pub(crate) fn body_limit(tag: u8, from_server: bool) -> usize {
    match tag {
        APPEND_ENTRIES_TAG if from_server => APPEND_ENTRIES_BODY,
        FULL_SNAPSHOT_TAG | SNAPSHOT_CHUNK_TAG => SNAPSHOT_CHUNK_BODY,
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
            | Request::SessionRenew(_)
            | Request::SnapshotChunk(_) => true,
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
            | Request::ClientOperator { .. }
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
            Request::SnapshotChunk(_) => "SnapshotChunk",
            Request::ClientOperator { .. } => "ClientOperator",
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
    /// Answer to `FullSnapshot` and to each `SnapshotChunk`: the receiver's vote (after the install, for the last
    /// chunk). A vote above the sender's ends the stream: the sender is no longer leader.
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
    /// Answer to `ClientOperator`.
    ClientOperator(OperatorReply),
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
    /// A `SnapshotChunk` did not continue the stream being assembled (or the snapshot did not install): the sender
    /// starts the stream over.
    SnapshotStream(String),
    /// An operator request was refused (`Error::Operator`); the text is for the operator. Never retried.
    Operator(String),
}

#[cfg(test)]
mod tests;
