//! Entry points for the cargo-fuzz targets in `agent/fuzz/`: one function per target, each taking the fuzzer's bytes.
//!
//! Not API: hidden from the docs, and each function only runs a crate-private decoder the way the agent runs it on
//! input from the network or a client. It is compiled in every build rather than behind a cargo feature, so a change
//! that breaks a target breaks `cargo build`, not a nightly-only fuzz build nobody runs; the property tests call the
//! same code. Each returns the furthest stage the input reached (the seed tests pin them).

/// A UDP gossip datagram from an unauthenticated peer: envelope, seal, kind, then foca, the broadcast handler or the
/// keyring operations. See `gossip::fuzz` for the meaning of the first byte.
pub fn gossip_datagram(data: &[u8]) -> &'static str {
    crate::gossip::fuzz::datagram(data)
}

/// A TCP push/pull frame from an unauthenticated peer: header, seal, postcard, the join checks and the merge.
pub fn gossip_frame(data: &[u8]) -> &'static str {
    crate::gossip::fuzz::frame(data)
}

/// A `PUT /v1/agent/service/register` body (after a first byte that turns script checks on when odd).
pub fn service_definition(data: &[u8]) -> &'static str {
    crate::http::fuzz::service_definition(data)
}

/// Checks a target's seeds: each reaches its stage, and `agent/fuzz/corpus/<target>` holds exactly these files (with
/// `UPDATE_SEEDS` set in the environment, it is rewritten first).
#[cfg(test)]
pub(crate) fn check_seeds(
    target: &str,
    seeds: Vec<(&'static str, Vec<u8>, &'static str)>,
    run: fn(&[u8]) -> &'static str,
) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target);
    let update = std::env::var_os("UPDATE_SEEDS").is_some();
    for (name, input, stage) in seeds {
        assert_eq!(run(&input), stage, "seed {name}");
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(&path, &input).expect("seed written");
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(committed == input, "{} is stale: run with UPDATE_SEEDS=1", path.display());
    }
}
