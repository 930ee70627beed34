//! Unit tests of the record helpers that the wire tests cannot reach easily.

use std::net::IpAddr;

use super::{chunk, hex_ip, txt_strings};

#[test]
fn txt_strings_follow_rfc1464() {
    assert_eq!(txt_strings("env", "prod"), vec!["env=prod"]);
    assert_eq!(txt_strings("a=b", "c"), vec!["a`=b=c"]);
    assert_eq!(txt_strings(" k ", "v"), vec!["` k` =v"]);
    assert_eq!(txt_strings("rfc1035-raw", "v=spf1 -all"), vec!["v=spf1 -all"]);
    assert_eq!(txt_strings("RFC1035-raw", "a`b"), vec!["a`b"]);
    assert_eq!(txt_strings("k", "a`b"), vec!["k=a``b"]);
}

#[test]
fn long_txt_values_are_split_into_255_octet_strings() {
    let chunks = chunk(&"é".repeat(300));
    assert!(chunks.iter().all(|piece| piece.len() <= 255));
    assert_eq!(chunks.concat(), "é".repeat(300));
    assert_eq!(chunk(""), vec![""]);
}

#[test]
fn hex_labels_round_trip_the_addr_form() {
    let v4: IpAddr = "10.0.0.1".parse().expect("v4");
    let v6: IpAddr = "2001:db8::1".parse().expect("v6");
    assert_eq!(hex_ip(v4), "0a000001");
    assert_eq!(hex_ip(v6), "20010db8000000000000000000000001");
}
