//! The plain-query scan: what it accepts, what it leaves to the full parser, and the key it files answers under.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::*;

fn query(name: &str, record_type: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut message = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    if let Some(payload) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        message.set_edns(opt);
    }
    message.to_vec().unwrap()
}

#[test]
fn a_plain_query_is_recognised_with_a_case_folded_key() {
    let packet = query("Files.SERVICE.consul.", RecordType::A, None);
    let mut key = Vec::new();
    let parsed = parse_query(&packet, &mut key).expect("plain query");
    assert_eq!(parsed.id, 0xBEEF);
    assert_eq!(parsed.question_end, packet.len());
    assert_eq!(parsed.edns_payload, None);
    assert_eq!(key, b"\x05files\x07service\x06consul\x00\x00\x01");
    let mut other = Vec::new();
    parse_query(&query("files.service.consul.", RecordType::A, None), &mut other).unwrap();
    assert_eq!(key, other, "names differing only in case share an entry");
    parse_query(&query("files.service.consul.", RecordType::AAAA, None), &mut other).unwrap();
    assert_ne!(key, other, "the type is part of the key");
}

#[test]
fn an_edns_payload_below_512_is_read_as_512() {
    // Found by the property test below: a payload of 1536 with its high byte flipped to 0.
    for advertised in [0u16, 1, 511] {
        let mut packet = query("files.service.consul.", RecordType::A, Some(1536));
        // The OPT record is the last 11 bytes; its class field (bytes 3 and 4) is the payload size.
        let class_at = packet.len() - 11 + 3;
        packet[class_at..class_at + 2].copy_from_slice(&advertised.to_be_bytes());
        let parsed = parse_query(&packet, &mut Vec::new()).expect("plain query with OPT");
        assert_eq!(parsed.edns_payload, Some(512), "advertised {advertised}");
    }
}

#[test]
fn edns_payload_is_read_and_the_question_ends_before_the_opt_record() {
    let packet = query("files.service.consul.", RecordType::SRV, Some(1232));
    let mut key = Vec::new();
    let parsed = parse_query(&packet, &mut key).expect("plain query with OPT");
    assert_eq!(parsed.edns_payload, Some(1232));
    assert_eq!(packet.len() - parsed.question_end, 11, "the OPT record follows the question");
}

#[test]
fn anything_unusual_is_left_to_the_full_parser() {
    let mut key = Vec::new();
    let plain = query("files.service.consul.", RecordType::A, None);
    // A response, another opcode, TC set.
    for (byte, bit) in [(2, 0x80), (2, 0x28), (2, 0x02)] {
        let mut packet = plain.clone();
        packet[byte] |= bit;
        assert_eq!(parse_query(&packet, &mut key), None, "flags byte {bit:#x}");
    }
    // Truncated anywhere, or with trailing bytes.
    for len in 0..plain.len() {
        assert_eq!(parse_query(&plain[..len], &mut key), None, "cut at {len}");
    }
    let mut trailing = plain.clone();
    trailing.push(0);
    assert_eq!(parse_query(&trailing, &mut key), None);
    // Class CH, two questions, a compressed name.
    let mut chaos = plain.clone();
    let class_at = chaos.len() - 1;
    chaos[class_at] = 3;
    assert_eq!(parse_query(&chaos, &mut key), None);
    let mut two = plain.clone();
    two[5] = 2;
    assert_eq!(parse_query(&two, &mut key), None);
    let pointer = [&plain[..12], &[0xC0, 0x0C, 0, 1, 0, 1][..]].concat();
    assert_eq!(parse_query(&pointer, &mut key), None);
    // EDNS version 1 must get BADVERS from the full path.
    let mut versioned = query("files.service.consul.", RecordType::A, Some(1232));
    let version_at = versioned.len() - 5;
    versioned[version_at] = 1;
    assert_eq!(parse_query(&versioned, &mut key), None);
}

#[test]
fn an_overlong_name_is_declined() {
    let mut packet = plain_header();
    for _ in 0..5 {
        packet.push(63);
        packet.extend([b'a'; 63]);
    }
    packet.extend([0, 0, 1, 0, 1]);
    assert_eq!(parse_query(&packet, &mut Vec::new()), None);
}

fn plain_header() -> Vec<u8> {
    vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
}

#[test]
fn response_flags_echo_rd_and_cd_and_carry_the_code() {
    let flags = response_flags(FLAG_RD | FLAG_CD | FLAG_TC, true, 3);
    assert_eq!(flags, FLAG_QR | FLAG_AA | FLAG_RD | FLAG_CD | FLAG_RA | 3);
    assert_eq!(response_flags(0, false, 0), FLAG_QR | FLAG_AA);
}

#[test]
fn format_error_echoes_the_id_and_ignores_responses() {
    let reply = format_error(&plain_header()).expect("a query header");
    assert_eq!(&reply[..2], &[0x12, 0x34]);
    assert_eq!(u16::from_be_bytes([reply[2], reply[3]]), FLAG_QR | FLAG_RD | 1);
    assert!(reply[4..].iter().all(|&byte| byte == 0));
    let mut response = plain_header();
    response[2] |= 0x80;
    assert_eq!(format_error(&response), None);
    assert_eq!(format_error(&[0x12]), None);
}

mod properties {
    use hickory_proto::op::Message;
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;

    use super::super::parse_query;
    use super::query;

    proptest! {
        /// Arbitrary datagrams never panic the scan.
        #[test]
        fn any_bytes_are_scanned_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_query(&bytes, &mut Vec::new());
        }

        /// Whatever the scan accepts, hickory's full parser reads as the same single question, so a cached answer
        /// is never given to a datagram the full path would have answered differently (or rejected).
        #[test]
        fn accepted_queries_agree_with_the_full_parser(
            labels in proptest::collection::vec("[a-zA-Z][a-zA-Z0-9]{0,19}", 1..5),
            record_type in prop_oneof![Just(RecordType::A), Just(RecordType::AAAA), Just(RecordType::SRV), Just(RecordType::TXT)],
            edns in proptest::option::of(512u16..4096),
            flip_at in 0usize..64,
            flip_bits in any::<u8>(),
        ) {
            let name = format!("{}.", labels.join("."));
            let mut packet = query(&name, record_type, edns);
            // Corrupt one byte (or none, when the position is past the end) and compare both parsers' verdicts.
            if let Some(byte) = packet.get_mut(flip_at) {
                *byte ^= flip_bits;
            }
            let mut key = Vec::new();
            if let Some(plain) = parse_query(&packet, &mut key) {
                let message = Message::from_vec(&packet).expect("the full parser accepts what the scan accepts");
                prop_assert_eq!(message.queries.len(), 1);
                prop_assert_eq!(message.metadata.id, plain.id);
                let question = &message.queries[0];
                let lowered: Name = question.name().to_lowercase();
                let mut expected = Vec::new();
                for label in lowered.iter() {
                    expected.push(label.len() as u8);
                    expected.extend_from_slice(label);
                }
                expected.push(0);
                expected.extend_from_slice(&u16::from(question.query_type()).to_be_bytes());
                prop_assert_eq!(key, expected);
                prop_assert_eq!(message.edns.as_ref().map(|edns| edns.max_payload()), plain.edns_payload);
            }
        }
    }
}
