//! Reading an archive as it streams in: gunzip and untar over any `io::Read`, hashing each member as its bytes pass,
//! then checking `SHA256SUMS`, `meta.json` and the versions. Nothing is trusted until every check passed.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use flate2::read::GzDecoder;
use roster_kv::State;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::meta::{FORMAT_VERSION, Meta};
use crate::{META, STATE, SUMS, hex};

/// The largest `state.bin` this build reads.
pub const MAX_STATE_LEN: u64 = 1 << 30;
/// The largest `meta.json` and `SHA256SUMS`: a few hundred bytes each in practice.
const MAX_SMALL_LEN: u64 = 1 << 20;

/// A checked archive: its meta and the state's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// `meta.json`.
    pub meta: Meta,
    /// `state.bin`: `State::encode_snapshot` bytes of a version this build reads, matching their checksum.
    pub state: Vec<u8>,
}

impl Archive {
    /// Decodes `state.bin`.
    pub fn decode_state(&self) -> Result<State> {
        State::decode_snapshot(&self.state).map_err(|e| Error::BadState(e.to_string()))
    }
}

/// Reads and checks an archive from `input`, refusing anything that is not a complete, intact archive this build can
/// read. The state is not decoded (`Archive::decode_state` does that).
pub fn read<R: Read>(input: R) -> Result<Archive> {
    let mut input = BufReader::new(input);
    let head = input.fill_buf().map_err(Error::Io)?;
    if head.is_empty() {
        return Err(Error::Truncated);
    }
    if head.len() >= 2 && head[..2] != [0x1f, 0x8b] || head.len() < 2 && head[0] != 0x1f {
        return Err(Error::NotGzip);
    }
    let gzip_error = Rc::new(RefCell::new(None));
    let tap = Tap { inner: GzDecoder::new(input), error: gzip_error.clone() };
    let mut tar = tar::Archive::new(tap);
    let mut members = Members::default();
    let classify = |e: io::Error| classify(e, &gzip_error);
    for entry in tar.entries().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let slot = match name.as_str() {
            META => &mut members.meta,
            STATE => &mut members.state,
            SUMS => &mut members.sums,
            _ => return Err(Error::ExtraMember(name)),
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(Error::ExtraMember(name));
        }
        if slot.is_some() {
            return Err(Error::DuplicateMember(name));
        }
        let (name, limit) = match name.as_str() {
            STATE => (STATE, MAX_STATE_LEN),
            META => (META, MAX_SMALL_LEN),
            _ => (SUMS, MAX_SMALL_LEN),
        };
        let size = entry.size();
        if size > limit {
            return Err(Error::TooLarge { name, size, limit });
        }
        *slot = Some(read_hashed(&mut entry, size).map_err(classify)?);
    }
    // The tar end may come before the gzip trailer: read to the end so its CRC and length are checked too.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(classify)?;
    members.check()
}

/// A member's bytes and their SHA-256, computed as they were read.
struct Hashed {
    bytes: Vec<u8>,
    sha256: String,
}

fn read_hashed(entry: &mut impl Read, size: u64) -> io::Result<Hashed> {
    let mut hasher = Sha256::new();
    // The header's size is checked against the limits before this; it is still only a claim, so grow as bytes come.
    let mut bytes = Vec::with_capacity(size.min(1 << 20) as usize);
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes.extend_from_slice(&buf[..n]);
    }
    if bytes.len() as u64 != size {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "member shorter than its header says"));
    }
    Ok(Hashed { bytes, sha256: hex(&hasher.finalize()) })
}

#[derive(Default)]
struct Members {
    meta: Option<Hashed>,
    state: Option<Hashed>,
    sums: Option<Hashed>,
}

impl Members {
    fn check(self) -> Result<Archive> {
        let meta = self.meta.ok_or(Error::MissingMember(META))?;
        let state = self.state.ok_or(Error::MissingMember(STATE))?;
        let sums = self.sums.ok_or(Error::MissingMember(SUMS))?;
        let sums = std::str::from_utf8(&sums.bytes).map_err(|_| Error::BadSums("not UTF-8".into()))?;
        let mut listed: Vec<(&str, &str)> = Vec::new();
        for line in sums.lines().filter(|l| !l.is_empty()) {
            // `sha256sum` writes "<hex>  <name>" (two spaces; "<hex> *<name>" in binary mode).
            let Some((digest, name)) = line.split_once(' ') else {
                return Err(Error::BadSums(format!("line {line:?} is not \"<sha256>  <name>\"")));
            };
            let name = name.trim_start_matches([' ', '*']);
            if name != META && name != STATE {
                return Err(Error::BadSums(format!("it lists {name:?}, which the archive does not hold")));
            }
            if listed.iter().any(|(_, n)| *n == name) {
                return Err(Error::BadSums(format!("it lists {name} twice")));
            }
            listed.push((digest, name));
        }
        for (name, member) in [(META, &meta), (STATE, &state)] {
            let Some((digest, _)) = listed.iter().find(|(_, n)| *n == name) else {
                return Err(Error::BadSums(format!("it does not list {name}")));
            };
            if !digest.eq_ignore_ascii_case(&member.sha256) {
                return Err(Error::ChecksumMismatch(name.into()));
            }
        }
        let meta: Meta = serde_json::from_slice(&meta.bytes).map_err(|e| Error::BadMeta(e.to_string()))?;
        if meta.version > FORMAT_VERSION {
            return Err(Error::NewerFormat { found: meta.version, supported: FORMAT_VERSION });
        }
        let supported = roster_kv::SNAPSHOT_VERSION;
        if meta.state_version > supported {
            return Err(Error::NewerState { found: meta.state_version, supported });
        }
        match roster_kv::snapshot_version(&state.bytes) {
            Some(found) if found > supported => return Err(Error::NewerState { found, supported }),
            Some(found) if found != meta.state_version => {
                return Err(Error::BadMeta(format!(
                    "StateVersion is {}, state.bin is version {found}",
                    meta.state_version
                )));
            }
            Some(_) => {}
            None => return Err(Error::BadState("no roster snapshot header".into())),
        }
        if meta.state_size != state.bytes.len() as u64 {
            return Err(Error::BadMeta(format!(
                "StateSize is {}, state.bin holds {} bytes",
                meta.state_size,
                state.bytes.len()
            )));
        }
        Ok(Archive { meta, state: state.bytes })
    }
}

/// Passes the gzip decoder's bytes to tar, remembering whether the decoder itself failed, so a tar error can be told
/// apart from a damaged or cut gzip stream.
struct Tap<R> {
    inner: R,
    error: Rc<RefCell<Option<io::ErrorKind>>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| *self.error.borrow_mut() = Some(e.kind()))
    }
}

fn classify(err: io::Error, gzip_error: &RefCell<Option<io::ErrorKind>>) -> Error {
    match *gzip_error.borrow() {
        Some(io::ErrorKind::UnexpectedEof) => Error::Truncated,
        Some(_) => Error::CorruptGzip(err.to_string()),
        // tar saw the gzip stream end early, inside a header or a member.
        None if err.kind() == io::ErrorKind::UnexpectedEof => Error::Truncated,
        None => Error::NotTar(err.to_string()),
    }
}
