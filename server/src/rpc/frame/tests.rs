//! Frame encoding round trips, batched writes, version checks, per-type size limits, and property tests of the decoder
//! (arbitrary bytes never panic and never make it hold more than the limit allows).

use proptest::prelude::*;
use tokio::io::{AsyncWriteExt, BufReader};

use super::*;

/// Bodies of any type up to the largest frame, as the client side reads responses.
fn any_size(_tag: u8) -> usize {
    MAX_FRAME_LEN - HEADER_LEN
}

async fn read_one(bytes: &[u8]) -> io::Result<Option<Frame>> {
    read_frame(&mut &bytes[..], &mut Decoder::new(any_size), FRAME_STALL_TIMEOUT).await
}

#[tokio::test]
async fn frame_round_trips_and_rejects_other_versions() {
    let mut buf = Vec::new();
    write_frame(&mut buf, 7, b"hello").await.unwrap();
    assert_eq!(read_one(&buf).await.unwrap(), Some((7, b"hello".to_vec())));

    buf[4] = WIRE_VERSION + 1;
    assert_eq!(read_one(&buf).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert_eq!(read_one(&[]).await.unwrap(), None);
}

/// A writer that keeps what it is given and counts the writes that reached it.
#[derive(Default)]
struct CountingWriter {
    bytes: Vec<u8>,
    writes: usize,
}

impl tokio::io::AsyncWrite for CountingWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.writes += 1;
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Every frame in `bytes`, in order; panics on anything else.
async fn read_all(bytes: &[u8]) -> Vec<Frame> {
    let (mut reader, mut decoder, mut frames) = (bytes, Decoder::new(any_size), Vec::new());
    while let Some(frame) = read_frame(&mut reader, &mut decoder, FRAME_STALL_TIMEOUT).await.unwrap() {
        frames.push(frame);
    }
    frames
}

#[tokio::test]
async fn queued_small_frames_leave_in_one_write_in_order() {
    let (tx, mut rx) = mpsc::channel(64);
    let frames: Vec<Frame> = (1..=20).map(|id| (id, format!("request {id}").into_bytes())).collect();
    for frame in &frames[1..] {
        tx.send(frame.clone()).await.unwrap();
    }
    let mut out = CountingWriter::default();
    write_batch(&mut out, frames[0].clone(), &mut rx).await.unwrap();
    assert_eq!(out.writes, 1, "twenty small frames, one write");
    assert_eq!(read_all(&out.bytes).await, frames);
    assert!(rx.try_recv().is_err(), "the whole queue went out");

    // Nothing queued: the one frame is still one write.
    let mut out = CountingWriter::default();
    write_batch(&mut out, (99, b"alone".to_vec()), &mut rx).await.unwrap();
    assert_eq!((out.writes, read_all(&out.bytes).await), (1, vec![(99, b"alone".to_vec())]));
}

#[tokio::test]
async fn frames_from_tasks_runnable_when_the_first_arrives_leave_with_it() {
    // The single-threaded runtime makes the order certain: the senders are spawned but have not run when the writer
    // takes the first frame, as when a burst of requests is being handled on the writer's worker.
    let (tx, mut rx) = mpsc::channel(64);
    tx.send((0, b"first".to_vec())).await.unwrap();
    let senders: Vec<_> = (1..=10)
        .map(|id| {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send((id, format!("request {id}").into_bytes())).await.unwrap() })
        })
        .collect();
    let first = rx.recv().await.unwrap();
    assert!(rx.is_empty(), "nothing behind the first frame yet");
    let mut out = CountingWriter::default();
    write_batch(&mut out, first, &mut rx).await.unwrap();
    let ids: Vec<u64> = read_all(&out.bytes).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, (0..=10).collect::<Vec<_>>(), "the burst went out behind the first frame");
    assert_eq!(out.writes, 1);
    for sender in senders {
        sender.await.unwrap();
    }
}

#[tokio::test]
async fn a_large_body_between_small_frames_keeps_the_order_and_a_full_batch_leaves_the_rest_queued() {
    let (tx, mut rx) = mpsc::channel(64);
    let large = (2, vec![7u8; BATCH_BYTES + 1]);
    let queued = [large.clone(), (3, b"after".to_vec())];
    for frame in &queued {
        tx.send(frame.clone()).await.unwrap();
    }
    let mut out = CountingWriter::default();
    write_batch(&mut out, (1, b"before".to_vec()), &mut rx).await.unwrap();
    assert_eq!(read_all(&out.bytes).await, vec![(1, b"before".to_vec()), large, (3, b"after".to_vec())]);
    // "before", the large frame's prefix and body written where they lie, then "after".
    assert_eq!(out.writes, 4);

    // A batch stops gathering at BATCH_BYTES; what is left waits for the next call.
    let half = vec![1u8; BATCH_BYTES / 2];
    for id in 11..=13 {
        tx.send((id, half.clone())).await.unwrap();
    }
    let mut out = CountingWriter::default();
    write_batch(&mut out, (10, half.clone()), &mut rx).await.unwrap();
    let ids: Vec<u64> = read_all(&out.bytes).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![10, 11]);
    assert_eq!(out.writes, 1);
    assert_eq!(rx.try_recv().map(|(id, _)| id).ok(), Some(12), "the rest stays queued, in order");
}

/// The header of a frame announcing a body of `body_len` bytes, for request id 1, and the body's first byte `tag`:
/// all a reader needs to refuse the frame.
pub(crate) fn announce(body_len: usize, tag: u8) -> Vec<u8> {
    let mut bytes = header_announcing(body_len);
    bytes.push(tag);
    bytes
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
    let (mut peer, ours) = tokio::io::duplex(4096);
    peer.write_all(&header_announcing(MAX_FRAME_LEN - HEADER_LEN)).await.unwrap();
    peer.write_all(b"a few bytes").await.unwrap();
    let mut ours = BufReader::new(ours);
    let err = read_frame(&mut ours, &mut Decoder::new(any_size), Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "the stall timeout, not the body length, ends the read");
    drop(peer);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_frame() {
    let mut bytes = header_announcing(1000);
    bytes.extend_from_slice(&[7; 10]);
    assert_eq!(read_one(&bytes).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_body_larger_than_a_chunk_arriving_in_pieces_is_read_whole() {
    let body: Vec<u8> = (0..3 * BODY_CHUNK + 123).map(|n| (n % 251) as u8).collect();
    let (mut peer, ours) = tokio::io::duplex(1000);
    let sent = body.clone();
    let writer = tokio::spawn(async move { write_frame(&mut peer, 9, &sent).await });
    let got = read_frame(&mut BufReader::new(ours), &mut Decoder::new(any_size), FRAME_STALL_TIMEOUT).await.unwrap();
    assert_eq!(got, Some((9, body)));
    writer.await.unwrap().unwrap();
}

#[test]
fn a_body_over_its_types_limit_is_refused_from_the_header_and_the_first_body_byte() {
    // Type 3 may be large, everything else 1 KiB.
    let limit = |tag: u8| if tag == 3 { 1 << 20 } else { 1024 };
    let mut decoder = Decoder::new(limit);
    let mut head = header_announcing(4096);
    assert_eq!(decoder.feed(&head).unwrap(), (13, None), "the type is not known yet");
    assert_eq!(decoder.held(), 0);
    assert_eq!(decoder.feed(&[5]), Err(FrameError::TooLarge { tag: 5, len: 4096, limit: 1024 }));

    let mut decoder = Decoder::new(limit);
    head.push(3);
    assert_eq!(decoder.feed(&head).unwrap(), (14, None));
    assert!(decoder.in_frame() && decoder.held() <= 4096);
}

#[test]
fn an_empty_body_needs_no_type_byte() {
    let mut decoder = Decoder::new(|_| 0);
    assert_eq!(decoder.feed(&header_announcing(0)).unwrap(), (13, Some((1, Vec::new()))));
    assert!(!decoder.in_frame());
}

/// Feeds `bytes` in pieces of the given sizes (cycled), collecting frames until an error or the end.
/// Checks the memory bound after every piece.
fn feed_in_pieces(bytes: &[u8], pieces: &[usize], limit: usize) -> (Vec<Frame>, Option<FrameError>) {
    let mut decoder = Decoder::new(move |_| limit);
    let (mut frames, mut at, mut piece) = (Vec::new(), 0, 0);
    while at < bytes.len() {
        let size = pieces.get(piece % pieces.len().max(1)).copied().unwrap_or(bytes.len()).max(1);
        piece += 1;
        let end = (at + size).min(bytes.len());
        let mut chunk = &bytes[at..end];
        while !chunk.is_empty() {
            match decoder.feed(chunk) {
                Ok((used, frame)) => {
                    assert!(used <= chunk.len());
                    assert!(decoder.held() <= limit, "held {} past the {limit}-byte limit", decoder.held());
                    frames.extend(frame);
                    if used == 0 {
                        break;
                    }
                    chunk = &chunk[used..];
                }
                Err(e) => return (frames, Some(e)),
            }
        }
        at = end;
    }
    (frames, None)
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, body) in frames {
        let len = u32::try_from(HEADER_LEN + body.len()).expect("small");
        out.extend_from_slice(&len.to_be_bytes());
        out.push(WIRE_VERSION);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_nor_hold_past_the_limit(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        pieces in proptest::collection::vec(1usize..64, 1..8),
        limit in 0usize..512,
    ) {
        let (frames, _) = feed_in_pieces(&bytes, &pieces, limit);
        for (_, body) in frames {
            prop_assert!(body.len() <= limit);
        }
    }

    #[test]
    fn arbitrary_prefixes_with_a_valid_version_never_hold_past_the_limit(
        len in any::<u32>(),
        rest in proptest::collection::vec(any::<u8>(), 0..4096),
        limit in 0usize..1024,
    ) {
        // Random bytes rarely carry the right version; this drives the length and type checks.
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.push(WIRE_VERSION);
        bytes.extend_from_slice(&rest);
        let (frames, err) = feed_in_pieces(&bytes, &[7, 1, 300], limit);
        for (_, body) in &frames {
            prop_assert!(body.len() <= limit);
        }
        let len = len as usize;
        if len > HEADER_LEN + limit && rest.len() > 8 {
            prop_assert!(err.is_some() && frames.is_empty(), "a {len}-byte frame over the limit must be refused");
        }
    }

    #[test]
    fn frames_split_anywhere_decode_to_what_was_sent(
        frames in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..6),
        pieces in proptest::collection::vec(1usize..50, 1..8),
    ) {
        let bytes = encode(&frames);
        let (got, err) = feed_in_pieces(&bytes, &pieces, 300);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, frames);
    }
}
