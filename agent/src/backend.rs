//! `Backend`: where this agent's reads and writes go. A server agent runs them on its own Raft server;
//! a client agent, which holds no state, sends them to a server over the RPC.
//!
//! The `_as` methods act for an HTTP caller: the server authorizes the caller's token (and filters reads) whether it
//! serves this agent in process or a client agent over the RPC. The plain methods are the agent's own: in process on a
//! server (which needs no permission to change its own state), and with the agent token (`Remote::set_token`) from a client.
//!
//! Reads are `roster_kv::Query` values rather than closures so that both cases run the same code:
//! a server evaluates the query in process, or on behalf of the client that sent it.

use std::time::Duration;

use roster_kv::{Answer, Command, CommandResult, Query, Session, TxnOp, TxnOutcome};
use roster_server::{ClusterStatus, Consistency, ReadMeta, Remote, Result, Server};

/// The agent's way to the replicated state. Cheap to clone.
#[derive(Clone)]
pub enum Backend {
    /// This agent is a server: every request runs on its own Raft node.
    Local(Server),
    /// This agent is a client: every request goes to a server.
    Remote(Remote),
}

impl Backend {
    /// Proposes `cmd` and returns its result once it is durable and applied.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult> {
        match self {
            Backend::Local(server) => server.write(cmd).await,
            Backend::Remote(remote) => remote.write(cmd).await,
        }
    }

    /// Evaluates `query` after the barrier `consistency` asks for; with `min_index > 0`, blocks up to
    /// `wait` until the answer's index exceeds it (see `Server::query`).
    pub async fn query(
        &self,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta)> {
        match self {
            Backend::Local(server) => server.query(consistency, min_index, wait, query).await,
            Backend::Remote(remote) => remote.query(consistency, min_index, wait, query).await,
        }
    }

    /// The agent's own write with a token other than the agent token (a config-file service's): a server agent's own
    /// writes need no permission, a client's carry `secret`.
    pub async fn write_as_agent(&self, secret: &str, cmd: Command) -> Result<CommandResult> {
        match self {
            Backend::Local(server) => server.write(cmd).await,
            Backend::Remote(remote) => remote.write_as(secret, cmd).await,
        }
    }

    /// `write` on behalf of the caller holding `secret`: the server that proposes it authorizes it first.
    pub async fn write_as(&self, secret: &str, cmd: Command) -> Result<CommandResult> {
        match self {
            Backend::Local(server) => server.write_as(secret, cmd).await,
            Backend::Remote(remote) => remote.write_as(secret, cmd).await,
        }
    }

    /// `query` on behalf of the caller holding `secret`: authorized and filtered by the server that answers it; the flag
    /// says whether the caller's token kept anything out.
    pub async fn query_as(
        &self,
        secret: &str,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta, bool)> {
        match self {
            Backend::Local(server) => server.query_as(secret, consistency, min_index, wait, query).await,
            Backend::Remote(remote) => remote.query_as(secret, consistency, min_index, wait, query).await,
        }
    }

    /// A transaction on behalf of the caller holding `secret`.
    pub async fn txn_as(&self, secret: &str, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        match self {
            Backend::Local(server) => server.txn_as(secret, ops, now_ms).await,
            Backend::Remote(remote) => remote.txn_as(secret, ops, now_ms).await,
        }
    }

    /// A session renewal on behalf of the caller holding `secret`.
    pub async fn renew_session_as(&self, secret: &str, id: &str) -> Result<Option<Session>> {
        match self {
            Backend::Local(server) => server.renew_session_as(secret, id).await,
            Backend::Remote(remote) => remote.renew_session_as(secret, id).await,
        }
    }

    /// An auth-method login, decided and minted by a server (this one, or the one a client reaches).
    pub async fn login(&self, login: &roster_server::Login) -> Result<roster_kv::AclToken> {
        match self {
            Backend::Local(server) => server.login(login).await,
            Backend::Remote(remote) => remote.login(login).await,
        }
    }

    /// Deletes the login token holding `secret`, on a server.
    pub async fn logout(&self, secret: &str) -> Result<()> {
        match self {
            Backend::Local(server) => server.logout(secret).await,
            Backend::Remote(remote) => remote.logout(secret).await,
        }
    }

    /// An operator request (remove-peer, transfer-leader) on behalf of the caller holding `secret`: authorized by the
    /// server that receives it and carried out by the leader.
    pub async fn operator_as(
        &self,
        secret: &str,
        request: &roster_server::OperatorRequest,
    ) -> Result<roster_server::OperatorReply> {
        match self {
            Backend::Local(server) => server.operator_as(secret, request).await,
            Backend::Remote(remote) => remote.operator_as(secret, request).await,
        }
    }

    /// The snapshot archive of the replicated state and the index it covers, for the caller holding `secret`
    /// (`acl:write`), built by this server or by the server a client reaches.
    pub async fn save_snapshot_as(&self, secret: &str, consistency: Consistency) -> Result<(Vec<u8>, u64)> {
        match self {
            Backend::Local(server) => server.save_snapshot_as(secret, consistency).await,
            Backend::Remote(remote) => remote.save_snapshot_as(secret, consistency).await,
        }
    }

    /// Replaces the whole replicated state with `state` (checked `State::encode_snapshot` bytes), for the caller
    /// holding `secret` (`acl:write`).
    pub async fn restore_snapshot_as(&self, secret: &str, state: &[u8]) -> Result<()> {
        match self {
            Backend::Local(server) => server.restore_snapshot_as(secret, state).await,
            Backend::Remote(remote) => remote.restore_snapshot_as(secret, state).await,
        }
    }

    /// The Raft cluster as this server, or the server a client uses, sees it.
    pub async fn status(&self) -> Result<ClusterStatus> {
        match self {
            Backend::Local(server) => server.status().await,
            Backend::Remote(remote) => remote.status().await,
        }
    }

    /// This agent's own Raft server, when it is one.
    pub fn server(&self) -> Option<&Server> {
        match self {
            Backend::Local(server) => Some(server),
            Backend::Remote(_) => None,
        }
    }
}
