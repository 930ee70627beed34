//! openraft's outbound network (`RaftNetworkV2`) over the `rpc` transport.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2};

use super::wire::{Request, Response, WireError};
use super::{CallError, Snapshot, TypeConfig, Vote, call_peer};
use crate::rpc::{Dialer, Peer, RpcError};

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
}

impl Network {
    /// A network factory for node `node_id` drawing connections from `pool`.
    pub(crate) fn new(node_id: u64, pool: Arc<PeerPool>) -> Network {
        Network { node_id, pool }
    }

    fn client(&self, target: u64, node: &BasicNode, dedicated: bool) -> NetworkClient {
        let peer = match node.addr.parse::<SocketAddr>() {
            Ok(addr) if dedicated => Ok(self.pool.dedicated(addr)),
            Ok(addr) => Ok(self.pool.get(addr)),
            Err(_) => Err(node.addr.clone()),
        };
        NetworkClient { node_id: self.node_id, target, peer }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> NetworkClient {
        self.client(target, node, false)
    }

    /// Snapshots get their own connection: one large frame must not delay heartbeats behind it.
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
}

impl NetworkClient {
    async fn send(
        &self,
        request: Request,
        option: &RPCOption,
        action: RPCTypes,
    ) -> Result<Response, RPCError<TypeConfig>> {
        let peer = match &self.peer {
            Ok(peer) => peer,
            Err(addr) => {
                let e = io::Error::new(io::ErrorKind::InvalidInput, format!("bad node address {addr:?}"));
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        let timeout = option.hard_ttl();
        match call_peer(peer, &request, timeout).await {
            Ok(Response::Error(e)) => Err(remote_error(peer.addr(), e)),
            Ok(response) => Ok(response),
            Err(CallError::Rpc(RpcError::Timeout { timeout, .. })) => {
                Err(RPCError::Timeout(Timeout { action, id: self.node_id, target: self.target, timeout }))
            }
            Err(e @ CallError::Rpc(RpcError::Unreachable { .. })) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
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
        match self.send(Request::AppendEntries(rpc), &option, RPCTypes::AppendEntries).await? {
            Response::AppendEntries(resp) => Ok(resp),
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

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = Request::FullSnapshot { vote, meta: snapshot.meta, data: snapshot.snapshot };
        let response = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            response = self.send(request, &option, RPCTypes::InstallSnapshot) => response?,
        };
        match response {
            Response::Snapshot(resp) => Ok(resp),
            other => Err(StreamingError::Network(NetworkError::new(&io::Error::other(format!(
                "unexpected response {other:?}"
            ))))),
        }
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
fn remote_error(addr: SocketAddr, e: WireError) -> RPCError<TypeConfig> {
    let e = io::Error::other(format!("{addr} answered {e:?}"));
    RPCError::Unreachable(Unreachable::new(&e))
}

fn mismatched(response: &Response) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&io::Error::other(format!("unexpected response {response:?}"))))
}
