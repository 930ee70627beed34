//! Serde for a byte vector as one byte string (`serialize_bytes`) instead of a sequence of numbers.
//!
//! postcard writes both alike (a length, then the bytes), so the wire and snapshot formats do not change; but a
//! sequence is read through one visitor call per byte, which in an unoptimized build costs seconds per megabyte on
//! every hop of a restore chunk. Used on every field that carries bytes: KV values (a 512 KiB value is read at memcpy
//! speed on each AppendEntries, log read and snapshot decode), `Command::RestoreChunk`, the staged restore, and the
//! server's snapshot chunks.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `bytes` as a byte string.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Reads a byte string (or, from a format without one, a sequence of bytes).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element()? {
            out.push(byte);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::{Command, KvEntry};

    /// `Command` as it was before its values were byte strings: the log and snapshots written then must still read.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum PlainCommand {
        KvSet { key: String, value: Vec<u8>, flags: u64 },
    }

    #[test]
    fn byte_string_values_keep_the_sequence_encoding() {
        let value: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let cmd = Command::KvSet { key: "k".into(), value: value.clone(), flags: 7 };
        let plain = PlainCommand::KvSet { key: "k".into(), value: value.clone(), flags: 7 };
        let bytes = postcard::to_allocvec(&cmd).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        assert_eq!(postcard::from_bytes::<Command>(&postcard::to_allocvec(&plain).unwrap()).unwrap(), cmd);
        assert_eq!(postcard::from_bytes::<PlainCommand>(&bytes).unwrap(), plain);

        // JSON (the agent never stores it, but a byte string must read back from an array of numbers too).
        let entry = KvEntry {
            key: "k".into(),
            value: vec![1, 2, 3],
            flags: 0,
            lock_index: 0,
            session: None,
            create_index: 1,
            modify_index: 1,
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains("[1,2,3]"), "{json}");
        assert_eq!(serde_json::from_str::<KvEntry>(&json).unwrap(), entry);
    }
}
