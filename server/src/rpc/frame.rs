//! Reading and writing one length-prefixed, versioned RPC frame.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The wire version this build speaks. Bump it when `raft::wire` changes incompatibly.
pub(crate) const WIRE_VERSION: u8 = 1;

/// The largest frame accepted, so a corrupt length cannot make us allocate without bound.
/// It must hold a whole snapshot (sent in one frame) and a batch of `max_payload_entries` entries.
pub(crate) const MAX_FRAME_LEN: usize = 512 << 20;

/// Bytes after the length prefix and before the body: version and request id.
const HEADER_LEN: usize = 1 + 8;

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
pub(crate) async fn read_frame<R>(reader: &mut R) -> io::Result<Option<(u64, Vec<u8>)>>
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
    reader.read_exact(&mut header).await?;
    if header[0] != WIRE_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer speaks wire version {}, we speak {WIRE_VERSION}", header[0]),
        ));
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&header[1..]);
    let mut body = vec![0u8; len - HEADER_LEN];
    reader.read_exact(&mut body).await?;
    Ok(Some((u64::from_be_bytes(id_bytes), body)))
}

#[cfg(test)]
mod tests;
