//! Gossip wire format, version 1: the UDP envelope around foca's packets, the custom broadcasts, and the TCP push/pull frames.
//!
//! Everything here is postcard-encoded, and every datagram or frame starts with [`MAGIC`] and [`PROTOCOL`], so a
//! later version can be told apart (and refused with a clear error) instead of being misread.
//! Decoding never trusts a length: frames are bounded by [`MAX_FRAME`], datagrams by foca's `max_packet_size`.
//!
//! With gossip encryption, the version byte is [`SEALED`] instead and the rest is sealed (see `keyring`): a datagram
//! is `envelope | nonce | AES-GCM(kind byte | body)`, where the kind tells a foca packet from a keyring request or
//! response ([`Sealed`]); a frame is `magic | SEALED | length | nonce | AES-GCM(payload)`. Either way the clear
//! header is the associated data, so it cannot be changed in flight either.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::MemberMeta;
use super::identity::NodeId;
use super::keyring::Crypto;

/// The first bytes of every roster gossip datagram and push/pull frame.
pub(crate) const MAGIC: [u8; 2] = *b"rG";
/// The wire version this build speaks; a peer speaking another one is refused.
pub(crate) const PROTOCOL: u8 = 1;
/// The version byte of a sealed datagram or frame.
pub(crate) const SEALED: u8 = 0x80 | PROTOCOL;
/// The version byte of a plaintext datagram that is not a foca packet (a coordinate ping or ack, see
/// `actor/coords`): a kind byte follows the envelope, as inside a seal. Older builds take it for foreign and drop it.
pub(crate) const SIDE: u8 = 0x40 | PROTOCOL;
/// The UDP envelope: magic, version, then a 32-bit tag of the datacenter name.
pub(crate) const ENVELOPE_LEN: usize = 7;
/// The largest UDP datagram we send, envelope included (memberlist's `UDPBufferSize`: fits a 1500-byte MTU).
pub(crate) const MAX_DATAGRAM: usize = 1400;
/// The largest foca packet: what is left of a datagram once the envelope and, when sealed, the kind byte, the nonce
/// and the tag are in. Always sized for sealing, so turning encryption on changes no packing decision.
pub(crate) const MAX_PACKET: usize = MAX_DATAGRAM - ENVELOPE_LEN - 1 - super::keyring::SEAL_OVERHEAD;
/// The largest push/pull frame either side accepts: about 5,000 members with full metadata.
pub(crate) const MAX_FRAME: usize = 4 << 20;
/// The TCP frame header: magic, version, then a big-endian u32 payload length.
pub(crate) const FRAME_HEADER_LEN: usize = 7;

/// The envelope every datagram of this datacenter starts with.
///
/// The datacenter tag makes a node drop datagrams from another datacenter's gossip pool outright (memberlist has the
/// same idea as its "label"); it is not authentication.
pub(crate) fn envelope(datacenter: &str) -> [u8; ENVELOPE_LEN] {
    let tag = fnv1a(datacenter.as_bytes()).to_be_bytes();
    [MAGIC[0], MAGIC[1], PROTOCOL, tag[0], tag[1], tag[2], tag[3]]
}

/// The envelope of a sealed datagram of this datacenter.
pub(crate) fn sealed_envelope(datacenter: &str) -> [u8; ENVELOPE_LEN] {
    let mut envelope = envelope(datacenter);
    envelope[2] = SEALED;
    envelope
}

/// What a sealed datagram carries: its first byte, inside the seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sealed {
    /// A foca packet.
    Foca = 0,
    /// A [`KeyRequest`].
    KeyRequest = 1,
    /// A [`KeyResponse`].
    KeyResponse = 2,
    /// A [`CoordPing`].
    CoordPing = 3,
    /// A [`CoordAck`].
    CoordAck = 4,
    /// A [`Suspicion`], sent to the member it is about.
    Suspected = 5,
    /// A [`Suspicion`] answered by the member it was about, with the incarnation that refutes it.
    Refuted = 6,
    /// A [`Suspicion`] sent to every other member by one whose own probe of the suspect failed: a Lifeguard
    /// confirmation, which shortens the receivers' suspicion timeout.
    Confirm = 7,
    /// A [`Suspicion`] whose timeout ran out at the sender, sent straight to the servers: the member is down.
    Failed = 8,
    /// A [`Suspicion`] sent by a member whose probe of the suspect failed to a few others: a confirmation that also
    /// asks the receiver to probe the suspect itself and confirm back if it stays silent (`actor/verify`).
    Verify = 9,
}

impl Sealed {
    pub(crate) fn from_byte(byte: u8) -> Option<Sealed> {
        match byte {
            0 => Some(Sealed::Foca),
            1 => Some(Sealed::KeyRequest),
            2 => Some(Sealed::KeyResponse),
            3 => Some(Sealed::CoordPing),
            4 => Some(Sealed::CoordAck),
            5 => Some(Sealed::Suspected),
            6 => Some(Sealed::Refuted),
            7 => Some(Sealed::Confirm),
            8 => Some(Sealed::Failed),
            9 => Some(Sealed::Verify),
            _ => None,
        }
    }

    /// Whether this kind may travel in plaintext on the side envelope when gossip is not encrypted: the coordinate
    /// and suspicion messages; foca packets have their own envelope, keyring messages are never sent in plaintext.
    pub(crate) fn is_side(self) -> bool {
        matches!(
            self,
            Sealed::CoordPing
                | Sealed::CoordAck
                | Sealed::Suspected
                | Sealed::Refuted
                | Sealed::Confirm
                | Sealed::Failed
                | Sealed::Verify
        )
    }
}

/// What a received datagram is, decided from its envelope and seal before anything in it is decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Datagram<'a> {
    /// A plaintext foca packet this agent accepts.
    Plain(&'a [u8]),
    /// A sealed message an installed key opened: its kind, its body, and the index of the key (primary first).
    Opened { kind: Sealed, body: Vec<u8>, key_idx: usize },
    /// Plaintext, while this agent requires encryption.
    PlaintextRefused,
    /// Sealed, but no installed key opens it (or encryption is off here).
    Unauthenticated,
    /// A plaintext coordinate message this agent accepts: its kind and body.
    Side { kind: Sealed, body: &'a [u8] },
    /// Opened, but with a kind byte this build does not know (or, in plaintext, one that must be sealed).
    UnknownKind,
    /// Not this datacenter's gossip (another datacenter, another version, or not gossip at all).
    Foreign,
}

/// Sorts a received datagram by the envelopes of this agent's datacenter, opening it when it is sealed.
pub(crate) fn open_datagram<'a>(
    crypto: &Crypto,
    envelope: &[u8; ENVELOPE_LEN],
    sealed_envelope: &[u8; ENVELOPE_LEN],
    data: &'a [u8],
) -> Datagram<'a> {
    if let Some(packet) = data.strip_prefix(envelope.as_slice()) {
        return if crypto.accepts_plaintext() { Datagram::Plain(packet) } else { Datagram::PlaintextRefused };
    }
    let mut side_envelope = *envelope;
    side_envelope[2] = SIDE;
    if let Some(side) = data.strip_prefix(side_envelope.as_slice()) {
        if !crypto.accepts_plaintext() {
            return Datagram::PlaintextRefused;
        }
        return match side.split_first() {
            Some((&byte, body)) => match Sealed::from_byte(byte) {
                Some(kind) if kind.is_side() => Datagram::Side { kind, body },
                _ => Datagram::UnknownKind,
            },
            None => Datagram::UnknownKind,
        };
    }
    let Some(sealed) = data.strip_prefix(sealed_envelope.as_slice()) else { return Datagram::Foreign };
    let Some((mut body, key_idx)) = crypto.open(sealed_envelope, sealed) else { return Datagram::Unauthenticated };
    match body.first().copied().and_then(Sealed::from_byte) {
        Some(kind) => {
            body.remove(0);
            Datagram::Opened { kind, body, key_idx }
        }
        None => Datagram::UnknownKind,
    }
}

/// A keyring operation sent by the agent an operator asked to every alive member; only ever sent sealed, so only a
/// holder of a key can change another agent's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyRequest {
    /// Matches the responses to the operation; retries reuse it.
    pub(crate) id: u64,
    pub(crate) op: WireKeyOp,
}

/// The keyring operations; keys travel as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireKeyOp {
    List,
    Install(Vec<u8>),
    Use(Vec<u8>),
    Remove(Vec<u8>),
}

/// A coordinate probe: "answer with your coordinate". Sent to one random member per probe period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CoordPing {
    /// Matches the ack to the ping, and so to the time it was sent.
    pub(crate) seq: u64,
}

/// The answer to a [`CoordPing`]: who answered and its coordinate (what Serf puts in memberlist's ack payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CoordAck {
    pub(crate) seq: u64,
    pub(crate) node: String,
    pub(crate) coord: roster_kv::Coordinate,
}

/// Lifeguard's buddy system (see `actor/buddy`): "you are suspected at this incarnation", sent by the member whose
/// probe failed to the suspect ([`Sealed::Suspected`]), and "this incarnation refutes it", the suspect's answer
/// ([`Sealed::Refuted`]). The same record is "my probe of it failed too" to the other members ([`Sealed::Confirm`])
/// and "my suspicion of it timed out: it is down" to the servers ([`Sealed::Failed`]), and "my probe failed: probe
/// it yourself" to a few members ([`Sealed::Verify`]); the sender of those three is whoever the datagram's source
/// address belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Suspicion {
    /// The suspected member's name and generation: a suspicion about an earlier life is not ours to refute.
    pub(crate) name: String,
    pub(crate) generation: u64,
    /// Foca's refutation counter: the suspected one in [`Sealed::Suspected`], the refuting one in [`Sealed::Refuted`].
    pub(crate) incarnation: u16,
}

/// One member's answer to a [`KeyRequest`]: its keys after the operation (primary first), or why it refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyResponse {
    pub(crate) id: u64,
    pub(crate) node: String,
    pub(crate) result: Result<Vec<Vec<u8>>, String>,
}

/// 32-bit FNV-1a: tiny, stable across builds and platforms, and good enough to tell datacenter names apart.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193))
}

/// A custom broadcast, disseminated by foca piggybacked on its own messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Broadcast {
    /// A node's metadata for one of its generations.
    Meta(MetaRecord),
    /// A node is leaving (graceful leave) or was force-left: once down it shows as left, not failed.
    Leave(LeaveIntent),
    /// A user event (`PUT /v1/event/fire/:name`). New variants go at the end: postcard numbers them in order.
    Event(UserEvent),
}

/// A user event as it travels: every agent that receives it checks the filters against itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    /// A UUID, which de-duplicates deliveries.
    pub id: String,
    /// The event's name.
    pub name: String,
    /// The opaque payload (the agent allows at most 512 bytes, Serf's default limit).
    pub payload: Vec<u8>,
    /// A regular expression the receiving node's name must match; empty matches everything.
    pub node_filter: String,
    /// A regular expression one of the receiving node's services must match; empty matches everything.
    pub service_filter: String,
    /// With `service_filter`: a regular expression one of that service's tags must match.
    pub tag_filter: String,
    /// The Lamport time the firing agent gave it.
    pub ltime: u64,
}

/// The most bytes a user event may take as an encoded broadcast, Serf's "sane limit after encoding" sized for us.
///
/// A custom broadcast travels after a header holding two identities (names up to 128 bytes, IPv6 addresses: about
/// 330 bytes) inside a 1400-byte datagram; an item that can never fit would be queued and never sent.
pub const MAX_EVENT_BYTES: usize = 1000;

impl UserEvent {
    /// Its size as a gossip broadcast, which [`MAX_EVENT_BYTES`] bounds.
    pub fn encoded_len(&self) -> usize {
        postcard::to_stdvec(&Broadcast::Event(self.clone())).map_or(usize::MAX, |bytes| bytes.len())
    }
}

/// One node's metadata, as of one generation of its identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaRecord {
    pub(crate) name: String,
    pub(crate) generation: u64,
    pub(crate) meta: MemberMeta,
}

/// "Node `name`, generation `generation`, is leaving": a down member it matches shows as left.
///
/// `incarnation` bounds the refutation counter it applies to, so a force-leave issued against a failed life does not
/// later turn into "left" a member that had refuted the failure in the meantime; a graceful leave uses `u16::MAX`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaveIntent {
    pub(crate) name: String,
    pub(crate) generation: u64,
    pub(crate) incarnation: u16,
    /// Forget the member at once instead of keeping it as left until the tombstone timeout.
    pub(crate) prune: bool,
}

impl LeaveIntent {
    /// Whether this intent turns a down member with this identity and refutation counter into a left one.
    pub(crate) fn covers(&self, id: &NodeId, incarnation: u16) -> bool {
        *self.name == *id.name && self.generation == id.generation && incarnation <= self.incarnation
    }

    /// Newer information about the same node: a later life, a wider incarnation bound, or a prune.
    pub(crate) fn supersedes(&self, other: &LeaveIntent) -> bool {
        self.name == other.name
            && (self.generation, self.incarnation, self.prune) > (other.generation, other.incarnation, other.prune)
    }
}

/// One member in a push/pull: foca's view of it, in our own (versioned) shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireMember {
    pub(crate) id: NodeId,
    pub(crate) incarnation: u16,
    pub(crate) state: WireState,
}

/// Foca's member states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireState {
    Alive,
    Suspect,
    Down,
}

impl From<&foca::Member<NodeId>> for WireMember {
    fn from(member: &foca::Member<NodeId>) -> Self {
        let state = match member.state() {
            foca::State::Alive => WireState::Alive,
            foca::State::Suspect => WireState::Suspect,
            foca::State::Down => WireState::Down,
        };
        WireMember { id: member.id().clone(), incarnation: member.incarnation(), state }
    }
}

impl From<WireMember> for foca::Member<NodeId> {
    fn from(member: WireMember) -> Self {
        let state = match member.state {
            WireState::Alive => foca::State::Alive,
            WireState::Suspect => foca::State::Suspect,
            WireState::Down => foca::State::Down,
        };
        foca::Member::new(member.id, member.incarnation, state)
    }
}

/// One side's full state in a push/pull exchange; the header fields come first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PushPull {
    /// The sender's datacenter: a mismatch is refused by both sides.
    pub(crate) datacenter: String,
    /// The sender's current identity.
    pub(crate) sender: NodeId,
    /// The sender's refutation counter, so the receiver learns it as alive at the right incarnation.
    pub(crate) sender_incarnation: u16,
    /// Whether this is a join (an operator asked for it) rather than the periodic anti-entropy exchange.
    pub(crate) join: bool,
    /// Every member the sender knows, down ones included (but not the sender itself).
    pub(crate) members: Vec<WireMember>,
    /// The newest metadata the sender knows for each node, its own included.
    pub(crate) metas: Vec<MetaRecord>,
    /// The leave intents the sender holds.
    pub(crate) leaves: Vec<LeaveIntent>,
    /// The user events the sender saw last (Serf's event buffer), so one that gossip missed a member still reaches it.
    pub(crate) events: Vec<UserEvent>,
}

/// The responder's answer to a push/pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The responder merged the request; here is its state.
    Accepted(PushPull),
    /// The responder refused the request and merged nothing.
    Refused(Refusal),
}

/// Why a push/pull was refused; each side turns it into an error worded from its own point of view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// The two sides are in different datacenters; `responder` is the refusing side's.
    DatacenterMismatch { responder: String },
    /// The initiator's node name belongs to another live member, at `addr`.
    NameInUse { name: String, addr: SocketAddr },
    /// The responder has left the cluster and no longer takes part in it.
    Left,
}

/// Prefixes `payload` with a frame header; `None` when it is over [`MAX_FRAME`].
pub(crate) fn frame(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > MAX_FRAME {
        return None;
    }
    let len = u32::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// The header of a sealed frame whose sealed body (nonce, ciphertext, tag) is `len` bytes.
pub(crate) fn sealed_frame_header(len: usize) -> Option<[u8; FRAME_HEADER_LEN]> {
    let len = u32::try_from(len).ok()?.to_be_bytes();
    Some([MAGIC[0], MAGIC[1], SEALED, len[0], len[1], len[2], len[3]])
}

/// What a frame header announces, checked before a single payload byte is read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameHeader {
    /// A plaintext frame of ours with this many payload bytes.
    Len(usize),
    /// A sealed frame of ours with this many sealed bytes.
    Sealed(usize),
    /// Not roster gossip at all.
    NotGossip,
    /// Roster gossip, another wire version.
    Version(u8),
    /// Longer than [`MAX_FRAME`].
    TooLarge(u64),
}

/// Reads a frame header.
pub(crate) fn parse_frame_header(header: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
    if header[..2] != MAGIC {
        return FrameHeader::NotGossip;
    }
    let len = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    let limit = match header[2] {
        PROTOCOL => MAX_FRAME,
        SEALED => MAX_FRAME + super::keyring::SEAL_OVERHEAD,
        other => return FrameHeader::Version(other),
    };
    match usize::try_from(len) {
        Ok(len) if len <= limit && header[2] == SEALED => FrameHeader::Sealed(len),
        Ok(len) if len <= limit => FrameHeader::Len(len),
        _ => FrameHeader::TooLarge(u64::from(len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_differs_by_datacenter() {
        assert_eq!(envelope("dc1"), envelope("dc1"));
        assert_ne!(envelope("dc1"), envelope("dc2"));
        assert_eq!(&envelope("dc1")[..3], b"rG\x01");
    }

    #[test]
    fn frame_headers_are_checked_before_reading() {
        let framed = frame(b"hello").expect("small frame");
        let header: [u8; FRAME_HEADER_LEN] = framed[..FRAME_HEADER_LEN].try_into().expect("header");
        assert_eq!(parse_frame_header(&header), FrameHeader::Len(5));
        assert_eq!(parse_frame_header(b"GET / H"), FrameHeader::NotGossip);
        assert_eq!(parse_frame_header(&[b'r', b'G', 9, 0, 0, 0, 1]), FrameHeader::Version(9));
        assert_eq!(parse_frame_header(&sealed_frame_header(40).expect("small")), FrameHeader::Sealed(40));
        assert_eq!(
            parse_frame_header(&[b'r', b'G', PROTOCOL, 0xff, 0xff, 0xff, 0xff]),
            FrameHeader::TooLarge(u64::from(u32::MAX))
        );
    }

    #[test]
    fn plaintext_coordinate_messages_travel_under_the_side_envelope_only() {
        let crypto = Crypto::new(None);
        let (plain, sealed) = (envelope("dc1"), sealed_envelope("dc1"));
        let mut side = plain.to_vec();
        side[2] = SIDE;
        side.push(Sealed::CoordPing as u8);
        side.extend_from_slice(b"body");
        assert_eq!(
            open_datagram(&crypto, &plain, &sealed, &side),
            Datagram::Side { kind: Sealed::CoordPing, body: b"body" }
        );
        side[ENVELOPE_LEN] = Sealed::KeyRequest as u8;
        assert_eq!(
            open_datagram(&crypto, &plain, &sealed, &side),
            Datagram::UnknownKind,
            "keyring messages are sealed"
        );
        side[ENVELOPE_LEN] = Sealed::CoordAck as u8;
        assert_eq!(open_datagram(&crypto, &envelope("dc2"), &sealed_envelope("dc2"), &side), Datagram::Foreign);
        assert_eq!(open_datagram(&crypto, &plain, &sealed, &plain[..]), Datagram::Plain(b""));
    }

    #[test]
    fn the_largest_coordinate_ack_fits_a_packet() {
        let ack = CoordAck {
            seq: u64::MAX,
            node: "n".repeat(super::super::MAX_NAME_BYTES),
            coord: roster_kv::Coordinate { vec: vec![f64::MAX; 8], error: 1.5, adjustment: f64::MIN, height: f64::MAX },
        };
        let encoded = postcard::to_stdvec(&ack).expect("encodes");
        assert!(encoded.len() <= MAX_PACKET, "{} bytes", encoded.len());
    }

    #[test]
    fn leave_intent_covers_only_its_life_and_incarnations() {
        let id = NodeId { name: "web1".into(), addr: SocketAddr::from(([127, 0, 0, 1], 8301)), generation: 7 };
        let forced = LeaveIntent { name: "web1".into(), generation: 7, incarnation: 2, prune: false };
        assert!(forced.covers(&id, 2));
        assert!(forced.covers(&id, 0));
        assert!(!forced.covers(&id, 3), "a member that refuted past the force-leave is not covered");
        let next_life = NodeId { generation: 8, ..id };
        assert!(!forced.covers(&next_life, 0));
        let pruned = LeaveIntent { prune: true, ..forced.clone() };
        assert!(pruned.supersedes(&forced));
        assert!(!forced.supersedes(&pruned));
    }

    /// foca sends a custom broadcast only where it fits whole, so one that never fits would never leave this node.
    #[test]
    fn the_largest_user_event_fits_a_broadcast_between_the_longest_identities() {
        use foca::Codec as _;
        let longest = |host: u16| NodeId {
            name: "n".repeat(super::super::MAX_NAME_BYTES).into(),
            addr: SocketAddr::new(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0xffff, host).into(), u16::MAX),
            generation: u64::MAX,
        };
        let header = foca::Header {
            src: longest(1),
            src_incarnation: u16::MAX,
            dst: longest(2),
            message: foca::Message::Broadcast,
        };
        let mut encoded = Vec::new();
        foca::PostcardCodec.encode_header(&header, &mut encoded).expect("a header encodes");
        // foca prefixes every custom broadcast with its length, a u16; sealing adds a kind byte, nonce and tag.
        let sealing = 1 + super::super::keyring::SEAL_OVERHEAD;
        let needed = ENVELOPE_LEN + sealing + encoded.len() + 2 + MAX_EVENT_BYTES;
        assert!(needed <= MAX_DATAGRAM, "{needed} bytes needed (header {})", encoded.len());

        let event = UserEvent {
            id: "6ba7b810-9dad-11d1-80b4-00c04fd430c8".into(),
            name: "n".repeat(128),
            payload: vec![0xff; 512],
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            ltime: u64::MAX,
        };
        assert!(event.encoded_len() + 200 <= MAX_EVENT_BYTES, "the longest name and payload leave room for filters");
    }
}
