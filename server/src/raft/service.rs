//! The inbound side of the RPC: decodes a request, hands it to openraft (or proposes a forwarded write), encodes the answer.

use std::sync::{Arc, Mutex, PoisonError};

use openraft::errors::{ClientWriteError, RaftError};
use openraft::raft::AppendEntriesResponse;
use tokio::time::Instant;

use super::wire::{Request, Response, WireError};
use super::{Raft, Snapshot, read_index};
use crate::Error;
use crate::rpc::Handler;

/// Serves one node's Raft RPCs.
pub(crate) struct RaftService {
    raft: Raft,
    /// Updated whenever a leader's AppendEntries is accepted, for `ReadMeta::last_contact_ms`.
    last_contact: Arc<Mutex<Instant>>,
}

impl RaftService {
    /// A service for `raft`, recording leader contact in `last_contact`.
    pub(crate) fn new(raft: Raft, last_contact: Arc<Mutex<Instant>>) -> RaftService {
        RaftService { raft, last_contact }
    }

    async fn dispatch(&self, request: Request) -> Response {
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
            Request::Forward(cmd) => match self.raft.client_write(super::LogCommand(cmd)).await {
                Ok(resp) => Response::Forward { result: resp.data, index: resp.log_id.index() },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Response::Error(WireError::NotLeader { leader: f.leader_node.map(|n| n.addr) })
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
        }
    }
}

impl Handler for RaftService {
    async fn handle(&self, body: Vec<u8>) -> Vec<u8> {
        let response = match postcard::from_bytes::<Request>(&body) {
            Ok(request) => self.dispatch(request).await,
            Err(e) => Response::Error(WireError::BadRequest(e.to_string())),
        };
        // Encoding our own response type only fails on a serde bug; answer with the error text then.
        postcard::to_allocvec(&response).unwrap_or_else(|e| {
            let fallback = Response::Error(WireError::Fatal(format!("encoding response: {e}")));
            postcard::to_allocvec(&fallback).unwrap_or_default()
        })
    }
}

fn fatal<E: std::fmt::Display>(e: E) -> Response {
    Response::Error(WireError::Fatal(e.to_string()))
}
