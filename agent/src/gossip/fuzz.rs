//! The gossip decoders as the fuzz targets and property tests drive them: a datagram or a push/pull frame from an
//! unauthenticated peer, through the envelope, the seal and postcard, into foca and the broadcast handler.
//!
//! Each entry point takes the fuzzer's bytes whole. Its first byte sets up the receiving agent (encryption on or off,
//! `verify_incoming`) and whether the harness seals the rest with [`fuzz_key`] before handing it over: a fuzzer
//! cannot forge an AES-GCM tag, so without that it would never see what lies behind the seal. The rest is what the
//! peer sent. Each returns the furthest stage the input reached, which the seed tests pin.

use std::net::SocketAddr;

use foca::{AccumulatingRuntime, Foca, PostcardCodec};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::actor::keyops;
use super::broadcast::{Handler, SharedKnown};
use super::identity::NodeId;
use super::keyring::{Crypto, Key, Keyring};
use super::wire::{
    self, Broadcast, Datagram, FRAME_HEADER_LEN, KeyRequest, KeyResponse, PushPull, Reply, Sealed, WireState,
};
use super::{Encryption, pushpull};

/// The datacenter of the receiving agent.
pub(crate) const DATACENTER: &str = "dc1";

/// Mode bits of the first input byte.
pub(crate) const ENCRYPTED: u8 = 1;
pub(crate) const VERIFY_INCOMING: u8 = 2;
/// The harness seals the rest (a datagram's kind byte and body, or a frame's payload) with [`fuzz_key`].
pub(crate) const HARNESS_SEALS: u8 = 4;
/// A frame is read as the initiator reads the answer ([`Reply`]) rather than as the responder reads a request.
pub(crate) const AS_REPLY: u8 = 8;

/// The one key the receiving agent holds when encrypted.
pub(crate) fn fuzz_key() -> Key {
    // 16 bytes is always a valid AES key length.
    Key::from_bytes((1..=16).collect()).unwrap_or_else(|_| Key::generate())
}

/// The receiving agent's identity.
pub(crate) fn receiver() -> NodeId {
    NodeId { name: "receiver".into(), addr: SocketAddr::from(([127, 0, 0, 1], 8301)), generation: 1 }
}

/// Where every datagram comes from.
fn peer_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 8301))
}

fn receiver_crypto(mode: u8) -> Crypto {
    let encryption = (mode & ENCRYPTED != 0).then(|| Encryption {
        keyring: Keyring::in_memory(vec![fuzz_key()]),
        verify_incoming: mode & VERIFY_INCOMING != 0,
        verify_outgoing: true,
    });
    Crypto::new(encryption)
}

type Swim = Foca<NodeId, PostcardCodec, StdRng, Handler>;

/// A fresh, deterministic foca for the receiver, with the agent's own configuration and broadcast handler.
fn swim() -> (Swim, SharedKnown) {
    let known = SharedKnown::default();
    let handler = Handler { known: known.clone() };
    let config = super::health::foca_config(1, 1);
    (Foca::with_custom_broadcast(receiver(), config, StdRng::seed_from_u64(0), PostcardCodec, handler), known)
}

/// One UDP datagram from a peer, as the actor handles it.
pub(crate) fn datagram(data: &[u8]) -> &'static str {
    let Some((&mode, rest)) = data.split_first() else { return "empty" };
    let crypto = receiver_crypto(mode);
    let envelope = wire::envelope(DATACENTER);
    let sealed_envelope = wire::sealed_envelope(DATACENTER);
    let sealed;
    let received = if mode & HARNESS_SEALS != 0 {
        let sealer = receiver_crypto(ENCRYPTED);
        let Some(datagram) = sealer.seal(&sealed_envelope, rest, None) else { return "seal-failed" };
        sealed = datagram;
        sealed.as_slice()
    } else {
        rest
    };
    match wire::open_datagram(&crypto, &envelope, &sealed_envelope, received) {
        Datagram::Plain(packet) => foca_packet(packet),
        Datagram::Opened { kind: Sealed::Foca, body, .. } => foca_packet(&body),
        Datagram::Opened { kind: Sealed::KeyRequest, body, .. } => key_request(&crypto, &body),
        Datagram::Opened { kind: Sealed::KeyResponse, body, .. } => key_response(&body),
        Datagram::Opened { kind, body, .. } if kind.is_side() => side_message(kind, &body),
        Datagram::Opened { .. } => "unknown-kind",
        Datagram::Side { kind, body } => side_message(kind, body),
        Datagram::PlaintextRefused => "plaintext-refused",
        Datagram::Unauthenticated => "unauthenticated",
        Datagram::UnknownKind => "unknown-kind",
        Datagram::Foreign => "foreign",
    }
}

/// A coordinate or buddy-system message, sealed or on the side envelope.
fn side_message(kind: Sealed, body: &[u8]) -> &'static str {
    match kind {
        Sealed::CoordPing => match postcard::from_bytes::<wire::CoordPing>(body) {
            Ok(_) => "coordinate-ping",
            Err(_) => "coordinate-ping-malformed",
        },
        Sealed::CoordAck => match postcard::from_bytes::<wire::CoordAck>(body) {
            // What the actor hands the coordinate client, which refuses what it cannot use.
            Ok(ack) if ack.coord.check(roster_kv::COORDINATE_DIMENSIONS).is_ok() => "coordinate-ack",
            Ok(_) => "coordinate-ack-refused",
            Err(_) => "coordinate-ack-malformed",
        },
        Sealed::Suspected | Sealed::Refuted | Sealed::Confirm | Sealed::Failed | Sealed::Verify => {
            match postcard::from_bytes::<wire::Suspicion>(body) {
                Ok(_) => "suspicion",
                Err(_) => "suspicion-malformed",
            }
        }
        _ => "unknown-kind",
    }
}

fn foca_packet(packet: &[u8]) -> &'static str {
    let (mut foca, _known) = swim();
    let mut runtime = AccumulatingRuntime::new();
    match foca.handle_data(packet, &mut runtime) {
        Ok(()) => "foca-accepted",
        Err(_) => "foca-refused",
    }
}

fn key_request(crypto: &Crypto, body: &[u8]) -> &'static str {
    let Ok(request) = postcard::from_bytes::<KeyRequest>(body) else { return "key-request-malformed" };
    match keyops::from_wire(request.op).and_then(|op| crypto.apply(&op)) {
        Ok(_) => "key-request-applied",
        Err(_) => "key-request-refused",
    }
}

fn key_response(body: &[u8]) -> &'static str {
    let Ok(response) = postcard::from_bytes::<KeyResponse>(body) else { return "key-response-malformed" };
    let keys = response.result.map(|keys| keys.into_iter().map(Key::from_bytes).collect::<Result<Vec<_>, _>>());
    match keys {
        Ok(Ok(_)) => "key-response-keys",
        Ok(Err(_)) => "key-response-bad-key",
        Err(_) => "key-response-error",
    }
}

/// One TCP push/pull frame from a peer, read as the responder (or with [`AS_REPLY`], the initiator) reads it, then
/// checked and merged as the actor does.
pub(crate) fn frame(data: &[u8]) -> &'static str {
    let Some((&mode, rest)) = data.split_first() else { return "empty" };
    let crypto = receiver_crypto(mode);
    let sealed;
    let received = if mode & HARNESS_SEALS != 0 {
        let Some(header) = wire::sealed_frame_header(rest.len() + super::keyring::SEAL_OVERHEAD) else {
            return "too-large";
        };
        let Some(frame) = receiver_crypto(ENCRYPTED).seal(&header, rest, None) else { return "seal-failed" };
        sealed = frame;
        sealed.as_slice()
    } else {
        rest
    };
    let Some((header, payload)) = received.split_first_chunk::<FRAME_HEADER_LEN>() else { return "short-header" };
    let (len, is_sealed) = match pushpull::check_header(header, &crypto) {
        Ok(checked) => checked,
        Err(_) => return "header-refused",
    };
    // The stream ends where the input does: a payload shorter than announced is a connection closed mid-frame.
    let Some(payload) = payload.get(..len) else { return "truncated" };
    if mode & AS_REPLY != 0 {
        match pushpull::decode_payload::<Reply>(header, payload.to_vec(), is_sealed, &crypto) {
            Ok(Reply::Accepted(state)) => merge(state, true),
            Ok(Reply::Refused(refusal)) => {
                let _ = pushpull::refusal_error(refusal, DATACENTER, peer_addr());
                "refused"
            }
            Err(_) => "payload-refused",
        }
    } else {
        match pushpull::decode_payload::<PushPull>(header, payload.to_vec(), is_sealed, &crypto) {
            Ok(state) => merge(state, false),
            Err(_) => "payload-refused",
        }
    }
}

/// The actor's checks and merge of a decoded push/pull state, against a fresh receiver.
fn merge(state: PushPull, as_reply: bool) -> &'static str {
    let own = receiver();
    let checked = if as_reply {
        pushpull::check_reply(&own, DATACENTER, peer_addr(), &state).map_err(|_| ())
    } else {
        let _ = pushpull::describe_refusal(&super::wire::Refusal::Left, &state);
        pushpull::check_request(&own, DATACENTER, [], &state).map_err(|_| ())
    };
    if checked.is_err() {
        return "state-refused";
    }
    let (mut foca, known) = swim();
    let PushPull { sender, sender_incarnation, members, metas, leaves, .. } = state;
    {
        let now = tokio::time::Instant::now();
        let mut known = known.lock();
        for item in leaves.into_iter().map(Broadcast::Leave).chain(metas.into_iter().map(Broadcast::Meta)) {
            known.receive(item, now);
        }
    }
    let updates = members.into_iter().filter(|member| member.state != WireState::Down).map(foca::Member::from);
    let sender = foca::Member::new(sender, sender_incarnation, foca::State::Alive);
    let mut runtime = AccumulatingRuntime::new();
    match foca.apply_many(std::iter::once(sender).chain(updates), false, &mut runtime) {
        Ok(()) => "merged",
        Err(_) => "merge-refused",
    }
}

#[cfg(test)]
mod tests;
