//! Fuzz target: one UDP gossip datagram from an unauthenticated peer, through the envelope and the seal (or past it,
//! sealed by the harness with the receiver's key) into foca, the broadcast handler and the keyring operations.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roster_agent::fuzzing::gossip_datagram(data);
});
