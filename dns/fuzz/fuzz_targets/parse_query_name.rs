//! Fuzz target: `parse_query_name` must never panic, whatever bytes arrive as a query name, and what it
//! returns must be consistent with the name it was given.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use roster_dns::{QueryKind, parse_query_name};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the domains, so one corpus covers the primary, alt and domain-less paths.
    let Some((&selector, rest)) = data.split_first() else { return };
    let qname = String::from_utf8_lossy(rest);
    let (domain, alt_domain) = match selector % 4 {
        0 => ("consul", None),
        1 => ("consul", Some("alt.example")),
        2 => ("", None),
        _ => ("a.b.c", Some("consul")),
    };
    match parse_query_name(&qname, domain, alt_domain) {
        QueryKind::Service { name, tag, .. } => {
            assert!(!name.is_empty(), "service with empty name from {qname:?}");
            assert!(tag.is_none_or(|tag| !tag.is_empty()), "empty tag from {qname:?}");
        }
        QueryKind::Node { name, .. } => assert!(!name.is_empty(), "node with empty name from {qname:?}"),
        _ => {}
    }
});
