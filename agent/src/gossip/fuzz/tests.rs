//! The fuzz targets' seed corpora, built here from real encoders: each seed must reach the stage it was made for,
//! and the committed seeds must be exactly these, so a change of wire format cannot leave the fuzzers starting
//! from inputs that no longer get past the first check. `UPDATE_SEEDS=1` rewrites them.

use foca::{AccumulatingRuntime, Foca, PostcardCodec};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::super::broadcast::{Handler, SharedKnown};
use super::super::wire::{LeaveIntent, MetaRecord, Refusal, WireKeyOp, WireMember};
use super::*;
use crate::fuzzing::check_seeds;

/// A peer's foca, which produces real packets addressed to the receiver.
fn peer() -> Foca<NodeId, PostcardCodec, StdRng, Handler> {
    let id = NodeId { name: "peer".into(), addr: peer_addr(), generation: 7 };
    let handler = Handler { known: SharedKnown::default() };
    Foca::with_custom_broadcast(
        id,
        super::super::health::foca_config(1, 1),
        StdRng::seed_from_u64(1),
        PostcardCodec,
        handler,
    )
}

fn sent(runtime: &mut AccumulatingRuntime<NodeId>) -> Vec<u8> {
    runtime.to_send().map(|(_, bytes)| bytes.to_vec()).unwrap_or_default()
}

/// The peer announcing itself to the receiver.
fn announce() -> Vec<u8> {
    let mut runtime = AccumulatingRuntime::new();
    let _ = peer().announce(receiver(), &mut runtime);
    sent(&mut runtime)
}

/// A packet from the peer that carries a metadata broadcast.
fn meta_broadcast() -> Vec<u8> {
    let mut peer = peer();
    let mut runtime = AccumulatingRuntime::new();
    let _ = peer.apply_many(std::iter::once(foca::Member::alive(receiver())), false, &mut runtime);
    let record = MetaRecord { name: "peer".into(), generation: 7, meta: super::super::MemberMeta::default() };
    let _ = peer.add_broadcast(&postcard::to_stdvec(&Broadcast::Meta(record)).unwrap_or_default());
    let mut runtime = AccumulatingRuntime::new();
    let _ = peer.broadcast(&mut runtime);
    sent(&mut runtime)
}

fn with_mode(mode: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mode];
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

fn state() -> PushPull {
    let peer = NodeId { name: "peer".into(), addr: peer_addr(), generation: 7 };
    let other = NodeId { name: "other".into(), addr: SocketAddr::from(([127, 0, 0, 3], 8301)), generation: 2 };
    PushPull {
        datacenter: DATACENTER.into(),
        sender: peer,
        sender_incarnation: 1,
        join: true,
        members: vec![WireMember { id: other, incarnation: 0, state: WireState::Alive }],
        metas: vec![MetaRecord { name: "peer".into(), generation: 7, meta: super::super::MemberMeta::default() }],
        leaves: vec![LeaveIntent { name: "gone".into(), generation: 1, incarnation: 3, prune: false }],
        events: Vec::new(),
    }
}

fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

/// The datagram seeds: (file name, input, the stage it reaches).
fn datagram_seeds() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let envelope = wire::envelope(DATACENTER);
    let sealed_mode = ENCRYPTED | VERIFY_INCOMING | HARNESS_SEALS;
    let request = KeyRequest { id: 9, op: WireKeyOp::Install(vec![3; 32]) };
    let response = KeyResponse { id: 9, node: "peer".into(), result: Ok(vec![vec![3; 32], vec![4; 16]]) };
    vec![
        ("plain-announce", with_mode(0, &[&envelope, &announce()]), "foca-accepted"),
        ("plain-broadcast", with_mode(0, &[&envelope, &meta_broadcast()]), "foca-accepted"),
        ("sealed-announce", with_mode(sealed_mode, &[&[Sealed::Foca as u8], &announce()]), "foca-accepted"),
        (
            "sealed-key-request",
            with_mode(sealed_mode, &[&[Sealed::KeyRequest as u8], &encoded(&request)]),
            "key-request-applied",
        ),
        (
            "sealed-key-response",
            with_mode(sealed_mode, &[&[Sealed::KeyResponse as u8], &encoded(&response)]),
            "key-response-keys",
        ),
        ("plaintext-refused", with_mode(ENCRYPTED | VERIFY_INCOMING, &[&envelope, &announce()]), "plaintext-refused"),
        ("foreign", with_mode(0, &[&wire::envelope("dc2"), &announce()]), "foreign"),
    ]
}

/// The frame seeds, likewise.
fn frame_seeds() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let request = encoded(&state());
    let reply = encoded(&Reply::Accepted(state()));
    let refused = encoded(&Reply::Refused(Refusal::NameInUse { name: "receiver".into(), addr: peer_addr() }));
    let plain = |payload: &[u8]| wire::frame(payload).unwrap_or_default();
    let sealed_mode = ENCRYPTED | VERIFY_INCOMING | HARNESS_SEALS;
    vec![
        ("plain-request", with_mode(0, &[&plain(&request)]), "merged"),
        ("plain-reply", with_mode(AS_REPLY, &[&plain(&reply)]), "merged"),
        ("plain-refusal", with_mode(AS_REPLY, &[&plain(&refused)]), "refused"),
        ("sealed-request", with_mode(sealed_mode, &[&request]), "merged"),
        ("sealed-reply", with_mode(sealed_mode | AS_REPLY, &[&reply]), "merged"),
        ("plaintext-refused", with_mode(ENCRYPTED | VERIFY_INCOMING, &[&plain(&request)]), "header-refused"),
    ]
}

#[test]
fn datagram_seeds_reach_foca_and_the_keyring_and_are_committed() {
    check_seeds("gossip_datagram", datagram_seeds(), datagram);
}

#[test]
fn frame_seeds_reach_the_merge_and_are_committed() {
    check_seeds("gossip_frame", frame_seeds(), frame);
}

/// The suspicion messages (buddy, confirmation, failure) reach their decoder both sealed and on the side envelope;
/// they are not committed seeds, since the corpus lives outside the gossip module.
#[test]
fn every_suspicion_kind_reaches_its_decoder_sealed_and_in_plaintext() {
    let suspicion = wire::Suspicion { name: "peer".into(), generation: 7, incarnation: 2 };
    let mut side_envelope = wire::envelope(DATACENTER);
    side_envelope[2] = wire::SIDE;
    let sealed_mode = ENCRYPTED | VERIFY_INCOMING | HARNESS_SEALS;
    for kind in [Sealed::Suspected, Sealed::Refuted, Sealed::Confirm, Sealed::Failed, Sealed::Verify] {
        let sealed = with_mode(sealed_mode, &[&[kind as u8], &encoded(&suspicion)]);
        assert_eq!(datagram(&sealed), "suspicion", "{kind:?} sealed");
        let plain = with_mode(0, &[&side_envelope, &[kind as u8], &encoded(&suspicion)]);
        assert_eq!(datagram(&plain), "suspicion", "{kind:?} in plaintext");
        let refused = with_mode(ENCRYPTED | VERIFY_INCOMING, &[&side_envelope, &[kind as u8], &encoded(&suspicion)]);
        assert_eq!(datagram(&refused), "plaintext-refused", "{kind:?} in plaintext to an encrypted agent");
        assert_eq!(datagram(&with_mode(sealed_mode, &[&[kind as u8], &[0xff]])), "suspicion-malformed");
    }
}

#[test]
fn a_sealed_datagram_under_another_key_or_with_encryption_off_is_unauthenticated() {
    let sealer = Crypto::new(Some(Encryption {
        keyring: Keyring::in_memory(vec![Key::generate()]),
        verify_incoming: true,
        verify_outgoing: true,
    }));
    let sealed_envelope = wire::sealed_envelope(DATACENTER);
    let body = with_mode(Sealed::Foca as u8, &[&announce()]);
    let foreign_key = sealer.seal(&sealed_envelope, &body, None).expect("sealed");
    assert_eq!(datagram(&with_mode(ENCRYPTED, &[&foreign_key])), "unauthenticated");
    // The same bytes under the receiver's key, to an agent without encryption.
    let own_key = receiver_crypto(ENCRYPTED).seal(&sealed_envelope, &body, None).expect("sealed");
    assert_eq!(datagram(&with_mode(ENCRYPTED, &[&own_key])), "foca-accepted");
    assert_eq!(datagram(&with_mode(0, &[&own_key])), "unauthenticated");
}

#[test]
fn a_frame_announcing_more_than_it_carries_is_truncated_not_waited_for() {
    let mut framed = wire::frame(&encoded(&state())).expect("small");
    framed.pop();
    assert_eq!(frame(&with_mode(0, &[&framed])), "truncated");
    let oversized = [b'r', b'G', wire::PROTOCOL, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(frame(&with_mode(0, &[&oversized])), "header-refused");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes as a datagram, in every receiver mode, plain or sealed by the harness: a stage, never a panic.
    #[test]
    fn arbitrary_datagrams_never_panic(mode in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = datagram(&with_mode(mode, &[&body]));
    }

    /// Real packets with bytes flipped get through the envelope or the seal and into foca's decoder.
    #[test]
    fn mutated_packets_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut packet = meta_broadcast();
        for (idx, byte) in flips {
            let at = idx.index(packet.len());
            packet[at] ^= byte;
        }
        let _ = datagram(&with_mode(0, &[&wire::envelope(DATACENTER), &packet]));
        let _ = datagram(&with_mode(ENCRYPTED | HARNESS_SEALS, &[&[Sealed::Foca as u8], &packet]));
    }

    /// Any bytes as a push/pull frame, read as request or reply: a stage, never a panic.
    #[test]
    fn arbitrary_frames_never_panic(mode in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = frame(&with_mode(mode, &[&body]));
    }

    /// A push/pull state survives encoding and decoding whole, plain and sealed.
    #[test]
    fn push_pull_states_round_trip(name in "[a-z]{1,12}", generation in any::<u64>(), incarnation in any::<u16>(), join in any::<bool>()) {
        let mut sent = state();
        sent.sender.name = name.as_str().into();
        sent.sender.generation = generation;
        sent.sender_incarnation = incarnation;
        sent.join = join;
        let payload = encoded(&sent);
        let framed = wire::frame(&payload).expect("small");
        let header: [u8; FRAME_HEADER_LEN] = framed[..FRAME_HEADER_LEN].try_into().expect("header");
        let plain = pushpull::decode_payload::<PushPull>(&header, framed[FRAME_HEADER_LEN..].to_vec(), false, &receiver_crypto(0));
        prop_assert_eq!(plain.ok(), Some(sent.clone()));
        let sealed_header = wire::sealed_frame_header(payload.len() + super::super::keyring::SEAL_OVERHEAD).expect("small");
        let sealed = receiver_crypto(ENCRYPTED).seal(&sealed_header, &payload, None).expect("sealed");
        let opened = pushpull::decode_payload::<PushPull>(&sealed_header, sealed[FRAME_HEADER_LEN..].to_vec(), true, &receiver_crypto(ENCRYPTED));
        prop_assert_eq!(opened.ok(), Some(sent));
    }

    /// A frame header is refused before any payload is read when it announces more than the limit.
    #[test]
    fn frame_headers_over_the_limit_are_refused_before_reading(len in any::<u32>(), sealed in any::<bool>()) {
        let version = if sealed { wire::SEALED } else { wire::PROTOCOL };
        let bytes = len.to_be_bytes();
        let header = [b'r', b'G', version, bytes[0], bytes[1], bytes[2], bytes[3]];
        let limit = wire::MAX_FRAME + if sealed { super::super::keyring::SEAL_OVERHEAD } else { 0 };
        let checked = pushpull::check_header(&header, &receiver_crypto(ENCRYPTED));
        prop_assert_eq!(checked.is_ok(), len as usize <= limit);
        if let Ok((announced, is_sealed)) = checked {
            prop_assert_eq!((announced, is_sealed), (len as usize, sealed));
        }
    }
}
