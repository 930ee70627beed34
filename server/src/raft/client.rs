//! The calling side of the client RPCs (`wire::Request::ClientQueryAs`, `ClientWriteAs`, `ClientTxnAs`, `ClientSessionRenewAs`, `ClientLogin`, `ClientLogout`, `ClientOperator`, `Status`), for `crate::Remote`.
//! The untokened `ClientQuery`/`ClientWrite`/`ClientTxn`/`ClientSessionRenew` of older builds are still served, as the anonymous token.
//!
//! Each call reports a failure as a `Failure` that says what the caller may safely do next, so the
//! retry policy in `remote.rs` needs neither the wire schema nor openraft.

use std::time::Duration;

use roster_kv::{AclToken, Answer, Command, CommandResult, Query, Session, TxnOp, TxnOutcome};

use crate::login::Login;
use crate::operator::{OperatorReply, OperatorRequest};

use super::wire::{Request, Response, WireError};
use super::{CallError, call_peer};
use crate::config::{ClusterStatus, Consistency, ReadMeta};
use crate::rpc::{Peer, RpcError};

/// Why a client call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server could not be reached: nothing was sent, so any request may go elsewhere.
    Unreachable(String),
    /// The request was sent and no answer came (timeout, broken connection): it may have been served.
    Lost {
        /// What happened.
        message: String,
        /// The deadline that passed, for a timeout.
        timeout: Option<Duration>,
    },
    /// The server knows no leader (or its leader turned it away): nothing was appended.
    NoLeader,
    /// The server could not serve the request now; a read may go elsewhere, a write's outcome is unknown.
    Unavailable(String),
    /// The write was refused deterministically.
    Rejected(String),
    /// The write may or may not have been applied.
    Indeterminate(String),
    /// The answer made no sense: an incompatible server.
    Protocol(String),
    /// The caller's token may not do this, or does not exist: the error to return as it is.
    Denied(crate::error::Error),
}

/// Sends a query on behalf of the caller holding `token` and waits up to `timeout` for its filtered answer.
pub(crate) async fn query_as(
    peer: &Peer,
    token: &str,
    consistency: Consistency,
    min_index: u64,
    wait: Duration,
    query: &Query,
    timeout: Duration,
) -> Result<(Answer, u64, ReadMeta, bool), Failure> {
    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    let request =
        Request::ClientQueryAs { token: token.to_owned(), consistency, min_index, wait_ms, query: query.clone() };
    match call(peer, &request, timeout).await? {
        Response::ClientQueryAs { answer, index, meta, filtered } => Ok((answer, index, meta, filtered)),
        other => Err(mismatched(&other)),
    }
}

/// Sends a write on behalf of the caller holding `token`.
pub(crate) async fn write_as(
    peer: &Peer,
    token: &str,
    cmd: Command,
    timeout: Duration,
) -> Result<CommandResult, Failure> {
    match call(peer, &Request::ClientWriteAs { token: token.to_owned(), cmd }, timeout).await? {
        Response::ClientWrite(result) => Ok(result),
        other => Err(mismatched(&other)),
    }
}

/// Sends a transaction on behalf of the caller holding `token`.
pub(crate) async fn txn_as(
    peer: &Peer,
    token: &str,
    ops: Vec<TxnOp>,
    now_ms: u64,
    timeout: Duration,
) -> Result<TxnOutcome, Failure> {
    match call(peer, &Request::ClientTxnAs { token: token.to_owned(), ops, now_ms }, timeout).await? {
        Response::ClientTxn(outcome) => Ok(outcome),
        other => Err(mismatched(&other)),
    }
}

/// Asks a server to renew a session on behalf of the caller holding `token`.
pub(crate) async fn renew_session_as(
    peer: &Peer,
    token: &str,
    id: &str,
    timeout: Duration,
) -> Result<Option<Session>, Failure> {
    match call(peer, &Request::ClientSessionRenewAs { token: token.to_owned(), id: id.to_owned() }, timeout).await? {
        Response::SessionRenew(session) => Ok(session),
        other => Err(mismatched(&other)),
    }
}

/// Sends a login; the server mints the token.
pub(crate) async fn login(peer: &Peer, login: &Login, timeout: Duration) -> Result<AclToken, Failure> {
    match call(peer, &Request::ClientLogin(login.clone()), timeout).await? {
        Response::ClientLogin(token) => Ok(*token),
        other => Err(mismatched(&other)),
    }
}

/// Sends a logout of the login token `token`.
pub(crate) async fn logout(peer: &Peer, token: &str, timeout: Duration) -> Result<(), Failure> {
    match call(peer, &Request::ClientLogout { token: token.to_owned() }, timeout).await? {
        Response::ClientWrite(_) => Ok(()),
        other => Err(mismatched(&other)),
    }
}

/// Sends an operator request on behalf of the caller holding `token`.
pub(crate) async fn operator(
    peer: &Peer,
    token: &str,
    request: &OperatorRequest,
    timeout: Duration,
) -> Result<OperatorReply, Failure> {
    match call(peer, &Request::ClientOperator { token: token.to_owned(), request: request.clone() }, timeout).await? {
        Response::ClientOperator(reply) => Ok(reply),
        other => Err(mismatched(&other)),
    }
}

/// Has the server build a snapshot archive for the caller holding `token`: its handle, length and index.
pub(crate) async fn snapshot_open(
    peer: &Peer,
    token: &str,
    consistency: Consistency,
    timeout: Duration,
) -> Result<(String, u64, u64), Failure> {
    match call(peer, &Request::ClientSnapshotOpen { token: token.to_owned(), consistency }, timeout).await? {
        Response::ClientSnapshotOpened { handle, len, index } => Ok((handle, len, index)),
        other => Err(mismatched(&other)),
    }
}

/// Reads a piece of an opened snapshot archive.
pub(crate) async fn snapshot_read(
    peer: &Peer,
    handle: &str,
    offset: u64,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    match call(peer, &Request::ClientSnapshotRead { handle: handle.to_owned(), offset }, timeout).await? {
        Response::ClientSnapshotChunk(bytes) => Ok(bytes),
        other => Err(mismatched(&other)),
    }
}

/// Asks for the server's view of the cluster.
pub(crate) async fn status(peer: &Peer, timeout: Duration) -> Result<ClusterStatus, Failure> {
    match call(peer, &Request::Status, timeout).await? {
        Response::Status(status) => Ok(status),
        other => Err(mismatched(&other)),
    }
}

async fn call(peer: &Peer, request: &Request, timeout: Duration) -> Result<Response, Failure> {
    match call_peer(peer, request, timeout).await {
        Ok(Response::Error(e)) => Err(match e {
            WireError::NotLeader { .. } => Failure::NoLeader,
            WireError::Rejected(why) => Failure::Rejected(why),
            WireError::Indeterminate(why) => Failure::Indeterminate(why),
            WireError::Unavailable(why) | WireError::Fatal(why) => Failure::Unavailable(why),
            // A server answers SnapshotStream only to a server's snapshot chunk, never to a client request.
            WireError::BadRequest(why) | WireError::SnapshotStream(why) => Failure::Protocol(why),
            WireError::PermissionDenied(why) => Failure::Denied(crate::error::Error::PermissionDenied(why)),
            WireError::AclNotFound => Failure::Denied(crate::error::Error::AclNotFound),
            WireError::AclRootDenied => Failure::Denied(crate::error::Error::AclRootDenied),
            WireError::Operator(why) => Failure::Denied(crate::error::Error::Operator(why)),
        }),
        Ok(response) => Ok(response),
        Err(CallError::Rpc(e @ RpcError::Unreachable { .. })) => Err(Failure::Unreachable(e.to_string())),
        Err(CallError::Rpc(RpcError::Timeout { addr, timeout })) => {
            Err(Failure::Lost { message: format!("no answer from {addr} within {timeout:?}"), timeout: Some(timeout) })
        }
        Err(CallError::Rpc(e @ RpcError::Closed { .. })) => {
            Err(Failure::Lost { message: e.to_string(), timeout: None })
        }
        Err(CallError::Codec(e)) => Err(Failure::Protocol(e.to_string())),
    }
}

fn mismatched(response: &Response) -> Failure {
    Failure::Protocol(format!("unexpected response {response:?}"))
}
