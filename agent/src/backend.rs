//! `Backend`: where this agent's reads and writes go. A server agent runs them on its own Raft server;
//! a client agent, which holds no state, sends them to a server over the RPC.
//!
//! Reads are `roster_kv::Query` values rather than closures so that both cases run the same code:
//! a server evaluates the query in process, or on behalf of the client that sent it.

use std::time::Duration;

use roster_kv::{Answer, Command, CommandResult, Query};
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
