//! The Raft log's file format: a header, then records in the order the writer appended them, each checked.
//!
//! The header is a magic string, the format version and a salt drawn when the file was made. A record is a head of
//! `len: u32 LE`, `body_crc: u32 LE` and `head_crc: u32 LE`, then the body of `len` bytes: a tag byte and its payload.
//! `body_crc` is the CRC-32 of the salt and the body, `head_crc` that of the salt, `len` and `body_crc`, so damage to
//! any byte of a record is caught, and bytes a client wrote into a value cannot pass for a record (they would need
//! the salt). The writer appends one record per write and syncs it before the next: a group of appends (with the
//! committed pointer riding along) is one `Appended` record; a vote, a truncation and a purge are records of their
//! own; replaying the file in order rebuilds the log. Nothing is rewritten in place: the file is replaced whole
//! (written beside it, synced, renamed over it) when it is made and when what it holds is mostly purged, and such a
//! fresh file holds one record per entry.
//!
//! Since every write is synced before the next begins, a crash can damage only the last record: whatever of its
//! blocks reached the disk, in any order, nothing whole follows it. Replay cuts such a record (it was never
//! acknowledged). A bad record that a whole record follows was synced before that one was written: that is damage,
//! not a crash, and it is refused with the file and the byte named, as what follows holds entries this server
//! acknowledged. A record whose checks hold but whose tag this build does not know was written by a newer roster,
//! and is refused too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::indexed::{ByteLen, Indexed};

/// The file starts with this, then the format version and the salt.
const MAGIC: &[u8; 16] = b"roster raft log\n";
/// The format this build writes and reads.
const VERSION: u32 = 1;
pub(super) const HEADER_LEN: u64 = MAGIC.len() as u64 + 4 + 8;
/// A record's length and its two checks.
const HEAD_LEN: u64 = 12;
/// An `Entry` record's bytes before the encoded entry: the tag and the index.
const ENTRY_PREFIX: u64 = 1 + 8;
/// A longer record is damage, not data: one Raft entry is bounded far below this by the request limits.
const MAX_BODY: u32 = 1 << 30;
/// After a bad record, at most this much of the file is searched for a whole one; a longer tail is refused as it is.
/// The last write is far shorter: the writer puts at most 64 MiB of entries (beyond one) in one record, and one entry
/// is bounded by the request limits.
pub(super) const MAX_TAIL: u64 = 256 << 20;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Tag {
    /// The index (u64 LE), then the encoded entry; it replaces an entry at the same index.
    Entry = 1,
    /// The encoded vote.
    Vote = 2,
    /// The encoded committed pointer (`Option<LogId>`).
    Committed = 3,
    /// The first index removed (u64 LE): every entry from it on is gone.
    TruncateFrom = 4,
    /// The encoded purge point (`LogId`): every entry up to its index is gone.
    Purge = 5,
    /// One write's appends: a flag byte (1: a committed pointer follows, as a u32 LE length and its bytes), then
    /// each entry as its index (u64 LE), its length (u32 LE) and its encoded bytes.
    Appended = 6,
}

impl Tag {
    fn from_byte(byte: u8) -> Option<Tag> {
        [Tag::Entry, Tag::Vote, Tag::Committed, Tag::TruncateFrom, Tag::Purge, Tag::Appended]
            .into_iter()
            .find(|t| *t as u8 == byte)
    }
}

/// Where an entry's encoded bytes are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) offset: u64,
    pub(super) len: u32,
}

impl ByteLen for Loc {
    fn byte_len(&self) -> u64 {
        u64::from(self.len)
    }
}

fn body_crc(salt: u64, body: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&salt.to_le_bytes());
    crc.update(body);
    crc.finalize()
}

fn head_crc(salt: u64, len: u32, body_crc: u32) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&salt.to_le_bytes());
    crc.update(&len.to_le_bytes());
    crc.update(&body_crc.to_le_bytes());
    crc.finalize()
}

/// A record's head, if its check holds.
fn parse_head(salt: u64, head: &[u8; HEAD_LEN as usize]) -> Option<(u32, u32)> {
    let len = u32::from_le_bytes(head[..4].try_into().ok()?);
    let body = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let check = u32::from_le_bytes(head[8..].try_into().ok()?);
    (len > 0 && len <= MAX_BODY && head_crc(salt, len, body) == check).then_some((len, body))
}

/// Records to append, built in memory and written with one call; `locs` says where each entry will sit once the
/// buffer is written at `base`.
pub(super) struct Batch {
    base: u64,
    salt: u64,
    pub(super) buf: Vec<u8>,
    pub(super) locs: Vec<(u64, Loc)>,
}

impl Batch {
    /// A batch to be written at file offset `base` of the file salted `salt`.
    pub(super) fn at(base: u64, salt: u64) -> Batch {
        Batch { base, salt, buf: Vec::new(), locs: Vec::new() }
    }

    pub(super) fn entry(&mut self, index: u64, encoded: &[u8]) -> io::Result<()> {
        let start = self.buf.len() as u64;
        let mut body = Vec::with_capacity(1 + 8 + encoded.len());
        body.push(Tag::Entry as u8);
        body.extend_from_slice(&index.to_le_bytes());
        body.extend_from_slice(encoded);
        self.push(&body)?;
        let len = u32::try_from(encoded.len()).map_err(|_| too_long())?;
        self.locs.push((index, Loc { offset: self.base + start + HEAD_LEN + ENTRY_PREFIX, len }));
        Ok(())
    }

    /// One `Appended` record holding `entries` and, when given, the committed pointer.
    pub(super) fn appended<'a>(
        &mut self,
        committed: Option<&[u8]>,
        entries: impl Iterator<Item = (u64, &'a [u8])>,
    ) -> io::Result<()> {
        let mut body = vec![Tag::Appended as u8];
        match committed {
            Some(committed) => {
                body.push(1);
                body.extend_from_slice(&u32::try_from(committed.len()).map_err(|_| too_long())?.to_le_bytes());
                body.extend_from_slice(committed);
            }
            None => body.push(0),
        }
        let record_start = self.base + self.buf.len() as u64;
        let mut locs = Vec::new();
        for (index, encoded) in entries {
            let len = u32::try_from(encoded.len()).map_err(|_| too_long())?;
            body.extend_from_slice(&index.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
            locs.push((index, Loc { offset: record_start + HEAD_LEN + body.len() as u64, len }));
            body.extend_from_slice(encoded);
        }
        self.push(&body)?;
        self.locs.extend(locs);
        Ok(())
    }

    pub(super) fn record(&mut self, tag: Tag, payload: &[u8]) -> io::Result<()> {
        let mut body = Vec::with_capacity(1 + payload.len());
        body.push(tag as u8);
        body.extend_from_slice(payload);
        self.push(&body)
    }

    fn push(&mut self, body: &[u8]) -> io::Result<()> {
        let len = u32::try_from(body.len()).ok().filter(|len| *len <= MAX_BODY).ok_or_else(too_long)?;
        let body_check = body_crc(self.salt, body);
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&body_check.to_le_bytes());
        self.buf.extend_from_slice(&head_crc(self.salt, len, body_check).to_le_bytes());
        self.buf.extend_from_slice(body);
        Ok(())
    }
}

/// A record of `body` as the writer frames it, whatever the body (tests make records of kinds no build writes).
#[cfg(test)]
pub(super) fn framed(salt: u64, body: &[u8]) -> Vec<u8> {
    let mut batch = Batch::at(0, salt);
    batch.push(body).expect("a short body");
    batch.buf
}

/// The salt in a log file's header.
#[cfg(test)]
pub(super) fn salt_of(file: &[u8]) -> u64 {
    u64::from_le_bytes(file[MAGIC.len() + 4..HEADER_LEN as usize].try_into().expect("a header"))
}

fn too_long() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "a Raft log record longer than 1 GiB")
}

/// The log as a replay of its file found it.
#[derive(Debug, Default)]
pub(super) struct Replayed {
    pub(super) salt: u64,
    pub(super) entries: Indexed<Loc>,
    pub(super) vote: Option<Vec<u8>>,
    pub(super) committed: Option<Vec<u8>>,
    pub(super) purged: Option<Vec<u8>>,
    /// The offset after the last whole record: where the next append goes.
    pub(super) end: u64,
    /// Bytes after `end` that were cut (the last write, which a crash interrupted).
    pub(super) cut: u64,
}

impl Replayed {
    fn apply(&mut self, tag: Tag, offset: u64, body: &[u8]) -> io::Result<()> {
        let payload = &body[1..];
        match tag {
            Tag::Entry => {
                let (index, entry) = split_index(payload)?;
                let len = u32::try_from(entry.len()).map_err(|_| too_long())?;
                self.entries.insert(index, Loc { offset: offset + HEAD_LEN + ENTRY_PREFIX, len });
            }
            Tag::Appended => {
                let damaged = || io::Error::new(io::ErrorKind::InvalidData, "an appends record that does not parse");
                let (flag, mut rest) = payload.split_first().ok_or_else(damaged)?;
                if *flag > 1 {
                    return Err(damaged());
                }
                if *flag == 1 {
                    let (len, after) = rest.split_first_chunk::<4>().ok_or_else(damaged)?;
                    let len = u32::from_le_bytes(*len) as usize;
                    self.committed = Some(after.get(..len).ok_or_else(damaged)?.to_vec());
                    rest = &after[len..];
                }
                while !rest.is_empty() {
                    let (index, after) = rest.split_first_chunk::<8>().ok_or_else(damaged)?;
                    let (len, after) = after.split_first_chunk::<4>().ok_or_else(damaged)?;
                    let len = u32::from_le_bytes(*len);
                    let at = body.len() - after.len();
                    if after.len() < len as usize {
                        return Err(damaged());
                    }
                    self.entries.insert(u64::from_le_bytes(*index), Loc { offset: offset + HEAD_LEN + at as u64, len });
                    rest = &after[len as usize..];
                }
            }
            Tag::Vote => self.vote = Some(payload.to_vec()),
            Tag::Committed => self.committed = Some(payload.to_vec()),
            Tag::TruncateFrom => {
                let (from, _) = split_index(payload)?;
                self.entries.truncate_from(from);
            }
            // The caller removed what it purges, as only it can decode the purge point.
            Tag::Purge => self.purged = Some(payload.to_vec()),
        }
        Ok(())
    }
}

fn split_index(payload: &[u8]) -> io::Result<(u64, &[u8])> {
    match payload.split_first_chunk::<8>() {
        Some((index, rest)) => Ok((u64::from_le_bytes(*index), rest)),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "a Raft log record without its index")),
    }
}

/// A new file's header, with `salt`.
pub(super) fn header(salt: u64) -> Vec<u8> {
    let mut buf = MAGIC.to_vec();
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&salt.to_le_bytes());
    buf
}

/// A salt for a new file.
pub(super) fn new_salt() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Replays `file` from its start; `purged_index` decodes a purge record's index, so the replay can drop what it
/// purged. A last record a crash cut short is cut off (and the file synced) before this returns; other damage is an
/// error.
pub(super) fn replay(file: &File, name: &str, purged_index: impl Fn(&[u8]) -> io::Result<u64>) -> io::Result<Replayed> {
    let len = file.metadata()?.len();
    // The file may have been written through this handle (a moved log): read from its start, not where that left it.
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(io::SeekFrom::Start(0))?;
    let not_a_log = || io::Error::new(io::ErrorKind::InvalidData, format!("{name} is not a roster Raft log"));
    if len < HEADER_LEN {
        return Err(not_a_log());
    }
    let mut head = [0u8; HEADER_LEN as usize];
    reader.read_exact(&mut head)?;
    if &head[..MAGIC.len()] != MAGIC {
        return Err(not_a_log());
    }
    let version = u32::from_le_bytes(head[MAGIC.len()..MAGIC.len() + 4].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{name} is in log format {version}; this roster reads format {VERSION}: run the roster that wrote it"
            ),
        ));
    }
    let salt = u64::from_le_bytes(head[MAGIC.len() + 4..].try_into().unwrap_or_default());
    let mut replayed = Replayed { salt, ..Replayed::default() };
    let mut offset = HEADER_LEN;
    let mut body = Vec::new();
    loop {
        if offset + HEAD_LEN > len {
            break;
        }
        let mut record_head = [0u8; HEAD_LEN as usize];
        reader.read_exact(&mut record_head)?;
        let Some((body_len, check)) = parse_head(salt, &record_head) else { break };
        let end = offset + HEAD_LEN + u64::from(body_len);
        if end > len {
            break;
        }
        body.resize(body_len as usize, 0);
        reader.read_exact(&mut body)?;
        if body_crc(salt, &body) != check {
            break;
        }
        let Some(tag) = Tag::from_byte(body[0]) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: a record of kind {} at byte {offset}, written by a newer roster", body[0]),
            ));
        };
        if tag == Tag::Purge {
            let upto = purged_index(&body[1..])?;
            replayed.entries.purge_upto(upto);
        }
        replayed
            .apply(tag, offset, &body)
            .map_err(|e| io::Error::new(e.kind(), format!("{name}: byte {offset}: {e}")))?;
        offset = end;
    }
    if offset < len {
        refuse_unless_torn(file, name, salt, offset, len)?;
    }
    replayed.end = offset;
    replayed.cut = len - offset;
    if replayed.cut > 0 {
        file.set_len(offset)?;
        file.sync_all()?;
    }
    Ok(replayed)
}

/// The record at `offset` is short or fails a check. A crash leaves that only in the last write, so no whole record
/// follows it: then it is a tail to cut. A whole record after it means it was synced before that one was written:
/// damage, refused, as what follows holds acknowledged entries.
fn refuse_unless_torn(file: &File, name: &str, salt: u64, offset: u64, len: u64) -> io::Result<()> {
    let damaged = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{name}: the record at byte {offset} is damaged, and {what}: a crash does not leave that, and what \
                 follows holds entries this server acknowledged, so it is not cut. Stop here: restore this server \
                 from a snapshot, or remove its data dir and join it to the cluster again"
            ),
        )
    };
    if len - offset > MAX_TAIL {
        return Err(damaged(format!("{} bytes follow it, more than one write", len - offset)));
    }
    let mut tail = vec![0u8; usize::try_from(len - offset).unwrap_or_default()];
    file.read_exact_at(&mut tail, offset)?;
    for at in 1..tail.len() {
        let Some(head) = tail.get(at..at + HEAD_LEN as usize).and_then(|h| <&[u8; 12]>::try_from(h).ok()) else {
            break;
        };
        let Some((body_len, check)) = parse_head(salt, head) else { continue };
        let start = at + HEAD_LEN as usize;
        let Some(body) = tail.get(start..start + body_len as usize) else { continue };
        if body_crc(salt, body) == check && Tag::from_byte(body[0]).is_some() {
            return Err(damaged(format!("a whole record follows it at byte {}", offset + at as u64)));
        }
    }
    Ok(())
}

/// Reads the entry at `loc`.
pub(super) fn read_at(file: &File, loc: Loc) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset)?;
    Ok(buf)
}

/// What a fresh file starts with, besides its entries.
pub(super) struct Fresh<'a> {
    pub(super) salt: u64,
    pub(super) vote: Option<&'a [u8]>,
    pub(super) committed: Option<&'a [u8]>,
    pub(super) purged: Option<&'a [u8]>,
}

/// A new log is synced each time this much more of it is written, not only at its end: hundreds of megabytes left
/// dirty and flushed at once hold up the disk for the live log's own syncs, each of which a write waits for.
const SYNC_EVERY: u64 = 16 << 20;

/// A new log written beside the old one and synced, not yet in its place.
pub(super) struct Written {
    file: File,
    tmp: std::path::PathBuf,
    locs: BTreeMap<u64, Loc>,
    end: u64,
    salt: u64,
}

/// A run of records copied from an old log into a new one whole: an entry at `offset` in the old file with
/// `from <= offset < to` is at `offset - from + at` in the new.
#[derive(Debug, Clone, Copy)]
pub(super) struct Moved {
    pub(super) from: u64,
    pub(super) to: u64,
    pub(super) at: u64,
}

impl Written {
    /// Where the entry at `index` of the entries it was written with is.
    pub(super) fn loc_of(&self, index: u64) -> Option<Loc> {
        self.locs.get(&index).copied()
    }

    /// Copies the records of `old` (salted `old_salt`) between offsets `from` and `to`, which must be record
    /// boundaries of whole records, to the end of this file, framed with its salt; the bodies are the same bytes, so
    /// replaying this file afterwards makes the same changes. Not synced. With `cancel`, ends as `Interrupted` within a
    /// few MB of its being set (a compaction's round can be hundreds of MB, and closing the log waits for it).
    pub(super) fn copy_records(
        &mut self,
        old: &File,
        old_salt: u64,
        (from, to): (u64, u64),
        cancel: Option<&AtomicBool>,
    ) -> io::Result<Moved> {
        let at = self.end;
        let damaged = |offset: u64| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("compaction: the record at byte {offset} does not parse"),
            )
        };
        let mut out = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).unwrap_or(0).min(4 << 20));
        let mut offset = from;
        while offset < to {
            let mut head = [0u8; HEAD_LEN as usize];
            old.read_exact_at(&mut head, offset)?;
            let (len, check) = parse_head(old_salt, &head).ok_or_else(|| damaged(offset))?;
            let mut body = vec![0u8; len as usize];
            old.read_exact_at(&mut body, offset + HEAD_LEN)?;
            if body_crc(old_salt, &body) != check || offset + HEAD_LEN + u64::from(len) > to {
                return Err(damaged(offset));
            }
            out.extend_from_slice(&len.to_le_bytes());
            let body_check = body_crc(self.salt, &body);
            out.extend_from_slice(&body_check.to_le_bytes());
            out.extend_from_slice(&head_crc(self.salt, len, body_check).to_le_bytes());
            out.extend_from_slice(&body);
            offset += HEAD_LEN + u64::from(len);
            if out.len() >= 4 << 20 {
                if cancel.is_some_and(|cancel| cancel.load(Ordering::Relaxed)) {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "the log closed during a compaction"));
                }
                self.file.write_all_at(&out, self.end)?;
                let synced = self.end / SYNC_EVERY;
                self.end += out.len() as u64;
                out.clear();
                if self.end / SYNC_EVERY != synced {
                    self.file.sync_data()?;
                }
            }
        }
        self.file.write_all_at(&out, self.end)?;
        self.end += out.len() as u64;
        Ok(Moved { from, to, at })
    }

    /// Makes what was copied since the file was written durable.
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The new file's salt.
    pub(super) fn salt(&self) -> u64 {
        self.salt
    }

    /// Drops the new file unused.
    pub(super) fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }

    /// Renames the new file over `path`: from here on it is the log, once the directory is synced. Returns the file,
    /// open, where its entries are, and where the next record goes. A failed rename leaves the old log in place; a
    /// failed directory sync after it is the caller's to treat as a failed write.
    pub(super) fn install(self, path: &Path) -> Result<(File, BTreeMap<u64, Loc>, u64), InstallError> {
        if let Err(e) = std::fs::rename(&self.tmp, path) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(InstallError::NotRenamed(e));
        }
        sync_dir(path).map_err(InstallError::Renamed)?;
        Ok((self.file, self.locs, self.end))
    }
}

/// How installing a new log failed.
pub(super) enum InstallError {
    /// Before the rename: the old log is still the log.
    NotRenamed(io::Error),
    /// After it: the new file is in place, but not known to be on disk.
    Renamed(io::Error),
}

impl From<InstallError> for io::Error {
    fn from(e: InstallError) -> io::Error {
        match e {
            InstallError::NotRenamed(e) | InstallError::Renamed(e) => e,
        }
    }
}

/// Writes a new log holding `fresh` and `entries` (in index order) to a temporary file beside `path`, synced; a
/// crash before [`Written::install`] leaves the old log as it was. The temporary file is removed on failure.
pub(super) fn write_beside(
    path: &Path,
    fresh: &Fresh<'_>,
    entries: impl Iterator<Item = io::Result<(u64, Vec<u8>)>>,
) -> io::Result<Written> {
    let tmp = tmp_path(path);
    let written = write_to(&tmp, fresh, entries);
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Where a new log is written before it is renamed into place.
pub(super) fn tmp_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("wal.tmp")
}

fn write_to(
    tmp: &Path,
    fresh: &Fresh<'_>,
    entries: impl Iterator<Item = io::Result<(u64, Vec<u8>)>>,
) -> io::Result<Written> {
    let file = create(tmp)?;
    file.set_len(0)?;
    let mut out = BufWriter::with_capacity(1 << 20, &file);
    out.write_all(&header(fresh.salt))?;
    let mut locs = BTreeMap::new();
    let mut records = Batch::at(HEADER_LEN, fresh.salt);
    let mut records_synced = 0;
    for (tag, value) in [(Tag::Vote, fresh.vote), (Tag::Committed, fresh.committed), (Tag::Purge, fresh.purged)] {
        if let Some(value) = value {
            records.record(tag, value)?;
        }
    }
    for entry in entries {
        let (index, encoded) = entry?;
        records.entry(index, &encoded)?;
        if records.buf.len() >= 1 << 20 {
            out.write_all(&records.buf)?;
            let next = records.base + records.buf.len() as u64;
            locs.extend(records.locs);
            records = Batch::at(next, fresh.salt);
            if next / SYNC_EVERY != records_synced / SYNC_EVERY {
                out.flush()?;
                out.get_ref().sync_data()?;
                records_synced = next;
            }
        }
    }
    out.write_all(&records.buf)?;
    let end = records.base + records.buf.len() as u64;
    locs.extend(records.locs);
    out.flush()?;
    drop(out);
    file.sync_all()?;
    Ok(Written { file, tmp: tmp.to_path_buf(), locs, end, salt: fresh.salt })
}

/// Opens (or creates) a file of the log, readable and writable by its owner only: the log holds every written
/// value, tokens' secrets among them.
pub(super) fn create(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)
}

/// Syncs the directory holding `path`, so a rename or removal in it survives a crash.
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Takes the lock file's exclusive lock, so two servers never write one log. The lock file is never renamed over,
/// so the lock holds across the log file's replacements.
pub(super) fn lock(file: &File, path: &Path) -> io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by another roster process (or another server in this one)", path.display()),
        ),
        std::fs::TryLockError::Error(e) => e,
    })
}

#[cfg(test)]
mod tests;
