//! Keyring operations across the cluster: the originating agent applies the operation to its own keyring, sends a
//! sealed [`KeyRequest`] datagram to every alive member, resends it every [`RETRY_EVERY`] to those that have not
//! answered, and reports after every member answered or [`DEADLINE`] passed, whichever comes first.
//!
//! Each member applies the request to its own keyring (and file) and answers with its keys after it, or with why it
//! refused. Applying is idempotent (installing a held key, using the primary, removing an absent key change nothing),
//! so a retried request whose first answer was lost does no harm. This is Serf's key query made direct: members are
//! known from gossip, so nothing needs flooding, and a member that misses every retry is reported, not guessed at.
//!
//! Requests are sealed with the primary key from before the operation, which every member holds even while a
//! rotation is half done; answers are sealed with the key that opened the request, which the originator holds.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::super::keyring::{Key, KeyOp};
use super::super::wire::{KeyRequest, KeyResponse, Sealed, WireKeyOp};
use super::{Actor, Due};

/// Between sends of a request to the members that have not answered yet.
const RETRY_EVERY: Duration = Duration::from_millis(300);
/// How long members have to answer before they are reported as not responding (Serf's query timeout for small
/// clusters is about 3 s).
const DEADLINE: Duration = Duration::from_secs(3);

/// What a keyring operation found on each member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringReport {
    /// The members asked, this one included (Consul's `NumNodes`).
    pub num_nodes: usize,
    /// Per member name: its keys after the operation, primary first, or its error (including "no answer").
    pub responses: BTreeMap<String, Result<Vec<Key>, String>>,
}

impl KeyringReport {
    /// The members that reported an error, with it.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.responses.iter().filter_map(|(node, result)| Some((node.as_str(), result.as_ref().err()?.as_str())))
    }
}

/// The keyring operations this agent is running.
#[derive(Default)]
pub(crate) struct KeyOps {
    running: HashMap<u64, Running>,
}

/// One operation waiting for answers.
struct Running {
    /// The encoded [`KeyRequest`], resent as is.
    request: Vec<u8>,
    /// The key every send is sealed with.
    seal_with: Option<Key>,
    /// Members that have not answered, and where to reach them.
    waiting: HashMap<Arc<str>, SocketAddr>,
    report: KeyringReport,
    deadline: Instant,
    reply: oneshot::Sender<KeyringReport>,
}

impl Actor {
    /// Applies `op` here, then asks every alive member to apply it too.
    pub(super) fn start_key_op(&mut self, op: KeyOp, reply: oneshot::Sender<KeyringReport>) {
        let seal_with = self.shared.crypto.primary();
        let local = self.shared.crypto.apply(&op);
        let own = self.foca.identity().name.to_string();
        let waiting: HashMap<Arc<str>, SocketAddr> =
            self.foca.iter_members().map(|member| (member.id().name.clone(), member.id().addr)).collect();
        let report = KeyringReport { num_nodes: waiting.len() + 1, responses: BTreeMap::from([(own, local)]) };
        if waiting.is_empty() {
            let _ = reply.send(report);
            return;
        }
        // Random, so a restarted agent never takes stray answers to its previous life's requests for its own.
        let id: u64 = self.rng.random();
        let request = match postcard::to_stdvec(&KeyRequest { id, op: to_wire(&op) }) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "gossip: cannot encode a keyring request");
                return;
            }
        };
        let now = Instant::now();
        let running = Running { request, seal_with, waiting, report, deadline: now + DEADLINE, reply };
        self.send_key_requests(&running);
        self.key_ops.running.insert(id, running);
        self.timers.push(now + RETRY_EVERY, Due::KeyOp(id));
    }

    /// Resends to the members that have not answered, or reports once the deadline has passed.
    pub(super) fn key_op_due(&mut self, id: u64, now: Instant) {
        let Some(running) = self.key_ops.running.get(&id) else { return };
        if now < running.deadline {
            self.send_key_requests(running);
            self.timers.push(now + RETRY_EVERY, Due::KeyOp(id));
            return;
        }
        if let Some(mut running) = self.key_ops.running.remove(&id) {
            for (node, _) in running.waiting.drain() {
                let silent = format!("no response within {}s", DEADLINE.as_secs());
                running.report.responses.insert(node.to_string(), Err(silent));
            }
            let _ = running.reply.send(running.report);
        }
    }

    fn send_key_requests(&self, running: &Running) {
        let mut out = Vec::new();
        let outbound = self.outbound();
        for addr in running.waiting.values() {
            outbound.send(&mut out, Sealed::KeyRequest, &running.request, *addr, running.seal_with.as_ref());
        }
    }

    /// A member's request: apply it here and answer, sealed with the key that opened the request.
    pub(super) fn on_key_request(&mut self, body: &[u8], from: SocketAddr, key_idx: usize) {
        let Ok(request) = postcard::from_bytes::<KeyRequest>(body) else {
            tracing::debug!(%from, "gossip: dropped a malformed keyring request");
            return;
        };
        let answer_with = self.shared.crypto.key_at(key_idx);
        let result = from_wire(request.op)
            .and_then(|op| self.shared.crypto.apply(&op))
            .map(|keys| keys.iter().map(|key| key.as_bytes().to_vec()).collect());
        let response = KeyResponse { id: request.id, node: self.foca.identity().name.to_string(), result };
        match postcard::to_stdvec(&response) {
            Ok(encoded) => {
                self.outbound().send(&mut Vec::new(), Sealed::KeyResponse, &encoded, from, answer_with.as_ref())
            }
            Err(error) => tracing::warn!(%error, "gossip: cannot encode a keyring response"),
        }
    }

    /// A member's answer to one of our requests; the report goes out once every member answered.
    pub(super) fn on_key_response(&mut self, body: &[u8]) {
        let Ok(response) = postcard::from_bytes::<KeyResponse>(body) else {
            tracing::debug!("gossip: dropped a malformed keyring response");
            return;
        };
        let Some(running) = self.key_ops.running.get_mut(&response.id) else { return };
        if running.waiting.remove(response.node.as_str()).is_none() {
            return;
        }
        let result = response.result.and_then(|keys| {
            keys.into_iter().map(|bytes| Key::from_bytes(bytes).map_err(|error| error.to_string())).collect()
        });
        running.report.responses.insert(response.node, result);
        if running.waiting.is_empty()
            && let Some(running) = self.key_ops.running.remove(&response.id)
        {
            let _ = running.reply.send(running.report);
        }
    }
}

fn to_wire(op: &KeyOp) -> WireKeyOp {
    match op {
        KeyOp::List => WireKeyOp::List,
        KeyOp::Install(key) => WireKeyOp::Install(key.as_bytes().to_vec()),
        KeyOp::Use(key) => WireKeyOp::Use(key.as_bytes().to_vec()),
        KeyOp::Remove(key) => WireKeyOp::Remove(key.as_bytes().to_vec()),
    }
}

pub(crate) fn from_wire(op: WireKeyOp) -> Result<KeyOp, String> {
    let key = |bytes| Key::from_bytes(bytes).map_err(|error| error.to_string());
    Ok(match op {
        WireKeyOp::List => KeyOp::List,
        WireKeyOp::Install(bytes) => KeyOp::Install(key(bytes)?),
        WireKeyOp::Use(bytes) => KeyOp::Use(key(bytes)?),
        WireKeyOp::Remove(bytes) => KeyOp::Remove(key(bytes)?),
    })
}
