//! Tests of the archive format: a round trip, and every refusal, each naming what is wrong.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use roster_kv::{Command, State};
use sha2::{Digest, Sha256};

use super::*;

fn state() -> State {
    let mut state = State::new();
    for i in 0..50u64 {
        let cmd = Command::KvSet { key: format!("k/{i}"), value: vec![i as u8; 100], flags: i };
        state.apply(i + 1, &cmd);
    }
    state
}

fn meta() -> Meta {
    Meta {
        version: FORMAT_VERSION,
        id: "2-50-1700000000000".into(),
        index: 50,
        term: 2,
        servers: vec![Server { id: "1".into(), address: "127.0.0.1:8300".into(), voter: true }],
        state_version: roster_kv::SNAPSHOT_VERSION,
        state_size: 0,
    }
}

fn archive() -> (Vec<u8>, Vec<u8>) {
    let bytes = state().encode_snapshot();
    (write(Vec::new(), &meta(), &bytes).expect("writes"), bytes)
}

/// An archive of arbitrary members, each `(name, bytes)`, for the refusals a writer of ours never makes.
fn custom(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data) in members {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o600);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, name, *data).expect("appends");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

fn meta_json(meta: &Meta) -> Vec<u8> {
    serde_json::to_vec(meta).expect("encodes")
}

fn sums(members: &[(&str, &[u8])]) -> Vec<u8> {
    members.iter().map(|(name, data)| format!("{}  {name}\n", hex(&Sha256::digest(data)))).collect::<String>().into()
}

/// A well-formed archive of `meta` and `state` with correct checksums.
fn consistent(meta: &Meta, state: &[u8]) -> Vec<u8> {
    let meta = meta_json(meta);
    let sums = sums(&[(META, &meta), (STATE, state)]);
    custom(&[(META, &meta), (STATE, state), (SUMS, &sums)])
}

fn refused(bytes: &[u8]) -> String {
    match read(bytes) {
        Ok(_) => panic!("accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn round_trip_keeps_meta_and_state() {
    let (bytes, state_bytes) = archive();
    let archive = read(&bytes[..]).expect("reads");
    assert_eq!(archive.state, state_bytes);
    assert_eq!(archive.meta, Meta { state_size: state_bytes.len() as u64, ..meta() });
    assert_eq!(archive.decode_state().expect("decodes"), state());
    // Deterministic: the same inputs give the same bytes.
    assert_eq!(archive_bytes_again(), bytes);
}

fn archive_bytes_again() -> Vec<u8> {
    archive().0
}

#[test]
fn a_custom_archive_like_ours_reads() {
    let state = state().encode_snapshot();
    let meta = Meta { state_size: state.len() as u64, ..meta() };
    assert_eq!(read(&consistent(&meta, &state)[..]).expect("reads").state, state);
}

#[test]
fn not_gzip_and_empty_are_refused() {
    assert_eq!(refused(b"plain text"), "not a snapshot archive: the data is not gzip-compressed");
    assert_eq!(refused(b""), "snapshot archive is truncated");
}

#[test]
fn gzip_of_something_else_is_not_tar() {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&[b'x'; 2048]).expect("writes");
    let text = refused(&gz.finish().expect("gzip"));
    assert!(text.starts_with("not a snapshot archive: the compressed data is not a tar archive"), "{text}");
}

#[test]
fn missing_extra_and_duplicate_members_are_named() {
    let state = state().encode_snapshot();
    let meta = meta_json(&Meta { state_size: state.len() as u64, ..meta() });
    let sums = sums(&[(META, &meta), (STATE, &state)]);
    let text = refused(&custom(&[(META, &meta), (SUMS, &sums)]));
    assert_eq!(text, "snapshot archive is missing state.bin");
    assert_eq!(refused(&custom(&[(STATE, &state), (SUMS, &sums)])), "snapshot archive is missing meta.json");
    assert_eq!(refused(&custom(&[(META, &meta), (STATE, &state)])), "snapshot archive is missing SHA256SUMS");
    let text = refused(&custom(&[(META, &meta), (STATE, &state), (SUMS, &sums), ("extra.txt", b"hi")]));
    assert_eq!(text, "snapshot archive has an unexpected member \"extra.txt\"");
    let text = refused(&custom(&[(META, &meta), (STATE, &state), (STATE, &state), (SUMS, &sums)]));
    assert_eq!(text, "snapshot archive has state.bin twice");
}

#[test]
fn a_flipped_byte_in_a_member_is_a_checksum_mismatch_naming_it() {
    let state = state().encode_snapshot();
    let meta = meta_json(&Meta { state_size: state.len() as u64, ..meta() });
    let sums = sums(&[(META, &meta), (STATE, &state)]);
    let mut bad_state = state.clone();
    bad_state[100] ^= 0x40;
    let text = refused(&custom(&[(META, &meta), (STATE, &bad_state), (SUMS, &sums)]));
    assert_eq!(text, "snapshot archive checksum mismatch for state.bin");
    let mut bad_meta = meta.clone();
    bad_meta[5] ^= 0x01;
    let text = refused(&custom(&[(META, &bad_meta), (STATE, &state), (SUMS, &sums)]));
    assert_eq!(text, "snapshot archive checksum mismatch for meta.json");
}

#[test]
fn sums_must_list_exactly_the_members() {
    let state = state().encode_snapshot();
    let meta = meta_json(&Meta { state_size: state.len() as u64, ..meta() });
    let only_meta = sums(&[(META, &meta)]);
    let text = refused(&custom(&[(META, &meta), (STATE, &state), (SUMS, &only_meta)]));
    assert_eq!(text, "snapshot archive's SHA256SUMS is invalid: it does not list state.bin");
    let other = sums(&[(META, &meta), (STATE, &state), ("x", b"")]);
    let text = refused(&custom(&[(META, &meta), (STATE, &state), (SUMS, &other)]));
    assert!(text.contains("it lists \"x\""), "{text}");
}

#[test]
fn a_newer_format_version_names_both_numbers() {
    let state = state().encode_snapshot();
    let meta = Meta { version: FORMAT_VERSION + 1, state_size: state.len() as u64, ..meta() };
    let text = refused(&consistent(&meta, &state));
    assert_eq!(text, "snapshot archive format version 2 is newer than this build supports (version 1)");
}

#[test]
fn a_newer_state_encoding_is_refused_from_meta_or_from_the_state_header() {
    let mut state = state().encode_snapshot();
    let supported = roster_kv::SNAPSHOT_VERSION;
    let newer = Meta { state_version: supported + 1, state_size: state.len() as u64, ..meta() };
    let expected = format!(
        "snapshot state encoding version {} is newer than this build supports (version {supported})",
        supported + 1
    );
    assert_eq!(refused(&consistent(&newer, &state)), expected);
    state[7] += 1;
    let meta = Meta { state_size: state.len() as u64, ..meta() };
    assert_eq!(refused(&consistent(&meta, &state)), expected);
}

#[test]
fn meta_must_agree_with_the_state() {
    let state = state().encode_snapshot();
    let wrong_size = Meta { state_size: 1, ..meta() };
    assert!(refused(&consistent(&wrong_size, &state)).contains("StateSize is 1"));
    let not_json = custom(&[(META, b"{"), (STATE, &state), (SUMS, &sums(&[(META, b"{"), (STATE, &state)]))]);
    assert!(refused(&not_json).starts_with("snapshot archive's meta.json is invalid"));
}

#[test]
fn a_state_that_passes_its_checksum_but_does_not_decode_is_refused_by_decode_state() {
    let mut state = state().encode_snapshot();
    state.truncate(20);
    let meta = Meta { state_size: state.len() as u64, ..meta() };
    let archive = read(&consistent(&meta, &state)[..]).expect("the archive itself is intact");
    let text = archive.decode_state().expect_err("does not decode").to_string();
    assert!(text.starts_with("snapshot archive's state.bin does not decode"), "{text}");
}

#[test]
fn a_flipped_byte_in_the_compressed_body_is_refused() {
    let (mut bytes, _) = archive();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    assert!(read(&bytes[..]).is_err());
}

proptest! {
    /// Cut anywhere, an archive is refused as truncated (or, cut inside the gzip header, as corrupt).
    #[test]
    fn every_truncation_is_refused(cut in 0usize..100_000) {
        let (bytes, _) = archive();
        let cut = cut % bytes.len();
        let err = read(&bytes[..cut]).expect_err("a cut archive is refused");
        prop_assert!(matches!(err, Error::Truncated | Error::CorruptGzip(_)), "{err}");
    }

    /// Any byte of state.bin changed, with the original checksums, is a mismatch naming state.bin.
    #[test]
    fn every_state_byte_is_covered(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let state = state().encode_snapshot();
        let meta = meta_json(&Meta { state_size: state.len() as u64, ..meta() });
        let sums = sums(&[(META, &meta), (STATE, &state)]);
        let mut bad = state.clone();
        bad[at.index(state.len())] ^= flip;
        let err = read(&custom(&[(META, &meta), (STATE, &bad), (SUMS, &sums)])[..]).expect_err("refused");
        prop_assert_eq!(err.to_string(), "snapshot archive checksum mismatch for state.bin");
    }
}
