//! Reading and writing length-prefixed, versioned RPC frames: one at a time, or a queued burst in one write.
//!
//! # What a frame may cost the reader
//! A frame announces its length up front, and any peer that can reach the RPC port can announce anything.
//! `Decoder` is sans-IO (so it can be property-tested and fuzzed): it holds the 13-byte prefix and the body's first byte
//! (the message type, see `raft::wire::body_limit`), and refuses the frame before allocating anything when the
//! announced length exceeds the limit the caller gives for that type. An accepted body then grows only as bytes
//! arrive, geometrically and never past its announced length: memory follows what a peer sent, not what it claimed.
//! Once a frame has begun, every read must make progress within a stall timeout (`FRAME_STALL_TIMEOUT` by default),
//! or the frame fails and the connection is dropped. The timeout is per read rather than per frame, so a large frame
//! over a slow link still arrives, while a peer that stops mid-frame holds its connection slot for at most that long.
//! Between frames there is no timeout here; the listener closes a connection idle with nothing in flight.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The wire version this build speaks. Bump it when `raft::wire` changes incompatibly.
pub(crate) const WIRE_VERSION: u8 = 1;

/// The largest frame anyone may send. Requests are held to far less by type (`raft::wire::body_limit`: no Raft message
/// needs more than a log batch or a snapshot chunk); this bounds the responses a caller reads from the server it chose
/// to dial (a large KV listing), and the whole snapshot sent to an older build that cannot take chunks.
pub(crate) const MAX_FRAME_LEN: usize = 512 << 20;

/// How long a read inside a frame may wait for its next bytes before the frame fails.
pub(crate) const FRAME_STALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Bytes after the length prefix and before the body: version and request id.
pub(crate) const HEADER_LEN: usize = 1 + 8;

/// The length prefix and the header.
const PREFIX_LEN: usize = 4 + HEADER_LEN;

/// The smallest allocation for a body, and the read buffer size.
pub(crate) const BODY_CHUNK: usize = 64 * 1024;

/// How many bytes of small frames [`write_batch`] gathers into one write.
const BATCH_BYTES: usize = 64 * 1024;

/// Why a frame was refused. Every one ends the connection: the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The length prefix is below the header size or above `MAX_FRAME_LEN`.
    #[error("bad frame length {0}")]
    BadLength(usize),
    /// The peer runs an incompatible build.
    #[error("peer speaks wire version {0}, we speak {WIRE_VERSION}")]
    Version(u8),
    /// The body is longer than its message type allows; refused before any of it was read.
    #[error("a {len}-byte body of message type {tag} exceeds its {limit}-byte limit")]
    TooLarge {
        /// The body's first byte: the message type.
        tag: u8,
        /// The announced body length.
        len: usize,
        /// The limit for that type.
        limit: usize,
    },
}

/// A decoded frame: the request id and the body.
pub(crate) type Frame = (u64, Vec<u8>);

/// An incremental frame decoder: feed it whatever bytes arrived, take frames out.
///
/// `limit(tag)` is the largest body allowed for a body whose first byte is `tag`; an empty body is always allowed.
pub(crate) struct Decoder<L> {
    limit: L,
    /// The prefix and the body's first byte, as far as they arrived.
    head: [u8; PREFIX_LEN + 1],
    /// How many bytes of `head` arrived; 0 when no frame has begun or its body is being read.
    have: usize,
    /// The frame whose body is being read: id, announced body length, body so far.
    body: Option<(u64, usize, Vec<u8>)>,
}

impl<L: Fn(u8) -> usize> Decoder<L> {
    /// A decoder holding bodies to `limit(first body byte)`.
    pub(crate) fn new(limit: L) -> Decoder<L> {
        Decoder { limit, head: [0; PREFIX_LEN + 1], have: 0, body: None }
    }

    /// Whether part of a frame arrived and the rest is awaited.
    pub(crate) fn in_frame(&self) -> bool {
        self.have > 0 || self.body.is_some()
    }

    /// The bytes held for the frame in progress (the body's capacity), for tests and fuzzing of the memory bound.
    pub(crate) fn held(&self) -> usize {
        self.body.as_ref().map_or(0, |(_, _, body)| body.capacity())
    }

    /// Takes bytes from `input` up to the end of at most one frame.
    /// Returns how many it consumed and the frame they completed, if any. After an error the decoder must be dropped.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Frame>), FrameError> {
        let mut used = 0;
        if self.body.is_none() {
            let take = (PREFIX_LEN.saturating_sub(self.have)).min(input.len());
            self.head[self.have..self.have + take].copy_from_slice(&input[..take]);
            self.have += take;
            used += take;
            if self.have < PREFIX_LEN {
                return Ok((used, None));
            }
            let (id, body_len) = parse_prefix(&self.head)?;
            let mut body = Vec::new();
            if body_len > 0 {
                if self.have == PREFIX_LEN {
                    let Some(&tag) = input.get(used) else { return Ok((used, None)) };
                    self.head[PREFIX_LEN] = tag;
                    self.have += 1;
                    used += 1;
                }
                let tag = self.head[PREFIX_LEN];
                let limit = (self.limit)(tag);
                if body_len > limit {
                    return Err(FrameError::TooLarge { tag, len: body_len, limit });
                }
                body = Vec::with_capacity(body_len.min(BODY_CHUNK));
                body.push(tag);
            }
            self.have = 0;
            self.body = Some((id, body_len, body));
        }
        let Some((_, body_len, body)) = self.body.as_mut() else { return Ok((used, None)) };
        let take = (*body_len - body.len()).min(input.len() - used);
        if body.capacity() - body.len() < take {
            // Double, but never past the announced length, so capacity stays within the limit checked above.
            let target = (body.len() + take).max(body.capacity().saturating_mul(2)).min(*body_len);
            body.reserve_exact(target - body.len());
        }
        body.extend_from_slice(&input[used..used + take]);
        used += take;
        if body.len() < *body_len {
            return Ok((used, None));
        }
        let frame = self.body.take().map(|(id, _, body)| (id, body));
        Ok((used, frame))
    }
}

/// The request id and body length from a complete prefix.
fn parse_prefix(head: &[u8; PREFIX_LEN + 1]) -> Result<(u64, usize), FrameError> {
    let [a, b, c, d, version, id @ ..] = *head;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if !(HEADER_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(FrameError::BadLength(len));
    }
    if version != WIRE_VERSION {
        return Err(FrameError::Version(version));
    }
    let [i0, i1, i2, i3, i4, i5, i6, i7, _tag] = id;
    Ok((u64::from_be_bytes([i0, i1, i2, i3, i4, i5, i6, i7]), len - HEADER_LEN))
}

/// Writes one frame; the caller flushes.
pub(crate) async fn write_frame<W>(writer: &mut W, id: u64, body: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    writer.write_all(&prefix(id, body.len())?).await?;
    writer.write_all(body).await
}

/// Writes `first` and the frames `queue` already holds behind it, then flushes. Small frames are gathered into one
/// buffer of up to [`BATCH_BYTES`] and leave in one write: a burst of calls or answers costs one syscall and one
/// wake-up of the peer's reader instead of two writes (prefix, body) per frame. A body larger than that is written
/// from where it lies rather than copied.
///
/// When `first` came alone, the writer yields once before gathering: the tasks already runnable on this worker (the
/// rest of a burst of HTTP requests a client agent forwards, or of the answers a commit releases) queue their frames
/// behind it and leave in the same write. Without it the writer, woken by the first frame, wrote almost every frame
/// by itself (a client agent forwarding 12 000 writes/s made 10 500 sends/s). `yield_now` runs the writer again once
/// its worker has nothing else to run or at its next maintenance tick (after at most 61 other polls), never on a timer,
/// so a frame on an idle connection costs one more `epoll_wait(0)`.
pub(crate) async fn write_batch<W>(
    writer: &mut W,
    first: (u64, Vec<u8>),
    queue: &mut mpsc::Receiver<(u64, Vec<u8>)>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if queue.is_empty() {
        tokio::task::yield_now().await;
    }
    let mut batch = Vec::new();
    let mut next = Some(first);
    while let Some((id, body)) = next.take() {
        if body.len() > BATCH_BYTES {
            if !batch.is_empty() {
                writer.write_all(&batch).await?;
                batch.clear();
            }
            write_frame(writer, id, &body).await?;
        } else {
            batch.extend_from_slice(&prefix(id, body.len())?);
            batch.extend_from_slice(&body);
        }
        if batch.len() < BATCH_BYTES {
            next = queue.try_recv().ok();
        }
    }
    if !batch.is_empty() {
        writer.write_all(&batch).await?;
    }
    writer.flush().await
}

/// The length prefix and header of a frame with a `body_len`-byte body.
fn prefix(id: u64, body_len: usize) -> io::Result<[u8; PREFIX_LEN]> {
    let len = HEADER_LEN + body_len;
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("frame of {len} bytes exceeds the limit")));
    }
    // `len <= MAX_FRAME_LEN` fits in a u32.
    let len = u32::try_from(len).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut header = [0u8; PREFIX_LEN];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = WIRE_VERSION;
    header[5..].copy_from_slice(&id.to_be_bytes());
    Ok(header)
}

/// Reads one frame through `decoder`: `Ok(None)` at a clean end of stream between frames.
/// Inside a frame, a read that waits longer than `stall` fails with `TimedOut` (see the module doc);
/// a refused frame fails with `InvalidData` wrapping its `FrameError`.
pub(crate) async fn read_frame<R, L>(
    reader: &mut R,
    decoder: &mut Decoder<L>,
    stall: Duration,
) -> io::Result<Option<Frame>>
where
    R: AsyncBufRead + Unpin,
    L: Fn(u8) -> usize,
{
    loop {
        let in_frame = decoder.in_frame();
        let (used, frame) = {
            let buf = if in_frame { within(stall, reader.fill_buf()).await? } else { reader.fill_buf().await? };
            if buf.is_empty() {
                if in_frame {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a frame"));
                }
                return Ok(None);
            }
            decoder.feed(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        };
        reader.consume(used);
        if frame.is_some() {
            return Ok(frame);
        }
    }
}

/// Runs one read, failing with `TimedOut` when it waits longer than `stall`.
async fn within<T>(stall: Duration, read: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(stall, read).await {
        Ok(res) => res,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("no bytes of a started frame for {stall:?}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests;
