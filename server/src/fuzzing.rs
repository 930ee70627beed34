//! Entry points for the cargo-fuzz targets in `server/fuzz/`: one function per target, each taking the fuzzer's bytes.
//!
//! Not API: hidden from the docs, and each function only runs a crate-private decoder the way the RPC listener runs it
//! on bytes from any peer that reaches port 8300. It is compiled in every build rather than behind a cargo feature,
//! so a change that breaks a target breaks `cargo build`, not a nightly-only fuzz build nobody runs; the property
//! tests call the same code. Each returns the furthest stage the input reached (the seed tests pin them).

use crate::raft::wire::{Request, body_limit};
use crate::rpc::frame::{BODY_CHUNK, Decoder};

/// A connection's byte stream through the frame decoder, with each frame's body decoded as the server decodes it.
///
/// The first byte sets the peer up: bit 0 makes it an authenticated server (which may send the large message types),
/// the rest is the size of the pieces the stream arrives in (1 to 128 bytes), since a decoder must give the same
/// frames however its input is split. The memory bound is checked after every piece.
pub fn rpc_stream(data: &[u8]) -> &'static str {
    let Some((&mode, stream)) = data.split_first() else { return "empty" };
    let from_server = mode & 1 != 0;
    let piece = usize::from(mode >> 1) + 1;
    let limit = move |tag: u8| body_limit(tag, from_server);
    let mut decoder = Decoder::new(limit);
    let mut stage = "no-frame";
    let mut fed = 0;
    for mut chunk in stream.chunks(piece) {
        while !chunk.is_empty() {
            let Ok((used, frame)) = decoder.feed(chunk) else { return "frame-refused" };
            assert!(used <= chunk.len(), "consumed {used} of {} bytes", chunk.len());
            fed += used;
            // Memory follows what the peer sent, not what it announced.
            assert!(decoder.held() <= BODY_CHUNK.max(2 * fed), "holds {} after {fed} bytes", decoder.held());
            if let Some((_, body)) = frame {
                assert!(body.first().is_none_or(|tag| body.len() <= limit(*tag)), "a body over its type's limit");
                stage = rpc_request(&body);
            }
            if used == 0 {
                break;
            }
            chunk = &chunk[used..];
        }
    }
    stage
}

/// One frame body, decoded as the server decodes every request; what decodes must encode back to what decodes the same.
pub fn rpc_request(body: &[u8]) -> &'static str {
    let Ok(request) = postcard::from_bytes::<Request>(body) else { return "request-malformed" };
    let _ = request.server_only();
    let name = request.name();
    let Ok(encoded) = postcard::to_allocvec(&request) else { panic!("a decoded {name} does not encode") };
    let again = postcard::from_bytes::<Request>(&encoded).map(|again| postcard::to_allocvec(&again));
    assert!(matches!(&again, Ok(Ok(bytes)) if *bytes == encoded), "a {name} does not survive a round trip");
    name
}

#[cfg(test)]
mod tests;
