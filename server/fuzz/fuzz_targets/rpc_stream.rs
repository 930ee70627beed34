//! Fuzz target: bytes arriving on the RPC port, in pieces, through the frame decoder and into the request decoder.
//! Never a panic, never a body over its type's limit, never memory beyond what the peer actually sent.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roster_server::fuzzing::rpc_stream(data);
});
