//! Reading and writing one length-prefixed, versioned RPC frame.
//!
//! # What a frame may cost the reader
//! A frame announces its length up front, and any peer that can reach the RPC port can announce `MAX_FRAME_LEN`.
//! So the body is read in chunks of at most `BODY_CHUNK`, and the buffer grows only as bytes arrive: memory follows what a peer sent, not what it claimed.
//! Once a frame has begun (its length arrived), every read must make progress within a stall timeout (`FRAME_STALL_TIMEOUT` outside tests), or the frame fails and the connection is dropped.
//! The timeout is per read rather than per frame, so a 512 MiB snapshot over a slow link still arrives, while a peer that stops mid-frame holds its connection slot for at most that long.
//! Between frames there is no timeout: an idle connection is normal.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The wire version this build speaks. Bump it when `raft::wire` changes incompatibly.
pub(crate) const WIRE_VERSION: u8 = 1;

/// The largest frame accepted, so a corrupt length cannot make us allocate without bound.
/// It must hold a whole snapshot (sent in one frame) and a batch of `max_payload_entries` entries.
pub(crate) const MAX_FRAME_LEN: usize = 512 << 20;

/// How long a read inside a frame may wait for its next bytes before the frame fails.
pub(crate) const FRAME_STALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Bytes after the length prefix and before the body: version and request id.
const HEADER_LEN: usize = 1 + 8;

/// The most the body buffer grows by per read, so a frame's memory tracks the bytes that actually arrived.
const BODY_CHUNK: usize = 64 * 1024;

/// Writes one frame; the caller flushes.
pub(crate) async fn write_frame<W>(writer: &mut W, id: u64, body: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let len = HEADER_LEN + body.len();
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("frame of {len} bytes exceeds the limit")));
    }
    // `len <= MAX_FRAME_LEN` fits in a u32.
    let len = u32::try_from(len).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut header = [0u8; 4 + HEADER_LEN];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = WIRE_VERSION;
    header[5..].copy_from_slice(&id.to_be_bytes());
    writer.write_all(&header).await?;
    writer.write_all(body).await
}

/// Reads one frame: `Ok(None)` at a clean end of stream between frames.
/// Inside a frame, a read that waits longer than `stall` fails with `TimedOut` (see the module doc).
pub(crate) async fn read_frame<R>(reader: &mut R, stall: Duration) -> io::Result<Option<(u64, Vec<u8>)>>
where
    R: AsyncRead + Unpin,
{
    let mut len_bytes = [0u8; 4];
    match reader.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len_bytes) as usize;
    if !(HEADER_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frame length {len}")));
    }
    let mut header = [0u8; HEADER_LEN];
    within(stall, reader.read_exact(&mut header)).await?;
    if header[0] != WIRE_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer speaks wire version {}, we speak {WIRE_VERSION}", header[0]),
        ));
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&header[1..]);
    let body = read_body(reader, len - HEADER_LEN, stall).await?;
    Ok(Some((u64::from_be_bytes(id_bytes), body)))
}

/// Reads exactly `body_len` bytes, growing the buffer by at most `BODY_CHUNK` per read.
async fn read_body<R>(reader: &mut R, body_len: usize, stall: Duration) -> io::Result<Vec<u8>>
where
    R: AsyncRead + Unpin,
{
    let mut body = Vec::with_capacity(body_len.min(BODY_CHUNK));
    while body.len() < body_len {
        let start = body.len();
        body.resize(start + (body_len - start).min(BODY_CHUNK), 0);
        let n_read = within(stall, reader.read(&mut body[start..])).await?;
        if n_read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a frame"));
        }
        body.truncate(start + n_read);
    }
    Ok(body)
}

/// Runs one read, failing with `TimedOut` when it waits longer than `stall`.
async fn within<T>(stall: Duration, read: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(stall, read).await {
        Ok(res) => res,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("no bytes of a started frame for {stall:?}"))),
    }
}

#[cfg(test)]
mod tests;
