//! Frame encoding round trips and version checks.

use super::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn frame_round_trips_and_rejects_other_versions() {
    let mut buf = Vec::new();
    write_frame(&mut buf, 7, b"hello").await.unwrap();
    let got = read_frame(&mut buf.as_slice(), FRAME_STALL_TIMEOUT).await.unwrap();
    assert_eq!(got, Some((7, b"hello".to_vec())));

    buf[4] = WIRE_VERSION + 1;
    assert!(read_frame(&mut buf.as_slice(), FRAME_STALL_TIMEOUT).await.is_err());
    assert_eq!(read_frame(&mut [].as_slice(), FRAME_STALL_TIMEOUT).await.unwrap(), None);
}

/// The bytes of a frame header announcing a body of `body_len` bytes, for request id 1.
fn header_announcing(body_len: usize) -> Vec<u8> {
    let len = u32::try_from(HEADER_LEN + body_len).expect("fits u32");
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.push(WIRE_VERSION);
    bytes.extend_from_slice(&1u64.to_be_bytes());
    bytes
}

#[tokio::test]
async fn a_frame_announcing_the_max_length_then_stalling_times_out() {
    let (mut peer, mut ours) = tokio::io::duplex(4096);
    peer.write_all(&header_announcing(MAX_FRAME_LEN - HEADER_LEN)).await.unwrap();
    peer.write_all(b"a few bytes").await.unwrap();
    let started = std::time::Instant::now();
    let err = read_frame(&mut ours, Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5), "the stall timeout, not the body length, ends the read");
    drop(peer);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_frame() {
    let mut bytes = header_announcing(1000);
    bytes.extend_from_slice(&[7; 10]);
    let err = read_frame(&mut bytes.as_slice(), FRAME_STALL_TIMEOUT).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_body_larger_than_a_chunk_arriving_in_pieces_is_read_whole() {
    let body: Vec<u8> = (0..3 * BODY_CHUNK + 123).map(|n| (n % 251) as u8).collect();
    let (mut peer, mut ours) = tokio::io::duplex(1000);
    let sent = body.clone();
    let writer = tokio::spawn(async move { write_frame(&mut peer, 9, &sent).await });
    let got = read_frame(&mut ours, FRAME_STALL_TIMEOUT).await.unwrap();
    assert_eq!(got, Some((9, body)));
    writer.await.unwrap().unwrap();
}
