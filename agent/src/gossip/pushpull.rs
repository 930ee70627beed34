//! TCP push/pull: the full-state exchange that joins a node to a cluster and, run periodically with a random member,
//! repairs whatever UDP gossip missed (memberlist's anti-entropy).
//!
//! One exchange is one connection: the initiator sends its [`PushPull`], the responder checks it (datacenter, node-name
//! conflict), merges it and answers with its own state, or with a [`Refusal`] having merged nothing; the initiator then
//! runs the same checks on the answer before merging it. Each side reads at most [`MAX_FRAME`] bytes per frame and
//! gives up after [`EXCHANGE_TIMEOUT`]; anything that is not a well-formed frame ends the connection.
//! With encryption every frame is sealed, and one that fails authentication (or a plaintext one while
//! `verify_incoming` holds) ends the connection before anything in it is decoded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::actor::Command;
use super::error::GossipError;
use super::identity::NodeId;
use super::keyring::{Crypto, SEAL_OVERHEAD};
use super::wire::{
    FRAME_HEADER_LEN, FrameHeader, MAX_FRAME, PushPull, Refusal, Reply, WireState, frame, parse_frame_header,
    sealed_frame_header,
};

/// How long a whole exchange (connect, send, receive) may take, on either side.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Push/pull connections served at once; more are closed at once (joins retry, periodic exchanges come back).
const MAX_CONNECTIONS: usize = 64;

/// Runs one exchange with the gossip port at `target`.
pub(crate) async fn exchange(target: SocketAddr, request: &PushPull, shared: &Shared) -> Result<Reply, GossipError> {
    let attempt = async {
        let mut stream = TcpStream::connect(target).await.map_err(|error| GossipError::unreachable(&error))?;
        write_message(&mut stream, request, shared).await?;
        read_message::<_, Reply>(&mut stream, shared).await
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(GossipError::Timeout { after: EXCHANGE_TIMEOUT }))
}

/// Accepts push/pull connections until `shutdown`, each served by a task of `tasks`.
pub(crate) async fn serve(
    listener: TcpListener,
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning on the error.
                tracing::warn!(%error, "gossip: cannot accept a push/pull connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "gossip: too many push/pull connections, closing this one");
            continue;
        };
        let (commands, shared, shutdown) = (commands.clone(), shared.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = shutdown.cancelled() => {}
                served = tokio::time::timeout(EXCHANGE_TIMEOUT, respond(stream, peer, &commands, &shared)) => {
                    match served {
                        Ok(Ok(())) => {}
                        Ok(Err(error @ GossipError::Unauthenticated { .. })) => {
                            if shared.crypto.first_rejection(peer.ip()) {
                                tracing::warn!(%peer, "gossip: refused a push/pull from {peer}: {error} (further ones are only counted)");
                            }
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "gossip: push/pull from {peer} failed"),
                        Err(_) => tracing::debug!(%peer, "gossip: push/pull from {peer} timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one incoming exchange: read the request, let the actor check and merge it, answer.
async fn respond(
    mut stream: TcpStream,
    peer: SocketAddr,
    commands: &mpsc::Sender<Command>,
    shared: &Shared,
) -> Result<(), GossipError> {
    let request: PushPull = read_message(&mut stream, shared).await?;
    let (reply_tx, reply_rx) = oneshot::channel();
    commands
        .send(Command::Incoming { from: peer, remote: request, reply: reply_tx })
        .await
        .map_err(|_| GossipError::Shutdown)?;
    let reply = match reply_rx.await.map_err(|_| GossipError::Shutdown)? {
        Ok(state) => Reply::Accepted(state),
        Err(refusal) => Reply::Refused(refusal),
    };
    write_message(&mut stream, &reply, shared).await?;
    stream.shutdown().await.map_err(|error| GossipError::unreachable(&error))
}

/// The responder's checks on an incoming request: same datacenter, and no other live member under the sender's name.
pub(crate) fn check_request<'a>(
    own: &NodeId,
    datacenter: &str,
    members: impl IntoIterator<Item = &'a foca::Member<NodeId>>,
    request: &PushPull,
) -> Result<(), Refusal> {
    if request.datacenter != datacenter {
        return Err(Refusal::DatacenterMismatch { responder: datacenter.to_owned() });
    }
    let sender = &request.sender;
    if sender.name == own.name && sender.addr != own.addr {
        return Err(Refusal::NameInUse { name: sender.name.to_string(), addr: own.addr });
    }
    let holder = members.into_iter().find(|member| {
        member.id().name == sender.name && member.id().addr != sender.addr && member.state() != foca::State::Down
    });
    match holder {
        Some(holder) => Err(Refusal::NameInUse { name: sender.name.to_string(), addr: holder.id().addr }),
        None => Ok(()),
    }
}

/// The initiator's checks on the responder's answer: same datacenter, and nobody else alive under our name.
pub(crate) fn check_reply(
    own: &NodeId,
    datacenter: &str,
    from: SocketAddr,
    reply: &PushPull,
) -> Result<(), GossipError> {
    if reply.datacenter != datacenter {
        return Err(GossipError::DatacenterMismatch {
            ours: datacenter.to_owned(),
            theirs: reply.datacenter.clone(),
            addr: from,
        });
    }
    let name_in_use = |id: &NodeId| id.name == own.name && id.addr != own.addr;
    if name_in_use(&reply.sender) {
        return Err(GossipError::NameConflict { name: own.name.to_string(), addr: reply.sender.addr });
    }
    match reply.members.iter().find(|member| name_in_use(&member.id) && member.state != WireState::Down) {
        Some(holder) => Err(GossipError::NameConflict { name: own.name.to_string(), addr: holder.id.addr }),
        None => Ok(()),
    }
}

/// The error an initiator reports for a refusal from the responder at `from`.
pub(crate) fn refusal_error(refusal: Refusal, datacenter: &str, from: SocketAddr) -> GossipError {
    match refusal {
        Refusal::DatacenterMismatch { responder } => {
            GossipError::DatacenterMismatch { ours: datacenter.to_owned(), theirs: responder, addr: from }
        }
        Refusal::NameInUse { name, addr } => GossipError::NameConflict { name, addr },
        Refusal::Left => GossipError::RemoteLeft { addr: from },
    }
}

/// Describes a refusal for the responder's own log.
pub(crate) fn describe_refusal(refusal: &Refusal, request: &PushPull) -> String {
    match refusal {
        Refusal::DatacenterMismatch { responder } => format!(
            "datacenter mismatch: this agent is in {responder:?}, {} is in {:?}",
            request.sender.addr, request.datacenter
        ),
        Refusal::NameInUse { name, addr } => {
            format!("{} claims node name {name:?}, which is in use by {addr}", request.sender.addr)
        }
        Refusal::Left => "this agent has left the cluster".to_owned(),
    }
}

async fn write_message<S, T>(stream: &mut S, message: &T, shared: &Shared) -> Result<(), GossipError>
where
    S: AsyncWrite + Unpin,
    T: Serialize,
{
    let payload = postcard::to_stdvec(message)
        .map_err(|error| GossipError::Protocol { reason: format!("cannot encode the push/pull state: {error}") })?;
    let too_large = || GossipError::Protocol {
        reason: format!("the push/pull state is {} bytes, over the {MAX_FRAME}-byte limit", payload.len()),
    };
    let framed = if shared.crypto.seals_outgoing() {
        if payload.len() > MAX_FRAME {
            return Err(too_large());
        }
        let header = sealed_frame_header(payload.len() + SEAL_OVERHEAD).ok_or_else(too_large)?;
        shared
            .crypto
            .seal(&header, &payload, None)
            .ok_or_else(|| GossipError::Protocol { reason: "cannot seal the push/pull state".to_owned() })?
    } else {
        frame(&payload).ok_or_else(too_large)?
    };
    stream.write_all(&framed).await.map_err(|error| GossipError::unreachable(&error))?;
    stream.flush().await.map_err(|error| GossipError::unreachable(&error))?;
    shared.counters.tcp_sent(framed.len());
    Ok(())
}

async fn read_message<S, T>(stream: &mut S, shared: &Shared) -> Result<T, GossipError>
where
    S: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0u8; FRAME_HEADER_LEN];
    stream.read_exact(&mut header).await.map_err(|error| GossipError::unreachable(&error))?;
    let (len, sealed) = check_header(&header, &shared.crypto).inspect_err(|error| count_rejection(error, shared))?;
    // Grow the buffer as bytes arrive rather than trusting the announced length with an allocation up front.
    let mut payload = Vec::new();
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut payload)
        .await
        .map_err(|error| GossipError::unreachable(&error))?;
    if payload.len() != len {
        return Err(GossipError::unreachable(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof)));
    }
    shared.counters.tcp_received(FRAME_HEADER_LEN + len);
    decode_payload(&header, payload, sealed, &shared.crypto).inspect_err(|error| count_rejection(error, shared))
}

fn count_rejection(error: &GossipError, shared: &Shared) {
    if matches!(error, GossipError::Unauthenticated { .. }) {
        shared.counters.tcp_rejected();
    }
}

/// A frame header's verdict, before a payload byte is read: how many bytes to read and whether they are sealed.
pub(crate) fn check_header(header: &[u8; FRAME_HEADER_LEN], crypto: &Crypto) -> Result<(usize, bool), GossipError> {
    match parse_frame_header(header) {
        FrameHeader::Len(_) if !crypto.accepts_plaintext() => Err(GossipError::Unauthenticated {
            reason: "plaintext gossip refused: this agent requires encryption (encrypt_verify_incoming)",
        }),
        FrameHeader::Len(len) => Ok((len, false)),
        FrameHeader::Sealed(len) => Ok((len, true)),
        FrameHeader::NotGossip => Err(GossipError::Protocol { reason: "not a roster gossip port".to_owned() }),
        FrameHeader::Version(version) => Err(GossipError::Protocol {
            reason: format!("gossip protocol version {version}, this agent speaks {}", super::wire::PROTOCOL),
        }),
        FrameHeader::TooLarge(len) => {
            Err(GossipError::Protocol { reason: format!("a {len}-byte push/pull frame, over the limit") })
        }
    }
}

/// Opens (when `sealed`) and decodes a whole frame payload that [`check_header`] let through.
pub(crate) fn decode_payload<T: DeserializeOwned>(
    header: &[u8; FRAME_HEADER_LEN],
    payload: Vec<u8>,
    sealed: bool,
    crypto: &Crypto,
) -> Result<T, GossipError> {
    let payload = if sealed {
        crypto
            .open(header, &payload)
            .ok_or(GossipError::Unauthenticated {
                reason: "gossip message failed authentication: no installed key opens it (wrong `encrypt` key?)",
            })?
            .0
    } else {
        payload
    };
    postcard::from_bytes(&payload)
        .map_err(|error| GossipError::Protocol { reason: format!("malformed push/pull message: {error}") })
}

#[cfg(test)]
mod tests {
    use super::super::wire::WireMember;
    use super::*;

    fn id(name: &str, last_octet: u8) -> NodeId {
        NodeId { name: name.into(), addr: SocketAddr::from(([127, 0, 0, last_octet], 8301)), generation: 1 }
    }

    fn state(sender: NodeId, datacenter: &str, members: Vec<WireMember>) -> PushPull {
        PushPull {
            datacenter: datacenter.into(),
            sender,
            sender_incarnation: 0,
            join: true,
            members,
            metas: Vec::new(),
            leaves: Vec::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn responder_refuses_other_datacenters_and_taken_names() {
        let own = id("a", 1);
        let alive_b = foca::Member::alive(id("b", 2));
        let down_c = foca::Member::down(id("c", 3));
        let members = [alive_b, down_c];
        let check = |request: &PushPull| check_request(&own, "dc1", &members, request);

        assert_eq!(check(&state(id("d", 4), "dc1", vec![])), Ok(()));
        assert_eq!(
            check(&state(id("d", 4), "dc2", vec![])),
            Err(Refusal::DatacenterMismatch { responder: "dc1".into() })
        );
        assert_eq!(
            check(&state(id("b", 9), "dc1", vec![])),
            Err(Refusal::NameInUse { name: "b".into(), addr: id("b", 2).addr })
        );
        assert_eq!(
            check(&state(id("a", 9), "dc1", vec![])),
            Err(Refusal::NameInUse { name: "a".into(), addr: own.addr })
        );
        assert_eq!(check(&state(id("c", 9), "dc1", vec![])), Ok(()), "a failed member's name can be taken over");
        assert_eq!(check(&state(id("b", 2), "dc1", vec![])), Ok(()), "the holder itself is welcome");
    }

    #[test]
    fn initiator_refuses_a_cluster_where_its_name_is_alive_elsewhere() {
        let own = id("a", 1);
        let from = id("b", 2).addr;
        let taken = WireMember { id: id("a", 7), incarnation: 0, state: WireState::Suspect };
        let dead = WireMember { id: id("a", 8), incarnation: 0, state: WireState::Down };
        let previous_life =
            WireMember { id: NodeId { generation: 0, ..own.clone() }, incarnation: 3, state: WireState::Alive };

        assert!(check_reply(&own, "dc1", from, &state(id("b", 2), "dc1", vec![dead, previous_life])).is_ok());
        let error = check_reply(&own, "dc1", from, &state(id("b", 2), "dc1", vec![taken])).err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some(r#"node name "a" is already in use by 127.0.0.7:8301"#));
        let error = check_reply(&own, "dc2", from, &state(id("b", 2), "dc1", vec![])).err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(r#"datacenter mismatch: this agent is in "dc2", 127.0.0.2:8301 is in "dc1""#)
        );
    }
}
