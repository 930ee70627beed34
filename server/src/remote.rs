//! `Remote`: a client agent's connection to the servers, which hold all the state it reads and writes.
//!
//! The agent tells it which servers are alive (`set_servers`, from gossip). It sticks to one server,
//! picked at random so that clients spread over the cluster, and moves to the next one in the list
//! when that server cannot be reached or cannot serve. Any server can serve any request: a follower
//! forwards writes to its leader and runs read barriers through it.
//!
//! # Writes go to the leader
//! A follower forwards a write to its leader, one more round trip and one more server's work per write. So writes
//! go straight to the leader when a status answer has named it and it is in the list: the first write asks the
//! server in use for its status in the background (and again every `LEADER_REFRESH`, or every `LEADER_RETRY`
//! while none is known), and a write to the leader that fails forgets it, so the retry and the writes after it go
//! to the server in use until the next status names the new leader. A leader that stepped down stays usable in
//! the meantime: as a follower it forwards, as every server does. Reads stay on the server in use.
//!
//! # What is retried
//! Retrying must never apply a write twice. A write is retried on another server only when it
//! certainly was not applied: the connection could not be made, or the server answered that it has
//! no leader (refused before anything was appended). A write that was sent and then lost (a timeout,
//! a broken connection) or that the server could not finish is reported as it is. Reads and status
//! requests change nothing, so every transport or availability failure is retried. Retries go on for
//! up to `RETRY_HOLD` past the request's own wait, pacing themselves, so an election or a server
//! restart is ridden out the way a server's own `LEADER_HOLD` rides out an election.
//!
//! # Blocking queries
//! A blocking query parks on the server for up to its wait, so its call timeout is the wait plus
//! `CALL_MARGIN`. Many can be in flight on one connection (the transport multiplexes by request id).
//! When its server fails midway, the query moves to another server with what remains of its wait.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use roster_kv::{AclToken, Answer, Command, CommandResult, Query, Session, TxnOp, TxnOutcome};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterStatus, Consistency, ReadMeta};
use crate::error::{Error, Result};
use crate::login::Login;
use crate::operator::{OperatorReply, OperatorRequest};
use crate::raft::client::{self, Failure};
use crate::rpc::{Dialer, Peer};

/// How long requests are retried on other servers after their first failure (beyond a query's wait);
/// the same hold a server gives an election (`server::LEADER_HOLD`).
const RETRY_HOLD: Duration = Duration::from_secs(5);
/// The first pause between retries; it doubles up to `RETRY_PAUSE_MAX`, so a cluster that is down
/// entirely is not hammered.
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(50);
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// How long past its wait a call may take: the server may hold it for an election (5 s) and forward
/// a barrier or a write to its leader (up to 10 s) before it answers.
const CALL_MARGIN: Duration = Duration::from_secs(30);
/// How long a status request to one server may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a writing agent asks which server leads, while it knows one.
const LEADER_REFRESH: Duration = Duration::from_secs(10);
/// How often it asks while it knows none (at the start, after an election, or when the last one failed a write).
const LEADER_RETRY: Duration = Duration::from_secs(1);

/// A client agent's handle on the servers. Clones share the server list and the connections.
#[derive(Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

struct Inner {
    /// Cancelled when the agent shuts down: calls in flight end with `Error::Shutdown`.
    shutdown: CancellationToken,
    /// The runtime that runs every call, and so owns every connection. Callers may run on runtimes
    /// of their own (DNS has one per thread) that end before the agent does; a connection they
    /// dialled would die with them, under the requests of everyone else sharing it.
    runtime: Option<tokio::runtime::Handle>,
    /// The known servers and the one in use.
    servers: Mutex<Servers>,
    /// Plaintext, or TLS with `verify_outgoing`.
    dialer: Arc<Dialer>,
    /// The secret the untokened calls (`write`, `query`, `txn`, `renew_session`) carry: the agent's own token, for its
    /// catalog sync and checks. Empty means the anonymous token.
    token: Mutex<String>,
}

#[derive(Default)]
struct Servers {
    /// The alive servers' RPC addresses, as last given to `set_servers`.
    addrs: Vec<SocketAddr>,
    /// The index in `addrs` of the server in use.
    current: usize,
    /// One connection per server in `addrs`, dialled on first use.
    peers: HashMap<SocketAddr, Arc<Peer>>,
    /// The leader's RPC address, as the last status answer named it; writes go there while it is listed.
    leader: Option<SocketAddr>,
    /// When a status request last went out to learn the leader.
    leader_asked: Option<Instant>,
}

/// Whether a request may run twice: decides what is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A query or status request: changes nothing, so any failure may be retried.
    Read,
    /// A write: retried only when it certainly did not reach a leader.
    Write,
}

impl Remote {
    /// A handle that knows no server yet; every request fails with `NoServers` until `set_servers`.
    ///
    /// Call it on the runtime that should run the calls (the agent's main runtime); cancelling
    /// `shutdown` ends every call in flight.
    pub fn new(shutdown: CancellationToken) -> Remote {
        Remote::with_dialer(shutdown, Dialer::plain())
    }

    /// `new`, dialling servers over TLS when `tls.verify_outgoing`: the server's certificate is verified (and must
    /// carry `server.<datacenter>.<domain>` with `verify_server_hostname`), and this agent's is presented.
    /// Fails when the datacenter and domain do not make a valid server name.
    pub fn with_tls(shutdown: CancellationToken, tls: &crate::config::RpcTls) -> Result<Remote> {
        Ok(Remote::with_dialer(shutdown, Dialer::new(Some(tls), |tls| tls.verify_outgoing)?))
    }

    /// This handle with its connections made from the local address `source` (Consul's RPC source address: the
    /// agent's bind address, so that a server sees the agent's connections come from the address it gossips on).
    /// Call it before the first request: connections already made keep their address.
    pub fn from_source(self, source: std::net::IpAddr) -> Remote {
        let dialer = Dialer::from(&self.inner.dialer, Some(source));
        Remote::with_dialer(self.inner.shutdown.clone(), dialer)
    }

    fn with_dialer(shutdown: CancellationToken, dialer: Arc<Dialer>) -> Remote {
        let inner = Inner {
            shutdown,
            runtime: tokio::runtime::Handle::try_current().ok(),
            servers: Mutex::new(Servers::default()),
            dialer,
            token: Mutex::new(String::new()),
        };
        Remote { inner: Arc::new(inner) }
    }

    /// Sets the secret the untokened calls carry (the agent token); the servers authorize them with it.
    pub fn set_token(&self, secret: &str) {
        *self.inner.token.lock().unwrap_or_else(PoisonError::into_inner) = secret.to_owned();
    }

    fn token(&self) -> String {
        self.inner.token.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the list of servers to use (the alive servers gossip knows).
    /// The server in use stays in use while it is listed; otherwise another is picked at random.
    ///
    /// A server that leaves the list has its connection closed: the calls in flight on it fail at once, and those that
    /// may run again (reads, blocking queries with what remains of their wait) move to another server. Gossip drops a
    /// server it found dead, and one that stopped answering (a cut link, a stopped process) closes nothing itself, so
    /// its calls would otherwise wait out their deadlines: 30 s past their wait.
    pub fn set_servers(&self, addrs: Vec<SocketAddr>) {
        let mut servers = self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let in_use = servers.addrs.get(servers.current).copied();
        servers.current = match in_use.and_then(|addr| addrs.iter().position(|a| *a == addr)) {
            Some(idx) => idx,
            None => random_index(addrs.len()),
        };
        let gone: Vec<SocketAddr> = servers.peers.keys().filter(|addr| !addrs.contains(addr)).copied().collect();
        let gone: Vec<Arc<Peer>> = gone.iter().filter_map(|addr| servers.peers.remove(addr)).collect();
        servers.addrs = addrs;
        drop(servers);
        for peer in gone {
            peer.close();
        }
    }

    /// The servers in use, as last given to `set_servers`.
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner).addrs.clone()
    }

    /// Proposes `cmd` through a server (which forwards it to the leader) and returns its result once
    /// it is applied, with the agent's token (`set_token`). Retried on another server only when it certainly was not applied.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult> {
        self.write_as(&self.token(), cmd).await
    }

    /// Evaluates `query` on a server after the barrier `consistency` asks for, with the agent's token, blocking there
    /// as `Server::query` does when `min_index > 0`. `ReadMeta` is the answering server's.
    pub async fn query(
        &self,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta)> {
        let (answer, index, meta, _) = self.query_as(&self.token(), consistency, min_index, wait, query).await?;
        Ok((answer, index, meta))
    }

    /// Runs a transaction through a server (which forwards it to the leader), with the agent's token.
    pub async fn txn(&self, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        self.txn_as(&self.token(), ops, now_ms).await
    }

    /// Renews a session through a server (which forwards to the leader), with the agent's token.
    pub async fn renew_session(&self, id: &str) -> Result<Option<Session>> {
        self.renew_session_as(&self.token(), id).await
    }

    /// `write` on behalf of the caller holding `token`: the server authorizes it (`Server::write_as`).
    pub async fn write_as(&self, token: &str, cmd: Command) -> Result<CommandResult> {
        let token = token.to_owned();
        self.spawn(move |remote| async move {
            let (cmd, token) = (&cmd, &token);
            let op = |peer: Arc<Peer>, _| async move { client::write_as(&peer, token, cmd.clone(), CALL_MARGIN).await };
            remote.failover(Kind::Write, Duration::ZERO, op).await
        })
        .await
    }

    /// `query` on behalf of the caller holding `token`: the server authorizes and filters it (`Server::query_as`).
    pub async fn query_as(
        &self,
        token: &str,
        consistency: Consistency,
        min_index: u64,
        wait: Duration,
        query: &Query,
    ) -> Result<(Answer, u64, ReadMeta, bool)> {
        let (query, token) = (query.clone(), token.to_owned());
        let wait = if min_index == 0 { Duration::ZERO } else { wait };
        self.spawn(move |remote| async move {
            let (query, token) = (&query, &token);
            let op = |peer: Arc<Peer>, elapsed: Duration| async move {
                let wait = wait.saturating_sub(elapsed);
                client::query_as(&peer, token, consistency, min_index, wait, query, wait + CALL_MARGIN).await
            };
            remote.failover(Kind::Read, wait, op).await
        })
        .await
    }

    /// `txn` on behalf of the caller holding `token` (`Server::txn_as`).
    pub async fn txn_as(&self, token: &str, ops: Vec<TxnOp>, now_ms: u64) -> Result<TxnOutcome> {
        let token = token.to_owned();
        self.spawn(move |remote| async move {
            let (ops, token) = (&ops, &token);
            let op = |peer: Arc<Peer>, _| async move {
                client::txn_as(&peer, token, ops.clone(), now_ms, CALL_MARGIN).await
            };
            remote.failover(Kind::Write, Duration::ZERO, op).await
        })
        .await
    }

    /// `renew_session` on behalf of the caller holding `token` (`Server::renew_session_as`).
    pub async fn renew_session_as(&self, token: &str, id: &str) -> Result<Option<Session>> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.spawn(move |remote| async move {
            let (id, token) = (&id, &token);
            let op = |peer: Arc<Peer>, _| async move { client::renew_session_as(&peer, token, id, CALL_MARGIN).await };
            remote.failover(Kind::Read, Duration::ZERO, op).await
        })
        .await
    }

    /// Logs in through a server, which verifies the bearer token and mints the token (`Server::login`); a client never mints.
    pub async fn login(&self, login: &Login) -> Result<AclToken> {
        let login = login.clone();
        self.spawn(move |remote| async move {
            let login = &login;
            let op = |peer: Arc<Peer>, _| async move { client::login(&peer, login, CALL_MARGIN).await };
            remote.failover(Kind::Write, Duration::ZERO, op).await
        })
        .await
    }

    /// Deletes the login token `token` through a server (`Server::logout`).
    pub async fn logout(&self, token: &str) -> Result<()> {
        let token = token.to_owned();
        self.spawn(move |remote| async move {
            let token = &token;
            let op = |peer: Arc<Peer>, _| async move { client::logout(&peer, token, CALL_MARGIN).await };
            remote.failover(Kind::Write, Duration::ZERO, op).await
        })
        .await
    }

    /// An operator request on behalf of the caller holding `token` (`Server::operator_as`); like a write, sent again
    /// elsewhere only when it certainly never reached a leader.
    pub async fn operator_as(&self, token: &str, request: &OperatorRequest) -> Result<OperatorReply> {
        let (token, request) = (token.to_owned(), request.clone());
        self.spawn(move |remote| async move {
            let (token, request) = (&token, &request);
            let op = |peer: Arc<Peer>, _| async move { client::operator(&peer, token, request, CALL_MARGIN).await };
            remote.failover(Kind::Write, Duration::ZERO, op).await
        })
        .await
    }

    /// The snapshot archive of a server's applied state and the index it covers, for the caller holding `token`
    /// (`Server::save_snapshot_as`): the server builds it once and this reads it in chunks over the same connection,
    /// since a client's RPC frames are bounded. A server that fails midway is left for the next, which starts over.
    pub async fn save_snapshot_as(&self, token: &str, consistency: Consistency) -> Result<(Vec<u8>, u64)> {
        let token = token.to_owned();
        self.spawn(move |remote| async move {
            let token = &token;
            let op = |peer: Arc<Peer>, _| async move {
                let (handle, len, index) = client::snapshot_open(&peer, token, consistency, CALL_MARGIN).await?;
                // The length is the server's claim: grow with the bytes that actually come.
                let mut archive = Vec::with_capacity(len.min(16 << 20) as usize);
                while (archive.len() as u64) < len {
                    let offset = archive.len() as u64;
                    let bytes = client::snapshot_read(&peer, &handle, offset, CALL_MARGIN).await?;
                    if bytes.is_empty() {
                        return Err(Failure::Protocol(format!("snapshot ended at {offset} of {len} bytes")));
                    }
                    archive.extend_from_slice(&bytes);
                }
                Ok((archive, index))
            };
            remote.failover(Kind::Read, Duration::ZERO, op).await
        })
        .await
    }

    /// Replaces the whole replicated state with `state` for the caller holding `token` (`Server::restore_snapshot_as`):
    /// the same chunked restore commands, each sent as the caller's write and authorized by the server that takes it.
    pub async fn restore_snapshot_as(&self, token: &str, state: &[u8]) -> Result<()> {
        let id = uuid::Uuid::new_v4().to_string();
        crate::snapshot::restore_with(&id, state, |cmd| self.write_as(token, cmd)).await
    }

    /// The cluster as the server in use sees it.
    pub async fn status(&self) -> Result<ClusterStatus> {
        self.spawn(move |remote| async move {
            let op = |peer: Arc<Peer>, _| async move { client::status(&peer, STATUS_TIMEOUT).await };
            remote.failover(Kind::Read, Duration::ZERO, op).await
        })
        .await
    }

    /// The cluster as the server at `addr` sees it, whether or not it is in the list; asked once.
    /// `-bootstrap-expect` uses it to learn whether a server already belongs to a cluster.
    pub async fn status_of(&self, addr: SocketAddr) -> Result<ClusterStatus> {
        self.spawn(move |remote| async move {
            let listed = remote.inner.servers.lock().unwrap_or_else(PoisonError::into_inner).peers.get(&addr).cloned();
            let peer = listed.unwrap_or_else(|| Arc::new(Peer::new(addr, remote.inner.dialer.clone())));
            client::status(&peer, STATUS_TIMEOUT).await.map_err(|failure| to_error(addr, failure))
        })
        .await
    }

    /// Runs a call on the agent's runtime (see `Inner::runtime`), ending it with `Shutdown` when the
    /// agent stops and cancelling it when the caller goes away.
    ///
    /// A caller already on that runtime (every HTTP handler) runs the call in its own task: a task of the call's own
    /// cost a spawn, a copy of the call's future into it (1.4 % of a client agent's samples while it forwarded writes)
    /// and one more wake-up per call. A panic is still the call's error rather than the caller's.
    async fn spawn<T, F, Fut>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Remote) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let shutdown = self.inner.shutdown.clone();
        // Boxed: moved into `guarded` and awaited there, then `guarded` awaited again (inline or through
        // `catch_unwind`), the call would be sized into this future two and three times over, and a blocking query on
        // a client agent holds this future for its whole wait.
        let call = Box::pin(call(self.clone()));
        let guarded = async move {
            tokio::select! {
                res = call => res,
                () = shutdown.cancelled() => Err(Error::Shutdown),
            }
        };
        let Some(runtime) = &self.inner.runtime else { return guarded.await };
        if tokio::runtime::Handle::try_current().is_ok_and(|current| current.id() == runtime.id()) {
            return match std::panic::AssertUnwindSafe(guarded).catch_unwind().await {
                Ok(res) => res,
                Err(panic) => {
                    let message =
                        panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
                    Err(Error::Fatal(format!("a server call panicked: {}", message.unwrap_or("no message"))))
                }
            };
        }
        let mut task = AbortOnDrop(runtime.spawn(guarded));
        match (&mut task.0).await {
            Ok(res) => res,
            Err(e) if e.is_cancelled() => Err(Error::Shutdown),
            Err(e) => Err(Error::Fatal(format!("a server call panicked: {e}"))),
        }
    }

    /// Runs `op` on the server in use, moving to the next one and trying again while the failure is
    /// safe to retry for `kind`, until `budget + RETRY_HOLD` has passed. `op` gets the time spent so far.
    async fn failover<T, F, Fut>(&self, kind: Kind, budget: Duration, op: F) -> Result<T>
    where
        F: Fn(Arc<Peer>, Duration) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let started = Instant::now();
        let deadline = started + budget + RETRY_HOLD;
        let mut pause = RETRY_PAUSE_MIN;
        if kind == Kind::Write {
            self.learn_leader_if_due(started);
        }
        loop {
            let (addr, peer) = self.pick(kind)?;
            let failure = match op(peer, started.elapsed()).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            // A refusal of the request itself says nothing about who leads; anything else may.
            if !matches!(failure, Failure::Rejected(_) | Failure::Denied(_)) {
                self.forget_leader(addr);
            }
            if !retryable(kind, &failure) || Instant::now() + pause >= deadline {
                return Err(to_error(addr, failure));
            }
            tracing::debug!(server = %addr, ?failure, "server call failed; trying the next server");
            self.rotate(addr);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
    }

    /// The server a request of `kind` goes to and its connection: the leader for a write when one is known and
    /// listed, else the server in use; `NoServers` when none is known.
    fn pick(&self, kind: Kind) -> Result<(SocketAddr, Arc<Peer>)> {
        let mut servers = self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let in_use = *servers.addrs.get(servers.current).ok_or(Error::NoServers)?;
        let leader = servers.leader.filter(|leader| kind == Kind::Write && servers.addrs.contains(leader));
        let addr = leader.unwrap_or(in_use);
        let dialer = &self.inner.dialer;
        let peer = servers.peers.entry(addr).or_insert_with(|| Arc::new(Peer::new(addr, dialer.clone()))).clone();
        Ok((addr, peer))
    }

    /// Asks the server in use which server leads, in the background, when it is time to (see `LEADER_REFRESH`).
    fn learn_leader_if_due(&self, now: Instant) {
        {
            let mut servers = self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner);
            let every = if servers.leader.is_some() { LEADER_REFRESH } else { LEADER_RETRY };
            if servers.leader_asked.is_some_and(|asked| now.duration_since(asked) < every) {
                return;
            }
            servers.leader_asked = Some(now);
        }
        let remote = self.clone();
        let learn = async move {
            // A failed status request leaves what is known; the next write after `LEADER_RETRY` asks again.
            if let Ok(status) = remote.status().await {
                remote.inner.servers.lock().unwrap_or_else(PoisonError::into_inner).leader = status.leader;
            }
        };
        match &self.inner.runtime {
            Some(runtime) => drop(runtime.spawn(learn)),
            None => drop(tokio::spawn(learn)),
        }
    }

    /// A request to `addr` failed: if it was the leader we knew, we no longer know one.
    fn forget_leader(&self, addr: SocketAddr) {
        let mut servers = self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner);
        if servers.leader == Some(addr) {
            servers.leader = None;
        }
    }

    /// The servers this handle has dialled (a connection is made on first use).
    #[cfg(test)]
    fn dialled(&self) -> Vec<SocketAddr> {
        self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner).peers.keys().copied().collect()
    }

    /// The leader writes go to, when known.
    #[cfg(test)]
    fn known_leader(&self) -> Option<SocketAddr> {
        self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner).leader
    }

    /// Moves on from `failed`, unless another call already did.
    fn rotate(&self, failed: SocketAddr) {
        let mut servers = self.inner.servers.lock().unwrap_or_else(PoisonError::into_inner);
        if servers.addrs.get(servers.current) == Some(&failed) {
            servers.current = (servers.current + 1) % servers.addrs.len();
        }
    }
}

/// Whether a request of `kind` may be sent again after `failure`.
fn retryable(kind: Kind, failure: &Failure) -> bool {
    match failure {
        // Nothing was sent, or the server refused before appending anything.
        Failure::Unreachable(_) | Failure::NoLeader => true,
        // The request may have been served: only a read can safely run again.
        Failure::Lost { .. } | Failure::Unavailable(_) => kind == Kind::Read,
        Failure::Rejected(_) | Failure::Indeterminate(_) | Failure::Protocol(_) | Failure::Denied(_) => false,
    }
}

fn to_error(addr: SocketAddr, failure: Failure) -> Error {
    match failure {
        Failure::NoLeader => Error::NoLeader,
        Failure::Denied(err) => err,
        Failure::Rejected(why) => Error::Rejected(why),
        Failure::Indeterminate(why) => Error::Indeterminate(why),
        Failure::Lost { timeout: Some(timeout), .. } => Error::Timeout(timeout),
        Failure::Unreachable(message)
        | Failure::Lost { message, .. }
        | Failure::Unavailable(message)
        | Failure::Protocol(message) => Error::Rpc { addr, message },
    }
}

/// A random index below `len` (0 when empty), so that clients spread over the servers.
/// std's hasher keys are random per process and per call, which is all the randomness this needs.
fn random_index(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let draw = std::hash::RandomState::new().hash_one(std::time::SystemTime::now());
    (draw % len as u64) as usize
}

/// Aborts a spawned call when its caller stops waiting for it (an HTTP client went away), so a
/// blocking query does not stay parked on a server for nobody.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
