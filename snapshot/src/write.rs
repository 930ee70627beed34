//! Writing an archive: the state's bytes are hashed, then streamed through tar and gzip into the caller's writer, so the
//! only large thing in memory is the encoded state the caller already holds.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::meta::Meta;
use crate::{META, STATE, SUMS, hex};

/// Writes the archive of `state` (`State::encode_snapshot` bytes) described by `meta` to `out`, and returns `out`.
///
/// `meta.state_size` is set from `state`; the caller fills the rest. Members are written with mode 0600 and time 0,
/// so equal inputs give equal archives.
pub fn write<W: Write>(out: W, meta: &Meta, state: &[u8]) -> io::Result<W> {
    let meta = Meta { state_size: state.len() as u64, ..meta.clone() };
    let mut meta_json = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
    meta_json.push(b'\n');
    let sums = format!("{}  {META}\n{}  {STATE}\n", hex(&Sha256::digest(&meta_json)), hex(&Sha256::digest(state)));
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    for (name, data) in [(META, &meta_json[..]), (STATE, state), (SUMS, sums.as_bytes())] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, name, data)?;
    }
    tar.into_inner()?.finish()
}
