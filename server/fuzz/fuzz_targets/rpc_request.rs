//! Fuzz target: one RPC frame body, decoded as the server decodes every request.
//! Never a panic, and whatever decodes encodes back to bytes that decode the same.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roster_server::fuzzing::rpc_request(data);
});
