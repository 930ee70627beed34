//! Fuzz target: a `PUT /v1/agent/service/register` body. Never a panic, and every accepted service survives being
//! shown by the API and registered again unchanged.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roster_agent::fuzzing::service_definition(data);
});
