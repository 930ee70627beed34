//! The inbound side of the RPC: decodes a request, hands it to openraft (or proposes a forwarded write, or passes a client agent's request to the server), encodes the answer.
//!
//! The transport runs every request of a connection as its own task, so a client's blocking query parked here for minutes holds up neither heartbeats nor other requests.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::errors::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesResponse, SnapshotResponse};
use roster_kv::{AclToken, Answer, Command, CommandResult, Outcome, Query, Session, TxnOp, TxnOutcome};
use tokio::time::Instant;

use super::chunks::{Assembled, Assembler};
use super::network::StreamCounters;
use super::wire::{Request, Response, SnapshotChunk, WireError};
use super::{LogCommand, Raft, Snapshot, read_index};
use crate::config::{ClusterStatus, Consistency, ReadMeta};
use crate::error::{Error, Result};
use crate::login::Login;
use crate::operator::{OperatorReply, OperatorRequest};
use crate::rpc::tls::LogOnce;
use crate::rpc::{Counters, Handler, PeerClass, PeerInfo};

/// The longest a client's blocking query may park here, whatever it asks: the HTTP API's 10-minute
/// maximum plus its jitter (wait/16), with room to spare.
const MAX_CLIENT_WAIT: Duration = Duration::from_secs(660);

/// What serves client agents' requests: the server itself, which this module does not otherwise
/// see (it owns the barriers, the watchers and the leader retries).
pub(crate) trait ClientHandler: Send + Sync + 'static {
    /// Evaluates `query` as `Server::query_as` does for the caller holding `token`.
    fn query(
        &self,
        token: &str,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> impl Future<Output = Result<(Answer, u64, ReadMeta, bool)>> + Send;
    /// Proposes `cmd` as `Server::write_as` does, forwarding it to the leader if need be.
    fn write(&self, token: &str, cmd: Command) -> impl Future<Output = Result<CommandResult>> + Send;
    /// This server's view of the cluster.
    fn status(&self) -> impl Future<Output = Result<ClusterStatus>> + Send;
    /// Runs a transaction as `Server::txn_as` does, forwarding it to the leader if need be.
    fn txn(&self, token: &str, ops: Vec<TxnOp>, now_ms: u64) -> impl Future<Output = Result<TxnOutcome>> + Send;
    /// Renews a session as `Server::renew_session_as` does, forwarding to the leader if need be.
    fn renew_session(&self, token: &str, id: &str) -> impl Future<Output = Result<Option<Session>>> + Send;
    /// Renews a session here, which must be the leader (`NotLeader` otherwise): the end of a forwarded renewal.
    fn renew_session_as_leader(&self, id: &str) -> Result<Option<Session>>;
    /// Logs in as `Server::login` does.
    fn login(&self, login: Login) -> impl Future<Output = Result<AclToken>> + Send;
    /// Logs out as `Server::logout` does.
    fn logout(&self, token: &str) -> impl Future<Output = Result<()>> + Send;
    /// Carries out an operator request as `Server::operator_as` does, forwarding it to the leader if need be.
    fn operator(&self, token: &str, request: OperatorRequest) -> impl Future<Output = Result<OperatorReply>> + Send;
    /// Builds the archive of the applied state for the caller holding `token` and keeps it under a handle: the
    /// handle, the archive's length and the index it covers.
    fn snapshot_open(
        &self,
        token: &str,
        consistency: Consistency,
    ) -> impl Future<Output = Result<(String, u64, u64)>> + Send;
    /// A piece of an opened archive.
    fn snapshot_read(&self, handle: &str, offset: u64) -> Result<Vec<u8>>;
}

/// Serves one node's RPCs.
pub(crate) struct RaftService<C> {
    raft: Raft,
    /// Updated whenever a leader's AppendEntries is accepted, for `ReadMeta::last_contact_ms`.
    last_contact: Arc<Mutex<Instant>>,
    /// Serves client agents' queries, writes and status requests.
    clients: Arc<C>,
    /// Counts server-only requests refused to other peers.
    counters: Arc<Counters>,
    /// Which peers were logged for such a refusal.
    logged: LogOnce,
    /// The snapshot stream being received.
    chunks: Mutex<Assembler>,
    /// Counts the chunks received.
    stream: Arc<StreamCounters>,
    /// Whether an entry from a newer roster was refused and logged loudly already.
    logged_newer_entry: AtomicBool,
}

impl<C: ClientHandler> RaftService<C> {
    /// A service for `raft`, recording leader contact in `last_contact` and passing client requests to `clients`.
    pub(crate) fn new(
        raft: Raft,
        last_contact: Arc<Mutex<Instant>>,
        clients: Arc<C>,
        counters: Arc<Counters>,
        stream: Arc<StreamCounters>,
    ) -> RaftService<C> {
        RaftService {
            raft,
            last_contact,
            clients,
            counters,
            logged: LogOnce::default(),
            logged_newer_entry: AtomicBool::new(false),
            chunks: Mutex::default(),
            stream,
        }
    }

    /// Takes one chunk of a streamed snapshot, and installs the snapshot when it is whole.
    ///
    /// The sender's vote is checked on every chunk, as openraft checks it on the whole snapshot: a chunk from a leader
    /// whose vote is below this node's is answered with this node's vote, which ends the sender's stream, and the
    /// stream it belonged to is dropped.
    async fn receive_chunk(&self, chunk: SnapshotChunk) -> Response {
        let mine = match self.raft.with_raft_state(|state| *state.vote_ref()).await {
            Ok(vote) => vote,
            Err(e) => return fatal(e),
        };
        let assembled = {
            let mut chunks = self.chunks.lock().unwrap_or_else(PoisonError::into_inner);
            if chunk.vote.partial_cmp(&mine).is_none_or(std::cmp::Ordering::is_lt) {
                chunks.discard_older_than(&mine);
                return Response::Snapshot(SnapshotResponse::new(mine));
            }
            chunks.accept(chunk)
        };
        match assembled {
            Ok(Assembled::More) => {
                self.stream.chunk_received();
                Response::Snapshot(SnapshotResponse::new(mine))
            }
            Ok(Assembled::Done(vote, snapshot)) => {
                self.stream.chunk_received();
                tracing::info!(last_log_id = ?snapshot.meta.last_log_id, bytes = snapshot.snapshot.len(), "raft: streamed snapshot received; installing");
                self.raft.install_full_snapshot(vote, snapshot).await.map_or_else(fatal, Response::Snapshot)
            }
            Err(e) => {
                tracing::warn!(error = %e, "raft: snapshot chunk refused; the leader will start the stream over");
                Response::Error(WireError::SnapshotStream(e.to_string()))
            }
        }
    }

    /// The refusal of a server-only request from a peer that is not an authenticated server, logged once per peer.
    fn refuse_not_server(&self, peer: PeerInfo, request: &Request) -> Response {
        Counters::bump(&self.counters.refused_not_server);
        let why = match peer.class {
            PeerClass::Client => "its certificate does not carry the server name",
            _ => "it presented no verified certificate",
        };
        if self.logged.first(peer.addr.ip(), "not a server") {
            tracing::warn!(remote = %peer.addr, request = request.name(), reason = why, "rpc: server-only request refused from a peer that is not an authenticated server; further refusals of this peer are logged at debug");
        } else {
            tracing::debug!(remote = %peer.addr, request = request.name(), reason = why, "rpc: server-only request refused");
        }
        Response::Error(WireError::PermissionDenied(format!(
            "Permission denied: {} is served to authenticated servers only, and {why}",
            request.name()
        )))
    }

    /// Why this server cannot take an entry of `rpc` (one written by a newer roster), logged loudly once.
    ///
    /// Checked before openraft sees the entries: it would store them and then fail to apply them. The leader is
    /// told the versions in its error and keeps retrying, so the cluster carries on without this server until
    /// it is upgraded.
    fn unreadable_entry(&self, rpc: &openraft::raft::AppendEntriesRequest<super::TypeConfig>) -> Option<String> {
        let (index, unreadable) =
            rpc.entries.iter().find_map(|entry| Some((entry.log_id.index(), LogCommand::unreadable(entry)?)))?;
        let why = format!("AppendEntries refused: entry {index}: {}", unreadable.why);
        if !self.logged_newer_entry.swap(true, Ordering::Relaxed) {
            tracing::error!("{why}; further refusals are logged at debug");
        } else {
            tracing::debug!("{why}");
        }
        Some(why)
    }

    async fn dispatch(&self, request: Request) -> Response {
        match request {
            Request::ClientQuery { consistency, min_index, wait_ms, query } => {
                self.client_query(None, consistency, min_index, wait_ms, &query).await
            }
            Request::ClientQueryAs { token, consistency, min_index, wait_ms, query } => {
                self.client_query(Some(&token), consistency, min_index, wait_ms, &query).await
            }
            // Boxed: a client agent's blocking query parks in this future for up to `MAX_CLIENT_WAIT`, one task per
            // watcher, and inline the other requests' futures (openraft's append and write, a forwarded write with
            // its retries: 3-4 KiB) would size every one of those tasks at 4.9 KB rather than 1.9.
            other => Box::pin(self.dispatch_other(other)).await,
        }
    }

    /// A client agent's read: as the caller whose token it names (`ClientQueryAs`), or as the agent itself
    /// (`ClientQuery`, `token` `None`), each answered in its own kind of response.
    async fn client_query(
        &self,
        token: Option<&str>,
        consistency: Consistency,
        min_index: u64,
        wait_ms: u64,
        query: &Query,
    ) -> Response {
        let wait = Duration::from_millis(wait_ms).min(MAX_CLIENT_WAIT);
        match self.clients.query(token.unwrap_or(""), consistency, min_index, wait, query).await {
            Ok((answer, index, meta, filtered)) if token.is_some() => {
                Response::ClientQueryAs { answer, index, meta, filtered }
            }
            Ok((answer, index, meta, _)) => Response::ClientQuery { answer, index, meta },
            Err(e) => Response::Error(client_error(e)),
        }
    }

    /// Every request but a client's query (which `dispatch` serves without a box).
    async fn dispatch_other(&self, request: Request) -> Response {
        let start = std::time::Instant::now();
        if let Request::AppendEntries(rpc) = &request
            && let Some(why) = self.unreadable_entry(rpc)
        {
            return Response::Error(WireError::BadRequest(why));
        }
        match request {
            Request::AppendEntries(rpc) => match self.raft.append_entries(rpc).await {
                Ok(resp) => {
                    if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
                        *self.last_contact.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    }
                    Response::AppendEntries(resp)
                }
                Err(e) => fatal(e),
            },
            Request::Vote(rpc) => self.raft.vote(rpc).await.map_or_else(fatal, Response::Vote),
            Request::PreVote(rpc) => self.raft.pre_vote(rpc).await.map_or_else(fatal, Response::Vote),
            Request::FullSnapshot { vote, meta, data } => {
                let snapshot = Snapshot { meta, snapshot: data };
                self.raft.install_full_snapshot(vote, snapshot).await.map_or_else(fatal, Response::Snapshot)
            }
            Request::TransferLeader(req) => {
                self.raft.handle_transfer_leader(req).await.map_or_else(fatal, Response::TransferLeader)
            }
            Request::Forward(cmd) => match self.raft.client_write(super::LogCommand::Command(cmd)).await.inspect(|_| {
                crate::telemetry::raft_applied(start);
            }) {
                Ok(resp) => match resp.data {
                    Outcome::Result(result) => Response::Forward { result, index: resp.log_id.index() },
                    Outcome::Txn(outcome) => Response::ForwardTxn { outcome, index: resp.log_id.index() },
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Response::Error(WireError::NotLeader { leader: f.leader_node.map(|n| n.addr) })
                }
                // Appended, then displaced by a new leader's log: it may still commit there, as `write_local` says.
                Err(RaftError::APIError(e @ ClientWriteError::LogEntryDiscarded(_))) => {
                    Response::Error(WireError::Indeterminate(e.to_string()))
                }
                Err(e) => Response::Error(WireError::Fatal(e.to_string())),
            },
            Request::ReadIndex(policy) => match read_index(&self.raft, policy).await {
                Ok(index) => Response::ReadIndex(index),
                Err(Error::NotLeader { leader }) => {
                    Response::Error(WireError::NotLeader { leader: leader.map(|a| a.to_string()) })
                }
                Err(Error::NoLeader) => Response::Error(WireError::NotLeader { leader: None }),
                Err(e) => Response::Error(WireError::Fatal(e.to_string())),
            },
            // `dispatch` serves these without the box; answered the same way should a caller come here.
            Request::ClientQuery { consistency, min_index, wait_ms, query } => {
                self.client_query(None, consistency, min_index, wait_ms, &query).await
            }
            Request::ClientQueryAs { token, consistency, min_index, wait_ms, query } => {
                self.client_query(Some(&token), consistency, min_index, wait_ms, &query).await
            }
            Request::ClientWrite(cmd) => self
                .clients
                .write("", cmd)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), Response::ClientWrite),
            Request::ClientWriteAs { token, cmd } => self
                .clients
                .write(&token, cmd)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), Response::ClientWrite),
            Request::ClientTxnAs { token, ops, now_ms } => self
                .clients
                .txn(&token, ops, now_ms)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), Response::ClientTxn),
            Request::ClientSessionRenewAs { token, id } => self
                .clients
                .renew_session(&token, &id)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), Response::SessionRenew),
            Request::ClientLogin(login) => self
                .clients
                .login(login)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), |token| Response::ClientLogin(Box::new(token))),
            Request::ClientLogout { token } => self.clients.logout(&token).await.map_or_else(
                |e| Response::Error(client_error(e)),
                |()| Response::ClientWrite(CommandResult::Bool(true)),
            ),
            Request::ClientOperator { token, request } => self
                .clients
                .operator(&token, request)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), Response::ClientOperator),
            Request::ClientSnapshotOpen { token, consistency } => {
                match self.clients.snapshot_open(&token, consistency).await {
                    Ok((handle, len, index)) => Response::ClientSnapshotOpened { handle, len, index },
                    Err(e) => Response::Error(client_error(e)),
                }
            }
            Request::ClientSnapshotRead { handle, offset } => self
                .clients
                .snapshot_read(&handle, offset)
                .map_or_else(|e| Response::Error(client_error(e)), Response::ClientSnapshotChunk),
            Request::Status => {
                self.clients.status().await.map_or_else(|e| Response::Error(client_error(e)), Response::Status)
            }
            Request::ClientTxn { ops, now_ms } => self
                .clients
                .txn("", ops, now_ms)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), Response::ClientTxn),
            Request::SessionRenew(id) => self
                .clients
                .renew_session_as_leader(&id)
                .map_or_else(|e| Response::Error(client_error(e)), Response::SessionRenew),
            Request::ClientSessionRenew(id) => self
                .clients
                .renew_session("", &id)
                .await
                .map_or_else(|e| Response::Error(client_error(e)), Response::SessionRenew),
            Request::SnapshotChunk(chunk) => self.receive_chunk(chunk).await,
        }
    }
}

impl<C: ClientHandler> Handler for RaftService<C> {
    fn body_limit(&self, peer: &PeerInfo, tag: u8) -> usize {
        super::wire::body_limit(tag, peer.class == PeerClass::Server)
    }

    fn overloaded(&self, limit: usize) -> Vec<u8> {
        let why = format!("too many requests in flight on this connection (limit {limit})");
        encode(&Response::Error(WireError::Unavailable(why)))
    }

    async fn handle(&self, peer: PeerInfo, body: Vec<u8>) -> Vec<u8> {
        // A large body (a batch of big entries, a snapshot chunk) is decoded on the blocking pool, off the async
        // workers that run heartbeats. The decoded request owns its data; the body need not stay in memory while a
        // query parks.
        let request = if body.len() >= super::network::OFF_THREAD_BYTES {
            match tokio::task::spawn_blocking(move || postcard::from_bytes::<Request>(&body)).await {
                Ok(request) => request,
                Err(e) => return encode(&fatal(e)),
            }
        } else {
            let request = postcard::from_bytes::<Request>(&body);
            drop(body);
            request
        };
        let _in_flight = crate::telemetry::InProgress::start("roster.rpc.in_flight");
        let kind = request.as_ref().map_or("undecodable", Request::name);
        let response = match request {
            Ok(request) if request.server_only() && peer.class != PeerClass::Server => {
                self.refuse_not_server(peer, &request)
            }
            Ok(request) => self.dispatch(request).await,
            Err(e) => Response::Error(WireError::BadRequest(e.to_string())),
        };
        crate::telemetry::rpc_served(kind, matches!(response, Response::Error(_)));
        encode(&response)
    }
}

/// Encodes a response for the wire.
fn encode(response: &Response) -> Vec<u8> {
    // Encoding our own response type only fails on a serde bug; answer with the error text then.
    postcard::to_allocvec(response).unwrap_or_else(|e| {
        let fallback = Response::Error(WireError::Fatal(format!("encoding response: {e}")));
        postcard::to_allocvec(&fallback).unwrap_or_default()
    })
}

fn fatal<E: std::fmt::Display>(e: E) -> Response {
    Response::Error(WireError::Fatal(e.to_string()))
}

/// How a failed request is reported to the caller, so that it can tell what is safe to retry:
/// routing errors mean nothing was appended, `Rejected` and `Indeterminate` must reach the client
/// as they are, and anything else leaves a write's outcome unknown.
fn client_error(e: Error) -> WireError {
    match e {
        Error::NoLeader => WireError::NotLeader { leader: None },
        Error::NotLeader { leader } => WireError::NotLeader { leader: leader.map(|a| a.to_string()) },
        Error::Rejected(why) => WireError::Rejected(why),
        Error::Indeterminate(why) => WireError::Indeterminate(why),
        Error::PermissionDenied(why) => WireError::PermissionDenied(why),
        Error::AclNotFound => WireError::AclNotFound,
        Error::AclRootDenied => WireError::AclRootDenied,
        Error::Operator(why) => WireError::Operator(why),
        other => WireError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    //! What a served request's task holds.
    use super::*;

    /// The type of what `make` returns, sized without calling it.
    fn returned_size<F, G: FnOnce() -> F>(_make: &G) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each request runs in a task of its own, and a client agent's blocking query keeps its task for the whole wait:
    /// that task is sized by its query (1 872 B when written), not by the largest request the service handles
    /// (4 904 B when openraft's futures and a forwarded write's were inline beside it).
    #[test]
    fn a_served_querys_future_is_sized_by_the_query() {
        // Never called: only the type of what it would return is asked for.
        let (service, peer): (Option<&RaftService<crate::server::Inner>>, Option<PeerInfo>) = (None, None);
        let handle = move || service.unwrap().handle(peer.unwrap(), Vec::new());
        let size = returned_size(&handle);
        assert!(size <= 2048, "a served request's future is {size} bytes");
    }
}
