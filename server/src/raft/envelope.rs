//! The serde form of `LogCommand`, the Raft log's payload: a versioned envelope, which still reads the unversioned
//! entries that roster wrote before entries carried a version.
//!
//! # Format
//! An entry is postcard's encoding of an enum variant: a varint tag, then the variant's content.
//! - **Envelope** (what this build writes): tag `ENVELOPE_TAG` (1000), then the format version (varint) and the
//!   command's own postcard bytes as a length-prefixed byte string. The length is what lets a server skip the body
//!   of an entry whose version it does not know, and say so, instead of failing the whole message opaquely.
//! - **Unversioned** (format 1's log, before envelopes): `roster_kv::Command`'s own encoding, whose tag is the
//!   command's variant index. Command has far fewer than 1000 variants, so the tag alone tells the two apart, in
//!   the log store and on the wire alike.
//!
//! # Versions
//! `LOG_ENTRY_VERSION` is bumped whenever `Command`'s postcard encoding changes (a new variant, a new field); the
//! changes are append-only, so a server reads every version up to its own. An entry of a newer version decodes to
//! `LogCommand::Unreadable` (never an error of the whole message), which the follower refuses by name.
//! Version 2 appends `Command::ConfigEntrySet` and `Command::ConfigEntryDelete`; version 3 the cluster-job commands;
//! version 4 `Command::TombstoneReap`.
//!
//! # Rolling upgrades
//! The direction that matters is old → new: upgraded servers (followers first, as Consul's upgrade guide says) read
//! the unversioned entries an old leader sends and an old data dir holds. New → old cannot work for entries in a
//! format the old server has never heard of: a server from before envelopes fails to decode them (an opaque error,
//! and replication to it stalls until it is upgraded); a server with envelopes refuses a newer version with a
//! message naming both versions.

use std::borrow::Cow;
use std::fmt;

use roster_kv::Command;
use serde::de::{self, DeserializeSeed, EnumAccess, IntoDeserializer, VariantAccess, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use openraft::EntryPayload;

use super::{Entry, LogCommand, Unreadable};

/// The log-entry format this build writes, and the newest it reads.
/// 2: the variants appended after `RestoreCommit`: `CoordinateBatchUpdate`, then `PreparedQuerySet` and
/// `PreparedQueryDelete`, then `ConfigEntrySet` and `ConfigEntryDelete`.
/// 3: `JobSubmit`, `JobStop`, `JobRevert`, `JobPlanApply`, `AllocReport` and `HostReport`.
/// 4: `TombstoneReap`.
pub(crate) const LOG_ENTRY_VERSION: u32 = 4;

/// The variant tag of an envelope. Far above any `Command` variant index, which is what an unversioned entry starts with.
const ENVELOPE_TAG: u32 = 1000;

impl Serialize for LogCommand {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (version, body) = match self {
            LogCommand::Command(cmd) => (LOG_ENTRY_VERSION, encode_presized(cmd).map_err(S::Error::custom)?),
            // Never written by this build; re-encoded as received so the bytes stay what the newer server wrote.
            LogCommand::Unreadable(entry) => (entry.version, entry.body.clone()),
        };
        serializer.serialize_newtype_variant("LogCommand", ENVELOPE_TAG, "Envelope", &(version, Body(body)))
    }
}

/// postcard's encoding of a command into a buffer sized for it first. Grown as it is written, a buffer doubles at the
/// first field after a large value (`KvSet`'s flags follow its value): one more copy of the value, into an allocation
/// twice its size. (A command holds no envelope, so sizing it encodes nothing.)
fn encode_presized(cmd: &Command) -> postcard::Result<Vec<u8>> {
    let len = postcard::experimental::serialized_size(cmd)?;
    postcard::to_extend(cmd, Vec::with_capacity(len))
}

/// The bytes postcard encodes `entry` to, counted without encoding its command. (`serialized_size` of an entry
/// would encode the command into a buffer, as `LogCommand`'s envelope holds its command's bytes.)
pub(crate) fn entry_len(entry: &Entry) -> postcard::Result<usize> {
    let command = match &entry.payload {
        EntryPayload::Normal(command) => command,
        EntryPayload::Blank | EntryPayload::Membership(_) => return postcard::experimental::serialized_size(entry),
    };
    let (version, body) = match command {
        LogCommand::Command(cmd) => (LOG_ENTRY_VERSION, postcard::experimental::serialized_size(cmd)?),
        LogCommand::Unreadable(unreadable) => (unreadable.version, unreadable.body.len()),
    };
    let log_id = postcard::experimental::serialized_size(&entry.log_id)?;
    // The entry's log id, the payload's variant (`Normal`), then the envelope: its tag, version and body length as
    // varints, and the body.
    Ok(log_id
        + varint_len(1)
        + varint_len(ENVELOPE_TAG.into())
        + varint_len(version.into())
        + varint_len(body as u64)
        + body)
}

/// The bytes of `value` as a postcard varint: seven bits a byte.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

impl<'de> Deserialize<'de> for LogCommand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LogCommand, D::Error> {
        deserializer.deserialize_enum("LogCommand", &["Envelope"], LogCommandVisitor)
    }
}

impl LogCommand {
    /// The command an envelope of `version` carries in `body`, or why this build cannot read it.
    fn from_envelope(version: u32, body: &[u8]) -> LogCommand {
        if version > LOG_ENTRY_VERSION {
            let why = format!(
                "log entry format version {version} is newer than this server reads (up to {LOG_ENTRY_VERSION}): \
                 it was written by a newer roster; upgrade this server"
            );
            return LogCommand::Unreadable(Unreadable { version, why, body: body.to_vec() });
        }
        match postcard::from_bytes::<Command>(body) {
            Ok(cmd) => LogCommand::Command(cmd),
            Err(e) => {
                let why = format!(
                    "log entry of format version {version} does not decode ({e}): its command is unknown to this \
                     server (format {LOG_ENTRY_VERSION}), so a newer roster wrote it; upgrade this server"
                );
                LogCommand::Unreadable(Unreadable { version, why, body: body.to_vec() })
            }
        }
    }
}

struct LogCommandVisitor;

impl<'de> Visitor<'de> for LogCommandVisitor {
    type Value = LogCommand;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Raft log command (an envelope, or an unversioned command)")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<LogCommand, A::Error> {
        let (tag, content) = data.variant::<u32>()?;
        if tag == ENVELOPE_TAG {
            let (version, RawBody(body)) = content.newtype_variant::<(u32, RawBody<'de>)>()?;
            return Ok(LogCommand::from_envelope(version, &body));
        }
        // An unversioned entry: the tag just read was Command's own variant index, so hand it back to Command.
        Command::deserialize(Unversioned { tag, content }).map(LogCommand::Command)
    }
}

/// A deserializer that replays an enum whose variant tag was already read, for `Command`'s derived impl.
struct Unversioned<A> {
    tag: u32,
    content: A,
}

impl<'de, A: VariantAccess<'de>> Deserializer<'de> for Unversioned<A> {
    type Error = A::Error;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, A::Error> {
        Err(de::Error::custom("an unversioned log entry holds an enum"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
        newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl<'de, A: VariantAccess<'de>> EnumAccess<'de> for Unversioned<A> {
    type Error = A::Error;
    type Variant = A;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, A), A::Error> {
        let variant = seed.deserialize(IntoDeserializer::<A::Error>::into_deserializer(self.tag))?;
        Ok((variant, self.content))
    }
}

/// A command's bytes inside an envelope, written as one length-prefixed byte string (not a sequence of `u8` elements).
struct Body(Vec<u8>);

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

/// A command's bytes as read from an envelope: borrowed from the input where the format lends them (postcard reading
/// a slice: a log entry, an AppendEntries frame), so the command is decoded straight from the entry's bytes instead of
/// from a copy of them (with 256 KiB values, the copy was a second memcpy of every entry on every read).
struct RawBody<'de>(Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for RawBody<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawBody<'de>, D::Error> {
        deserializer.deserialize_bytes(RawBodyVisitor)
    }
}

struct RawBodyVisitor;

impl<'de> Visitor<'de> for RawBodyVisitor {
    type Value = RawBody<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<RawBody<'de>, E> {
        Ok(RawBody(Cow::Borrowed(bytes)))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<RawBody<'de>, E> {
        Ok(RawBody(Cow::Owned(bytes.to_vec())))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<RawBody<'de>, E> {
        Ok(RawBody(Cow::Owned(bytes)))
    }
}

#[cfg(test)]
mod tests;
