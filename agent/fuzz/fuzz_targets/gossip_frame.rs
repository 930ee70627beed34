//! Fuzz target: one TCP push/pull frame from an unauthenticated peer, through the header check and the seal (or past
//! it, sealed by the harness) into postcard, the join checks and the merge into foca.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roster_agent::fuzzing::gossip_frame(data);
});
