//! openraft's outbound network (`RaftNetworkV2`) over the `rpc` transport.
//!
//! # Nothing larger than a bounded frame
//! A snapshot goes as a stream of `SnapshotChunk`s of `SNAPSHOT_CHUNK` bytes, one at a time on the snapshot client's
//! own connection, each answered before the next is sent (`raft::chunks` assembles them on the follower). An
//! AppendEntries whose entries encode to more than `APPEND_BATCH_BYTES` is cut to the prefix that fits (at least one
//! entry) and answered to openraft as `PartialSuccess` up to that prefix, so openraft sends the rest next; conflicts
//! and higher votes come back as the follower said them, since they concern the same `prev_log_id` and vote.
//! The receiver's frame limits (`wire::body_limit`) follow from these two bounds.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2};

use super::wire::{APPEND_BATCH_BYTES, Request, Response, SNAPSHOT_CHUNK, SnapshotChunk, WireError};
use super::{CallError, LogId, Snapshot, TypeConfig, Vote};
use crate::rpc::{Dialer, Peer, RpcError};

/// The slowest transfer an AppendEntries is given time for, in bytes per millisecond (2 MiB/s) on top of openraft's
/// heartbeat-long deadline: a full batch of large values gets about four seconds more to be encoded, cross, be decoded
/// and fsynced (a debug build on a loaded machine needs most of that), rather than timing out and being sent again
/// while the follower is still writing it. A dead follower is noticed by its connection closing, not by this.
const APPEND_BYTES_PER_MS: usize = 2 << 10;

/// Bodies at least this large are encoded (here) and decoded (`raft::service`) on the blocking pool: an 8 MiB batch
/// takes milliseconds to encode (a debug build: most of a second), which would hold up heartbeats and timers sharing the
/// async worker.
pub(crate) const OFF_THREAD_BYTES: usize = 1 << 20;

/// What replication did beyond plain RPCs, counted for logs and tests.
#[derive(Default)]
pub(crate) struct StreamCounters {
    /// Snapshot chunks this node sent and had accepted.
    chunks_sent: AtomicU64,
    /// Snapshot chunks this node accepted into a stream.
    chunks_received: AtomicU64,
    /// AppendEntries cut to a prefix because their entries exceeded `APPEND_BATCH_BYTES`.
    appends_split: AtomicU64,
}

/// A reading of `StreamCounters`.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamStats {
    pub(crate) chunks_sent: u64,
    pub(crate) chunks_received: u64,
    pub(crate) appends_split: u64,
}

impl StreamCounters {
    /// Counts one chunk taken into a stream on this receiver.
    pub(crate) fn chunk_received(&self) {
        self.chunks_received.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> StreamStats {
        StreamStats {
            chunks_sent: self.chunks_sent.load(Ordering::Relaxed),
            chunks_received: self.chunks_received.load(Ordering::Relaxed),
            appends_split: self.appends_split.load(Ordering::Relaxed),
        }
    }
}

/// One shared `Peer` (connection) per server address, used by replication, heartbeats and forwarding.
pub(crate) struct PeerPool {
    /// How other servers are dialled (TLS with this server's certificate when configured).
    dialer: Arc<Dialer>,
    peers: Mutex<HashMap<SocketAddr, Arc<Peer>>>,
}

impl PeerPool {
    /// A pool dialling through `dialer`.
    pub(crate) fn new(dialer: Arc<Dialer>) -> PeerPool {
        PeerPool { dialer, peers: Mutex::default() }
    }

    /// The peer at `addr`, created on first use.
    pub(crate) fn get(&self, addr: SocketAddr) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        peers.entry(addr).or_insert_with(|| Arc::new(Peer::new(addr, self.dialer.clone()))).clone()
    }

    /// A peer at `addr` with a connection of its own.
    pub(crate) fn dedicated(&self, addr: SocketAddr) -> Arc<Peer> {
        Arc::new(Peer::new(addr, self.dialer.clone()))
    }
}

/// Hands openraft a client per target node.
pub(crate) struct Network {
    /// This node's id, for error reports.
    node_id: u64,
    /// Shared connections.
    pool: Arc<PeerPool>,
    /// Chunks sent and batches split.
    counters: Arc<StreamCounters>,
}

impl Network {
    /// A network factory for node `node_id` drawing connections from `pool` and counting into `counters`.
    pub(crate) fn new(node_id: u64, pool: Arc<PeerPool>, counters: Arc<StreamCounters>) -> Network {
        Network { node_id, pool, counters }
    }

    fn client(&self, target: u64, node: &BasicNode, dedicated: bool) -> NetworkClient {
        let peer = match node.addr.parse::<SocketAddr>() {
            Ok(addr) if dedicated => Ok(self.pool.dedicated(addr)),
            Ok(addr) => Ok(self.pool.get(addr)),
            Err(_) => Err(node.addr.clone()),
        };
        NetworkClient { node_id: self.node_id, target, peer, counters: self.counters.clone() }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> NetworkClient {
        self.client(target, node, false)
    }

    /// Snapshots get their own connection: a stream of chunks must not delay heartbeats behind it.
    async fn new_snapshot_client(&mut self, target: u64, node: &BasicNode) -> NetworkClient {
        self.client(target, node, true)
    }
}

/// openraft's handle on one target node.
pub(crate) struct NetworkClient {
    node_id: u64,
    target: u64,
    /// The target's connection, or its unparseable address.
    peer: Result<Arc<Peer>, String>,
    counters: Arc<StreamCounters>,
}

impl NetworkClient {
    /// Sends `request` and returns the peer's answer, `Response::Error` included. A `large` request is encoded on the
    /// blocking pool.
    async fn call(
        &self,
        request: Request,
        large: bool,
        timeout: Duration,
        action: RPCTypes,
    ) -> Result<Response, RPCError<TypeConfig>> {
        let peer = match &self.peer {
            Ok(peer) => peer,
            Err(addr) => {
                let e = io::Error::new(io::ErrorKind::InvalidInput, format!("bad node address {addr:?}"));
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        let body = encode(request, large).await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let exchange = async { Ok::<_, CallError>(postcard::from_bytes(&peer.call(body, timeout).await?)?) };
        match exchange.await {
            Ok(response) => Ok(response),
            Err(CallError::Rpc(RpcError::Timeout { timeout, .. })) => {
                Err(RPCError::Timeout(Timeout { action, id: self.node_id, target: self.target, timeout }))
            }
            Err(e @ CallError::Rpc(RpcError::Unreachable { .. })) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    /// Sends `request` within `option`'s deadline; an answered error is a failure.
    async fn send(
        &self,
        request: Request,
        option: &RPCOption,
        action: RPCTypes,
    ) -> Result<Response, RPCError<TypeConfig>> {
        self.send_within(request, false, option.hard_ttl(), action).await
    }

    /// Sends `request` (encoded on the blocking pool if `large`) within `timeout`; an answered error is a failure.
    async fn send_within(
        &self,
        request: Request,
        large: bool,
        timeout: Duration,
        action: RPCTypes,
    ) -> Result<Response, RPCError<TypeConfig>> {
        match self.call(request, large, timeout, action).await? {
            Response::Error(e) => Err(remote_error(self.addr(), e)),
            response => Ok(response),
        }
    }

    /// The target's address, for error reports.
    fn addr(&self) -> String {
        match &self.peer {
            Ok(peer) => peer.addr().to_string(),
            Err(addr) => addr.clone(),
        }
    }

    /// Sends the snapshot as `SnapshotChunk`s; see `full_snapshot`.
    async fn stream_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        mut cancel: std::pin::Pin<&mut (impl Future<Output = ReplicationClosed> + Send)>,
        option: &RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let Snapshot { meta, snapshot: data } = snapshot;
        let id = uuid::Uuid::new_v4().as_u64_pair().0;
        let (mut offset, mut sent) = (0, 0u64);
        loop {
            let end = data.len().min(offset + SNAPSHOT_CHUNK);
            let done = end == data.len();
            let chunk = SnapshotChunk {
                vote,
                meta: meta.clone(),
                id,
                offset: offset as u64,
                data: data[offset..end].to_vec(),
                done,
            };
            let request = Request::SnapshotChunk(chunk);
            let response = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                response = self.call(request, true, option.hard_ttl(), RPCTypes::InstallSnapshot) => response?,
            };
            let resp = match response {
                Response::Snapshot(resp) => resp,
                // A build from before chunks cannot decode one: send the snapshot whole, as that build expects.
                Response::Error(WireError::BadRequest(why)) if offset == 0 => {
                    tracing::warn!(target = self.target, %why, "raft: peer cannot decode a snapshot chunk (an older build?); sending the snapshot in one frame");
                    let request = Request::FullSnapshot { vote, meta, data };
                    return tokio::select! {
                        closed = &mut cancel => Err(StreamingError::Closed(closed)),
                        response = self.send_within(request, true, option.hard_ttl(), RPCTypes::InstallSnapshot) => {
                            snapshot_response(response?)
                        }
                    };
                }
                // The receiver lost track of the stream (or failed to install it): start over at once, under a new id.
                Response::Error(WireError::SnapshotStream(why)) => {
                    let e = io::Error::other(format!("{} refused snapshot chunk at {offset}: {why}", self.addr()));
                    return Err(StreamingError::Network(NetworkError::new(&e)));
                }
                Response::Error(e) => return Err(remote_error(self.addr(), e).into()),
                other => return snapshot_response(other),
            };
            self.counters.chunks_sent.fetch_add(1, Ordering::Relaxed);
            sent += 1;
            // A vote above ours: we are no longer leader, and openraft learns it from this answer.
            if done || resp.vote > vote {
                tracing::info!(
                    target = self.target,
                    bytes = data.len(),
                    chunks = sent,
                    complete = done,
                    "raft: snapshot stream ended"
                );
                return Ok(resp);
            }
            offset = end;
        }
    }
}

/// Cuts `rpc` to the longest prefix of its entries that encode to at most `bound` bytes, and never to fewer than one
/// entry. Replication's batches come from the log store's `limited_get_log_entries`, already within the bound, so this
/// is the guard for any other way a larger batch could arrive. Returns the request to send, the encoded size of its entries, and, when entries were left out, the log id
/// of the last one sent: what the follower has matched once it accepts the prefix.
pub(crate) fn split_batch(
    mut rpc: AppendEntriesRequest<TypeConfig>,
    bound: usize,
) -> (AppendEntriesRequest<TypeConfig>, usize, Option<LogId>) {
    let mut total = 0usize;
    let mut keep = rpc.entries.len();
    for (i, entry) in rpc.entries.iter().enumerate() {
        // Our own types always encode; were one not to, counting it as huge sends it alone.
        let size = super::envelope::entry_len(entry).unwrap_or(usize::MAX);
        if i > 0 && total.saturating_add(size) > bound {
            keep = i;
            break;
        }
        total = total.saturating_add(size);
    }
    if keep == rpc.entries.len() {
        return (rpc, total, None);
    }
    rpc.entries.truncate(keep);
    let last = rpc.entries.last().map(|entry| entry.log_id);
    // The follower may hold a stale suffix past the prefix until a later request replaces it: never tell it that
    // anything past what this request proves it shares with the leader is committed.
    if rpc.leader_commit > last {
        rpc.leader_commit = last;
    }
    (rpc, total, last)
}

/// openraft's answer to a request that `split_batch` cut after `cut`, from the follower's answer to the prefix: the
/// prefix accepted whole is partial success up to `cut`, so openraft sends the rest next; a conflict (at the same
/// `prev_log_id`) or a higher vote is the follower's word, passed on as it is.
fn prefix_answer(resp: AppendEntriesResponse<TypeConfig>, cut: Option<LogId>) -> AppendEntriesResponse<TypeConfig> {
    match resp {
        AppendEntriesResponse::Success if cut.is_some() => AppendEntriesResponse::PartialSuccess(cut),
        other => other,
    }
}

/// How long an AppendEntries carrying `bytes` of entries may take: openraft's deadline plus time for the bytes.
fn append_timeout(ttl: Duration, bytes: usize) -> Duration {
    ttl + Duration::from_millis((bytes / APPEND_BYTES_PER_MS) as u64)
}

/// Encodes `request`, on the blocking pool if `large`.
async fn encode(request: Request, large: bool) -> io::Result<Vec<u8>> {
    // An AppendEntries' buffer is sized for its entries first: grown as it is written, it is copied each time it
    // doubles, once more at the commit pointer that follows the entries. The other fields take a few dozen bytes.
    let capacity = match &request {
        Request::AppendEntries(rpc) => {
            rpc.entries.iter().map(|entry| super::envelope::entry_len(entry).unwrap_or(0)).sum::<usize>() + 256
        }
        _ => 0,
    };
    let encode = move || postcard::to_extend(&request, Vec::with_capacity(capacity)).map_err(io::Error::other);
    if large { tokio::task::spawn_blocking(encode).await.map_err(io::Error::other)? } else { encode() }
}

/// The answer to the last chunk or to a `FullSnapshot`.
fn snapshot_response(response: Response) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
    match response {
        Response::Snapshot(resp) => Ok(resp),
        other => {
            Err(StreamingError::Network(NetworkError::new(&io::Error::other(format!("unexpected response {other:?}")))))
        }
    }
}

impl RaftNetworkV2<TypeConfig> for NetworkClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (rpc, bytes, cut) = split_batch(rpc, APPEND_BATCH_BYTES);
        if cut.is_some() {
            self.counters.appends_split.fetch_add(1, Ordering::Relaxed);
        }
        let timeout = append_timeout(option.hard_ttl(), bytes);
        let large = bytes >= OFF_THREAD_BYTES;
        match self.send_within(Request::AppendEntries(rpc), large, timeout, RPCTypes::AppendEntries).await? {
            Response::AppendEntries(resp) => Ok(prefix_answer(resp, cut)),
            other => Err(mismatched(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::Vote(rpc), &option, RPCTypes::Vote).await? {
            Response::Vote(resp) => Ok(resp),
            other => Err(mismatched(&other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::PreVote(rpc), &option, RPCTypes::Vote).await? {
            Response::Vote(resp) => Ok(resp),
            other => Err(mismatched(&other)),
        }
    }

    /// Streams the snapshot in chunks of `SNAPSHOT_CHUNK` bytes (see the module doc). `cancel` is honoured while each
    /// chunk is in flight; the chunk timeout is openraft's snapshot timeout, per chunk.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let cancel = std::pin::pin!(cancel);
        self.stream_snapshot(vote, snapshot, cancel, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::TransferLeader(req), &option, RPCTypes::TransferLeader).await? {
            Response::TransferLeader(resp) => Ok(resp),
            other => Err(mismatched(&other)),
        }
    }
}

/// A peer that answered with an error cannot serve Raft now (it is stopping or incompatible): back off.
fn remote_error(addr: String, e: WireError) -> RPCError<TypeConfig> {
    let e = io::Error::other(format!("{addr} answered {e:?}"));
    RPCError::Unreachable(Unreachable::new(&e))
}

fn mismatched(response: &Response) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&io::Error::other(format!("unexpected response {response:?}"))))
}

#[cfg(test)]
mod tests;
