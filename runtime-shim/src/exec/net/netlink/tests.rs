//! Tests of the rtnetlink encoding and acknowledgement parsing, on bytes only (the kernel side is covered by the
//! exec driver's bridge tests).

use super::{HEADER_LEN, IFLA_IFNAME, IFLA_LINKINFO, Message, NLMSG_ERROR, RTM_NEWLINK, acknowledgement};

/// A u16 at `offset` in native byte order.
fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_ne_bytes([bytes[offset], bytes[offset + 1]])
}

#[test]
fn nested_attributes_carry_their_padded_length_and_the_header_the_total() {
    let mut message = Message::new(RTM_NEWLINK, 0);
    message.attr(IFLA_IFNAME, b"br\0");
    message.begin(IFLA_LINKINFO);
    message.attr(1, b"bridge");
    message.end();
    let bytes = message.finish(7);
    // Header, then IFLA_IFNAME (4 + 3 bytes, padded to 8), then the nest: its header and "bridge" (4 + 6, padded
    // to 12), 16 in all.
    assert_eq!(bytes.len(), HEADER_LEN + 8 + 16);
    assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().expect("len")) as usize, bytes.len());
    assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().expect("seq")), 7);
    assert_eq!((u16_at(&bytes, HEADER_LEN), u16_at(&bytes, HEADER_LEN + 2)), (7, IFLA_IFNAME));
    assert_eq!((u16_at(&bytes, HEADER_LEN + 8), u16_at(&bytes, HEADER_LEN + 10)), (16, IFLA_LINKINFO));
    assert_eq!(u16_at(&bytes, HEADER_LEN + 12), 10, "the inner attribute's length is unpadded");
}

#[test]
fn acknowledgement_reports_the_kernel_errno_of_its_own_request() {
    let ack = |seq: u32, errno: i32| {
        let len = HEADER_LEN + 4;
        let mut bytes = vec![0u8; len];
        bytes[0..4].copy_from_slice(&u32::try_from(len).expect("len").to_ne_bytes());
        bytes[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        bytes[HEADER_LEN..].copy_from_slice(&errno.to_ne_bytes());
        bytes
    };
    assert!(matches!(acknowledgement(&ack(3, 0), 3), Some(Ok(()))));
    let failed = acknowledgement(&ack(3, -17), 3).expect("an answer").expect_err("EEXIST");
    assert_eq!(failed.raw_os_error(), Some(17));
    // An acknowledgement of another request, then this one's, in one datagram.
    let mut both = ack(2, -1);
    both.extend(ack(3, 0));
    assert!(matches!(acknowledgement(&both, 3), Some(Ok(()))));
    assert!(acknowledgement(&ack(2, 0), 3).is_none(), "not this request's");
    assert!(matches!(acknowledgement(&ack(3, 0)[..HEADER_LEN + 2], 3), Some(Err(_))), "a truncated reply");
}
